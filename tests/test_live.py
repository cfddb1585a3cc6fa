"""A reader in another process sees a run grow while its writer is still writing."""

import subprocess
import sys
from pathlib import Path

import numpy as np

from cellrig.storage import Column, RunWriter

READER = Path(__file__).with_name("_live_reader.py")


def test_reader_process_sees_rows_grow_during_the_run(tmp_path):
    path = tmp_path / "live.h5"
    w = RunWriter.create(path, {"cycler": {"voltage": Column("V")}}, flush_interval=60)  # only explicit flushes
    reader = subprocess.Popen(
        [sys.executable, str(READER), str(path), "500"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    seen = []
    try:
        for batch in range(5):
            i = np.arange(batch * 100, (batch + 1) * 100, dtype=float)
            w.append("cycler", time=i, voltage=3.0 + i / 1000)
            w.flush()
            line = reader.stdout.readline()  # the reader answers once it has seen the new rows
            assert line, reader.stderr.read()
            seen.append(line.split())
    finally:
        w.close()
        reader.wait(timeout=30)
    assert reader.returncode == 0, reader.stderr.read()
    assert seen == [[str(n), "running", "True"] for n in (100, 200, 300, 400, 500)]
