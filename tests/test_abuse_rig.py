"""cellrig PRESS-100: every driver command (expected_protocol), validators, and the driver on the simulator."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pytest
from pymeasure.test import expected_protocol

from cellrig.clock import ManualClock
from cellrig.instruments import roles
from cellrig.instruments._connection import ConnectionPolicy, InstrumentError
from cellrig.instruments.abuse_rig import RECORD, Press100
from cellrig.instruments.roles import Press, PressStop, RigLimits
from cellrig.protocols.engine import MAX_WALL_POLL
from cellrig.protocols.kinds.rig import RIG_ACQUISITION_HZ
from cellrig.sim import SimServer
from cellrig.sim.abuse_rig import PouchCell, PressSim
from cellrig.sim.lab import ROLES

NO_ERROR = ("SYST:ERR?", '+0,"No error"')


def block(records: np.ndarray) -> bytes:
    payload = records.tobytes()
    size = str(len(payload))
    return f"#{len(size)}{size}".encode() + payload + b"\n"


# -- every command the driver sends ------------------------------------------------------


def test_identify_and_role():
    with expected_protocol(Press100, [("*IDN?", "cellrig,PRESS-100,R0042,1.0")]) as rig:
        assert isinstance(rig, roles.AbuseRig)
        assert rig.identify() == roles.Identity("cellrig", "PRESS-100", "R0042", "1.0")


def test_press_settings():
    with expected_protocol(
        Press100,
        [
            ("PRES:MODE CRUSH", None),
            ("PRES:MODE?", "NAIL"),
            ("PRES:SPE 2", None),
            ("PRES:SPE?", "2"),
            ("PRES:STOP:DEPT 3.5", None),
            ("PRES:STOP:DEPT?", "3.5"),
            ("PRES:STOP:FORC OFF", None),
            ("PRES:STOP:FORC?", "OFF"),
            ("PRES:STOP:VDR 0.1", None),
            ("PRES:STOP:VDR?", "0.1"),
        ],
    ) as rig:
        rig.mode = "crush"
        assert rig.mode == "nail"
        rig.speed = 2
        assert rig.speed == 2.0
        rig.stop_depth = 3.5
        assert rig.stop_depth == 3.5
        rig.stop_force = None
        assert rig.stop_force is None
        rig.stop_voltage_drop = 0.1
        assert rig.stop_voltage_drop == 0.1


def test_configure_limits_programs_the_rig_and_tightens_the_validators():
    with expected_protocol(
        Press100,
        [
            ("SOUR:LIM:FORC 20", None),
            ("SOUR:LIM:SPE 30", None),
            ("SOUR:LIM:TRAV 60", None),
            NO_ERROR,
            ("SOUR:LIM:FORC?", "20"),
            ("SOUR:LIM:SPE?", "30"),
            ("SOUR:LIM:TRAV?", "60"),
        ],
    ) as rig:
        rig.configure_limits(RigLimits(max_force=20, max_speed=30, max_depth=60))
        assert (rig.force_limit, rig.speed_limit, rig.travel_limit) == (20, 30, 60)
        assert rig.limits == RigLimits(20, 30, 60)
        for name, value in (("speed", 40), ("stop_force", 25), ("stop_depth", 61)):
            with pytest.raises(ValueError):
                setattr(rig, name, value)


def test_readings():
    with expected_protocol(
        Press100,
        [
            ("MEAS:POS?", "21.1802"),
            ("MEAS:FORC?", "7.5449"),
            ("MEAS:VOLT?", "3.63549"),
            ("SYST:INT?", "0"),
            ("STAT?", "STOPPED"),
            ("STOP:REAS?", "VDROP"),
            ("PRES:CONT?", "9.91E+37,9.91E+37"),
            ("PRES:CONT?", "20.0113,4.20000"),
            ("ACQ:POIN?", "8500"),
        ],
    ) as rig:
        assert (rig.position, rig.force, rig.voltage) == (21.1802, 7.5449, 3.63549)
        assert rig.interlock_closed is False
        assert rig.status() == "stopped"
        assert rig.stop_reason == "vdrop"
        assert rig.contact is None
        assert rig.contact == (20.0113, 4.2)
        assert rig.points_available == 8500


def test_acquisition_settings():
    with expected_protocol(
        Press100,
        [
            ("ACQ:RATE 10000", None),
            ("ACQ:RATE?", "10000"),
            ("ACQ:PRET 0.05", None),
            ("ACQ:PRET?", "0.05"),
            ("ACQ:STAR", None),
            ("ACQ:STOP", None),
        ],
    ) as rig:
        rig.acquisition_rate = 10_000
        assert rig.acquisition_rate == 10_000
        rig.pretrigger = 0.05
        assert rig.pretrigger == 0.05
        rig.start_acquisition()
        rig.stop_acquisition()


def test_press_sets_up_starts_the_acquisition_then_the_press():
    with expected_protocol(
        Press100,
        [
            NO_ERROR,
            ("PRES:MODE NAIL", None),
            ("PRES:SPE 25", None),
            ("PRES:STOP:DEPT 12", None),
            ("PRES:STOP:FORC OFF", None),
            ("PRES:STOP:VDR 0.5", None),
            ("ACQ:STAR", None),
            ("PRES:STAR", None),
            NO_ERROR,
        ],
    ) as rig:
        rig.press(Press("nail", 25.0, PressStop(depth=12.0, voltage_drop=0.5)))


def test_hold_retract_stop_estop_and_reset():
    with expected_protocol(
        Press100,
        [
            ("HOLD 600", None),
            NO_ERROR,
            ("RETR 10", None),
            NO_ERROR,
            ("STOP", None),
            ("ESTOP", None),
            ("STAT?", "ESTOP"),
            ("ESTOP:RES", None),
            NO_ERROR,
        ],
    ) as rig:
        rig.hold(600)
        rig.retract(10)
        rig.stop()
        rig.estop()
        rig.reset_estop()


def test_a_refused_command_raises_naming_the_rig():
    with (
        expected_protocol(Press100, [("RETR 10", None), ("SYST:ERR?", '+302,"E-stop active"'), NO_ERROR]) as rig,
        pytest.raises(InstrumentError, match=r"cellrig PRESS-100 at .*: instrument reported \+302 E-stop active"),
    ):
        rig.retract(10)


def test_press_refuses_to_start_while_the_rig_reports_an_error():
    with (
        expected_protocol(Press100, [("SYST:ERR?", '+310,"Over-force"'), NO_ERROR]) as rig,
        pytest.raises(InstrumentError, match=r"\+310 Over-force"),
    ):
        rig.press(Press("crush", 2.0, PressStop(force=13.0)))


def test_fetch_samples_drains_the_buffer_in_blocks():
    records = np.zeros(3, RECORD)
    records["time"] = [1.0, 1.0001, 1.0002]
    records["position"] = [20.0, 20.0025, 20.005]
    records["force"] = [np.frombuffer(b"\n\n\n\n", "<f4")[0], 0.0125, 0.025]  # terminator bytes in the payload
    records["voltage"] = [4.2, 4.2, 4.0]
    with expected_protocol(
        Press100,
        [("ACQ:POIN?", "3"), ("ACQ:DATA? 2", block(records[:2])), ("ACQ:DATA? 1", block(records[2:]))],
    ) as rig:
        rig.records_per_query = 2
        got = rig.fetch_samples()
    assert set(got) == {"time", "position", "force", "voltage"}
    for name in RECORD.names:
        np.testing.assert_array_equal(got[name], records[name])


def test_fetch_samples_with_nothing_buffered():
    with expected_protocol(Press100, [("ACQ:POIN?", "0")]) as rig:
        got = rig.fetch_samples()
    assert all(len(column) == 0 for column in got.values()) and "time" in got


def test_safe_state_stops_logs_old_faults_and_retracts_slowly():
    with expected_protocol(
        Press100,
        [("STOP", None), ("SYST:ERR?", '+310,"Over-force"'), NO_ERROR, ("RETR 5", None), NO_ERROR],
    ) as rig:
        rig.safe_state()


def test_safe_state_estops_when_the_rig_refuses_to_retract():
    with expected_protocol(
        Press100,
        [
            ("STOP", None),
            NO_ERROR,
            ("RETR 5", None),
            ("SYST:ERR?", '+302,"E-stop active"'),
            NO_ERROR,
            ("ESTOP", None),
            ("STAT?", "ESTOP"),
        ],
    ) as rig:
        rig.safe_state()


@pytest.mark.parametrize(
    "call",
    [
        lambda rig: rig.press(Press("crush", 2.0, PressStop(force=200.0))),  # 200 kN on a 100 kN press
        lambda rig: rig.press(Press("nail", 120.0, PressStop(depth=10.0))),  # beyond 80 mm/s
        lambda rig: rig.press(Press("nail", 25.0, PressStop(depth=150.0))),  # beyond 100 mm of travel
        lambda rig: rig.press(Press("nail", 0.05, PressStop(depth=10.0))),  # below 0.1 mm/s
        lambda rig: rig.press(Press("nail", 25.0, PressStop(voltage_drop=0.0))),
        lambda rig: rig.press(Press("drill", 25.0)),  # type: ignore[arg-type]
        lambda rig: rig.retract(120.0),
        lambda rig: rig.hold(-1.0),
        lambda rig: rig.configure_limits(RigLimits(max_force=200.0, max_speed=80.0, max_depth=100.0)),
        lambda rig: setattr(rig, "acquisition_rate", 3000),  # not 10 kHz / n
        lambda rig: setattr(rig, "pretrigger", 2.0),
        lambda rig: setattr(rig, "force_limit", 150.0),
    ],
)
def test_out_of_range_values_raise_before_anything_is_sent(call):
    with expected_protocol(Press100, []) as rig, pytest.raises(ValueError):
        call(rig)


def test_configured_limits_refuse_what_the_rating_allows():
    with expected_protocol(Press100, [], limits=RigLimits(max_force=20.0, max_speed=30.0, max_depth=60.0)) as rig:
        with pytest.raises(ValueError):
            rig.press(Press("crush", 2.0, PressStop(force=50.0)))
        with pytest.raises(ValueError):
            rig.press(Press("nail", 40.0, PressStop(depth=10.0)))
        with pytest.raises(ValueError):
            rig.retract(40.0)


# -- the simulator on its own ----------------------------------------------------------------


def test_sim_refuses_bad_settings_into_the_error_queue():
    sim = PressSim(ManualClock())
    assert sim.handle("*IDN?") == "cellrig,PRESS-100,SIM0001,1.0"
    for cmd, error in [
        ("PRES:TWIST 1", '-113,"Undefined header"'),
        ("SOUR:LIM:SPE 30;PRES:SPE 40", '-222,"Data out of range"'),  # above the configured limit
        ("PRES:MODE DRILL", '-224,"Illegal parameter value"'),
        ("ACQ:RATE 3000", '-222,"Data out of range: not 10 kHz / n"'),
        ("ESTOP;PRES:STAR", '+302,"E-stop active"'),
    ]:
        sim.handle(cmd)
        assert sim.handle("SYST:ERR?") == error, cmd
    assert sim.handle("ACQ:DATA? 0") == b"#10"  # a refused data query still answers
    assert sim.handle("SYST:ERR?") == '-222,"Data out of range"'
    assert sim.handle("SYST:ERR?") == '+0,"No error"'


def test_sim_holds_then_stops_and_refuses_settings_while_pressing():
    clock = ManualClock()
    sim = PressSim(clock)
    sim.handle("PRES:SPE 10;PRES:STOP:DEPT 1;PRES:STAR")
    clock.t = 1.0
    sim.handle("PRES:SPE 5")
    assert sim.handle("SYST:ERR?") == '-221,"Settings conflict: pressing"'
    clock.t = 3.0  # contact at 20 mm, 1 mm deep: stopped
    assert (sim.handle("STAT?"), sim.handle("STOP:REAS?")) == ("STOPPED", "DEPTH")
    assert float(sim.handle("MEAS:POS?")) == pytest.approx(21.01, abs=0.02)
    sim.handle("HOLD 2")
    clock.t = 4.9
    assert sim.handle("STAT?") == "HOLDING"
    clock.t = 5.1
    assert sim.handle("STAT?") == "STOPPED"


def test_sim_over_force_halts_the_ram():
    clock = ManualClock()
    sim = PressSim(clock, PouchCell(gap_mm=1.0))
    sim.handle("SOUR:LIM:FORC 20;PRES:MODE CRUSH;PRES:SPE 5;PRES:STAR")
    clock.t = 2.0
    assert sim.handle("STOP:REAS?") == "OVERFORCE"
    assert float(sim.handle("MEAS:FORC?")) == pytest.approx(20.0, abs=0.2)
    assert sim.handle("SYST:ERR?") == '+310,"Over-force"'
    sim.handle("PRES:STAR")  # still at the limit
    assert sim.handle("SYST:ERR?") == '+310,"Over-force"'


def test_sim_buffer_overrun_is_reported_once_and_keeps_the_newest():
    clock = ManualClock()
    sim = PressSim(clock, buffer_records=100)
    sim.handle("ACQ:PRET 0;ACQ:STAR")
    clock.t = 1.0
    assert sim.handle("ACQ:POIN?") == "100"
    assert sim.handle("SYST:ERR?") == '+320,"Acquisition buffer overrun"'
    assert sim.handle("SYST:ERR?") == '+0,"No error"'
    payload = sim.handle("ACQ:DATA? 100")
    times = np.frombuffer(payload[len(b"#42000") :], RECORD)["time"]
    assert times[0] == pytest.approx(0.901) and times[-1] == pytest.approx(1.0)


# -- the driver on the simulator, over a real socket ------------------------------------------


@dataclass
class Bench:
    clock: ManualClock
    sim: PressSim
    rig: Press100

    def run_until_not(self, state: str, step: float, limit: float = 30.0) -> None:
        """Move the clock in ``step``s while the rig reports ``state`` (at most ``limit`` s)."""
        end = self.clock.t + limit
        while self.rig.status() == state:
            assert self.clock.t < end, f"still {state} after {limit} s"
            self.clock.t += step


@contextmanager
def bench(
    specimen: PouchCell | None = None, start: float = 1.0, policy: ConnectionPolicy | None = None
) -> Iterator[Bench]:
    clock = ManualClock()
    clock.t = start
    sim = PressSim(clock, specimen or PouchCell())
    with SimServer(sim) as server:
        rig = Press100(server.resource, visa_library="@py", policy=policy or ConnectionPolicy(timeout_s=2.0))
        try:
            yield Bench(clock, sim, rig)
        finally:
            rig.adapter.close()


def test_nail_at_25_mm_s_stops_on_the_voltage_drop_and_records_contact_short_and_drop():
    with bench() as b:
        rig = b.rig
        assert rig.identify().model == "PRESS-100"
        rig.acquisition_rate = 10_000
        assert rig.acquisition_rate == 10_000  # a query: the rig has taken the setting before the clock moves
        b.clock.t += 0.5  # the pre-trigger ring refills at the new rate
        rig.press(Press("nail", 25.0, PressStop(depth=12.0, voltage_drop=0.5)))  # GB/T 31485 nail speed
        b.run_until_not("pressing", 0.05)
        assert rig.status() == "stopped"
        assert rig.stop_reason == "vdrop"
        contact = rig.contact
        data = rig.fetch_samples()
        end = b.clock.t
    t, x, f, v = (data[k].astype(float) for k in ("time", "position", "force", "voltage"))
    assert contact is not None and contact[0] == pytest.approx(20.01, abs=0.01) and contact[1] == pytest.approx(4.2)
    # 0.1 s of pre-trigger, then every 100 µs sample up to the last command: nothing missing, nothing twice
    assert len(t) == round((end - 1.4) * 10_000)
    assert t[0] == pytest.approx(1.4001) and np.allclose(np.diff(t), 1e-4)
    before_contact = x < 20.0
    assert np.all(f[before_contact] == 0) and np.all(v[before_contact] == pytest.approx(4.2))
    assert f[x > 20.05].min() > 0  # the nail is in the cell
    shorted = v < 4.2 - 0.01
    assert x[shorted].min() >= 21.0  # the short forms 1 mm into the cell, not before
    assert v.min() <= contact[1] - 0.5  # the drop the press stopped on
    assert x.max() == pytest.approx(21.2, abs=0.1)  # a few ms of travel past the short, then braked
    assert np.all(np.diff(x) >= 0)


def test_crush_stops_at_its_force_and_over_force_protection_halts_the_ram():
    with bench(PouchCell(gap_mm=5.0, failure_strain=0.35)) as b:
        rig = b.rig
        rig.configure_limits(RigLimits(max_force=50.0, max_speed=10.0, max_depth=30.0))
        rig.press(Press("crush", 5.0, PressStop(force=13.0, depth=5.0)))  # UN 38.3 T.6 crush force
        b.run_until_not("pressing", 0.1)
        assert rig.stop_reason == "force"
        assert rig.force == pytest.approx(13.0, abs=0.1)
        assert rig.voltage == pytest.approx(4.2, abs=0.01)  # no short yet

        rig.configure_limits(RigLimits(max_force=20.0, max_speed=10.0, max_depth=30.0))
        rig.press(Press("crush", 5.0, PressStop(depth=5.0)))  # the depth lies beyond 20 kN
        b.run_until_not("pressing", 0.1)
        assert rig.stop_reason == "overforce"
        assert rig.force == pytest.approx(20.0, abs=0.1)
        with pytest.raises(InstrumentError, match=r"\+310 Over-force"):
            rig.hold(10)


def test_estop_halts_and_blocks_motion_until_reset():
    with bench() as b:
        rig = b.rig
        rig.press(Press("nail", 10.0, PressStop(depth=5.0)))
        b.clock.t += 1.0
        rig.estop()
        b.clock.t += 0.1
        halted = rig.position
        assert rig.status() == "estop" and 9.0 < halted < 11.0
        b.clock.t += 2.0
        assert rig.position == halted
        for move in (lambda: rig.press(Press("nail", 10.0, PressStop(depth=5.0))), lambda: rig.retract(5.0)):
            with pytest.raises(InstrumentError, match=r"\+302 E-stop active"):
                move()
        b.clock.t += 1.0
        assert rig.position == halted and rig.stop_reason == "estop"
        rig.reset_estop()
        assert rig.status() == "stopped"
        rig.retract(20.0)
        b.run_until_not("retracting", 0.1)
        assert rig.status() == "idle" and rig.position == 0.0


def test_interlock_refuses_a_press_and_opening_it_halts_one():
    with bench() as b:
        rig = b.rig
        b.sim.set_interlock(False)
        assert rig.interlock_closed is False
        with pytest.raises(InstrumentError, match=r"\+301 Interlock open"):
            rig.press(Press("nail", 10.0, PressStop(depth=5.0)))
        assert rig.status() == "idle" and rig.position == 0.0
        b.sim.set_interlock(True)
        rig.press(Press("nail", 10.0, PressStop(depth=5.0)))
        b.clock.t += 0.5
        b.sim.set_interlock(False)
        b.clock.t += 0.5
        assert rig.status() == "stopped" and rig.stop_reason == "interlock"
        assert rig.position == pytest.approx(5.0, abs=0.05)


def test_safe_state_retracts_home_from_a_stopped_nail():
    with bench() as b:
        rig = b.rig
        rig.press(Press("nail", 25.0, PressStop(depth=3.0)))
        b.run_until_not("pressing", 0.1)
        assert rig.position == pytest.approx(23.0, abs=0.1)
        rig.safe_state()
        assert rig.status() == "retracting"
        b.clock.t += 4.0  # 23 mm at 5 mm/s takes 4.6 s
        assert 0 < rig.position < 23.0
        b.run_until_not("retracting", 0.5)
        assert rig.status() == "idle" and rig.position == 0.0 and rig.contact is None


def test_safe_state_retracts_when_the_error_query_after_the_stop_goes_unanswered():
    with bench(policy=ConnectionPolicy(timeout_s=0.2, retries=1)) as b:
        rig = b.rig
        rig.press(Press("nail", 10.0, PressStop(depth=5.0)))
        b.clock.t += 1.0
        b.sim.inject("timeout", 2, "SYST:ERR?")  # the query after the stop, and its retry
        rig.safe_state()
        assert rig.status() == "retracting" and b.sim.reason == "HOST"


#: The matrix's connection policy: an instrument that does not answer within a second is retried once.
QUICK = ConnectionPolicy(timeout_s=1.0, retries=1)


def test_a_rig_pressing_a_shorted_cell_answers_promptly_at_its_fastest_clock():
    """The host polling as seldom as the engine may (MAX_WALL_POLL of real time) at the rig role's
    max_speed: the first command after the gap catches the simulation up (a moving ram, a shorted cell,
    1 kHz records) and it answers within the quick policy, stop and safe state included."""
    lab_s = MAX_WALL_POLL * ROLES["rig"].max_speed  # lab seconds between two polls
    with bench(PouchCell(gap_mm=2.0), start=0.0, policy=QUICK) as b:
        rig = b.rig
        rig.acquisition_rate = RIG_ACQUISITION_HZ
        rig.pretrigger = 0.0
        rig.press(Press("nail", 0.1, PressStop(depth=60.0)))
        b.clock.t = 40.0  # 2 mm travelled into the cell, the short formed
        rig.fetch_samples()
        start = time.perf_counter()
        b.clock.t += lab_s
        position = rig.position
        caught_up = time.perf_counter() - start
        samples = rig.fetch_samples()
        b.clock.t += lab_s
        rig.stop()
        assert rig.status() == "stopped" and rig.stop_reason == "host"
        b.clock.t += lab_s
        rig.safe_state()
        assert rig.status() == "retracting"
    print(f"\n{lab_s:g} s of a moving ram caught up in {caught_up * 1e3:.0f} ms ({lab_s / caught_up:,.0f}× its clock)")
    assert position == pytest.approx(0.1 * (40.0 + lab_s), abs=1e-3)
    t = samples["time"]
    assert len(t) == round(lab_s * RIG_ACQUISITION_HZ) and np.allclose(np.diff(t), 1e-3)
    assert samples["voltage"][-1] < samples["voltage"][0] < 4.2  # the short drains the cell


def test_buffered_records_fetched_in_pieces_have_no_gaps_or_duplicates():
    with bench(start=2.0) as b:
        rig = b.rig
        rig.records_per_query = 128  # several ACQ:DATA? per fetch
        rig.pretrigger = 0.05
        rig.press(Press("nail", 5.0, PressStop(depth=2.0)))  # 1 kHz records through moving and standing still
        pieces = []
        for _ in range(15):
            b.clock.t += 0.37
            pieces.append(rig.fetch_samples()["time"])
        assert rig.status() == "stopped"
        end = b.clock.t
    t = np.concatenate(pieces)
    assert sum(len(p) > 128 for p in pieces) > 5
    assert np.all(np.diff(t) > 0) and np.allclose(np.diff(t), 1e-3)
    assert t[0] == pytest.approx(2.0 - 0.049) and t[-1] == pytest.approx(end)
    assert len(t) == 50 + round((end - 2.0) * 1000)


# -- the vectorised moving ram against the tick-by-tick model ------------------------------------

#: (setup, specimen, {lab time: command}, the stop reason it ends on): every stop condition and protection,
#: a host stop and retract, an e-stop while retracting.  All recorded at 10 kHz: every sample is compared.
SCRIPTS = {
    "nail, voltage drop": ("PRES:SPE 25;PRES:STOP:DEPT 12;PRES:STOP:VDR 0.5", {}, {}, "VDROP"),
    "nail, depth": ("PRES:SPE 25;PRES:STOP:DEPT 3", {}, {}, "DEPTH"),
    "nail at 0.1 mm/s, depth": ("PRES:SPE 0.1;PRES:STOP:DEPT 0.1", {"gap_mm": 0.1}, {}, "DEPTH"),
    "crush, force": ("PRES:MODE CRUSH;PRES:SPE 5;PRES:STOP:FORC 13;PRES:STOP:DEPT 5", {"gap_mm": 5.0}, {}, "FORCE"),
    "crush, force, hold": ("PRES:MODE CRUSH;PRES:SPE 5;PRES:STOP:FORC 13", {"gap_mm": 5}, {2000: "HOLD 0.55"}, "FORCE"),
    "crush, voltage drop": ("PRES:MODE CRUSH;PRES:SPE 15;PRES:STOP:VDR 0.1", {"gap_mm": 5.0}, {}, "VDROP"),
    "crush, over-force": ("SOUR:LIM:FORC 20;PRES:MODE CRUSH;PRES:SPE 5", {"gap_mm": 5.0}, {}, "OVERFORCE"),
    "nail, travel limit": ("SOUR:LIM:TRAV 22;PRES:SPE 30;PRES:STOP:DEPT 50", {}, {}, "TRAVEL"),
    "nail, interlock": ("PRES:SPE 10;PRES:STOP:DEPT 20", {}, {500: "interlock"}, "INTERLOCK"),
    "stop, retract, e-stop": ("PRES:SPE 20", {}, {700: "STOP", 900: "RETR 40", 1100: "ESTOP"}, "ESTOP"),
    "retract to home": ("PRES:SPE 20;PRES:STOP:DEPT 2", {}, {1500: "RETR 30"}, "DEPTH"),
}


def scripted(name: str, vectorised: bool, every_ms: int, rate: int) -> tuple[PressSim, np.ndarray]:
    """Run a script on a fresh rig for 3 s, recording at ``rate`` Hz throughout: the host asks STAT? every
    ``every_ms`` (or sends the script's command)."""
    setup, specimen, commands, _ = SCRIPTS[name]
    clock = ManualClock()
    sim = PressSim(clock, PouchCell(**specimen), vectorised=vectorised)
    sim.handle(f"ACQ:RATE {rate};ACQ:PRET 0;{setup};ACQ:STAR;PRES:STAR")
    blocks = []
    for ms in range(every_ms, 3001, every_ms):
        clock.t = ms / 1000
        command = commands.get(ms, "STAT?")
        if command == "interlock":
            sim.set_interlock(False)
        else:
            sim.handle(command)
        if ms % 500 == 0:
            blocks.append(_records(sim.handle("ACQ:DATA? 100000")))
    return sim, np.concatenate(blocks)


def _records(reply: bytes) -> np.ndarray:
    return np.frombuffer(reply[2 + int(reply[1:2]) :], RECORD)


@pytest.mark.parametrize(("every_ms", "rate"), [(10, 10_000), (100, 1000)])
@pytest.mark.parametrize("name", SCRIPTS)
def test_the_vectorised_ram_records_what_the_tick_by_tick_model_does(name, every_ms, rate):
    """Moving, every tick against the stretches; standing still (acquiring), record by record against them."""
    ref, vec = (scripted(name, vectorised, every_ms, rate) for vectorised in (False, True))
    (a, ra), (b, rb) = ref, vec
    assert b.reason == a.reason == SCRIPTS[name][3]
    assert (b.state, b.tick, b.mode, list(b.errors)) == (a.state, a.tick, a.mode, list(a.errors))
    assert len(rb) == len(ra) == 3 * rate  # every record of the 3 s
    np.testing.assert_array_equal(rb["time"], ra["time"])
    for field in ("position", "force", "voltage"):
        np.testing.assert_allclose(rb[field], ra[field], rtol=1e-6, atol=1e-6, err_msg=field)
    assert (b.contact is None) == (a.contact is None)
    if a.contact is not None:
        assert b.contact == pytest.approx(a.contact, rel=1e-9, abs=1e-9)
    assert (b.x, b.v, b.force, b.volts) == pytest.approx((a.x, a.v, a.force, a.volts), rel=1e-9, abs=1e-9)
