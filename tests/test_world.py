"""The virtual lab as one world: drivers over sockets act on shared physics (chamber air, cells, the rig)."""

import numpy as np
import pytest

from cellrig.clock import ManualClock
from cellrig.instruments.abuse_rig import Press100
from cellrig.instruments.espec import EspecChamber
from cellrig.instruments.keysight_bt2200 import KeysightBT2200
from cellrig.instruments.roles import CyclerStep, Press, PressStop
from cellrig.sim.lab import VirtualLab


@pytest.fixture
def world_lab():
    lab = VirtualLab(seed=1)
    lab.world.clock = clock = ManualClock()
    lab.clock = clock
    with lab:
        yield lab, clock


def discharge_capacity(channel, clock: ManualClock) -> float:
    """Full CC-CV charge, then a 1C discharge to 2.5 V; returns the discharged Ah."""
    for step in (
        CyclerStep("cccv", 20 * 3600, current=5.0, voltage=4.2, until_current_below=0.25),
        CyclerStep("cc", 20 * 3600, current=-5.0, until_voltage_below=2.5),
    ):
        channel.fetch_samples()
        channel.start_step(step)
        while channel.status() == "running":
            clock.t += 600
        samples = channel.fetch_samples()
    running = samples["step"] != 0
    t, i = samples["time"][running], samples["current"][running]
    return -float(np.sum(i[1:] * np.diff(t))) / 3600


def test_a_cell_in_a_cold_chamber_delivers_less_than_at_25c(world_lab):
    lab, clock = world_lab
    cycler = KeysightBT2200(lab.servers["cycler"].resource, visa_library="@py", timeout=5000)
    oven = EspecChamber(lab.servers["chamber"].resource, visa_library="@py", timeout=5000)
    channel = cycler.channel(101)  # cell 101 sits in the ESPEC chamber
    warm = discharge_capacity(channel, clock)
    oven.set_temperature(-20.0)
    clock.t += 6 * 3600  # the chamber gets there at its rated ramp; the cell follows its air
    cell = lab.world.cells["cycler-101"]
    assert oven.read_temperature() == pytest.approx(-20.0, abs=0.5)
    assert cell.temperature == pytest.approx(-20.0, abs=1.0)
    cold = discharge_capacity(channel, clock)
    assert cold < 0.9 * warm
    assert lab.world.cells["cycler-105"].temperature > 15  # a cell in the other chamber stayed warm
    cycler.adapter.close()
    oven.adapter.close()


def test_a_nail_through_the_rig_cell_runs_it_away_and_the_gas_sensor_sees_it(world_lab):
    lab, clock = world_lab
    rig = Press100(lab.servers["rig"].resource, visa_library="@py", timeout=5000)
    cell = lab.world.cells["rig-1"]
    rig.press(Press("nail", speed=25.0, stop=PressStop(depth=8.0)))
    for _ in range(40):  # a host polling the press every 0.25 s of the lab's time
        clock.t += 0.25
        if rig.status() != "pressing":
            break
    assert rig.status() == "stopped"
    rig.stop_acquisition()  # the kHz record of the event is kept; the hour after is watched slower
    assert rig.status() == "stopped"  # a query: the rig has taken ACQ:STOP before the clock moves on
    clock.t += 3600.0  # an hour of observation after the nail
    rig.status()
    assert cell.temperature > 500 or cell.reacted == pytest.approx(1.0)
    assert cell.voltage(0.0) < 0.5
    daq = lab.sims["daq2"]
    gas_volts = daq.probes[103](clock.t)
    assert gas_volts > 1.0  # > 100 ppm of vent gas in the enclosure
    rig.adapter.close()
