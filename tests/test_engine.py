"""The run engine on the virtual lab: real VISA sockets, real run files, every way out made safe."""

import dataclasses
import datetime as dt
import threading
import time
import tomllib
import types
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from cycling import cccv_cycles
from waiting import wait_for

from cellrig import open_run
from cellrig.analysis import cycle_summary
from cellrig.cli import main
from cellrig.lab import Lab
from cellrig.protocols import Binding, Probe, cell_spec, control, engine, library, parse
from cellrig.protocols.engine import PreflightError, Runner, Shared
from cellrig.protocols.preflight import check, sole_roles
from cellrig.sim.bt2200 import RUNNING
from cellrig.sim.lab import VirtualLab
from cellrig.sim.wiring import RIG, SMU

CYCLING = Binding("cycler", 101, "chamber", None, "daq", {"temperature": Probe(101)})

THREE_CYCLES = cccv_cycles("three", 3)


@contextmanager
def virtual(speed: float = 5_000, **options: object) -> Iterator[tuple[VirtualLab, Lab]]:
    """A virtual lab at ``speed`` (world steps of 2 s unless given): slow enough to keep up on a busy machine."""
    with VirtualLab(speed=speed, **{"dt": 2.0, **options}) as v:
        lab = Lab.from_dict(v.lab_dict(), "virtual", v.clock)
        with lab:
            yield v, lab


def run(lab: Lab, protocol, binding: Binding, out, **kw) -> tuple[Runner, tuple[str, str | None]]:
    runner = Runner.start(protocol, binding, out, Shared(lab), **kw)
    return runner, runner.run()


def channel_safe(v: VirtualLab, channel: int = 101) -> bool:
    return v.sims["cycler"].channels[channel].status != RUNNING


def test_cycles_stream_to_a_run_file_with_steps_cycles_and_the_cell_capacity(tmp_path):
    cell = cell_spec("nmc811-5Ah", "NMC-7")
    with virtual() as (v, lab):
        protocol = parse(THREE_CYCLES, "<three>", cell)
        runner, (status, reason) = run(
            lab, protocol, Binding("cycler", 101, daq="daq", probes={"temperature": Probe(101)}), tmp_path
        )
        assert (status, reason) == ("finished", None)
        assert channel_safe(v)
        capacity = v.sims["cycler"].channels[101].cell.retained_capacity_ah
    r = open_run(runner.writer.path)
    assert (
        r.status == "finished" and r.meta["cell"]["id"] == "NMC-7" and r.meta["protocol"]["sha256"] == protocol.sha256
    )
    ds = r["cycler"]
    assert sorted(set(ds["cycle"].values.tolist())) == [1, 2, 3]
    assert np.all(np.diff(ds["time"].values) >= 0)
    ends = r.events[r.events["kind"] == "step_end"]
    assert ends["step"].tolist() == [1, 2, 3, 4] * 3
    assert ends["cycle"].tolist() == [c for c in (1, 2, 3) for _ in range(4)]
    assert len(r.events[r.events["kind"] == "checkpoint"]) == 12
    table = cycle_summary(r)
    assert table["discharge_capacity"].between(0.97 * capacity, 1.01 * capacity).all()
    assert table["coulombic_efficiency"].iloc[1:].between(0.98, 1.0).all()  # the cell starts half charged
    assert r.rows("daq") > 10  # the thermocouple was recorded alongside, at its own rate


@pytest.mark.parametrize(
    ("interrupt", "status", "reason"),
    [
        (KeyboardInterrupt(), "stopped", "interrupted (Ctrl-C)"),
        (RuntimeError("operator pulled the plug"), "failed", "RuntimeError: operator pulled the plug"),
    ],
)
def test_every_way_out_leaves_the_cycler_safe_and_says_why(tmp_path, interrupt, status, reason):
    def progress(r: Runner) -> None:
        if r.state.cycle >= 2:
            raise interrupt

    with virtual() as (v, lab):
        runner, outcome = run(lab, parse(THREE_CYCLES), CYCLING, tmp_path, progress=progress)
        assert outcome == (status, reason)
        assert channel_safe(v)
    r = open_run(runner.writer.path)
    assert (r.status, r.end_reason) == (status, reason)
    assert r["cycler"]["cycle"].values.max() == 2
    assert r.events["kind"].tolist()[-2:] == ["safe_state", "end"]


def test_a_lost_cycler_ends_the_run_failed_and_says_safe_state_is_unconfirmed(tmp_path):
    def progress(r: Runner) -> None:
        if r.state.cycle >= 2:
            v.servers["cycler"].stop()  # the instrument drops off the network mid-run

    with virtual() as (v, lab):
        spec = lab.roles["cycler"]  # give up quickly on the lost instrument
        lab.roles["cycler"] = dataclasses.replace(
            spec, policy=dataclasses.replace(spec.policy, timeout_s=0.3, retries=1)
        )
        runner, (status, reason) = run(lab, parse(THREE_CYCLES), Binding("cycler", 101), tmp_path, progress=progress)
    assert status == "failed" and "safe state NOT confirmed" in reason
    assert open_run(runner.writer.path).rows("cycler") > 0


def test_a_dropped_connection_and_lost_replies_mid_run_are_recovered_without_losing_data(tmp_path):
    with virtual() as (v, lab):
        faults = iter(
            [
                lambda: v.servers["cycler"].drop_connections(),
                lambda: v.sims["cycler"].inject("timeout", match="DATA:LOG?"),
                lambda: v.sims["cycler"].inject("drop", match="DATA:LOG?"),
            ]
        )

        def progress(r: Runner) -> None:
            if r.state.cycle >= 2:
                next(faults, lambda: None)()

        runner, outcome = run(lab, parse(THREE_CYCLES), Binding("cycler", 101), tmp_path, progress=progress)
        assert outcome == ("finished", None)
        period = v.sims["cycler"].log_period
    r = open_run(runner.writer.path)
    assert cycle_summary(r)["cycle"].tolist() == [1, 2, 3]
    t, step = r["cycler"]["time"].values, r["cycler"]["step"].values
    same_step = step[1:] == step[:-1]
    assert np.diff(t)[same_step].max() <= period + 1e-6  # within a step, no record went missing


def test_a_loop_until_retention_ends_at_end_of_life_with_rpts_on_schedule(tmp_path):
    cell = cell_spec("nmc811-5Ah", "NMC-EOL")
    overrides = {"rpt_every": 5, "rest": "5 min", "eol": "90 %", "confirm": 2}
    with virtual(speed=10_000, ageing=40) as (_v, lab):
        protocol = library.protocol("cycle-life", cell, overrides)
        runner, outcome = run(lab, protocol, CYCLING, tmp_path)
    assert outcome == ("finished", None)
    r = open_run(runner.writer.path)
    (message,) = r.events[r.events["kind"] == "loop_end"]["message"]
    iterations = int(message.split("after ")[1].split()[0])
    assert "retention 0.8" in message and "for 2 iterations" in message  # two cycles in a row below 90 %
    rpt_starts = r.events[(r.events["kind"] == "step_start") & r.events["message"].str.startswith("rpt/cc")]
    assert len(rpt_starts) == 2 * (1 + iterations // 5)  # the first RPT, then one every 5 cycles (cccv + cc)
    assert r.rows("chamber") > 0 and r["chamber"]["setpoint"].values[-1] == pytest.approx(25.0)


def test_pause_holds_the_cell_safe_and_continue_finishes_with_every_cycle(tmp_path):
    with virtual(speed=5_000) as (v, lab):
        runner = Runner.start(parse(THREE_CYCLES), CYCLING, tmp_path, Shared(lab))
        result: list = []
        worker = threading.Thread(target=lambda: result.append(runner.run()))
        worker.start()
        wait_for(lambda: runner.state.steps_done >= 2, "two steps")
        control.send(runner.writer.path, "pause")
        wait_for(lambda: runner.status == "paused", "the pause")
        assert channel_safe(v)  # paused: the channel is not driving the cell
        shown = CliRunner().invoke(main, ["status", str(tmp_path)], env={"COLUMNS": "250"})
        assert shown.exit_code == 0 and "paused" in shown.output
        control.send(runner.writer.path, "continue")
        worker.join(timeout=120)
    assert result == [("finished", None)]
    r = open_run(runner.writer.path)
    kinds = r.events["kind"].tolist()
    assert kinds.index("pause") < kinds.index("continue")
    assert cycle_summary(r)["cycle"].tolist() == [1, 2, 3]


def _discarded(path) -> list[str]:
    events = open_run(path).events
    return events[events["kind"] == "command_discarded"]["message"].tolist()


def test_a_stale_abort_is_discarded_on_resume_and_recorded(tmp_path):
    """An abort sent to a stopped run (its sender killed before withdrawing it) never reaches the resumed run."""

    def stop_after_first_step(r: Runner) -> None:
        if r.state.steps_done == 1:
            control.send(r.writer.path, "stop")

    with virtual() as (_v, lab):
        runner, outcome = run(lab, parse(cccv_cycles("two", 2)), CYCLING, tmp_path, progress=stop_after_first_step)
        assert outcome[0] == "stopped"
        path = runner.writer.path
        control.send(path, "abort")  # for this very run, not yet expired: but sent before the resume
        resumed = Runner.resume(path, Shared(lab))
        assert not control.control_path(path).exists()
        assert resumed.run() == ("finished", None)
    (why,) = _discarded(path)
    assert why.startswith("'abort' sent ") and why.endswith("before this start or resume")
    assert open_run(path).status == "finished"
    assert cycle_summary(open_run(path))["cycle"].tolist() == [1, 2]


def test_commands_for_another_run_or_expired_are_never_acted_on(tmp_path):
    """A leftover command at a new run's name, one for another run and an expired one: each dropped and said."""
    path = tmp_path / "run.h5"
    control.control_path(path).write_text("abort\n")  # beside a run file of this name, deleted long ago

    def stale(r: Runner) -> None:
        now = time.time()
        if r.state.steps_done == 1:
            control.control_path(path).write_text(f"abort {uuid.uuid4()} {now} {now + 30}\n")
        elif r.state.steps_done == 2:
            control.control_path(path).write_text(f"stop {r.writer.run_id} {now - 60} {now - 30}\n")

    with virtual() as (_v, lab):
        _runner, outcome = run(lab, parse(cccv_cycles("one", 1)), CYCLING, path, progress=stale)
    assert outcome == ("finished", None)
    leftover, other, expired = _discarded(path)
    assert leftover.startswith("'abort': not a command for any run")
    assert "'abort' sent " in other and "for another run" in other
    assert "'stop' sent " in expired and " expired at " in expired


def test_two_runs_started_in_one_second_in_one_folder_get_a_name_each(tmp_path, monkeypatch):
    class Frozen(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return dt.datetime(2026, 5, 1, 12, 0, 0, tzinfo=tz)

    monkeypatch.setattr(engine, "dt", types.SimpleNamespace(datetime=Frozen, UTC=dt.UTC, date=dt.date))
    with virtual() as (_v, lab):
        runners = [Runner.start(parse(THREE_CYCLES), CYCLING, tmp_path, Shared(lab)) for _ in range(2)]
        for r in runners:
            r.writer.close("stopped")
    names = [r.writer.path.name for r in runners]
    assert names == ["cell-1_three_20260501T120000Z.h5", "cell-1_three_20260501T120000Z-2.h5"]
    assert all(open_run(tmp_path / n).status == "stopped" for n in names)


@pytest.mark.parametrize(("command", "status"), [("stop", "stopped"), ("abort", "aborted")])
def test_stop_and_abort_from_another_terminal_end_the_run_safe(tmp_path, command, status):
    def progress(r: Runner) -> None:
        if r.state.steps_done == 3:
            control.send(r.writer.path, command)

    with virtual() as (v, lab):
        runner, outcome = run(lab, parse(THREE_CYCLES), CYCLING, tmp_path, progress=progress)
        assert channel_safe(v)
    assert outcome[0] == status and "operator" in outcome[1]
    assert open_run(runner.writer.path).status == status


# -- the safety supervisor: every kind of limit trips and leaves every instrument safe ---------

LIMIT_TRIPS = {
    "voltage": ("voltage_max: 4.0 V", "cycler voltage"),
    "current": ("current_max: 2 A", "cycler current"),
    "temperature": ("temperature_max: 20 °C", "cell temperature"),
    "chamber temperature": ("chamber_temperature_max: 20 °C", "chamber temperature"),
}


@pytest.mark.parametrize("kind", list(LIMIT_TRIPS))
def test_each_cycling_limit_trips_into_the_safe_state(tmp_path, kind):
    limit, said = LIMIT_TRIPS[kind]
    text = f"""
name: trip
limits: {{{limit}}}
steps:
  - set: 25 °C
  - cccv: {{current: 0.5C, voltage: $v_max, until_current: C/20, max_time: 3 h}}
  - cc: {{current: -1C, until_voltage: $v_min, max_time: 3 h}}
"""
    with virtual(speed=5_000) as (v, lab):
        runner, (status, reason) = run(lab, parse(text), CYCLING, tmp_path)
        assert status == "tripped" and reason.startswith(said), reason
        assert channel_safe(v)
        assert v.sims["chamber"].mode == "STANDBY"  # the run's chamber too
    assert open_run(runner.writer.path).end_reason.startswith(said)


@pytest.mark.parametrize(
    ("limit", "said"),
    [("dTdt_max: 1 K/s", "cell dT/dt"), ("gas_max: 100 ppm", "gas"), ("force_max: 1 kN", "rig force")],
)
def test_each_abuse_limit_trips_and_the_rig_retracts(tmp_path, limit, said):
    text = f"""
name: nail-trip
kind: abuse
sample_interval: 1 s
limits: {{{limit}}}
steps:
  - press: {{mode: nail, speed: 25 mm/s, depth: 12 mm}}
  - observe: 10 min
  - retract: 5 mm/s
"""
    with virtual(speed=200) as (v, lab):
        _runner, (status, reason) = run(lab, parse(text), RIG, tmp_path)
        assert status == "tripped" and reason.startswith(said), reason
        rig = v.sims["rig"]
        assert rig.state in ("RETRACTING", "IDLE") and rig.v <= 0  # the nail comes out


# -- the standard library --------------------------------------------------------------------

LIBRARY_RUNS = {
    "formation": ("cycling", {"cycles": 1, "rate": "C/5", "rest": "10 min"}),
    "capacity": ("cycling", {"rest": "10 min"}),
    "cycle-life": ("sweep", {"max_cycles": 2, "rpt_every": 1, "rest": "5 min"}),
    "hppc": ("cycling", {"steps": 2, "rest": "10 min"}),
    "rate-capability": ("cycling", {"rest": "5 min"}),
    "temperature-sweep": ("sweep", {"soak": "10 min"}),
    "hot-box": ("chamber", {"target": "200 °C", "hold": "10 min", "observe": "5 min"}),
    "arc-hws": ("chamber", {"start": "180 °C", "end": "200 °C", "wait": "10 min", "seek": "5 min"}),
    "nail-gbt31485": ("rig", {"observe": "5 min"}),
    "nail-sae-j2464": ("rig", {"observe": "5 min"}),
    "crush-gb38031": ("rig", {"hold": "1 min", "observe": "5 min"}),
    "crush-un38.3-t6": ("rig", {"observe": "5 min"}),
    "overcharge": ("smu", {"observe": "5 min"}),
    "over-discharge": ("smu", {"observe": "5 min"}),
    "external-short": ("smu", {"observe": "5 min", "time": "2 min"}),
}


@pytest.mark.parametrize("name", sorted(LIBRARY_RUNS))
def test_every_standard_protocol_runs_to_completion_on_the_sulfide_cell(tmp_path, name):
    """The seed's cell survives every test (hot box at 200 °C, nail, crush, electrical abuse)."""
    setup, overrides = LIBRARY_RUNS[name]
    binding, speed, cell_type = {
        "cycling": (Binding("cycler", 104, daq="daq", probes={"temperature": Probe(104)}), 8_000, "sulfide-5Ah"),
        "sweep": (Binding("cycler", 104, "chamber", None, "daq", {"temperature": Probe(104)}), 5_000, "sulfide-5Ah"),
        "chamber": (Binding(chamber="chamber", daq="daq", probes={"temperature": Probe(104)}), 2_000, "sulfide-5Ah"),
        "rig": (RIG, 200, "sulfide-5Ah"),
        "smu": (SMU, 1_000, "sulfide-0.5Ah"),
    }[setup]
    with virtual(speed=speed, specimen="sulfide") as (_v, lab):
        protocol = library.protocol(name, cell_spec(cell_type), overrides)
        runner, outcome = run(lab, protocol, binding, tmp_path)
    assert outcome == ("finished", None), outcome
    r = open_run(runner.writer.path)
    ends = r.events[r.events["kind"] == "step_end"]
    assert len(ends) >= len(protocol.leaves) or protocol.header.steps  # every step ran to its end
    assert r.meta["protocol"]["standard"] == protocol.header.standard


@pytest.mark.parametrize(
    ("name", "setup", "overrides"),
    [
        ("nail-gbt31485", "rig", {"observe": "5 min"}),
        ("crush-gb38031", "rig", {"hold": "1 min", "observe": "5 min"}),
        ("hot-box", "chamber", {"target": "200 °C", "hold": "20 min", "observe": "5 min"}),
    ],
)
def test_nail_crush_and_hot_box_trip_an_nmc_cell_into_the_safe_state(tmp_path, name, setup, overrides):
    binding, speed = {
        "rig": (RIG, 200),
        "chamber": (Binding(chamber="chamber", daq="daq", probes={"temperature": Probe(101)}), 2_000),
    }[setup]
    with virtual(speed=speed, specimen="nmc811") as (v, lab):
        runner, (status, reason) = run(
            lab, library.protocol(name, cell_spec("nmc811-5Ah"), overrides), binding, tmp_path
        )
        assert status == "tripped" and ("dT/dt" in reason or "temperature" in reason or "gas" in reason), reason
        if setup == "rig":
            assert v.sims["rig"].state in ("RETRACTING", "IDLE")
        else:
            assert v.sims["chamber"].mode == "STANDBY"
    assert open_run(runner.writer.path).end_reason == reason


# -- refused before anything moves -------------------------------------------------------------


def test_preflight_reports_every_violation_at_once_and_opens_nothing(tmp_path):
    text = """
name: too-much
steps:
  - set: 210 °C
  - cccv: {current: 1C, voltage: 4.0 V, until_current: C/20}
  - cc: {current: -20 A, until_voltage: 2.5 V}
"""
    with virtual() as (_v, lab):
        with pytest.raises(PreflightError) as caught:
            Runner.start(parse(text, "too-much.yaml", cell_spec("lfp-5Ah")), CYCLING, tmp_path, Shared(lab))
        assert lab.instruments == {}  # no instrument was even opened
    problems = caught.value.problems
    assert any("too-much.yaml:4" in p and "210 °C is outside the chamber" in p for p in problems)
    assert any("too-much.yaml:5" in p and "4 V is above the cell's 3.65 V maximum" in p for p in problems)
    assert any("too-much.yaml:6" in p and "20 A exceeds the cycler's 5 A" in p for p in problems)
    assert list(tmp_path.iterdir()) == []


def test_a_role_nobody_named_is_the_labs_only_one_of_its_kind_or_the_refusal_lists_the_choice():
    lab_file = Path(__file__).parents[1] / "examples" / "lab-virtual.toml"
    data = tomllib.loads(lab_file.read_text())
    lab = Lab.from_dict(data, "lab-virtual.toml")  # two cyclers (the BT2200 and the SMU), three chambers
    crush = library.protocol("crush-gb38031", cell_spec("nmc811-5Ah"))
    binding, said = sole_roles(crush, lab, Binding(daq="daq2", probes={"temperature": Probe(101)}))
    assert binding.rig == "rig" and said == ["rig: 'rig', the lab's only rig"] and lab.instruments == {}
    cycling = library.protocol("capacity", cell_spec("nmc811-5Ah"))
    unnamed, said = sole_roles(cycling, lab, Binding(daq="daq", probes={"temperature": Probe(101)}))
    assert unnamed.cycler is None and said == []
    assert any(
        "needs a cycler, and none is assigned (--cycler: one of cycler, smu)" in p for p in check(cycling, lab, unnamed)
    )
    data["roles"] = {k: v for k, v in data["roles"].items() if k != "smu"}
    binding, said = sole_roles(cycling, Lab.from_dict(data), unnamed)
    assert binding.cycler == "cycler" and said == ["cycler: 'cycler', the lab's only cycler"]


def test_a_crush_beyond_the_press_rating_is_refused(tmp_path):
    with virtual() as (_v, lab):
        protocol = library.protocol("crush-gb38031", cell_spec("nmc811-5Ah"), {"force": "200 kN"})
        with pytest.raises(PreflightError, match="200 kN exceeds the rig's 100 kN"):
            Runner.start(protocol, RIG, tmp_path, Shared(lab))


def test_a_nail_slower_than_the_ram_can_move_is_refused_before_any_file(tmp_path):
    """Below the PRESS-100's 0.1 mm/s the driver would refuse the press mid-run: pre-flight says so first."""
    with virtual() as (_v, lab):
        protocol = library.protocol("nail-gbt31485", cell_spec("nmc811-5Ah"), {"speed": "0.05 mm/s"})
        with pytest.raises(PreflightError, match=r"nail-gbt31485.yaml:\d+: .*0.05 mm/s is below the rig's slowest"):
            Runner.start(protocol, RIG, tmp_path, Shared(lab))
        assert lab.instruments == {}
    assert list(tmp_path.iterdir()) == []


def test_abuse_runs_never_resume_and_finished_runs_neither(tmp_path):
    def progress(r: Runner) -> None:
        control.send(r.writer.path, "stop")

    with virtual(speed=200, specimen="sulfide") as (_v, lab):
        abuse, outcome = run(
            lab, library.protocol("nail-gbt31485", cell_spec("sulfide-5Ah")), RIG, tmp_path, progress=progress
        )
        assert outcome[0] == "stopped"
        with pytest.raises(ValueError, match="abuse tests are never resumed"):
            Runner.resume(abuse.writer.path, Shared(lab))
        done, _ = run(lab, parse("name: note\nsteps: [{note: hello}]"), Binding(), tmp_path)
        with pytest.raises(ValueError, match="only interrupted or stopped runs resume"):
            Runner.resume(done.writer.path, Shared(lab))


@pytest.mark.parametrize(
    ("code", "status", "said"),
    [("fail", "tripped", "the cycler's own limit test failed"), (7, "failed", "code 7")],
)
def test_a_step_the_cycler_ends_itself_never_reads_as_finished(tmp_path, code, status, said):
    """The instrument fails the running step itself (its own test), or reports a code cellrig does not know."""
    from cellrig.sim.bt2200 import Test

    with virtual() as (v, lab):
        sim = v.sims["cycler"]
        channel = sim.channels[101]

        def end_the_step() -> None:
            wait_for(lambda: channel.status == RUNNING, "the first step to run")
            with sim.lock:
                if code == "fail":  # a limit test of the instrument's own fires at once
                    channel.steps[channel.step][2].append(Test("VOLT_GE", 0.0, "AFTER", 0.0, "FAIL"))
                else:
                    channel.status = code

        ender = threading.Thread(target=end_the_step)
        ender.start()
        runner, (got, reason) = run(lab, parse(THREE_CYCLES), Binding("cycler", 101), tmp_path)
        ender.join()
    assert got == status and said in reason, reason
    assert open_run(runner.writer.path).status == status
