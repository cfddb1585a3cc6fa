"""The air of a simulated thermal chamber, shared by the chamber simulators (and later a world).

One lumped thermal mass: the empty chamber (air, walls, shelves) plus whatever load was put
inside, heated or cooled by the chamber's controller and losing heat through the walls to the
lab.  The controller is proportional, tuned for the empty chamber, and its drive is capped so
that the empty chamber moves at no more than its rated ramp rate: a load only slows it down.
Only heat released by the load itself (``load_power_w``, e.g. a cell in thermal runaway) or
the walls' leak with the controller off can move the air faster.

Protection, as on a real chamber:

- an independent over-temperature cutout: air above ``cutout_temperature_c`` switches the
  heater off (the cooler may still run) and stays tripped until :meth:`ChamberAir.reset_cutout`
  (the button on the panel: no remote command resets it);
- the controller's alarm limits (``alarm_limits``): air outside them stops the controller and
  raises ``limit_alarm`` ("high" or "low") until the controller is started again.

The model advances lazily, in fixed steps of ``dt`` seconds of the lab clock, whenever anyone
looks (:meth:`ChamberAir.advance`) or changes the controller, so its state depends only on
simulated time.  Call ``advance()`` before changing the load's attributes directly.
"""

import threading
from dataclasses import dataclass
from typing import Literal

from ..clock import Clock

AMBIENT_C = 23.0  # °C, the lab around the chamber


@dataclass(frozen=True)
class ChamberRating:
    """What a chamber is built for.  Defaults: a 200 °C battery-test chamber of about 100 L."""

    min_temperature: float = -40.0  # °C
    max_temperature: float = 200.0  # °C
    max_ramp_rate: float = 5.0  # K/min, empty chamber
    heater_power_w: float = 3000.0
    cooler_power_w: float = 1500.0
    heat_capacity_j_per_k: float = 20_000.0  # air, walls and shelves of the empty chamber
    wall_conductance_w_per_k: float = 8.0  # to the lab
    cutout_temperature_c: float = 215.0  # the independent over-temperature limiter
    response_time_s: float = 60.0  # the empty chamber's time constant toward its set point


class ChamberAir:
    """The air temperature of one chamber, following its controller's set point."""

    def __init__(self, clock: Clock, rating: ChamberRating | None = None, *, dt: float = 1.0) -> None:
        self.clock = clock
        self.rating = rating or ChamberRating()
        self.dt = dt
        self.lock = threading.RLock()
        self.t = clock.now()
        self.temperature = AMBIENT_C  # °C
        self.setpoint = AMBIENT_C  # °C, the target
        self.working_setpoint = AMBIENT_C  # °C, what the controller drives to now (moves during a ramp)
        self.ramp_rate: float | None = None  # K/min of a programmed ramp, None to step
        self.running = False  # controller driving heater and cooler
        self.load_heat_capacity_j_per_k = 0.0  # what was put inside
        self.load_power_w = 0.0  # heat the load releases
        self.alarm_limits = (self.rating.min_temperature, self.rating.max_temperature)  # °C
        self.limit_alarm: Literal["high", "low"] | None = None
        self.cutout_tripped = False

    # -- what a controller does -------------------------------------------------------------

    def covers(self, celsius: float) -> bool:
        """Whether a set point lies within the rated range."""
        return self.rating.min_temperature <= celsius <= self.rating.max_temperature

    def set_setpoint(self, celsius: float) -> None:
        """Step the set point: the air goes there as fast as the chamber can."""
        self._check(celsius)
        with self.lock:
            self.advance()
            self.setpoint = self.working_setpoint = celsius
            self.ramp_rate = None

    def ramp(self, celsius: float, rate_k_per_min: float, start: float | None = None) -> None:
        """Move the set point from ``start`` (default: the air now) to ``celsius`` at a rate."""
        self._check(celsius)
        if rate_k_per_min <= 0:
            raise ValueError(f"ramp rate must be positive, not {rate_k_per_min} K/min")
        with self.lock:
            self.advance()
            self.setpoint = celsius
            self.working_setpoint = self.temperature if start is None else start
            self.ramp_rate = rate_k_per_min

    def start(self) -> None:
        """Start controlling (clears a limit alarm; it trips again if the air is still outside)."""
        with self.lock:
            self.advance()
            self.limit_alarm = None
            self.running = True

    def stop(self) -> None:
        """Stop controlling: heater and cooler off, the air drifts toward the lab."""
        with self.lock:
            self.advance()
            self.running = False

    def reset_cutout(self) -> bool:
        """Reset the over-temperature cutout; it stays tripped while the air is above its limit."""
        with self.lock:
            self.advance()
            self.cutout_tripped = self.temperature > self.rating.cutout_temperature_c
            return not self.cutout_tripped

    def _check(self, celsius: float) -> None:
        if not self.covers(celsius):
            r = self.rating
            raise ValueError(f"{celsius} °C is outside the rated {r.min_temperature}…{r.max_temperature} °C")

    # -- physics ------------------------------------------------------------------------------

    def advance(self) -> None:
        """Step the air forward to the clock's present."""
        with self.lock:
            now = self.clock.now()
            while self.t + self.dt <= now:
                self._step()
                self.t += self.dt

    def _step(self) -> None:
        r = self.rating
        if self.ramp_rate is not None:
            self.working_setpoint = _toward(self.working_setpoint, self.setpoint, self.ramp_rate / 60 * self.dt)
        loss = r.wall_conductance_w_per_k * (self.temperature - AMBIENT_C)
        power = self._drive(loss) if self.running else 0.0
        if self.cutout_tripped:
            power = min(power, 0.0)
        capacity = r.heat_capacity_j_per_k + self.load_heat_capacity_j_per_k
        self.temperature += (power + self.load_power_w - loss) / capacity * self.dt
        self._protect()

    def _drive(self, loss: float) -> float:
        """Heater (+) or cooler (−) power in W: proportional, capped at the rated ramp of the empty chamber."""
        r = self.rating
        fastest = r.heat_capacity_j_per_k * r.max_ramp_rate / 60  # W beyond the losses
        demand = r.heat_capacity_j_per_k * (self.working_setpoint - self.temperature) / r.response_time_s
        return _clip(_clip(demand, -fastest, fastest) + loss, -r.cooler_power_w, r.heater_power_w)

    def _protect(self) -> None:
        if self.temperature > self.rating.cutout_temperature_c:
            self.cutout_tripped = True
        low, high = self.alarm_limits
        if self.temperature > high or self.temperature < low:
            self.limit_alarm = "high" if self.temperature > high else "low"
            self.running = False


def air_for(clock: Clock, air: ChamberAir | None, rating: ChamberRating) -> ChamberAir:
    """The air a chamber simulator controls: ``air`` if shared (on the same clock), else new air of ``rating``."""
    if air is None:
        return ChamberAir(clock, rating)
    if air.clock is not clock:
        raise ValueError("the shared chamber air runs on another clock")
    return air


def _toward(value: float, target: float, step: float) -> float:
    """Move ``value`` by at most ``step`` toward ``target``."""
    return min(target, value + step) if target > value else max(target, value - step)


def _clip(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))
