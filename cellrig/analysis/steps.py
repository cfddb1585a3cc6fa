"""The step table: a cycler stream split into CC, CV, rest and pulse steps in one vectorised pass.

A row is *rest* when its current is within the rest threshold of zero, otherwise *charge*
(current > 0) or *discharge*.  The threshold is relative to the cell: ``rest_current`` × its
nominal capacity (a C-rate: 10⁻³ C is 5 mA for a 5 Ah cell), or, when the nominal capacity is
unknown, ``rest_current`` × the stream's largest |current|.  A row below the threshold still
continues a CV hold, not a rest, when it carries current of the same sign as the last
current-carrying row of its protocol step, at a voltage within ``cv_voltage_tolerance`` of that
row's: a CV tail decaying to µA stays part of the charge it ends.  Rows of one cycle, one protocol step
number and one direction form a *phase*.  Inside a phase a row is *CV* when its |current| has
fallen more than ``cc_tolerance`` below the phase's largest |current| while its voltage is
within ``cv_voltage_tolerance`` of the phase's extreme voltage (the highest on charge, the lowest
on discharge); other current-carrying rows are *CC*.  A CC step no longer than
``pulse_max_duration`` that follows a rest is a *pulse*.  Consecutive rows of the same phase and
kind form one step.  CV detection thresholds differ between tools (BEEP finds 967.6 s where a
step-based rule finds 1,001 s on the same cycle, reference/analysis.md §1), so the thresholds
used are recorded with every result.

Each row holds the mean current and voltage over the interval since the previous row (what
cyclers log), so a row contributes ``current × Δt`` of charge and ``current × voltage × Δt`` of
energy, and a step starts at the time of the row before its first row.

A pulse's resistance is |ΔV/ΔI| between the last row before the pulse and the pulse's last row
(DCIR as in the FreedomCAR HPPC manual, reference/analysis.md §1.1).
"""

import itertools
import os
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..storage import Run
from ._read import run_file

STEP_TYPES = ("rest", "CC", "CV", "pulse")
REST, CC, CV, PULSE = range(len(STEP_TYPES))
DIRECTIONS = ("discharge", "rest", "charge")  # indexed by sign + 1

STEP_UNITS = {
    "cycle": "",
    "step": "",
    "type": "",
    "direction": "",
    "start_row": "",
    "rows": "",
    "start_time": "s",
    "end_time": "s",
    "duration": "s",
    "capacity": "Ah",
    "energy": "Wh",
    "mean_voltage": "V",
    "end_voltage": "V",
    "min_voltage": "V",
    "max_voltage": "V",
    "mean_current": "A",
    "end_current": "A",
    "resistance": "ohm",
}


@dataclass(frozen=True)
class StepDetection:
    """Thresholds that split a cycler stream into steps; recorded with every table made with them.

    ``rest_current`` is a C-rate (× the nominal capacity in Ah gives the rest threshold in A), or a
    fraction of the stream's largest |current| when the nominal capacity is unknown.
    """

    rest_current: float = 1e-3
    cc_tolerance: float = 0.005
    cv_voltage_tolerance: float = 0.005
    pulse_max_duration: float = 30.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not value > 0:
                raise ValueError(f"StepDetection.{name} must be positive, not {value}")


DEFAULT_DETECTION = StepDetection()


@dataclass
class Steps:
    """The step table as arrays (one element per step), plus the stream's row arrays it came from."""

    start: np.ndarray  # first row
    end: np.ndarray  # last row
    cycle: np.ndarray
    step: np.ndarray
    kind: np.ndarray  # index into STEP_TYPES
    sign: np.ndarray  # +1 charge, 0 rest, −1 discharge
    start_time: np.ndarray
    end_time: np.ndarray
    capacity: np.ndarray  # Ah, ≥ 0
    energy: np.ndarray  # Wh, ≥ 0
    min_voltage: np.ndarray
    max_voltage: np.ndarray
    resistance: np.ndarray  # Ω, pulses only
    rows: Mapping[str, np.ndarray]

    @property
    def duration(self) -> np.ndarray:
        return self.end_time - self.start_time

    @property
    def mean_voltage(self) -> np.ndarray:
        """Time-weighted mean voltage of each step (the first row's voltage for a step of no duration)."""
        t, v = self.rows["time"], self.rows["voltage"]
        vdt = v * np.diff(t, prepend=t[0])
        duration = self.duration
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(duration > 0, np.add.reduceat(vdt, self.start) / duration, v[self.start])


def read_stream(run: Run | str | os.PathLike, stream: str | None = None) -> dict[str, np.ndarray]:
    """A stream's columns as numpy arrays (the cycle stream by default), read straight from the file."""
    with run_file(run) as f:
        return f.read(stream or f.cycle_stream)


BLOCK_ROWS = 1 << 17  # rows per block: the temporaries of a block stay in the CPU cache


class _Scratch:
    """Per-thread work arrays for :func:`_block`, reused from block to block and call to call.

    Fresh block-sized temporaries are above glibc's mmap threshold, so each would be mapped,
    page-faulted in and unmapped again: that alone doubled the time of :func:`find_steps`.
    """

    def __init__(self) -> None:
        self.size = -1

    def get(self, rows: int) -> "_Scratch":
        if rows > self.size:
            self.size = max(rows, BLOCK_ROWS)
            n = self.size
            self.f1, self.f2, self.f3 = np.empty(n), np.empty(n), np.empty(n)
            self.b1, self.b2, self.b3 = np.empty(n, bool), np.empty(n, bool), np.empty(n, bool)
            self.i8 = np.empty(n, np.int8)
        return self


_scratch = threading.local()


def _work(rows: int) -> _Scratch:
    scratch = getattr(_scratch, "arrays", None)
    if scratch is None:
        scratch = _scratch.arrays = _Scratch()
    return scratch.get(rows)


def rest_threshold(current: np.ndarray, detection: StepDetection, nominal_capacity: float | None = None) -> float:
    """The |current| (A) at or below which a row is rest: relative to the nominal capacity (Ah) if known."""
    if nominal_capacity:
        return detection.rest_current * float(nominal_capacity)
    return detection.rest_current * float(max(current.max(), -current.min())) if len(current) else 0.0


def find_steps(
    columns: Mapping[str, np.ndarray],
    detection: StepDetection = DEFAULT_DETECTION,
    nominal_capacity: float | None = None,
) -> Steps:
    """Split cycler rows (``time``, ``voltage``, ``current``, ``step``, ``cycle``) into steps.

    ``nominal_capacity`` (Ah) sets the rest threshold (see :func:`rest_threshold`).  Steps never
    cross a cycle boundary, so the rows are processed in blocks of whole cycles of about
    ``BLOCK_ROWS`` rows, in reused work arrays: the same result as one pass, without page-faulting
    in a dozen stream-long temporaries.
    """
    i, cycle = columns["current"], columns["cycle"]
    threshold = rest_threshold(i, detection, nominal_capacity)
    edges = _block_edges(cycle, BLOCK_ROWS)
    blocks = [_block(columns, lo, hi, threshold, detection) for lo, hi in itertools.pairwise(edges)]
    return Steps(**{name: np.concatenate([b[name] for b in blocks]) for name in blocks[0]}, rows=columns)


def _block_edges(cycle: np.ndarray, rows: int) -> np.ndarray:
    """Row indices cutting the stream into blocks of whole cycles, about ``rows`` rows each."""
    starts = np.flatnonzero(cycle[1:] != cycle[:-1]) + 1  # first row of every cycle but the first
    if not len(starts):
        return np.array([0, len(cycle)])
    cuts = starts[np.minimum(np.searchsorted(starts, np.arange(rows, len(cycle), rows)), len(starts) - 1)]
    return np.unique(np.concatenate(([0], cuts, [len(cycle)])))


def _block(
    columns: Mapping[str, np.ndarray], lo: int, hi: int, threshold: float, detection: StepDetection
) -> dict[str, np.ndarray]:
    """The steps of rows lo..hi−1 (whole cycles); row indices in the result are the stream's."""
    t_all, v_all, i_all = columns["time"], columns["voltage"], columns["current"]
    t, v, i = t_all[lo:hi], v_all[lo:hi], i_all[lo:hi]
    cycle, step = columns["cycle"][lo:hi], columns["step"][lo:hi]
    n = hi - lo
    w = _work(n)
    abs_i = np.abs(i, out=w.f1[:n])
    charging, discharging = np.greater(i, threshold, out=w.b1[:n]), np.less(i, -threshold, out=w.b2[:n])
    sign = np.subtract(charging.view(np.int8), discharging.view(np.int8), out=w.i8[:n])
    _continue_holds(sign, i, v, cycle, step, detection, w)
    first, cv = _step_starts(cycle, step, sign, v, abs_i, detection, w)
    last = np.append(first[1:], n) - 1
    dt = w.f2[:n]
    dt[0] = t[0] - t_all[max(lo - 1, 0)]
    np.subtract(t[1:], t[:-1], out=dt[1:])
    work = np.multiply(i, dt, out=w.f3[:n])
    capacity = np.abs(np.add.reduceat(work, first)) / 3600.0
    np.multiply(work, v, out=work)
    energy = np.abs(np.add.reduceat(work, first)) / 3600.0
    start, end = first + lo, last + lo
    before = np.maximum(start - 1, 0)
    start_time = t_all[before]
    duration = t[last] - start_time
    s = sign[first]
    kind = np.where(s == 0, REST, np.where(cv[first], CV, CC)).astype(np.int8)
    after_rest = (start > 0) & (np.abs(i_all[before]) <= threshold)
    pulse = (kind == CC) & (duration <= detection.pulse_max_duration) & after_rest
    kind[pulse] = PULSE
    with np.errstate(divide="ignore", invalid="ignore"):
        resistance = np.where(pulse, np.abs((v_all[end] - v_all[before]) / (i_all[end] - i_all[before])), np.nan)
    return {
        "start": start,
        "end": end,
        "cycle": cycle[first],
        "step": step[first],
        "kind": kind,
        "sign": s,
        "start_time": start_time,
        "end_time": t[last],
        "capacity": capacity,
        "energy": energy,
        "min_voltage": np.minimum.reduceat(v, first),
        "max_voltage": np.maximum.reduceat(v, first),
        "resistance": resistance,
    }


def _continue_holds(
    sign: np.ndarray,
    i: np.ndarray,
    v: np.ndarray,
    cycle: np.ndarray,
    step: np.ndarray,
    detection: StepDetection,
    w: "_Scratch",
) -> None:
    """Give rows below the rest threshold that continue a CV hold (see the module doc) their hold's sign."""
    n = len(sign)
    quiet = np.equal(sign, 0, out=w.b1[:n])
    quiet &= np.not_equal(i, 0, out=w.b2[:n])
    quiet = np.flatnonzero(quiet)
    if not quiet.size:
        return
    active = np.where(sign != 0, np.arange(len(sign)), -1)
    np.maximum.accumulate(active, out=active)
    last = active[quiet]
    ok = last >= 0
    quiet, last = quiet[ok], last[ok]
    held = (
        (np.sign(i[quiet]) == sign[last])
        & (cycle[quiet] == cycle[last])
        & (step[quiet] == step[last])
        & (np.abs(v[quiet] - v[last]) <= detection.cv_voltage_tolerance)
    )
    sign[quiet[held]] = sign[last[held]]


def _step_starts(
    cycle: np.ndarray,
    step: np.ndarray,
    sign: np.ndarray,
    v: np.ndarray,
    abs_i: np.ndarray,
    detection: StepDetection,
    w: _Scratch,
) -> tuple[np.ndarray, np.ndarray]:
    """First row of each step, and which rows are CV: phases (cycle, step number, direction) split at CV changes."""
    n = len(v)
    new_phase, other = w.b3[: n - 1], w.b1[: n - 1]
    np.not_equal(cycle[1:], cycle[:-1], out=new_phase)
    new_phase |= np.not_equal(step[1:], step[:-1], out=other)
    new_phase |= np.not_equal(sign[1:], sign[:-1], out=other)
    phase = np.concatenate(([0], np.flatnonzero(new_phase) + 1))
    cv = _cv_rows(v, abs_i, sign, phase, detection, w)
    new_phase |= np.not_equal(cv[1:], cv[:-1], out=other)
    return np.concatenate(([0], np.flatnonzero(new_phase) + 1)), cv


def _cv_rows(
    v: np.ndarray, abs_i: np.ndarray, sign: np.ndarray, phase: np.ndarray, detection: StepDetection, w: _Scratch
) -> np.ndarray:
    """Rows held at their phase's extreme voltage while the current falls below its CC level (in ``w.b2``)."""
    n = len(v)
    rows = np.diff(phase, append=n)  # rows per phase: np.repeat spreads per-phase values 5× faster than a gather
    cc_level = np.maximum.reduceat(abs_i, phase) * (1.0 - detection.cc_tolerance)
    phase_sign = sign[phase]
    extreme = np.where(phase_sign > 0, np.maximum.reduceat(v, phase), np.minimum.reduceat(v, phase))
    extreme[phase_sign == 0] = np.inf  # no rest row is ever "held"
    gap = np.subtract(v, np.repeat(extreme, rows), out=w.f2[:n])
    np.abs(gap, out=gap)
    held = np.less_equal(gap, detection.cv_voltage_tolerance, out=w.b2[:n])
    held &= np.less(abs_i, np.repeat(cc_level, rows), out=w.b1[:n])
    return held


def step_table(
    run: Run | str | os.PathLike,
    stream: str | None = None,
    detection: StepDetection = DEFAULT_DETECTION,
    nominal_capacity: float | None = None,
) -> pd.DataFrame:
    """One row per step of a run's cycler stream: type, direction, times, capacity, energy, voltages.

    Columns and units are in ``STEP_UNITS`` (also ``df.attrs["units"]``); ``capacity`` and
    ``energy`` are per step and positive, the ``direction`` says which way the charge went.
    ``nominal_capacity`` (Ah, default the run's) sets the rest threshold.
    """
    with run_file(run) as f:
        columns = f.read(stream or f.cycle_stream)
        nominal_capacity = nominal_capacity or f.cell.get("nominal_capacity_Ah")
    if not len(columns["time"]):
        return pd.DataFrame({c: [] for c in STEP_UNITS})
    return steps_frame(find_steps(columns, detection, nominal_capacity), detection)


def steps_frame(s: Steps, detection: StepDetection) -> pd.DataFrame:
    """The :class:`Steps` arrays as the documented step-table DataFrame."""
    i, v = s.rows["current"], s.rows["voltage"]
    duration = s.duration
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_current = np.where(duration > 0, s.sign * s.capacity * 3600.0 / duration, i[s.start])
    out = pd.DataFrame(
        {
            "cycle": s.cycle,
            "step": s.step,
            "type": pd.Categorical.from_codes(s.kind, STEP_TYPES),
            "direction": pd.Categorical.from_codes(s.sign + 1, DIRECTIONS),
            "start_row": s.start,
            "rows": s.end - s.start + 1,
            "start_time": s.start_time,
            "end_time": s.end_time,
            "duration": duration,
            "capacity": s.capacity,
            "energy": s.energy,
            "mean_voltage": s.mean_voltage,
            "end_voltage": v[s.end],
            "min_voltage": s.min_voltage,
            "max_voltage": s.max_voltage,
            "mean_current": mean_current,
            "end_current": i[s.end],
            "resistance": s.resistance,
        }
    )
    out.attrs["units"] = STEP_UNITS
    out.attrs["step_detection"] = asdict(detection)
    return out
