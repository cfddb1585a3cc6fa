"""The virtual lab: the default set of simulated instruments, served on free localhost ports.

``VirtualLab`` builds one world (cells, chamber air, thermocouples, the rig's anvil), puts a
simulator of every driver cellrig has in it, serves each on its own port, and writes the
``lab.toml`` that points cellrig at them — so everything that runs on a real lab runs here.

Beside the instruments it serves :class:`LabControl`, its own test facility (no instrument's
command set): another process injects faults through it while a run goes on.  The lab file
names its port in ``[virtual] control = "127.0.0.1:<port>"``, a table cellrig itself ignores.
"""

import dataclasses
import datetime as dt
import json
import os
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..clock import ScaledClock
from ._scpi import Fault, FaultKind, Reply, SimInstrument, SimServer
from .abuse_rig import PouchCell, PressSim
from .bt2200 import BT2200
from .cell import PRESETS, Cell, production_spread
from .daq970a import DAQ970A
from .daq6510 import DAQ6510
from .espec import Espec
from .keithley2450 import SMU2450
from .thermotron import Thermotron3800
from .watlow_f4t import F4T
from .wiring import (
    AIR_PROBES,
    CHAMBER_CHANNELS,
    CYCLER_CELLS,
    CYCLER_CHANNELS,
    GAS_PROBE,
    GAS_SENSOR_V_PER_PPM,
    LAB_AIR_PROBE,
    RIG_CELL_PROBE,
    SMU_CELL_AH,
    SMU_CELL_PROBE,
)
from .world import World

#: How much faster than real time the virtual lab runs by default: fast, yet slow enough for the
#: simulated world to keep up while chambers, loggers and every cycler channel are busy.
DEFAULT_SPEED = 5_000.0
SCANS_PER_REAL_SECOND = 2_000.0  # DAQ scans a second of real time that the engine supervises with ease


@dataclass(frozen=True)
class Role:
    """A role of the virtual lab: its driver, its simulator and the lab-file extras."""

    driver: str
    build: Callable[["VirtualLab"], SimInstrument]
    options: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, float] = field(default_factory=dict)
    max_speed: float = DEFAULT_SPEED  # the fastest clock its simulation follows


def _bt2200(lab: "VirtualLab") -> SimInstrument:
    """Eight 5 Ah cells of three chemistries (:data:`~.wiring.CYCLER_CELLS`), four in each chamber."""
    cells = {ch: lab.cell(f"cycler-{ch}", preset) for ch, preset in zip(CYCLER_CHANNELS, CYCLER_CELLS, strict=True)}
    return BT2200(lab.world, cells, cards=1, log_period=10.0, dt=lab.world.dt)


def _chamber(sim: type[Espec | F4T], role: str) -> Callable[["VirtualLab"], SimInstrument]:
    """A chamber holding the cycler cells :data:`~.wiring.CHAMBER_CHANNELS` gives ``role``."""

    def build(lab: "VirtualLab") -> SimInstrument:
        chamber = sim(lab.world)
        lab.world.place_in(chamber.air, [lab.world.cells[f"cycler-{ch}"] for ch in CHAMBER_CHANNELS[role]])
        return chamber

    return build


def _daq970a(lab: "VirtualLab") -> SimInstrument:
    """Thermocouples on the eight cycler cells and in each chamber's air (:data:`~.wiring.AIR_PROBES`)."""
    world = lab.world
    probes = {ch: lambda t, cell=world.cells[f"cycler-{ch}"]: cell.temperature for ch in CYCLER_CHANNELS}
    for role, ch in AIR_PROBES.items():
        probes[ch] = lambda t, role=role: lab.sims[role].air.temperature
    return DAQ970A(world, probes)


def _smu(lab: "VirtualLab") -> SimInstrument:
    return SMU2450(lab.world, lab.cell("smu-1", lab.specimen, capacity_ah=SMU_CELL_AH))


def _rig(lab: "VirtualLab") -> SimInstrument:
    cell = lab.cell("rig-1", lab.specimen, soc=1.0)  # stepped by the rig's specimen, not as a loose cell
    return PressSim(lab.world, PouchCell(cell=cell))


ENCLOSURE_MMOL = 40_900.0  # air in the rig's 1 m³ enclosure at 25 °C


def _daq6510(lab: "VirtualLab") -> SimInstrument:
    """Thermocouples on the rig's cell, the lab air and the SMU's cell; the enclosure's gas sensor
    (volts; channels: :mod:`.wiring`).

    The sensor sees what the cell on the anvil vents (CO/H₂, or H₂S from a sulfide cell) diluted
    in the enclosure's air: ppm = mmol released / mmol of air × 10⁶.
    """
    rig_cell, smu_cell = lab.world.cells["rig-1"], lab.world.cells["smu-1"]
    return DAQ6510(
        lab.world,
        {
            RIG_CELL_PROBE: lambda t: rig_cell.temperature,
            LAB_AIR_PROBE: lambda t: 23.0,
            GAS_PROBE: lambda t: rig_cell.gas_released_mmol / ENCLOSURE_MMOL * 1e6 * GAS_SENSOR_V_PER_PPM,
            SMU_CELL_PROBE: lambda t: smu_cell.temperature,
        },
    )


#: The default virtual lab, role by role (built in this order: later roles may use earlier ones).
ROLES: dict[str, Role] = {
    "cycler": Role(
        "keysight_bt2200", _bt2200, {"channel": 101}, {"min_voltage": 2.5, "max_voltage": 4.2, "max_current": 5.0}
    ),
    "chamber": Role("espec", _chamber(Espec, "chamber"), {}, {"max_temperature": 200.0}),
    "chamber2": Role("watlow_f4t", _chamber(F4T, "chamber2"), {}, {"max_temperature": 130.0}),
    "chamber3": Role("thermotron_3800", lambda lab: Thermotron3800(lab.world)),
    "daq": Role("keysight_daq970a", _daq970a),
    # wide enough for electrical abuse (overcharge, forced discharge, soft short) of its 0.5 Ah cell
    "smu": Role(
        "keithley_2450", _smu, {}, {"min_voltage": -1.0, "max_voltage": 10.0, "max_current": 1.0}, max_speed=1_000.0
    ),
    # the press simulates its ram and load cell at 10 kHz of lab time.  Measured on the 2-core VM, 1 kHz
    # records: bench/rig.py has it follow ×366 in the world with the nail in a shorted cell (its slowest
    # regime: the cell stepped every 50 ms), ×939 stopped and acquiring, ×3,000 before contact; an
    # in-process `cellrig run` of a 0.1 mm/s nail (engine and lab sharing a process) keeps every record
    # and notices the press's end 0.05–0.1 s of real time after the rig stops at ×200, 0.2–0.75 s at ×250–300
    "rig": Role("press_100", _rig, {}, {"max_force": 100.0}, max_speed=200.0),
    "daq2": Role("keithley_daq6510", _daq6510),
}


def speed_for(roles: Iterable[str], sample_interval: float) -> tuple[float, str]:
    """The fastest clock a run on ``roles`` scanning every ``sample_interval`` s can follow, and why that one."""
    limits = [(DEFAULT_SPEED, "the default")]
    limits += [(ROLES[r].max_speed, f"the fastest the {r} simulation follows") for r in roles if r in ROLES]
    limits.append((SCANS_PER_REAL_SECOND * sample_interval, f"{sample_interval:g} s between DAQ scans"))
    return min(limits)


#: A simulated instrument measures exactly: its certificate (renewed each day the lab starts) says so.
VIRTUAL_CALIBRATION = {"uncertainty": "none: a simulated instrument reads its model exactly"}


def _this_year() -> dict[str, dt.date]:
    today = dt.date.today()
    return {"date": today, "due": today + dt.timedelta(days=365)}


def _toml(value: Any) -> str:
    """A lab-file value as TOML (strings, numbers, dates, inline tables)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string
    return repr(value)


class LabControl(SimInstrument):
    """The virtual lab's control line: faults injected into its roles, and cells carried over a resume.

    One command a line, answered with one line, ``OK`` or ``ERR <reason>``::

        FAULT <role> <kind> [<count> [<match>]]
        CELL? <role> <channel>
        CELL <role> <channel> <state>

    ``FAULT`` plays fault ``kind`` (:class:`Fault`) on the role's next ``count`` (default 1)
    commands that start with ``match`` (default any; it runs to the end of the line, spaces
    included).  ``CELL?`` answers the state of the cell a cycler role's channel drives, as JSON
    (:meth:`VirtualLab.cell_state`); ``CELL`` puts such a state back.
    """

    usage = "FAULT <role> <kind> [<count> [<match>]] | CELL? <role> <channel> | CELL <role> <channel> <state>"

    def __init__(self, lab: "VirtualLab") -> None:
        super().__init__()
        self.lab = lab

    def handle(self, line: str, fault: FaultKind | None = None) -> Reply:
        verb = line.split(None, 1)[0].upper() if line.strip() else ""
        if verb in ("CELL?", "CELL"):
            return self._cell(line)
        parts = line.split(None, 4)
        if len(parts) < 3 or parts[0].upper() != "FAULT":
            return f"ERR expected {self.usage}, got {line!r}"
        _, role, kind, *more = parts
        count = more[0] if more else "1"
        match = more[1] if len(more) > 1 else ""
        if not count.isdigit():
            return f"ERR count {count!r} is not a whole number (0 or more)"
        try:
            self.lab.inject(role, kind, int(count), match)
        except ValueError as exc:
            return f"ERR {exc}".encode("ascii", "replace")  # whatever the message, a line the client can read
        return "OK"

    def _cell(self, line: str) -> Reply:
        parts = line.split(None, 3)
        if len(parts) < 3 or not parts[2].isdigit() or (parts[0].upper() == "CELL") != (len(parts) == 4):
            return f"ERR expected {self.usage}, got {line!r}"
        role, channel = parts[1], int(parts[2])
        try:
            if len(parts) == 3:
                state = self.lab.cell_state(role, channel)
                return "ERR no cell there" if state is None else json.dumps(state)
            self.lab.restore_cell(role, channel, json.loads(parts[3]))
        except (ValueError, TypeError, AttributeError) as exc:
            return f"ERR {exc}".encode("ascii", "replace")
        return "OK"


class VirtualLab:
    """The simulated instruments of :data:`ROLES` in one world, served on free ports."""

    def __init__(
        self,
        speed: float = DEFAULT_SPEED,
        seed: int = 0,
        roles: dict[str, Role] | None = None,
        faults: dict[str, list[Fault]] | None = None,
        *,
        dt: float = 1.0,
        ageing: float = 1.0,
        specimen: str = "nmc811",
    ) -> None:
        """``dt``: the world's time step (s); ``ageing``: how many times faster cells age than rated
        (to reach end of life in a short run); ``specimen``: the preset of the cell on the rig."""
        if specimen not in PRESETS:
            raise ValueError(f"unknown specimen {specimen!r} (presets: {', '.join(PRESETS)})")
        self.clock = ScaledClock(speed)
        self.world = World(self.clock, dt=dt)
        self.random = random.Random(seed)
        self.seed, self.ageing, self.specimen = seed, ageing, specimen
        self.roles = dict(roles or ROLES)
        self.sims: dict[str, SimInstrument] = {}
        for name, role in self.roles.items():
            self.sims[name] = self.world.add(role.build(self))
        for name, planned in (faults or {}).items():
            for fault in planned:
                self.inject(name, **dataclasses.asdict(fault))
        self.servers: dict[str, SimServer] = {}
        self.control: SimServer | None = None

    def inject(self, role: str, kind: FaultKind, count: int = 1, match: str = "", **details: Any) -> None:
        """Play a fault on a role's simulator (:meth:`SimInstrument.inject`); ValueError for a bad role or fault."""
        if role not in self.sims:
            raise ValueError(f"no role {role!r} in the virtual lab (roles: {', '.join(self.sims)})")
        self.sims[role].inject(kind, count, match, **details)

    def cell(self, name: str, preset: str, capacity_ah: float = 5.0, soc: float = 0.5) -> Cell:
        """A cell of the world, with a production line's spread (:func:`~.cell.production_spread`)."""
        cell = Cell(PRESETS[preset], capacity_ah, soc=soc, ageing=self.ageing, **production_spread(self.random))
        return self.world.add_cell(name, cell)

    def start(self, port: int = 0) -> "VirtualLab":
        """Serve every role, then the control line: on free ports, or on ``port``, ``port + 1`` … in that order."""
        for i, (name, sim) in enumerate(self.sims.items()):
            self.servers[name] = SimServer(sim, port=port + i if port else 0).start()
        self.control = SimServer(LabControl(self), port=port + len(self.sims) if port else 0).start()
        return self

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()
        if self.control is not None:
            self.control.stop()
            self.control = None

    def __enter__(self) -> "VirtualLab":
        return self if self.servers else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- carrying a run over a restart (an embedded lab's run resumed in a new process) --------

    def options(self) -> dict[str, Any]:
        """What rebuilds this lab's world: ``VirtualLab(**options)``."""
        return {
            "speed": self.clock.scale,
            "seed": self.seed,
            "dt": self.world.dt,
            "ageing": self.ageing,
            "specimen": self.specimen,
        }

    def _cell_on(self, role: str, channel: int | None) -> Cell | None:
        driver = self.roles[role].driver if role in self.roles else None
        name = {"keysight_bt2200": f"cycler-{channel or 101}", "keithley_2450": "smu-1"}.get(driver or "")
        return self.world.cells.get(name) if name else None

    def cell_state(self, role: str, channel: int | None) -> dict[str, Any] | None:
        """The state of the cell a cycler role's channel drives (charge, heat, ageing …), or None."""
        cell = self._cell_on(role, channel)
        if cell is None:
            return None
        with self.world.lock:
            return {f.name: getattr(cell, f.name) for f in dataclasses.fields(cell) if f.name != "chemistry"}

    def restore_cell(self, role: str, channel: int | None, state: dict[str, Any]) -> None:
        """Put the cell of a cycler role's channel back in a state :meth:`cell_state` gave."""
        cell = self._cell_on(role, channel)
        if cell is None:
            raise ValueError(f"the virtual lab has no cell on {role} channel {channel}")
        with self.world.lock:
            for name, value in state.items():
                setattr(cell, name, value)

    def resources(self) -> dict[str, str]:
        return {name: server.resource for name, server in self.servers.items()}

    def lab_dict(self) -> dict[str, Any]:
        """The lab file's content (as ``Lab.from_dict`` takes it) for the running simulators."""
        roles = {}
        for name, role in self.roles.items():
            entry: dict[str, Any] = {"driver": role.driver, "resource": self.servers[name].resource}
            if role.options:
                entry["options"] = dict(role.options)
            if role.limits:
                entry["limits"] = dict(role.limits)
            entry["calibration"] = {"certificate": f"virtual-{name}", **_this_year(), **VIRTUAL_CALIBRATION}
            roles[name] = entry
        clock = {"speed": self.clock.scale, "origin": self.clock.origin}
        name = f"virtual lab (clock ×{self.clock.scale:g})"
        return {"name": name, "clock": clock, "virtual": {"control": self.control_address}, "roles": roles}

    @property
    def control_address(self) -> str:
        """``host:port`` of the running control line (:class:`LabControl`)."""
        return f"{self.control.host}:{self.control.port}"

    def lab_toml(self) -> str:
        """A lab file for cellrig that points at the running simulators."""
        data = self.lab_dict()
        lines = [
            f"name = {_toml(data['name'])}",
            "",
            "[clock]  # the virtual lab's: this many times real time, from this Unix time",
        ]
        lines += [f"{key} = {_toml(value)}" for key, value in data["clock"].items()]
        lines += ["", f"[virtual]  # the virtual lab's own: {LabControl.usage} on this port"]
        lines += [f"{key} = {_toml(value)}" for key, value in data["virtual"].items()]
        for name, entry in data["roles"].items():
            lines += ["", f"[roles.{name}]"]
            lines += [f"{key} = {_toml(value)}" for key, value in entry.items()]
        return "\n".join(lines) + "\n"

    def write_lab(self, path: str | Path) -> Path:
        """Write the lab file atomically: whoever sees it sees all of it."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.lab_toml())
        os.replace(tmp, path)
        return path
