"""Instruments several runs use at once: a scanning DAQ and a chamber holding several cells.

A :class:`DAQHub` scans the channels of every run once and hands each run its own columns.
A :class:`ChamberShare` changes a shared chamber's setpoint only when every run in it asks
for the same one, or when the run the campaign names as leader asks; once a run in it
trips on a thermal signal the chamber stays safe and every other run in it stops.
"""

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..clock import Clock
from ..instruments.roles import DAQChannel
from .preflight import Probe


class Timebase:
    """Maps an instrument's sample times onto the lab clock (offset fixed at the first batch)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.offset: float | None = None

    def __call__(self, times: np.ndarray) -> np.ndarray:
        if self.offset is None and len(times):
            self.offset = self.clock.now() - float(times[-1])
        return np.asarray(times, dtype=np.float64) + (self.offset or 0.0)


class DAQHub:
    """One scanning DAQ serving several runs: each subscribes named probes, takes its own columns."""

    def __init__(self, daq: Any, clock: Clock, interval: float = 60.0) -> None:
        self.daq, self.clock, self.interval = daq, clock, interval
        self.lock = threading.Lock()
        self.probes: dict[str, dict[str, Probe]] = {}
        self.buffers: dict[str, list[dict[str, np.ndarray]]] = {}
        self.timebase = Timebase(clock)
        self.scanning = False

    def subscribe(self, key: str, probes: dict[str, Probe]) -> None:
        with self.lock:
            self.probes[key] = dict(probes)
            self.buffers[key] = []
            if self.scanning:  # a new channel set: scan again with every subscriber's channels
                self._start()

    def leave(self, key: str) -> None:
        with self.lock:
            self.probes.pop(key, None)
            self.buffers.pop(key, None)
            if not self.probes and self.scanning:
                self.daq.stop()
                self.scanning = False

    @property
    def period(self) -> float:
        """Lab seconds between scans, as the DAQ runs them."""
        return max(self.interval, self.daq.limits.min_interval)

    def start(self) -> None:
        with self.lock:
            if not self.scanning:
                self._start()

    def _start(self) -> None:
        channels = {
            f"ch{p.channel}": DAQChannel(p.channel, "tc" if p.kind == "tc" else "volt", p.tc_type)
            for probes in self.probes.values()
            for p in probes.values()
        }
        self.daq.configure_channels(channels)
        self.daq.start_scan(self.period)
        self.timebase = Timebase(self.clock)
        self.scanning = True

    def take(self, key: str) -> dict[str, np.ndarray]:
        """New scans for ``key``: ``time`` on the lab clock plus one column per probe name."""
        with self.lock:
            if self.scanning:
                scans = self.daq.fetch_samples()
                if len(scans.get("time", ())):
                    t = self.timebase(scans["time"])
                    for k, probes in self.probes.items():
                        cols = {
                            name: scans[f"ch{p.channel}"] * (p.scale if p.kind != "tc" else 1.0)
                            for name, p in probes.items()
                        }
                        self.buffers[k].append({"time": t, **cols})
            blocks = self.buffers.get(key) or []
            if key in self.buffers:
                self.buffers[key] = []
        if not blocks:
            return {}
        return {name: np.concatenate([b[name] for b in blocks]) for name in blocks[0]}


@dataclass
class _Request:
    kind: str  # "set" | "ramp"
    temperature: float
    rate: float | None = None


@dataclass
class ChamberShare:
    """A chamber several runs sit in.  Setpoints change on agreement, or when ``lead`` asks."""

    chamber: Any
    members: set[str] = field(default_factory=set)
    lead: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: dict[str, _Request] = field(default_factory=dict)
    applied: dict[str, _Request] = field(default_factory=dict)
    tripped: tuple[str, str] | None = None  # (run, why) once a thermal trip made the chamber safe

    def trip(self, key: str, why: str) -> None:
        """A run in the chamber tripped on a thermal signal: no setpoint is applied again."""
        with self.lock:
            if self.tripped is None:
                self.tripped = (key, why)

    def join(self, key: str) -> None:
        with self.lock:
            self.members.add(key)

    def leave(self, key: str) -> bool:
        """Leave the chamber; True if nobody is left (the chamber may go to its safe state)."""
        with self.lock:
            self.members.discard(key)
            self.pending.pop(key, None)
            self.applied.pop(key, None)
            self._settle()
            return not self.members

    def request(self, key: str, kind: str, temperature: float, rate: float | None = None) -> None:
        with self.lock:
            self.pending[key] = _Request(kind, temperature, rate)
            self.applied.pop(key, None)
            self._settle()

    def granted(self, key: str) -> bool:
        """Whether ``key``'s last request is in force (for a follower: whether the leader runs the chamber)."""
        with self.lock:
            return key in self.applied

    def conflict(self) -> str | None:
        """Why waiting runs can never agree, or None."""
        with self.lock:
            if self.lead is not None or set(self.pending) != self.members or not self.pending:
                return None
            wants = {(r.kind, r.temperature, r.rate) for r in self.pending.values()}
            if len(wants) > 1:
                told = ", ".join(f"{k} wants {r.temperature:g} °C" for k, r in sorted(self.pending.items()))
                return f"runs sharing the chamber ask for different setpoints ({told})"
            return None

    def _settle(self) -> None:
        if self.lead is not None:
            for key in [k for k in self.pending if k != self.lead]:
                self.applied[key] = self.pending.pop(key)  # followers: the leader runs the chamber
            if self.lead in self.pending:
                self._apply(self.pending[self.lead])
                self.applied[self.lead] = self.pending.pop(self.lead)
            return
        if not self.pending or set(self.pending) != self.members:
            return
        wants = list(self.pending.values())
        if all(w == wants[0] for w in wants):
            self._apply(wants[0])
            self.applied.update(self.pending)
            self.pending.clear()

    def _apply(self, r: _Request) -> None:
        if self.tripped is not None:
            return
        if r.kind == "ramp":
            self.chamber.ramp_temperature(r.temperature, r.rate)
        else:
            self.chamber.set_temperature(r.temperature)
