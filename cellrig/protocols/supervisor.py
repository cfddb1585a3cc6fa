"""The safety supervisor: every sample of a run checked against the protocol's limits.

Limits a protocol leaves unset come from the cell's rating (for cycling and
characterisation: the voltage window with a small margin, the rated current, the rated
temperature plus 10 K); an abuse protocol is held only to the limits it states.  Every run
with a chamber is held to a chamber over-temperature limit: the lowest of the protocol's
own, the lab file's ``max_temperature`` and the highest setpoint the protocol asks for plus
:data:`CHAMBER_MARGIN_K`.  dT/dt is the slope of a linear fit over a sliding window of at
least 10 samples spanning 9 s (docs/standards.md §7: never on raw thermocouple
differences).

Signals are supervised by what they are, not by their column name: the DAQ column of the
binding's cell-temperature probe, the gas probe's column.  A reading that is NaN or
infinite trips ("invalid reading"), and so does a supervised stream that delivers no new
sample for :data:`STALE_INTERVALS` of its intervals ("stale data"; on an accelerated
virtual lab also :data:`STALE_MIN_REAL_S` of real time).

On an accelerated clock the readings must also keep up with it: a stream whose newest sample is
more than :data:`MAX_LAG_REAL_S` of real time behind the clock ends the run (:meth:`Supervisor.lag`),
saying the speed asked and the speed the host held.  A host too slow for its clock would otherwise
fall further behind without end, its instruments' buffers overflowing.
"""

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from .cells import CellSpec
from .language import Protocol
from .schema import Limits
from .states import Trip

VOLTAGE_MARGIN = 0.05  # V beyond the cell's window before a trip
DTDT_WINDOW = 10  # samples in the dT/dt fit
DTDT_MIN_SPAN = 9.0  # s the fit must span
CHAMBER_MARGIN_K = 10.0  # K above the protocol's highest setpoint before the chamber trips
STALE_INTERVALS = 2.0  # intervals without a new sample before a stream is stale …
#: … and, on an accelerated clock, at least this much real time: a virtual lab whose host falls
#: behind its clock for a moment (a busy machine) delivers late, not never.
STALE_MIN_REAL_S = 5.0
MAX_LAG_REAL_S = 3.0  # on an accelerated clock: readings this far behind it (real time) end the run
HELD_OVER_S = 30.0  # real seconds the speed a host held is measured over


def chamber_setpoints(protocol: Protocol) -> list[float]:
    """Every chamber temperature the protocol asks for."""
    return [t for leaf in protocol.leaves for part in leaf.parts for t in part.spec.setpoints()]


def effective_limits(protocol: Protocol, chamber_max: float | None = None) -> Limits:
    """The protocol's limits, completed from the cell's rating (unless an abuse test) and the chamber's.

    ``chamber_max``: the lab file's ``max_temperature`` of the run's chamber (None: no chamber).
    """
    cell: CellSpec = protocol.cell
    given = {k: v for k, v in protocol.limits.model_dump().items() if v is not None}
    rated = {}
    if not protocol.abuse:
        rated = {
            "voltage_min": cell.v_min - VOLTAGE_MARGIN,
            "voltage_max": cell.v_max + VOLTAGE_MARGIN,
            "current_max": 1.05 * max(cell.max_charge_current, cell.max_discharge_current),
            "temperature_max": cell.t_max + 10.0,
        }
    limits = rated | given
    if chamber_max is not None:
        setpoints = chamber_setpoints(protocol)
        candidates = [chamber_max, limits.get("chamber_temperature_max", math.inf)]
        if setpoints:
            candidates.append(max(setpoints) + CHAMBER_MARGIN_K)
        limits["chamber_temperature_max"] = min(candidates)
    return Limits.model_construct(**limits)


@dataclass
class _Watch:
    interval: float  # lab seconds between samples
    last: float  # lab clock time of the last new sample (or of the start of watching)
    real: float  # real time of the same


class Supervisor:
    """Checks blocks of samples and the streams' freshness; raises :class:`Trip` at the first limit crossed.

    ``columns`` maps a signal to the DAQ column that carries it (``cell temperature``, ``gas``);
    ``scale``: how much faster than real time the lab clock runs.
    """

    def __init__(self, limits: Limits, columns: dict[str, str] | None = None, scale: float = 1.0) -> None:
        self.limits = limits
        self.columns = dict(columns or {})
        self.scale = scale
        self.real_floor = STALE_MIN_REAL_S if scale > 1 else 0.0
        self.pace: dict[str, deque[tuple[float, float]]] = {}  # stream -> (real time, newest sample) lately
        self.recent: deque[tuple[float, float]] = deque(maxlen=DTDT_WINDOW)
        self.watches: dict[str, _Watch] = {}

    def tests(self, stream: str) -> list[tuple[str, str, str, float | None, str]]:
        """(column, signal, how, limit, units) for every supervised column of ``stream``."""
        lim = self.limits
        if stream == "cycler":
            return [
                ("voltage", "voltage", "above", lim.voltage_max, "V"),
                ("voltage", "voltage", "below", lim.voltage_min, "V"),
                ("current", "current", "|above|", lim.current_max, "A"),
            ]
        if stream == "chamber":
            return [("temperature", "chamber temperature", "above", lim.chamber_temperature_max, "°C")]
        if stream == "rig":
            return [("force", "force", "above", lim.force_max, "kN")]
        if stream == "daq":
            out = []
            if "cell temperature" in self.columns:
                out.append((self.columns["cell temperature"], "cell temperature", "above", lim.temperature_max, "°C"))
            if "gas" in self.columns:
                out.append((self.columns["gas"], "gas", "above", lim.gas_max, "ppm"))
            return out
        return []

    def check(self, stream: str, block: dict[str, np.ndarray], run_time: np.ndarray) -> None:
        """Raise :class:`Trip` for the earliest sample of ``block`` that crosses a limit or is no number."""
        first: tuple[int, str, str] | None = None  # (row, signal, reason)
        for column, signal, how, limit, units in self.tests(stream):
            values = block.get(column)
            if values is None or not len(values):
                continue
            label = signal if stream != "cycler" and stream != "rig" else f"{stream} {column}"
            invalid = np.flatnonzero(~np.isfinite(values))
            if len(invalid) and (first is None or invalid[0] < first[0]):
                i = int(invalid[0])
                first = (
                    i,
                    "invalid reading",
                    f"{label} reading {values[i]} (not a finite number) at t = {run_time[i]:.1f} s",
                )
            if limit is None:
                continue
            x = np.abs(values) if how == "|above|" else values
            bad = np.flatnonzero(x < limit) if how == "below" else np.flatnonzero(x > limit)
            if len(bad) and (first is None or bad[0] < first[0]):
                i, word = int(bad[0]), "below" if how == "below" else "above"
                said = f"{label} {values[i]:.4g} {units} {word} the {limit:g} {units} limit"
                first = (i, signal, f"{said} at t = {run_time[i]:.1f} s")
        if first is not None:
            raise Trip(first[1], first[2], float(run_time[first[0]]))
        column = self.columns.get("cell temperature")
        if stream == "daq" and self.limits.dTdt_max is not None and column in block:
            self._dtdt(block[column], run_time, self.limits.dTdt_max)

    def _dtdt(self, temps: np.ndarray, times: np.ndarray, limit: float) -> None:
        window = self.recent
        for t, temp in zip(times, temps, strict=True):
            window.append((float(t), float(temp)))
            if len(window) < DTDT_WINDOW or window[-1][0] - window[0][0] < DTDT_MIN_SPAN:
                continue
            ts, ys = np.array(window).T
            slope = float(np.polyfit(ts - ts[0], ys, 1)[0])
            if slope > limit:
                reason = f"cell dT/dt {slope:.3g} K/s above the {limit:g} K/s limit at t = {t:.1f} s ({temp:.1f} °C)"
                raise Trip("dT/dt", reason, t)

    # -- freshness ------------------------------------------------------------------------------

    def watch(self, stream: str, interval: float, now: float, real: float) -> None:
        """Expect a new sample of ``stream`` every ``interval`` lab seconds from ``now`` on."""
        self.watches[stream] = _Watch(interval, now, real)

    def unwatch(self, stream: str) -> None:
        self.watches.pop(stream, None)

    def fresh(self, stream: str, now: float, real: float) -> None:
        """``stream`` delivered new samples at lab time ``now`` (real time ``real``)."""
        watch = self.watches.get(stream)
        if watch is not None:
            watch.last, watch.real = now, real

    def check_fresh(self, now: float, real: float, run_time: float) -> None:
        """Raise :class:`Trip` if a watched stream has gone :data:`STALE_INTERVALS` intervals without a sample."""
        for stream, w in self.watches.items():
            silent = now - w.last
            if silent > STALE_INTERVALS * w.interval and real - w.real >= self.real_floor:
                reason = (
                    f"stale data: the {stream} stream gave no new sample for {silent:.3g} s "
                    f"({silent / w.interval:.1f} × its {w.interval:g} s interval) at t = {run_time:.1f} s"
                )
                raise Trip("stale data", reason, run_time)

    # -- keeping up with an accelerated clock -------------------------------------------------------

    def lag(self, stream: str, newest: float, now: float, real: float) -> str | None:
        """Why the run cannot go on if ``stream``'s ``newest`` sample (run time) is more than
        :data:`MAX_LAG_REAL_S` of real time behind the clock's ``now`` (run time); else None.

        ``real``: real time (monotonic).  The speed the host held is the streams' progress in lab
        seconds per real second over the last :data:`HELD_OVER_S`.
        """
        if self.scale <= 1:  # a real lab's instruments keep their own time: their clocks may drift apart
            return None
        pace = self.pace.setdefault(stream, deque())
        pace.append((real, newest))
        while real - pace[0][0] > HELD_OVER_S:
            pace.popleft()
        behind = now - newest
        if behind <= MAX_LAG_REAL_S * self.scale:
            return None
        real0, newest0 = pace[0]
        held = (newest - newest0) / (real - real0) if real > real0 else 0.0
        advice = f"run it at --speed {_two_figures(0.8 * held):g} or slower" if held >= 1 else "it held no speed"
        return (
            f"the virtual lab cannot follow its ×{self.scale:g} clock: the newest {stream} reading was "
            f"{behind:.0f} s ({behind / self.scale:.1f} s of real time) behind it at t = {now:.1f} s; "
            f"this host held ×{held:.0f}, {advice}"
        )


def _two_figures(x: float) -> float:
    """``x`` rounded down to two significant figures."""
    if x <= 0:
        return 0.0
    step = 10.0 ** (math.floor(math.log10(x)) - 1)
    return math.floor(x / step) * step
