"""Campaigns: many cells, each with its protocol, run at once on one lab (one thread per run).

A campaign file (YAML)::

    name: life-2026
    lab: lab.toml                  # relative to this file
    chambers:
      chamber: {lead: null, safe_on_trip: false}
    notify:                        # alerts for these runs, beside the lab file's [notify] (cellrig.notify)
      - {url: "ntfy://ntfy.sh/life-2026", events: [trip, stale, failed, campaign]}
    defaults: {protocol: cycle-life, cycler: cycler, daq: daq}
    cells:
      - {id: NMC-01, type: nmc811-5Ah, channel: 101, chamber: chamber, probes: {temperature: 101}}
      - {id: LFP-01, type: lfp-5Ah, channel: 103, chamber: chamber, probes: {temperature: 103},
         parameters: {rate: 0.5C}}

Every cell's protocol is pre-flighted before anything moves; all problems are reported at
once.  Runs share multi-channel cyclers and DAQs (one lock per connection), and chambers
(setpoints change when every run in the chamber agrees, or when its ``lead`` asks).  A
trip stops that run only, unless its chamber says ``safe_on_trip``.  The campaign's
settings are kept in ``campaign.json`` in the output folder, so ``cellrig resume DIR``
continues every interrupted run of it.
"""

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..inputs import InputError, read_text
from ..lab import Lab
from ..notify import Route, read_routes
from ..storage import open_run
from . import language as L
from . import library
from .alerts import CampaignEnd
from .cells import cell_spec
from .engine import POLL, PreflightError, Runner, Shared
from .preflight import Binding, Probe, check
from .states import resumable
from .stopping import StopRequest, signals_ask_to_stop

MANIFEST = "campaign.json"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProbeEntry(_Model):
    channel: int
    kind: str = "tc"
    tc_type: str = "K"
    scale: float = 1.0
    units: str = "degC"


class CellEntry(_Model):
    id: L.CellId
    type: str | None = None
    rating: dict[str, Any] = {}
    protocol: str | None = None
    parameters: dict[str, Any] = {}
    cycler: str | None = None
    channel: int | None = None
    chamber: str | None = None
    rig: str | None = None
    daq: str | None = None
    probes: dict[str, int | ProbeEntry] = {}


class ChamberEntry(_Model):
    lead: str | None = None
    safe_on_trip: bool = False


class CampaignFile(_Model):
    name: str
    lab: str | None = None
    chambers: dict[str, ChamberEntry] = {}
    notify: list[Any] = []
    defaults: dict[str, Any] = {}
    cells: list[dict[str, Any]] = Field(min_length=1)


@dataclass
class Plan:
    """One cell of a campaign, ready to run."""

    protocol: L.Protocol
    binding: Binding


@dataclass
class Campaign:
    name: str
    lab: Lab
    plans: list[Plan]
    chambers: dict[str, ChamberEntry] = field(default_factory=dict)
    origin: str = "<campaign>"
    notify: list[Route] = field(default_factory=list)  # alerts for this campaign's runs, beside the lab's


def binding_of(entry: CellEntry) -> Binding:
    probes = {name: Probe(p) if isinstance(p, int) else Probe(**p.model_dump()) for name, p in entry.probes.items()}
    return Binding(entry.cycler, entry.channel, entry.chamber, entry.rig, entry.daq, probes)


def load_campaign(path: str | Path, lab: Lab | None = None, overrides: dict[str, Any] | None = None) -> Campaign:
    """Read a campaign file and compile every cell's protocol; raise with every problem at once."""
    path = Path(path)
    try:
        text = read_text(path, "campaign")
    except InputError as exc:
        raise L.ProtocolError([str(exc)]) from None
    data, src = L.read_yaml(text, str(path))
    if data is None:
        raise L.ProtocolError([f"{path}: the campaign file is empty"])
    try:
        spec = CampaignFile.model_validate(data)
    except ValidationError as exc:
        src.validation(exc, (), lambda loc: ", ".join(CampaignFile.model_fields))
        raise L.ProtocolError(src.problems) from None
    if lab is None:
        if spec.lab is None:
            raise L.ProtocolError([f"{path}: lab: no lab file given (in the campaign or with --lab)"])
        lab = Lab.from_file(path.parent / spec.lab)
    said: list[str] = []
    routes = read_routes(spec.notify, "notify", said)
    src.problems.extend(f"{src.origin}:{src.line(('notify',))}: {problem}" for problem in said)
    plans = []
    for i, raw in enumerate(spec.cells):
        loc: L.Loc = ("cells", i)
        try:
            entry = CellEntry.model_validate(spec.defaults | raw)
        except ValidationError as exc:
            src.validation(exc, loc, lambda _: ", ".join(CellEntry.model_fields))
            continue
        try:
            cell = cell_spec({**({"type": entry.type} if entry.type else {}), **entry.rating}, entry.id)
        except ValueError as exc:
            src.problem((*loc, "type"), str(exc))
            continue
        if entry.protocol is None:
            src.problem(loc, "no protocol (give one here or in defaults)")
            continue
        try:
            protocol = library.protocol(
                _relative(path, entry.protocol), cell, {**entry.parameters, **(overrides or {})}
            )
        except L.ProtocolError as exc:
            src.problems.extend(f"{src.origin}:{src.line(loc)}: cells[{i}] ({entry.id}): {p}" for p in exc.problems)
            continue
        plans.append(Plan(protocol, binding_of(entry)))
    ids = [p.protocol.cell.id for p in plans]
    for dup in sorted({x for x in ids if ids.count(x) > 1}):
        src.problem(("cells",), f"cell id {dup!r} given twice")
    for name, chamber in spec.chambers.items():
        if chamber.lead is not None and chamber.lead not in ids:
            src.problem(("chambers", name, "lead"), f"no cell {chamber.lead!r} in the campaign")
    if src.problems:
        raise L.ProtocolError(src.problems)
    return Campaign(spec.name, lab, plans, spec.chambers, str(path), routes)


def _relative(campaign: Path, protocol: str) -> str:
    """A protocol named by file is found beside the campaign file; a library name stays a name."""
    candidate = campaign.parent / protocol
    return str(candidate) if candidate.suffix in (".yaml", ".yml") and candidate.exists() else protocol


def preflight(campaign: Campaign) -> list[str]:
    problems = []
    for plan in campaign.plans:
        problems += [f"{plan.protocol.cell.id}: {p}" for p in check(plan.protocol, campaign.lab, plan.binding)]
    if problems:
        return problems
    drivers: dict[str, str] = {}  # a cycler channel or rig -> the cell it drives (chambers are shared)
    for plan in campaign.plans:
        cell = plan.protocol.cell.id
        for kind, (key, what) in Runner.owned(plan.protocol, plan.binding, campaign.lab).items():
            if kind != "chamber" and drivers.setdefault(key, cell) != cell:
                problems.append(f"{cell}: {what} is already {drivers[key]}'s (one run per channel or rig)")
    return problems


Progress = Callable[[Runner], None]


def _shared(
    lab: Lab,
    chambers: dict[str, ChamberEntry],
    poll: float,
    interrupt: StopRequest | None,
    name: str | None,
    routes: list[Route],
) -> Shared:
    campaign = CampaignEnd(name) if name else None
    shared = Shared(lab, poll=poll, interrupt=interrupt or StopRequest(), routes=tuple(routes), campaign=campaign)
    shared.chamber_safe_on_trip.update(name for name, chamber in chambers.items() if chamber.safe_on_trip)
    return shared


def _set_leads(shared: Shared, chambers: dict[str, ChamberEntry], runners: list[Runner]) -> None:
    """A chamber's lead is a run: known once the run files exist."""
    for name, chamber in chambers.items():
        lead = next((r for r in runners if r.protocol.cell.id == chamber.lead), None)
        if lead is not None:
            shared.chamber(name).lead = lead.key


def start(
    campaign: Campaign,
    out: str | Path,
    *,
    poll: float = POLL,
    progress: Progress | None = None,
    interrupt: StopRequest | None = None,
) -> list[Runner]:
    """Pre-flight every cell, then create every run file in ``out``; nothing moves until :func:`run_all`."""
    out = Path(out)
    problems = preflight(campaign)
    if problems:
        raise PreflightError(problems)
    if (out / MANIFEST).exists():
        raise FileExistsError(f"{out}: already holds a campaign (continue it with: cellrig resume {out})")
    owned = [Runner.owned(p.protocol, p.binding, campaign.lab) for p in campaign.plans]
    wanted = {key: what for kinds in owned for key, what in kinds.values()}
    with campaign.lab.locks.holding(wanted, f"campaign {campaign.name} starting in {out}"):  # all or none
        out.mkdir(parents=True, exist_ok=True)
        shared = _shared(campaign.lab, campaign.chambers, poll, interrupt, campaign.name, campaign.notify)
        runners = [Runner.start(p.protocol, p.binding, out, shared, progress=progress) for p in campaign.plans]
    _set_leads(shared, campaign.chambers, runners)
    manifest = {
        "name": campaign.name,
        "origin": campaign.origin,
        "lab": str(Path(campaign.lab.origin).resolve()),
        "chambers": {k: v.model_dump() for k, v in campaign.chambers.items()},
        "runs": {r.protocol.cell.id: r.writer.path.name for r in runners},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return runners


def resume(
    folder: str | Path,
    lab: Lab | None = None,
    *,
    poll: float = POLL,
    progress: Progress | None = None,
    ack_trip: bool = False,
    interrupt: StopRequest | None = None,
    virtual_lab: Callable[[dict[str, Any]], Lab] | None = None,
) -> list[Runner]:
    """Reopen every interrupted or stopped run in ``folder`` (a campaign's or any) to continue it.

    ``ack_trip``: tripped runs too (non-abuse), the acknowledgement recorded in each file.
    ``virtual_lab``: with no ``lab``, what rebuilds an embedded virtual lab from the options its runs recorded.
    """
    folder = Path(folder)
    paths = sorted(folder.glob("*.h5")) if folder.is_dir() else [folder]
    manifest_path = (folder if folder.is_dir() else folder.parent) / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    todo = [p for p in paths if open_run(p).status in resumable(ack_trip)]
    if not todo and not folder.is_dir():
        todo = paths  # one run named: let Runner.resume say why it cannot continue
    if not todo:
        raise ValueError(f"{folder}: no interrupted or stopped run to resume")
    opened = lab is None
    if lab is None:
        lab = _lab_of(manifest, open_run(todo[0]).meta["lab"], virtual_lab)
    try:
        chambers = {k: ChamberEntry(**v) for k, v in manifest.get("chambers", {}).items()}
        shared = _shared(lab, chambers, poll, interrupt, manifest.get("name"), _routes(manifest))
        runners = [Runner.resume(p, shared, progress=progress, ack_trip=ack_trip) for p in todo]
        _set_leads(shared, chambers, runners)
    except BaseException:
        if opened:  # nobody else will close what this call opened
            lab.close()
        raise
    return runners


def _routes(manifest: dict[str, Any]) -> list[Route]:
    """A resumed campaign's own alert routes: read again from its campaign file, if that is still there."""
    origin = Path(manifest.get("origin", ""))
    if not origin.is_file():
        return []
    try:
        data, _ = L.read_yaml(read_text(origin, "campaign"), str(origin))
    except (InputError, L.ProtocolError):
        return []
    return read_routes(data.get("notify", []) if isinstance(data, dict) else [], "notify", [])


def _lab_of(
    manifest: dict[str, Any], recorded: dict[str, str], virtual_lab: Callable[[dict[str, Any]], Lab] | None
) -> Lab:
    """The lab the runs ran on: the campaign's or the run's lab file, or a new embedded virtual lab
    built with the recorded options (each run puts its own cell's state back as it resumes)."""
    if manifest.get("lab") or "virtual" not in recorded:
        return Lab.from_file(manifest.get("lab") or recorded["file"])
    if virtual_lab is None:
        raise ValueError(f"the runs ran on an embedded virtual lab ({recorded['name']}): give virtual_lab or a lab")
    return virtual_lab(json.loads(recorded["virtual"]))


def run_all(runners: list[Runner], *, on_wait: Callable[[], None] | None = None) -> dict[str, tuple[str, str | None]]:
    """Run every runner in its own thread until each has ended (safe state read back, file closed).

    Signals and Ctrl-C only ask the runs to stop (:mod:`.stopping`); this thread waits for
    every run whatever arrives, so the lab is never closed under a run still making itself safe.
    """
    results: dict[str, tuple[str, str | None]] = {}
    ended = threading.Event()

    def work(r: Runner) -> None:
        try:
            results[r.protocol.cell.id] = r.run()
        except BaseException as exc:
            results[r.protocol.cell.id] = ("failed", f"{type(exc).__name__}: {exc}")
        finally:
            ended.set()

    threads = [threading.Thread(target=work, args=(r,), name=f"run-{r.key}") for r in runners]
    if not threads:
        return results
    stop = runners[0].shared.interrupt
    with signals_ask_to_stop(stop):
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            try:
                if on_wait:
                    on_wait()
                ended.wait(0.2)
                ended.clear()
            except KeyboardInterrupt:  # a handler other than ours (e.g. a notebook's): ask, and wait on
                stop.ask("interrupted (Ctrl-C)")
    return results
