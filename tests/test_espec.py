"""ESPEC: every command the driver sends, its refusals, the simulator's grammar, and both over a socket."""

import pytest
from pymeasure.test import expected_protocol

from cellrig.clock import ManualClock
from cellrig.instruments import roles
from cellrig.instruments._connection import ConnectionPolicy, InstrumentError
from cellrig.instruments.espec import EspecChamber
from cellrig.instruments.roles import ChamberLimits, Identity
from cellrig.sim._scpi import SimServer
from cellrig.sim.chamber_air import AMBIENT_C, ChamberAir
from cellrig.sim.espec import Espec

OVEN = ChamberLimits(min_temperature=-40.0, max_temperature=200.0, max_ramp_rate=5.0)


def espec(pairs, **kwargs):
    """The driver on a scripted exchange; opening it reads TYPE? (a 200 °C safety oven)."""
    return expected_protocol(EspecChamber, [("TYPE?", "T,S2,200.0"), *pairs], **kwargs)


def ok(command: str) -> tuple[str, str]:
    return command, f"OK: {command}"


# -- the driver, command by command ------------------------------------------------------------


def test_opening_reads_the_rated_maximum_from_type():
    with espec([]) as oven:
        assert oven.limits == oven.rating == OVEN
        assert isinstance(oven, roles.Chamber)


def test_identify_reports_type_and_rom():
    with espec([("TYPE?", "T,S2,200.0"), ("ROM?", "SIM 1.00")]) as oven:
        assert oven.identify() == Identity("ESPEC", "T,S2,200.0", firmware="SIM 1.00")


def test_set_temperature_sets_the_constant_set_point_and_runs_constant():
    with espec([ok("TEMP, S130.0"), ok("MODE, CONSTANT")]) as oven:
        oven.set_temperature(130.0)


def test_readings():
    with espec(
        [
            ("TEMP?", "24.1,130.0,200.0,-40.0"),
            ("TEMP?", "24.1,130.0,200.0,-40.0"),
            ("TEMP?", "24.1,130.0,150.0,-20.0"),
            ("MON?", "24.1,,CONSTANT,0"),
            ("MODE?", "RUN"),
        ]
    ) as oven:
        assert oven.read_temperature() == 24.1
        assert oven.read_setpoint() == 130.0
        assert oven.alarm_limits == (150.0, -20.0)
        assert oven.monitor == ["24.1", "", "CONSTANT", "0"]
        assert oven.mode == "RUN"


@pytest.mark.parametrize(
    ("air", "target", "rate", "program"),
    [
        ("25.0", 130.0, 5.0, "RUN PRGM, TEMP25.0 GOTEMP130.0 TIME0:21"),  # docs/instruments.md §2.1: GB 38031 profile
        ("23.0", 130.0, 5.0, "RUN PRGM, TEMP23.0 GOTEMP130.0 TIME0:22"),  # 21.4 min: rounded up, never faster
        ("25.0", 155.0, 2.0, "RUN PRGM, TEMP25.0 GOTEMP155.0 TIME1:05"),
        ("80.0", 25.0, 5.0, "RUN PRGM, TEMP80.0 GOTEMP25.0 TIME0:11"),
    ],
)
def test_a_ramp_is_a_one_step_remote_program_from_the_present_air_temperature(air, target, rate, program):
    with espec([("TEMP?", f"{air},25.0,200.0,-40.0"), ok(program)]) as oven:
        oven.ramp_temperature(target, rate)


def test_configure_limits_programs_the_alarm_limits_and_reads_them_back():
    narrow = ChamberLimits(-20.0, 150.0, 3.0)
    with espec(
        [
            ("TEMP?", "23.0,25.0,200.0,-40.0"),
            ok("TEMP, S25.0 H150.0 L-20.0"),
            ("TEMP?", "23.0,25.0,150.0,-20.0"),
        ]
    ) as oven:
        oven.configure_limits(narrow)
        assert oven.limits == narrow
        with pytest.raises(ValueError):
            oven.set_temperature(160.0)  # now beyond the run's limits: nothing sent
        with pytest.raises(ValueError):
            oven.ramp_temperature(130.0, 5.0)


def test_configure_limits_raises_when_the_alarm_limits_do_not_read_back():
    with espec(
        [
            ("TEMP?", "23.0,25.0,200.0,-40.0"),
            ok("TEMP, S25.0 H150.0 L-20.0"),
            ("TEMP?", "23.0,25.0,200.0,-40.0"),
        ]
    ) as oven:
        with pytest.raises(InstrumentError, match="alarm limits read back as"):
            oven.configure_limits(ChamberLimits(-20.0, 150.0, 5.0))
        assert oven.limits == OVEN


def test_configure_limits_refuses_to_strand_the_present_set_point():
    with espec([("TEMP?", "23.0,180.0,200.0,-40.0")]) as oven, pytest.raises(ValueError, match="set point 180"):
        oven.configure_limits(ChamberLimits(-20.0, 150.0, 5.0))


def test_alarms_are_named_by_code():
    with espec([("ALARM?", "5,6,0,9,2,12"), ("ALARM?", "0")]) as oven:
        assert oven.alarms() == [
            "over-heating protector tripped",
            "sensor failure",
            "door open",
            "temperature above the absolute upper alarm limit",
            "alarm code 12",
        ]
        assert oven.alarms() == []


def test_safe_state_is_standby_and_power_switches_the_controller():
    with espec([ok("MODE, STANDBY"), ok("POWER, OFF"), ok("POWER, ON")]) as oven:
        oven.safe_state()
        oven.power = False
        oven.power = True


@pytest.mark.parametrize(
    "call",
    [
        lambda oven: oven.set_temperature(250.0),  # a 200 °C oven
        lambda oven: oven.set_temperature(-45.0),
        lambda oven: setattr(oven, "setpoint", 200.5),
        lambda oven: oven.ramp_temperature(130.0, 10.0),  # faster than the 5 K/min rating
        lambda oven: oven.ramp_temperature(130.0, 0.0),
        lambda oven: oven.ramp_temperature(250.0, 5.0),
        lambda oven: setattr(oven, "mode", "RUN"),
        lambda oven: oven.configure_limits(ChamberLimits(-40.0, 250.0, 5.0)),
        lambda oven: oven.configure_limits(ChamberLimits(-60.0, 150.0, 5.0)),
        lambda oven: oven.configure_limits(ChamberLimits(-40.0, 150.0, 8.0)),
    ],
)
def test_out_of_range_values_raise_before_anything_is_sent(call):
    with espec([]) as oven, pytest.raises(ValueError):
        call(oven)


def test_an_na_reply_raises_naming_the_instrument_and_is_not_retried():
    refused = r"^ESPEC at .*'TEMP, S130\.0' refused: NA:PROTECT ON$"
    with espec([("TEMP, S130.0", "NA:PROTECT ON")]) as oven, pytest.raises(InstrumentError, match=refused):
        oven.set_temperature(130.0)


def test_a_garbled_acknowledgement_is_retried():
    with espec(
        [("TEMP, S130.0", "O?: TEMP, S130.0"), ok("TEMP, S130.0"), ok("MODE, CONSTANT")],
        policy=ConnectionPolicy(backoff_s=0.0),
    ) as oven:
        oven.set_temperature(130.0)


# -- the simulator ------------------------------------------------------------------------------


def test_the_simulator_acknowledges_settings_and_refuses_with_na():
    sim = Espec(ManualClock())
    assert sim.handle("TYPE?") == "T,S2,200.0"
    assert sim.handle("MON?") == f"{AMBIENT_C:.1f},,STANDBY,0"
    assert sim.handle("TEMP, S25.0") == "OK: TEMP, S25.0"
    assert sim.handle("TEMP,S26.0") == "OK: TEMP,S26.0"  # the space after the comma is optional
    assert sim.handle("TEMP, S250.0") == "NA:DATA OUT OF RANGE"
    assert sim.handle("TEMP, S25.0 H20.0 L30.0") == "NA:DATA OUT OF RANGE"  # upper below lower
    assert sim.handle("TEMP, X25.0") == "NA:PARA ERR"
    assert sim.handle("MODE, BOOST") == "NA:PARA ERR"
    assert sim.handle("RUN PRGM, TEMP25.0 GOTEMP130.0 TIME0:00") == "NA:PARA ERR"
    assert sim.handle("HUMI?") == "NA:CMD ERR"
    assert sim.handle("POWER, ON") == "OK: POWER, ON"
    assert sim.handle("MODE?") == "CONSTANT"
    assert sim.handle("TEMP?") == f"{AMBIENT_C:.1f},26.0,200.0,-40.0"


@pytest.mark.parametrize(
    "program", ["RUN PRGM, TEMP25.0 GOTEMP130.0 TIME0:21", "RUN PRGM, TEMP25.0 TIME0:21 GOTEMP130.0"]
)
def test_a_remote_program_ramps_the_set_point_over_its_time_then_holds(program):
    clock = ManualClock()
    sim = Espec(clock)
    assert sim.handle(program) == f"OK: {program}"
    assert sim.handle("MODE?") == "RUN"
    clock.t = 10.5 * 60
    assert float(sim.handle("TEMP?").split(",")[1]) == pytest.approx(77.5)  # halfway: 25 + 105 / 2
    clock.t = 90 * 60
    pv, sp, *_ = (float(v) for v in sim.handle("TEMP?").split(","))
    assert (pv, sp) == (pytest.approx(130.0, abs=0.1), 130.0)


def test_the_simulator_uses_shared_air():
    clock = ManualClock()
    air = ChamberAir(clock)
    assert Espec(clock, air).air is air


# -- the driver on the simulator, over a socket ------------------------------------------------


@pytest.fixture
def bench():
    clock = ManualClock()
    sim = Espec(clock)
    with SimServer(sim) as server:
        oven = EspecChamber(server.resource, visa_library="@py", timeout=2000)
        oven.role = "chamber"
        yield clock, sim, server, oven
        oven.adapter.close()


def test_set_ramp_read_back_alarm_and_safe_state_over_a_socket(bench):
    clock, sim, _, oven = bench
    assert oven.identify().model == "T,S2,200.0"
    oven.configure_limits(ChamberLimits(-20.0, 180.0, 5.0))
    assert sim.air.alarm_limits == (-20.0, 180.0)
    oven.ramp_temperature(130.0, 5.0)  # from 23.0 °C: 22 min, 4.86 K/min
    clock.t += 11 * 60
    assert oven.mode == "RUN"
    assert oven.read_setpoint() == pytest.approx(AMBIENT_C + 107.0 / 2, abs=0.1)
    clock.t += 60 * 60
    assert oven.read_temperature() == pytest.approx(130.0, abs=0.1)
    assert oven.alarms() == []
    sim.air.load_power_w = 8000.0  # the cell inside runs away
    clock.t += 20 * 60
    assert oven.alarms() == ["over-heating protector tripped", "temperature above the absolute upper alarm limit"]
    assert oven.mode == "STANDBY"  # the alarm limit stopped the chamber
    sim.air.load_power_w = 0.0
    oven.set_temperature(25.0)
    assert sim.air.running
    oven.safe_state()
    assert oven.mode == "STANDBY" and not sim.air.running


def test_an_na_reply_over_a_socket_names_the_instrument(bench):
    _, _, server, oven = bench
    with pytest.raises(InstrumentError, match=rf"^chamber \(ESPEC at {server.resource}\): .*NA:DATA OUT OF RANGE"):
        oven.write("TEMP, S250.0")  # the driver itself refuses 250 °C; a raw write reaches the oven
    with pytest.raises(InstrumentError, match="NA:CMD ERR"):
        oven.ask("HUMI?")
    assert oven.read_setpoint() == AMBIENT_C  # the connection is still in step
