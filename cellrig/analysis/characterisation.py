"""Characterisation results: pulse resistance (DCIR) vs state of charge, rate capability, specific energy.

``pulse_resistance`` reads a run's steps (an HPPC test's pulses, or any pulse after a rest);
``rate_capability`` and ``specific_energy`` read a :func:`cellrig.analysis.cycle_summary` table.
"""

import os

import numpy as np
import pandas as pd

from ..storage import Run, run_file
from .steps import CV, DEFAULT_DETECTION, DIRECTIONS, PULSE, StepDetection, find_steps

PULSE_UNITS = {
    "cycle": "",
    "step": "",
    "direction": "",
    "soc": "",
    "ocv": "V",
    "current": "A",
    "duration": "s",
    "resistance": "ohm",
}
RATE_UNITS = {
    "cycle": "",
    "c_rate": "1/h",
    "discharge_capacity": "Ah",
    "discharge_energy": "Wh",
    "mean_discharge_voltage": "V",
    "relative_capacity": "",
}


def pulse_resistance(
    run: Run | str | os.PathLike, stream: str | None = None, detection: StepDetection = DEFAULT_DETECTION
) -> pd.DataFrame:
    """One row per current pulse: its state of charge, the rest voltage before it, current and DCIR.

    The resistance is |ΔV/ΔI| from the last row before the pulse to its last row (FreedomCAR HPPC,
    docs/analysis.md §1.1).  The state of charge at the pulse's start counts the net charge
    passed since the end of the last CV charge before it (100 %), over the capacity the run
    measured from that full charge: the most charge it removed before the next full charge (an
    HPPC test ends with a discharge to the lower voltage limit).  Without a CV charge before a
    pulse its SOC is NaN.  Units in ``PULSE_UNITS`` (also ``df.attrs["units"]``).
    """
    with run_file(run) as f:
        columns = f.read(stream or f.cycle_stream)
        nominal = f.cell.get("nominal_capacity_Ah")
    if not len(columns["time"]):
        return pd.DataFrame({c: [] for c in PULSE_UNITS})
    s = find_steps(columns, detection, nominal)
    passed = np.cumsum(s.sign * s.capacity)  # net Ah in at each step's end
    full = np.flatnonzero((s.kind == CV) & (s.sign > 0))
    pulses = np.flatnonzero(s.kind == PULSE)
    soc = np.full(len(pulses), np.nan)
    if len(full):
        owner = np.searchsorted(full, pulses, side="right") - 1  # the last full charge before each pulse
        removed = passed[full] - np.minimum.reduceat(passed, full)  # each full charge to the next
        measured = np.where(owner >= 0, removed[np.maximum(owner, 0)], np.nan)
        at_full = np.where(owner >= 0, passed[full[np.maximum(owner, 0)]], np.nan)
        before = passed[pulses] - s.sign[pulses] * s.capacity[pulses]  # net Ah in at the pulse's start
        with np.errstate(divide="ignore", invalid="ignore"):
            soc = np.where(measured > 0, 1.0 - (at_full - before) / measured, np.nan)
    v, i = columns["voltage"], columns["current"]
    out = pd.DataFrame(
        {
            "cycle": s.cycle[pulses],
            "step": s.step[pulses],
            "direction": pd.Categorical.from_codes(s.sign[pulses] + 1, DIRECTIONS),
            "soc": soc,
            "ocv": v[np.maximum(s.start[pulses] - 1, 0)],
            "current": i[s.end[pulses]],
            "duration": s.duration[pulses],
            "resistance": s.resistance[pulses],
        }
    )
    out.attrs["units"] = PULSE_UNITS
    out.attrs["nominal_capacity"] = nominal
    return out


def rate_capability(summary: pd.DataFrame) -> pd.DataFrame:
    """Discharge capacity and energy by C-rate: one row per complete cycle with a discharge.

    The rate is the cycle's mean discharge current over the nominal capacity (``summary.attrs``);
    ``relative_capacity`` is the capacity over that of the lowest-rate discharge.  Units in
    ``RATE_UNITS``.
    """
    nominal = summary.attrs.get("nominal_capacity")
    done = summary[summary["complete"].astype(bool) & (summary["discharge_time"] > 0)]
    rate = done["discharge_capacity"] / (done["discharge_time"] / 3600.0) / nominal if nominal else np.nan
    out = pd.DataFrame(
        {
            "cycle": done["cycle"],
            "c_rate": rate,
            "discharge_capacity": done["discharge_capacity"],
            "discharge_energy": done["discharge_energy"],
            "mean_discharge_voltage": done["mean_discharge_voltage"],
        }
    ).reset_index(drop=True)
    lowest = out["discharge_capacity"].iloc[int(np.argmin(out["c_rate"]))] if out["c_rate"].notna().any() else np.nan
    out["relative_capacity"] = out["discharge_capacity"] / lowest
    out.attrs["units"] = RATE_UNITS
    return out


def specific_energy(summary: pd.DataFrame) -> float:
    """Wh/kg: the discharge energy of the run's first complete cycle over the cell's mass (NaN if unknown)."""
    mass = summary.attrs.get("cell_mass_g")
    done = summary.loc[summary["complete"].astype(bool) & (summary["discharge_energy"] > 0), "discharge_energy"]
    return float(done.iloc[0] / (mass / 1000.0)) if mass and len(done) else np.nan
