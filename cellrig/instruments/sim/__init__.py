"""The virtual lab: simulated instruments on localhost TCP sockets, sharing one scaled clock."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ...clock import ScaledClock
from ._scpi import SimInstrument, SimServer
from .bt2200 import BT2200
from .cell import LFP, NMC811, PRESETS, SULFIDE_ASSB, Cell, Chemistry
from .lab import DEFAULT_SPEED, VirtualLab
from .world import World

__all__ = [
    "BT2200",
    "DEFAULT_SPEED",
    "LFP",
    "NMC811",
    "PRESETS",
    "SULFIDE_ASSB",
    "Cell",
    "Chemistry",
    "SimInstrument",
    "SimServer",
    "VirtualCycler",
    "VirtualLab",
    "World",
    "virtual_cycler",
]


@dataclass
class VirtualCycler:
    """A running virtual BT2200 with one cell per channel."""

    clock: ScaledClock
    sim: BT2200
    server: SimServer

    @property
    def resource(self) -> str:
        return self.server.resource


@contextmanager
def virtual_cycler(
    cells: dict[int, Cell] | None = None, *, speed: float = DEFAULT_SPEED, log_period: float = 10.0
) -> Iterator[VirtualCycler]:
    """Serve a virtual BT2200 (by default one fresh, discharged 5 Ah NMC811 cell on channel 101)."""
    clock = ScaledClock(speed)
    world = World(clock)
    cells = cells or {101: Cell(NMC811, 5.0, soc=0.0)}
    for channel, cell in cells.items():
        world.add_cell(f"cell-{channel}", cell)
    sim = world.add(BT2200(world, cells, log_period=log_period))
    with SimServer(sim) as server:
        yield VirtualCycler(clock, sim, server)
