"""Pulse resistance vs SOC, rate capability and specific energy: on synthetic truth and on virtual-lab runs."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cellrig.analysis import cycle_summary, pulse_resistance, rate_capability, specific_energy
from cellrig.analysis.parallel import analyse_campaign
from cellrig.analysis.report import render_report, report_data
from cellrig.analysis.synthetic import SyntheticCell, write_run
from cellrig.protocols.cells import CELL_TYPES
from cellrig.sim.cell import NMC811
from cellrig.storage import open_campaign

CELLRIG = Path(sys.executable).with_name("cellrig")
RATES = {"rate1": "C/5", "rate2": "C/3", "rate3": "C/2", "rate4": "1C"}


@pytest.fixture(scope="module")
def lab_runs(tmp_path_factory) -> Path:
    """An HPPC run and a rate-capability run of a virtual NMC811 5 Ah cell, made by `cellrig run`."""
    folder = tmp_path_factory.mktemp("characterisation")
    for args in (["hppc"], ["rate-capability", *(f"--set={k}={v}" for k, v in RATES.items()), "--set=rest=5 min"]):
        done = subprocess.run([str(CELLRIG), "run", *args, "--out", str(folder)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    return folder


def run_of(folder: Path, protocol: str) -> Path:
    (path,) = folder.glob(f"*_{protocol}_*.h5")
    return path


def test_a_pulse_after_the_full_charge_is_at_full_soc_with_the_true_resistance(tmp_path):
    synthetic = write_run(tmp_path / "s.h5", SyntheticCell(cycles=12, samples=200, seed=4))
    pulses = pulse_resistance(tmp_path / "s.h5")
    assert pulses["direction"].tolist() == ["discharge"] * 12 and pulses["cycle"].tolist() == list(range(1, 13))
    np.testing.assert_allclose(pulses["soc"], 1.0, atol=1e-12)  # nothing passed between the CV end and the pulse
    np.testing.assert_allclose(pulses["resistance"], synthetic.truth["dc_internal_resistance"], atol=3e-4)
    assert pulses.attrs["units"]["resistance"] == "ohm"


def test_hppc_pulses_step_down_in_tenths_of_the_measured_capacity_with_the_cells_resistance(lab_runs):
    pulses = pulse_resistance(run_of(lab_runs, "hppc"))
    discharge = pulses[pulses["direction"] == "discharge"]
    regen = pulses[pulses["direction"] == "charge"]
    assert len(discharge) == len(regen) == 9  # the library's 9 pulse sets
    soc = discharge["soc"].to_numpy()
    assert soc[0] == pytest.approx(1.0)
    steps = -np.diff(soc)  # C/3 for 18 min (10 % of nominal) plus the pulses' net charge, over the measured capacity
    assert np.ptp(steps[1:]) < 1e-3 and 0.1 <= steps.mean() <= 0.11
    assert steps[0] > steps[1]  # at full charge the regen pulse is held at v_max: less charge goes back in
    assert (regen["soc"].to_numpy() < soc).all()  # the regen pulse follows the discharge pulse
    r0 = NMC811.r0_ohm_ah / 5.0
    r1 = NMC811.r1_ohm_ah / 5.0
    assert ((0.8 * r0 < pulses["resistance"]) & (pulses["resistance"] < 1.2 * (r0 + r1))).all()
    assert (pulses["ocv"].diff().iloc[1:].to_numpy() < 0).all()  # each rest voltage lower, SOC by SOC


def test_rate_capability_reads_each_discharges_rate_and_capacity(lab_runs):
    summary = cycle_summary(run_of(lab_runs, "rate-capability"))
    rates = rate_capability(summary)
    np.testing.assert_allclose(rates["c_rate"], [1 / 5, 1 / 3, 1 / 2, 1.0], rtol=0.02)
    assert rates["relative_capacity"].iloc[0] == 1.0
    assert (np.diff(rates["discharge_capacity"]) < 0).all()  # less capacity at each higher rate
    assert (np.diff(rates["mean_discharge_voltage"]) < 0).all()  # and a lower mean voltage (I·R)
    cell = CELL_TYPES["nmc811-5Ah"]
    assert summary.attrs["cell_mass_g"] == cell.mass_g
    expected = summary["discharge_energy"].iloc[0] / (cell.mass_g / 1000)
    assert specific_energy(summary) == pytest.approx(expected) and 200 < expected < 300  # an NMC811 cell


def test_the_report_draws_hppc_and_rate_runs_apart_from_cycle_life(lab_runs, tmp_path):
    life = tmp_path / "campaign"
    life.mkdir()
    for path in lab_runs.glob("*.h5"):
        (life / path.name).symlink_to(path)
    write_run(life / "life.h5", SyntheticCell(cell_id="L-1", cycles=40, samples=200, seed=2))
    analysis = analyse_campaign(open_campaign(life), scheduler="synchronous")
    energy = analysis.life["specific_energy"]
    assert energy.notna().sum() == 2 and np.isnan(energy[str(life / "life.h5")])  # synthetic cells have no mass
    page = render_report(analysis, "characterisation", 3.0)
    assert 'alt="pulse resistance vs state of charge"' in page and 'alt="rate capability"' in page
    (drawn,) = report_data(analysis, 3.0).rates.values()  # from the campaign's summaries, no second reading
    pd.testing.assert_frame_equal(drawn, rate_capability(cycle_summary(run_of(lab_runs, "rate-capability"))))
    table = page.split("<h2>Life metrics</h2>", 1)[1].split("</table>", 1)[0]
    cells = re.findall(r"<tr><td>([^<]*)</td>", table)
    assert cells == ["L-1"] and "<th>Wh/kg</th>" in table  # the characterisation runs are not cycle-life cells
