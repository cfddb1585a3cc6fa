"""Protocols (what a test does) and the engine that runs them on a lab's instruments."""

from .cells import CELL_TYPES, CellSpec, cell_spec
from .language import Protocol, ProtocolError, load, parse
from .preflight import Binding, Probe

__all__ = ["CELL_TYPES", "Binding", "CellSpec", "Probe", "Protocol", "ProtocolError", "cell_spec", "load", "parse"]
