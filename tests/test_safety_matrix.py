"""The fault matrix: faults injected from outside into a running ``cellrig run``, in each phase of a run.

Each case serves the virtual lab in a process of its own (``cellrig sim``), starts ``cellrig
run --lab`` in another, waits until the run file says the phase has begun, then injects the
fault: a signal to the run's process, SIGKILL of the lab's, or a fault played by an instrument
(through the lab's control line).  It then
asks the instruments themselves, over their own sockets, whether they are safe
(``lab_state``), and reads how the run file says the run ended.  The session prints the matrix.
"""

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from lab_state import safe_states, sim_pids
from waiting import wait_for

from cellrig import open_run
from cellrig.sim.process import inject, served_lab
from cellrig.storage import RunFileError, writer_alive

SPEED = 100  # the lab clock: slow enough for the rig's 10 kHz simulation and every query on a busy machine

CYCLING = """
name: {name}
sample_interval: 2 s
{extra}
steps:
  - set: 25 °C
  - cccv: {{current: 0.5C, voltage: $v_max, until_current: C/20, max_time: 4 h}}
  - rest: 2 h
"""
REST = """
name: rest
sample_interval: 2 s
steps:
  - set: 25 °C
  - rest: 2 h
"""
RAMP = """
name: ramp
sample_interval: 2 s
steps:
  - set: 25 °C
  - ramp: {temperature: 55 °C, rate: 0.5 K/min}
"""
# a slow nail: about 2 s of real time to the cell at the lab clock, 0.3 s 3 mm into it, observed, retracted
PRESS = """
name: press
kind: abuse
sample_interval: 1 s
limits: {force_max: 90 kN}
steps:
  - press: {mode: nail, speed: 0.1 mm/s, depth: 3 mm}
  - observe: 30 s
  - retract: 5 mm/s
"""

CYCLER_ROLES = ["--cycler", "cycler", "--chamber", "chamber", "--daq", "daq", "--probe", "temperature=101"]
# the DAQ6510's thermocouple on the rig's cell
RIG_ROLES = ["--rig", "rig", "--daq", "daq2", "--probe", "temperature=101"]


@dataclass(frozen=True)
class Phase:
    protocol: str
    roles: list[str]
    checked: list[str]  # the lab roles whose state is read back
    begun: str  # the label of the step_start (or the event kind) that opens the phase


PHASES = {
    "charging": Phase(CYCLING.format(name="charge", extra=""), CYCLER_ROLES, ["cycler", "chamber"], "cccv"),
    "rest": Phase(REST, CYCLER_ROLES, ["cycler", "chamber"], "rest"),
    "chamber ramp": Phase(
        RAMP, ["--chamber", "chamber", "--daq", "daq", "--probe", "temperature=101"], ["chamber"], "ramp"
    ),
    "rig press": Phase(PRESS, RIG_ROLES, ["rig"], "press"),
    # a cycling run that trips at once (its cell sits above 3.0 V) and is then observed for 2 h
    "post-trip observation": Phase(
        CYCLING.format(name="observed", extra="observe_after_trip: 2 h\nlimits: {voltage_max: 3.0 V}"),
        CYCLER_ROLES,
        ["cycler", "chamber"],
        "observe",
    ),
}


@dataclass(frozen=True)
class Expect:
    status: str
    said: str  # a regular expression the end reason matches
    rc: int
    gone: tuple[str, ...] = ()  # roles that cannot be asked afterwards (a killed lab, a dead instrument)


SIGNALLED = {
    "SIGTERM": Expect("stopped", r"interrupted \(SIGTERM\)", 130),
    "SIGINT": Expect("stopped", r"interrupted \(Ctrl-C\)", 130),
    "SIGINT ×3": Expect("stopped", r"interrupted \(Ctrl-C\)", 130),
    "SIGHUP": Expect("stopped", r"interrupted \(SIGHUP\)", 130),
}
CASES: list[tuple[str, str, Expect]] = [
    *(
        (phase, fault, e)
        for phase in ("charging", "rest", "chamber ramp", "rig press")
        for fault, e in SIGNALLED.items()
    ),
    ("charging", "SIGKILL of the lab", Expect("failed", r"safe state NOT confirmed", 1, ("cycler", "chamber"))),
    ("charging", "dead cycler", Expect("failed", r"safe state NOT confirmed: cycler", 1, ("cycler",))),
    ("charging", "garbled cycler", Expect("failed", r"invalid literal|failed after 2 attempts", 1)),
    ("charging", "NaN readings", Expect("tripped", r"cell temperature reading .* \(not a finite number\)", 0)),
    ("charging", "logger stops scanning", Expect("tripped", r"stale data: the daq stream", 0)),
    ("charging", "stuck logger", Expect("tripped", r"stale data: the daq stream", 0)),
    ("charging", "stuck cycler", Expect("tripped", r"stale data: the cycler stream", 0)),
    ("rest", "dead cycler", Expect("failed", r"safe state NOT confirmed: cycler", 1, ("cycler",))),
    ("chamber ramp", "garbled chamber", Expect("failed", r"failed after 2 attempts", 1)),
    ("rig press", "dead rig", Expect("failed", r"safe state NOT confirmed: rig", 1, ("rig",))),
    ("post-trip observation", "SIGTERM", Expect("tripped", r"voltage .* above the 3 V limit", 130)),
    ("post-trip observation", "SIGINT ×3", Expect("tripped", r"voltage .* above the 3 V limit", 130)),
    ("post-trip observation", "dead logger", Expect("tripped", r"voltage .* above the 3 V limit", 0)),
]
INSTRUMENT_FAULTS = {  # fault -> (role, kind, count, match)
    "dead cycler": ("cycler", "dead", 1, ""),
    "garbled cycler": ("cycler", "garble", 2, "STAT:CELL"),
    "NaN readings": ("daq", "nan", 1, "DATA:REM?"),
    "logger stops scanning": ("daq", "stall", 100_000, ""),
    "stuck logger": ("daq", "stuck", 100_000, ""),  # answers every query as it did last time
    "stuck cycler": ("cycler", "stuck", 100_000, "DATA:LOG?"),  # its data log replays the last block
    "garbled chamber": ("chamber", "garble", 2, "TEMP?"),
    "dead rig": ("rig", "dead", 1, ""),
    "dead logger": ("daq", "dead", 1, ""),
}


def _quick_policy(lab_file: Path) -> Path:
    """The served lab file with a short connection policy, so a lost instrument is given up on within seconds."""
    text = re.sub(r'^(driver = ".*")$', r"\1\ntimeout_s = 1\nretries = 1", lab_file.read_text(), flags=re.M)
    quick = lab_file.with_name("quick-" + lab_file.name)
    quick.write_text(text)
    return quick


def _run_file(out: Path) -> Path | None:
    files = list(out.glob("*.h5"))
    return files[0] if files else None


def _begun(out: Path, begun: str) -> bool:
    path = _run_file(out)
    if path is None:
        return False
    try:
        events = open_run(path).events
    except RunFileError:  # still being created
        return False
    return bool(
        ((events["kind"] == "step_start") & (events["message"] == begun)).any() or (events["kind"] == begun).any()
    )


def _matrix_file() -> Path:
    session = os.getppid() if "PYTEST_XDIST_WORKER" in os.environ else os.getpid()
    return Path(os.environ.get("TMPDIR", "/tmp")) / f"cellrig-safety-matrix-{session}.jsonl"


@pytest.mark.parametrize(("phase", "fault", "expect"), CASES, ids=[f"{p}: {f}" for p, f, _ in CASES])
def test_a_fault_in_any_phase_leaves_the_instruments_safe_and_the_file_saying_why(tmp_path, phase, fault, expect):
    spec = PHASES[phase]
    protocol = tmp_path / "protocol.yaml"
    protocol.write_text(spec.protocol)
    out = tmp_path / "runs"
    with served_lab(tmp_path / "lab.toml", speed=SPEED, specimen="sulfide") as lab_file:
        [sim_pid] = sim_pids(lab_file)
        quick = _quick_policy(lab_file)
        command = [sys.executable, "-m", "cellrig", "run", str(protocol), "--lab", str(quick), "--out", str(out)]
        run = subprocess.Popen(
            [*command, "--cell-type", "sulfide-5Ah", *spec.roles],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(lambda: run.poll() is not None or _begun(out, spec.begun), f"{phase} to begin", timeout=120)
            assert run.poll() is None, run.stderr.read()
            _inject(fault, run, lab_file, sim_pid)
            rc = run.wait(timeout=180)
        finally:
            if run.poll() is None:
                run.kill()
        said = run.stderr.read()
        states = safe_states(lab_file, [role for role in spec.checked if role not in expect.gone])
    path = _run_file(out)
    r = open_run(path)
    kinds = r.events["kind"].tolist()
    row = {"phase": phase, "fault": fault, "rc": rc, "status": r.status, "reason": r.end_reason or said.strip()[-200:]}
    row["safe"] = states
    with _matrix_file().open("a") as f:
        f.write(json.dumps(row) + "\n")
    assert "Traceback" not in said, said
    assert rc == expect.rc, said
    assert all(v is True for v in states.values()), states
    assert "safe_state" in kinds, kinds
    assert r.status == expect.status and re.search(expect.said, r.end_reason), (r.status, r.end_reason)
    assert kinds[-1] == "end"
    if phase == "post-trip observation":
        observed = r.events[r.events["kind"].isin(["observe", "observe_end"])]
        assert len(observed) == 2 and kinds.index("safe_state") < kinds.index("observe"), kinds


def _inject(fault: str, run: subprocess.Popen, lab_file: Path, sim_pid: int) -> None:
    if fault in SIGNALLED:
        sig = {"SIGTERM": signal.SIGTERM, "SIGHUP": signal.SIGHUP}.get(fault, signal.SIGINT)
        for _ in range(3 if "×3" in fault else 1):
            run.send_signal(sig)
    elif fault == "SIGKILL of the lab":
        os.kill(sim_pid, signal.SIGKILL)
    elif fault in INSTRUMENT_FAULTS:
        inject(lab_file, *INSTRUMENT_FAULTS[fault])


def test_a_full_disk_while_charging_stops_the_cell_and_keeps_the_file_readable(tmp_path):
    """The run's file stops growing (a full disk, as the run's process meets it): outputs safe, one clear line."""
    import resource

    spec = PHASES["charging"]
    protocol = tmp_path / "protocol.yaml"
    protocol.write_text(spec.protocol)
    out = tmp_path / "runs"
    with served_lab(tmp_path / "lab.toml", speed=SPEED, specimen="sulfide") as lab_file:
        command = [sys.executable, "-m", "cellrig", "run", str(protocol), "--lab", str(_quick_policy(lab_file))]
        run = subprocess.Popen(
            [*command, "--out", str(out), "--cell-type", "sulfide-5Ah", *spec.roles],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "COLUMNS": "400"},  # the run table's "why" on one line
        )
        try:
            wait_for(lambda: run.poll() is not None or _begun(out, spec.begun), "charging to begin", timeout=120)
            assert run.poll() is None, run.stderr.read()
            path = _run_file(out)
            # no write past the first byte: a volume that takes nothing more (a full copy-on-write disk
            # refuses even rewrites of the chunks the file already holds, which is all a short run needs)
            resource.prlimit(run.pid, resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))
            rc = run.wait(timeout=180)
        finally:
            if run.poll() is None:
                run.kill()
        said = run.stderr.read() + run.stdout.read()
        states = safe_states(lab_file, spec.checked)
    r = open_run(path)
    written = re.search(r"writing failed \([^)]*\)", said)
    row = {"phase": "charging", "fault": "disk full", "rc": rc, "status": r.status, "reason": written and written[0]}
    row["safe"] = states
    with _matrix_file().open("a") as f:
        f.write(json.dumps(row) + "\n")
    assert "Traceback" not in said, said
    assert rc == 1 and written and written[0] == "writing failed (File too large, errno 27)", said
    assert all(v is True for v in states.values()), states
    assert r.status == "interrupted" and r.rows("cycler") > 0  # what reached the file before stays readable
    assert not writer_alive(path)
