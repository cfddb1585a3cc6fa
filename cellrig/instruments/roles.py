"""Role interfaces: what the engine may ask of a cycler channel, a chamber, a DAQ and an abuse rig.

The engine knows instruments only through these.  Each concrete driver (or the wrapper of
a stock pymeasure driver) implements one role.  Every role has ``identify()``, hardware
``limits`` it refuses to exceed before a byte is sent, ``configure_limits()`` to program
the instrument's own protection before a run, and ``safe_state()``: what "safe" means for
that instrument (outputs off, chamber to standby, press stopped and retracted).

Units everywhere: V, A, s, °C, K/min, mm, mm/s, kN; current positive when charging.
Buffered samples come back as :class:`Samples`: a dict of equal-length numpy arrays with a
``time`` column (seconds on the instrument's clock) plus the role's columns.
"""

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np

Samples = dict[str, np.ndarray]


@dataclass(frozen=True)
class Identity:
    """Who an instrument says it is (``*IDN?`` or its equivalent)."""

    manufacturer: str
    model: str
    serial: str = ""
    firmware: str = ""

    @classmethod
    def from_idn(cls, reply: str) -> "Identity":
        parts = [p.strip() for p in reply.split(",")] + ["", "", "", ""]
        return cls(*parts[:4])


# -- limits ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CyclerLimits:
    min_voltage: float  # V
    max_voltage: float  # V
    max_current: float  # A, either direction


@dataclass(frozen=True)
class ChamberLimits:
    min_temperature: float  # °C
    max_temperature: float  # °C
    max_ramp_rate: float  # K/min


@dataclass(frozen=True)
class DAQLimits:
    max_channels: int
    min_interval: float  # s between scans


@dataclass(frozen=True)
class RigLimits:
    max_force: float  # kN
    max_speed: float  # mm/s
    max_depth: float  # mm of travel
    min_speed: float = 0.0  # mm/s: the slowest the ram moves under control


# -- what the engine asks ------------------------------------------------------------------

CyclerMode = Literal["cc", "cv", "cccv", "rest"]


@dataclass(frozen=True)
class CyclerStep:
    """One step a cycler channel runs by itself until a termination condition.

    ``current`` is signed (+ charge, − discharge); for ``cccv`` the channel holds ``voltage``
    once reached; ``until_*`` end the step normally, ``max_time`` always ends it.
    """

    mode: CyclerMode
    max_time: float
    current: float = 0.0
    voltage: float | None = None
    until_voltage_above: float | None = None
    until_voltage_below: float | None = None
    until_current_below: float | None = None  # magnitude, for the CV phase


@runtime_checkable
class Cycler(Protocol):
    """One cycler channel (a channel of a multi-channel mainframe, or a whole SMU)."""

    limits: CyclerLimits

    def identify(self) -> Identity: ...
    def configure_limits(self, limits: CyclerLimits) -> None: ...
    def start_step(self, step: CyclerStep) -> None: ...
    def fetch_samples(self) -> Samples:  # time, voltage, current, step
        ...
    def status(self) -> str:  # "idle" | "running" | "done" | "failed" | "aborted"
        ...
    def stop(self) -> None: ...
    def safe_state(self) -> None: ...


@runtime_checkable
class Chamber(Protocol):
    """A thermal chamber or oven: one temperature loop."""

    limits: ChamberLimits

    def identify(self) -> Identity: ...
    def configure_limits(self, limits: ChamberLimits) -> None: ...
    def set_temperature(self, celsius: float) -> None: ...
    def ramp_temperature(self, celsius: float, rate_k_per_min: float) -> None: ...
    def read_temperature(self) -> float: ...
    def read_setpoint(self) -> float: ...
    def alarms(self) -> list[str]: ...
    def safe_state(self) -> None: ...


@dataclass(frozen=True)
class DAQChannel:
    """A channel to scan: ``kind`` "tc" (thermocouple, ``tc_type`` K/T/J…) or "volt"."""

    channel: int  # e.g. 101 = slot 1, channel 1
    kind: Literal["tc", "volt"] = "tc"
    tc_type: str = "K"
    range: float = 10.0  # V, for "volt"


@runtime_checkable
class DAQ(Protocol):
    """A scanning data logger."""

    limits: DAQLimits

    def identify(self) -> Identity: ...
    def configure_channels(self, channels: dict[str, DAQChannel]) -> None: ...
    def start_scan(self, interval: float) -> None: ...
    def fetch_samples(self) -> Samples:  # time plus one column per channel name
        ...
    def stop(self) -> None: ...
    def safe_state(self) -> None: ...


@dataclass(frozen=True)
class PressStop:
    """When a press stops: first of depth reached, force reached, or cell voltage dropped."""

    depth: float | None = None  # mm
    force: float | None = None  # kN
    voltage_drop: float | None = None  # V below the voltage at contact


@dataclass(frozen=True)
class Press:
    mode: Literal["nail", "crush"]
    speed: float  # mm/s
    stop: PressStop = field(default_factory=PressStop)


@runtime_checkable
class AbuseRig(Protocol):
    """A nail-penetration / crush press with load cell, displacement and a fast voltage channel."""

    limits: RigLimits
    # and a settable ``acquisition_rate`` (Hz of the fast channels), not declared here: reading it
    # queries the instrument, which an isinstance check of this protocol would do

    def identify(self) -> Identity: ...
    def configure_limits(self, limits: RigLimits) -> None: ...
    def start_acquisition(self) -> None: ...
    def stop_acquisition(self) -> None: ...
    def press(self, press: Press) -> None: ...
    def hold(self, seconds: float) -> None: ...
    def retract(self, speed: float) -> None: ...
    def estop(self) -> None: ...
    def status(self) -> str:  # "idle" | "pressing" | "holding" | "retracting" | "stopped" | "estop"
        ...
    def fetch_samples(self) -> Samples:  # time, position, force, voltage
        ...
    def safe_state(self) -> None: ...
