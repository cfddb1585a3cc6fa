"""Records an accredited lab signs: the library's nail test on the virtual lab's NMC811 and sulfide cells,
each with the operator's observation (asked at the terminal, sent live, or recorded after the end), judged
by the criteria in the protocol's header and reported per test as PDF and HTML."""

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from waiting import wait_for

from cellrig.analysis.abuse_report import sha256
from cellrig.analysis.safety import abuse_result, passes
from cellrig.lab import Lab
from cellrig.observations import OBSERVED
from cellrig.protocols import Binding, Probe, cell_spec, control
from cellrig.protocols.engine import Runner, Shared
from cellrig.protocols.language import ProtocolError, parse
from cellrig.sim.lab import VirtualLab
from cellrig.storage import RunFileError, open_run

CELLRIG = Path(sys.executable).with_name("cellrig")
NOTHING = [word for what in OBSERVED for word in (f"--{what}", "no")]
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def only_run(folder: Path) -> Path:
    (path,) = folder.glob("*.h5")
    return path


def verdict(path: Path):
    info, result, _ = abuse_result(str(path))
    return passes(info["criteria"], result)


def run_at_a_terminal(args: list[str], answers: dict[bytes, bytes], timeout: float = 300.0) -> tuple[int, str]:
    """Run ``cellrig ARGS`` on a pseudo-terminal, answering each prompt that ends in a key of ``answers``."""
    master, slave = pty.openpty()
    process = subprocess.Popen([str(CELLRIG), *args], stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    said, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the terminal closed with the process
                break
            said += chunk
            last = ANSI.sub(b"", said).rstrip().rsplit(b"\n", 1)[-1]
            for prompt, answer in answers.items():
                if last.endswith(prompt):
                    os.write(master, answer)
                    said += b"\n"  # this prompt is answered
                    break
        return process.wait(timeout=max(deadline - time.monotonic(), 1.0)), ANSI.sub(b"", said).decode(errors="replace")
    finally:
        process.kill()
        os.close(master)


@pytest.fixture(scope="module")
def nmc811_nail(tmp_path_factory) -> tuple[Path, str]:
    """The NMC811 nail test run at a terminal: the operator says fire, nothing else."""
    out = tmp_path_factory.mktemp("nmc811")
    answers = {b"fire (yes, no):": b"yes\n", b"(yes, no):": b"no\n", b"note (optional):": b"flames at the nail\n"}
    code, said = run_at_a_terminal(["run", "nail-gbt31485", "--out", str(out), "--cell-id", "N811-1"], answers)
    assert code == 0, said[-3000:]
    return only_run(out), said


def test_the_terminal_is_asked_for_the_observation_and_a_fire_fails_the_nmc811_nail(nmc811_nail):
    path, said = nmc811_nail
    assert "N811-1: what did you see during the test?" in said
    run = open_run(path)
    events = run.events
    kinds = events["kind"].tolist()
    assert run.status == "tripped" and control.state(run) == "tripped"  # observed: not awaiting one
    assert kinds.index("observe_end") < kinds.index("observation") < kinds.index("end")  # asked after the hour
    seen = events[events["kind"] == "observation"]["message"].iloc[-1]
    assert '"fire": true' in seen and '"explosion": false' in seen and "flames at the nail" in seen
    asking = float(events[events["kind"] == "note"]["time"].iloc[-1])
    assert run.stream("daq")["time"].values[-1] > asking  # the loggers recorded while the operator answered
    judged = verdict(path)
    assert judged.state == "FAIL" and judged.standard == "GB/T 31485-2015 §6.2.8"
    assert ("no fire", False, "observed: fire seen") in judged.criteria
    assert ("no explosion", True, "observed: not seen") in judged.criteria


def test_the_pdf_test_report_renders_and_states_clause_verdict_calibration_and_sha256(nmc811_nail, tmp_path):
    path, _ = nmc811_nail
    pdf = tmp_path / "nail.pdf"
    done = subprocess.run(
        [str(CELLRIG), "test-report", str(path), "-o", str(pdf)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    pages = subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp_path / "page")], timeout=120)
    assert pages.returncode == 0
    images = sorted(tmp_path.glob("page-*.png"))
    assert len(images) >= 2 and all(p.stat().st_size > 2_000 for p in images)  # drawn pages, not blank ones
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, timeout=120).stdout
    flat = " ".join(text.split())
    assert "GB/T 31485-2015 §6.2.8" in flat and "Verdict: FAIL" in flat
    assert f"run file sha256 {sha256(path)}" in flat
    assert "no fire NOT MET observed: fire seen" in flat
    assert "virtual-rig" in flat and "virtual-daq2" in flat  # each instrument's certificate
    assert re.search(r"rig rig cellrig PRESS-100 \S+ 1\.0 TCPIP", flat), flat  # the rig's identity, as it said
    assert "seen: fire (flames at the nail)" in flat and "NMC811/graphite" in flat
    assert "≈ 100 % by the NMC811/graphite OCV curve" in flat  # measured at the start: a charged cell


def test_a_live_observation_of_the_sulfide_nail_is_recorded_and_it_passes(tmp_path):
    out = tmp_path / "sulfide"
    args = ["run", "nail-gbt31485", "--specimen", "sulfide", "--cell-type", "sulfide-5Ah", "--out", str(out)]
    process = subprocess.Popen([str(CELLRIG), *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    try:

        def observing() -> bool:
            paths = list(out.glob("*.h5"))
            try:
                steps = open_run(paths[0]).events.query("kind == 'step_start'") if paths else None
            except RunFileError:  # created, not yet open for SWMR writing
                return False
            return steps is not None and "observe" in steps["message"].tolist()

        wait_for(observing, "the sulfide nail test's hour of observation")
        path = only_run(out)
        live = subprocess.run(
            [str(CELLRIG), "observe", str(path), "no smoke, no flame", *NOTHING],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert live.returncode == 0, live.stderr
        assert "observation at t = " in " ".join(live.stdout.split())
        assert process.wait(timeout=300) == 0
    finally:
        process.kill()
    run = open_run(path)
    assert run.status == "finished" and control.state(run) == "finished"
    assert "awaiting_observation" not in run.events["kind"].tolist()
    observed_at = float(run.events.query("kind == 'observation'")["time"].iloc[0])
    assert observed_at < float(run.events.query("kind == 'end'")["time"].iloc[0]) - 60  # during the run
    judged = verdict(path)
    assert judged.state == "PASS" and all(met for _, met, _ in judged.criteria)
    page = tmp_path / "sulfide.html"
    done = subprocess.run([str(CELLRIG), "test-report", str(path), "-o", str(page)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    html = page.read_text(encoding="utf-8")
    assert "Verdict: PASS" in html and sha256(path) in html and "no smoke, no flame" in html
    assert "http://" not in html and "https://" not in html and "data:image/png;base64," in html  # self-contained


WATCH = """
name: watch-a-cell
kind: abuse
sample_interval: 1 s
criteria:
  clause: a lab's own clause 1
  pass:
    - not_seen: [fire, smoke]
    - temperature_max: 60 °C
steps:
  - observe: 2 min
"""


def test_with_nobody_at_a_terminal_the_run_awaits_its_observation_until_recorded(tmp_path):
    protocol = parse(WATCH, "watch.yaml", cell_spec("nmc811-5Ah"))
    binding = Binding(daq="daq", probes={"temperature": Probe(101)})
    with VirtualLab(speed=2_000, dt=2.0) as virtual, Lab.on(virtual) as lab:
        runner = Runner.start(protocol, binding, tmp_path, Shared(lab))
        assert runner.run() == ("finished", None)
    path = runner.path
    run = open_run(path)
    assert control.state(run) == "finished, awaiting observation"
    awaiting = run.events.query("kind == 'awaiting_observation'")["message"].iloc[0]
    assert f"cellrig observe {path}" in awaiting
    status = subprocess.run(
        [str(CELLRIG), "status", str(tmp_path)], capture_output=True, text=True, env={**os.environ, "COLUMNS": "250"}
    )
    assert "finished, awaiting observation" in status.stdout
    assert verdict(path).state == "provisional"
    smoke = [*NOTHING[:8], "--smoke", "yes", *NOTHING[10:]]
    done = subprocess.run([str(CELLRIG), "observe", str(path), *smoke], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert control.state(open_run(path)) == "finished"
    judged = verdict(path)
    assert judged.state == "FAIL" and ("no fire or smoke", False, "observed: smoke seen") in judged.criteria


@pytest.mark.parametrize(
    ("criterion", "said"),
    [
        ("{not_seen: flames}", "criteria.pass[0].not_seen: flames: not_seen takes one or more of fire, explosion"),
        ("{not_seen: fire, observed: 1 h}", "criteria.pass[0]: a criterion has one of not_seen, temperature_max"),
        ("{temperature_max: 60 V}", "criteria.pass[0].temperature_max: '60 V' is not a temperature"),
    ],
)
def test_criteria_in_a_header_are_checked_with_file_line_and_reason(criterion, said):
    text = WATCH.replace("    - not_seen: [fire, smoke]\n    - temperature_max: 60 °C", f"    - {criterion}")
    with pytest.raises(ProtocolError) as caught:
        parse(text, "watch.yaml", cell_spec("nmc811-5Ah"))
    assert str(caught.value).startswith(f"watch.yaml:8: {said}"), str(caught.value)
