"""Per-cycle summary of a run's cycler stream, in one vectorised pass (no Python loop over cycles).

The stream is split into steps (:mod:`.steps`); each cycle's numbers are sums, extremes or last
values over its steps, taken with ``np.ufunc.reduceat`` at the cycle boundaries.  Capacities and
energies are integrated from the logged current (each row's mean current × its interval, so the
step boundary is included: docs/analysis.md §5); efficiencies are fractions, not percent.
Coulombic efficiency pairs charge and discharge of the same cycle (charge-first protocols).
"""

import functools
import itertools
import os
from dataclasses import asdict

import numpy as np
import pandas as pd

from ..storage import Run, RunFile, run_file
from .steps import CC, CV, DEFAULT_DETECTION, PULSE, StepDetection, Steps, find_steps

#: column -> (units, meaning).  "charge" counts every charging row of the cycle, pulses included.
SUMMARY_COLUMNS: dict[str, tuple[str, str]] = {
    "cycle": ("", "cycle number"),
    "start_time": ("s", "time the cycle started (end of the previous cycle's last row)"),
    "duration": ("s", "cycle duration"),
    "charge_capacity": ("Ah", "charge passed while charging"),
    "discharge_capacity": ("Ah", "charge passed while discharging"),
    "charge_energy": ("Wh", "energy in while charging"),
    "discharge_energy": ("Wh", "energy out while discharging"),
    "coulombic_efficiency": ("", "discharge / charge capacity (fraction)"),
    "energy_efficiency": ("", "discharge / charge energy (fraction)"),
    "voltage_efficiency": ("", "mean discharge / mean charge voltage"),
    "cc_charge_capacity": ("Ah", "charge passed in CC charge steps (pulses excluded)"),
    "cv_charge_capacity": ("Ah", "charge passed in CV charge steps"),
    "cc_charge_time": ("s", "time in CC charge steps"),
    "cv_charge_time": ("s", "time in CV charge steps"),
    "cv_share": ("", "CV charge capacity / charge capacity"),
    "charge_time": ("s", "time charging"),
    "discharge_time": ("s", "time discharging"),
    "rest_time": ("s", "time at rest"),
    "mean_charge_voltage": ("V", "capacity-weighted mean voltage while charging (energy / capacity)"),
    "mean_discharge_voltage": ("V", "capacity-weighted mean voltage while discharging"),
    "end_charge_voltage": ("V", "voltage at the end of the last charge step (pulses excluded)"),
    "end_discharge_voltage": ("V", "voltage at the end of the last discharge step (pulses excluded)"),
    "max_voltage": ("V", "highest voltage"),
    "min_voltage": ("V", "lowest voltage"),
    "dc_internal_resistance": ("ohm", "|ΔV/ΔI| of the cycle's last pulse; NaN without a pulse"),
    "temperature_min": ("degC", "lowest temperature reading in the cycle"),
    "temperature_mean": ("degC", "mean of the temperature readings in the cycle"),
    "temperature_max": ("degC", "highest temperature reading in the cycle"),
    "charge_throughput": ("Ah", "cumulative charge + discharge capacity up to the cycle's end"),
    "energy_throughput": ("Wh", "cumulative charge + discharge energy up to the cycle's end"),
    "equivalent_full_cycles": ("", "charge_throughput / (2 × nominal capacity)"),
    "complete": ("", "False for the last cycle of a run still being written (or whose writer died)"),
}
SUMMARY_UNITS = {name: units for name, (units, _) in SUMMARY_COLUMNS.items()}
TEMPERATURE_COLUMNS = ("temperature_min", "temperature_mean", "temperature_max")
ROW_COLUMNS = ("voltage", "current", "step", "cycle")  # the cycler columns the summary reads (and time)

#: Summary columns with Battery Data Format labels (ontology 1.3.0).  BDF has no per-cycle table
#: yet (its issue #17): the ``Cycle …`` counters reset every cycle, so their value at a cycle's
#: end is that cycle's total; the labels in ``BDF_TERMS`` are BDF's (docs/analysis.md §3.5),
#: the others follow its ``Quantity / unit`` pattern and are cellrig's own.
BDF_NAMES = {
    "cycle": "Cycle Count / 1",
    "start_time": "Test Time / s",
    "duration": "Cycle Duration / s",
    "charge_capacity": "Cycle Charging Capacity / Ah",
    "discharge_capacity": "Cycle Discharging Capacity / Ah",
    "charge_energy": "Cycle Charging Energy / Wh",
    "discharge_energy": "Cycle Discharging Energy / Wh",
    "coulombic_efficiency": "Coulombic Efficiency / 1",
    "energy_efficiency": "Energy Efficiency / 1",
    "voltage_efficiency": "Voltage Efficiency / 1",
    "cc_charge_capacity": "Cycle CC Charging Capacity / Ah",
    "cv_charge_capacity": "Cycle CV Charging Capacity / Ah",
    "cc_charge_time": "Cycle CC Charging Time / s",
    "cv_charge_time": "Cycle CV Charging Time / s",
    "cv_share": "Cycle CV Charging Share / 1",
    "charge_time": "Cycle Charging Time / s",
    "discharge_time": "Cycle Discharging Time / s",
    "rest_time": "Cycle Rest Time / s",
    "mean_charge_voltage": "Mean Charging Voltage / V",
    "mean_discharge_voltage": "Mean Discharging Voltage / V",
    "end_charge_voltage": "End of Charge Voltage / V",
    "end_discharge_voltage": "End of Discharge Voltage / V",
    "max_voltage": "Maximum Voltage / V",
    "min_voltage": "Minimum Voltage / V",
    "dc_internal_resistance": "DC Internal Resistance / ohm",
    "temperature_min": "Minimum Temperature / degC",
    "temperature_mean": "Mean Temperature / degC",
    "temperature_max": "Maximum Temperature / degC",
    "charge_throughput": "Cumulative Capacity / Ah",
    "energy_throughput": "Cumulative Energy / Wh",
    "equivalent_full_cycles": "Equivalent Full Cycles / 1",
    "complete": "Cycle Complete / 1",
}
BDF_TERMS = frozenset(
    {
        "Cycle Count / 1",
        "Test Time / s",
        "Cycle Charging Capacity / Ah",
        "Cycle Discharging Capacity / Ah",
        "Cycle Charging Energy / Wh",
        "Cycle Discharging Energy / Wh",
        "DC Internal Resistance / ohm",
        "Cumulative Capacity / Ah",
        "Cumulative Energy / Wh",
    }
)


def cycle_summary(
    run: RunFile | Run | str | os.PathLike,
    stream: str | None = None,
    *,
    detection: StepDetection = DEFAULT_DETECTION,
    nominal_capacity: float | None = None,
    temperature: str | None = "auto",
) -> pd.DataFrame:
    """One row per cycle: capacities, energies, efficiencies, CC/CV split, voltages, temperatures, throughput.

    Columns, units and meanings are in ``SUMMARY_COLUMNS`` (units also in ``df.attrs["units"]``).
    ``nominal_capacity`` (Ah) defaults to the run's ``cell.nominal_capacity_Ah``.  ``temperature``
    names the stream whose ``temperature`` column to use; ``"auto"`` takes the cycle stream's own
    column, else the first other stream that has one; ``None`` leaves the temperature columns out.
    What was used is recorded in ``df.attrs``.  The rows are read and summarised in blocks of whole
    cycles (:func:`_blocks`), so a run of any length needs only a block's memory.
    """
    with run_file(run) as f:
        stream = stream or f.cycle_stream
        source = _temperature_source(f, stream, temperature)
        names = [*ROW_COLUMNS, *(["temperature"] if source == stream else [])]
        if nominal_capacity is None:
            nominal_capacity = f.cell.get("nominal_capacity_Ah")
        other = f.read(source, ["temperature"], reuse=True) if source and source != stream else None
        blocks = _blocks(f, stream, nominal_capacity)
        read = functools.partial(_block_cycles, f, stream, names, detection, nominal_capacity, other)
        found = [read(lo, hi) for lo, hi in blocks]
        if any(part is None for part in found):  # a block that does not start a cycle: the index is out of step
            found = [read(0, blocks[-1][1])]
        parts = [part for part, _ in found]
        threshold = found[-1][1] if found else None
        if parts:
            out = summary_frame({c: np.concatenate([p[c] for p in parts]) for c in parts[0]}, nominal_capacity)
            if not f.ended:
                out.loc[out.index[-1], "complete"] = False
        else:
            out = pd.DataFrame({c: [] for c in SUMMARY_COLUMNS if source or c not in TEMPERATURE_COLUMNS})
    out.attrs |= {
        "units": {c: SUMMARY_UNITS[c] for c in out.columns},
        "run": str(f.path),
        "run_id": f.attrs.get("run_id"),
        "cell_id": f.cell.get("id"),
        "nominal_capacity": nominal_capacity,
        "cell_mass_g": f.cell.get("mass_g"),
        "capacity_source": "current integrated over each row's interval (mean current × Δt)",
        "temperature_source": f"streams/{source}/temperature" if source else None,
        "step_detection": asdict(detection),
        "rest_threshold_A": threshold,
    }
    return out


BLOCK_ROWS = 1 << 17  # rows per block: a summary holds ~5 MB of columns at a time, however long the run


def _blocks(f: RunFile, stream: str, nominal_capacity: float | None) -> list[tuple[int, int]]:
    """Row ranges of whole cycles, about ``BLOCK_ROWS`` each, cut at cycle starts from the file's index.

    One block when the stream is not the indexed cycle stream, or when the rest threshold needs
    the whole stream's largest current (no nominal capacity).
    """
    rows = f.rows(stream)
    if not rows:
        return []
    starts = f.cycle_starts() if stream == f.cycle_stream and nominal_capacity else np.empty(0, np.int64)
    starts = starts[(starts > 0) & (starts < rows)]
    if not len(starts):
        return [(0, rows)]
    near = np.minimum(np.searchsorted(starts, np.arange(BLOCK_ROWS, rows, BLOCK_ROWS)), len(starts) - 1)
    return list(itertools.pairwise([0, *np.unique(starts[near]).tolist(), rows]))


def _block_cycles(
    f: RunFile,
    stream: str,
    names: list[str],
    detection: StepDetection,
    nominal_capacity: float | None,
    other: dict[str, np.ndarray] | None,
    lo: int,
    hi: int,
) -> tuple[dict[str, np.ndarray], float] | None:
    """The cycles of rows lo..hi−1 and the rest threshold used; None if row lo does not start a cycle.

    Temperatures come from the rows' own ``temperature`` column when ``names`` asks for it, else from
    ``other`` (another stream's columns, or None for none).
    """
    context = 1 if lo else 0  # the row before the block: the first step's start time and Δt
    columns = f.read(stream, names, reuse=True, start=lo - context, stop=hi)
    if context and columns["cycle"][0] == columns["cycle"][1]:
        return None
    steps = find_steps(columns, detection, nominal_capacity, context=context)
    return per_cycle(steps, columns if "temperature" in columns else other), steps.threshold


def _temperature_source(f: RunFile, stream: str, choice: str | None) -> str | None:
    if choice != "auto":
        return choice
    candidates = [stream, *sorted(s for s in f.streams if s != stream)]
    return next((s for s in candidates if "temperature" in f.streams.get(s, ())), None)


def summarise(steps: Steps, temperature: dict[str, np.ndarray] | None, nominal_capacity: float | None) -> pd.DataFrame:
    """The per-cycle summary from a stream's steps (and optionally a stream with a ``temperature`` column)."""
    return summary_frame(per_cycle(steps, temperature), nominal_capacity)


def per_cycle(steps: Steps, temperature: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """The summary columns of the cycles the steps cover, but the cumulative ones (:func:`summary_frame`)."""
    s = steps
    first = np.concatenate(([0], np.flatnonzero(s.cycle[1:] != s.cycle[:-1]) + 1))
    last = np.append(first[1:], len(s.cycle)) - 1
    charge, discharge, duration = s.sign > 0, s.sign < 0, s.duration

    def total(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.add.reduceat(np.where(mask, values, 0.0), first)

    def at_last(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``values`` at the cycle's last step where ``mask`` holds (NaN where none does)."""
        idx = np.maximum.reduceat(np.where(mask, np.arange(len(mask)), -1), first)
        return np.where(idx >= 0, values[np.maximum(idx, 0)], np.nan)

    qc, qd = total(s.capacity, charge), total(s.capacity, discharge)
    ec, ed = total(s.energy, charge), total(s.energy, discharge)
    cc, cv = charge & (s.kind == CC), charge & (s.kind == CV)
    end_voltage = s.rows["voltage"][s.end]
    with np.errstate(divide="ignore", invalid="ignore"):
        vc, vd = ec / qc, ed / qd
        out = {
            "cycle": s.cycle[first],
            "start_time": s.start_time[first],
            "duration": s.end_time[last] - s.start_time[first],
            "charge_capacity": qc,
            "discharge_capacity": qd,
            "charge_energy": ec,
            "discharge_energy": ed,
            "coulombic_efficiency": qd / qc,
            "energy_efficiency": ed / ec,
            "voltage_efficiency": vd / vc,
            "cc_charge_capacity": total(s.capacity, cc),
            "cv_charge_capacity": total(s.capacity, cv),
            "cc_charge_time": total(duration, cc),
            "cv_charge_time": total(duration, cv),
            "cv_share": total(s.capacity, cv) / qc,
            "charge_time": total(duration, charge),
            "discharge_time": total(duration, discharge),
            "rest_time": total(duration, s.sign == 0),
            "mean_charge_voltage": vc,
            "mean_discharge_voltage": vd,
            "end_charge_voltage": at_last(end_voltage, charge & (s.kind != PULSE)),
            "end_discharge_voltage": at_last(end_voltage, discharge & (s.kind != PULSE)),
            "max_voltage": np.maximum.reduceat(s.max_voltage, first),
            "min_voltage": np.minimum.reduceat(s.min_voltage, first),
            "dc_internal_resistance": at_last(s.resistance, s.kind == PULSE),
        }
    if temperature is not None:
        out |= _temperature_stats(s, first, last, temperature)
    return out


def summary_frame(cycles: dict[str, np.ndarray], nominal_capacity: float | None) -> pd.DataFrame:
    """The summary table from :func:`per_cycle`'s columns: adds throughputs, equivalent full cycles, complete."""
    throughput = np.cumsum(cycles["charge_capacity"] + cycles["discharge_capacity"])
    return pd.DataFrame(
        cycles
        | {
            "charge_throughput": throughput,
            "energy_throughput": np.cumsum(cycles["charge_energy"] + cycles["discharge_energy"]),
            "equivalent_full_cycles": throughput / (2.0 * nominal_capacity) if nominal_capacity else np.nan,
            "complete": np.ones(len(throughput), dtype=bool),
        }
    )


def _temperature_stats(
    s: Steps, first: np.ndarray, last: np.ndarray, stream: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Min, mean and max of the readings inside each cycle: the cycle's own rows, or by time for another stream."""
    if stream is s.rows:
        bounds = np.append(s.start[first], len(stream["time"]))
    else:  # a reading at a cycle's end time belongs to that cycle (the one before a block's first, too)
        ends = np.searchsorted(stream["time"], s.end_time[last], side="right")
        begin = np.searchsorted(stream["time"], s.start_time[0], side="right" if s.start[0] else "left")
        bounds = np.concatenate(([begin], ends))
    values = stream["temperature"][: bounds[-1]]
    counts = np.diff(bounds)
    stats = np.full((3, len(counts)), np.nan)
    filled = counts > 0
    if filled.any():
        lo = bounds[:-1][filled]
        stats[0, filled] = np.minimum.reduceat(values, lo)
        stats[1, filled] = np.add.reduceat(values, lo) / counts[filled]
        stats[2, filled] = np.maximum.reduceat(values, lo)
    return dict(zip(TEMPERATURE_COLUMNS, stats, strict=True))


def to_bdf(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary with Battery Data Format labels (see ``BDF_NAMES`` for which are BDF terms)."""
    out = summary.rename(columns=BDF_NAMES)
    out.attrs = dict(summary.attrs) | {
        "bdf_ontology": "1.3.0",
        "bdf_terms": sorted(BDF_TERMS & set(out.columns)),
        "units": {BDF_NAMES.get(c, c): u for c, u in summary.attrs.get("units", {}).items()},
    }
    return out
