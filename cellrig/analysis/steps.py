"""The step table: a cycler stream split into CC, CV, rest and pulse steps in one vectorised pass.

A row is *rest* when its current is within ``rest_current`` × (the stream's largest |current|)
of zero, otherwise *charge* (current > 0) or *discharge*.  Rows of one cycle, one protocol step
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
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..storage import Run, open_run

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
    """Thresholds that split a cycler stream into steps; recorded with every table made with them."""

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
    mean_voltage: np.ndarray  # time-weighted
    min_voltage: np.ndarray
    max_voltage: np.ndarray
    resistance: np.ndarray  # Ω, pulses only
    rows: Mapping[str, np.ndarray]

    @property
    def duration(self) -> np.ndarray:
        return self.end_time - self.start_time


def read_stream(run: Run, stream: str | None = None) -> dict[str, np.ndarray]:
    """A stream's columns as numpy arrays (the cycle stream by default)."""
    ds = run[stream or run.cycle_stream or "cycler"]
    return {"time": ds["time"].values} | {name: var.values for name, var in ds.data_vars.items()}


BLOCK_ROWS = 1 << 16  # rows per block: the temporaries of a block stay in the CPU cache


def find_steps(columns: Mapping[str, np.ndarray], detection: StepDetection = DEFAULT_DETECTION) -> Steps:
    """Split cycler rows (``time``, ``voltage``, ``current``, ``step``, ``cycle``) into steps.

    Steps never cross a cycle boundary, so the rows are processed in blocks of whole cycles of
    about ``BLOCK_ROWS`` rows: the same result as one pass, without page-faulting in a dozen
    stream-long temporaries.
    """
    i, cycle = columns["current"], columns["cycle"]
    threshold = detection.rest_current * max(i.max(), -i.min())
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
    work = np.abs(i)  # |current| until the steps are found, then a scratch column
    sign = (i > threshold).view(np.int8) - (i < -threshold).view(np.int8)
    first, cv = _step_starts(cycle, step, sign, v, work, detection)
    last = np.append(first[1:], len(t)) - 1
    dt = np.empty(len(t))
    dt[0] = t[0] - t_all[max(lo - 1, 0)]
    np.subtract(t[1:], t[:-1], out=dt[1:])
    np.multiply(i, dt, out=work)
    capacity = np.abs(np.add.reduceat(work, first)) / 3600.0
    np.multiply(work, v, out=work)
    energy = np.abs(np.add.reduceat(work, first)) / 3600.0
    np.multiply(v, dt, out=work)
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
        mean_voltage = np.where(duration > 0, np.add.reduceat(work, first) / duration, v[first])
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
        "mean_voltage": mean_voltage,
        "min_voltage": np.minimum.reduceat(v, first),
        "max_voltage": np.maximum.reduceat(v, first),
        "resistance": resistance,
    }


def _step_starts(
    cycle: np.ndarray, step: np.ndarray, sign: np.ndarray, v: np.ndarray, abs_i: np.ndarray, detection: StepDetection
) -> tuple[np.ndarray, np.ndarray]:
    """First row of each step, and which rows are CV: phases (cycle, step number, direction) split at CV changes."""
    new_phase = (cycle[1:] != cycle[:-1]) | (step[1:] != step[:-1]) | (sign[1:] != sign[:-1])
    phase = np.concatenate(([0], np.flatnonzero(new_phase) + 1))
    cv = _cv_rows(v, abs_i, sign, phase, detection)
    new_phase |= cv[1:] != cv[:-1]
    return np.concatenate(([0], np.flatnonzero(new_phase) + 1)), cv


def _cv_rows(
    v: np.ndarray, abs_i: np.ndarray, sign: np.ndarray, phase: np.ndarray, detection: StepDetection
) -> np.ndarray:
    """Rows held at their phase's extreme voltage while the current falls below its CC level."""
    row_phase = np.zeros(len(v), dtype=np.int32)  # each row's phase number (a gather beats np.repeat)
    row_phase[phase[1:]] = 1
    np.cumsum(row_phase, out=row_phase)
    i_max = np.maximum.reduceat(abs_i, phase)
    phase_sign = sign[phase]
    extreme = np.where(phase_sign > 0, np.maximum.reduceat(v, phase), np.minimum.reduceat(v, phase))
    extreme[phase_sign == 0] = np.inf  # no rest row is ever "held"
    gap = np.take(extreme, row_phase)
    np.subtract(v, gap, out=gap)
    np.abs(gap, out=gap)
    held = gap <= detection.cv_voltage_tolerance
    cc_level = np.take(i_max, row_phase, out=gap)
    cc_level *= 1.0 - detection.cc_tolerance
    held &= abs_i < cc_level
    return held


def step_table(
    run: Run | str | os.PathLike, stream: str | None = None, detection: StepDetection = DEFAULT_DETECTION
) -> pd.DataFrame:
    """One row per step of a run's cycler stream: type, direction, times, capacity, energy, voltages.

    Columns and units are in ``STEP_UNITS`` (also ``df.attrs["units"]``); ``capacity`` and
    ``energy`` are per step and positive, the ``direction`` says which way the charge went.
    """
    run = run if isinstance(run, Run) else open_run(run)
    columns = read_stream(run, stream)
    if not len(columns["time"]):
        return pd.DataFrame({c: [] for c in STEP_UNITS})
    return steps_frame(find_steps(columns, detection), detection)


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
