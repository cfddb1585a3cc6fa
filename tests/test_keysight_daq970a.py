"""KeysightDAQ970A: every command it sends, validators, and a timed scan against the virtual DAQ970A."""

import logging
import math

import numpy as np
import pytest
from pymeasure.test import expected_protocol

from cellrig.clock import ManualClock
from cellrig.instruments import roles
from cellrig.instruments._connection import InstrumentError
from cellrig.instruments._scan import OVERLOAD, channel_list
from cellrig.instruments.keysight_daq970a import MEMORY, KeysightDAQ970A
from cellrig.instruments.roles import DAQChannel
from cellrig.sim import SimServer
from cellrig.sim.daq970a import DAQ970A

OK = '+0,"No error"'
#: 3 thermocouples and one cell voltage: the typical thermocouple + voltage scan of docs/instruments.md §4.1.
CHANNELS = {
    "t_top": DAQChannel(101),
    "t_bottom": DAQChannel(102),
    "t_air": DAQChannel(103, tc_type="T"),
    "v_cell": DAQChannel(111, "volt", range=10.0),
}
CONFIGURE = [
    ("*RST", None),
    ("*CLS", None),
    ("CONF:TEMP TC,K,(@101:102)", None),
    ("UNIT:TEMP C,(@101:102)", None),
    ("SENS:TEMP:NPLC 1,(@101:102)", None),
    ("CONF:TEMP TC,T,(@103)", None),
    ("UNIT:TEMP C,(@103)", None),
    ("SENS:TEMP:NPLC 1,(@103)", None),
    ("CONF:VOLT:DC 10,(@111)", None),
    ("ROUT:SCAN (@101:103,111)", None),
    ("FORM:READ:CHAN ON", None),
    ("FORM:READ:TIME ON", None),
    ("SYST:ERR?", OK),
]


def readings(*scans: tuple[float, list[float]]) -> str:
    """A DATA:REM? reply: per scan its time and the values of 101, 102, 103, 111."""
    fields = []
    for t, values in scans:
        for k, (channel, value) in enumerate(zip((101, 102, 103, 111), values, strict=True)):
            fields.append(f"{value:+.8E},{t + k / 80:013.3f},{channel}")
    return ",".join(fields)


# -- every command -------------------------------------------------------------------------------


def test_channel_configuration_commands():
    with expected_protocol(
        KeysightDAQ970A,
        [
            ("CONF:TEMP TC,J,(@101:110,115)", None),
            ("UNIT:TEMP C,(@101:110,115)", None),
            ("SENS:TEMP:NPLC 10,(@101:110,115)", None),
            ("CONF:VOLT:DC 1,(@116:117)", None),
            ("ROUT:SCAN (@101:103,111)", None),
            ("FORM:READ:CHAN ON", None),
            ("FORM:READ:TIME OFF", None),
        ],
    ) as daq:
        daq.configure_thermocouple([*range(101, 111), 115], "J", nplc=10)
        daq.configure_voltage([117, 116], 1.0)
        daq.set_scan([111, 103, 101, 102])
        daq.reading_channel_enabled = True
        daq.reading_time_enabled = False


def test_trigger_commands():
    with expected_protocol(
        KeysightDAQ970A,
        [
            ("TRIG:SOUR TIM", None),
            ("TRIG:SOUR?", "TIM"),
            ("TRIG:TIM 2.5", None),
            ("TRIG:TIM?", "+2.50000000E+00"),
            ("TRIG:COUN INF", None),
            ("TRIG:COUN 100", None),
            ("INIT", None),
            ("ABOR", None),
        ],
    ) as daq:
        daq.trigger_source = "timer"
        assert daq.trigger_source == "timer"
        daq.trigger_timer = 2.5
        assert daq.trigger_timer == 2.5
        daq.trigger_count = math.inf
        daq.trigger_count = 100
        daq.initiate()
        daq.abort()


def test_memory_commands():
    reply = "+2.10000000E+01,000000000.000,101,+2.20000000E+01,000000000.013,102"
    with expected_protocol(
        KeysightDAQ970A,
        [("DATA:POIN?", "+16"), ("DATA:REM? 2", reply), ("FETC?", reply)],
    ) as daq:
        assert daq.points == 16
        assert daq.remove_readings(2) == [21.0, 0.0, 101.0, 22.0, 0.013, 102.0]
        assert daq.fetch_readings() == [21.0, 0.0, 101.0, 22.0, 0.013, 102.0]


def test_role_configures_starts_fetches_and_stops():
    reply = readings((0.0, [25.0, 26.0, OVERLOAD, 3.7]), (10.0, [25.5, 26.5, OVERLOAD, 3.71]))
    with expected_protocol(
        KeysightDAQ970A,
        [
            ("*IDN?", "Keysight Technologies,DAQ970A,MY12345678,A.03.02"),
            *CONFIGURE,
            ("TRIG:SOUR TIM", None),
            ("TRIG:TIM 10", None),
            ("TRIG:COUN INF", None),
            ("INIT", None),
            ("SYST:ERR?", OK),
            ("DATA:POIN?", "+10"),  # two whole scans and two readings of the third
            ("DATA:REM? 8", reply),
            ("DATA:POIN?", "+3"),  # less than a scan: nothing is removed
            ("ABOR", None),
            ("*OPC?", "1"),
            ("ABOR", None),
            ("*OPC?", "1"),
        ],
    ) as daq:
        assert isinstance(daq, roles.DAQ)
        assert daq.identify().model == "DAQ970A"
        daq.configure_channels(CHANNELS)
        assert daq.limits == roles.DAQLimits(max_channels=20, min_interval=4 / 80)
        daq.start_scan(10)
        samples = daq.fetch_samples()
        assert set(samples) == {"time", *CHANNELS}
        np.testing.assert_array_equal(samples["time"], [0.0, 10.0])
        np.testing.assert_array_equal(samples["t_bottom"], [26.0, 26.5])
        np.testing.assert_array_equal(samples["v_cell"], [3.7, 3.71])
        assert samples["t_air"][0] == math.inf  # the overload value
        assert all(len(v) == 0 for v in daq.fetch_samples().values())
        daq.stop()
        daq.safe_state()


def test_errors_after_configuration_raise_naming_the_instrument():
    with (
        expected_protocol(
            KeysightDAQ970A,
            [*CONFIGURE[:-1], ("SYST:ERR?", '-222,"Data out of range"'), ("SYST:ERR?", OK)],
        ) as daq,
        pytest.raises(InstrumentError, match="Keysight DAQ970A: instrument reported -222 Data out of range"),
    ):
        daq.configure_channels(CHANNELS)


def test_readings_that_do_not_follow_the_scan_list_raise():
    reply = ",".join(f"+2.5E+01,000000000.000,{ch}" for ch in (102, 103, 111, 101))  # a reading was lost
    with (
        expected_protocol(KeysightDAQ970A, [*CONFIGURE, ("DATA:POIN?", "+4"), ("DATA:REM? 4", reply)]) as daq,
        pytest.raises(InstrumentError, match="do not follow the scan list"),
    ):
        daq.configure_channels(CHANNELS)
        daq.fetch_samples()


# -- refused before anything is sent ------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda daq: daq.configure_thermocouple([121]),  # beyond the 20-channel module
        lambda daq: daq.configure_thermocouple([201]),  # no module in slot 2
        lambda daq: daq.configure_thermocouple([101], "X"),
        lambda daq: daq.configure_thermocouple([101], "K", nplc=3),
        lambda daq: daq.configure_voltage([111], 5.0),
        lambda daq: daq.set_scan([100]),
        lambda daq: setattr(daq, "trigger_timer", -1),
        lambda daq: setattr(daq, "trigger_timer", 400_000),
        lambda daq: setattr(daq, "trigger_count", 0),
        lambda daq: setattr(daq, "trigger_count", 2.5),
        lambda daq: setattr(daq, "trigger_count", MEMORY + 1),
        lambda daq: setattr(daq, "trigger_source", "manual"),
        lambda daq: daq.remove_readings(0),
        lambda daq: daq.configure_channels({"a": DAQChannel(101), "b": DAQChannel(121)}),
        lambda daq: daq.configure_channels({"a": DAQChannel(101), "b": DAQChannel(101)}),
        lambda daq: daq.configure_channels({"a": DAQChannel(101, tc_type="Q")}),
        lambda daq: daq.configure_channels({"a": DAQChannel(101, "volt", range=7.0)}),
        lambda daq: daq.configure_channels({"a": DAQChannel(101, "strain")}),  # type: ignore[arg-type]
        lambda daq: daq.start_scan(1.0),  # no channels configured
        lambda daq: daq.fetch_samples(),
    ],
)
def test_out_of_range_values_raise_before_anything_is_sent(call):
    with expected_protocol(KeysightDAQ970A, []) as daq, pytest.raises(ValueError):
        call(daq)


def test_a_scan_interval_below_the_scan_time_is_refused_before_anything_is_sent():
    with expected_protocol(KeysightDAQ970A, CONFIGURE) as daq:
        daq.configure_channels(CHANNELS)
        with pytest.raises(ValueError):
            daq.start_scan(0.04)  # 4 channels at 80 ch/s take 0.05 s


def test_modules_must_sit_in_the_three_slots():
    with pytest.raises(ValueError, match="slots"), expected_protocol(KeysightDAQ970A, [], modules={4: 20}):
        pass


def test_channel_list_joins_runs():
    assert channel_list([103, 101, 102, 111, 120, 201, 202]) == "(@101:103,111,120,201:202)"
    assert channel_list([101]) == "(@101)"


# -- against the simulator ----------------------------------------------------------------------


def probes() -> dict:
    """Three thermocouples warming at different rates and a cell voltage (functions of simulated time)."""
    return {
        101: lambda t: 25.0 + 0.01 * t,
        102: lambda t: 25.0 + 0.02 * t,
        103: lambda t: 23.0 - 0.001 * t,
        111: lambda t: 3.6 + 1e-4 * t,
    }


def test_a_timed_scan_returns_the_probe_values_at_their_times_fetched_in_pieces():
    clock = ManualClock()
    clock.t = 1000.0  # the scan starts at 1000 s of lab time: sample times count from the scan's start
    wired = probes()
    sim = DAQ970A(clock, wired)
    with SimServer(sim) as server:
        daq = KeysightDAQ970A(server.resource, visa_library="@py", timeout=2000)
        assert isinstance(daq, roles.DAQ)
        daq.configure_channels(CHANNELS)
        daq.start_scan(5.0)
        pieces = []
        for step in (12.0, 0.02, 3.01, 0.0, 40.0, 7.5, 0.013, 62.477):  # some end in the middle of a scan
            clock.t += step
            pieces.append(daq.fetch_samples())
        daq.safe_state()
        left = daq.points
        clock.t += 100.0
        assert daq.points == left  # the scan stopped
        daq.adapter.close()
    time = np.concatenate([p["time"] for p in pieces])
    np.testing.assert_allclose(time, np.arange(len(time)) * 5.0)  # every scan once, none lost
    assert time[-1] == pytest.approx(120.0)
    assert left == 2  # the scan at 125 s had read two channels when it was aborted
    for k, (name, channel) in enumerate((("t_top", 101), ("t_bottom", 102), ("t_air", 103), ("v_cell", 111))):
        values = np.concatenate([p[name] for p in pieces])
        expected = [wired[channel](1000.0 + t + k / 80) for t in time]  # read 1/80 s apart
        np.testing.assert_allclose(values, expected, rtol=1e-8)


def test_an_unwired_thermocouple_reads_as_open_and_a_full_memory_keeps_the_newest(caplog):
    clock = ManualClock()
    sim = DAQ970A(clock, {111: lambda t: 3.7})
    with SimServer(sim) as server:
        daq = KeysightDAQ970A(server.resource, visa_library="@py", timeout=2000)
        daq.configure_channels(CHANNELS)
        daq.start_scan(0.05)
        # 28,000 whole scans of 4 and two readings of the next: 112,002 readings for a 100,000-reading
        # memory, which then starts two readings into a scan
        clock.t = 1400.0 + 1.5 / 80
        with caplog.at_level(logging.WARNING, logger="cellrig.instruments.keysight_daq970a"):
            samples = daq.fetch_samples()
        clock.t = 1400.04  # the rest of that scan
        rest = daq.fetch_samples()
        daq.adapter.close()
    assert "reading memory full, the oldest overwritten; 2 readings of a scan cut dropped" in caplog.text
    assert len(samples["time"]) == MEMORY // 4 - 1  # the scan whose first readings were overwritten is dropped
    assert samples["time"][0] == pytest.approx(150.05) and samples["time"][-1] == pytest.approx(1399.95)
    assert rest["time"].tolist() == pytest.approx([1400.0])  # the scan in progress, whole, none lost after
    assert np.all(samples["t_top"] == math.inf) and np.all(samples["v_cell"] == 3.7) and rest["v_cell"][0] == 3.7


def test_the_simulator_follows_configure_and_scan_rules():
    clock = ManualClock()
    sim = DAQ970A(clock, probes())
    sim.handle("CONF:TEMP TC,K,(@101:103)")
    sim.handle("FORM:READ:TIME ON")
    sim.handle("CONF:VOLT:DC 10,(@111)")  # replaces the scan list and switches the time field off
    assert sim.scanner.channels == [111] and sim.fields["TIME"] is False
    sim.handle("ROUT:SCAN (@101:105)")  # 104 and 105 are not configured
    assert sim.handle("SYST:ERR?") == '-221,"Settings conflict"'
    sim.handle("CONF:TEMP TC,K,(@121)")  # no channel 21 on a 20-channel module
    assert sim.handle("SYST:ERR?") == '-222,"Data out of range"'
    sim.handle("ROUT:SCAN (@101,111)")
    sim.handle("INIT")  # after *RST: immediate trigger, one sweep
    clock.t = 1.0
    assert sim.handle("DATA:POIN?") == "+2"
    assert sim.handle("DATA:REM? 1") == f"{25.0:+.8E}"
    sim.handle("DATA:REM? 5")
    assert sim.handle("SYST:ERR?") == '-222,"Data out of range"'
