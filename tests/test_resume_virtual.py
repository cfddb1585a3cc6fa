"""kill -9 of a run on the embedded virtual lab (no lab file) at random moments, each followed by ``cellrig resume``.

The resumed run rebuilds the virtual lab from the options its file records and puts its cell
back as the last checkpoint left it; it must end as an uninterrupted run does: finished, the
same steps completed in the same order, the same cycles.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from waiting import wait_for

from cellrig import open_run
from cellrig.storage import RunFileError

PROTOCOL = """
name: short
sample_interval: 10 s
steps:
  - set: 25 °C
  - repeat:
      times: 2
      steps:
        - cc: {current: 1C, until_voltage: $v_max, max_time: 5 min}
        - rest: 2 min
        - cc: {current: -1C, until_voltage: $v_min, max_time: 5 min}
        - rest: 2 min
"""
KILLS = 5  # per run
SPEED = "500"  # a lab clock a busy 2-core machine follows (resumes keep the recorded speed)


def _cellrig(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cellrig", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "300"},
    )


def _progress(folder) -> tuple[int, int]:
    """(cycler rows, resumes) the run file holds so far."""
    files = list(folder.glob("*.h5"))
    try:
        run = open_run(files[0])
        return run.rows("cycler"), int((run.events["kind"] == "resume").sum())
    except (IndexError, RunFileError, KeyError, OSError):  # not there yet, or being created
        return 0, 0


def _outline(path) -> tuple[list[str], int]:
    """The steps completed, in order (labels), and the last cycle, as the run file says."""
    run = open_run(path)
    ends = run.events[run.events["kind"] == "step_end"]["message"]
    cycles = run.stream("cycler")["cycle"].to_numpy()
    assert run.status == "finished", (run.status, run.end_reason)
    return [m.split(":")[0] for m in ends], int(np.max(cycles))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uninterrupted")
    (folder / "short.yaml").write_text(PROTOCOL)
    run = _cellrig("run", str(folder / "short.yaml"), "--out", str(folder / "runs"), "--speed", SPEED)
    assert run.wait(timeout=300) == 0, run.stdout.read().decode()
    return _outline(next((folder / "runs").glob("*.h5")))


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_9_at_random_moments_then_resume_ends_as_an_uninterrupted_run(tmp_path, seed, uninterrupted):
    rng = random.Random(seed)
    (tmp_path / "short.yaml").write_text(PROTOCOL)
    out = tmp_path / "runs"
    thresholds = sorted(rng.sample(range(3, 160), KILLS))  # of the run's ~170 cycler rows
    proc = _cellrig("run", str(tmp_path / "short.yaml"), "--out", str(out), "--speed", SPEED)
    kills = 0
    for rows in thresholds:

        def due(proc: subprocess.Popen = proc, rows: int = rows, kills: int = kills) -> bool:
            done, resumed = _progress(out)  # a live engine (resumed, if a resume), this far into the run
            return proc.poll() is not None or (done >= rows and resumed == kills)

        wait_for(due, f"{rows} rows", timeout=300)
        if proc.poll() is not None:
            break  # it finished first
        time.sleep(rng.uniform(0.0, 0.3))  # the moment itself: seeded, somewhere between two flushes
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
        kills += 1
        path = next(out.glob("*.h5"))
        assert open_run(path).status == "interrupted"
        proc = _cellrig("resume", str(path))
    assert proc.wait(timeout=300) == 0, proc.stdout.read().decode()
    path = next(out.glob("*.h5"))
    run = open_run(path)
    assert kills >= 3 and (run.events["kind"] == "resume").sum() == kills
    assert _outline(path) == uninterrupted
    restored = run.events[run.events["kind"] == "virtual_cell"]["message"]
    assert all(json.loads(m)["capacity_ah"] == 5.0 for m in restored)
    assert list(out.iterdir()) == [path]  # one file, no sidecar left behind


DEMO_PHASE = str(Path(__file__).with_name("_demo_phase.py"))


def test_a_demo_phase_killed_9_goes_on_with_resume_and_each_cell_ends_as_planned(tmp_path):
    """The served virtual lab is rebuilt by the resumed demo; each run's cell comes back through its control line."""
    (tmp_path / "short.yaml").write_text(PROTOCOL)
    out = tmp_path / "demo"
    child = subprocess.Popen([sys.executable, DEMO_PHASE, str(out), str(tmp_path / "short.yaml"), "start"])

    def halfway() -> bool:
        try:
            runs = [open_run(p) for p in (out / "life").glob("*.h5")]
            return len(runs) == 2 and all((r.events["kind"] == "virtual_cell").sum() >= 4 for r in runs)
        except (RunFileError, KeyError, OSError):
            return False

    wait_for(lambda: child.poll() is not None or halfway(), "both runs half way", timeout=300)
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=60) == -signal.SIGKILL
    resumed = subprocess.run([sys.executable, DEMO_PHASE, str(out), str(tmp_path / "short.yaml"), "resume"])
    assert resumed.returncode == 0
    paths = sorted((out / "life").glob("*.h5"))
    assert len(paths) == 2 and not (out / "life-again").exists()
    for path in paths:
        steps, cycles = _outline(path)
        assert steps == ["set"] + ["repeat/cc", "repeat/rest"] * 4 and cycles == 2
        assert (open_run(path).events["kind"] == "resume").sum() == 1
