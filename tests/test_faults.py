"""Injected instrument faults, and what the connection policy makes of each at the driver."""

import math
import time

import numpy as np
import pytest

from cellrig.clock import ManualClock
from cellrig.instruments._connection import ConnectionPolicy, InstrumentError
from cellrig.instruments.keithley_daq6510 import DAQ6510Logger, ManagedKeithleyDAQ6510
from cellrig.instruments.keysight_bt2200 import KeysightBT2200
from cellrig.instruments.keysight_daq970a import KeysightDAQ970A
from cellrig.instruments.roles import DAQChannel
from cellrig.sim import BT2200, NMC811, Cell, SimServer
from cellrig.sim.daq970a import DAQ970A
from cellrig.sim.daq6510 import DAQ6510

POLICY = ConnectionPolicy(timeout_s=0.3, retries=2, backoff_s=0.01)


@pytest.fixture
def bench():
    sim = BT2200(ManualClock(), {101: Cell(NMC811, 5.0, soc=0.5)})
    with SimServer(sim) as server:
        bt = KeysightBT2200(server.resource, visa_library="@py", policy=POLICY)
        bt.role = "cycler"
        yield sim, server, bt
        bt.adapter.close()


@pytest.mark.parametrize("kind", ["timeout", "drop", "garble"])
def test_transient_faults_are_retried_and_the_answer_arrives(bench, kind):
    sim, _, bt = bench
    sim.inject(kind, count=2, match="DATA:LOG:REC")  # two bad answers, then a good one: within 2 retries
    assert bt.log_records_available == 0
    assert sim.faults == []


def test_a_fault_that_outlasts_the_retries_raises_naming_role_model_and_resource(bench):
    sim, server, bt = bench
    sim.inject("garble", count=3, match="DATA:LOG:REC")
    with pytest.raises(InstrumentError) as info:
        bt.log_records_available  # noqa: B018
    message = str(info.value)
    assert message.startswith(
        f"cycler (Keysight BT2200 at {server.resource}): query 'DATA:LOG:REC:AVA?' failed after 3 attempts"
    )
    assert bt.log_records_available == 0  # the instrument answers again afterwards


def test_a_dropped_connection_mid_session_is_reconnected(bench):
    _, server, bt = bench
    assert bt.id.startswith("Keysight")
    server.drop_connections()
    assert bt.id.startswith("Keysight")  # reconnected under the policy, nothing for the caller to do


def test_instrument_error_codes_reach_the_caller(bench):
    sim, _, bt = bench
    sim.inject("error", match="CELL:DEF", code=-241, text="Hardware missing")
    bt.define_cell(1001, 101)
    with pytest.raises(RuntimeError, match="-241 Hardware missing"):
        bt.raise_errors()


def test_a_stuck_reading_repeats_itself(bench):
    sim, _, bt = bench
    first = bt.ask("MEAS:CELL:VOLT? (@1001)") if sim.handle("CELL:DEF 1001,(@101)") is None else None
    sim.channels[101].cell.soc = 0.9  # the cell changes ...
    sim.inject("stuck", count=1, match="MEAS:CELL:VOLT")
    assert bt.ask("MEAS:CELL:VOLT? (@1001)") == first  # ... the reading does not
    assert bt.ask("MEAS:CELL:VOLT? (@1001)") != first


def test_a_dead_instrument_raises_within_the_policy_bound(bench):
    sim, _, bt = bench
    sim.inject("dead")
    start = time.monotonic()
    with pytest.raises(InstrumentError, match=r"cycler .Keysight BT2200 at TCPIP0::127.0.0.1::"):
        bt.id  # noqa: B018
    # a guarantee of the policy (not a benchmark): the error comes within its stated bound
    assert time.monotonic() - start < POLICY.give_up_after_s + 1.0


def test_a_nan_fault_turns_the_readings_of_matching_queries_into_nan(bench):
    sim, _, bt = bench
    bt.define_cell(1001, 101)
    sim.inject("nan", count=1, match="MEAS:CELL:VOLT")
    assert bt.ask("STAT:CELL:REP? (@1001)").strip() == "0"  # not matching: answered as ever
    assert math.isnan(bt.values("MEAS:CELL:VOLT? (@1001)")[0])
    assert bt.values("MEAS:CELL:VOLT? (@1001)")[0] == pytest.approx(sim.channels[101].cell.voltage(0.0), abs=1e-6)


def test_only_the_faults_there_are_can_be_injected_and_only_loggers_stall(bench):
    sim, _, _ = bench
    with pytest.raises(ValueError, match="unknown fault 'melt'"):
        sim.inject("melt")
    with pytest.raises(ValueError, match="BT2200 has no scan to stall"):
        sim.inject("stall")
    with pytest.raises(ValueError, match="count must be 0 or more"):
        sim.inject("nan", count=-1)
    assert sim.faults == []


# -- the data loggers: their readings through cellrig's drivers ---------------------------------

CHANNELS = {"t_cell": DAQChannel(101), "v_cell": DAQChannel(111, "volt", range=10.0)}
PROBES = {101: lambda t: 25.0 + 0.01 * t, 111: lambda t: 3.7}
#: Per logger: its simulator, cellrig's role object on a resource, and the commands that
#: fetch its readings and count them.
LOGGERS = {
    "daq970a": (DAQ970A, lambda r: KeysightDAQ970A(r, visa_library="@py", policy=POLICY), "DATA:REM", "DATA:POIN"),
    "daq6510": (
        DAQ6510,
        lambda r: DAQ6510Logger(ManagedKeithleyDAQ6510(r, visa_library="@py", policy=POLICY)),
        ":TRAC:DATA",
        ":TRAC:ACT",
    ),
}


@pytest.fixture(params=list(LOGGERS))
def logger(request):
    """A logger scanning CHANNELS every 10 s of a manual clock; its fetch and count commands."""
    simulator, role, fetch, count = LOGGERS[request.param]
    clock = ManualClock()
    sim = simulator(clock, PROBES)
    with SimServer(sim) as server:
        daq = role(server.resource)
        daq.configure_channels(CHANNELS)
        daq.start_scan(10.0)
        yield clock, sim, daq, fetch, count
        daq.safe_state()
        getattr(daq, "daq", daq).adapter.close()  # the DAQ6510's role object wraps the stock driver


def test_a_nan_fault_makes_a_loggers_readings_overloaded_which_the_driver_passes_on_as_inf(logger):
    clock, sim, daq, fetch, _ = logger
    clock.t = 25.0
    sim.inject("nan", match=fetch)
    samples = daq.fetch_samples()
    np.testing.assert_array_equal(samples["time"], [0.0, 10.0, 20.0])  # time and channel fields intact
    assert np.all(samples["t_cell"] == math.inf) and np.all(samples["v_cell"] == math.inf)
    clock.t = 35.0
    samples = daq.fetch_samples()
    np.testing.assert_allclose(samples["t_cell"], [25.3])  # read at 30 s: the next fetch is sound
    assert samples["v_cell"][0] == 3.7


def test_a_stalled_logger_answers_but_loses_the_readings_of_the_stall(logger):
    clock, sim, daq, _, count = logger
    clock.t = 15.0
    np.testing.assert_array_equal(daq.fetch_samples()["time"], [0.0, 10.0])
    sim.inject("stall", count=2, match=count)
    for t in (25.0, 45.0):  # two fetches, each asking for the reading count once
        clock.t = t
        assert daq.fetch_samples()["time"].size == 0
        assert daq.identify().model  # the logger still answers
    clock.t = 55.0
    np.testing.assert_array_equal(daq.fetch_samples()["time"], [50.0])  # scans 20, 30, 40 are lost
