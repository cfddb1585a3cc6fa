"""Keithley2450Cycler around pymeasure's stock Keithley2450: every command, refusals, and a simulated cell."""

import numpy as np
import pytest
from pymeasure.test import expected_protocol
from sent_commands import recording, untabled

from cellrig.clock import ManualClock
from cellrig.instruments import roles
from cellrig.instruments._connection import InstrumentError
from cellrig.instruments.keithley_2450 import COMMANDS, Keithley2450Cycler, ManagedKeithley2450
from cellrig.instruments.roles import CyclerLimits, CyclerStep
from cellrig.sim import NMC811, Cell, SimServer
from cellrig.sim.keithley2450 import SMU2450

OK = '+0,"No error"'
IDN_2450 = ("*IDN?", "KEITHLEY INSTRUMENTS,MODEL 2450,04412345,1.7.12b")
CELL_LIMITS = CyclerLimits(min_voltage=2.5, max_voltage=4.2, max_current=1.0)
PREPARE = [
    (":SENS:FUNC 'CURR';:SENS:CURR:NPLC 1.000000;", None),
    (":SENS:CURR:RANG:AUTO 1;", None),
    ("SYST:ERR?", OK),
    (":SOUR:FUNC VOLT", None),
    (":SOUR:VOLT:RANG:AUTO 0;:SOUR:VOLT:RANG 4.2", None),
    (":SOUR:VOLT:READ:BACK ON", None),
]
OFF = [(":OUTP:VOLT:SMOD HIMP", None), ("OUTPUT OFF", None)]
READ = ':READ? "defbuffer1", SOUR, READ'
CCCV = CyclerStep("cccv", max_time=36_000, current=0.5, voltage=4.2, until_current_below=0.025)


def test_a_cccv_step_is_programmed_polled_and_ended_host_side():
    clock = ManualClock()
    with expected_protocol(
        ManagedKeithley2450,
        [
            IDN_2450,
            IDN_2450,
            *PREPARE,
            (":SOUR:VOLT:ILIM 0.5", None),
            (":SOUR:VOLT:LEV 4.2", None),
            ("OUTPUT ON", None),
            ("SYST:ERR?", OK),
            (READ, "3.900000E+00,5.000000E-01"),  # CC: the current limit holds
            (READ, "4.200000E+00,1.000000E-01"),  # CV
            (READ, "4.200000E+00,2.400000E-02"),  # below 0.025 A: the step ends at this poll
            *OFF,
        ],
    ) as smu:
        cycler = Keithley2450Cycler(smu, CELL_LIMITS, clock=clock)
        assert isinstance(cycler, roles.Cycler)
        assert cycler.identify().model == "MODEL 2450"
        assert cycler.status() == "idle"
        cycler.start_step(CCCV)
        clock.t = 60.0
        assert cycler.status() == "running"
        first = cycler.fetch_samples()  # the same instant: no second reading
        clock.t = 120.0
        assert cycler.status() == "running"
        clock.t = 180.0
        samples = cycler.fetch_samples()
        assert cycler.status() == "done"  # no further reading once done
    assert first["time"].tolist() == [60.0]
    samples = {k: np.concatenate([first[k], v]) for k, v in samples.items()}
    np.testing.assert_array_equal(samples["time"], [60.0, 120.0, 180.0])
    np.testing.assert_array_equal(samples["voltage"], [3.9, 4.2, 4.2])
    np.testing.assert_array_equal(samples["current"], [0.5, 0.1, 0.024])
    np.testing.assert_array_equal(samples["step"], [1, 1, 1])


def test_a_next_step_reprograms_a_sourcing_output_and_a_rest_opens_the_relay():
    clock = ManualClock()
    with expected_protocol(
        ManagedKeithley2450,
        [
            IDN_2450,
            *PREPARE,
            (":SOUR:VOLT:ILIM 0.5", None),
            (":SOUR:VOLT:LEV 4.2", None),
            ("OUTPUT ON", None),
            ("SYST:ERR?", OK),
            (":SOUR:VOLT:ILIM 0.25", None),  # discharge: the source sits at the end voltage
            (":SOUR:VOLT:LEV 3", None),
            ("OUTPUT ON", None),
            ("SYST:ERR?", OK),
            (READ, "3.004000E+00,-2.500000E-01"),  # within 5 mV of 3.0 V: ended
            *OFF,
            *OFF,  # the rest
            ("SYST:ERR?", OK),
            *OFF,  # max_time reached
        ],
    ) as smu:
        cycler = Keithley2450Cycler(smu, CELL_LIMITS, clock=clock)
        cycler.start_step(CCCV)
        cycler.start_step(CyclerStep("cc", max_time=7200, current=-0.25, until_voltage_below=3.0))
        assert cycler.status() == "done"
        cycler.start_step(CyclerStep("rest", max_time=600))
        clock.t = 599.0
        assert cycler.status() == "running"
        assert len(cycler.fetch_samples()["time"]) == 1  # the discharge reading; a rest reads nothing
        clock.t = 600.0
        assert cycler.status() == "done"
        assert cycler.fetch_samples()["step"].size == 0


def test_a_2460_sources_its_larger_current_which_the_stock_compliance_setter_would_clip():
    with expected_protocol(
        ManagedKeithley2450,
        [
            ("*IDN?", "KEITHLEY INSTRUMENTS,MODEL 2460,04412345,1.7.12b"),
            *PREPARE,
            (":SOUR:VOLT:ILIM 5", None),
            (":SOUR:VOLT:LEV 4.2", None),
            ("OUTPUT ON", None),
            ("SYST:ERR?", OK),
        ],
    ) as smu:
        cycler = Keithley2450Cycler(smu, CyclerLimits(2.5, 4.2, 7.0), clock=ManualClock())
        assert cycler.rating.limits.max_current == 7.0
        cycler.start_step(CyclerStep("cccv", max_time=3600, current=5.0, voltage=4.2))


def test_stop_and_safe_state_switch_off_to_high_z_and_check():
    with expected_protocol(
        ManagedKeithley2450,
        [IDN_2450, *OFF, ("OUTPUT?", "0"), *OFF, ("OUTPUT?", "1")],
    ) as smu:
        cycler = Keithley2450Cycler(smu, CELL_LIMITS, clock=ManualClock())
        cycler.stop()
        with pytest.raises(InstrumentError, match="still on"):
            cycler.safe_state()


def test_an_instrument_error_while_programming_switches_the_output_off():
    with expected_protocol(
        ManagedKeithley2450,
        [IDN_2450, *OFF, ("SYST:ERR?", '-222,"Data out of range"'), ("SYST:ERR?", OK), *OFF],
    ) as smu:
        cycler = Keithley2450Cycler(smu, CELL_LIMITS, clock=ManualClock())
        with pytest.raises(InstrumentError, match="-222 Data out of range"):
            cycler.start_step(CyclerStep("rest", max_time=60))
        assert cycler.status() == "failed"


@pytest.mark.parametrize(
    ("limits", "step"),
    [
        (None, CyclerStep("cccv", max_time=60, current=2.0, voltage=4.2)),  # above the 2450's 1.05 A
        (None, CyclerStep("cv", max_time=60, current=1.0, voltage=30.0)),  # 30 W: above the 2450's 20 W
        (None, CyclerStep("cc", max_time=60, current=-0.5)),  # to the −200 V rail at 0.5 A: 100 W
        (CELL_LIMITS, CyclerStep("cccv", max_time=60, current=0.5, voltage=4.3)),  # above the cell limit
        (CELL_LIMITS, CyclerStep("cc", max_time=60, current=-0.5, until_voltage_below=2.0)),
        (CELL_LIMITS, CyclerStep("cccv", max_time=60, current=1.02, voltage=4.2)),  # above the 1 A limit
        (CELL_LIMITS, CyclerStep("cccv", max_time=60, current=0.5)),  # no voltage to hold
        (CELL_LIMITS, CyclerStep("cc", max_time=60, current=0.0, until_voltage_above=4.0)),
        (CELL_LIMITS, CyclerStep("pulse", max_time=60, current=0.5)),  # type: ignore[arg-type]
        (CELL_LIMITS, CyclerStep("rest", max_time=0)),
    ],
)
def test_steps_beyond_the_limits_are_refused_before_anything_is_written(limits, step):
    with expected_protocol(ManagedKeithley2450, [IDN_2450]) as smu:
        cycler = Keithley2450Cycler(smu, limits, clock=ManualClock())
        with pytest.raises(ValueError):
            cycler.start_step(step)
        assert cycler.status() == "idle"


@pytest.mark.parametrize(
    "limits",
    [
        CyclerLimits(2.5, 250.0, 1.0),
        CyclerLimits(2.5, 4.2, 1.5),
        CyclerLimits(4.2, 2.5, 1.0),
        CyclerLimits(2.5, 4.2, 0),
    ],
)
def test_limits_beyond_the_rating_are_refused(limits):
    with expected_protocol(ManagedKeithley2450, [IDN_2450]) as smu, pytest.raises(ValueError, match="rating"):
        Keithley2450Cycler(smu, limits, clock=ManualClock())


def test_an_unknown_model_is_refused():
    with (
        expected_protocol(ManagedKeithley2450, [("*IDN?", "KEITHLEY INSTRUMENTS INC.,MODEL 2400,1,C32")]) as smu,
        pytest.raises(ValueError, match="MODEL 2400"),
    ):
        Keithley2450Cycler(smu, clock=ManualClock())


# -- against the simulator ----------------------------------------------------------------------


def test_the_stock_driver_drives_the_simulator_unmodified():
    sim = SMU2450(ManualClock(), Cell(NMC811, 0.5, soc=0.5))
    with SimServer(sim) as server:
        smu = ManagedKeithley2450(server.resource, visa_library="@py", timeout=2000)
        assert smu.id.startswith("KEITHLEY INSTRUMENTS,MODEL 2450")
        smu.source_mode = "voltage"
        smu.source_voltage = 4.0
        smu.compliance_current = 0.1
        assert smu.compliance_current == pytest.approx(0.1)
        assert smu.source_voltage == pytest.approx(4.0)
        smu.enable_source()
        assert smu.source_enabled is True
        smu.measure_current()
        assert smu.current == pytest.approx(0.1)  # 4.0 V would drive 2.5 A: the limit holds
        smu.measure_voltage()
        assert smu.voltage == pytest.approx(sim.cell.voltage(0.1))
        smu.disable_source()
        assert smu.source_enabled is False
        assert smu.check_errors() == []
        smu.adapter.close()


def test_a_small_cell_charges_cc_then_cv_and_the_step_ends_below_the_current_limit():
    clock = ManualClock()
    sim = SMU2450(clock, Cell(NMC811, 0.5, soc=0.0))
    with SimServer(sim) as server:
        smu = ManagedKeithley2450(server.resource, visa_library="@py", timeout=2000)
        cycler = Keithley2450Cycler(smu, CELL_LIMITS, clock=clock)
        cycler.start_step(CCCV)
        pieces = []
        while cycler.status() == "running":
            clock.t += 60.0
            pieces.append(cycler.fetch_samples())
        assert cycler.status() == "done"
        assert smu.source_enabled is False
        assert smu.ask(":OUTP:VOLT:SMOD?") == "HIMP"
        smu.adapter.close()
    s = {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}
    np.testing.assert_allclose(s["time"], 60.0 * np.arange(len(s["time"])))  # one reading per poll, from t = 0
    cc = s["voltage"] < 4.2 - 1e-6
    assert cc[:10].all() and not cc[-10:].any()  # constant current first, then constant voltage
    np.testing.assert_allclose(s["current"][cc], 0.5)
    np.testing.assert_allclose(s["voltage"][~cc], 4.2, atol=1e-6)
    assert np.all(np.diff(s["current"][~cc]) < 0)  # the CV current decays
    assert s["current"][-1] < 0.025 <= s["current"][-2]  # ended at the first poll below C/20
    assert 0.95 < sim.cell.soc < 1.0
    assert 3000 < s["time"][-1] < 6 * 3600


def test_a_discharge_ends_at_its_voltage_and_safe_state_leaves_the_relay_open():
    clock = ManualClock()
    sim = SMU2450(clock, Cell(NMC811, 0.5, soc=0.8))
    with SimServer(sim) as server:
        cycler = Keithley2450Cycler(
            ManagedKeithley2450(server.resource, visa_library="@py", timeout=2000), CELL_LIMITS, clock=clock
        )
        cycler.start_step(CyclerStep("cc", max_time=7200, current=-0.5, until_voltage_below=3.5))
        while cycler.status() == "running":
            clock.t += 30.0
        samples = cycler.fetch_samples()
        assert samples["current"] == pytest.approx(-0.5) and samples["voltage"][-1] <= 3.505
        cycler.start_step(CyclerStep("cv", max_time=7200, voltage=4.0))
        clock.t += 30.0
        assert cycler.status() == "running" and sim.output
        cycler.safe_state()
        assert cycler.status() == "aborted"
        assert not sim.output and sim.off_state == "HIMP"
        charge = sim.cell.throughput_ah  # not its SOC: calendar ageing takes lithium out of a resting cell too
        clock.t += 3600.0
        assert cycler.smu.ask(":SOUR:VOLT:ILIM?")  # the simulator advanced an hour with the output off
        assert sim.cell.throughput_ah == charge and sim.cell.calendar_loss > 0
        cycler.smu.adapter.close()


def test_the_simulator_refuses_settings_beyond_its_model():
    sim = SMU2450(ManualClock(), Cell(NMC811, 0.5))
    sim.handle(":SOUR:VOLT:ILIM 2")
    assert sim.handle("SYST:ERR?") == '-222,"Data out of range"'
    big = SMU2450(ManualClock(), Cell(NMC811, 0.5), model="2460")
    big.handle(":SOUR:VOLT:ILIM 2")
    assert big.handle("SYST:ERR?") == '+0,"No error"' and big.current_limit == 2.0
    assert sim.handle(":READ?") == "9.900000E+37"  # output off: nothing to measure


def test_every_command_a_step_sends_is_in_the_drivers_command_table():
    clock = ManualClock()
    sim = SMU2450(clock, Cell(NMC811, 0.5, soc=0.0))
    with SimServer(sim) as server:
        smu = ManagedKeithley2450(server.resource, visa_library="@py", timeout=2000)
        sent = recording(smu.adapter)
        cycler = Keithley2450Cycler(smu, CELL_LIMITS, clock=clock)
        cycler.start_step(CCCV)
        clock.t += 60.0
        cycler.fetch_samples()
        cycler.start_step(CyclerStep("rest", max_time=60.0))
        cycler.safe_state()
        smu.adapter.close()
    assert {":SOUR:VOLT:ILIM 0.5", ":OUTP:VOLT:SMOD HIMP", READ} <= set(sent)
    assert not untabled(sent, COMMANDS)
