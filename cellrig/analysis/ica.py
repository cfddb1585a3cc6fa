"""Incremental capacity (dQ/dV) and differential voltage (dV/dQ) of every cycle, with peak tracking.

Method (cellpy's interpolate-then-filter pipeline, docs/analysis.md §1.2): per cycle take
the longest CC step in the chosen direction; pair each row's voltage with the capacity passed
since the step began, at the middle of the row's interval; interpolate capacity onto a uniform
voltage grid (``voltage_step``), difference, then smooth with a Gaussian whose FWHM is
``fwhm`` volts.  dV/dQ is the same on a uniform capacity grid.  Values are magnitudes (Ah/V,
V/Ah) for charge and discharge alike.  Peaks move with smoothing, so the method and every
parameter are stored in the result's ``attrs``.  All cycles are interpolated in one call: each
cycle's curve is shifted onto its own stretch of one long monotonic axis.
"""

import os
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import xarray as xr
from scipy import ndimage, signal

from ..storage import Run, open_run
from .steps import CC, DEFAULT_DETECTION, StepDetection, find_steps, read_stream

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


@dataclass(frozen=True)
class ICAOptions:
    """One recipe for dQ/dV and dV/dQ (as cellpy's ``IcaOptions``), recorded with every result."""

    direction: Literal["charge", "discharge"] = "discharge"
    voltage_step: float = 0.002  # V between grid points
    fwhm: float = 0.010  # V: Gaussian post-filter of dQ/dV (cellpy's default voltage_fwhm)
    capacity_points: int = 500  # grid points over the largest capacity, for dV/dQ
    capacity_fwhm: float = 0.01  # Gaussian post-filter of dV/dQ, as a fraction of the largest capacity

    def __post_init__(self) -> None:
        if self.direction not in ("charge", "discharge"):
            raise ValueError(f"direction must be 'charge' or 'discharge', not {self.direction!r}")
        if not (self.voltage_step > 0 and self.fwhm >= 0 and self.capacity_points >= 10 and self.capacity_fwhm >= 0):
            raise ValueError(f"ICA steps and widths must be positive: {self}")


DEFAULT_ICA = ICAOptions()


@dataclass
class _Curves:
    """The chosen CC step of each cycle as (capacity, voltage) points, concatenated."""

    cycle: np.ndarray  # one per curve
    segment: np.ndarray  # curve number of each point
    capacity: np.ndarray  # Ah passed since the step began, at the middle of each row's interval
    voltage: np.ndarray
    bounds: np.ndarray  # first point of each curve, and the total


def _curves(run: Run | str | os.PathLike, options: ICAOptions, detection: StepDetection) -> _Curves:
    run = run if isinstance(run, Run) else open_run(run)
    columns = read_stream(run)
    s = find_steps(columns, detection, run.meta.get("cell", {}).get("nominal_capacity_Ah"))
    want = 1 if options.direction == "charge" else -1
    chosen = np.flatnonzero((s.kind == CC) & (s.sign == want))
    order = np.lexsort((-s.duration[chosen], s.cycle[chosen]))  # by cycle, longest first
    chosen = chosen[order]
    chosen = chosen[np.r_[True, s.cycle[chosen][1:] != s.cycle[chosen][:-1]]]  # the longest of each cycle
    lengths = s.end[chosen] - s.start[chosen] + 1
    bounds = np.concatenate(([0], np.cumsum(lengths)))
    segment = np.repeat(np.arange(len(chosen)), lengths)
    rows = np.arange(bounds[-1]) - bounds[segment] + s.start[chosen][segment]
    t, i = columns["time"], columns["current"]
    charge = np.abs(i[rows]) * (t[rows] - t[np.maximum(rows - 1, 0)]) / 3600.0
    passed = np.cumsum(charge)
    capacity = passed - passed[bounds[:-1]][segment] + charge[bounds[:-1]][segment] - charge / 2
    return _Curves(s.cycle[chosen], segment, capacity, columns["voltage"][rows], bounds)


def _interp_all(curves: _Curves, x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """y(x) of every curve on ``grid`` (cycles × grid), NaN outside each curve's x range.

    Each curve's x is moved onto its own stretch of one axis (offset by curve number × span),
    made non-decreasing, and all curves are interpolated by one ``np.interp``.
    """
    span = 2.0 * (np.abs(x).max() + np.abs(grid).max()) + 1.0
    shifted = np.maximum.accumulate(x + curves.segment * span)
    offsets = (np.arange(len(curves.cycle)) * span)[:, None]
    out = np.interp(grid[None, :] + offsets, shifted, y)
    lo, hi = shifted[curves.bounds[:-1]][:, None], shifted[curves.bounds[1:] - 1][:, None]
    inside = (grid[None, :] + offsets >= lo) & (grid[None, :] + offsets <= hi)
    return np.where(inside, out, np.nan)


def _smooth(values: np.ndarray, sigma_points: float) -> np.ndarray:
    """Gaussian filter along each row that ignores NaN (normalised convolution)."""
    if sigma_points <= 0:
        return values
    known = np.isfinite(values)
    total = ndimage.gaussian_filter1d(np.where(known, values, 0.0), sigma_points, axis=1, mode="constant")
    weight = ndimage.gaussian_filter1d(known.astype(float), sigma_points, axis=1, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(known, total / weight, np.nan)


def _derivative(curves: _Curves, x: np.ndarray, y: np.ndarray, grid: np.ndarray, sigma: float) -> np.ndarray:
    on_grid = _interp_all(curves, x, y, grid)
    return _smooth(np.abs(np.diff(on_grid, axis=1)) / np.diff(grid), sigma)


def dqdv(
    run: Run | str | os.PathLike, options: ICAOptions = DEFAULT_ICA, detection: StepDetection = DEFAULT_DETECTION
) -> xr.DataArray:
    """Get |dQ/dV| (Ah/V) of every cycle's CC step on a uniform voltage grid, as (cycle, voltage)."""
    curves = _curves(run, options, detection)
    sign = 1.0 if options.direction == "charge" else -1.0  # x must rise along the step
    lo, hi = curves.voltage.min(), curves.voltage.max()
    grid = np.arange(np.floor(lo / options.voltage_step), np.ceil(hi / options.voltage_step) + 1) * options.voltage_step
    axis = grid if sign > 0 else -grid[::-1]
    values = _derivative(
        curves, sign * curves.voltage, curves.capacity, axis, options.fwhm / FWHM_PER_SIGMA / options.voltage_step
    )
    centres = (axis[1:] + axis[:-1]) / 2 * sign
    if sign < 0:
        values, centres = values[:, ::-1], centres[::-1]
    return xr.DataArray(
        values,
        coords={"cycle": curves.cycle, "voltage": ("voltage", centres, {"units": "V"})},
        dims=("cycle", "voltage"),
        name="dqdv",
        attrs={"units": "Ah/V", "method": "interpolate Q(V) on a uniform grid, difference, Gaussian filter"}
        | asdict(options),
    )


def dvdq(
    run: Run | str | os.PathLike, options: ICAOptions = DEFAULT_ICA, detection: StepDetection = DEFAULT_DETECTION
) -> xr.DataArray:
    """Get |dV/dQ| (V/Ah) of every cycle's CC step on a uniform capacity grid, as (cycle, capacity)."""
    curves = _curves(run, options, detection)
    top = curves.capacity.max()
    grid = np.linspace(0.0, top, options.capacity_points + 1)
    sigma = options.capacity_fwhm * top / FWHM_PER_SIGMA / (grid[1] - grid[0])
    values = _derivative(curves, curves.capacity, curves.voltage, grid, sigma)
    return xr.DataArray(
        values,
        coords={"cycle": curves.cycle, "capacity": ("capacity", (grid[1:] + grid[:-1]) / 2, {"units": "Ah"})},
        dims=("cycle", "capacity"),
        name="dvdq",
        attrs={"units": "V/Ah", "method": "interpolate V(Q) on a uniform grid, difference, Gaussian filter"}
        | asdict(options),
    )


def track_peaks(
    curve: xr.DataArray, near: list[float] | None = None, *, window: float = 0.05, prominence: float = 0.05
) -> xr.Dataset:
    """Follow dQ/dV (or dV/dQ) peaks across cycles: position and height of each, as (cycle, peak).

    ``near`` gives the peaks to follow (positions on the curve's axis); by default, the peaks
    of the first cycle with a prominence of at least ``prominence`` × its highest value.  In each
    cycle a peak is the highest point within ``window`` of its reference position, refined by a
    parabola through its neighbours.
    """
    axis_name = curve.dims[1]
    x = curve[axis_name].to_numpy()
    values = curve.to_numpy()
    if near is None:
        first = np.nan_to_num(values[0])
        found, _ = signal.find_peaks(first, prominence=prominence * first.max())
        near = x[found].tolist()
    position = np.full((len(values), len(near)), np.nan)
    height = np.full_like(position, np.nan)
    for k, centre in enumerate(near):  # a handful of peaks; every cycle at once
        masked = np.where(np.abs(x - centre) <= window, values, -np.inf)
        masked = np.where(np.isnan(masked), -np.inf, masked)
        best = masked.argmax(axis=1)
        found = np.isfinite(masked[np.arange(len(values)), best])
        position[:, k], height[:, k] = _parabola(x, masked, best)
        position[~found, k] = height[~found, k] = np.nan
    return xr.Dataset(
        {
            "position": (("cycle", "peak"), position, {"units": curve[axis_name].attrs.get("units", "")}),
            "height": (("cycle", "peak"), height, {"units": curve.attrs.get("units", "")}),
        },
        coords={"cycle": curve["cycle"].to_numpy(), "peak": np.arange(len(near)), "reference": ("peak", near)},
        attrs=dict(curve.attrs) | {"window": window, "prominence": prominence},
    )


def _parabola(x: np.ndarray, values: np.ndarray, best: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertex of the parabola through each row's maximum and its two neighbours (the maximum at an edge)."""
    rows = np.arange(len(values))
    inner = np.clip(best, 1, len(x) - 2)
    y0, y1, y2 = values[rows, inner - 1], values[rows, inner], values[rows, inner + 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        denominator = y0 - 2 * y1 + y2
        shift = np.where(np.isfinite(denominator) & (denominator < 0), 0.5 * (y0 - y2) / denominator, 0.0)
    shift = np.where(inner != best, 0.0, shift)
    with np.errstate(invalid="ignore"):
        height = np.where(shift == 0, values[rows, best], y1 - 0.25 * (y0 - y2) * shift)
    return x[best] + shift * (x[1] - x[0]), height
