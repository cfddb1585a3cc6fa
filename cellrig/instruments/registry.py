"""The drivers a lab file can name, with each one's role, rating, options and safe states."""

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._connection import ConnectionPolicy
from .roles import CyclerLimits, Identity

#: pyvisa backend for every connection: pyvisa-py (pure Python: TCPIP, USB-TMC, serial, GPIB via linux-gpib).
VISA_LIBRARY = "@py"


@dataclass(frozen=True)
class DriverInfo:
    """How the lab builds one kind of instrument."""

    title: str
    kind: str  # the role interface it implements: cycler, chamber, daq, rig
    target: str  # "module:Class" of the driver (the connection)
    rating: Any  # the role's limits dataclass at the instrument's rating
    idn_models: tuple[str, ...]  # model names its identity may report
    safe_states: tuple[str, ...]
    options: dict[str, type] = field(default_factory=dict)
    role_factory: Callable[[Any, dict[str, Any], Any], Any] | None = None

    def connect(self, resource: str, policy: ConnectionPolicy) -> Any:
        module, _, name = self.target.partition(":")
        cls = getattr(importlib.import_module(module), name)
        return cls(resource, visa_library=VISA_LIBRARY, policy=policy)

    def role_object(self, connection: Any, options: dict[str, Any], limits: Any) -> Any:
        """The object that plays the role (the connection itself, or e.g. one of its channels)."""
        return self.role_factory(connection, options, limits) if self.role_factory else connection

    def model_problem(self, identity: Identity) -> str | None:
        """Why ``identity`` is not this driver's instrument, or None if it is."""
        if any(m.upper() in identity.model.upper() for m in self.idn_models):
            return None
        expected = "/".join(self.idn_models)
        return f"model mismatch: the lab file says {self.title} ({expected}), it reports {identity.model!r}"


def _bt2200_channel(mainframe: Any, options: dict[str, Any], limits: CyclerLimits) -> Any:
    return mainframe.channel(options.get("channel", 101), limits)


DRIVERS: dict[str, DriverInfo] = {
    "keysight_bt2200": DriverInfo(
        title="Keysight BT2200",
        kind="cycler",
        target="cellrig.instruments.keysight_bt2200:KeysightBT2200",
        rating=CyclerLimits(min_voltage=0.0, max_voltage=5.0, max_current=6.25),
        idn_models=("BT2202A", "BT2203A", "BT2200"),
        safe_states=("open-circuit",),
        options={"channel": int},
        role_factory=_bt2200_channel,
    ),
}
