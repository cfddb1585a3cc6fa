"""The typed fields protocol files are written in: quantities with units, and the supervisor's limits.

Every step kind's settings (:mod:`.kinds`) and the protocol header (:mod:`.language`) are
pydantic models built from these.  A value is text with units ("4.2 V", "10 min", "1C") read
by :mod:`.quantity`; a C-rate needs the cell's capacity, passed in the validation context
as ``capacity_ah``.
"""

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo

from . import quantity


def _unit(kind: str) -> Any:
    def convert(value: Any, info: ValidationInfo) -> float:
        capacity = (info.context or {}).get("capacity_ah")
        try:
            return quantity.parse(value, kind, capacity_ah=capacity)
        except quantity.QuantityError as exc:
            raise ValueError(str(exc)) from None

    return BeforeValidator(convert)


Volts = Annotated[float, _unit("voltage")]
Amps = Annotated[float, _unit("current")]
PositiveAmps = Annotated[float, _unit("current"), Field(gt=0)]
Seconds = Annotated[float, _unit("time"), Field(gt=0)]
Celsius = Annotated[float, _unit("temperature")]
Kelvin = Annotated[float, _unit("temperature difference"), Field(gt=0)]
KPerMin = Annotated[float, _unit("heating rate"), Field(gt=0)]
KPerS = Annotated[float, _unit("fast heating rate"), Field(gt=0)]
Mm = Annotated[float, _unit("length"), Field(gt=0)]
MmPerS = Annotated[float, _unit("speed"), Field(gt=0)]
KN = Annotated[float, _unit("force"), Field(gt=0)]
Watts = Annotated[float, _unit("power")]
Ppm = Annotated[float, _unit("gas concentration"), Field(gt=0)]


class Model(BaseModel):
    """A part of a protocol file: unknown keys are errors, and it never changes once read."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(Model):
    """What the safety supervisor trips on (any unset limit comes from the cell's rating)."""

    voltage_min: Volts | None = None
    voltage_max: Volts | None = None
    current_max: PositiveAmps | None = None
    temperature_max: Celsius | None = None
    dTdt_max: KPerS | None = None
    chamber_temperature_max: Celsius | None = None
    force_max: KN | None = None
    gas_max: Ppm | None = None
