"""Pre-flight: a protocol checked against the cell's ratings and the lab's hardware limits.

Nothing moves until every step passes; every violation is reported at once, each with the
protocol file and line.  Abuse protocols exist to take a cell beyond its ratings, so for
them only the lab's hardware limits bind.
"""

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ..calibration import Certificate
from ..lab import Lab
from .kinds import KINDS
from .language import Protocol


@dataclass(frozen=True)
class Probe:
    """A DAQ channel of the run: a thermocouple, or a voltage scaled to ``units`` (e.g. a gas sensor)."""

    channel: int
    kind: str = "tc"
    tc_type: str = "K"
    scale: float = 1.0  # units per volt, for "volt"
    units: str = "degC"


@dataclass(frozen=True)
class Binding:
    """Which lab roles play the run's cycler, chamber, rig and DAQ (and which channels)."""

    cycler: str | None = None
    channel: int | None = None  # of a multi-channel cycler; None = the lab file's
    chamber: str | None = None
    rig: str | None = None
    daq: str | None = None
    probes: dict[str, Probe] = field(default_factory=dict)  # column name -> DAQ channel
    cell_probe: str | None = None  # the probe on the cell (default: "temperature", or the only thermocouple)

    def signal_columns(self) -> dict[str, str]:
        """The DAQ column of each supervised signal the probes provide: ``cell temperature``, ``gas``."""
        out = {}
        couples = [name for name, p in self.probes.items() if p.kind == "tc"]
        cell = self.cell_probe or ("temperature" if "temperature" in couples else None)
        if cell is None and len(couples) == 1:
            cell = couples[0]
        if cell in self.probes:
            out["cell temperature"] = cell
        gas = [name for name, p in self.probes.items() if p.units == "ppm"]
        if "gas" in gas or len(gas) == 1:
            out["gas"] = "gas" if "gas" in gas else gas[0]
        return out

    def roles(self) -> dict[str, str]:
        return {
            k: v
            for k, v in (("cycler", self.cycler), ("chamber", self.chamber), ("rig", self.rig), ("daq", self.daq))
            if v
        }

    def as_meta(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.roles())
        if self.channel is not None:
            out["channel"] = self.channel
        for name, probe in self.probes.items():
            out[f"probe_{name}"] = dataclasses.asdict(probe)
        if self.cell_probe is not None:
            out["cell_probe"] = self.cell_probe
        return out

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> "Binding":
        probes = {k.removeprefix("probe_"): Probe(**v) for k, v in meta.items() if k.startswith("probe_")}
        roles = {k: meta.get(k) for k in ("cycler", "chamber", "rig", "daq")}
        channel = meta.get("channel")
        channel = None if channel is None else int(channel)
        return cls(**roles, channel=channel, probes=probes, cell_probe=meta.get("cell_probe"))


def hardware_limits(lab: Lab, role: str) -> Any:
    """The limits a role's instrument is held to: its family rating narrowed by the lab file."""
    spec = lab.roles[role]
    return dataclasses.replace(spec.info.rating, **spec.limits)


def _of_kind(lab: Lab, kind: str) -> list[str]:
    return [name for name, spec in lab.roles.items() if spec.info.kind == kind]


def sole_roles(protocol: Protocol, lab: Lab, binding: Binding) -> tuple[Binding, list[str]]:
    """``binding`` with each role the protocol needs and none was named for taken from the lab where it
    has exactly one of that kind, and a line saying so for each."""
    given = binding.roles()
    chosen, said = {}, []
    for kind in sorted(protocol.roles() - given.keys()):
        found = _of_kind(lab, kind)
        if len(found) == 1:
            chosen[kind] = found[0]
            said.append(f"{kind}: {found[0]!r}, the lab's only {kind}")
    return dataclasses.replace(binding, **chosen), said


def check(protocol: Protocol, lab: Lab, binding: Binding) -> list[str]:
    """Every reason ``protocol`` must not run on this cell and these instruments (empty: go)."""
    problems: list[str] = []
    roles = binding.roles()
    for kind in sorted(protocol.roles()):
        role = roles.get(kind)
        if role is None:
            found = _of_kind(lab, kind)
            choice = f" (--{kind}: one of {', '.join(found)})" if found else f" (the lab has no {kind})"
            problems.append(f"{protocol.origin}: the protocol needs a {kind}, and none is assigned{choice}")
        elif role not in lab.roles:
            problems.append(f"{protocol.origin}: {kind} role {role!r} is not in the lab ({', '.join(lab.roles)})")
        elif lab.roles[role].info.kind != kind:
            problems.append(f"{protocol.origin}: role {role!r} is a {lab.roles[role].info.kind}, not a {kind}")
    if binding.daq and binding.daq not in lab.roles:
        problems.append(f"{protocol.origin}: daq role {binding.daq!r} is not in the lab")
    if problems:
        return problems
    problems += _unsupervised(protocol, binding)
    if protocol.header.certification:
        problems += _out_of_calibration(protocol, lab, binding)
    limits = {kind: hardware_limits(lab, role) for kind, role in roles.items()}
    for leaf in protocol.leaves:
        for part in leaf.parts:
            test = KINDS[part.kind].check
            reasons = test(part.spec, limits[part.role], protocol.cell, not protocol.abuse) if test else []
            for reason in reasons:
                problems.append(f"{protocol.origin}:{part.line}: step {leaf.number} ({part.label}): {reason}")
    return problems


#: The signal each limit watches, and the part of the binding that must provide it.
LIMIT_SIGNALS = {
    "temperature_max": ("cell temperature", "a thermocouple probe on the cell (--probe, --cell-probe)"),
    "dTdt_max": ("cell temperature", "a thermocouple probe on the cell (--probe, --cell-probe)"),
    "gas_max": ("gas", "a gas probe (a DAQ probe in ppm)"),
    "chamber_temperature_max": ("chamber", "a chamber"),
    "force_max": ("rig", "a rig"),
}


def _unsupervised(protocol: Protocol, binding: Binding) -> list[str]:
    """The protocol's stated limits that no signal of the binding would let the supervisor watch."""
    provided = set(binding.signal_columns()) | set(binding.roles())
    if binding.cell_probe is not None and binding.cell_probe not in binding.probes:
        return [f"{protocol.origin}: cell probe {binding.cell_probe!r} is not among the probes"]
    out = []
    for name, value in protocol.limits.model_dump().items():
        signal, needs = LIMIT_SIGNALS.get(name, (None, ""))
        if value is not None and signal is not None and signal not in provided:
            out.append(f"{protocol.origin}: limits.{name} needs {needs}, and the run has none")
    return out


def certificates(lab: Lab, binding: Binding) -> dict[str, Certificate | None]:
    """The certificate covering each instrument of the run (a DAQ: each probe's channel), by what it is."""
    out: dict[str, Certificate | None] = {}
    for kind, role in binding.roles().items():
        calibration = lab.roles[role].calibration
        if kind == "daq" and binding.probes:
            for name, probe in binding.probes.items():
                out[f"{role} channel {probe.channel} ({name})"] = calibration.of(probe.channel)
        else:
            channel = (binding.channel or lab.roles[role].options.get("channel")) if kind == "cycler" else None
            out[role] = calibration.of(channel)
    return out


def calibration_record(lab: Lab, binding: Binding, today: dt.date) -> dict[str, dict[str, str]]:
    """What a run file keeps of its instruments' calibration (``/meta/calibration``)."""
    return {what: c.as_meta(today) if c else {"state": "none"} for what, c in certificates(lab, binding).items()}


def instruments_record(lab: Lab, binding: Binding) -> dict[str, dict[str, str]]:
    """What a run file keeps of each instrument it uses (``/meta/instruments``): its kind, driver and
    resource, and who it says it is (``*IDN?``: manufacturer, model, serial, firmware)."""
    out = {}
    for kind, role in binding.roles().items():
        spec = lab.roles[role]
        record = {"kind": kind, "driver": spec.driver, "resource": spec.resource}
        try:
            record |= dataclasses.asdict(lab[role].identify())
        except Exception as exc:  # recorded as unread: the run goes on; connecting worked a moment ago
            record["identity"] = f"not read: {type(exc).__name__}: {exc}"
        out[role] = record
    return out


def _out_of_calibration(protocol: Protocol, lab: Lab, binding: Binding) -> list[str]:
    """A certification run's instruments with an expired certificate, or none on record."""
    today, problems = dt.date.today(), []
    for what, cert in certificates(lab, binding).items():
        if cert is None or cert.state(today) == "expired":
            said = "no calibration on record" if cert is None else f"calibration {cert.says(today)}"
            problems.append(
                f"{protocol.origin}: {what}: {said}; a certification test needs every instrument it uses in "
                f"calibration (the lab file's roles.<role>.calibration)"
            )
    return problems
