"""The cycling protocol: N cycles of CC-CV charge, rest, CC discharge, rest.

A protocol file is YAML; every key is known, every value checked, and a bad file is
refused with its file, line, field and reason before any instrument is touched::

    name: cycle-life-1C
    cycles: 100
    cell: {chemistry: NMC811/graphite, nominal_capacity_Ah: 5.0, min_voltage_V: 2.5, max_voltage_V: 4.2}
    charge: {current_A: 5.0, voltage_V: 4.2, end_current_A: 0.25, max_time_s: 14400}
    rest_after_charge_s: 600
    discharge: {current_A: 5.0, voltage_V: 2.5, max_time_s: 14400}
    rest_after_discharge_s: 600
"""

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

STEPS_PER_CYCLE = 4
STEP_NAMES = ("charge", "rest_after_charge", "discharge", "rest_after_discharge")


class ProtocolError(ValueError):
    """A protocol file or value that cannot run: says where and why."""


@dataclass(frozen=True)
class CellRating:
    chemistry: str
    nominal_capacity_Ah: float
    min_voltage_V: float
    max_voltage_V: float


@dataclass(frozen=True)
class Charge:
    current_A: float
    voltage_V: float
    end_current_A: float
    max_time_s: float


@dataclass(frozen=True)
class Discharge:
    current_A: float
    voltage_V: float
    max_time_s: float


@dataclass(frozen=True)
class CyclingProtocol:
    name: str
    cycles: int
    cell: CellRating
    charge: Charge
    rest_after_charge_s: float
    discharge: Discharge
    rest_after_discharge_s: float
    source: str = ""  # the protocol text as written
    origin: str = "<built-in>"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()

    def with_cycles(self, cycles: int) -> "CyclingProtocol":
        if cycles < 1:
            raise ProtocolError(f"{self.origin}: cycles must be at least 1, not {cycles}")
        return dataclasses.replace(self, cycles=cycles)

    def step(self, number: int) -> tuple[int, int, str]:
        """Instrument step number (1-based) → (cycle, step within the cycle, step name), both 1-based."""
        cycle, within = divmod(number - 1, STEPS_PER_CYCLE)
        return cycle + 1, within + 1, STEP_NAMES[within]


_FIELDS: dict[type, dict[str, type]] = {
    CyclingProtocol: {
        "name": str,
        "cycles": int,
        "cell": CellRating,
        "charge": Charge,
        "rest_after_charge_s": float,
        "discharge": Discharge,
        "rest_after_discharge_s": float,
    },
    CellRating: {"chemistry": str, "nominal_capacity_Ah": float, "min_voltage_V": float, "max_voltage_V": float},
    Charge: {"current_A": float, "voltage_V": float, "end_current_A": float, "max_time_s": float},
    Discharge: {"current_A": float, "voltage_V": float, "max_time_s": float},
}


_SCALARS = yaml.constructor.SafeConstructor()


def _build(cls: type, node: yaml.Node, where: str, path: str) -> Any:
    def fail(n: yaml.Node, field: str, reason: str) -> ProtocolError:
        return ProtocolError(f"{where}:{n.start_mark.line + 1}: {field}: {reason}")

    if not isinstance(node, yaml.MappingNode):
        raise fail(node, path or "protocol", "expected a mapping of keys to values")
    fields = _FIELDS[cls]
    values: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = key_node.value
        name = f"{path}.{key}" if path else key
        if key not in fields:
            raise fail(key_node, name, f"unknown key (known: {', '.join(fields)})")
        if key in values:
            raise fail(key_node, name, "given twice")
        kind = fields[key]
        if kind in _FIELDS:
            values[key] = _build(kind, value_node, where, name)
            continue
        raw = _SCALARS.construct_object(value_node) if isinstance(value_node, yaml.ScalarNode) else None
        if kind is str:
            if not isinstance(raw, str) or not raw.strip():
                raise fail(value_node, name, "expected a non-empty text")
        elif isinstance(raw, bool) or not isinstance(raw, int | float) or (kind is int and not isinstance(raw, int)):
            raise fail(
                value_node,
                name,
                f"expected {'a whole number' if kind is int else 'a number'}, got {value_node.value!r}",
            )
        elif raw < 0 or (raw == 0 and not key.startswith("rest_")):
            raise fail(
                value_node, name, f"must be {'zero or more' if key.startswith('rest_') else 'positive'}, got {raw}"
            )
        values[key] = kind(raw)
    missing = [k for k in fields if k not in values]
    if missing:
        raise fail(node, path or "protocol", f"missing key(s): {', '.join(missing)}")
    return cls(**values)


def check_against_cell(p: CyclingProtocol) -> None:
    """Refuse a protocol that would drive the cell outside its rated window (all violations at once)."""
    cell, problems = p.cell, []
    if p.charge.voltage_V > cell.max_voltage_V:
        problems.append(
            f"charge.voltage_V {p.charge.voltage_V} V exceeds the cell's max_voltage_V {cell.max_voltage_V} V"
        )
    if p.discharge.voltage_V < cell.min_voltage_V:
        problems.append(
            f"discharge.voltage_V {p.discharge.voltage_V} V is below the cell's min_voltage_V {cell.min_voltage_V} V"
        )
    if p.charge.end_current_A >= p.charge.current_A:
        problems.append("charge.end_current_A must be below charge.current_A")
    if cell.min_voltage_V >= cell.max_voltage_V:
        problems.append("cell.min_voltage_V must be below cell.max_voltage_V")
    if problems:
        raise ProtocolError(f"{p.origin}: " + "; ".join(problems))


def parse_protocol(text: str, origin: str = "<text>") -> CyclingProtocol:
    """Parse and check protocol text; ``origin`` names it in errors."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ProtocolError(f"{origin}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if node is None:
        raise ProtocolError(f"{origin}: the protocol file is empty")
    protocol = dataclasses.replace(_build(CyclingProtocol, node, origin, ""), source=text, origin=origin)
    check_against_cell(protocol)
    return protocol


def load_protocol(path: str | os.PathLike) -> CyclingProtocol:
    """Read a protocol file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ProtocolError(f"{path}: no such protocol file") from None
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"{path}: cannot read the protocol ({exc})") from None
    return parse_protocol(text, str(path))


BUILTIN = """\
# The built-in cycling protocol: 1C CC-CV / 1C CC cycling of a 5 Ah NMC811/graphite cell.
name: cycle-life-1C
cycles: 100
cell:
  chemistry: NMC811/graphite
  nominal_capacity_Ah: 5.0
  min_voltage_V: 2.5
  max_voltage_V: 4.2
charge:
  current_A: 5.0
  voltage_V: 4.2
  end_current_A: 0.25
  max_time_s: 14400
rest_after_charge_s: 600
discharge:
  current_A: 5.0
  voltage_V: 2.5
  max_time_s: 14400
rest_after_discharge_s: 600
"""


def builtin_protocol() -> CyclingProtocol:
    return parse_protocol(BUILTIN, "<built-in cycle-life-1C>")
