"""The virtual lab: simulated instruments on localhost TCP sockets, sharing one scaled clock."""

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
    "VirtualLab",
    "World",
]
