"""What the scanning loggers share (the DAQ970A and DAQ6510 drivers): SCPI channel lists, scan plans
checked against the installed modules, whole scans arranged into samples, the error queue."""

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from pymeasure.instruments.generic_types import SCPIMixin
from pymeasure.instruments.validators import strict_discrete_set

from ._connection import InstrumentError
from .roles import DAQChannel, DAQLimits, Samples

#: What an overloaded input or an open thermocouple reads (unverified); the samples carry ±inf instead.
OVERLOAD = 9.9e37


def channel_list(channels: Iterable[int]) -> str:
    """An SCPI channel list with runs joined: ``[101, 102, 103, 111]`` → ``(@101:103,111)``."""
    runs: list[list[int]] = []
    for ch in sorted(set(channels)):
        if runs and ch == runs[-1][1] + 1:
            runs[-1][1] = ch
        else:
            runs.append([ch, ch])
    return "(@" + ",".join(f"{a}:{b}" if b > a else f"{a}" for a, b in runs) + ")"


def check_channels(channels: Iterable[int], modules: dict[int, int]) -> list[int]:
    """The channels in ascending order; raises ValueError for one not on an installed module.

    ``modules`` maps slot → channels on the module in that slot (e.g. ``{1: 20}``).
    """
    out = sorted(channels)
    for ch in out:
        slot, n = divmod(ch, 100)
        if not 1 <= n <= modules.get(slot, 0):
            raise ValueError(f"channel {ch} is not on an installed module (slot → channels: {modules})")
    return out


@dataclass(frozen=True)
class ScanPlan:
    """A validated channel configuration: which channel is which name, grouped by setting."""

    names: dict[int, str]  # channel → sample column name
    thermocouples: dict[str, list[int]] = field(default_factory=dict)  # type → channels
    voltages: dict[float, list[int]] = field(default_factory=dict)  # range → channels

    @property
    def channels(self) -> list[int]:
        return sorted(self.names)


def plan_scan(
    channels: dict[str, DAQChannel], modules: dict[int, int], tc_types: Iterable[str], volt_ranges: Iterable[float]
) -> ScanPlan:
    """Check every channel against the modules and the instrument's settings, then group them."""
    numbers = [c.channel for c in channels.values()]
    if not numbers or len(set(numbers)) != len(numbers):
        raise ValueError(f"need at least one channel and no channel twice: {numbers}")
    check_channels(numbers, modules)
    plan = ScanPlan({c.channel: name for name, c in channels.items()})
    for c in channels.values():
        strict_discrete_set(c.kind, ("tc", "volt"))
        if c.kind == "tc":
            plan.thermocouples.setdefault(strict_discrete_set(c.tc_type, tuple(tc_types)), []).append(c.channel)
        else:
            plan.voltages.setdefault(strict_discrete_set(c.range, tuple(volt_ranges)), []).append(c.channel)
    return plan


def scan_samples(readings: list[float], plan: ScanPlan, who: str) -> Samples:
    """Arrange whole scans of flat ``reading, time, channel`` triples into samples.

    ``time`` is the time of each scan's first reading (seconds since the scan started); the
    channel fields must follow the scan list, or readings were lost (memory overflow).  An
    overloaded input or open thermocouple (±:data:`OVERLOAD`) becomes ±inf: no value it could
    be mistaken for, and above any limit.
    """
    channels = plan.channels
    grid = np.asarray(readings, dtype=np.float64).reshape(-1, len(channels), 3)
    if not np.array_equal(grid[:, :, 2], np.broadcast_to(channels, grid.shape[:2])):
        raise InstrumentError(f"{who}: readings do not follow the scan list {channel_list(channels)}")
    values = grid[:, :, 0]
    values = np.where(np.abs(values) >= OVERLOAD, np.copysign(np.inf, values), values)
    samples = {"time": grid[:, 0, 1]}
    samples.update({plan.names[ch]: values[:, k] for k, ch in enumerate(channels)})
    return samples


class ScanLogger:
    """What the scanning loggers share: the installed modules, the configured scan, its limits."""

    slots: tuple[int, ...]  # where modules can be installed
    scan_rate: float  # channels scanned per second
    name: str

    def _install(self, modules: dict[int, int] | None) -> None:
        self.modules = modules or {1: 20}
        if not set(self.modules) <= set(self.slots):
            raise ValueError(f"{self.name}: modules {self.modules} are not in slots {self.slots}")
        self.plan = ScanPlan({})

    @property
    def limits(self) -> DAQLimits:
        """Get the installed channel count and the shortest interval the present scan list allows."""
        return DAQLimits(sum(self.modules.values()), max(len(self.plan.names), 1) / self.scan_rate)

    def _configured(self) -> ScanPlan:
        """The scan ``configure_channels`` set up (ValueError if none is)."""
        if not self.plan.names:
            raise ValueError(f"{self.name}: no channels configured")
        return self.plan


def raise_errors(instrument: SCPIMixin) -> None:
    """Raise :class:`InstrumentError` if the SCPI error queue holds errors (and empty it)."""
    errors = instrument.check_errors()
    if errors:
        text = "; ".join(f"{int(float(code))} {str(msg).strip(chr(34))}" for code, msg in errors)
        raise InstrumentError(f"{instrument.name}: instrument reported {text}")
