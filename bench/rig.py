"""Rig benchmark: the fastest lab clock the virtual PRESS-100 follows while its ram moves, acquisition on.

What it measures
    A press recorded at ``RIG_ACQUISITION_HZ`` (as a run's press step records it), the lab clock a
    ``ManualClock`` moved ahead in 1 s steps as fast as the simulation goes, the host asking
    ``STAT?`` at every step and draining ``ACQ:DATA?`` every 10 s of lab time, for 60 s of lab time
    in each regime:

    intact      a nail at 0.1 mm/s approaching the cell (nothing but travel changes);
    shorted     the same nail 1 mm deep in the cell: the short has formed, the cell is stepped
                every 50 ms (the stretches are cut there);
    stopped     the nail stopped 1.5 mm deep, acquisition still on (until the host's next poll
                stops it): the still ram's records, the shorted cell stepped every 50 ms.

    Each is run on the simulator alone, "tick by tick" (``vectorised=False``, the model before the
    vectorised stretches: a moving ram stepped every tick, a still one record by record) and
    vectorised, and vectorised inside the whole virtual lab's world
    (``VirtualLab``: every instrument stepped together in 1 s steps, as ``cellrig sim`` serves it).
    Best of ``--rounds`` rounds.  Printed: rig ticks per real second and the clock multiple followed
    (lab seconds per real second).  The slowest vectorised in-world figure bounds the rig role's
    ``max_speed`` in ``cellrig/sim/lab.py``.

Run from the repository root::

    python bench/rig.py [--rounds 3]
"""

import argparse
import time
from collections.abc import Callable, Sequence

from cellrig.clock import ManualClock
from cellrig.protocols.kinds.rig import RIG_ACQUISITION_HZ
from cellrig.sim.abuse_rig import TICK, PouchCell, PressSim
from cellrig.sim.cell import PRESETS, Cell
from cellrig.sim.lab import VirtualLab

LAB_S = 60.0
#: regime: (gap to the cell at home (mm), stop depth past contact (mm), lab time it begins (s), state)
REGIMES = {
    "intact": (20.0, 50.0, 1.0, "PRESSING"),
    "shorted": (2.0, 50.0, 40.0, "PRESSING"),  # 1 mm into the cell at 30 s, the short formed
    "stopped": (2.0, 1.5, 40.0, "STOPPED"),
}


def alone(regime: str, vectorised: bool) -> tuple[float, float]:
    """(ticks/s, clock multiple) of a PressSim on its own."""
    clock = ManualClock()
    specimen = PouchCell(cell=Cell(PRESETS["sulfide"], 5.0, soc=1.0), gap_mm=REGIMES[regime][0])
    sim = PressSim(clock, specimen, vectorised=vectorised)
    return _follow(regime, clock, sim, lambda: None)


def in_world(regime: str) -> tuple[float, float]:
    """(ticks/s, clock multiple) of the rig inside the virtual lab's world."""
    lab = VirtualLab(specimen="sulfide")
    clock = lab.world.clock = ManualClock()
    sim = lab.sims["rig"]
    assert isinstance(sim, PressSim) and isinstance(sim.specimen, PouchCell)
    sim.specimen.gap_mm = REGIMES[regime][0]
    return _follow(regime, clock, sim, lambda: lab.sims["daq2"].handle("*OPC?"))


def _follow(regime: str, clock: ManualClock, sim: PressSim, also: Callable[[], object]) -> tuple[float, float]:
    _, depth, begin, state = REGIMES[regime]
    sim.handle(f"ACQ:RATE {RIG_ACQUISITION_HZ};PRES:MODE NAIL;PRES:SPE 0.1;PRES:STOP:DEPT {depth};ACQ:STAR;PRES:STAR")
    clock.t = begin
    sim.handle("STAT?")
    sim.handle("ACQ:DATA? 100000")
    start_tick, start = sim.tick, time.perf_counter()
    for step in range(1, int(LAB_S) + 1):
        clock.t += 1.0
        assert sim.handle("STAT?") == state
        also()
        if step % 10 == 0:
            sim.handle("ACQ:DATA? 100000")
    elapsed = time.perf_counter() - start
    return (sim.tick - start_tick) / elapsed, (sim.tick - start_tick) * TICK / elapsed


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    runs = {
        "tick by tick": lambda regime: alone(regime, vectorised=False),
        "vectorised": lambda regime: alone(regime, vectorised=True),
        "vectorised, in the world": in_world,
    }
    print(f"{'regime':10} {'simulation':26} {'ticks/s':>12} {'clock ×':>8}")
    slowest = float("inf")
    for regime in REGIMES:
        for name, run in runs.items():
            ticks, multiple = max(run(regime) for _ in range(args.rounds))
            print(f"{regime:10} {name:26} {ticks:12,.0f} {multiple:8,.0f}")
            if name.endswith("world"):
                slowest = min(slowest, multiple)
    print(f"slowest in-world clock followed, acquisition on: ×{slowest:,.0f}")


if __name__ == "__main__":
    main()
