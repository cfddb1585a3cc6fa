"""Protocols (what a test does) and the engine that runs them on a lab's instruments."""

from .cycling import CyclingProtocol, ProtocolError, builtin_protocol, load_protocol, parse_protocol
from .engine import run_cycling

__all__ = ["CyclingProtocol", "ProtocolError", "builtin_protocol", "load_protocol", "parse_protocol", "run_cycling"]
