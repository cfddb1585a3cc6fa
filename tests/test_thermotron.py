"""Thermotron 3800: the wrapper around pymeasure's stock driver, the simulator it talks to, and both together.

The stock driver pauses 1 s after every command it writes (queries included).  The scripted
exchanges record those pauses instead of waiting them out (and check each command has one);
the socket test keeps them real: six stock commands, about 6 s.
"""

import time

import pytest
from pymeasure.instruments.thermotron import thermotron3800
from pymeasure.test import expected_protocol
from sent_commands import recording, untabled

from cellrig.clock import ManualClock
from cellrig.instruments import roles
from cellrig.instruments._connection import ConnectionPolicy, InstrumentError
from cellrig.instruments.roles import ChamberLimits, Identity
from cellrig.instruments.thermotron import COMMANDS, Thermotron3800Chamber
from cellrig.sim._scpi import SimServer
from cellrig.sim.chamber_air import AMBIENT_C
from cellrig.sim.thermotron import MANUAL_MODE, Thermotron3800


@pytest.fixture
def pauses(monkeypatch):
    """The stock driver's sleeps, recorded rather than slept."""
    slept: list[float] = []
    monkeypatch.setattr(thermotron3800, "sleep", slept.append)
    return slept


def chamber(pairs, **kwargs):
    return expected_protocol(Thermotron3800Chamber, pairs, **kwargs)


# -- the wrapper, command by command -----------------------------------------------------------


def test_the_rating_is_the_stock_drivers_set_point_range(pauses):
    with expected_protocol(thermotron3800.Thermotron3800, [("SETP1,150", None), ("SETP1,-55", None)]) as stock:
        stock.setpoint = 150
        stock.setpoint = -55
        for beyond in (150.5, -55.5):
            with pytest.raises(ValueError):
                stock.setpoint = beyond
    with chamber([]) as oven:
        assert oven.limits == oven.rating == ChamberLimits(-55.0, 150.0, 5.0)
        assert isinstance(oven, roles.Chamber)
        assert isinstance(oven.oven, thermotron3800.Thermotron3800)


def test_set_temperature_writes_the_set_point_then_runs_manual(pauses):
    with chamber([("SETP1,130", None), ("RUNM", None)]) as oven:
        oven.set_temperature(130.0)
    assert pauses == [1, 1]


def test_readings_identity_and_alarms(pauses):
    with chamber(
        [("PVAR1?", "22.000"), ("SETP1?", "130.000"), ("IDEN?", "3800"), ("ALRM1?", "33"), ("ALRM1?", "0")]
    ) as oven:
        assert oven.read_temperature() == 22.0
        assert oven.read_setpoint() == 130.0
        assert oven.identify() == Identity("Thermotron", "3800")
        assert oven.alarms() == ["low deviation", "high process"]
        assert oven.alarms() == []
    assert pauses == [1] * 5


def test_safe_state_stops_the_chamber(pauses):
    with chamber([("STOP", None)]) as oven:
        oven.safe_state()
    assert pauses == [1]


def test_a_ramp_at_the_rated_rate_is_manual_mode(pauses):
    with chamber([("SETP1,130", None), ("RUNM", None)]) as oven:
        oven.ramp_temperature(130.0, 5.0)


def test_configure_limits_narrows_what_the_wrapper_accepts(pauses):
    with chamber([]) as oven:
        oven.configure_limits(ChamberLimits(-20.0, 120.0, 5.0))
        with pytest.raises(ValueError):
            oven.set_temperature(130.0)
    assert pauses == []


@pytest.mark.parametrize(
    "call",
    [
        lambda oven: oven.set_temperature(200.0),  # the stock driver stops at 150 °C
        lambda oven: oven.set_temperature(-60.0),
        lambda oven: oven.ramp_temperature(130.0, 10.0),  # faster than the rating
        lambda oven: oven.ramp_temperature(130.0, 2.0),  # slower: manual mode cannot
        lambda oven: oven.ramp_temperature(200.0, 5.0),
        lambda oven: oven.configure_limits(ChamberLimits(-40.0, 200.0, 5.0)),
        lambda oven: oven.configure_limits(ChamberLimits(-40.0, 150.0, 8.0)),
    ],
)
def test_out_of_range_values_raise_before_anything_is_sent(call, pauses):
    with chamber([]) as oven, pytest.raises(ValueError):
        call(oven)
    assert pauses == []


def test_a_reply_that_does_not_parse_raises_naming_the_instrument(pauses):
    failed = r"^Thermotron 3800 at .*: query 'PVAR1\?' failed"
    with (
        chamber([("PVAR1?", "2?.0?0")], policy=ConnectionPolicy(retries=0)) as oven,
        pytest.raises(InstrumentError, match=failed),
    ):
        oven.read_temperature()


# -- the simulator ------------------------------------------------------------------------------


def test_the_simulator_runs_to_a_stored_set_point_on_runm():
    clock = ManualClock()
    sim = Thermotron3800(clock)
    assert sim.handle("IDEN?").startswith("THERMOTRON 3800")
    assert sim.handle("SETP1,130") is None
    assert sim.handle("SETP1?") == "130.000"
    assert sim.handle("MODE?") == "0" and sim.air.setpoint == AMBIENT_C  # not before RUNM
    assert sim.handle("RUNM") is None
    assert int(sim.handle("MODE?")) == MANUAL_MODE == 16
    clock.t = 3600
    assert float(sim.handle("PVAR1?")) == pytest.approx(130.0, abs=0.1)
    assert sim.handle("SETP1,250") is None and sim.handle("SETP1?") == "130.000"  # beyond the rating: ignored
    for stop in ("STOP", "INIT"):
        sim.handle("RUNM")
        assert sim.handle(stop) is None
        assert sim.handle("MODE?") == "0" and not sim.air.running


def test_the_simulator_reports_the_cutout_as_a_high_process_alarm():
    clock = ManualClock()
    sim = Thermotron3800(clock)
    sim.handle("RUNM")
    sim.air.load_power_w = 8000.0
    clock.t = 1800
    assert sim.handle("ALRM1?") == "32" and sim.air.cutout_tripped


# -- the stock driver, through the wrapper, on the simulator over a socket ---------------------


def test_set_read_back_alarm_and_safe_state_over_a_socket():
    clock = ManualClock()
    sim = Thermotron3800(clock)
    with SimServer(sim) as server:
        oven = Thermotron3800Chamber(server.resource, visa_library="@py", timeout=2000)
        started = time.monotonic()
        oven.set_temperature(130.0)
        clock.t += 3600
        assert oven.read_temperature() == pytest.approx(130.0, abs=0.1)
        assert oven.oven.mode == MANUAL_MODE  # the stock driver's bit-coded mode
        sim.air.load_power_w = 8000.0  # the cell inside runs away
        clock.t += 1800
        assert oven.alarms() == ["high process"]
        oven.safe_state()
        assert not sim.air.running
        assert time.monotonic() - started >= 6.0  # six stock commands, each paced by its 1 s sleep
        oven.adapter.close()


def test_every_command_the_role_sends_is_in_the_drivers_command_table(pauses):
    clock = ManualClock()
    with SimServer(Thermotron3800(clock)) as server:
        oven = Thermotron3800Chamber(server.resource, visa_library="@py", timeout=2000)
        sent = recording(oven.adapter)
        oven.identify()
        oven.ramp_temperature(40.0, 5.0)
        oven.read_temperature(), oven.read_setpoint(), oven.alarms()
        oven.safe_state()
        oven.adapter.close()
    assert {"IDEN?", "SETP1,40", "RUNM", "PVAR1?", "SETP1?", "ALRM1?", "STOP"} <= set(sent)
    assert not untabled(sent, COMMANDS)
