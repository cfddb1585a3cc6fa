"""Life metrics (retention, end of life, knee, knee onset, projection) against synthetic fade curves."""

import math

import numpy as np
import pandas as pd
import pytest

from cellrig.analysis import cycle_summary
from cellrig.analysis.life import (
    at_main_rate,
    bacon_watts,
    crossings,
    double_bacon_watts,
    life_metrics,
    retention,
)
from cellrig.analysis.parallel import analyse_campaign
from cellrig.analysis.synthetic import COLUMNS, FadeCurve, SyntheticCell, severson_like, synthesize, write_run
from cellrig.storage import RunWriter


def summary_of(cell: SyntheticCell) -> tuple[pd.DataFrame, SyntheticCell]:
    """The truth table stands in for a summary (test_analysis_cycles shows they agree to 1e-9)."""
    truth = synthesize(cell).truth
    summary = truth[["cycle", "discharge_capacity"]].assign(complete=True)
    summary.attrs["nominal_capacity"] = cell.capacity
    return summary, cell


def within(found: float, true: float, fraction: float = 0.02) -> bool:
    return abs(found - true) <= fraction * true


def test_single_knee_and_end_of_life_are_found_within_2_percent():
    summary, cell = summary_of(SyntheticCell(cycles=1000, samples=60, fade=FadeCurve(knee=600, eol=900), seed=1))
    m = life_metrics(summary)
    true_eol = cell.fade.first_crossing(cell.cycles)
    assert within(m.eol_first, true_eol) and within(m.eol_robust, true_eol)
    assert within(m.knee, 600)
    assert not m.censored and m.projection == "observed" and m.projected_eol == m.eol_robust
    assert m.reference == "nominal" and m.reference_capacity == cell.capacity


def test_knee_onset_is_the_first_change_point_of_the_double_fit():
    fade = FadeCurve(onset=500, knee=650, eol=900)
    summary, _ = summary_of(SyntheticCell(cycles=1000, samples=60, fade=fade, seed=2))
    m = life_metrics(summary)
    assert within(m.knee_onset, 500)
    assert 500 < m.knee < 650  # a single Bacon–Watts line pair puts its change point between the two bends


@pytest.mark.parametrize("cell", severson_like(6, samples=60, seed=3), ids=lambda c: c.cell_id)
def test_severson_like_cells(cell):
    summary, _ = summary_of(cell)
    m = life_metrics(summary)
    true_eol = cell.fade.first_crossing(cell.cycles)
    if true_eol is None:
        assert m.censored and math.isnan(m.eol_robust) and m.last_cycle == cell.cycles
    else:
        assert within(m.eol_robust, true_eol)
        assert within(m.knee_onset, cell.fade.onset)


def test_one_bad_cycle_moves_the_first_crossing_but_not_the_robust_one():
    cell = SyntheticCell(cycles=1000, samples=60, fade=FadeCurve(knee=600, eol=900), outliers=((200, 0.7),))
    summary, _ = summary_of(cell)
    m = life_metrics(summary)
    assert m.eol_first == 200
    assert within(m.eol_robust, cell.fade.first_crossing(cell.cycles))
    assert within(m.knee, 600)  # the median filter keeps the dip out of the knee fit


def test_a_censored_cell_is_projected_with_its_uncertainty():
    fade = FadeCurve(knee=500, eol=900)
    summary, _ = summary_of(SyntheticCell(cycles=700, samples=60, fade=fade, seed=4))
    m = life_metrics(summary)
    assert m.censored and math.isnan(m.eol_first) and math.isnan(m.eol_robust)
    assert within(m.knee, 500)
    assert within(m.projected_eol, 900) and 0 < m.projected_eol_std < 10
    assert abs(m.projected_eol - 900) < 5 * m.projected_eol_std + 2
    assert m.projection.startswith("line fitted to cycles 50")


def test_a_cell_still_on_its_early_fade_has_no_knee():
    fade = FadeCurve(knee=1500, eol=2000)
    summary, _ = summary_of(SyntheticCell(cycles=800, samples=60, fade=fade, seed=5))
    m = life_metrics(summary)
    assert math.isnan(m.knee) and math.isnan(m.knee_onset) and m.censored
    assert m.projected_eol > 1500  # the straight early fade is all there is to extrapolate


@pytest.mark.parametrize(
    ("reference", "kind", "capacity"),
    [
        ("nominal", "nominal", 5.0),
        ("first", "first cycle", 4.9),
        ("median", "median of the first 3 cycles", 4.8),
        (4.0, "given 4 Ah", 4.0),
    ],
)
def test_retention_records_its_reference(reference, kind, capacity):
    summary = pd.DataFrame({"cycle": [1, 2, 3, 4], "discharge_capacity": [4.9, 4.8, 4.7, 0.0]})
    summary.attrs["nominal_capacity"] = 5.0
    soh = retention(summary, reference, reference_cycles=3)
    assert soh.attrs == {"reference": kind, "reference_capacity": capacity, "other_rate_cycles": 0}
    assert soh.index.tolist() == [1, 2, 3]  # a cycle without discharge is no capacity measurement
    np.testing.assert_allclose(soh.to_numpy(), np.array([4.9, 4.8, 4.7]) / capacity)


def test_auto_reference_without_nominal_is_the_beep_median_and_bad_references_are_refused():
    summary = pd.DataFrame({"cycle": np.arange(1, 51), "discharge_capacity": np.linspace(1.1, 1.0, 50)})
    assert retention(summary).attrs["reference"] == "median of the first 40 cycles"
    with pytest.raises(ValueError, match="no nominal capacity"):
        retention(summary, "nominal")
    with pytest.raises(ValueError, match="reference must be"):
        retention(summary, "last")


def test_reference_performance_tests_at_another_rate_are_no_point_on_the_fade_curve():
    """A C/3 RPT every 50 1C cycles (its capacity 5 % higher) changes no life metric; it is counted."""
    cell = SyntheticCell(cycles=600, samples=60, fade=FadeCurve(knee=300, eol=450), seed=3)
    ageing = synthesize(cell).truth[["cycle", "discharge_capacity", "discharge_time"]]
    ageing.attrs["nominal_capacity"] = cell.capacity
    with_rpt = ageing.copy()
    rpt = with_rpt["cycle"] % 50 == 0
    with_rpt.loc[rpt, "discharge_capacity"] *= 1.05  # the same charge at a third of the current: 3 × as long
    with_rpt.loc[rpt, "discharge_time"] = 3 * with_rpt.loc[rpt, "discharge_time"] * 1.05
    plain, tested = life_metrics(ageing[~rpt]), life_metrics(with_rpt)
    assert tested.other_rate_cycles == rpt.sum() == 12 and plain.other_rate_cycles == 0
    assert tested.as_dict() | {"other_rate_cycles": 0} == plain.as_dict()
    assert retention(with_rpt).index.tolist() == retention(ageing[~rpt]).index.tolist()
    assert at_main_rate(with_rpt).sum() == len(ageing) - 12


def test_the_main_rate_is_each_runs_own_in_a_campaign_table():
    """A 1C run with a C/3 RPT and a run cycled at C/3 throughout: the RPT is left out, the C/3 run kept."""
    fast = pd.DataFrame(
        {"cycle": [1, 2, 3, 4], "discharge_capacity": 5.0, "discharge_time": [3600.0, 3600, 10800, 3600]}
    )
    slow = pd.DataFrame({"cycle": [1, 2, 3], "discharge_capacity": 5.0, "discharge_time": 10800.0})
    table = pd.concat([fast.assign(run_id="fast"), slow.assign(run_id="slow")], ignore_index=True)
    assert at_main_rate(table, by="run_id").tolist() == [True, True, False, True, True, True, True]
    assert at_main_rate(table).tolist() == [False, False, True, False, True, True, True]  # as one run: C/3 wins


def test_crossings_need_consecutive_cycles():
    soh = pd.Series([1.0, 0.79, 0.85, 0.79, 0.78, 0.77], index=[10, 11, 12, 13, 14, 15])
    assert crossings(soh, 0.8, consecutive=3) == (11.0, 13.0)
    first, robust = crossings(soh, 0.8, consecutive=4)
    assert first == 11.0 and math.isnan(robust)


def test_bacon_watts_fits_recover_exact_change_points():
    x = np.arange(1.0, 401.0)
    two = 1 - 1e-4 * x - 2e-3 * np.maximum(x - 250.5, 0)
    point, before, after = bacon_watts(x, two)
    assert point == pytest.approx(250.5, abs=0.05)
    assert before == pytest.approx(-1e-4, rel=1e-3) and after == pytest.approx(-2.1e-3, rel=1e-3)
    three = two - 5e-4 * np.maximum(x - 120.25, 0)
    assert double_bacon_watts(x, three) == pytest.approx((120.25, 250.5), abs=0.05)


def test_life_from_a_written_run_file(tmp_path):
    cell = SyntheticCell(cycles=300, samples=60, fade=FadeCurve(knee=150, eol=250), seed=6)
    write_run(tmp_path / "cell.h5", cell)
    m = life_metrics(cycle_summary(tmp_path / "cell.h5"))
    assert within(m.eol_robust, cell.fade.first_crossing(cell.cycles)) and within(m.knee, 150)


@pytest.mark.parametrize("reference", ["auto", "first", "median"])
def test_a_live_run_whose_only_cycle_is_incomplete_has_no_life_metrics_yet(tmp_path, reference):
    """Regression: life_metrics raised IndexError on a run still in its first cycle."""
    cell = SyntheticCell(cycles=2, samples=60, seed=8)
    synthetic = synthesize(cell)
    columns = {"cycler": dict(COLUMNS["cycler"], temperature=COLUMNS["temperature"])}
    with RunWriter.create(tmp_path / "live.h5", columns, synthetic.meta, cycle_stream="cycler") as w:
        w.append("cycler", **{k: v[: cell.samples // 2] for k, v in synthetic.streams["cycler"].items()})
        w.flush()
        summary = cycle_summary(tmp_path / "live.h5")
        assert summary["complete"].tolist() == [False]
        m = life_metrics(summary, reference=reference)
        result = analyse_campaign(tmp_path, scheduler="synchronous")
    assert m.censored and m.last_cycle == 0 and m.projection == "no complete cycle yet"
    assert all(math.isnan(getattr(m, f)) for f in ("eol_first", "eol_robust", "knee", "projected_eol"))
    assert result.errors.empty and result.life["projection"].tolist() == ["no complete cycle yet"]
