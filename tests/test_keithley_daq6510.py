"""DAQ6510Logger around pymeasure's stock KeithleyDAQ6510: every command, validators, and the virtual DAQ6510."""

import math

import numpy as np
import pytest
from pymeasure.test import expected_protocol
from sent_commands import recording, untabled

from cellrig.clock import ManualClock
from cellrig.instruments import roles
from cellrig.instruments._connection import InstrumentError
from cellrig.instruments._scan import OVERLOAD
from cellrig.instruments.keithley_daq6510 import COMMANDS, DAQ6510Logger, ManagedKeithleyDAQ6510
from cellrig.instruments.roles import DAQChannel
from cellrig.sim import SimServer
from cellrig.sim.daq6510 import DAQ6510

OK = '+0,"No error"'
CHANNELS = {
    "t_top": DAQChannel(101),
    "t_bottom": DAQChannel(102),
    "t_air": DAQChannel(103),
    "v_cell": DAQChannel(111, "volt", range=10.0),
}
#: The thermocouple scan of docs/instruments.md §4.2, plus a voltage channel.
CONFIGURE = [
    ("*RST", None),
    ("*CLS", None),
    (":FUNC 'TEMP',(@101:103)", None),
    (":SENS:TEMP:TRAN TC,(@101:103)", None),
    (":SENS:TEMP:TC:TYPE K,(@101:103)", None),
    (":SENS:TEMP:TC:RJUN:RSEL INT,(@101:103)", None),
    (":SENS:TEMP:ODET ON,(@101:103)", None),
    (":FUNC 'VOLT:DC',(@111)", None),
    (":SENS:VOLT:RANG 10,(@111)", None),
    (":ROUT:SCAN:CRE (@101:103,111)", None),
    ("SYST:ERR?", OK),
]
START = [
    (":ROUT:SCAN:COUN:SCAN 0", None),
    (":ROUT:SCAN:INT 60", None),
    (":TRAC:CLE", None),
    (":INIT", None),
    ("SYST:ERR?", OK),
]


def buffer_reply(*scans: tuple[float, list[float]]) -> str:
    """A :TRAC:DATA? reply (READ, REL, CHAN) for scans of 101, 102, 103, 111."""
    return ",".join(
        f"{value:+.6E},{t + k / 80:.6f},{channel}"
        for t, values in scans
        for k, (channel, value) in enumerate(zip((101, 102, 103, 111), values, strict=True))
    )


def test_wrapper_configures_starts_fetches_by_index_and_stops():
    first = buffer_reply((0.0, [25.0, 26.0, OVERLOAD, 3.7]))
    second = buffer_reply((60.0, [25.5, 26.5, OVERLOAD, 3.71]), (120.0, [26.0, 27.0, OVERLOAD, 3.72]))
    with expected_protocol(
        ManagedKeithleyDAQ6510,
        [
            ("*IDN?", "KEITHLEY INSTRUMENTS,MODEL DAQ6510,04512345,1.7.12b"),
            *CONFIGURE,
            *START,
            (":TRAC:ACT?", "6"),  # one whole scan and two readings of the next
            (':TRAC:DATA? 1, 4, "defbuffer1", READ, REL, CHAN', first),
            (":TRAC:ACT?", "6"),  # nothing new: nothing is read
            (":TRAC:ACT?", "13"),
            (':TRAC:DATA? 5, 12, "defbuffer1", READ, REL, CHAN', second),
            (":ABOR", None),
            ("*OPC?", "1"),
            (":ABOR", None),
            ("*OPC?", "1"),
        ],
    ) as daq:
        logger = DAQ6510Logger(daq)
        assert isinstance(logger, roles.DAQ)
        assert logger.identify().model == "MODEL DAQ6510"
        logger.configure_channels(CHANNELS)
        logger.start_scan(60)
        samples = logger.fetch_samples()
        assert set(samples) == {"time", *CHANNELS}
        np.testing.assert_array_equal(samples["time"], [0.0])
        assert samples["v_cell"][0] == 3.7 and samples["t_air"][0] == math.inf
        assert all(len(v) == 0 for v in logger.fetch_samples().values())
        samples = logger.fetch_samples()
        np.testing.assert_array_equal(samples["time"], [60.0, 120.0])
        np.testing.assert_array_equal(samples["t_bottom"], [26.5, 27.0])
        logger.stop()
        logger.safe_state()


def test_instrument_errors_raise():
    with (
        expected_protocol(
            ManagedKeithleyDAQ6510, [*CONFIGURE[:-1], ("SYST:ERR?", '-221,"Settings conflict"'), ("SYST:ERR?", OK)]
        ) as daq,
        pytest.raises(InstrumentError, match="Keithley DAQ6510: instrument reported -221 Settings conflict"),
    ):
        DAQ6510Logger(daq).configure_channels(CHANNELS)


@pytest.mark.parametrize(
    "channels",
    [
        {"a": DAQChannel(121)},  # beyond the 20-channel 7700
        {"a": DAQChannel(201)},  # no card in slot 2
        {"a": DAQChannel(101, tc_type="X")},
        {"a": DAQChannel(111, "volt", range=20.0)},
        {"a": DAQChannel(101), "b": DAQChannel(101)},
    ],
)
def test_bad_channels_are_refused_before_anything_is_sent(channels):
    with expected_protocol(ManagedKeithleyDAQ6510, []) as daq, pytest.raises(ValueError):
        DAQ6510Logger(daq).configure_channels(channels)


def test_scan_intervals_outside_the_limits_are_refused_before_anything_is_sent():
    with expected_protocol(ManagedKeithleyDAQ6510, CONFIGURE) as daq:
        logger = DAQ6510Logger(daq, modules={1: 20, 2: 40})
        assert logger.limits.max_channels == 60
        with pytest.raises(ValueError):
            logger.start_scan(1.0)  # no channels yet
        logger.configure_channels(CHANNELS)
        with pytest.raises(ValueError):
            logger.start_scan(0.01)  # 4 channels take 0.05 s
        with pytest.raises(ValueError):
            logger.start_scan(1e6)


def test_cards_sit_in_two_slots():
    with expected_protocol(ManagedKeithleyDAQ6510, []) as daq, pytest.raises(ValueError, match="slots"):
        DAQ6510Logger(daq, modules={3: 20})


# -- against the simulator ----------------------------------------------------------------------


def probes() -> dict:
    return {
        101: lambda t: 25.0 + 0.01 * t,
        102: lambda t: 25.0 + 0.02 * t,
        103: lambda t: 23.0 - 0.001 * t,
        111: lambda t: 3.6 + 1e-4 * t,
    }


def test_the_stock_driver_works_unmodified_against_the_simulator():
    clock = ManualClock()
    clock.t = 50.0
    sim = DAQ6510(clock, probes())
    with SimServer(sim) as server:
        daq = ManagedKeithleyDAQ6510(server.resource, visa_library="@py", timeout=2000)
        assert daq.id.startswith("KEITHLEY INSTRUMENTS,MODEL DAQ6510")
        daq.measure_voltage()
        assert daq.voltage == 0.0  # front terminals: nothing wired
        daq.close_channel(111)
        assert daq.voltage == pytest.approx(3.605)
        daq.open_channel(111)
        assert daq.voltage == 0.0
        assert daq.check_errors() == []
        daq.adapter.close()


def test_a_timed_scan_returns_the_probe_values_at_their_times_fetched_in_pieces():
    clock = ManualClock()
    clock.t = 200.0
    wired = probes()
    sim = DAQ6510(clock, wired)
    with SimServer(sim) as server:
        logger = DAQ6510Logger(ManagedKeithleyDAQ6510(server.resource, visa_library="@py", timeout=2000))
        logger.configure_channels(CHANNELS)
        logger.start_scan(2.0)
        pieces = []
        for step in (5.0, 0.03, 1.0, 0.0, 20.0, 0.001, 13.99):  # some end in the middle of a scan
            clock.t += step
            pieces.append(logger.fetch_samples())
        logger.safe_state()
        stored = len(sim.buffer)
        clock.t += 50.0
        assert logger.fetch_samples()["time"].size == 0
        assert len(sim.buffer) == stored and not sim.scanner.running  # the scan stopped
        logger.daq.adapter.close()
    time = np.concatenate([p["time"] for p in pieces])
    np.testing.assert_allclose(time, np.arange(20) * 2.0)  # every whole scan once, none lost
    assert stored == 20 * 4 + 2  # the scan at 40 s had read two channels when it was aborted
    for k, (name, channel) in enumerate((("t_top", 101), ("t_bottom", 102), ("t_air", 103), ("v_cell", 111))):
        values = np.concatenate([p[name] for p in pieces])
        np.testing.assert_allclose(values, [wired[channel](200.0 + t + k / 80) for t in time], rtol=1e-6)


def test_an_unwired_thermocouple_reads_the_overflow_value():
    clock = ManualClock()
    sim = DAQ6510(clock, {})
    for cmd in (":FUNC 'TEMP',(@105)", ":SENS:TEMP:ODET ON,(@105)", ":ROUT:SCAN:CRE (@105)", ":INIT"):
        assert sim.handle(cmd) is None, cmd
    assert sim.handle(':TRAC:DATA? 1, 1, "defbuffer1", READ, CHAN') == f"{OVERLOAD:+.6E},105"
    assert sim.handle("SYST:ERR?") == '+0,"No error"'


def test_the_simulator_refuses_what_the_instrument_would():
    sim = DAQ6510(ManualClock(), probes())
    sim.handle(":SENS:TEMP:TC:TYPE K,(@101)")  # 101 is not a temperature channel yet
    assert sim.handle("SYST:ERR?") == '-221,"Settings conflict"'
    sim.handle(":ROUT:SCAN:CRE (@101)")
    assert sim.handle("SYST:ERR?") == '-221,"Settings conflict"'
    sim.handle(":FUNC 'TEMP',(@121)")
    assert sim.handle("SYST:ERR?") == '-222,"Data out of range"'
    sim.handle(':TRAC:DATA? 1, 2, "defbuffer1", READ')  # the buffer is empty
    assert sim.handle("SYST:ERR?") == '-222,"Data out of range"'


def test_every_command_a_scan_sends_is_in_the_drivers_command_table():
    clock = ManualClock()
    sim = DAQ6510(clock, probes())
    with SimServer(sim) as server:
        daq = ManagedKeithleyDAQ6510(server.resource, visa_library="@py", timeout=2000)
        sent = recording(daq.adapter)
        logger = DAQ6510Logger(daq)
        logger.identify()
        logger.configure_channels(CHANNELS)
        logger.start_scan(2.0)
        clock.t += 5.0
        logger.fetch_samples()
        logger.safe_state()
        daq.adapter.close()
    assert {":ROUT:SCAN:COUN:SCAN 0", ":TRAC:CLE", ":ABOR", "*OPC?"} <= set(sent)
    assert not untabled(sent, COMMANDS)
