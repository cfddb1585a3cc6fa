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
step-based rule finds 1,001 s on the same cycle, docs/analysis.md §1), so the thresholds
used are recorded with every result.

Each row holds the mean current and voltage over the interval since the previous row (what
cyclers log), so a row contributes ``current × Δt`` of charge and ``current × voltage × Δt`` of
energy, and a step starts at the time of the row before its first row.

A pulse's resistance is |ΔV/ΔI| between the last row before the pulse and the pulse's last row
(DCIR as in the FreedomCAR HPPC manual, docs/analysis.md §1.1).
"""

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..storage import Run, run_file

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
    threshold: float  # A: the rest threshold the rows were split with

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


def rest_threshold(current: np.ndarray, detection: StepDetection, nominal_capacity: float | None = None) -> float:
    """The |current| (A) at or below which a row is rest: relative to the nominal capacity (Ah) if known."""
    if nominal_capacity:
        return detection.rest_current * float(nominal_capacity)
    return detection.rest_current * float(max(current.max(), -current.min())) if len(current) else 0.0


def find_steps(
    columns: Mapping[str, np.ndarray],
    detection: StepDetection = DEFAULT_DETECTION,
    nominal_capacity: float | None = None,
    *,
    context: int = 0,
) -> Steps:
    """Split cycler rows (``time``, ``voltage``, ``current``, ``step``, ``cycle``) into steps.

    ``nominal_capacity`` (Ah) sets the rest threshold (see :func:`rest_threshold`).  The first
    ``context`` rows, of an earlier cycle, only precede the rows to split: they give the first
    step its start time and Δt (a block of a longer stream).  The rows are walked once, phase by
    phase, by a compiled kernel (:func:`._kernel.scan`); the per-step results are finished with numpy.
    """
    t, v, i = columns["time"], columns["voltage"], columns["current"]
    threshold = rest_threshold(i, detection, nominal_capacity)
    from ._kernel import scan  # numba (and the scipy it loads) only when steps are asked for

    found = scan(
        t, v, i, columns["cycle"], columns["step"], threshold, detection.cv_voltage_tolerance, detection.cc_tolerance
    )
    skip = int(np.searchsorted(found[0], context))  # the context rows' own steps
    first, sign, cv, charge, energy, v_min, v_max = (a[skip:] for a in found)
    last = np.append(first[1:], len(t)) - 1
    before = np.maximum(first - 1, 0)
    start_time = t[before]
    duration = t[last] - start_time
    kind = np.where(sign == 0, REST, np.where(cv, CV, CC)).astype(np.int8)
    after_rest = (first > 0) & (np.abs(i[before]) <= threshold)
    pulse = (kind == CC) & (duration <= detection.pulse_max_duration) & after_rest
    kind[pulse] = PULSE
    with np.errstate(divide="ignore", invalid="ignore"):
        resistance = np.where(pulse, np.abs((v[last] - v[before]) / (i[last] - i[before])), np.nan)
    return Steps(
        start=first,
        end=last,
        cycle=columns["cycle"][first],
        step=columns["step"][first],
        kind=kind,
        sign=sign,
        start_time=start_time,
        end_time=t[last],
        capacity=np.abs(charge) / 3600.0,
        energy=np.abs(energy) / 3600.0,
        min_voltage=v_min,
        max_voltage=v_max,
        resistance=resistance,
        rows=columns,
        threshold=threshold,
    )


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
