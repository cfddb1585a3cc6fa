"""A run's page: every stream's columns grouped by quantity, decimated on the server; its fade and events."""

import math
from typing import Any

import numpy as np

from ..protocols.engine import VIRTUAL_CELL, step_discharge
from ..storage import Run

POINTS = 1200  # per trace: enough for a phone's or a desktop's width, whatever the run's length
QUIET = ("checkpoint", VIRTUAL_CELL)  # events the log leaves out
EVENTS = 200
_SKIP = {"step", "cycle"}


def decimate(t: np.ndarray, y: np.ndarray, points: int = POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``points`` points keeping each bucket's minimum and maximum in time order (spikes survive)."""
    n = len(t)
    if n <= points:
        return t, y
    buckets = points // 2
    per = -(-n // buckets)
    padded = np.full(buckets * per, np.nan)
    padded[:n] = y
    finite = np.isfinite(padded)
    base = np.arange(buckets) * per
    low = base + np.where(finite, padded, np.inf).reshape(buckets, per).argmin(axis=1)
    high = base + np.where(finite, padded, -np.inf).reshape(buckets, per).argmax(axis=1)
    at = np.unique(np.minimum(np.concatenate([low, high]), n - 1))
    return t[at], y[at]


def _finite(a: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in a.tolist()]


def plots(run: Run, hours: float | None) -> dict[str, list[dict[str, Any]]]:
    """Units → traces ``{name, t (h), y}``; the last ``hours`` of the run, or all of it."""
    since = None if hours is None else run.elapsed - hours * 3600.0
    out: dict[str, list[dict[str, Any]]] = {}
    for stream in run.streams:
        units = run.columns(stream)
        data = run.tail(stream, since)
        t = data.pop("time")
        for column, y in data.items():
            if column in _SKIP or y.dtype.kind not in "fi":
                continue
            td, yd = decimate(t, y.astype(np.float64))
            trace = {"name": f"{stream} {column}", "t": _finite(td / 3600.0), "y": _finite(yd)}
            out.setdefault(units[column] or "-", []).append(trace)
    return out


def fade(run: Run) -> list[tuple[int, float]]:
    """(cycle, Ah discharged) of every cycle so far, from the steps' own records."""
    ends = run.events_of("step_end")
    per: dict[int, float] = {}
    for cycle, message in zip(ends["cycle"].tolist(), ends["message"].tolist(), strict=True):
        ah = step_discharge(message or "")
        if ah is not None:
            per[int(cycle)] = per.get(int(cycle), 0.0) + ah
    return sorted(per.items())


def events(run: Run) -> list[dict[str, Any]]:
    said = run.events_of(but=QUIET, last=EVENTS)
    rows = zip(said["time"].tolist(), said["kind"].tolist(), said["message"].tolist(), strict=True)
    return [{"t_h": t / 3600.0, "kind": kind, "message": message} for t, kind, message in rows][::-1]


def page(run: Run, hours: float | None) -> dict[str, Any]:
    return {"plots": plots(run, hours), "fade": fade(run), "events": events(run), "status": run.status}
