"""The examples run as written."""

import subprocess
import sys
from pathlib import Path

from cellrig import Lab

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_the_real_lab_file_is_valid():
    lab = Lab.from_file(EXAMPLES / "lab-real.toml")
    assert set(lab.roles) == {"cycler", "chamber", "daq", "rig"}
    assert lab.instruments == {}  # checked, nothing opened


def test_the_bench_script_drives_the_virtual_lab():
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "bench_script.py")], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    values = dict(line.split() for line in out.stdout.splitlines())
    assert abs(float(values["chamber_air_degC"]) - 45.0) < 0.5
    assert abs(float(values["cell_degC"]) - 45.0) < 1.0  # the cell soaked in the chamber's air
    assert 2.0 < float(values["discharged_Ah"]) < 3.0  # half of a 5 Ah cell
