"""One physical world for the virtual lab: every simulator and cell on one clock, in lockstep.

Simulators advance lazily (to the clock's present, whenever a command arrives).  In a world,
that present is the world's time: before any simulator answers a command, the world walks
every simulator forward together in fixed steps, so a thermocouple on a DAQ reads the cell
temperature the cycler's current produced at that very instant, and a cell in a chamber
feels that chamber's air.  One lock serialises all simulators of the world.

A walk stops after :data:`WALK_BUDGET_S` of real time, however far behind the clock it still is:
a host too slow for the clock's speed then leaves the world ever further behind (which the
engine sees in its readings' times and ends the run for), instead of holding every simulator's
lock for longer and longer walks.  Where a walk stops changes nothing the simulators compute.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..clock import Clock
from .cell import Cell

WALK_BUDGET_S = 0.5  # real seconds one walk may take before the simulators answer from where it got to


class Simulated(Protocol):
    """What a simulator must offer to live in a world."""

    lock: Any
    world: Any

    def advance(self) -> None: ...
    def quiet(self) -> bool: ...


@dataclass
class World:
    """Simulators, cells and their couplings (cells in chambers, probes on cells) on one clock."""

    clock: Clock
    dt: float = 1.0
    quiet_dt: float = 600.0
    t: float = 0.0
    lock: threading.RLock = field(default_factory=threading.RLock)
    sims: list[Simulated] = field(default_factory=list)
    cells: dict[str, Cell] = field(default_factory=dict)
    loose_cells: list[Cell] = field(default_factory=list)  # cells no instrument steps: the world does
    couplings: list[Callable[[], None]] = field(default_factory=list)

    @property
    def scale(self) -> float:
        return self.clock.scale

    def now(self) -> float:
        """The world's time: what every simulator in it sees as the present."""
        return self.t

    def add(self, sim: Simulated) -> Simulated:
        """Put a simulator in the world (it then shares the world's time and lock)."""
        sim.lock = self.lock
        sim.world = self
        self.sims.append(sim)
        return sim

    def add_cell(self, name: str, cell: Cell, *, loose: bool = False) -> Cell:
        """Register a cell; ``loose`` if no instrument steps it (it then rests at open circuit)."""
        self.cells[name] = cell
        if loose:
            self.loose_cells.append(cell)
        return cell

    def place_in(self, air: Any, cells: list[Cell]) -> None:
        """Put cells in a chamber: they feel its air, and it carries their heat capacity and heat."""
        air.load_heat_capacity_j_per_k += sum(c.heat_capacity_j_per_k for c in cells)

        def exchange() -> None:
            air.advance()
            air.load_power_w = sum(c.h_w_per_k * (c.temperature - air.temperature) for c in cells)
            for cell in cells:
                cell.ambient = air.temperature

        self.couple(exchange)

    def couple(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` every step before the simulators (e.g. copy chamber air to a cell's ambient)."""
        self.couplings.append(fn)

    def advance(self) -> None:
        """Walk everything forward to the clock's present in steps of ``dt``.

        While every simulator is quiet (nothing cycling, ramping or moving), steps of up to
        ``quiet_dt`` seconds carry the idle cells and air forward.  At most :data:`WALK_BUDGET_S`
        of real time is spent.
        """
        with self.lock:
            target, budget = self.clock.now(), time.monotonic() + WALK_BUDGET_S
            while self.t + self.dt <= target and time.monotonic() < budget:
                dt = self.dt
                if all(sim.quiet() for sim in self.sims):
                    dt = max(self.dt, min(self.quiet_dt, target - self.t) // self.dt * self.dt)
                self.t += dt
                for coupling in self.couplings:
                    coupling()
                for cell in self.loose_cells:
                    cell.step(0.0, dt)
                for sim in self.sims:
                    sim.advance()
