"""Rig steps: drive the nail or crush platen, hold, retract."""

from typing import Any, Literal

from pydantic import model_validator

from ...instruments import roles
from ..cells import CellSpec
from ..schema import KN, Mm, MmPerS, Volts
from ..states import RunEnded, RunState
from ._step import Activity, Step, StepContext

RIG_ACQUISITION_HZ = 1000  # fast channel rate while the ram moves (≥ 1 kHz: docs/standards.md §9)
RIG_HOLD_HZ = 100  # while the ram holds (force and displacement: 100 Hz–1 kHz, docs/standards.md §9)


class PressStep(Step):
    """Drive the nail or platen at ``speed`` until the first of depth, force or voltage drop."""

    mode: Literal["nail", "crush"]
    speed: MmPerS
    depth: Mm | None = None
    force: KN | None = None
    voltage_drop: Volts | None = None

    @model_validator(mode="after")
    def _check(self) -> "PressStep":
        if self.depth is None and self.force is None and self.voltage_drop is None:
            raise ValueError("a press needs at least one stop: depth, force or voltage_drop")
        return self


class Retract(Step):
    speed: MmPerS = 5.0


def check(s: Any, hw: roles.RigLimits, cell: CellSpec, rated: bool) -> list[str]:
    """A press or retraction within the rig's force, travel and speed."""
    out: list[str] = []
    if getattr(s, "force", None) is not None and s.force > hw.max_force:
        out.append(f"{s.force:g} kN exceeds the rig's {hw.max_force:g} kN")
    if getattr(s, "depth", None) is not None and s.depth > hw.max_depth:
        out.append(f"{s.depth:g} mm exceeds the rig's {hw.max_depth:g} mm of travel")
    if s.speed > hw.max_speed:
        out.append(f"{s.speed:g} mm/s exceeds the rig's {hw.max_speed:g} mm/s")
    elif s.speed < hw.min_speed:
        out.append(f"{s.speed:g} mm/s is below the rig's slowest controlled speed, {hw.min_speed:g} mm/s")
    return out


class Pressing(Activity):
    pausable = False

    def begin(self, r: StepContext) -> None:
        s: PressStep = self.spec
        r.rig.acquisition_rate = RIG_ACQUISITION_HZ
        r.rig.press(roles.Press(s.mode, s.speed, roles.PressStop(s.depth, s.force, s.voltage_drop)))
        r.rig_recording(True)

    def done(self, r: StepContext) -> bool:
        status = r.rig.status()
        if status == "estop":
            raise RunEnded(RunState.TRIPPED, "the rig's e-stop is latched")
        if status == "pressing":
            return False
        r.rig_recording(False)
        return True


class Holding(Activity):
    """Hold the ram where it stands, recording the fast channels (a crush's hold)."""

    pausable = False

    def begin(self, r: StepContext) -> None:
        r.rig.acquisition_rate = RIG_HOLD_HZ
        r.rig.start_acquisition()
        r.rig_recording(True)
        r.rig.hold(self.spec.duration)

    def done(self, r: StepContext) -> bool:
        if r.rig.status() == "holding":
            return False
        r.rig_recording(False)
        return True


class Retracting(Activity):
    pausable = False

    def begin(self, r: StepContext) -> None:
        r.rig.retract(self.spec.speed)

    def done(self, r: StepContext) -> bool:
        return r.rig.status() == "idle"
