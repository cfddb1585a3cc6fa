"""Chamber air physics on a hand-moved clock: rated ramp, load, cutout, alarm limits, lazy stepping."""

import numpy as np
import pytest

from cellrig.clock import ManualClock
from cellrig.sim.chamber_air import AMBIENT_C, ChamberAir, ChamberRating, air_for


def running_air(clock: ManualClock, setpoint: float = 130.0) -> ChamberAir:
    air = ChamberAir(clock)
    air.set_setpoint(setpoint)
    air.start()
    return air


def record(air: ChamberAir, clock: ManualClock, seconds: float, every: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Move the clock on by ``seconds`` and return the air temperature every ``every`` seconds."""
    times = clock.t + np.arange(every, seconds + every / 2, every)
    temps = []
    for t in times:
        clock.t = t
        air.advance()
        temps.append(air.temperature)
    return times, np.array(temps)


def max_slope_k_per_min(start: float, temps: np.ndarray, every: float = 1.0) -> float:
    return float(np.max(np.abs(np.diff(np.r_[start, temps]))) / every * 60)


@pytest.mark.parametrize("setpoint", [130.0, -40.0])
def test_the_air_reaches_its_set_point_and_never_ramps_faster_than_the_rating(setpoint):
    clock = ManualClock()
    air = running_air(clock, setpoint)
    times, temps = record(air, clock, 2 * 3600)
    slope = max_slope_k_per_min(AMBIENT_C, temps)
    assert slope <= air.rating.max_ramp_rate + 1e-9
    assert temps[-1] == pytest.approx(setpoint, abs=0.05)
    if setpoint > AMBIENT_C:  # heating an empty chamber is limited by the rating, not by the heater
        assert slope > 0.99 * air.rating.max_ramp_rate
        assert times[np.argmax(temps >= setpoint - 0.5)] < 1.25 * (setpoint - AMBIENT_C) / 5.0 * 60
    else:  # cooling is limited by the cooler's power (at room temperature, where the walls leak nothing)
        r = air.rating
        assert slope == pytest.approx(r.cooler_power_w / r.heat_capacity_j_per_k * 60)


def test_a_heavier_load_slows_the_approach():
    reached = {}
    for load in (0.0, 40_000.0):  # J/K: an empty chamber, then about 40 kg of cells
        clock = ManualClock()
        air = running_air(clock)
        air.load_heat_capacity_j_per_k = load
        times, temps = record(air, clock, 3 * 3600, every=10.0)
        assert temps.max() >= 125.0
        reached[load] = times[np.argmax(temps >= 125.0)]
        assert max_slope_k_per_min(AMBIENT_C, temps, every=10.0) <= air.rating.max_ramp_rate + 1e-9
    assert reached[40_000.0] > 2 * reached[0.0]


def test_a_programmed_ramp_moves_the_set_point_at_its_rate():
    clock = ManualClock()
    air = ChamberAir(clock)
    air.ramp(130.0, 2.0)
    air.start()
    _, temps = record(air, clock, 30 * 60)
    assert air.working_setpoint == pytest.approx(AMBIENT_C + 2.0 * 30)
    assert max_slope_k_per_min(AMBIENT_C, temps) <= 2.0 + 1e-9
    record(air, clock, 3600)
    assert air.working_setpoint == 130.0
    assert air.temperature == pytest.approx(130.0, abs=0.05)


def test_the_cutout_trips_on_heat_from_the_load_and_stays_tripped_until_reset():
    clock = ManualClock()
    air = running_air(clock)
    record(air, clock, 3600)
    air.load_power_w = 8000.0  # a cell in thermal runaway
    for _ in range(3600):
        record(air, clock, 1.0)
        if air.cutout_tripped:
            break
    assert air.cutout_tripped
    assert air.limit_alarm == "high" and not air.running  # the 200 °C alarm limit stopped the controller first
    assert not air.reset_cutout()  # still above the cutout: the reset does not take
    air.load_power_w = 0.0
    record(air, clock, 3600)
    assert air.temperature < 130.0
    air.start()  # the controller asks for 130 °C again, but the heater stays off
    before = air.temperature
    record(air, clock, 3600)
    assert air.cutout_tripped
    assert air.temperature < before
    assert air.reset_cutout()
    record(air, clock, 3600)
    assert air.temperature == pytest.approx(130.0, abs=0.05)


def test_air_outside_the_alarm_limits_stops_the_controller_until_it_is_started_again():
    clock = ManualClock()
    air = running_air(clock)
    air.alarm_limits = (-20.0, 100.0)
    _, temps = record(air, clock, 3600)
    assert air.limit_alarm == "high" and not air.running
    assert temps.max() < 100.2  # stopped within a step of crossing
    assert temps[-1] < temps.max()  # and drifting back toward the lab
    air.alarm_limits = (-20.0, 150.0)
    air.start()
    assert air.limit_alarm is None
    record(air, clock, 3600)
    assert air.temperature == pytest.approx(130.0, abs=0.05)


def test_the_air_depends_on_simulated_time_only():
    clocks = ManualClock(), ManualClock()
    often, once = running_air(clocks[0]), running_air(clocks[1])
    record(often, clocks[0], 3600, every=7.0)
    clocks[1].t = clocks[0].t
    once.advance()
    assert once.temperature == often.temperature
    assert once.t == often.t


def test_set_points_outside_the_rating_and_non_positive_rates_are_refused():
    air = ChamberAir(ManualClock(), ChamberRating(max_temperature=150.0))
    with pytest.raises(ValueError, match="outside the rated"):
        air.set_setpoint(150.5)
    with pytest.raises(ValueError, match="positive"):
        air.ramp(100.0, 0.0)
    assert air.setpoint == AMBIENT_C


def test_simulators_share_air_only_on_the_same_clock():
    clock = ManualClock()
    air = ChamberAir(clock)
    assert air_for(clock, air, ChamberRating()) is air
    assert air_for(clock, None, ChamberRating(max_temperature=150.0)).rating.max_temperature == 150.0
    with pytest.raises(ValueError, match="another clock"):
        air_for(ManualClock(), air, ChamberRating())
