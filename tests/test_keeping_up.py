"""A virtual lab on a clock faster than its host can follow ends the run, saying so, in bounded memory."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cellrig.clock import ManualClock
from cellrig.protocols.language import Limits
from cellrig.protocols.supervisor import MAX_LAG_REAL_S, Supervisor
from cellrig.sim import world as world_module
from cellrig.sim.world import World
from cellrig.storage import open_run

CELLRIG = Path(sys.executable).with_name("cellrig")
STORAGE = """\
name: storage
title: 30 days at 45 °C
kind: characterisation
steps:
  - set: 45 °C
  - soak: {tolerance: 2 K, stable_for: 1 h, max_time: 8 h}
  - rest: 30 d
"""
#: Runs ``cellrig`` and prints the peak resident memory of it (kB) on the last line.
PEAK = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def test_readings_more_than_the_stated_lag_behind_an_accelerated_clock_end_the_run_with_the_speed_held():
    supervisor = Supervisor(Limits(), scale=1000.0)
    for second in range(5):  # the stream advances 400 lab s a real second while the clock does 1000
        assert supervisor.lag("daq", 400.0 * second, 1000.0 * second, float(second)) is None
    why = supervisor.lag("daq", 2000.0, 2000.0 + MAX_LAG_REAL_S * 1000.0 + 1.0, 5.0)
    assert why is not None and "×1000 clock" in why and "held ×400" in why and "--speed 320 or slower" in why
    real_lab = Supervisor(Limits(), scale=1.0)  # instruments' own clocks may drift: never judged there
    assert real_lab.lag("daq", 0.0, 1e6, 1.0) is None


class SlowPhysics:
    """A simulator whose every step costs real time, as a crowded host's would."""

    lock = world = None
    steps = 0

    def advance(self) -> None:
        self.steps += 1
        time.sleep(0.002)  # the cost of a step of physics, not a wait for anything

    def quiet(self) -> bool:
        return False


def test_a_walk_stops_after_its_budget_and_goes_on_from_there(monkeypatch):
    monkeypatch.setattr(world_module, "WALK_BUDGET_S", 0.05)
    clock = ManualClock(1e6)
    world, sim = World(clock), SlowPhysics()
    world.add(sim)
    started = time.monotonic()
    world.advance()
    assert time.monotonic() - started < 0.5 and 0 < world.t == sim.steps < 1e6  # answered from where it got
    reached = world.t
    world.advance()
    assert world.t > reached and world.t == sim.steps  # the next walk goes on, step for step


@pytest.mark.long
def test_a_clock_the_host_cannot_follow_ends_the_run_by_itself_in_bounded_memory(tmp_path):
    protocol = tmp_path / "storage.yaml"
    protocol.write_text(STORAGE, encoding="utf-8")
    command = [str(CELLRIG), "run", str(protocol), "--out", str(tmp_path / "out"), "--speed", "1000000"]
    wide = {**os.environ, "COLUMNS": "400"}  # the terminal's table on one line a run
    done = subprocess.run([sys.executable, "-c", PEAK, *command], capture_output=True, text=True, timeout=600, env=wide)
    peak_kb = int(done.stdout.strip().splitlines()[-1])
    [path] = (tmp_path / "out").glob("*.h5")
    run = open_run(path)
    [lag] = run.events.query("kind == 'lag'")["message"]
    assert run.status == "failed" and "cannot follow its ×1e+06 clock" in lag and "this host held ×" in lag
    assert run.events["message"].iloc[-1] == f"failed: {lag}"
    assert "safe" in run.events.query("kind == 'safe_state'")["message"].iloc[0]
    assert lag in done.stdout  # and on the terminal
    assert peak_kb < 1_000_000, f"peak memory {peak_kb / 1024:.0f} MB"
