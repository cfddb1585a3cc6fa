"""The virtual BT2200: its SCPI parsing, its cell physics, and the driver talking to it over VISA."""

import numpy as np
import pytest

from cellrig.clock import ManualClock, ScaledClock
from cellrig.instruments.keysight_bt2200 import KeysightBT2200
from cellrig.sim import BT2200, LFP, NMC811, SULFIDE_ASSB, Cell, SimServer
from cellrig.sim._scpi import header_regex


@pytest.mark.parametrize(
    ("header", "text", "matches"),
    [
        ("SEQuence:STEP:DEFine", "SEQ:STEP:DEF 1,2", True),
        ("SEQuence:STEP:DEFine", "sequence:step:define 1,2", True),
        ("SEQuence:STEP:DEFine", "SEQU:STEP:DEF 1,2", False),
        ("SEQuence:STEP:DEFine", "SEQ:STEP:DEF? 1,2", False),
        ("SEQuence:STEP:DEFine?", "SEQ:STEP:DEF? 1,2", True),
        ("SYSTem:ERRor[:NEXT]?", "SYST:ERR?", True),
        ("SYSTem:ERRor[:NEXT]?", ":SYSTEM:ERROR:NEXT?", True),
        ("OUTPut[:STATe]", "OUTP ON", True),
        ("*IDN?", "*idn?", True),
    ],
)
def test_scpi_headers_accept_short_and_long_forms(header, text, matches):
    assert bool(header_regex(header).match(text)) is matches


def sim_with_cell(clock=None, soc=0.0) -> BT2200:
    return BT2200(clock or ManualClock(), {101: Cell(NMC811, 5.0, soc=soc)}, log_period=10)


def test_unknown_commands_and_bad_values_go_to_the_error_queue():
    sim = sim_with_cell()
    assert sim.handle("FOO:BAR 1") is None
    assert sim.handle("SYST:ERR?") == '-113,"Undefined header"'
    sim.handle("SEQ:STEP:DEF 1,1,CHARGE,3600,9.0,4.2")  # 9 A is beyond the channel
    assert sim.handle("SYST:ERR?") == '-222,"Data out of range"'
    assert sim.handle("SYST:ERR?") == '+0,"No error"'


def test_a_cc_cv_charge_runs_on_the_instrument_and_ends_on_its_current_test():
    clock = ManualClock()
    sim = sim_with_cell(clock)
    for cmd in (
        "CELL:DEF 1001,(@101)",
        "SEQ:STEP:DEF 1,1,CHARGE,14400,5,4.2",
        "SEQ:TEST:DEF 1,1,1,CURR_LE,0.25,AFTER,0,NEXT",
        "CELL:ENABLE (@1001),1",
        "CELL:INIT (@1001)",
    ):
        assert sim.handle(cmd) is None, cmd
    clock.t = 3000.0
    assert sim.handle("STAT:CELL:REP? (@1001)") == "1"
    assert float(sim.handle("MEAS:CELL:CURR? (@1001)")) == pytest.approx(5.0)  # still constant current
    clock.t = 20000.0
    assert sim.handle("STAT:CELL:REP? (@1001)") == "4"  # OK: ended normally
    assert sim.channels[101].cell.soc > 0.99
    assert sim.handle("SYST:ERR?") == '+0,"No error"'


def test_driver_over_a_real_socket_reads_the_log_and_sees_errors():
    clock = ScaledClock(10_000)
    sim = BT2200(clock, {101: Cell(NMC811, 5.0, soc=0.0)}, log_period=10, log_states=True)
    with SimServer(sim) as server:
        bt = KeysightBT2200(server.resource, visa_library="@py", timeout=2000)
        assert bt.id.startswith("Keysight Technologies,BT2202A")
        bt.define_cell(1002, 102)  # no cell on channel 102
        with pytest.raises(RuntimeError, match=r"Keysight BT2200 at .*: instrument reported -241 No cell connected"):
            bt.raise_errors()
        bt.define_cell(1001, 101)
        bt.define_step(1, 1, "CHARGE", 600, 5.0, 4.2)
        bt.enable(1001, 1)
        bt.clear_log()  # the idle records since the server started (many, on a slow connect) are none of the step's
        bt.initiate(1001)
        bt.raise_errors()
        records = []
        while bt.cell_status(1001) == ["running"]:
            records.extend(bt.fetch_log())
            clock.sleep(10)
        while not records or records[-1]["seq_state"][0] != 0:  # the log goes on; stop at the first idle record
            records.extend(bt.fetch_log())
        records = [r for r in records if r["seq_state"][0] != 0]
        bt.safe_state()
        assert bt.output_enabled is False
        bt.adapter.close()
    log = np.array(records)
    t = log["timestamp_ms"] / 1000.0
    current = log["imon"][:, 0].astype(float)
    # 600 s at 5 A, recorded as interval means: the charge adds up to 600 × 5 A s exactly
    assert np.sum(current[1:] * np.diff(t)) == pytest.approx(3000.0, rel=1e-6)
    assert log["seq_state"][0, 0] == 1 and log["cell_id"][0, 0] == 1001


def test_a_step_started_just_after_the_log_was_cleared_still_gets_its_start_record():
    """The periodic record of the instant the step starts was logged, then cleared: the step's start is logged
    anew, so its first interval has a beginning (a race the scaled-clock socket test above lost now and then)."""
    sim = BT2200(ManualClock(), {101: Cell(NMC811, 5.0, soc=0.0)}, log_period=10, log_states=True)
    sim.clock.t = 20.0
    sim.advance()
    assert sim.last_record_t == 20.0
    for cmd in ("CELL:DEF 1001,(@101)", "SEQ:STEP:DEF 1,1,CHARGE,600,5,4.2", "CELL:ENABLE (@1001),1", "DATA:LOG:CLE"):
        assert sim.handle(cmd) is None, cmd
    assert not sim.log
    assert sim.handle("CELL:INIT (@1001)") is None
    (start,) = (np.frombuffer(r, sim.record) for r in sim.log)
    assert start["timestamp_ms"][0] == 20_000 and start["seq_state"][0, 0] == 1


def test_stopping_the_server_drops_connected_clients():
    sim = sim_with_cell()
    server = SimServer(sim).start()
    bt = KeysightBT2200(server.resource, visa_library="@py", timeout=500)
    assert bt.id
    server.stop()
    with pytest.raises(Exception):  # noqa: B017 - pyvisa raises its own I/O error types
        bt.ask("*IDN?")


def test_channels_as_cyclers_run_their_own_steps_and_share_the_log():
    from cellrig.instruments.roles import Cycler, CyclerLimits, CyclerStep

    clock = ManualClock()
    sim = BT2200(clock, {101: Cell(NMC811, 5.0, soc=0.2), 102: Cell(NMC811, 5.0, soc=0.8)}, log_period=10)
    with SimServer(sim) as server:
        bt = KeysightBT2200(server.resource, visa_library="@py", timeout=2000)
        a, b = bt.channel(101), bt.channel(102, CyclerLimits(2.5, 4.2, 5.0))
        assert isinstance(a, Cycler) and a.identify().model == "BT2202A"
        a.start_step(CyclerStep("cc", max_time=36_000, current=5.0, until_voltage_above=4.1))
        b.start_step(CyclerStep("cc", max_time=36_000, current=-2.5, until_voltage_below=3.4))
        clock.t = 2000.0
        first_a = a.fetch_samples()  # fetching a's share keeps b's records for b
        clock.t = 20_000.0
        assert (a.status(), b.status()) == ("done", "done")
        sa = {k: np.concatenate([first_a[k], v]) for k, v in a.fetch_samples().items()}
        sb = b.fetch_samples()
        bt.adapter.close()
    assert np.all(np.diff(sa["time"]) > 0) and np.all(np.diff(sb["time"]) > 0)
    assert sa["time"][0] == sb["time"][0] == 0.0  # both logged from the first record on
    assert sa["voltage"][(sa["step"] == 1)].max() == pytest.approx(4.1, abs=0.01)
    assert sb["voltage"][(sb["step"] == 1)].min() == pytest.approx(3.4, abs=0.01)
    charged = np.sum(sa["current"][1:] * np.diff(sa["time"])) / 3600
    assert charged == pytest.approx(sim.channels[101].cell.soc * 5.0 - 1.0, rel=0.01)


def test_a_channel_refuses_steps_beyond_its_limits_before_writing():
    from cellrig.instruments.roles import CyclerLimits, CyclerStep

    sim = sim_with_cell()
    with SimServer(sim) as server:
        bt = KeysightBT2200(server.resource, visa_library="@py", timeout=2000)
        ch = bt.channel(101, CyclerLimits(2.5, 4.2, 5.0))
        for bad in (
            CyclerStep("cc", 3600, current=6.0, until_voltage_above=4.2),
            CyclerStep("cccv", 3600, current=1.0, voltage=4.5, until_current_below=0.1),
            CyclerStep("cc", 3600, current=-1.0, until_voltage_below=2.0),
        ):
            with pytest.raises(ValueError):
                ch.start_step(bad)
        with pytest.raises(ValueError, match="rating"):
            ch.configure_limits(CyclerLimits(2.5, 4.2, 10.0))
        assert sim.sequences == {}  # nothing reached the instrument
        bt.adapter.close()


def run_step(step, clock, **readings):
    """One step on a channel of a simulator taking the given readings; the channel's samples and state."""
    from cellrig.instruments.roles import CyclerLimits

    sim = BT2200(clock, {101: Cell(NMC811, 5.0, soc=0.9)}, log_period=10, **readings)
    with SimServer(sim) as server:
        bt = KeysightBT2200(server.resource, visa_library="@py", timeout=2000)
        ch = bt.channel(101, CyclerLimits(2.5, 4.2, 5.0))
        try:
            ch.fetch_samples()
            clock.t += 100  # idle records before the step
            ch.start_step(step)
            while (state := ch.status()) == "running":
                clock.t += 600
            clock.t += 100  # idle records after it
            return ch.fetch_samples(), state
        finally:
            bt.adapter.close()


@pytest.mark.parametrize("log_states", [False, True])
def test_records_belong_to_the_step_whether_or_not_the_log_fills_its_state_fields(log_states):
    from cellrig.instruments.roles import CyclerStep

    samples, state = run_step(
        CyclerStep("cc", 36_000, current=-5.0, until_voltage_below=3.3), ManualClock(), log_states=log_states
    )
    assert state == "done"
    in_step = samples["step"] == 1
    assert in_step.sum() > 10 and not in_step[0]  # the idle record before the start is no step's
    discharged = -np.sum(samples["current"][1:] * np.diff(samples["time"])) / 3600
    assert discharged == pytest.approx(-np.sum((samples["current"] * in_step)[1:] * np.diff(samples["time"])) / 3600)
    assert samples["voltage"][in_step].min() == pytest.approx(3.3, abs=0.01)


@pytest.mark.parametrize(("rest_levels", "works"), [(False, True), (True, False)])
def test_rest_as_the_public_example_runs_or_fails_loudly(rest_levels, works):
    from cellrig.instruments.roles import CyclerStep

    step = CyclerStep("rest", 600)
    if works:
        samples, state = run_step(step, ManualClock(), rest_levels=rest_levels)
        assert state == "done" and np.all(samples["current"] == 0)
    else:
        with pytest.raises(RuntimeError, match="-109"):
            run_step(step, ManualClock(), rest_levels=rest_levels)


@pytest.mark.parametrize(("signed", "ends"), [(False, "done"), (True, "raises")])
def test_a_discharge_cv_end_test_either_works_or_is_caught_ending_early(signed, ends):
    from cellrig.instruments.roles import CyclerStep

    step = CyclerStep("cccv", 36_000, current=-5.0, voltage=3.5, until_current_below=0.25)
    if ends == "done":
        samples, state = run_step(step, ManualClock(), signed_current_tests=signed)
        assert state == "done" and abs(samples["current"][samples["step"] == 1][-1]) < 0.5
    else:  # a signed comparison fires at once: never reported as a finished step
        with pytest.raises(RuntimeError, match="signed current"):
            run_step(step, ManualClock(), signed_current_tests=signed)


def test_the_cyclers_own_failed_test_reads_failed_not_done():
    clock = ManualClock()
    sim = sim_with_cell(clock, soc=0.2)
    for cmd in (
        "CELL:DEF 1001,(@101)",
        "SEQ:STEP:DEF 1,1,CHARGE,14400,5,4.2",
        "SEQ:TEST:DEF 1,1,1,VOLT_GE,3.9,AFTER,0,FAIL",
        "CELL:ENABLE (@1001),1",
        "CELL:INIT (@1001)",
    ):
        sim.handle(cmd)
    clock.t = 20000.0
    assert sim.handle("STAT:CELL:REP? (@1001)") == "2"  # fail, as public code for real units reads it
    with SimServer(sim) as server:
        bt = KeysightBT2200(server.resource, visa_library="@py", timeout=2000)
        assert bt.cell_status(1001) == ["fail"]
        bt.adapter.close()


# -- limit tests of the instrument's own (FAIL) ---------------------------------------------------


def test_a_fail_test_fires_at_the_instruments_own_measurement_not_at_a_log_record():
    """Tests are evaluated every integration step (0.5 s here), on the instantaneous voltage; the log is every 10 s."""
    import copy

    from cellrig.sim.bt2200 import FAILED, RUNNING

    clock = ManualClock()
    sim = BT2200(clock, {101: Cell(NMC811, 5.0, soc=0.2)}, log_period=10, dt=0.5)
    cell = copy.deepcopy(sim.channels[101].cell)
    volts = []
    for _ in range(48):  # the level between the voltages after 47 and 48 steps: crossed at 24.0 s
        cell.step(5.0, 0.5)
        volts.append(cell.voltage(5.0))
    level = round((volts[-2] + volts[-1]) / 2, 6)
    for cmd in (
        "CELL:DEF 1001,(@101)",
        "SEQ:STEP:DEF 1,1,CHARGE,14400,5,4.2",
        f"SEQ:TEST:DEF 1,1,1,VOLT_GE,{level},AFTER,0,FAIL",
        "CELL:ENABLE (@1001),1",
        "CELL:INIT (@1001)",
    ):
        sim.handle(cmd)
    clock.t = 23.5
    sim.advance()
    assert sim.channels[101].status == RUNNING
    clock.t = 24.0
    sim.advance()
    assert sim.channels[101].status == FAILED and sim.t == 24.0  # 4 s after the last periodic record
    state, seq, step, _v, current, result, test, kind, limit, measured = sim.handle("STAT:CELL:VERB? 1001").split(",")
    assert (state, seq, step, result, test, kind) == ("IDLE", "1", "1", "FAIL", "1", "VOLT_GE")
    assert float(current) == 0.0 and float(limit) == pytest.approx(level, abs=1e-5)
    assert level <= float(measured) <= volts[-1] + 1e-6
    assert sim.handle("STAT:CELL:VERB? 1001") == sim.handle("STATus:CELL:VERBose? (@1001)")


@pytest.mark.parametrize(("end_at", "fail_at", "status"), [(0.25, 0.75, "DONE"), (0.75, 0.25, "FAILED")])
def test_of_two_levels_crossed_in_one_integration_step_the_first_crossed_acts(end_at, fail_at, status):
    """A discharge ending at its voltage is not failed by a lower FAIL level its last step overshoots
    (the real instrument checks far more often than ``dt``); a FAIL level crossed first still fails it."""
    import copy

    from cellrig.sim import bt2200

    clock = ManualClock()
    sim = bt2200.BT2200(clock, {101: Cell(NMC811, 5.0, soc=0.1)}, log_period=10, dt=30)
    cell = copy.deepcopy(sim.channels[101].cell)
    volts = []
    for _ in range(4):
        cell.step(-5.0, 30)
        volts.append(cell.voltage(-5.0))
    before, after = volts[-2], volts[-1]  # the 4th step crosses both levels, between these voltages
    level = {share: round(before - share * (before - after), 6) for share in (end_at, fail_at)}
    for cmd in (
        "CELL:DEF 1001,(@101)",
        "SEQ:STEP:DEF 1,1,DISCHARGE,3600,5,2.0",
        f"SEQ:TEST:DEF 1,1,1,VOLT_LE,{level[end_at]},AFTER,0,NEXT",
        f"SEQ:TEST:DEF 1,1,2,VOLT_LE,{level[fail_at]},AFTER,0,FAIL",
        "SEQ:STEP:DEF 1,2,REST,600",
        "CELL:ENABLE (@1001),1",
        "CELL:INIT (@1001)",
    ):
        sim.handle(cmd)
    clock.t = 120.0
    sim.advance()
    channel = sim.channels[101]
    assert channel.status == getattr(bt2200, "RUNNING" if status == "DONE" else "FAILED")
    assert channel.step == (1 if status == "DONE" else 0) and (channel.failed is None) == (status == "DONE")


@pytest.mark.parametrize(("signed", "fails"), [(False, True), (True, False)])
def test_a_guarded_channel_fails_its_step_at_the_limit_and_reads_back_which(signed, fails):
    """Over a real socket: the voltage guard of a charge; the current guard of a discharge, which an
    instrument comparing signed current would never fire (the supervisor then trips on the log alone)."""
    from cellrig.instruments.roles import CyclerLimits, CyclerStep
    from cellrig.sim.bt2200 import RUNNING

    clock = ManualClock()
    sim = BT2200(clock, {101: Cell(NMC811, 5.0, soc=0.2)}, log_period=10, signed_current_tests=signed)
    with SimServer(sim) as server:
        bt = KeysightBT2200(server.resource, visa_library="@py", timeout=2000)
        ch = bt.channel(101, CyclerLimits(2.5, 4.2, 5.0))
        ch.guard(voltage_min=2.45, voltage_max=3.9, current_max=5.25)
        ch.start_step(CyclerStep("cccv", 36_000, current=5.0, voltage=4.2, until_current_below=0.25))
        clock.t = 20_000.0
        assert ch.status() == "failed" and sim.channels[101].status != RUNNING
        charged = ch.failure()
        ch.guard(current_max=2.0)
        ch.start_step(CyclerStep("cc", 600, current=-2.5, until_voltage_below=3.0))
        clock.t += 700.0
        state, discharged = ch.status(), ch.failure()
        bt.adapter.close()
    assert charged is not None and charged.guard is not None
    assert (charged.guard.signal, charged.guard.word, charged.guard.limit) == ("voltage", "above", 3.9)
    assert 3.9 <= charged.measured < 3.92
    if fails:
        assert state == "failed" and discharged.guard.signal == "current"
        assert discharged.measured == pytest.approx(2.5)
    else:
        assert state == "done" and discharged is None


def test_a_crossing_ends_the_run_tripped_by_the_cyclers_own_test_resumable_only_acknowledged(tmp_path):
    """The engine on a virtual lab: the BT2200 fails the charge at voltage_max; the run ends as a trip does."""
    from cellrig import open_run
    from cellrig.lab import Lab
    from cellrig.protocols import Binding, parse
    from cellrig.protocols.engine import Runner, Shared
    from cellrig.sim.bt2200 import FAILED
    from cellrig.sim.lab import VirtualLab

    with VirtualLab(speed=5_000, dt=2.0) as v:
        lab = Lab.from_dict(v.lab_dict(), "virtual", v.clock)
        with lab:
            channel = v.sims["cycler"].channels[101]
            limit = round(channel.cell.voltage(0.0) + 0.15, 3)
            text = (
                f"name: guarded\nlimits: {{voltage_max: {limit} V}}\nsteps:\n"
                "  - cccv: {current: 1C, voltage: $v_max, until_current: C/20, max_time: 3 h}\n"
            )
            runner = Runner.start(parse(text), Binding("cycler", 101), tmp_path, Shared(lab))
            status, reason = runner.run()
            assert channel.status == FAILED and runner.cycler.status() != "running"  # read back over VISA
            with pytest.raises(ValueError, match="--ack-trip"):
                Runner.resume(runner.writer.path, Shared(lab))
            again = Runner.resume(runner.writer.path, Shared(lab), ack_trip=True)
            resumed = again.run()
    assert status == "tripped" and reason.startswith("cycler voltage"), reason
    assert f"above the {limit:g} V limit (the cycler's own test, read at t = " in reason
    assert limit <= float(reason.split()[2]) < limit + 0.02  # the value the instrument measured
    r = open_run(runner.writer.path)
    kinds = r.events["kind"].tolist()
    assert kinds.index("trip") < kinds.index("safe_state") and "trip_ack" in kinds
    assert r.events[r.events["kind"] == "trip"]["message"].tolist()[0] == reason
    assert resumed[0] == r.status == "tripped" and "the cycler's own test" in r.end_reason


# -- where a step ends -----------------------------------------------------------------------------


def run_to_its_end(sim: BT2200, *sequence: str) -> np.ndarray:
    """Run ``sequence`` (its SEQ:… definitions) on cell 1001 of channel 101 until it ends; the log's records."""
    for cmd in ("CELL:DEF 1001,(@101)", *sequence, "CELL:ENABLE (@1001),1", "CELL:INIT (@1001)"):
        assert sim.handle(cmd) is None, cmd
    while sim.handle("STAT:CELL:REP? (@1001)") == "1":
        sim.clock.t += 60.0
    return np.frombuffer(b"".join(sim.log), sim.record)


@pytest.mark.parametrize("chemistry", [NMC811, LFP, SULFIDE_ASSB], ids=["nmc811", "lfp", "sulfide"])
@pytest.mark.parametrize("rate", [1.0, 3.0], ids=["1C", "3C"])
@pytest.mark.parametrize("charge", [False, True], ids=["discharge", "charge"])
@pytest.mark.parametrize("action", ["NEXT", "FAIL"])
def test_a_cc_step_ends_at_its_voltage_not_up_to_a_tick_past_it(chemistry, rate, charge, action):
    """At the virtual lab's clock (``dt`` 2 s, a record every 10 s), a CC step to the chemistry's window ends
    within 2 mV of its level on new and aged cells, though near an end of the curve the voltage runs away faster
    than any tick before foresees: the step's records (what the supervisor reads) and, for a FAIL test, the
    value the instrument measured when it fired."""
    import random

    from cellrig.sim.bt2200 import DONE, FAILED

    level = chemistry.v_max if charge else chemistry.v_min
    sign = 1 if charge else -1  # sign × (V − level) > 0: beyond the level
    rng = random.Random(18)
    for _ in range(10):
        capacity = 2.0  # 3C = 6 A, within the channel's rating
        fade = rng.choice([0.0, 0.2, 0.35] + ([] if charge else [0.58]))
        cell = Cell(
            chemistry,
            capacity,
            soc=rng.uniform(0.1, 0.3) if charge else rng.uniform(0.15, 0.35),
            capacity_variation=rng.gauss(1.0, 0.02),
            resistance_variation=rng.gauss(1.0, 0.1),
            lli=0.7 * fade,
            lam=0.3 * fade,
        )
        current = rate * capacity
        assert sign * (cell.voltage(sign * current) - level) < -0.02  # the level lies ahead, not in the IR step
        sim = BT2200(ManualClock(), {101: cell}, log_period=10, dt=2.0, log_states=True)
        records = run_to_its_end(
            sim,
            f"SEQ:STEP:DEF 1,1,{'CHARGE' if charge else 'DISCHARGE'},36000,{current:g},{level:g}",
            f"SEQ:TEST:DEF 1,1,1,{'VOLT_GE' if charge else 'VOLT_LE'},{level:g},AFTER,0,{action}",
        )
        in_step = records[records["seq_state"][:, 0] != 0]
        assert len(in_step) > 3 and sim.channels[101].status == (DONE if action == "NEXT" else FAILED)
        assert (sign * (in_step["vsense"][:, 0] - level)).max() <= 0.002
        if action == "FAIL":
            *_, limit, measured = sim.handle("STAT:CELL:VERB? 1001").split(",")
            assert float(limit) == level and 0.0 <= sign * (float(measured) - level) <= 0.002


@pytest.mark.parametrize("chemistry", [NMC811, LFP, SULFIDE_ASSB], ids=["nmc811", "lfp", "sulfide"])
def test_a_worn_cell_charged_at_its_rated_current_holds_the_cv_level(chemistry):
    """A cell worn to 6 % of its capacity takes its rated 1C as 17C: the virtual cycler regulates within the tick,
    as the instrument does continuously, so the CV phase holds its level instead of overshooting it (the supervisor
    tripped such a cell at its 4.25 V limit when the current was set once a tick)."""
    cell = Cell(chemistry, 5.0, soc=0.0, lli=0.64, lam=0.3)
    sim = BT2200(ManualClock(), {101: cell}, log_period=2, dt=2.0, log_states=True)
    records = run_to_its_end(sim, f"SEQ:STEP:DEF 1,1,CHARGE,3600,5,{chemistry.v_max:g}")
    assert cell.soc > 0.95 and records["vsense"][:, 0].max() <= chemistry.v_max + 0.002


def test_a_snapshot_of_a_cell_names_all_of_it_and_puts_it_back_as_it_was():
    """The cycler takes a tick again from a snapshot of the cell (its attributes read by name): the snapshot names
    every attribute a cell comes to have, none of their values changes in place, and putting it back restores it."""
    import copy

    from cellrig.sim.bt2200 import _attributes, _put_back, _snapshot

    cell = Cell(NMC811, 2.0, soc=0.5, throughput_ah=4000.0, temperature=5.0)
    kept, snapshot = copy.deepcopy(cell), _snapshot(cell)
    for current, dt in ((6.0, 600.0), (-6.0, 900.0), (0.0, 3600.0)):
        cell.step(current, dt)
    cell.short_ohm = 0.05  # a nail: it heats, vents and runs away
    for _ in range(200):
        cell.step(0.0, 10.0)
    assert cell.vented and cell.reacted > 0.5
    assert set(_attributes(cell)[0]) == set(vars(cell)) and snapshot == _snapshot(kept)
    _put_back(cell, snapshot)
    assert vars(cell) == vars(kept)
