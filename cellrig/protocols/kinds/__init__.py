"""Step kinds: one family module each for the cycler, the chamber, the rig and steps on no instrument,
and the one table that names them.

A kind is a row of :data:`KINDS`: its settings (a :class:`Step` model, which says whether it
charges, discharges or asks for chamber temperatures), the lab role it drives, the field a
scalar short form fills (``rest: 10 min``), its :class:`Activity` and its pre-flight check.
The language validates a step with the row's model; pre-flight runs its check against the
role's hardware limits; the engine runs its activity, which asks its run only what
:class:`StepContext` lists.  ``call``, ``repeat`` and ``parallel`` are control flow, compiled
by :mod:`..language`.
"""

from ..program import Leaf
from . import chamber, cycler, general, rig
from ._step import Activity, Duration, Kind, Step, StepContext

__all__ = ["KINDS", "Activity", "Duration", "Kind", "Step", "StepContext", "activity"]

KINDS: dict[str, Kind] = {
    "cc": Kind(cycler.CC, "cycler", cycler.ChannelStep, check=cycler.check),
    "cccv": Kind(cycler.CCCV, "cycler", cycler.ChannelStep, check=cycler.check),
    "cv": Kind(cycler.CV, "cycler", cycler.ChannelStep, check=cycler.check),
    "rest": Kind(Duration, "cycler", cycler.ChannelStep, short="duration"),
    "pulse": Kind(cycler.Pulse, "cycler", cycler.ChannelStep, check=cycler.check),
    "power": Kind(cycler.Power, "cycler", cycler.PowerSegments, check=cycler.check),
    "set": Kind(chamber.SetTemperature, "chamber", chamber.ChamberRequest, short="temperature", check=chamber.check),
    "ramp": Kind(chamber.Ramp, "chamber", chamber.ChamberRequest, check=chamber.check),
    "soak": Kind(chamber.Soak, "chamber", chamber.Soaking),
    "hws": Kind(chamber.HeatWaitSeek, "chamber", chamber.HeatWaitSeeking, check=chamber.check),
    "press": Kind(rig.PressStep, "rig", rig.Pressing, check=rig.check),
    "hold": Kind(Duration, "rig", rig.Holding, short="duration"),
    "retract": Kind(rig.Retract, "rig", rig.Retracting, short="speed", check=rig.check),
    "observe": Kind(Duration, None, general.Timed, short="duration"),
    "wait": Kind(Duration, None, general.Timed, short="duration"),
    "note": Kind(general.Note, None, general.Noting, short="text"),
}


class Together(Activity):
    """Steps on different instruments at once (``parallel``); done when all are."""

    def __init__(self, leaf: Leaf) -> None:
        super().__init__(leaf)
        self.parts = [activity(part) for part in leaf.parts]
        self.finished: set[int] = set()
        self.pausable = all(p.pausable for p in self.parts)

    def begin(self, r: StepContext) -> None:
        for p in self.parts:
            p.start(r)

    def done(self, r: StepContext) -> bool:
        for i, p in enumerate(self.parts):
            if i not in self.finished and p.done(r):
                self.finished.add(i)
        return len(self.finished) == len(self.parts)

    def pause(self, r: StepContext) -> None:
        for i, p in enumerate(self.parts):
            if i not in self.finished:
                p.pause(r)

    def resume(self, r: StepContext) -> None:
        for i, p in enumerate(self.parts):
            if i not in self.finished:
                p.resume(r)


def activity(leaf: Leaf) -> Activity:
    """The activity that runs ``leaf``."""
    return Together(leaf) if leaf.kind == "parallel" else KINDS[leaf.kind].activity(leaf)
