"""The safety supervisor: every sample of a run checked against the protocol's limits.

Limits a protocol leaves unset come from the cell's rating (for cycling and
characterisation: the voltage window with a small margin, the rated current, the rated
temperature plus 10 K); an abuse protocol is held only to the limits it states.  dT/dt is
the slope of a linear fit over a sliding window of at least 10 samples spanning 9 s (standards reference
§7: never on raw thermocouple differences).
"""

from collections import deque

import numpy as np

from .cells import CellSpec
from .language import Limits

VOLTAGE_MARGIN = 0.05  # V beyond the cell's window before a trip
DTDT_WINDOW = 10  # samples in the dT/dt fit
DTDT_MIN_SPAN = 9.0  # s the fit must span


def effective_limits(limits: Limits, cell: CellSpec, abuse: bool) -> Limits:
    """The protocol's limits, completed from the cell's rating unless the protocol is an abuse test."""
    if abuse:
        return limits
    rated = {
        "voltage_min": cell.v_min - VOLTAGE_MARGIN,
        "voltage_max": cell.v_max + VOLTAGE_MARGIN,
        "current_max": 1.05 * max(cell.max_charge_current, cell.max_discharge_current),
        "temperature_max": cell.t_max + 10.0,
    }
    given = {k: v for k, v in limits.model_dump().items() if v is not None}
    return Limits.model_construct(**(rated | given))


class Supervisor:
    """Checks blocks of samples; returns the reason for the first limit crossed, or None."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.recent: dict[str, deque[tuple[float, float]]] = {}

    def check(self, stream: str, block: dict[str, np.ndarray], run_time: np.ndarray) -> str | None:
        lim = self.limits
        tests: list[tuple[str, str, float | None, str]] = []
        if stream == "cycler":
            tests = [
                ("voltage", "above", lim.voltage_max, "V"),
                ("voltage", "below", lim.voltage_min, "V"),
                ("current", "|above|", lim.current_max, "A"),
            ]
        elif stream == "chamber":
            tests = [("temperature", "above", lim.chamber_temperature_max, "°C")]
        elif stream == "rig":
            tests = [("force", "above", lim.force_max, "kN")]
        elif stream == "daq":
            tests = [("temperature", "above", lim.temperature_max, "°C"), ("gas", "above", lim.gas_max, "ppm")]
        first: tuple[int, str] | None = None
        for column, how, limit, units in tests:
            values = block.get(column)
            if limit is None or values is None or not len(values):
                continue
            x = np.abs(values) if how == "|above|" else values
            bad = np.flatnonzero(x < limit) if how == "below" else np.flatnonzero(x > limit)
            if len(bad) and (first is None or bad[0] < first[0]):
                i, word = int(bad[0]), "below" if how == "below" else "above"
                label = "cell temperature" if (stream, column) == ("daq", "temperature") else f"{stream} {column}"
                first = (
                    i,
                    f"{label} {values[i]:.4g} {units} {word} the {limit:g} {units} limit at t = {run_time[i]:.1f} s",
                )
        if first is not None:
            return first[1]
        if stream == "daq" and lim.dTdt_max is not None and "temperature" in block:
            return self._dtdt(block["temperature"], run_time, lim.dTdt_max)
        return None

    def _dtdt(self, temps: np.ndarray, times: np.ndarray, limit: float) -> str | None:
        window = self.recent.setdefault("temperature", deque(maxlen=DTDT_WINDOW))
        for t, temp in zip(times, temps, strict=True):
            window.append((float(t), float(temp)))
            if len(window) < DTDT_WINDOW or window[-1][0] - window[0][0] < DTDT_MIN_SPAN:
                continue
            ts, ys = np.array(window).T
            slope = float(np.polyfit(ts - ts[0], ys, 1)[0])
            if slope > limit:
                return f"cell dT/dt {slope:.3g} K/s above the {limit:g} K/s limit at t = {t:.1f} s ({temp:.1f} °C)"
        return None
