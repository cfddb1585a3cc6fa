"""Cycler steps: constant current, CC-CV, CV, pulses, rests and constant power on a cycler channel."""

import math
from dataclasses import replace
from typing import Any

from pydantic import model_validator

from ...instruments.roles import CyclerLimits, CyclerStep
from ..cells import CellSpec
from ..schema import Amps, Seconds, Volts, Watts
from ..states import RunEnded, RunState, Trip
from ._step import Activity, Duration, Step, StepContext

CV_END_C_RATE = 20  # a CV phase without until_current ends at C/20 (docs/standards.md §8)


class CC(Step):
    """Constant current (signed: + charge, − discharge) until a voltage, or for at most ``max_time``."""

    current: Amps
    until_voltage: Volts | None = None
    max_time: Seconds = 86_400.0

    @model_validator(mode="after")
    def _check(self) -> "CC":
        if self.current == 0:
            raise ValueError("current must not be zero (use rest)")
        return self

    def charges(self) -> bool:
        return self.current > 0

    def discharges(self) -> bool:
        return self.current < 0


class CCCV(Step):
    """Constant current to ``voltage``, then hold it until the current falls to ``until_current``."""

    current: Amps
    voltage: Volts
    until_current: Amps | None = None
    max_time: Seconds = 86_400.0

    def charges(self) -> bool:
        return self.current > 0

    def discharges(self) -> bool:
        return self.current < 0


class CV(Step):
    """Hold ``voltage`` until the current magnitude falls to ``until_current``."""

    voltage: Volts
    until_current: Amps | None = None
    max_time: Seconds = 86_400.0
    current_limit: Amps | None = None

    def charges(self) -> bool:
        return True


class Pulse(Step):
    """A constant-current pulse of ``duration`` (signed current; a charge pulse never starts a cycle)."""

    current: Amps
    duration: Seconds

    def discharges(self) -> bool:
        return self.current < 0


class Power(Step):
    """Constant power (signed: + charge, − discharge), the current re-set from the voltage every ``segment``."""

    power: Watts
    until_voltage: Volts | None = None
    max_time: Seconds = 86_400.0
    segment: Seconds = 10.0

    def charges(self) -> bool:
        return self.power > 0

    def discharges(self) -> bool:
        return self.power < 0


def check(s: Any, hw: CyclerLimits, cell: CellSpec, rated: bool) -> list[str]:
    """A cycler step within the cycler's range and, unless ``rated`` is off, the cell's ratings."""
    out: list[str] = []
    for v in (getattr(s, "voltage", None), getattr(s, "until_voltage", None)):
        if v is None:
            continue
        if not hw.min_voltage <= v <= hw.max_voltage:
            out.append(f"{v:g} V is outside the cycler's {hw.min_voltage:g}–{hw.max_voltage:g} V")
        elif rated and v > cell.v_max:
            out.append(f"{v:g} V is above the cell's {cell.v_max:g} V maximum")
        elif rated and v < cell.v_min:
            out.append(f"{v:g} V is below the cell's {cell.v_min:g} V minimum")
    current = getattr(s, "current", None)
    if current is not None:
        if abs(current) > hw.max_current:
            out.append(f"{abs(current):g} A exceeds the cycler's {hw.max_current:g} A")
        elif rated and current > cell.max_charge_current:
            out.append(f"{current:g} A charge exceeds the cell's {cell.max_charge_current:g} A")
        elif rated and -current > cell.max_discharge_current:
            out.append(f"{-current:g} A discharge exceeds the cell's {cell.max_discharge_current:g} A")
    if isinstance(s, Power) and rated and abs(s.power) / cell.v_min > max(cell.max_discharge_current, 1e-9):
        out.append(f"{abs(s.power):g} W would draw more than the cell's rated current near {cell.v_min:g} V")
    return out


def channel_step(s: Step, capacity_ah: float) -> CyclerStep:
    """What the cycler channel is told to run for a ``cc``, ``cccv``, ``cv``, ``pulse`` or ``rest``."""
    cv_end = capacity_ah / CV_END_C_RATE
    if isinstance(s, CC):
        up = s.current > 0
        return CyclerStep(
            "cc",
            s.max_time,
            s.current,
            until_voltage_above=s.until_voltage if up else None,
            until_voltage_below=None if up else s.until_voltage,
        )
    if isinstance(s, CCCV):
        end = abs(s.until_current) if s.until_current is not None else cv_end
        return CyclerStep("cccv", s.max_time, s.current, s.voltage, until_current_below=end)
    if isinstance(s, CV):
        end = abs(s.until_current) if s.until_current is not None else cv_end
        return CyclerStep("cv", s.max_time, abs(s.current_limit or 0.0), s.voltage, until_current_below=end)
    if isinstance(s, Pulse):
        return CyclerStep("cc", s.duration, s.current)
    if isinstance(s, Duration):
        return CyclerStep("rest", s.duration)
    raise TypeError(f"{type(s).__name__} is not a cycler step")


class CyclerDriven(Activity):
    """A step the cycler channel runs: the channel's own end states end the run; pausing stops it, confirmed.

    A channel that can test limits itself (``guard``, the BT2200's ``FAIL`` tests) is given the run's
    voltage and current limits before every step, so the instrument opens the circuit at a crossing;
    a step it fails ends the run as a supervisor's :class:`~..states.Trip` does.
    """

    def arm(self, r: StepContext) -> None:
        """The run's electrical limits into the channel, where the channel can test them itself."""
        guard = getattr(r.cycler, "guard", None)
        if guard is not None:
            lim = r.limits
            guard(voltage_min=lim.voltage_min, voltage_max=lim.voltage_max, current_max=lim.current_max)

    def cycler_status(self, r: StepContext) -> str:
        status = r.cycler.status()
        if status == "failed":
            raise self.limit_trip(r)
        if status == "aborted":
            why = f"the cycler channel was aborted outside cellrig in step {self.leaf.number}"
            raise RunEnded(RunState.FAILED, why)
        r.cycler_running(status == "running")
        return status

    def limit_trip(self, r: StepContext) -> Trip:
        """The trip for a step the channel failed itself, naming signal, value and limit when it was a guard."""
        now, step = r.now(), self.leaf.number
        try:
            why = getattr(r.cycler, "failure", lambda: None)()
        except Exception as exc:  # the step failed all the same: trip, saying what could not be read
            why, unread = None, f" (which test could not be read: {type(exc).__name__}: {exc})"
        else:
            unread = ""
        g = why.guard if why is not None else None
        if g is None:
            test = f" ({why.kind} {why.level:g}, measured {why.measured:.4g})" if why is not None else unread
            return Trip("cycler limit test", f"the cycler's own limit test failed in step {step}{test}", now)
        units = "V" if g.signal == "voltage" else "A"
        at = f" at {g.level:g} {units}" if g.level != g.limit else ""
        said = f"cycler {g.signal} {why.measured:.6g} {units} {g.word} the {g.limit:g} {units} limit"
        return Trip(g.signal, f"{said} (the cycler's own test{at}, read at t = {now:.1f} s)", now)

    def pause(self, r: StepContext) -> None:
        """Stop the channel and read back that it stopped (a command alone can vanish into a dead connection)."""
        super().pause(r)
        r.cycler_running(False)
        r.cycler.stop()
        if r.cycler.status() == "running":
            step = self.leaf.number
            raise RunEnded(RunState.FAILED, f"the cycler channel still ran after the pause's stop in step {step}")


class ChannelStep(CyclerDriven):
    """A step the channel runs to its own end: ``cc``, ``cccv``, ``cv``, ``pulse``, ``rest``."""

    def begin(self, r: StepContext) -> None:
        step = channel_step(self.spec, r.cell.capacity_ah)
        remaining = max(step.max_time - self.elapsed, 1.0)
        self.arm(r)
        r.cycler.start_step(replace(step, max_time=remaining))

    def done(self, r: StepContext) -> bool:
        return self.cycler_status(r) != "running"


class PowerSegments(CyclerDriven):
    """Constant power as constant-current segments, each set from the last measured voltage."""

    def begin(self, r: StepContext) -> None:
        self.segment_end = -math.inf
        self.arm(r)
        self._segment(r)

    def _segment(self, r: StepContext) -> None:
        s: Power = self.spec
        volts = r.voltage() or r.cell.v_max
        current = s.power / max(volts, 0.1)
        until = {"until_voltage_above": s.until_voltage} if current > 0 else {"until_voltage_below": s.until_voltage}
        r.cycler.start_step(CyclerStep("cc", s.segment, current, **until))
        self.segment_end = r.now() + s.segment

    def done(self, r: StepContext) -> bool:
        s: Power = self.spec
        v, end = r.voltage(), s.until_voltage
        reached = v is not None and end is not None and (v >= end if s.power > 0 else v <= end)
        if reached or self.running_for(r) >= s.max_time:
            r.cycler.stop()
            return True
        status = self.cycler_status(r)
        if status != "running":
            if s.until_voltage is not None and status == "done" and r.now() < self.segment_end - 1e-6:
                return True  # the segment ended on its voltage test
            self._segment(r)
        return False
