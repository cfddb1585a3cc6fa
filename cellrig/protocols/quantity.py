"""Quantities with units in protocol files: "4.2 V", "10 min", "5 K/min", "25 mm/s", "100 kN", "1C", "C/20".

Units are read by pint; every value is converted to the unit the engine uses (V, A, s, °C,
K, K/min, K/s, mm, mm/s, kN, W, Ω, kPa, g, fraction).  A C-rate ("1C", "C/20", "-0.5C")
is a current relative to the cell's nominal capacity and needs it to become amperes.  A
bare number is refused: a protocol value always says its unit.  A value is at most
:data:`MAX_LENGTH` characters; its unit is names joined by ``*``, ``/`` or spaces, each with an
optional whole power of at most two digits (``mm/s``, ``K/min``, ``A*h``, ``m/s^2``), and the
result is finite.
"""

import functools
import math
import re
from typing import Any

import pint

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_C_RATE = re.compile(rf"\s*(?P<sign>[-+]?)\s*(?:(?P<n>{_NUMBER})\s*C|C\s*/\s*(?P<d>{_NUMBER}))\s*")
_QUANTITY = re.compile(rf"\s*(?P<n>{_NUMBER})\s*(?P<unit>.*?)\s*")
_SCALED = re.compile(rf"\s*(?P<k>{_NUMBER})\s*[×*]\s*(?P<q>.+)")  # "1.1 × 4.2 V"
_FACTOR = r"(?:[°%]?[^\W\d]\w*|%)(?:\s*(?:\^|\*\*)\s*-?\d{1,2})?"
_UNIT = re.compile(rf"{_FACTOR}(?:(?:\s*[*/·]\s*|\s+){_FACTOR})*")  # what pint is given: no power of a power
MAX_LENGTH = 64

#: The engine's unit for each kind of quantity, with an example for error messages.
UNITS: dict[str, tuple[str, str]] = {
    "voltage": ("V", "4.2 V"),
    "current": ("A", "2.5 A or 1C"),
    "time": ("s", "10 min"),
    "temperature": ("degC", "25 °C"),
    "temperature difference": ("K", "1 K"),
    "heating rate": ("K/min", "5 K/min"),
    "fast heating rate": ("K/s", "1 K/s"),
    "length": ("mm", "12 mm"),
    "speed": ("mm/s", "25 mm/s"),
    "force": ("kN", "100 kN"),
    "power": ("W", "10 W"),
    "resistance": ("ohm", "5 mΩ"),
    "pressure": ("kPa", "500 kPa"),
    "mass": ("g", "70 g"),
    "fraction": ("", "80 %"),
    "charge": ("A*h", "5 Ah"),
    "gas concentration": ("ppm", "500 ppm"),
}


class QuantityError(ValueError):
    """A value that is not a quantity of the kind asked for."""


@functools.cache
def registry() -> pint.UnitRegistry:
    return pint.UnitRegistry(autoconvert_offset_to_baseunit=True)


def parse(value: Any, kind: str, *, capacity_ah: float | None = None) -> float:
    """``value`` (text such as "4.2 V") as a finite float in the engine's unit for ``kind``."""
    unit, example = UNITS[kind]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QuantityError(f"expected a {kind} such as {example!r}, got {value!r}")
    if isinstance(value, int | float):
        raise QuantityError(f"{value!r} has no unit: write a {kind} such as {example!r}")
    if len(value) > MAX_LENGTH:
        raise QuantityError(f"{value[:20]!r}… is longer than {MAX_LENGTH} characters: not a {kind}")
    number = _parse(value, kind, unit, example, capacity_ah)
    if not math.isfinite(number):
        raise QuantityError(f"{value!r} is not a finite {kind}")
    return number


def _parse(value: str, kind: str, unit: str, example: str, capacity_ah: float | None) -> float:
    if m := _SCALED.fullmatch(value):
        return float(m["k"]) * _parse(m["q"], kind, unit, example, capacity_ah)
    if kind == "current" and (m := _C_RATE.fullmatch(value)):
        if capacity_ah is None:
            raise QuantityError(f"{value!r} is a C-rate, which needs the cell's nominal capacity")
        if m["d"] and float(m["d"]) == 0:
            raise QuantityError(f"{value!r}: a C-rate cannot divide by zero")
        rate = float(m["n"]) if m["n"] else 1.0 / float(m["d"])
        return (-1.0 if m["sign"] == "-" else 1.0) * rate * capacity_ah
    m = _QUANTITY.fullmatch(value)
    if not m or not m["unit"]:
        raise QuantityError(f"{value!r} is not a {kind} with a unit, such as {example!r}")
    ureg = registry()
    try:
        if not _UNIT.fullmatch(m["unit"]):
            raise ValueError(m["unit"])
        q = ureg.Quantity(float(m["n"]), m["unit"].replace("Ω", "ohm"))
    except Exception:  # pint's unit parser reports malformed text in many ways (TokenError, AssertionError …)
        raise QuantityError(f"{value!r}: unknown unit {m['unit']!r} (a {kind} such as {example!r})") from None
    try:
        if kind == "temperature difference" and q.units in (ureg.degC, ureg.degF):
            raise QuantityError(f"{value!r}: a temperature difference is written in K, such as {example!r}")
        return float(q.to(unit).magnitude) if unit else float(q.to("dimensionless").magnitude)
    except pint.DimensionalityError:
        raise QuantityError(f"{value!r} is not a {kind} (expected a {kind} such as {example!r})") from None
