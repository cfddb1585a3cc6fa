"""Per-cycle summary of a run's cycler stream, in one vectorised pass over the cycle index."""

import os

import numpy as np
import pandas as pd

from ..storage import Run, open_run

SUMMARY_UNITS = {
    "cycle": "",
    "start_time": "s",
    "duration": "s",
    "charge_capacity": "Ah",
    "discharge_capacity": "Ah",
    "charge_energy": "Wh",
    "discharge_energy": "Wh",
    "coulombic_efficiency": "",
    "energy_efficiency": "",
}


def cycle_summary(run: Run | str | os.PathLike, stream: str | None = None) -> pd.DataFrame:
    """Charge/discharge capacity and energy, coulombic and energy efficiency, per cycle.

    Current is taken as the mean over the interval ending at each row (what cyclers log),
    so each row contributes ``current × Δt``; positive current is charge.
    """
    run = run if isinstance(run, Run) else open_run(run)
    stream = stream or run.cycle_stream or "cycler"
    ds = run[stream]
    t = ds["time"].values
    current = ds["current"].values
    voltage = ds["voltage"].values
    if not len(t):
        return pd.DataFrame({c: [] for c in SUMMARY_UNITS})
    cycle = ds["cycle"].values
    starts = np.flatnonzero(np.diff(cycle, prepend=cycle[0] - 1))
    dt = np.diff(t, prepend=t[0])
    ah = current * dt / 3600.0
    wh = ah * voltage
    charging = ah > 0
    qc = np.add.reduceat(np.where(charging, ah, 0.0), starts)
    qd = np.add.reduceat(np.where(charging, 0.0, -ah), starts)
    ec = np.add.reduceat(np.where(charging, wh, 0.0), starts)
    ed = np.add.reduceat(np.where(charging, 0.0, -wh), starts)
    ends = np.append(starts[1:], len(t)) - 1
    begin = t[np.maximum(starts - 1, 0)]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = pd.DataFrame(
            {
                "cycle": cycle[starts],
                "start_time": begin,
                "duration": t[ends] - begin,
                "charge_capacity": qc,
                "discharge_capacity": qd,
                "charge_energy": ec,
                "discharge_energy": ed,
                "coulombic_efficiency": np.where(qc > 0, qd / qc, np.nan),
                "energy_efficiency": np.where(ec > 0, ed / ec, np.nan),
            }
        )
    out.attrs["units"] = SUMMARY_UNITS
    out.attrs["run"] = str(run.path)
    return out
