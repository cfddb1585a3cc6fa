"""The lab's one clock: the wall clock for a real lab, a scaled clock for the virtual lab.

Everything that waits or timestamps in a run asks the lab's clock, so the virtual lab
can run a month of cycling in minutes while drivers, engine and simulators agree on
what time it is.
"""

import math
import time
from typing import Protocol


class Clock(Protocol):
    """Seconds on a monotonic scale, and a way to wait for them."""

    scale: float

    def now(self) -> float:
        """Seconds since the clock started."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class ScaledClock:
    """A clock running ``scale`` times faster than real time, from ``origin`` (Unix time; default: now).

    Two processes given the same scale and origin agree on the time: a virtual lab and the
    engine driving it, or a run resumed after its engine died.
    """

    def __init__(self, scale: float = 1.0, origin: float | None = None) -> None:
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"clock scale must be a finite positive number, not {scale}")
        if origin is not None and not math.isfinite(origin):
            raise ValueError(f"clock origin must be a finite Unix time, not {origin}")
        self.scale = float(scale)
        self.origin = time.time() if origin is None else float(origin)

    def now(self) -> float:
        return (time.time() - self.origin) * self.scale

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.scale)

    def __repr__(self) -> str:
        return f"ScaledClock(scale={self.scale:g}, now={self.now():.1f} s)"


def wall_clock() -> ScaledClock:
    """The real lab's clock."""
    return ScaledClock(1.0)


class ManualClock:
    """A clock that moves only when told: for tests and for stepping a simulation by hand."""

    scale = 1.0

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(seconds, 0.0)
