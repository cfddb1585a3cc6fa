"""The drivers a lab file can name, with each one's role, rating, options and safe states."""

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._connection import ConnectionPolicy
from .roles import ChamberLimits, CyclerLimits, DAQLimits, Identity, RigLimits

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
    role_factory: Callable[[Any, dict[str, Any], Any, Any], Any] | None = None  # (connection, options, limits, clock)

    def connect(self, resource: str, policy: ConnectionPolicy) -> Any:
        module, _, name = self.target.partition(":")
        cls = getattr(importlib.import_module(module), name)
        return cls(resource, visa_library=VISA_LIBRARY, policy=policy)

    def role_object(self, connection: Any, options: dict[str, Any], limits: Any, clock: Any) -> Any:
        """The object that plays the role (the connection itself, or e.g. one of its channels)."""
        return self.role_factory(connection, options, limits, clock) if self.role_factory else connection

    def model_problem(self, identity: Identity) -> str | None:
        """Why ``identity`` is not this driver's instrument, or None if it is."""
        said = f"{identity.manufacturer} {identity.model}".upper()
        if any(m.upper() in said for m in self.idn_models):
            return None
        expected = "/".join(self.idn_models)
        return f"model mismatch: the lab file says {self.title} ({expected}), it reports {identity.model!r}"


def _bt2200_channel(mainframe: Any, options: dict[str, Any], limits: CyclerLimits, clock: Any) -> Any:
    return mainframe.channel(options.get("channel", 101), limits)


def _daq6510(daq: Any, options: dict[str, Any], limits: DAQLimits, clock: Any) -> Any:
    from .keithley_daq6510 import DAQ6510Logger

    return DAQ6510Logger(daq)


def _keithley_2450(smu: Any, options: dict[str, Any], limits: CyclerLimits, clock: Any) -> Any:
    from .keithley_2450 import Keithley2450Cycler

    return Keithley2450Cycler(smu, limits, clock=clock)


#: Family ratings bound what a lab file may ask; the instrument's own (model-specific) rating is
#: checked again when it is opened (e.g. an ESPEC's TYPE? maximum, a 2450 versus a 2460).
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
    "keithley_2450": DriverInfo(
        title="Keithley 2450/2460/2461 SourceMeter",
        kind="cycler",
        target="cellrig.instruments.keithley_2450:ManagedKeithley2450",
        rating=CyclerLimits(min_voltage=-200.0, max_voltage=200.0, max_current=7.0),
        idn_models=("2450", "2460", "2461"),
        safe_states=("output-off-high-z",),
        role_factory=_keithley_2450,
    ),
    "espec": DriverInfo(
        title="ESPEC chamber",
        kind="chamber",
        target="cellrig.instruments.espec:EspecChamber",
        rating=ChamberLimits(min_temperature=-70.0, max_temperature=200.0, max_ramp_rate=5.0),
        idn_models=("ESPEC",),
        safe_states=("standby",),
    ),
    "watlow_f4t": DriverInfo(
        title="Watlow F4T",
        kind="chamber",
        target="cellrig.instruments.watlow_f4t:WatlowF4T",
        rating=ChamberLimits(min_temperature=-40.0, max_temperature=200.0, max_ramp_rate=5.0),
        idn_models=("Watlow",),
        safe_states=("output-off",),
    ),
    "thermotron_3800": DriverInfo(
        title="Thermotron 3800",
        kind="chamber",
        target="cellrig.instruments.thermotron:Thermotron3800Chamber",
        rating=ChamberLimits(min_temperature=-55.0, max_temperature=150.0, max_ramp_rate=5.0),
        idn_models=("3800",),
        safe_states=("stop",),
    ),
    "keysight_daq970a": DriverInfo(
        title="Keysight DAQ970A",
        kind="daq",
        target="cellrig.instruments.keysight_daq970a:KeysightDAQ970A",
        rating=DAQLimits(max_channels=120, min_interval=0.0),
        idn_models=("DAQ970A", "34972A", "34970A"),
        safe_states=("scan-aborted",),
    ),
    "keithley_daq6510": DriverInfo(
        title="Keithley DAQ6510",
        kind="daq",
        target="cellrig.instruments.keithley_daq6510:ManagedKeithleyDAQ6510",
        rating=DAQLimits(max_channels=80, min_interval=0.0),
        idn_models=("DAQ6510",),
        safe_states=("scan-aborted",),
        role_factory=_daq6510,
    ),
    "press_100": DriverInfo(
        title="cellrig PRESS-100 abuse rig",
        kind="rig",
        target="cellrig.instruments.abuse_rig:Press100",
        rating=RigLimits(max_force=100.0, max_speed=80.0, max_depth=100.0, min_speed=0.1),
        idn_models=("PRESS-100",),
        safe_states=("retracted",),
    ),
}
