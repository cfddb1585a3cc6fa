"""What each kind of step does on the instruments: start it, tell when it is done, pause and continue it.

The engine polls every instrument of the run between calls; an activity only drives its
instrument and judges its own end.  Raising :class:`RunEnded` ends the run (a trip, a
failure) with a status and a reason.
"""

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..instruments.roles import CyclerStep, PressStop
from ..instruments.roles import Press as PressCommand
from . import language as L

if TYPE_CHECKING:
    from .engine import Runner

CV_END_C_RATE = 20  # a CV phase without until_current ends at C/20 (standards reference §8)
RIG_ACQUISITION_HZ = 1000  # fast channel rate while the ram moves (≥ 1 kHz: standards reference §9)
RIG_HOLD_HZ = 100  # while the ram holds (force and displacement: 100 Hz–1 kHz, standards reference §9)
REACHED_K = 1.0  # a chamber has reached a ramp's target within this


class RunEnded(Exception):
    """Ends a run with ``status`` (tripped, stopped, aborted, failed) and ``reason``."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status, self.reason = status, reason


class Activity:
    """A step in progress.  ``elapsed`` counts the lab time it has run (pauses excluded)."""

    pausable = True

    def __init__(self, leaf: L.Leaf) -> None:
        self.leaf, self.spec = leaf, leaf.spec
        self.elapsed = 0.0
        self.since = 0.0

    def start(self, r: "Runner") -> None:
        self.since = r.now()
        self.begin(r)

    def begin(self, r: "Runner") -> None:
        """Drive the instrument (at the start, and again when continuing after a pause)."""

    def done(self, r: "Runner") -> bool:
        return True

    def running_for(self, r: "Runner") -> float:
        return self.elapsed + r.now() - self.since

    def pause(self, r: "Runner") -> None:
        self.elapsed += r.now() - self.since

    def resume(self, r: "Runner") -> None:
        self.since = r.now()
        self.begin(r)


# -- cycler -----------------------------------------------------------------------------------


def cycler_step(leaf: L.Leaf, capacity_ah: float) -> CyclerStep:
    s = leaf.spec
    cv_end = capacity_ah / CV_END_C_RATE
    if isinstance(s, L.CC):
        up = s.current > 0
        return CyclerStep(
            "cc",
            s.max_time,
            s.current,
            until_voltage_above=s.until_voltage if up else None,
            until_voltage_below=None if up else s.until_voltage,
        )
    if isinstance(s, L.CCCV):
        end = abs(s.until_current) if s.until_current is not None else cv_end
        return CyclerStep("cccv", s.max_time, s.current, s.voltage, until_current_below=end)
    if isinstance(s, L.CV):
        end = abs(s.until_current) if s.until_current is not None else cv_end
        return CyclerStep("cv", s.max_time, abs(s.current_limit or 0.0), s.voltage, until_current_below=end)
    if leaf.kind == "rest":
        return CyclerStep("rest", s.duration)
    if isinstance(s, L.Pulse):
        return CyclerStep("cc", s.duration, s.current)
    raise TypeError(f"{leaf.kind} is not a cycler step")


def charging(leaf: L.Leaf) -> bool:
    s = leaf.spec
    if isinstance(s, L.CV):
        return True
    return getattr(s, "current", getattr(s, "power", 0.0)) > 0


class CyclerDriven(Activity):
    """A step the cycler channel runs: the channel's own end states end the run; pausing stops it, confirmed.

    A channel that can test limits itself (``guard``, the BT2200's ``FAIL`` tests) is given the run's
    voltage and current limits before every step, so the instrument opens the circuit at a crossing;
    a step it fails ends the run as a supervisor's :class:`~.supervisor.Trip` does.
    """

    def arm(self, r: "Runner") -> None:
        """The run's electrical limits into the channel, where the channel can test them itself."""
        guard = getattr(r.cycler, "guard", None)
        if guard is not None:
            lim = r.supervisor.limits
            guard(voltage_min=lim.voltage_min, voltage_max=lim.voltage_max, current_max=lim.current_max)

    def cycler_status(self, r: "Runner") -> str:
        status = r.cycler.status()
        if status == "failed":
            raise self.limit_trip(r)
        if status == "aborted":
            raise RunEnded("failed", f"the cycler channel was aborted outside cellrig in step {self.leaf.number}")
        r.cycler_running(status == "running")
        return status

    def limit_trip(self, r: "Runner") -> RunEnded:
        """The trip for a step the channel failed itself, naming signal, value and limit when it was a guard."""
        from .supervisor import Trip  # the supervisor builds on this module

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

    def pause(self, r: "Runner") -> None:
        """Stop the channel and read back that it stopped (a command alone can vanish into a dead connection)."""
        super().pause(r)
        r.cycler_running(False)
        r.cycler.stop()
        if r.cycler.status() == "running":
            raise RunEnded("failed", f"the cycler channel still ran after the pause's stop in step {self.leaf.number}")


class CyclerActivity(CyclerDriven):
    def __init__(self, leaf: L.Leaf, capacity_ah: float) -> None:
        super().__init__(leaf)
        self.step = cycler_step(leaf, capacity_ah)

    def begin(self, r: "Runner") -> None:
        remaining = max(self.step.max_time - self.elapsed, 1.0)
        self.arm(r)
        r.cycler.start_step(replace(self.step, max_time=remaining))

    def done(self, r: "Runner") -> bool:
        return self.cycler_status(r) != "running"


class PowerActivity(CyclerDriven):
    """Constant power as constant-current segments, each set from the last measured voltage."""

    def begin(self, r: "Runner") -> None:
        self.segment_end = -math.inf
        self.arm(r)
        self._segment(r)

    def _segment(self, r: "Runner") -> None:
        s: L.Power = self.spec
        volts = r.last_voltage or r.protocol.cell.v_max
        current = s.power / max(volts, 0.1)
        until = {"until_voltage_above": s.until_voltage} if current > 0 else {"until_voltage_below": s.until_voltage}
        r.cycler.start_step(CyclerStep("cc", s.segment, current, **until))
        self.segment_end = r.now() + s.segment

    def done(self, r: "Runner") -> bool:
        s: L.Power = self.spec
        v, end = r.last_voltage, s.until_voltage
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


# -- chamber ----------------------------------------------------------------------------------


class ChamberRequest(Activity):
    """``set`` (done once in force) and ``ramp`` (done when the chamber reaches the target)."""

    def begin(self, r: "Runner") -> None:
        s = self.spec
        r.chamber_request("ramp" if isinstance(s, L.Ramp) else "set", s.temperature, getattr(s, "rate", None))

    def done(self, r: "Runner") -> bool:
        if not r.chamber_granted():
            return False
        if isinstance(self.spec, L.SetTemperature):
            return True
        s: L.Ramp = self.spec
        reading = r.chamber_reading()
        if reading is not None and abs(reading[0] - s.temperature) <= REACHED_K:
            return True
        start = r.chamber_start or s.temperature
        allowed = abs(s.temperature - start) / s.rate * 60 + 7200
        if self.running_for(r) > allowed:
            raise RunEnded("failed", f"the chamber did not reach {s.temperature:g} °C within {allowed / 60:.0f} min")
        return False

    def resume(self, r: "Runner") -> None:
        self.since = r.now()


class Soak(Activity):
    """Until the probe stays within the tolerance of the chamber's setpoint for ``stable_for``."""

    def begin(self, r: "Runner") -> None:
        self.stable_since: float | None = None

    def done(self, r: "Runner") -> bool:
        s: L.Soak = self.spec
        reading = r.chamber_reading()
        if reading is None:
            return False
        probe = (r.cell_temperature() if s.probe == "cell" else None) or reading[0]
        if abs(probe - reading[1]) <= s.tolerance:
            self.stable_since = r.now() if self.stable_since is None else self.stable_since
            if r.now() - self.stable_since >= s.stable_for:
                return True
        else:
            self.stable_since = None
        if self.running_for(r) > s.max_time:
            raise RunEnded(
                "failed", f"not stable within ±{s.tolerance:g} K of the setpoint after {s.max_time / 3600:g} h"
            )
        return False


class HeatWaitSeek(Activity):
    """ARC heat-wait-seek: step the chamber, wait, seek self-heating; on an exotherm follow the cell."""

    pausable = False

    def begin(self, r: "Runner") -> None:
        s: L.HeatWaitSeek = self.spec
        self.target = s.start
        self.phase, self.phase_since = "heat", r.now()
        self.seek_from: tuple[float, float] | None = None
        r.chamber_request("ramp", self.target, s.rate)

    def done(self, r: "Runner") -> bool:
        s: L.HeatWaitSeek = self.spec
        cell, reading = r.cell_temperature(), r.chamber_reading()
        if cell is None or reading is None:
            return False
        now = r.now()
        if self.phase == "heat" and abs(reading[0] - self.target) <= REACHED_K:
            self.phase, self.phase_since = "wait", now
        elif self.phase == "wait" and now - self.phase_since >= s.wait:
            self.phase, self.phase_since, self.seek_from = "seek", now, (now, cell)
        elif self.phase == "seek" and now - self.phase_since >= s.seek:
            rate = (cell - self.seek_from[1]) / (now - self.seek_from[0]) * 60  # K/min
            if rate >= s.threshold:
                r.event("exotherm", f"self-heating {rate:.3g} K/min at {cell:.1f} °C: tracking (T1 ≈ {cell:.1f} °C)")
                self.phase = "track"
            elif self.target + s.step > s.end:
                r.event("note", f"no self-heating ≥ {s.threshold:g} K/min up to {self.target:g} °C")
                return True
            else:
                self.target += s.step
                self.phase, self.phase_since = "heat", now
                r.chamber_request("ramp", self.target, s.rate)
        if self.phase == "track":
            if cell >= s.end:
                return True
            follow = min(cell, s.end)
            if abs(follow - reading[1]) > 0.5:
                r.chamber_request("set", follow)
        return False


# -- rig --------------------------------------------------------------------------------------


class RigPress(Activity):
    pausable = False

    def begin(self, r: "Runner") -> None:
        s: L.Press = self.spec
        r.rig.acquisition_rate = RIG_ACQUISITION_HZ
        r.rig.press(PressCommand(s.mode, s.speed, PressStop(s.depth, s.force, s.voltage_drop)))
        r.rig_acquiring = True

    def done(self, r: "Runner") -> bool:
        status = r.rig.status()
        if status == "estop":
            raise RunEnded("tripped", "the rig's e-stop is latched")
        if status == "pressing":
            return False
        r.rig_stop_acquiring()
        return True


class RigHold(Activity):
    """Hold the ram where it stands, recording the fast channels (a crush's hold)."""

    pausable = False

    def begin(self, r: "Runner") -> None:
        r.rig.acquisition_rate = RIG_HOLD_HZ
        r.rig.start_acquisition()
        r.rig_acquiring = True
        r.rig.hold(self.spec.duration)

    def done(self, r: "Runner") -> bool:
        if r.rig.status() == "holding":
            return False
        r.rig_stop_acquiring()
        return True


class RigRetract(Activity):
    pausable = False

    def begin(self, r: "Runner") -> None:
        r.rig.retract(self.spec.speed)

    def done(self, r: "Runner") -> bool:
        return r.rig.status() == "idle"


# -- anything ---------------------------------------------------------------------------------


class Timed(Activity):
    """``wait`` and ``observe``: every stream keeps recording for the duration."""

    def done(self, r: "Runner") -> bool:
        return self.running_for(r) >= self.spec.duration


class NoteActivity(Activity):
    def begin(self, r: "Runner") -> None:
        r.event("note", self.spec.text)


class Together(Activity):
    """Steps on different instruments at once; done when all are."""

    def __init__(self, leaf: L.Leaf, parts: list[Activity]) -> None:
        super().__init__(leaf)
        self.parts = parts
        self.finished: set[int] = set()
        self.pausable = all(p.pausable for p in parts)

    def begin(self, r: "Runner") -> None:
        for p in self.parts:
            p.start(r)

    def done(self, r: "Runner") -> bool:
        for i, p in enumerate(self.parts):
            if i not in self.finished and p.done(r):
                self.finished.add(i)
        return len(self.finished) == len(self.parts)

    def pause(self, r: "Runner") -> None:
        for i, p in enumerate(self.parts):
            if i not in self.finished:
                p.pause(r)

    def resume(self, r: "Runner") -> None:
        for i, p in enumerate(self.parts):
            if i not in self.finished:
                p.resume(r)


def activity(leaf: L.Leaf, capacity_ah: float) -> Activity:
    """The activity that runs ``leaf``."""
    kinds: dict[str, Any] = {
        "power": PowerActivity,
        "set": ChamberRequest,
        "ramp": ChamberRequest,
        "soak": Soak,
        "hws": HeatWaitSeek,
        "press": RigPress,
        "hold": RigHold,
        "retract": RigRetract,
        "wait": Timed,
        "observe": Timed,
        "note": NoteActivity,
    }
    if leaf.kind == "parallel":
        return Together(leaf, [activity(part, capacity_ah) for part in leaf.spec])
    if leaf.kind in ("cc", "cccv", "cv", "rest", "pulse"):
        return CyclerActivity(leaf, capacity_ah)
    return kinds[leaf.kind](leaf)
