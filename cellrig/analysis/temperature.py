"""Capacity and energy vs temperature within one run: a discharge at each chamber temperature.

A protocol that steps the chamber through set points (say −20 … 85 °C) and discharges the cell
at each one gives one *discharge* per protocol step: the rows of one cycle and step number that
discharge (CC and CV together, DCIR pulses left out).  Each is paired with the chamber readings
logged while it ran (the ``chamber`` stream's ``temperature``; mean, min and max over the
discharge's time span, or the reading interpolated at its midpoint if none fell inside it; the
mean ``setpoint`` too where the stream has one, as the engine's does) and,
where the run has one, a cell temperature stream (``daq``).  Only the run-file layout is relied
on: streams ``cycler`` (time, voltage, current, step, cycle), ``chamber`` and ``daq``.
"""

import os

import numpy as np
import pandas as pd

from ..storage import Run, RunFile, run_file
from .steps import DEFAULT_DETECTION, PULSE, StepDetection, find_steps

TEMPERATURE_UNITS = {
    "cycle": "",
    "step": "",
    "start_time": "s",
    "end_time": "s",
    "chamber_temperature": "degC",
    "chamber_temperature_min": "degC",
    "chamber_temperature_max": "degC",
    "chamber_setpoint": "degC",
    "cell_temperature": "degC",
    "capacity": "Ah",
    "energy": "Wh",
    "mean_voltage": "V",
    "retention": "",
}
REFERENCE_TEMPERATURE = 25.0  # °C: retention is relative to the discharge nearest this


def capacity_vs_temperature(
    run: Run | str | os.PathLike,
    *,
    chamber: str = "chamber",
    cell: str | None = "auto",
    detection: StepDetection = DEFAULT_DETECTION,
    nominal_capacity: float | None = None,
    reference_temperature: float = REFERENCE_TEMPERATURE,
) -> pd.DataFrame:
    """One row per discharge of the run: the chamber temperature during it, its capacity and energy.

    ``chamber`` names the stream with the chamber's ``temperature``; ``cell`` a stream with the
    cell's ``temperature`` (``"auto"``: ``daq`` if it has one, ``None``: none).  ``retention`` is
    capacity over that of the discharge nearest ``reference_temperature``.  Units in ``attrs``.
    """
    with run_file(run) as f:
        if chamber not in f.streams or "temperature" not in f.streams[chamber]:
            raise ValueError(f"{f.path}: no {chamber!r} stream with a 'temperature' column (streams: {f.streams})")
        cell = _cell_stream(f, chamber, cell)
        rows = f.read(f.cycle_stream, ["voltage", "current", "step", "cycle"])
        setpoint = "setpoint" in f.streams[chamber]
        air = f.read(chamber, ["temperature", *(["setpoint"] if setpoint else [])])
        body = f.read(cell, ["temperature"]) if cell else None
        nominal_capacity = nominal_capacity or f.cell.get("nominal_capacity_Ah")
        path = f.path
    left_out = {"cell_temperature"} if body is None else set()
    left_out |= set() if setpoint else {"chamber_setpoint"}
    columns = [c for c in TEMPERATURE_UNITS if c not in left_out]
    if not len(rows["time"]):
        out = pd.DataFrame({c: [] for c in columns})
    else:
        out = _discharges(find_steps(rows, detection, nominal_capacity))
        span = out["start_time"].to_numpy(), out["end_time"].to_numpy()
        out = out.assign(**_during(air, *span, "chamber"))
        if setpoint:
            out["chamber_setpoint"] = _during({"time": air["time"], "temperature": air["setpoint"]}, *span, "x")[
                "x_temperature"
            ]
        if body is not None:
            out["cell_temperature"] = _during(body, out["start_time"].to_numpy(), out["end_time"].to_numpy(), "cell")[
                "cell_temperature"
            ]
        nearest = (out["chamber_temperature"] - reference_temperature).abs()
        out["retention"] = out["capacity"] / out["capacity"].iloc[int(nearest.to_numpy().argmin())] if len(out) else []
        out = out[columns]
    out.attrs = {
        "units": {c: TEMPERATURE_UNITS[c] for c in out.columns},
        "run": str(path),
        "chamber_source": f"streams/{chamber}/temperature",
        "cell_source": f"streams/{cell}/temperature" if cell else None,
        "reference_temperature": reference_temperature,
    }
    return out


def _cell_stream(f: RunFile, chamber: str, choice: str | None) -> str | None:
    if choice != "auto":
        return choice
    return "daq" if chamber != "daq" and "temperature" in f.streams.get("daq", ()) else None


def _discharges(s) -> pd.DataFrame:
    """Discharge steps (pulses left out) merged per (cycle, protocol step): capacity, energy, span."""
    keep = (s.sign < 0) & (s.kind != PULSE)
    steps = pd.DataFrame(
        {
            "cycle": s.cycle[keep],
            "step": s.step[keep],
            "start_time": s.start_time[keep],
            "end_time": s.end_time[keep],
            "capacity": s.capacity[keep],
            "energy": s.energy[keep],
        }
    )
    out = steps.groupby(["cycle", "step"], sort=False).agg(
        start_time=("start_time", "min"),
        end_time=("end_time", "max"),
        capacity=("capacity", "sum"),
        energy=("energy", "sum"),
    )
    out["mean_voltage"] = out["energy"] / out["capacity"]
    return out.reset_index()


def _during(stream: dict[str, np.ndarray], start: np.ndarray, end: np.ndarray, name: str) -> dict[str, np.ndarray]:
    """Mean, min and max of a temperature stream within each [start, end] (midpoint value if no reading falls in)."""
    t, temp = stream["time"], stream["temperature"]
    lo, hi = np.searchsorted(t, start, side="left"), np.searchsorted(t, end, side="right")
    mean, low, high = (np.full(len(start), np.nan) for _ in range(3))
    for k, (a, b) in enumerate(zip(lo, hi, strict=True)):
        if b > a:
            window = temp[a:b]
            mean[k], low[k], high[k] = window.mean(), window.min(), window.max()
        elif len(t):
            mean[k] = low[k] = high[k] = np.interp((start[k] + end[k]) / 2, t, temp)
    key = f"{name}_temperature"
    return {key: mean, f"{key}_min": low, f"{key}_max": high}
