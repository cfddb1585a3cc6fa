"""Chamber steps: set or ramp a temperature, soak until the cell follows, ARC heat-wait-seek."""

from typing import Any, Literal

from ...instruments.roles import ChamberLimits
from ..cells import CellSpec
from ..schema import Celsius, Kelvin, KPerMin, Seconds
from ..states import RunEnded, RunState
from ._step import Activity, Step, StepContext

REACHED_K = 1.0  # a chamber has reached a ramp's target within this


class SetTemperature(Step):
    temperature: Celsius

    def setpoints(self) -> list[float]:
        return [self.temperature]


class Ramp(Step):
    temperature: Celsius
    rate: KPerMin

    def setpoints(self) -> list[float]:
        return [self.temperature]


class Soak(Step):
    """Wait until the probe stays within ``tolerance`` of the chamber setpoint for ``stable_for``."""

    tolerance: Kelvin = 1.0
    stable_for: Seconds = 600.0
    max_time: Seconds = 6 * 3600.0
    probe: Literal["chamber", "cell"] = "cell"


class HeatWaitSeek(Step):
    """ARC-style heat-wait-seek: heat in steps, wait, seek self-heating; track it once found."""

    start: Celsius
    end: Celsius
    step: Kelvin = 5.0
    wait: Seconds = 1800.0
    seek: Seconds = 1200.0
    threshold: KPerMin = 0.02
    rate: KPerMin = 5.0

    def setpoints(self) -> list[float]:
        return [self.start, self.end]


def check(s: Any, hw: ChamberLimits, cell: CellSpec, rated: bool) -> list[str]:
    """Every temperature within the chamber's range and, unless ``rated`` is off, the cell's rated window."""
    out: list[str] = []
    for t in s.setpoints():
        if not hw.min_temperature <= t <= hw.max_temperature:
            out.append(f"{t:g} °C is outside the chamber's {hw.min_temperature:g}…{hw.max_temperature:g} °C")
        elif rated and not cell.t_min <= t <= cell.t_max:
            out.append(f"{t:g} °C is outside the cell's rated {cell.t_min:g}…{cell.t_max:g} °C")
    rate = getattr(s, "rate", None)
    if rate is not None and rate > hw.max_ramp_rate:
        out.append(f"{rate:g} K/min exceeds the chamber's {hw.max_ramp_rate:g} K/min")
    return out


class ChamberRequest(Activity):
    """``set`` (done once in force) and ``ramp`` (done when the chamber reaches the target)."""

    def begin(self, r: StepContext) -> None:
        s = self.spec
        reading = r.chamber_reading()
        self.from_temperature = reading[0] if reading else None
        r.chamber_request("ramp" if isinstance(s, Ramp) else "set", s.temperature, getattr(s, "rate", None))

    def done(self, r: StepContext) -> bool:
        if not r.chamber_granted():
            return False
        if isinstance(self.spec, SetTemperature):
            return True
        s: Ramp = self.spec
        reading = r.chamber_reading()
        if reading is not None and abs(reading[0] - s.temperature) <= REACHED_K:
            return True
        start = self.from_temperature or s.temperature
        allowed = abs(s.temperature - start) / s.rate * 60 + 7200
        if self.running_for(r) > allowed:
            why = f"the chamber did not reach {s.temperature:g} °C within {allowed / 60:.0f} min"
            raise RunEnded(RunState.FAILED, why)
        return False

    def resume(self, r: StepContext) -> None:
        self.since = r.now()


class Soaking(Activity):
    """Until the probe stays within the tolerance of the chamber's setpoint for ``stable_for``."""

    def begin(self, r: StepContext) -> None:
        self.stable_since: float | None = None

    def done(self, r: StepContext) -> bool:
        s: Soak = self.spec
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
            why = f"not stable within ±{s.tolerance:g} K of the setpoint after {s.max_time / 3600:g} h"
            raise RunEnded(RunState.FAILED, why)
        return False


class HeatWaitSeeking(Activity):
    """ARC heat-wait-seek: step the chamber, wait, seek self-heating; on an exotherm follow the cell."""

    pausable = False

    def begin(self, r: StepContext) -> None:
        s: HeatWaitSeek = self.spec
        self.target = s.start
        self.phase, self.phase_since = "heat", r.now()
        self.seek_from: tuple[float, float] = (r.now(), s.start)
        r.chamber_request("ramp", self.target, s.rate)

    def done(self, r: StepContext) -> bool:
        s: HeatWaitSeek = self.spec
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
