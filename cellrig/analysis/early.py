"""Early prediction of cycle life from the first 100 cycles (Severson et al., Nature Energy 4, 383, 2019).

Following Severson et al. (Nature Energy 4, 383–391, 2019) and BEEP's ``DeltaQFastCharge`` featurizer
(TRI-AMDD/beep, ``beep/features/core.py``):

* Q_n(V), the charge discharged in cycle n as a function of voltage, is interpolated on a
  uniform grid of 1,000 points; ΔQ₁₀₀₋₁₀(V) = Q₁₀₀(V) − Q₁₀(V).  The grid spans the voltages
  both discharges cover (or a given range, e.g. Severson's 3.5–2.0 V for LFP), so ΔQ has no NaN
  at the grid edges (where BEEP's ``DeltaQFastCharge`` gets a NaN skewness);
* ΔQ features: log₁₀|·| of its minimum, variance, skewness and (excess) kurtosis — the
  "variance" model uses log₁₀|var(ΔQ)| alone;
* discharge-capacity features: capacity of cycle 2, max − cycle 2 over the first 100 cycles, and
  slope and intercept of a straight line fitted to capacity vs cycle over cycles 2–100 and 91–100;
* an elastic net predicts log₁₀(cycle life); its error is cross-validated (RMSE in cycles and
  mean absolute percentage error, Severson's "% error": 9.1 % from the first 100 cycles in their
  abstract, docs/analysis.md §2.1).

A cycle's discharge is its discharge rows outside pulses (CC and CV).
"""

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dask
import numpy as np
import pandas as pd
from scipy import stats
from sklearn.linear_model import ElasticNetCV
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from ..storage import Run, open_run
from .life import at_main_rate, measured_cycles
from .steps import DEFAULT_DETECTION, PULSE, StepDetection, find_steps, read_stream

INITIAL_CYCLE, FINAL_CYCLE, MID_CYCLE = 10, 100, 91  # BEEP DeltaQFastCharge's init/final/mid_pred_cycle
GRID_POINTS = 1000  # Severson et al. 2019's Qdlin grid (1,000 points, 3.5–2.0 V)

VARIANCE_FEATURES = ("delta_q_log_variance",)
DELTA_Q_FEATURES = ("delta_q_log_min", "delta_q_log_variance", "delta_q_log_skewness", "delta_q_log_kurtosis")
CAPACITY_FEATURES = (
    "discharge_capacity_cycle_2",
    "max_discharge_capacity_difference",
    "fade_slope_2_100",
    "fade_intercept_2_100",
    "fade_slope_91_100",
    "fade_intercept_91_100",
)
FEATURES = DELTA_Q_FEATURES + CAPACITY_FEATURES
L1_RATIOS = (0.1, 0.5, 0.7, 0.9, 0.95, 1.0)


class TooFewCyclesError(ValueError):
    """A run lacks the complete cycles early prediction needs."""


def window(final: int = FINAL_CYCLE) -> tuple[int, int]:
    """(initial, mid) cycles for features ending at ``final``: Severson's 10 and 91 for 100, scaled for
    shorter windows (a campaign whose cells die young, e.g. an accelerated virtual one)."""
    if final == FINAL_CYCLE:
        return INITIAL_CYCLE, MID_CYCLE
    if final < 20:
        raise ValueError(f"an early-prediction window needs at least 20 cycles, not {final}")
    return max(3, round(final / 10)), final - 9


def delta_q(
    columns: dict[str, np.ndarray],
    detection: StepDetection = DEFAULT_DETECTION,
    voltage_range: tuple[float, float] | None = None,
    nominal_capacity: float | None = None,
    final: int = FINAL_CYCLE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Get (voltage grid, ΔQ₁₀₀₋₁₀ on it, discharge capacity of cycles 1..100) from cycler columns (sorted by cycle).

    ``voltage_range`` is (low, high) in V; by default the voltages both discharges cover.  Q(V)
    is the charge discharged by the middle of each row's interval, paired with the row's voltage.
    Raises :class:`TooFewCyclesError` (naming the cycle) if cycle 2, 10 or 91–100 has no discharge.
    """
    initial, mid = window(final)
    end = np.searchsorted(columns["cycle"], final, side="right")
    columns = {name: column[:end] for name, column in columns.items()}
    cycle, dq, discharging = _discharged(columns, detection, nominal_capacity)
    capacity = np.bincount(cycle, weights=dq, minlength=final + 1)[1:]
    first = np.flatnonzero(np.diff(cycle, prepend=cycle[0] - 1))  # first row of each cycle
    total = np.cumsum(dq)
    q = total - np.repeat(total[first] - dq[first], np.diff(np.append(first, len(cycle)))) - dq / 2
    needed = np.r_[2, initial, mid : final + 1]
    if (missing := needed[capacity[needed - 1] <= 0]).size:
        raise TooFewCyclesError(f"cycle {missing[0]} has no discharge")
    v = columns["voltage"]
    curves = [(v[m], q[m]) for m in (discharging & (cycle == n) for n in (initial, final))]
    lo, hi = voltage_range or (max(c[0].min() for c in curves), min(c[0].max() for c in curves))
    grid = np.linspace(hi, lo, GRID_POINTS)  # from the top of the discharge down, like Qdlin
    q_10, q_100 = (_on_grid(volts, charge, grid) for volts, charge in curves)
    return grid, q_100 - q_10, capacity


def main_rate_cycles(
    columns: dict[str, np.ndarray], detection: StepDetection = DEFAULT_DETECTION, nominal_capacity: float | None = None
) -> dict[str, np.ndarray]:
    """The rows of the cycles at the run's own discharge rate, cycles numbered 1, 2, … again.

    A cycle with a discharge is left out if :func:`at_main_rate` leaves it out of the fade curve;
    cycles without a discharge stay.  The columns come back unchanged if none is left out.
    """
    cycle, dq, discharging = _discharged(columns, detection, nominal_capacity)
    time = columns["time"]
    dt = np.where(discharging, np.diff(time, prepend=time[0]), 0.0)
    per_cycle = pd.DataFrame({"discharge_capacity": np.bincount(cycle, weights=dq)})
    per_cycle["discharge_time"] = np.bincount(cycle, weights=dt)
    keep = (at_main_rate(per_cycle) | ~measured_cycles(per_cycle)).to_numpy()
    present = np.bincount(cycle, minlength=len(keep)) > 0
    if keep[present].all():
        return columns
    kept = keep & present
    rows, number = kept[cycle], np.cumsum(kept)  # the kept cycles numbered 1, 2, … in order
    return {name: col[rows] for name, col in columns.items()} | {"cycle": number[cycle[rows]].astype(cycle.dtype)}


def _discharged(
    columns: dict[str, np.ndarray], detection: StepDetection, nominal_capacity: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Get each row's cycle, the charge it discharged (Ah) and whether it is a discharge row (not a pulse)."""
    steps = find_steps(columns, detection, nominal_capacity)
    discharging = np.repeat((steps.sign < 0) & (steps.kind != PULSE), steps.end - steps.start + 1)
    time = columns["time"]
    dq = np.where(discharging, -columns["current"] * np.diff(time, prepend=time[0]) / 3600.0, 0.0)
    return columns["cycle"], dq, discharging


def _on_grid(voltage: np.ndarray, charge: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Q(V) interpolated at the grid voltages (rows sorted by voltage, so noise cannot fold the curve)."""
    order = np.argsort(voltage, kind="stable")
    return np.interp(grid, voltage[order], charge[order])


def features_from_columns(
    columns: dict[str, np.ndarray],
    detection: StepDetection = DEFAULT_DETECTION,
    voltage_range: tuple[float, float] | None = None,
    nominal_capacity: float | None = None,
    final: int = FINAL_CYCLE,
) -> dict[str, float]:
    """Get the early-life features (``FEATURES``) of a cycler stream's first ``final`` (100) cycles.

    Cycle n is the n-th cycle at the run's own discharge rate: reference performance tests and
    other cycles at another rate are left out first (see :func:`at_main_rate`).
    """
    columns = main_rate_cycles(columns, detection, nominal_capacity)
    if (counted := int(columns["cycle"].max(initial=0))) < final:
        raise TooFewCyclesError(f"{counted} cycles at the run's own discharge rate, early prediction needs {final}")
    _, dq, capacity = delta_q(columns, detection, voltage_range, nominal_capacity, final)
    cycles = np.arange(1, final + 1)
    mid = window(final)[1]
    slope_all, intercept_all = np.polyfit(cycles[1:], capacity[1:], 1)
    slope_end, intercept_end = np.polyfit(cycles[mid - 1 :], capacity[mid - 1 :], 1)
    with np.errstate(divide="ignore"):
        log_abs = np.log10(np.abs([dq.min(), dq.var(), stats.skew(dq), stats.kurtosis(dq)]))
    return dict(zip(DELTA_Q_FEATURES, log_abs, strict=True)) | {
        "discharge_capacity_cycle_2": capacity[1],
        "max_discharge_capacity_difference": capacity.max() - capacity[1],
        "fade_slope_2_100": slope_all,
        "fade_intercept_2_100": intercept_all,
        "fade_slope_91_100": slope_end,
        "fade_intercept_91_100": intercept_end,
    }


def run_features(
    run: Run | str | os.PathLike,
    detection: StepDetection = DEFAULT_DETECTION,
    voltage_range: tuple[float, float] | None = None,
    final: int = FINAL_CYCLE,
) -> dict[str, float | str]:
    """Get one run's early-life features, with its ``run`` path and ``cell_id``.

    Raises :class:`TooFewCyclesError` naming the run if it has fewer than 100 complete cycles.
    """
    run = run if isinstance(run, Run) else open_run(run)
    columns = read_stream(run)
    cycle = columns["cycle"]
    complete = int(cycle.max(initial=0)) - (run.status in ("running", "interrupted"))
    try:
        if complete < final:
            raise TooFewCyclesError(f"{max(complete, 0)} complete cycles, early prediction needs {final}")
        nominal = run.meta.get("cell", {}).get("nominal_capacity_Ah")
        features = features_from_columns(columns, detection, voltage_range, nominal, final)
    except TooFewCyclesError as exc:
        raise TooFewCyclesError(f"run {run.path}: {exc}") from None
    return {"run": str(run.path), "cell_id": run.meta.get("cell", {}).get("id")} | features


def early_features(
    runs: Iterable[Run | str | os.PathLike],
    *,
    detection: StepDetection = DEFAULT_DETECTION,
    voltage_range: tuple[float, float] | None = None,
    scheduler: str = "threads",
) -> pd.DataFrame:
    """Get one row of early-life features per run (indexed by run path), one dask task per run."""
    tasks = [dask.delayed(run_features)(r, detection, voltage_range) for r in runs]
    rows = dask.compute(*tasks, scheduler=scheduler)
    return pd.DataFrame(list(rows), columns=["run", "cell_id", *FEATURES]).set_index("run")


@dataclass(frozen=True)
class CycleLifeModel:
    """An elastic net on standardised features predicting log₁₀(cycle life), with its cross-validated errors.

    ``cv_rmse`` (cycles) and ``cv_mape`` (%) come from k-fold predictions of models fitted
    without the held-out cells (alpha and l1 ratio chosen again inside each fold);
    ``baseline_rmse`` and ``baseline_mape`` are the same for predicting the training folds' mean life.
    """

    columns: tuple[str, ...]
    pipeline: Pipeline  # StandardScaler → ElasticNetCV
    cv_rmse: float
    cv_mape: float
    baseline_rmse: float
    baseline_mape: float
    cv_predicted: tuple[float, ...] = ()  # each cell's prediction by the model fitted without its fold

    @property
    def coefficients(self) -> pd.Series:
        """Get the coefficient of each standardised feature (log₁₀ cycles per standard deviation)."""
        return pd.Series(self.pipeline[-1].coef_, index=list(self.columns))

    @property
    def kept(self) -> tuple[str, ...]:
        """Get the features the elastic net kept (non-zero coefficients)."""
        return tuple(c for c, w in self.coefficients.items() if w != 0)

    def predict(self, features: pd.DataFrame) -> pd.Series:
        """Get the predicted cycle life of each row of ``features``."""
        life = 10 ** self.pipeline.predict(features[list(self.columns)].to_numpy(float))
        return pd.Series(life, index=features.index, name="predicted_cycle_life")


def fit_cycle_life(
    features: pd.DataFrame,
    cycle_lives: Sequence[float] | pd.Series,
    *,
    columns: Sequence[str] = FEATURES,
    folds: int = 5,
    seed: int = 0,
) -> CycleLifeModel:
    """Fit an elastic net of log₁₀(cycle life) on ``columns`` and cross-validate it over ``folds`` folds.

    ``cycle_lives`` is aligned with the rows of ``features`` (by index if a Series).
    """
    lives = cycle_lives.reindex(features.index) if isinstance(cycle_lives, pd.Series) else cycle_lives
    x, y = features[list(columns)].to_numpy(float), np.asarray(lives, dtype=float)
    if len(y) != len(x) or not np.isfinite(x).all() or not (y > 0).all():
        raise ValueError("need finite features and a positive cycle life for every row")
    predicted, baseline = np.empty_like(y), np.empty_like(y)
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(x):
        predicted[test] = 10 ** _fit(x[train], y[train], folds, seed).predict(x[test])
        baseline[test] = y[train].mean()
    model = _fit(x, y, folds, seed)
    return CycleLifeModel(
        tuple(columns), model, *_errors(predicted, y), *_errors(baseline, y), tuple(float(p) for p in predicted)
    )


def _fit(x: np.ndarray, y: np.ndarray, folds: int, seed: int) -> Pipeline:
    inner = KFold(min(folds, len(y) // 2), shuffle=True, random_state=seed)
    net = ElasticNetCV(l1_ratio=list(L1_RATIOS), cv=inner, max_iter=100_000)
    return make_pipeline(StandardScaler(), net).fit(x, np.log10(y))


def _errors(predicted: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    """RMSE (cycles) and mean absolute percentage error (%)."""
    return float(np.sqrt(np.mean((predicted - true) ** 2))), float(100 * np.mean(np.abs(predicted - true) / true))
