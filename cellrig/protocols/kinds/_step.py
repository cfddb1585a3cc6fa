"""What every step kind is made of: its settings, what it may ask of its run, and its activity."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ...instruments.roles import AbuseRig, Cycler
from ..cells import CellSpec
from ..program import Leaf
from ..schema import Limits, Model, Seconds


class Step(Model):
    """A step's settings as the protocol file gives them, and what the run needs to know of them."""

    def charges(self) -> bool:
        """Whether the step charges the cell (after a discharge, a charge starts a new cycle)."""
        return False

    def discharges(self) -> bool:
        """Whether the step discharges the cell (a loop's ``until`` measures its capacity)."""
        return False

    def setpoints(self) -> list[float]:
        """Every chamber temperature (°C) the step asks for."""
        return []


class StepContext(Protocol):
    """Everything a step may ask of its run; a step reads these and drives its instrument, nothing else."""

    @property
    def cycler(self) -> Cycler: ...
    @property
    def rig(self) -> AbuseRig: ...
    @property
    def cell(self) -> CellSpec: ...
    @property
    def limits(self) -> Limits:
        """The limits the run is supervised to."""

    def now(self) -> float:
        """Seconds since the run started, on the lab clock."""

    def event(self, kind: str, message: str) -> None:
        """Record an event in the run file."""

    def voltage(self) -> float | None:
        """The cycler's last recorded voltage."""

    def cycler_running(self, running: bool) -> None:
        """Say whether a cycler step runs (its records are then watched for staleness)."""

    def cell_temperature(self) -> float | None:
        """The last reading of the cell's thermocouple."""

    def chamber_reading(self) -> tuple[float, float] | None:
        """The chamber's last (temperature, setpoint)."""

    def chamber_request(self, kind: str, temperature: float, rate: float | None = None) -> None:
        """Ask the (possibly shared) chamber for a ``set`` or a ``ramp``."""

    def chamber_granted(self) -> bool:
        """Whether the chamber does what this run asked (RunEnded if runs sharing it disagree)."""

    def rig_recording(self, on: bool) -> None:
        """Record the rig's fast channels from now on, or stop and record what the rig buffered."""


class Activity:
    """A step in progress.  ``elapsed`` counts the lab time it has run (pauses excluded).

    The engine polls every instrument of the run between calls; an activity only drives its
    instrument and judges its own end.  Raising :class:`~..states.RunEnded` ends the run.
    """

    pausable = True

    def __init__(self, leaf: Leaf) -> None:
        self.leaf, self.spec = leaf, leaf.spec
        self.elapsed = 0.0
        self.since = 0.0

    def start(self, r: StepContext) -> None:
        self.since = r.now()
        self.begin(r)

    def begin(self, r: StepContext) -> None:
        """Drive the instrument (at the start, and again when continuing after a pause)."""

    def done(self, r: StepContext) -> bool:
        return True

    def running_for(self, r: StepContext) -> float:
        return self.elapsed + r.now() - self.since

    def pause(self, r: StepContext) -> None:
        self.elapsed += r.now() - self.since

    def resume(self, r: StepContext) -> None:
        self.since = r.now()
        self.begin(r)


#: A check of a step's settings before anything moves: (settings, the hardware limits of the role the
#: kind drives, the cell, whether the cell's ratings bind) -> every reason it must not run.
StepCheck = Callable[[Any, Any, CellSpec, bool], list[str]]


@dataclass(frozen=True)
class Kind:
    """A step kind: its settings, the role it drives, the field a scalar short form fills, its activity, its check."""

    model: type[Step]
    role: str | None
    activity: type[Activity]
    short: str | None = None
    check: StepCheck | None = None


class Duration(Step):
    """A step that lasts ``duration``: a cycler ``rest``, a rig ``hold``, or ``wait``/``observe`` (every
    stream still recorded)."""

    duration: Seconds
