"""Child process for the demo-resume test: one short demo phase of two cells on a served virtual lab.

Usage: python _demo_phase.py OUT PROTOCOL_FILE {start|resume}
"""

import sys
from pathlib import Path

from cellrig.demo import Phase, run_demo
from cellrig.protocols import campaign as campaigns
from cellrig.sim.wiring import cycler


def main() -> None:
    out, protocol, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    cells = [(f"cell-{ch}", "nmc811-5Ah", protocol, {}, cycler(ch)) for ch in (101, 102)]
    phase = Phase("life", "two cells", {"speed": 500}, cells)
    run_demo(out, lambda runners: campaigns.run_all(runners), lambda text: None, plan=[phase], resume=mode == "resume")


if __name__ == "__main__":
    main()
