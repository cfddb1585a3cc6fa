"""Step table and per-cycle summary against the ground truth of synthetic runs."""

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from cellrig import open_run
from cellrig.analysis import (
    BDF_NAMES,
    SUMMARY_COLUMNS,
    StepDetection,
    cycle_summary,
    step_table,
    to_bdf,
)
from cellrig.analysis import cycles as cycles_module
from cellrig.analysis.cycles import BDF_TERMS, summarise
from cellrig.analysis.steps import find_steps, read_stream, rest_threshold
from cellrig.analysis.synthetic import COLUMNS, SyntheticCell, synthesize, write_run
from cellrig.storage import NotARunFileError, RunFile, RunWriter, run_file

CELL = SyntheticCell(cycles=40, samples=200, fade=replace(SyntheticCell().fade, knee=30, eol=45), seed=7)

# column -> (relative tolerance, absolute tolerance) against the synthetic truth
TOLERANCES = {
    "charge_capacity": (1e-3, 0),
    "discharge_capacity": (1e-3, 0),
    "cc_charge_capacity": (1e-3, 0),
    "cv_charge_capacity": (1e-3, 0),
    "coulombic_efficiency": (1e-6, 0),
    "charge_energy": (1e-3, 0),
    "discharge_energy": (1e-3, 0),
    "energy_efficiency": (1e-3, 0),
    "mean_charge_voltage": (0, 1e-3),
    "mean_discharge_voltage": (0, 1e-3),
    "end_charge_voltage": (0, 1e-3),
    "end_discharge_voltage": (0, 1e-3),
    "cc_charge_time": (1e-6, 0),
    "cv_charge_time": (1e-6, 0),
    "charge_time": (1e-6, 0),
    "discharge_time": (1e-6, 0),
    "rest_time": (1e-6, 0),
    "duration": (1e-9, 0),
    "start_time": (0, 1e-6),
    "dc_internal_resistance": (0, 3e-4),  # 5 sigma of the 0.2 mV voltage noise over a 5 A pulse
    "temperature_min": (0, 1e-12),
    "temperature_mean": (0, 1e-12),
    "temperature_max": (0, 1e-12),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same cell written three ways: temperature in the cycler stream, in a DAQ stream, nowhere."""
    folder = tmp_path_factory.mktemp("cycles")
    return {
        where: (folder / f"{where}.h5", write_run(folder / f"{where}.h5", replace(CELL, temperature=where)))
        for where in ("cycler", "daq", "none")
    }


@pytest.mark.parametrize("where", ["cycler", "daq"])
def test_every_summary_column_matches_the_ground_truth(runs, where):
    path, synthetic = runs[where]
    summary = cycle_summary(path)
    truth = synthetic.truth
    assert summary["cycle"].tolist() == list(range(1, CELL.cycles + 1))
    for column, (rel, abs_) in TOLERANCES.items():
        np.testing.assert_allclose(summary[column], truth[column], rtol=rel, atol=abs_, err_msg=column)
    assert summary.attrs["temperature_source"] == f"streams/{where}/temperature"


def test_derived_columns_follow_from_the_others(runs):
    path, synthetic = runs["cycler"]
    s = cycle_summary(path)
    q = synthetic.truth["charge_capacity"] + synthetic.truth["discharge_capacity"]
    np.testing.assert_allclose(s["charge_throughput"], q.cumsum(), rtol=1e-9)
    np.testing.assert_allclose(s["equivalent_full_cycles"], q.cumsum() / (2 * CELL.capacity), rtol=1e-9)
    np.testing.assert_allclose(s["cv_share"], s["cv_charge_capacity"] / s["charge_capacity"])
    np.testing.assert_allclose(s["voltage_efficiency"], s["mean_discharge_voltage"] / s["mean_charge_voltage"])
    assert (s["max_voltage"] >= CELL.ocv.v_max - 1e-3).all()
    assert (s["min_voltage"] <= synthetic.truth["end_discharge_voltage"] + 1e-3).all()
    assert s["complete"].all()


def test_columns_units_and_recorded_choices(runs):
    s = cycle_summary(runs["cycler"][0])
    assert list(s.columns) == list(SUMMARY_COLUMNS)
    assert s.attrs["units"]["discharge_capacity"] == "Ah" and s.attrs["units"]["dc_internal_resistance"] == "ohm"
    assert s.attrs["nominal_capacity"] == CELL.capacity and s.attrs["cell_id"] == CELL.cell_id
    assert s.attrs["step_detection"]["cc_tolerance"] == StepDetection().cc_tolerance


def test_without_temperature_the_columns_are_left_out(runs):
    path, _ = runs["none"]
    assert "temperature_mean" not in cycle_summary(path)
    assert "temperature_mean" not in cycle_summary(runs["cycler"][0], temperature=None)


def test_step_table_types_and_totals(runs):
    path, synthetic = runs["cycler"]
    steps = step_table(path)
    first = steps[steps["cycle"] == 1]
    assert first["type"].tolist() == ["CC", "CV", "rest", "pulse", "rest", "CC", "rest"]
    assert first["direction"].tolist() == ["charge", "charge", "rest", "discharge", "rest", "discharge", "rest"]
    assert first["step"].tolist() == [1, 1, 2, 2, 2, 3, 4]
    pulses = steps[steps["type"] == "pulse"]
    assert len(pulses) == CELL.cycles
    np.testing.assert_allclose(pulses["duration"], CELL.pulse_s)
    np.testing.assert_allclose(pulses["mean_current"], -CELL.pulse_rate * CELL.capacity)
    np.testing.assert_allclose(pulses["resistance"], synthetic.truth["dc_internal_resistance"], atol=3e-4)
    per_cycle = steps[steps["direction"] == "discharge"].groupby("cycle")["capacity"].sum()
    np.testing.assert_allclose(per_cycle, synthetic.truth["discharge_capacity"], rtol=1e-9)
    assert (steps["end_time"].to_numpy()[:-1] == steps["start_time"].to_numpy()[1:]).all()  # steps tile time
    assert steps["rows"].sum() == open_run(path).rows("cycler")


def test_cv_detection_follows_its_thresholds(runs):
    path, synthetic = runs["cycler"]
    strict = cycle_summary(path, detection=StepDetection(cv_voltage_tolerance=1e-6))
    assert (strict["cv_charge_capacity"] < 0.25 * synthetic.truth["cv_charge_capacity"]).all()  # 0.2 mV noise
    loose = cycle_summary(path, detection=StepDetection(cc_tolerance=0.5))
    assert (loose["cv_charge_time"] < synthetic.truth["cv_charge_time"]).all()  # CV starts once I fell by half


def test_a_bad_threshold_is_refused():
    with pytest.raises(ValueError, match="rest_current must be positive"):
        StepDetection(rest_current=0)


def test_bdf_names_cover_the_summary_and_mark_real_terms(runs):
    s = cycle_summary(runs["cycler"][0])
    bdf = to_bdf(s)
    assert set(BDF_NAMES) == set(SUMMARY_COLUMNS)
    assert "Cycle Discharging Capacity / Ah" in bdf and "Cycle Count / 1" in bdf
    assert bdf["Cycle Discharging Capacity / Ah"].equals(s["discharge_capacity"])
    assert set(bdf.attrs["bdf_terms"]) <= BDF_TERMS and "Cycle Count / 1" in bdf.attrs["bdf_terms"]
    assert bdf.attrs["units"]["Cycle Charging Energy / Wh"] == "Wh"


def test_live_run_marks_its_last_cycle_incomplete(tmp_path):
    synthetic = synthesize(replace(CELL, cycles=4))
    columns = {"cycler": dict(COLUMNS["cycler"], temperature=COLUMNS["temperature"])}
    rows = 2 * CELL.samples + CELL.samples // 2  # two and a half cycles
    path = tmp_path / "live.h5"
    with RunWriter.create(path, columns, synthetic.meta, cycle_stream="cycler") as w:
        w.append("cycler", **{k: v[:rows] for k, v in synthetic.streams["cycler"].items()})
        w.flush()
        live = cycle_summary(path)
        assert live["complete"].tolist() == [True, True, False]
        np.testing.assert_allclose(live["discharge_capacity"][:2], synthetic.truth["discharge_capacity"][:2])
    assert cycle_summary(path)["complete"].all()


def test_an_empty_run_gives_an_empty_table_with_every_column(tmp_path):
    path = tmp_path / "empty.h5"
    RunWriter.create(path, {"cycler": COLUMNS["cycler"]}, cycle_stream="cycler").close()
    s = cycle_summary(path)
    assert s.empty and "discharge_capacity" in s and "temperature_mean" not in s
    assert step_table(path).empty


def test_summary_of_a_real_engine_log_shape():
    """Rows as the engine writes them: a first row at t = 0, steps 1-4, no pulse, no temperature."""
    t = np.arange(0.0, 41.0) * 60
    current = np.r_[np.zeros(1), np.full(10, 2.0), np.zeros(10), np.full(10, -2.0), np.zeros(10)]
    columns = {
        "time": t,
        "voltage": np.full(41, 3.7),
        "current": current,
        "step": np.r_[1, np.repeat([1, 2, 3, 4], 10)].astype(np.int32),
        "cycle": np.ones(41, dtype=np.int32),
    }
    s = summarise(find_steps(columns), None, 1.0)
    assert s.loc[0, "charge_capacity"] == pytest.approx(2 * 600 / 3600)
    assert s.loc[0, "discharge_capacity"] == pytest.approx(2 * 600 / 3600)
    assert np.isnan(s.loc[0, "dc_internal_resistance"])
    assert s.loc[0, "duration"] == 2400.0 and s.loc[0, "rest_time"] == 1200.0


@pytest.mark.parametrize("where", ["cycler", "daq", "none"])
@pytest.mark.parametrize("block_rows", [1, 150, 1000])
def test_blocks_of_whole_cycles_give_the_same_summary_as_one_pass(runs, monkeypatch, where, block_rows):
    path = runs[where][0]
    monkeypatch.setattr(cycles_module, "BLOCK_ROWS", 10**9)
    whole = cycle_summary(path)
    monkeypatch.setattr(cycles_module, "BLOCK_ROWS", block_rows)  # 1: a block per cycle
    with run_file(path) as f:
        blocks = cycles_module._blocks(f, "cycler", 5.0)
    assert len(blocks) == CELL.cycles if block_rows == 1 else len(blocks) > 1
    pd.testing.assert_frame_equal(cycle_summary(path), whole, check_exact=True)


def test_a_cycle_index_out_of_step_with_the_rows_is_not_trusted(runs, monkeypatch):
    path = runs["cycler"][0]
    whole = cycle_summary(path)
    with run_file(path) as f:
        mid_cycle = f.cycle_starts()[1:] + 7  # as a crash-trimmed index pointing into rows written again might
    monkeypatch.setattr(cycles_module, "BLOCK_ROWS", 1)
    monkeypatch.setattr(RunFile, "cycle_starts", lambda self: mid_cycle)
    pd.testing.assert_frame_equal(cycle_summary(path), whole, check_exact=True)


def test_the_package_loads_scipy_and_dask_only_when_their_functions_are_asked_for():
    code = (
        "import sys, cellrig.analysis as a\n"
        "before = {'dask', 'scipy'} & set(sys.modules)\n"
        "names = [a.life_metrics.__module__, a.dqdv.__module__, a.analyse_campaign.__module__]\n"
        "print(sorted(before), names, {'dask', 'scipy'} <= set(sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[] ['cellrig.analysis.life', 'cellrig.analysis.ica', 'cellrig.analysis.parallel'] True"


def test_a_cv_tail_decaying_to_microamps_is_part_of_the_charge_not_rest(tmp_path):
    """The CV ends at 5 µA on a 5 Ah cell: half its rows are below the 5 mA (10⁻³ C) rest threshold."""
    cell = SyntheticCell(cycles=3, samples=400, end_current_rate=1e-6, seed=3)
    synthetic = write_run(tmp_path / "tail.h5", cell)
    cv_current = synthetic.streams["cycler"]["current"][1:][synthetic.streams["cycler"]["step"][1:] == 1]
    assert (np.abs(cv_current) < 5e-3).sum() >= 3 * 20  # the tails really go below the threshold
    summary = cycle_summary(tmp_path / "tail.h5")
    assert summary.attrs["rest_threshold_A"] == pytest.approx(1e-3 * cell.capacity)
    truth = synthetic.truth
    for column in ("cv_charge_time", "charge_time", "rest_time", "duration"):
        np.testing.assert_allclose(summary[column], truth[column], rtol=1e-9, err_msg=column)
    for column in ("charge_capacity", "cv_charge_capacity", "coulombic_efficiency"):
        np.testing.assert_allclose(summary[column], truth[column], rtol=1e-3, err_msg=column)
    types = step_table(tmp_path / "tail.h5").query("cycle == 1")["type"].tolist()
    assert types == ["CC", "CV", "rest", "pulse", "rest", "CC", "rest"]


def test_the_rest_threshold_is_relative_to_the_cell():
    current = np.array([0.0, 50.0, -2.0])  # a 50 A spike on a 2 Ah cell
    assert rest_threshold(current, StepDetection(), nominal_capacity=2.0) == pytest.approx(2e-3)
    assert rest_threshold(current, StepDetection()) == pytest.approx(0.05)  # unknown capacity: of the largest |I|
    assert rest_threshold(current, StepDetection(rest_current=1e-4), nominal_capacity=2.0) == pytest.approx(2e-4)


def test_the_direct_reader_matches_the_xarray_stream_and_summaries_share_no_buffers(runs, tmp_path):
    path = runs["daq"][0]
    run = open_run(path)
    for stream in run.streams:
        ds = run.stream(stream)
        columns = read_stream(path, stream)
        assert list(columns) == ["time", *ds.data_vars]
        for name, values in columns.items():
            np.testing.assert_array_equal(values, ds[name].values)
            assert values.dtype == ds[name].dtype
    first = cycle_summary(runs["cycler"][0])
    kept = first.copy()
    cycle_summary(runs["daq"][0])  # reads into the same reused buffers
    pd.testing.assert_frame_equal(first, kept)
    (tmp_path / "notes.h5").write_text("not a run")
    with pytest.raises(NotARunFileError, match="not an HDF5 file"):
        cycle_summary(tmp_path / "notes.h5")
