"""SIGKILL a writer at random moments: the file must open with every flushed row, and resume."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cellrig.storage import RunWriter, open_run

CHILD = Path(__file__).with_name("_crash_writer.py")


def write_until_killed(path: Path, seed: int, mode: str) -> int:
    """Run the child writer, SIGKILL it after a seeded number of flushes; return rows it had flushed."""
    flushes_before_kill = int(np.random.default_rng(seed).integers(1, 40))
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(path), str(seed), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    flushed = 0
    try:
        for _ in range(flushes_before_kill):
            line = child.stdout.readline()
            if not line:
                raise AssertionError(f"writer exited early: {child.stderr.read()}")
            flushed = int(line.split()[1])
    finally:
        os.kill(child.pid, signal.SIGKILL)  # the child is writing at full speed: a random moment
        child.wait()
    assert child.returncode == -signal.SIGKILL
    return flushed


def check_intact(path: Path, flushed: int) -> int:
    run = open_run(path)
    assert run.status == "interrupted"
    ds = run["cycler"]
    n = ds.sizes["time"]
    assert n >= flushed, f"lost flushed rows: file has {n}, {flushed} were flushed"
    i = np.arange(n)
    np.testing.assert_array_equal(ds["time"].values, i.astype(float))
    np.testing.assert_array_equal(ds["voltage"].values, 3 + i / 1e6)
    np.testing.assert_array_equal(ds["cycle"].values, 1 + i // 997)
    idx = run.cycle_index
    assert idx["cycle"].tolist() == list(range(1, 1 + len(idx)))
    assert idx["first_row"].tolist() == [997 * k for k in range(len(idx))]
    assert idx["first_row"].iloc[-1] < n
    return n


@pytest.mark.parametrize("seed", range(12))
def test_sigkill_keeps_every_flushed_row_and_resumes(tmp_path, seed):
    path = tmp_path / "run.h5"
    flushed = write_until_killed(path, seed, "create")
    rows = check_intact(path, flushed)

    # a second life: resumed by a new process, killed again
    flushed = write_until_killed(path, seed + 1000, "resume")
    assert flushed >= rows
    rows = check_intact(path, flushed)

    # a third life in this process finishes the run cleanly
    w = RunWriter.resume(path)
    assert w.rows("cycler") == rows
    i = np.arange(rows, rows + 10)
    w.append(
        "cycler", time=i.astype(float), voltage=3 + i / 1e6, current=np.zeros(10), cycle=(1 + i // 997).astype("i4")
    )
    w.close()
    run = open_run(path)
    assert run.status == "finished"
    assert run.rows("cycler") == rows + 10
    assert run.events["kind"].tolist().count("resume") == 2
