"""Cells under test: the ratings a protocol is checked against before anything moves.

A cell is named by a type from :data:`CELL_TYPES` (the virtual lab's cells and common
formats) or described field by field in a campaign file.
"""

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ..inputs import check_name


@dataclass(frozen=True)
class CellSpec:
    """What a cell is rated for.  Currents in A (magnitudes), voltages in V, temperatures in °C."""

    chemistry: str
    capacity_ah: float
    v_min: float
    v_max: float
    max_charge_current: float
    max_discharge_current: float
    t_min: float
    t_max: float
    mass_g: float
    id: str = "cell-1"
    type: str = ""

    def builtins(self) -> dict[str, str]:
        """The cell values a protocol may use as parameters: ``$v_max``, ``$capacity`` …"""
        return {
            "v_min": f"{self.v_min} V",
            "v_max": f"{self.v_max} V",
            "t_min": f"{self.t_min} °C",
            "t_max": f"{self.t_max} °C",
            "capacity": f"{self.capacity_ah} Ah",
            "mass": f"{self.mass_g} g",
        }

    def as_meta(self) -> dict[str, Any]:
        """The run file's ``/meta/cell``: every rating, plus the name analysis reads the capacity by."""
        return {k: v for k, v in asdict(self).items() if v != ""} | {"nominal_capacity_Ah": self.capacity_ah}

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> "CellSpec":
        return cls(**{f.name: meta[f.name] for f in fields(cls) if f.name in meta})


#: Known cell types (ratings of the virtual lab's cells: cellrig.sim.cell presets).
CELL_TYPES: dict[str, CellSpec] = {
    "nmc811-5Ah": CellSpec("NMC811/graphite", 5.0, 2.5, 4.2, 5.0, 10.0, -20.0, 60.0, 70.8),
    "lfp-5Ah": CellSpec("LFP/graphite", 5.0, 2.5, 3.65, 5.0, 10.0, -20.0, 60.0, 99.7),
    "sulfide-5Ah": CellSpec("sulfide all-solid-state (Si/NMC)", 5.0, 2.5, 4.2, 5.0, 10.0, -20.0, 85.0, 52.4),
    "nmc811-0.5Ah": CellSpec("NMC811/graphite", 0.5, 2.5, 4.2, 0.5, 1.0, -20.0, 60.0, 7.0),
    "lfp-0.5Ah": CellSpec("LFP/graphite", 0.5, 2.5, 3.65, 0.5, 1.0, -20.0, 60.0, 10.0),
    "sulfide-0.5Ah": CellSpec("sulfide all-solid-state (Si/NMC)", 0.5, 2.5, 4.2, 0.5, 1.0, -20.0, 85.0, 5.2),
}

#: The virtual lab's presets by the cell type that rates them.
PRESET_TYPES = {"nmc811": "nmc811-5Ah", "lfp": "lfp-5Ah", "sulfide": "sulfide-5Ah"}


def cell_spec(type_or_fields: str | dict[str, Any], cell_id: str = "cell-1") -> CellSpec:
    """A cell from a type name, or from a mapping with ``type`` and/or every rating field; ``cell_id`` a name."""
    check_name(cell_id, "cell id")
    if isinstance(type_or_fields, str):
        type_or_fields = {"type": type_or_fields}
    given = dict(type_or_fields)
    name = given.pop("type", None)
    if name is not None and name not in CELL_TYPES:
        raise ValueError(f"unknown cell type {name!r} (known: {', '.join(CELL_TYPES)})")
    known = {f.name for f in fields(CellSpec)} - {"id", "type"}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ValueError(f"unknown cell field(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    for key, value in given.items():
        if key == "chemistry":
            if not isinstance(value, str):
                raise ValueError(f"cell field chemistry: expected text, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"cell field {key}: expected a finite number, got {value!r}")
    if name is None:
        missing = sorted(known - set(given))
        if missing:
            raise ValueError(f"a cell without a type needs {', '.join(missing)}")
        return CellSpec(**given, id=cell_id)
    return replace(CELL_TYPES[name], **given, id=cell_id, type=name)
