"""Life metrics of a cycle-life run: retention (SOH), end of life, knee and knee onset, projected life.

Definitions follow docs/analysis.md §1 and §1.3:

* retention(n) = Qd(n) / Q_ref, with the reference recorded: the nominal capacity, the first
  cycle (PyProBE), the median of the first 40 cycles (BEEP) or a given capacity; only cycles
  at the run's own discharge rate count, so the C/3 capacity of a reference performance test
  between 1C ageing cycles is no point on the 1C fade curve (as the engine's ``until`` counts);
* end of life: the *first crossing* is the first cycle with retention below the threshold
  (80 %); the *robust crossing* the first of ``consecutive`` cycles all below it, so one bad
  cycle does not end a cell's life.  A cell with no robust crossing is *censored*;
* knee: the change point x₁ of a Bacon–Watts fit, y = α₀ + α₁(x − x₁) + α₂(x − x₁)·tanh((x − x₁)/g)
  with g → 0 (two straight lines joined at x₁); knee onset: the first change point of a double
  Bacon–Watts fit (three lines).  Both are fitted to the median-filtered retention up to the
  robust end of life.  A change point counts as a knee only if the fade after it is at least
  ``KNEE_MIN_SLOPE_RATIO`` times as fast as before it and loses at least ``KNEE_MIN_DROP`` of
  retention (a cell still on its straight early fade has no knee yet).  For a given change
  point the model is linear, so each fit is an exact least-squares search over every candidate
  change point (prefix sums, no initial guess to go wrong) refined between neighbouring cycles;
* projection: a censored cell's end of life extrapolated from a straight line fitted to its
  retention since the knee (or over the last quarter of its cycles), with a 1-sigma uncertainty
  from the fit's covariance (delta method).  It assumes the fade goes on at its present rate,
  so a knee still to come makes it optimistic, beyond what the uncertainty says.
"""

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import ndimage, optimize

BEEP_REFERENCE_CYCLES = 40  # BEEP's Q_ref: median of the first 40 cycles (docs/analysis.md §1)
MIN_FIT_POINTS = 10
KNEE_MIN_SLOPE_RATIO = 2.0  # a knee: fade at least twice as fast after the change point as before it
KNEE_MIN_DROP = 0.01  # ... and at least 1 % of retention lost after it, by the fitted line
RATE_TOLERANCE = 0.1  # a fade-curve cycle discharges within 10 % of the run's median mean discharge current


@dataclass(frozen=True)
class LifeMetrics:
    """A cell's life metrics; cycles are cycle numbers (NaN where not found)."""

    reference: str  # how Q_ref was chosen
    reference_capacity: float  # Q_ref, Ah
    threshold: float  # end-of-life retention
    last_cycle: int  # last cycle used
    last_retention: float
    eol_first: float  # first cycle below the threshold
    eol_robust: float  # first of `consecutive` cycles all below it
    censored: bool  # no robust crossing yet
    knee: float  # Bacon–Watts change point
    knee_onset: float  # first change point of the double Bacon–Watts fit
    projected_eol: float  # eol_robust if reached, else extrapolated
    projected_eol_std: float  # 1 sigma of the projection (0 when observed)
    projection: str  # how projected_eol was found
    other_rate_cycles: int  # cycles with a discharge left out for their rate (RPTs, pulse tests)

    def as_dict(self) -> dict:
        return asdict(self)


def measured_cycles(summary: pd.DataFrame) -> pd.Series:
    """Which cycles measured a capacity: complete, with a discharge."""
    valid = summary["discharge_capacity"] > 0
    return valid & summary["complete"].astype(bool) if "complete" in summary else valid


def at_main_rate(summary: pd.DataFrame, by: str | None = None) -> pd.Series:
    """Which cycles measure capacity at the run's own rate: complete, with a discharge, at a mean
    discharge current within ``RATE_TOLERANCE`` of the median of those cycles (per ``by`` group).

    A cycle-life run's ageing cycles, without its reference performance tests (C/3 capacity
    checks between 1C cycles), pulse tests and other cycles at another rate, whose capacities
    are no point on the same fade curve.  Without ``discharge_time`` every valid cycle counts.
    """
    valid = measured_cycles(summary)
    if "discharge_time" not in summary:
        return valid
    current = (summary["discharge_capacity"] / summary["discharge_time"]).where(valid)
    typical = current.groupby(summary[by]).transform("median") if by else current.median()
    return valid & ((current / typical - 1).abs() <= RATE_TOLERANCE)


def retention(
    summary: pd.DataFrame, reference: str | float = "auto", *, reference_cycles: int = BEEP_REFERENCE_CYCLES
) -> pd.Series:
    """Get the retention (SOH) of each cycle :func:`at_main_rate`, indexed by cycle.

    ``reference`` is ``"nominal"`` (the summary's nominal capacity), ``"first"`` (the first
    cycle's discharge capacity), ``"median"`` (median of the first ``reference_cycles``), a
    capacity in Ah, or ``"auto"``: nominal when known, else median.  ``attrs`` records which,
    and how many cycles with a discharge were left out for their rate (``other_rate_cycles``).
    """
    valid = at_main_rate(summary)
    other = int((measured_cycles(summary) & ~valid).sum())
    qd = pd.Series(summary.loc[valid, "discharge_capacity"].to_numpy(), index=summary.loc[valid, "cycle"])
    nominal = summary.attrs.get("nominal_capacity")
    if reference == "auto":
        reference = "nominal" if nominal else "median"
    if isinstance(reference, int | float):
        kind, q_ref = f"given {reference:g} Ah", float(reference)
    elif reference == "nominal":
        if not nominal:
            raise ValueError("reference='nominal' but the summary has no nominal capacity (attrs['nominal_capacity'])")
        kind, q_ref = "nominal", float(nominal)
    elif reference == "first":
        kind, q_ref = "first cycle", float(qd.iloc[0]) if len(qd) else np.nan
    elif reference == "median":
        kind, q_ref = f"median of the first {reference_cycles} cycles", float(qd.iloc[:reference_cycles].median())
    else:
        raise ValueError(f"reference must be 'auto', 'nominal', 'first', 'median' or a capacity, not {reference!r}")
    out = qd / q_ref
    out.name = "retention"
    out.attrs = {"reference": kind, "reference_capacity": q_ref, "other_rate_cycles": other}
    return out


def crossings(soh: pd.Series, threshold: float = 0.8, consecutive: int = 5) -> tuple[float, float]:
    """Get the first cycle below ``threshold`` and the first of ``consecutive`` cycles all below it (NaN if none)."""
    below = soh.to_numpy() < threshold
    cycles = soh.index.to_numpy()
    first = cycles[below.argmax()] if below.any() else np.nan
    if len(below) < consecutive:
        return float(first), np.nan
    runs = np.convolve(below, np.ones(consecutive, dtype=int), mode="valid") == consecutive
    return float(first), float(cycles[runs.argmax()]) if runs.any() else np.nan


def _hinge(x: np.ndarray, c: float) -> np.ndarray:
    return np.maximum(x - c, 0.0)


def _sse(x: np.ndarray, y: np.ndarray, knots: np.ndarray) -> float:
    """Residual sum of squares of the least-squares line with hinges at ``knots``."""
    design = np.column_stack([np.ones_like(x), x, *(_hinge(x, c) for c in knots)])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(np.sum((y - design @ coef) ** 2))


class _SuffixSums:
    """Sums over the points right of each candidate change point x[j] (x sorted ascending)."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        def suffix(a: np.ndarray) -> np.ndarray:  # sum of a[j+1:] for each j
            return np.append(np.cumsum(a[::-1])[::-1][1:], 0.0)

        self.x, self.y = x, y
        self.s0, self.s1, self.s2 = suffix(np.ones_like(x)), suffix(x), suffix(x * x)
        self.sy, self.sxy = suffix(y), suffix(x * y)
        self.n, self.sx, self.sxx = len(x), x.sum(), (x * x).sum()
        self.syy, self.sxy_all, self.sy_all = (y * y).sum(), (x * y).sum(), y.sum()

    def hinge_terms(self, j: np.ndarray) -> tuple[np.ndarray, ...]:
        """Σh, Σh·x, Σh², Σh·y for h = (x − x[j])₊."""
        c, s0, s1, s2 = self.x[j], self.s0[j], self.s1[j], self.s2[j]
        return s1 - c * s0, s2 - c * s1, s2 - 2 * c * s1 + c * c * s0, self.sxy[j] - c * self.sy[j]

    def cross(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Σ (x − x[i])₊ (x − x[j])₊ for x[i] < x[j]."""
        a, b = self.x[i], self.x[j]
        return self.s2[j] - (a + b) * self.s1[j] + a * b * self.s0[j]


def _best(normal: np.ndarray, rhs: np.ndarray, syy: float) -> np.ndarray:
    """Residual sum of squares of each batched least-squares problem given its normal equations."""
    coef = np.linalg.solve(normal, rhs[..., None])[..., 0]
    return syy - np.einsum("...i,...i->...", coef, rhs)


def bacon_watts(cycle: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Fit two lines joined at one change point; get (change point, slope before, slope after)."""
    x, scale = _scaled(cycle)
    s = _SuffixSums(x, y)
    j = np.arange(2, len(x) - 3)
    h, hx, hh, hy = s.hinge_terms(j)
    one = np.ones_like(h)
    normal = np.stack(
        [
            np.stack([s.n * one, s.sx * one, h], -1),
            np.stack([s.sx * one, s.sxx * one, hx], -1),
            np.stack([h, hx, hh], -1),
        ],
        -2,
    )
    rhs = np.stack([s.sy_all * one, s.sxy_all * one, hy], -1)
    k = j[np.argmin(_best(normal, rhs, s.syy))]
    fit = optimize.minimize_scalar(lambda c: _sse(x, y, np.array([c])), bounds=(x[k - 1], x[k + 1]), method="bounded")
    c = float(fit.x)
    design = np.column_stack([np.ones_like(x), x, _hinge(x, c)])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return scale(c), coef[1] / scale.width, (coef[1] + coef[2]) / scale.width


def double_bacon_watts(cycle: np.ndarray, y: np.ndarray, candidates: int = 120) -> tuple[float, float]:
    """Fit three lines joined at two change points; get both (the first is the knee onset)."""
    x, scale = _scaled(cycle)
    s = _SuffixSums(x, y)
    grid = np.unique(np.linspace(2, len(x) - 4, min(candidates, len(x) - 5)).astype(int))
    i, j = (a.ravel() for a in np.meshgrid(grid, grid, indexing="ij"))
    i, j = i[i < j], j[i < j]
    h1, h1x, h1h1, h1y = s.hinge_terms(i)
    h2, h2x, h2h2, h2y = s.hinge_terms(j)
    h12 = s.cross(i, j)
    one = np.ones_like(h1)
    rows = [
        [s.n * one, s.sx * one, h1, h2],
        [s.sx * one, s.sxx * one, h1x, h2x],
        [h1, h1x, h1h1, h12],
        [h2, h2x, h12, h2h2],
    ]
    normal = np.stack([np.stack(r, -1) for r in rows], -2)
    rhs = np.stack([s.sy_all * one, s.sxy_all * one, h1y, h2y], -1)
    k = np.argmin(_best(normal, rhs, s.syy))
    fit = optimize.minimize(lambda c: _sse(x, y, np.sort(c)), np.array([x[i[k]], x[j[k]]]), method="Nelder-Mead")
    first, second = np.sort(np.clip(fit.x, x[0], x[-1]))
    return scale(first), scale(second)


class _Scale:
    """Maps cycles to [0, 1] (for well-conditioned sums) and back."""

    def __init__(self, lo: float, hi: float) -> None:
        self.lo, self.width = lo, max(hi - lo, 1.0)

    def __call__(self, x: float) -> float:
        return float(self.lo + x * self.width)


def _scaled(cycle: np.ndarray) -> tuple[np.ndarray, _Scale]:
    scale = _Scale(float(cycle[0]), float(cycle[-1]))
    return (np.asarray(cycle, dtype=float) - scale.lo) / scale.width, scale


def project_eol(cycle: np.ndarray, soh: np.ndarray, threshold: float = 0.8) -> tuple[float, float]:
    """Extrapolate a straight-line fit of retention to ``threshold``; get (cycle, 1-sigma uncertainty)."""
    x = np.asarray(cycle, dtype=float)
    x0 = x.mean()
    design = np.column_stack([np.ones_like(x), x - x0])
    coef, *_ = np.linalg.lstsq(design, soh, rcond=None)
    a, b = coef
    if b >= 0:
        return np.inf, np.nan
    dof = max(len(x) - 2, 1)
    cov = np.sum((soh - design @ coef) ** 2) / dof * np.linalg.inv(design.T @ design)
    crossing = (threshold - a) / b
    grad = np.array([-1.0 / b, -crossing / b])  # ∂/∂a and ∂/∂b of (threshold − a)/b
    return float(x0 + crossing), float(np.sqrt(grad @ cov @ grad))


def life_metrics(
    summary: pd.DataFrame,
    *,
    threshold: float = 0.8,
    reference: str | float = "auto",
    reference_cycles: int = BEEP_REFERENCE_CYCLES,
    consecutive: int = 5,
    smoothing: int = 5,
) -> LifeMetrics:
    """Retention reference, end of life (first and robust), knee, knee onset and projected life of one cell.

    ``summary`` is a :func:`cellrig.analysis.cycle_summary` table; ``smoothing`` is the window
    (cycles) of the median filter applied before the knee fits.
    """
    soh = retention(summary, reference, reference_cycles=reference_cycles)
    if soh.empty:  # e.g. a live run still in its first cycle: nothing to measure yet
        return _no_cycles(soh, threshold)
    first, robust = crossings(soh, threshold, consecutive)
    censored = bool(np.isnan(robust))
    fitted = soh if censored else soh.loc[:robust]
    cycles = fitted.index.to_numpy(dtype=float)
    smooth = ndimage.median_filter(fitted.to_numpy(), size=smoothing, mode="nearest")
    knee = onset = np.nan
    if len(cycles) >= MIN_FIT_POINTS:
        point, before, after = bacon_watts(cycles, smooth)
        accelerates = -after >= KNEE_MIN_SLOPE_RATIO * abs(before) and -after * (cycles[-1] - point) >= KNEE_MIN_DROP
        knee = point if accelerates else np.nan
        onset = double_bacon_watts(cycles, smooth)[0] if not np.isnan(knee) else np.nan
    if censored:
        projected, std, how = _projection(soh, knee, threshold)
    else:
        projected, std, how = robust, 0.0, "observed"
    return LifeMetrics(
        reference=soh.attrs["reference"],
        reference_capacity=soh.attrs["reference_capacity"],
        threshold=threshold,
        last_cycle=int(soh.index[-1]) if len(soh) else 0,
        last_retention=float(soh.iloc[-1]) if len(soh) else np.nan,
        eol_first=first,
        eol_robust=robust,
        censored=censored,
        knee=knee,
        knee_onset=onset,
        projected_eol=projected,
        projected_eol_std=std,
        projection=how,
        other_rate_cycles=soh.attrs["other_rate_cycles"],
    )


def _no_cycles(soh: pd.Series, threshold: float) -> LifeMetrics:
    """Life metrics of a run without a complete cycle with a discharge: censored, nothing found yet."""
    return LifeMetrics(
        reference=soh.attrs["reference"],
        reference_capacity=soh.attrs["reference_capacity"],
        threshold=threshold,
        last_cycle=0,
        last_retention=np.nan,
        eol_first=np.nan,
        eol_robust=np.nan,
        censored=True,
        knee=np.nan,
        knee_onset=np.nan,
        projected_eol=np.nan,
        projected_eol_std=np.nan,
        projection="no complete cycle yet",
        other_rate_cycles=soh.attrs["other_rate_cycles"],
    )


def _projection(soh: pd.Series, knee: float, threshold: float) -> tuple[float, float, str]:
    """Project a censored cell from the fade since its knee, or over its last quarter."""
    cycles = soh.index.to_numpy(dtype=float)
    since = knee if not np.isnan(knee) and np.sum(cycles > knee) >= MIN_FIT_POINTS else cycles[3 * len(cycles) // 4]
    window = cycles >= since
    if window.sum() < MIN_FIT_POINTS:
        return np.nan, np.nan, "too few cycles to project"
    eol, std = project_eol(cycles[window], soh.to_numpy()[window], threshold)
    return eol, std, f"line fitted to cycles {since:.0f}–{cycles[-1]:.0f}"
