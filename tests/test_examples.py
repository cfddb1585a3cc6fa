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


def test_the_virtual_lab_file_names_every_role_of_the_virtual_lab():
    from cellrig.sim.lab import ROLES

    lab = Lab.from_file(EXAMPLES / "lab-virtual.toml")
    assert list(lab.roles) == list(ROLES)  # the order `cellrig sim --port` serves them in
    for name, role in ROLES.items():
        assert lab.roles[name].driver == role.driver and lab.roles[name].limits == role.limits
    ports = [int(spec.resource.split("::")[2]) for spec in lab.roles.values()]
    assert ports == list(range(15025, 15025 + len(ROLES)))


def test_the_campaign_example_runs_and_the_notebook_plots_it_live(tmp_path, monkeypatch):
    import json
    import os

    import matplotlib

    from cellrig.sim.process import served_lab

    matplotlib.use("Agg")
    with served_lab(tmp_path / "lab.toml", speed=4000, dt=2, ageing=100) as lab_file:
        out = subprocess.run(
            [
                str(Path(sys.executable).with_name("cellrig")),
                "campaign",
                str(EXAMPLES / "campaign.yaml"),
                "--lab",
                str(lab_file),
                "--out",
                str(tmp_path / "runs"),
                "--set",
                "max_cycles=3",
                "--set",
                "rpt_every=2",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "COLUMNS": "200"},
        )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("finished") == 6

    monkeypatch.setenv("CELLRIG_CAMPAIGN", str(tmp_path / "runs"))
    notebook = json.loads((EXAMPLES / "live_campaign.ipynb").read_text())
    namespace: dict = {}
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), "live_campaign.ipynb", "exec"), namespace)
    assert namespace["fade_cells"] == ["LFP-03", "LFP-06", "NMC-01", "NMC-05", "SUL-04", "SUL-08"]
    assert all(len(table) >= 3 for table in namespace["fade"].values())
