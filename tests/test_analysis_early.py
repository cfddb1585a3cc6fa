"""Early prediction of cycle life (Severson et al. 2019) on a seeded synthetic campaign."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from cellrig.analysis.early import (
    FEATURES,
    GRID_POINTS,
    VARIANCE_FEATURES,
    TooFewCyclesError,
    delta_q,
    early_features,
    features_from_columns,
    fit_cycle_life,
    main_rate_cycles,
    run_features,
)
from cellrig.analysis.synthetic import SyntheticCell, severson_like, synthesize, write_campaign, write_run

CELLS = severson_like(24, cycles=101, samples=200, seed=7)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> tuple[pd.DataFrame, np.ndarray]:
    """Features of 24 cells with lives spread over 150–2,300 cycles, and each cell's true (noise-free) life."""
    paths = write_campaign(tmp_path_factory.mktemp("early"), CELLS)
    lives = np.array([c.fade.first_crossing(5000) for c in CELLS], dtype=float)
    return early_features(paths), lives


def test_one_row_of_finite_features_per_run(campaign):
    features, _ = campaign
    assert list(features["cell_id"]) == [c.cell_id for c in CELLS]
    assert np.isfinite(features[list(FEATURES)].to_numpy(float)).all()


def test_delta_q_variance_falls_as_cycle_life_grows(campaign):
    features, lives = campaign
    r = np.corrcoef(features["delta_q_log_variance"], np.log10(lives))[0, 1]
    assert r < -0.9  # Severson's Fig. 2: larger var(ΔQ) → shorter life


def test_cross_validated_error_beats_predicting_the_mean_life(campaign):
    features, lives = campaign
    model = fit_cycle_life(features, lives)
    assert model.cv_rmse < 0.5 * model.baseline_rmse
    assert model.cv_mape < 0.25 * model.baseline_mape
    assert set(model.kept) <= set(FEATURES) and model.kept
    predicted = model.predict(features)
    assert (predicted.index == features.index).all()
    assert np.mean(np.abs(predicted - lives) / lives) < 0.2


def test_variance_model_keeps_its_one_feature(campaign):
    features, lives = campaign
    model = fit_cycle_life(features, pd.Series(lives, index=features.index), columns=VARIANCE_FEATURES)
    assert model.kept == VARIANCE_FEATURES
    assert model.coefficients["delta_q_log_variance"] < 0
    assert model.cv_rmse < model.baseline_rmse


def test_fit_refuses_non_finite_features(campaign):
    features, lives = campaign
    broken = features.copy()
    broken.iloc[0, broken.columns.get_loc("delta_q_log_min")] = np.nan
    with pytest.raises(ValueError, match="finite"):
        fit_cycle_life(broken, lives)


def test_discharge_capacity_and_grid():
    run = synthesize(SyntheticCell(cycles=100, samples=120, seed=3))
    grid, dq, capacity = delta_q(run.streams["cycler"], voltage_range=(3.2, 4.0))
    pulse = run.cell.pulse_rate * run.cell.capacity * run.cell.pulse_s / 3600.0  # pulses are not the discharge
    np.testing.assert_allclose(capacity, run.truth["discharge_capacity"] - pulse, rtol=1e-9)
    assert len(grid) == len(dq) == GRID_POINTS and grid[0] == 4.0 and grid[-1] == 3.2
    assert np.all(np.diff(grid) < 0)
    assert dq.mean() < 0  # the cell lost capacity between cycles 10 and 100


def test_a_run_shorter_than_100_cycles_is_refused_by_name(tmp_path):
    path = tmp_path / "short.h5"
    write_run(path, SyntheticCell(cell_id="SHORT", cycles=60, samples=60))
    with pytest.raises(TooFewCyclesError, match=r"short\.h5: 60 complete cycles, early prediction needs 100"):
        run_features(path)


def test_a_reference_performance_test_among_the_first_100_cycles_changes_no_feature():
    """A C/3 RPT spliced in as cycle 50 is left out and the 1C cycles after it numbered as before."""
    cell = SyntheticCell(cycles=101, samples=200, seed=3)
    ageing = synthesize(cell).streams["cycler"]
    slow = replace(cell, charge_rate=1 / 3, discharge_rate=1 / 3, capacity=1.05 * cell.capacity)  # more at C/3
    rpt = synthesize(slow).streams["cycler"]
    at, inserted = 50, rpt["cycle"] == 50
    before, after = ageing["cycle"] < at, ageing["cycle"] >= at
    start = rpt["time"][np.flatnonzero(inserted)[0] - 1]  # the RPT's rows keep their own intervals
    rpt_time = rpt["time"][inserted] - start + ageing["time"][before][-1]
    spliced = {
        name: np.concatenate([column[before], rpt[name][inserted], column[after]]) for name, column in ageing.items()
    }
    spliced["time"] = np.concatenate(
        [ageing["time"][before], rpt_time, ageing["time"][after] + rpt_time[-1] - rpt_time[0]]
    )
    spliced["cycle"] = np.concatenate([ageing["cycle"][before], rpt["cycle"][inserted], ageing["cycle"][after] + 1])
    assert delta_q(spliced, nominal_capacity=5.0)[2][at - 1] > 1.01 * delta_q(ageing, nominal_capacity=5.0)[2][at - 1]
    kept = main_rate_cycles(spliced, nominal_capacity=5.0)
    np.testing.assert_array_equal(kept["cycle"], ageing["cycle"])
    plain, tested = (
        features_from_columns(ageing, nominal_capacity=5.0),
        features_from_columns(spliced, nominal_capacity=5.0),
    )
    assert plain.keys() == tested.keys()
    np.testing.assert_allclose(list(tested.values()), list(plain.values()), rtol=1e-9)
