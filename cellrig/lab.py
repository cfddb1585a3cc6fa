"""The lab: which instrument plays which role, read from ``lab.toml``, checked before anything opens.

::

    name = "cell lab 2"

    [roles.cycler]                       # a role name the protocols refer to
    driver = "keysight_bt2200"           # see cellrig.instruments.registry.DRIVERS
    resource = "TCPIP0::192.168.1.20::5025::SOCKET"
    options = { channel = 101 }          # driver options
    limits = { min_voltage = 2.5, max_voltage = 4.2, max_current = 5.0 }   # within the rating
    safe_state = "open-circuit"          # what every way out of a run leaves it in
    timeout_s = 5                        # connection policy (optional)
    retries = 2

Every entry is checked (known driver, well-formed VISA resource, known options, limits
within the instrument's rating, a safe state the driver knows) and every problem is
reported at once, with the file, the key and the reason, before any connection is made.
A virtual lab's file also has ``[clock]`` (its scaled clock) and ``[virtual]`` (its control
port, for tests that inject faults; cellrig ignores it).  ``[notify]`` says who is alerted of what
(:mod:`cellrig.notify`).  ``locks = "DIR"`` names the lab-wide
lock directory (:mod:`cellrig.lab_locks`; default ``<lab file stem>.locks`` beside the file).
A served virtual lab's cells are reached through its control line (:mod:`cellrig.lab_control`).
"""

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pyvisa import rname

from .calibration import Calibration, read_calibration
from .clock import Clock, ScaledClock, wall_clock
from .inputs import InputError, read_text
from .instruments._connection import ConnectionPolicy
from .instruments.registry import DRIVERS, DriverInfo
from .instruments.roles import Identity
from .lab_control import ServedCells
from .lab_locks import LabLocks
from .notify import NotifySpec, read_notify

_ENTRY_KEYS = {"driver", "resource", "options", "limits", "safe_state", "timeout_s", "retries", "calibration"}


class LabFileError(ValueError):
    """A lab file that cannot be used: names the file, the keys and the reasons."""


@dataclass(frozen=True)
class RoleSpec:
    """One ``[roles.<name>]`` entry, checked."""

    name: str
    driver: str
    resource: str
    options: dict[str, Any]
    limits: dict[str, float]  # what the file sets; the rest is the instrument's own rating
    safe_state: str
    policy: ConnectionPolicy
    calibration: Calibration = field(default_factory=Calibration)

    @property
    def info(self) -> DriverInfo:
        return DRIVERS[self.driver]


class VirtualCells(Protocol):
    """A simulated lab a :class:`Lab` runs on: what rebuilds it (empty if another process serves it),
    and its cells' state, carried over a resume."""

    def options(self) -> dict[str, Any]: ...
    def cell_state(self, role: str, channel: int | None) -> dict[str, Any] | None: ...
    def restore_cell(self, role: str, channel: int | None, state: dict[str, Any]) -> None: ...
    def stop(self) -> None: ...


class EmbeddedLab(VirtualCells, Protocol):
    """A virtual lab running in this process."""

    clock: Clock

    def lab_dict(self) -> dict[str, Any]: ...


@dataclass
class Lab:
    """The lab's roles, the one clock they share, and (once opened) their instruments.

    ``virtual``: the simulated lab the roles are served by when it lives in this process (the
    embedded virtual lab); closing the lab stops it.
    """

    name: str
    roles: dict[str, RoleSpec]
    origin: str = "<lab>"
    clock: Clock = field(default_factory=wall_clock)
    instruments: dict[str, Any] = field(default_factory=dict)
    locks: LabLocks = field(default_factory=lambda: LabLocks(None))  # none: the lab is this process's alone
    _connections: dict[tuple[str, str], Any] = field(default_factory=dict)
    virtual: VirtualCells | None = None
    notify: NotifySpec = field(default_factory=NotifySpec)  # where alerts go (:mod:`cellrig.notify`)

    @classmethod
    def from_file(cls, path: str | os.PathLike, clock: Clock | None = None) -> "Lab":
        """Read and check a lab file (at most :data:`~cellrig.inputs.MAX_TEXT_BYTES`); nothing is opened."""
        path = Path(path)
        try:
            data = tomllib.loads(read_text(path, "lab"))
        except InputError as exc:
            raise LabFileError(str(exc)) from None
        except tomllib.TOMLDecodeError as exc:
            raise LabFileError(f"{path}: not valid TOML ({exc})") from None
        except RecursionError:
            raise LabFileError(f"{path}: not valid TOML (nested too deeply)") from None
        lab = cls.from_dict(data, str(path), clock)
        if lab.locks.directory is None:
            lab.locks = LabLocks(path.with_name(f"{path.stem}.locks"))
        return lab

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "<lab>", clock: Clock | None = None) -> "Lab":
        problems: list[str] = []
        unknown = sorted(set(data) - {"name", "roles", "clock", "virtual", "locks", "notify"})
        if unknown:
            problems.append(f"{', '.join(unknown)}: unknown key(s) (known: name, roles, clock, virtual, locks, notify)")
        notify = read_notify(data.get("notify"), "notify", problems)
        locks = data.get("locks")
        if locks is not None and (not isinstance(locks, str) or not locks.strip()):
            problems.append(f"locks: expected the lock directory's path, got {locks!r}")
        clock = clock or _clock(data.get("clock"), problems)
        roles_data = data.get("roles")
        if not isinstance(roles_data, dict) or not roles_data:
            problems.append("roles: no [roles.<name>] entries")
            roles_data = {}
        roles = {}
        for name, entry in roles_data.items():
            spec = _check_entry(name, entry, problems)
            if spec is not None:
                roles[name] = spec
        if problems:
            raise LabFileError(f"{origin}: " + "".join(f"\n  {p}" for p in problems))
        lab = cls(str(data.get("name", Path(origin).stem)), roles, origin, clock or wall_clock(), notify=notify)
        control = data.get("virtual", {}).get("control") if isinstance(data.get("virtual"), dict) else None
        if control:  # a virtual lab another process serves: its cells are reached through its control line
            lab.virtual = ServedCells(str(control))
        if locks:
            lab.locks = LabLocks(Path(origin).parent / locks)
        return lab

    @classmethod
    def on(cls, virtual: EmbeddedLab) -> "Lab":
        """The lab a running virtual lab of this process serves (closing it stops the virtual lab)."""
        return dataclasses.replace(cls.from_dict(virtual.lab_dict(), "virtual lab", virtual.clock), virtual=virtual)

    def channel(self, role: str, channel: int | None) -> Any:
        """Another channel of a multi-channel instrument's role (same connection); the role itself if None."""
        if channel is None or channel == self.roles[role].options.get("channel"):
            return self[role]
        key = f"{role}@{channel}"
        if key not in self.instruments:
            spec = self.roles[role]
            self.instruments[key] = self._open(dataclasses.replace(spec, options={**spec.options, "channel": channel}))
        return self.instruments[key]

    def lock_key(self, role: str, channel: int | None = None) -> tuple[str, str]:
        """A role's instrument (its channel, if it has channels) as a lab-wide lock: key and words for messages."""
        spec = self.roles[role]
        channel = channel if channel is not None else spec.options.get("channel")
        key = spec.resource + (f" channel {channel}" if channel is not None else "")
        return key, f"{role} ({key})"

    # -- connecting -------------------------------------------------------------------------

    def open(self) -> dict[str, Any]:
        """Connect every role's instrument (one connection per resource, shared by its roles)."""
        for name, spec in self.roles.items():
            if name not in self.instruments:
                self.instruments[name] = self._open(spec)
        return self.instruments

    def _open(self, spec: RoleSpec) -> Any:
        key = (spec.driver, spec.resource)
        connection = self._connections.get(key)
        if connection is None:
            connection = spec.info.connect(spec.resource, spec.policy)
            self._connections[key] = connection
        instrument = spec.info.role_object(connection, spec.options, None, self.clock)
        instrument.role = spec.name
        return instrument

    def __getitem__(self, role: str) -> Any:
        if role not in self.roles:
            raise KeyError(f"{self.origin}: no role {role!r} (roles: {', '.join(self.roles)})")
        if role not in self.instruments:
            self.instruments[role] = self._open(self.roles[role])
        return self.instruments[role]

    def make_safe(self) -> dict[str, str | None]:
        """Put every opened instrument in its declared safe state; report failures per role."""
        outcome: dict[str, str | None] = {}
        for name, instrument in self.instruments.items():
            try:
                instrument.safe_state()
                outcome[name] = None
            except Exception as exc:  # keep going: every other instrument must still be made safe
                outcome[name] = f"{type(exc).__name__}: {exc}"
        return outcome

    def close(self) -> None:
        for connection in self._connections.values():
            adapter = getattr(connection, "adapter", None)
            if adapter is not None:
                adapter.close()
        self._connections.clear()
        self.instruments.clear()
        if self.virtual is not None:
            self.virtual.stop()

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- checking ---------------------------------------------------------------------------

    def check(self) -> list["CheckRow"]:
        """Open each instrument, ask who it is, compare with the file, program and read back limits."""
        rows = []
        for name, spec in self.roles.items():
            try:
                instrument = self[name]
                ident = instrument.identify()
                problem = spec.info.model_problem(ident)
                if problem is None and hasattr(instrument, "configure_limits"):
                    instrument.configure_limits(dataclasses.replace(instrument.limits, **spec.limits))
                rows.append(CheckRow(name, spec, ident, problem or "ok"))
            except Exception as exc:  # an unreachable instrument is a row of the report, not a crash
                rows.append(CheckRow(name, spec, None, f"unreachable: {type(exc).__name__}: {exc}"))
        return rows


@dataclass(frozen=True)
class CheckRow:
    role: str
    spec: RoleSpec
    identity: Identity | None
    status: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _clock(entry: Any, problems: list[str]) -> Clock | None:
    """``[clock] speed, origin``: a virtual lab's scaled clock (a real lab has none: the wall clock).

    ``origin`` (the Unix time the virtual lab started) is optional: without it the engine's clock
    runs at the same speed from when it is read, which is all the engine needs."""
    if entry is None:
        return None
    if not isinstance(entry, dict) or set(entry) - {"speed", "origin"} or "speed" not in entry:
        problems.append("clock: expected { speed = <times real time>, origin = <Unix time> }")
        return None
    try:
        return ScaledClock(float(entry["speed"]), entry.get("origin"))
    except (TypeError, ValueError) as exc:
        problems.append(f"clock: {exc}")
        return None


def _check_entry(name: str, entry: Any, problems: list[str]) -> RoleSpec | None:
    where = f"roles.{name}"
    if not isinstance(entry, dict):
        problems.append(f"{where}: expected a table of driver, resource, …")
        return None
    start = len(problems)
    for key in sorted(set(entry) - _ENTRY_KEYS):
        problems.append(f"{where}.{key}: unknown key (known: {', '.join(sorted(_ENTRY_KEYS))})")
    driver = entry.get("driver")
    info = DRIVERS.get(driver) if isinstance(driver, str) else None
    if info is None:
        problems.append(f"{where}.driver: unknown driver {driver!r} (known: {', '.join(sorted(DRIVERS))})")
        return None
    resource = entry.get("resource")
    try:
        rname.parse_resource_name(str(resource))
    except (rname.InvalidResourceName, ValueError) as exc:
        problems.append(f"{where}.resource: {resource!r} is not a VISA resource name ({exc})")
    options = entry.get("options", {})
    if not isinstance(options, dict):
        problems.append(f"{where}.options: expected a table such as {{ channel = 101 }}, got {options!r}")
        options = {}
    for key in sorted(set(options) - set(info.options)):
        problems.append(
            f"{where}.options.{key}: unknown option for {driver} (known: {', '.join(info.options) or 'none'})"
        )
    for key, kind in info.options.items():
        if key in options and not isinstance(options[key], kind):
            problems.append(f"{where}.options.{key}: expected {kind.__name__}, got {options[key]!r}")
    limits = _check_limits(where, info, entry.get("limits", {}), problems)
    safe = entry.get("safe_state", info.safe_states[0])
    if safe not in info.safe_states:
        problems.append(f"{where}.safe_state: {safe!r} is not one of {', '.join(info.safe_states)}")
    timeout_s = entry.get("timeout_s", ConnectionPolicy.timeout_s)
    retries = entry.get("retries", ConnectionPolicy.retries)
    if not _finite(timeout_s) or timeout_s <= 0:
        problems.append(f"{where}.timeout_s: expected a positive number of seconds, got {timeout_s!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        problems.append(f"{where}.retries: expected a whole number ≥ 0, got {retries!r}")
    calibration = read_calibration(f"{where}.calibration", entry.get("calibration", {}), problems)
    if len(problems) > start:
        return None
    policy = ConnectionPolicy(timeout_s=float(timeout_s), retries=retries)
    return RoleSpec(name, driver, str(resource), dict(options), limits, safe, policy, calibration)


def _check_limits(where: str, info: DriverInfo, given: Any, problems: list[str]) -> dict[str, float]:
    rating = info.rating
    fields = {f.name for f in dataclasses.fields(rating)}
    if not isinstance(given, dict):
        problems.append(f"{where}.limits: expected a table of {', '.join(sorted(fields))}")
        return {}
    for key in sorted(set(given) - fields):
        problems.append(f"{where}.limits.{key}: unknown limit (known: {', '.join(sorted(fields))})")
    values = {}
    for key in fields & set(given):
        value = given[key]
        rated = getattr(rating, key)
        if not _finite(value):
            problems.append(f"{where}.limits.{key}: expected a finite number, got {value!r}")
            continue
        lower_bound = key.startswith("min_")
        if (value < rated) if lower_bound else (value > rated):
            side = "below" if lower_bound else "above"
            problems.append(f"{where}.limits.{key}: {value} is {side} the {info.title} rating of {rated}")
        values[key] = value
    return values


def _finite(value: Any) -> bool:
    """A finite number (TOML also writes nan and inf; a bool is not a number)."""
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
