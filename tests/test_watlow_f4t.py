"""Watlow F4T: every command the driver sends, its refusals, the simulator's SCPI, and both over a socket."""

import pytest
from pymeasure.test import expected_protocol

from cellrig.clock import ManualClock
from cellrig.instruments import roles
from cellrig.instruments._connection import InstrumentError
from cellrig.instruments.roles import ChamberLimits, Identity
from cellrig.instruments.watlow_f4t import RATING, WatlowF4T
from cellrig.sim._scpi import SimServer
from cellrig.sim.chamber_air import AMBIENT_C
from cellrig.sim.watlow_f4t import F4T

IDN = ("*IDN?", "Watlow Electric,F4T,0000001,04.05.0007")


# -- the driver, command by command ------------------------------------------------------------


def test_identify():
    with expected_protocol(WatlowF4T, [IDN]) as f4t:
        assert f4t.identify() == Identity("Watlow Electric", "F4T", "0000001", "04.05.0007")
        assert isinstance(f4t, roles.Chamber) and f4t.limits == RATING


def test_set_temperature_steps_the_set_point_and_switches_the_chamber_on():
    with expected_protocol(
        WatlowF4T,
        [
            (":SOURCE:CLOOP1:RACTION OFF", None),
            (":SOURCE:CLOOP1:SPOINT 130", None),
            (":SOURCE:CLOOP1:SPOINT?", "130.0"),
            (":OUTPUT1:STATE ON", None),
            (":OUTPUT1:STATE?", "ON"),
        ],
    ) as f4t:
        f4t.set_temperature(130.0)


@pytest.mark.parametrize(
    "replies",
    [
        [(":SOURCE:CLOOP1:SPOINT?", "25.0")],  # the controller kept its old set point
        [(":SOURCE:CLOOP1:SPOINT?", "130.0"), (":OUTPUT1:STATE ON", None), (":OUTPUT1:STATE?", "OFF")],
    ],
)
def test_a_set_that_does_not_read_back_raises_and_leaves_the_output_off(replies):
    with (
        expected_protocol(
            WatlowF4T,
            [
                (":SOURCE:CLOOP1:RACTION OFF", None),
                (":SOURCE:CLOOP1:SPOINT 130", None),
                *replies,
                (":OUTPUT1:STATE OFF", None),  # switched off, as the call failed
            ],
        ) as f4t,
        pytest.raises(InstrumentError, match="read back as"),
    ):
        f4t.set_temperature(130.0)


def test_ramp_temperature_as_in_the_reference():
    with expected_protocol(
        WatlowF4T,
        [
            (":SOURCE:CLOOP1:RACTION SETPOINT", None),
            (":SOURCE:CLOOP1:RSCALE MINUTES", None),
            (":SOURCE:CLOOP1:RRATE 5", None),
            (":SOURCE:CLOOP1:RRATE?", "5"),
            (":SOURCE:CLOOP1:SPOINT 130", None),
            (":OUTPUT1:STATE ON", None),
            (":OUTPUT1:STATE?", "ON"),
        ],
    ) as f4t:
        f4t.ramp_temperature(130.0, 5.0)


def test_readings():
    with expected_protocol(
        WatlowF4T,
        [
            (":SOURCE:CLOOP1:PVALUE?", "24.5"),
            (":SOURCE:CLOOP1:SPOINT?", "73.0"),
            (":SOURCE:CLOOP1:RRATE?", "5"),
            (":UNIT:TEMPERATURE?", "C"),
            (":OUTPUT1:STATE?", "ON"),
            (":SOURCE:CLOOP1:RSCALE HOURS", None),
        ],
    ) as f4t:
        assert f4t.read_temperature() == 24.5
        assert f4t.read_setpoint() == 73.0
        assert f4t.ramp_rate == 5.0
        assert f4t.temperature_unit == "C"
        assert f4t.output_enabled is True
        f4t.ramp_scale = "HOURS"


def test_configure_limits_switches_to_celsius_and_reads_it_back():
    narrow = ChamberLimits(-20.0, 150.0, 3.0)
    with expected_protocol(WatlowF4T, [IDN, (":UNIT:TEMPERATURE C", None), (":UNIT:TEMPERATURE?", "C")]) as f4t:
        f4t.configure_limits(narrow)
        assert f4t.limits == narrow
        for call in (lambda: f4t.set_temperature(160.0), lambda: setattr(f4t, "ramp_rate", 4.0)):
            with pytest.raises(ValueError):
                call()  # now beyond the run's limits: nothing sent


def test_configure_limits_raises_when_the_unit_does_not_read_back():
    with expected_protocol(WatlowF4T, [IDN, (":UNIT:TEMPERATURE C", None), (":UNIT:TEMPERATURE?", "F")]) as f4t:
        with pytest.raises(InstrumentError, match="unit read back as 'F'"):
            f4t.configure_limits(ChamberLimits(-20.0, 150.0, 3.0))
        assert f4t.limits == RATING


def test_firmware_without_the_unit_command_is_refused_before_anything_is_set():
    old = ("*IDN?", "Watlow Electric,F4T,0000001,04.04.0001")
    with (
        expected_protocol(WatlowF4T, [old]) as f4t,
        pytest.raises(InstrumentError, match=r"predates 04\.05\.0007"),
    ):
        f4t.configure_limits(ChamberLimits(-20.0, 150.0, 3.0))


def test_alarms_report_a_sensor_input_error():
    with expected_protocol(WatlowF4T, [(":SOURCE:CLOOP1:ERROR?", "ERROR"), (":SOURCE:CLOOP1:ERROR?", "NONE")]) as f4t:
        assert f4t.alarms() == ["loop 1 input error"]
        assert f4t.alarms() == []


def test_safe_state_switches_the_chamber_off():
    with expected_protocol(WatlowF4T, [(":OUTPUT1:STATE OFF", None)]) as f4t:
        f4t.safe_state()


@pytest.mark.parametrize(
    "call",
    [
        lambda f4t: f4t.set_temperature(250.0),  # a 200 °C chamber
        lambda f4t: setattr(f4t, "setpoint", -41.0),
        lambda f4t: f4t.ramp_temperature(130.0, 10.0),  # faster than the 5 K/min rating
        lambda f4t: f4t.ramp_temperature(250.0, 5.0),
        lambda f4t: setattr(f4t, "ramp_rate", 5.5),
        lambda f4t: setattr(f4t, "ramp_action", "BOTH"),
        lambda f4t: setattr(f4t, "temperature_unit", "K"),
        lambda f4t: setattr(f4t, "output_enabled", "maybe"),
        lambda f4t: f4t.configure_limits(ChamberLimits(-40.0, 250.0, 5.0)),
        lambda f4t: f4t.configure_limits(ChamberLimits(-40.0, 150.0, 6.0)),
    ],
)
def test_out_of_range_values_raise_before_anything_is_sent(call):
    with expected_protocol(WatlowF4T, []) as f4t, pytest.raises(ValueError):
        call(f4t)


# -- the simulator ------------------------------------------------------------------------------


def test_the_simulator_accepts_long_and_short_forms_and_ignores_what_it_refuses():
    sim = F4T(ManualClock())
    assert sim.handle("*IDN?").startswith("Watlow Electric,")
    assert sim.handle("SOUR:CLOOP1:SPOINT 50") is None
    assert sim.handle(":SOURCE:CLOOP1:SPOINT?") == "50.0"
    assert sim.handle("OUTP1:STAT ON") is None
    assert sim.handle(":OUTPUT1:STATE?") == "ON" and sim.air.running
    for bad, error in [
        (":SOURCE:CLOOP1:SPOINT 250", (-222, "Data out of range")),
        (":SOURCE:CLOOP1:RRATE 0", (-222, "Data out of range")),
        (":SOURCE:CLOOP1:RACTION SOMETIMES", (-224, "Illegal parameter value")),
        (":OUTPUT2:STATE ON", (-113, "Undefined header")),
        ("SYST:ERR?", (-113, "Undefined header")),  # no error queue on an F4T: no answer
    ]:
        assert sim.handle(bad) is None
        assert sim.errors[-1] == error, bad
    assert sim.air.setpoint == 50.0


def test_old_simulated_firmware_has_no_unit_command_and_speaks_fahrenheit():
    sim = F4T(ManualClock(), firmware="04.04.0001")
    assert sim.handle(":UNIT:TEMPERATURE?") is None
    assert float(sim.handle(":SOURCE:CLOOP1:PVALUE?")) == pytest.approx(AMBIENT_C * 1.8 + 32, abs=0.1)


def test_the_simulator_speaks_fahrenheit_and_ramps_per_hour_when_told():
    clock = ManualClock()
    sim = F4T(clock)
    for cmd in (
        ":UNIT:TEMPERATURE F",
        "SOUR:CLOOP1:RACTION SETPOINT",
        "SOUR:CLOOP1:RSCALE HOURS",
        "SOUR:CLOOP1:RRATE 540",
    ):
        assert sim.handle(cmd) is None
    assert sim.handle(":SOURCE:CLOOP1:SPOINT 212") is None  # 100 °C at 540 °F/h = 5 K/min
    assert sim.air.setpoint == pytest.approx(100.0)
    clock.t = 60 * 10
    assert float(sim.handle(":SOURCE:CLOOP1:SPOINT?")) == pytest.approx((AMBIENT_C + 50.0) * 1.8 + 32)
    assert sim.handle(":UNIT:TEMPERATURE?") == "F"


# -- the driver on the simulator, over a socket ------------------------------------------------


@pytest.fixture
def bench():
    clock = ManualClock()
    sim = F4T(clock)
    with SimServer(sim) as server:
        f4t = WatlowF4T(server.resource, visa_library="@py", timeout=2000)
        yield clock, sim, server, f4t
        f4t.adapter.close()


def test_set_ramp_read_back_alarm_and_safe_state_over_a_socket(bench):
    clock, sim, _, f4t = bench
    assert f4t.identify().manufacturer == "Watlow Electric"
    f4t.configure_limits(ChamberLimits(-20.0, 180.0, 5.0))
    f4t.ramp_temperature(130.0, 5.0)
    clock.t += 10 * 60
    assert f4t.read_setpoint() == pytest.approx(AMBIENT_C + 50.0)  # the active set point ramps
    clock.t += 60 * 60
    assert f4t.read_temperature() == pytest.approx(130.0, abs=0.1)
    f4t.set_temperature(100.0)
    clock.t += 60 * 60
    assert (f4t.read_setpoint(), f4t.read_temperature()) == (100.0, pytest.approx(100.0, abs=0.1))
    assert f4t.alarms() == []
    sim.input_error = True  # the thermocouple breaks
    assert f4t.alarms() == ["loop 1 input error"]
    f4t.safe_state()
    assert f4t.output_enabled is False and not sim.air.running


def test_a_refused_set_point_over_a_socket_raises_naming_the_instrument(bench):
    _, _, server, _ = bench
    # a driver told its chamber is rated beyond what the controller accepts
    f4t = WatlowF4T(server.resource, visa_library="@py", timeout=2000, rating=ChamberLimits(-40.0, 250.0, 5.0))
    with pytest.raises(InstrumentError, match=rf"^Watlow F4T at {server.resource}: the set point read back as"):
        f4t.set_temperature(230.0)
    assert f4t.read_setpoint() == AMBIENT_C and f4t.output_enabled is False
    f4t.adapter.close()
