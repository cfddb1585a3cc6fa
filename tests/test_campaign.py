"""Campaigns across processes: a virtual lab served by `cellrig sim`, `cellrig campaign`, kill -9, `cellrig resume`."""

import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cycling import cccv_cycles
from waiting import wait_for

from cellrig import open_run
from cellrig.sim.process import served_lab
from cellrig.storage import RunFileError

CELLRIG = Path(sys.executable).with_name("cellrig")
ENV = {**os.environ, "COLUMNS": "250"}

FIVE_CYCLES = cccv_cycles("five-cycles", 5)

CAMPAIGN = """\
name: kill-and-resume
lab: lab.toml
chambers:
  chamber: {}
defaults: {protocol: five-cycles.yaml, cycler: cycler, daq: daq}
cells:
  - {id: NMC-01, type: nmc811-5Ah, channel: 101, chamber: chamber, probes: {temperature: 101}}
  - {id: LFP-01, type: lfp-5Ah, channel: 103, probes: {temperature: 103}}
  - {id: SUL-01, type: sulfide-5Ah, channel: 104, probes: {temperature: 104}}
"""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Path]:
    """A virtual lab in its own process, as `cellrig sim --write-lab` serves it; yields the campaign folder."""
    with served_lab(tmp_path / "lab.toml", speed=5000, dt=2):
        (tmp_path / "five-cycles.yaml").write_text(FIVE_CYCLES)
        (tmp_path / "campaign.yaml").write_text(CAMPAIGN)
        yield tmp_path


def _campaign(folder: Path, out: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(CELLRIG), "campaign", str(folder / "campaign.yaml"), "--out", str(folder / out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def _checkpoints(folder: Path) -> int:
    total = 0
    for path in folder.glob("*.h5"):
        try:
            events = open_run(path).events
        except (RunFileError, OSError, KeyError):  # a file being created this instant
            continue
        total += int((events["kind"] == "checkpoint").sum())
    return total


def _story(path: Path) -> tuple[str, list[int], list[int]]:
    """A run's status, and the step and cycle of each completed step in order."""
    run = open_run(path)
    ends = run.events[run.events["kind"] == "step_end"]
    return run.status, ends["step"].tolist(), ends["cycle"].tolist()


def test_kill_9_mid_campaign_then_resume_gives_the_runs_an_uninterrupted_campaign_gives(served):
    folder = served
    reference = _campaign(folder, "reference")
    assert reference.wait(timeout=300) == 0, reference.stderr.read()

    killed = _campaign(folder, "killed")
    moment = random.Random(7).randint(8, 40)  # the kill lands after this many completed steps, across all runs
    wait_for(lambda: _checkpoints(folder / "killed") >= moment, f"{moment} checkpoints")
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(timeout=30)
    statuses = {open_run(p).status for p in (folder / "killed").glob("*.h5")}
    assert "interrupted" in statuses  # the runs that were going when the engine died

    resumed = subprocess.run(
        [str(CELLRIG), "resume", str(folder / "killed"), "--lab", str(folder / "lab.toml")],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr

    by_cell = {open_run(p).meta["cell"]["id"]: p for p in (folder / "reference").glob("*.h5")}
    for path in (folder / "killed").glob("*.h5"):
        cell = open_run(path).meta["cell"]["id"]
        status, steps, cycles = _story(path)
        assert status == "finished", cell
        assert (steps, cycles) == _story(by_cell[cell])[1:], cell  # same steps, same cycles, none repeated
        assert max(cycles) == 5
        kinds = open_run(path).events["kind"].tolist()
        assert kinds.count("end") == 1 or "resume" in kinds


def test_a_second_campaign_into_the_same_folder_is_refused_and_status_shows_every_run(served):
    folder = served
    first = _campaign(folder, "out")
    assert first.wait(timeout=300) == 0, first.stderr.read()
    again = _campaign(folder, "out")
    assert again.wait(timeout=60) == 1
    assert "already holds a campaign" in again.stderr.read()
    shown = subprocess.run([str(CELLRIG), "status", str(folder / "out")], capture_output=True, text=True, env=ENV)
    assert shown.returncode == 0
    for cell in ("NMC-01", "LFP-01", "SUL-01"):
        assert cell in shown.stdout
    assert shown.stdout.count("finished") == 3


def test_a_campaign_with_bad_cells_reports_every_problem_and_starts_nothing(served):
    folder = served
    (folder / "campaign.yaml").write_text(
        CAMPAIGN.replace("type: lfp-5Ah", "type: lfp-9Ah").replace("channel: 104", "channel: 104, parameters: {x: 1}")
    )
    out = _campaign(folder, "out")
    assert out.wait(timeout=60) == 1
    err = out.stderr.read()
    assert "unknown cell type 'lfp-9Ah'" in err and "'x' is not a parameter of five-cycles" in err
    assert "campaign.yaml:8: cells[1].type" in err and "campaign.yaml:9: cells[2] (SUL-01)" in err
    assert not (folder / "out").exists()
