"""Benchmark: an 8-cell cycle-life campaign to 80 % retention on the virtual lab, timed end to end.

Three NMC811, three LFP and two sulfide cells on one 8-channel BT2200, four in the ESPEC oven at
25 °C and four in the F4T chamber at 45 °C, each running the library's cycle-life protocol with
an RPT every 10 cycles until its 1C discharge capacity falls below 80 % of the first.  The
virtual lab runs in its own process (``cellrig sim``) with cells ageing ``--ageing`` times faster
than rated; the engine runs the eight runs in threads of this process.  Prints the wall time
(target: under 5 minutes on 2 cores) and, per cell, the status, cycles to end of life and the
retention the engine stopped at, and checks every run file is complete.

    python bench/campaign.py [--ageing 80] [--speed 4000] [--out DIR]
"""

import argparse
import tempfile
import time
from pathlib import Path

from cellrig import open_run
from cellrig.lab import Lab
from cellrig.protocols import campaign as campaigns
from cellrig.protocols import library
from cellrig.protocols.campaign import Campaign, Plan
from cellrig.protocols.cells import PRESET_TYPES, cell_spec
from cellrig.sim.process import served_lab
from cellrig.sim.wiring import CYCLER_CELLS, CYCLER_CHANNELS, chamber_of, cycler

TARGET_S = 300.0


def plans() -> list[Plan]:
    out = []
    for channel, preset in zip(CYCLER_CHANNELS, CYCLER_CELLS, strict=True):
        temperature = {"chamber": "25 °C", "chamber2": "45 °C"}[chamber_of(channel)]
        cell = cell_spec(PRESET_TYPES[preset], f"{preset}-{channel}")
        protocol = library.protocol("cycle-life", cell, {"temperature": temperature, "rpt_every": 10, "rest": "10 min"})
        out.append(Plan(protocol, cycler(channel)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ageing", type=float, default=80.0, help="cells age this many times faster than rated")
    parser.add_argument("--speed", type=float, default=4000.0, help="virtual lab clock speed")
    parser.add_argument("--out", type=Path, help="folder for the run files (default: a temporary one)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="cellrig-bench-campaign-"))
    started = time.monotonic()
    with served_lab(out / "lab.toml", speed=args.speed, dt=2, ageing=args.ageing) as lab_file:
        lab = Lab.from_file(lab_file)
        with lab:
            runners = campaigns.start(Campaign("bench", lab, plans()), out / "runs")
            results = campaigns.run_all(runners)
    wall = time.monotonic() - started
    print(f"8-cell cycle-life campaign to 80 %: {wall:.0f} s wall (ageing ×{args.ageing:g}, clock ×{args.speed:g})")
    complete = True
    for runner in runners:
        run = open_run(runner.writer.path)
        events = run.events
        ended = events[events["kind"] == "loop_end"]["message"].tolist()
        cycles = int(run["cycler"]["cycle"].values.max())
        complete &= run.status == "finished" and bool(ended)
        status, _ = results[runner.protocol.cell.id]
        why = ended[0] if ended else "no end of life"
        print(f"  {runner.protocol.cell.id:12s} {status:9s} {cycles:4d} cycles  {why}")
    print(f"{'PASS' if wall < TARGET_S else 'FAIL'}  under {TARGET_S:.0f} s: {wall:.0f} s")
    print(f"{'PASS' if complete else 'FAIL'}  every run finished at end of life with its file complete")


if __name__ == "__main__":
    main()
