"""The commands that run tests and steer them: run, campaign, resume, status, pause/continue/stop/abort,
protocols, demo."""

import getpass
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .. import observations
from ..demo import MARK as DEMO_MARK
from ..demo import run_demo
from ..instruments._connection import InstrumentError
from ..lab import Lab, LabFileError
from ..lab_locks import InstrumentHeldError
from ..protocols import campaign as campaigns
from ..protocols import control, library
from ..protocols.cells import PRESET_TYPES, cell_spec
from ..protocols.engine import PreflightError, Runner, Shared
from ..protocols.language import Check, Protocol, ProtocolError
from ..protocols.preflight import Binding, Probe, check, sole_roles
from ..protocols.stopping import StopRequest, signals_ask_to_stop
from ..protocols.supervisor import chamber_setpoints
from ..sim import wiring
from ..sim.lab import VirtualLab, speed_for
from ..storage import RunFileError, open_campaign, open_run
from ._common import analyse_folder, console, err, runs_folder

BAD_INPUT = (ProtocolError, PreflightError, LabFileError, RunFileError, ValueError, FileExistsError, KeyError)
#: What ends a command with one line and exit 1: bad input, or an instrument or folder that cannot be had.
REFUSED = (*BAD_INPUT, InstrumentError, InstrumentHeldError, OSError)


def _parameters(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for text in values:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{text!r}: expected NAME=VALUE, e.g. rate=0.5C", param_hint="--set")
        out[key.strip()] = value.strip()
    return out


def _probes(values: tuple[str, ...]) -> dict[str, Probe]:
    out = {}
    for text in values:
        name, sep, channel = text.partition("=")
        if not sep or not channel.strip().isdigit():
            raise click.BadParameter(f"{text!r}: expected NAME=CHANNEL, e.g. temperature=101", param_hint="--probe")
        out[name.strip()] = Probe(int(channel))
    return out


def _virtual_setup(name: str, channel: int, specimen: str) -> tuple[str, Binding]:
    """The virtual lab's cell type and instruments for a protocol: cycling on the BT2200 (chamber and
    thermocouple follow the channel), electrical abuse on the SMU, mechanical abuse on the rig."""
    sketch = library.protocol(name)  # compiled for a default cell: which instruments, what kind
    roles = sketch.roles()
    if "rig" in roles:
        return PRESET_TYPES[specimen], wiring.RIG
    if sketch.abuse and "cycler" in roles:
        return f"{specimen}-{wiring.SMU_CELL_AH:g}Ah", wiring.SMU
    channels = wiring.CYCLER_CHANNELS
    if channel not in channels:
        raise ValueError(f"channel {channel}: the virtual cycler has channels {channels[0]}–{channels[-1]}")
    cell_type = PRESET_TYPES[wiring.cycler_cell(channel)]
    return cell_type, wiring.cycler(channel, chamber="chamber" in roles)


def _stopping() -> AbstractContextManager[StopRequest]:
    """SIGINT, SIGTERM and SIGHUP ask every run to stop safely, however often they come."""
    return signals_ask_to_stop(StopRequest(), lambda text: err.print(f"[yellow]{text}[/]"))


def _execute(runners: list[Runner], ask: bool = True) -> None:
    """Run with a progress bar per run; print how each ended; exit 1 if any failed, 130 if a signal stopped them.

    ``ask``: a run whose criteria need the operator's observation asks for it here, if this is a terminal."""
    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[where]}"),
        TimeElapsedColumn(),
        console=err,
    )
    tasks = {}
    for r in runners:
        total = None if any(isinstance(i, Check) for i in r.protocol.program) else len(r.protocol.leaves)
        tasks[r.key] = bars.add_task(f"{r.protocol.cell.id} {r.protocol.name}", total=total, where="")

    def update() -> None:
        for r in runners:
            loops = [x for x in (r.state.retention(loop) for loop in r.state.active) if x is not None]
            where = f"{r.status} · step {r.state.steps_done} · cycle {r.state.cycle}"
            where += f" · retention {loops[-1]:.1%}" if loops else ""
            bars.update(tasks[r.key], completed=r.state.steps_done, where=where)

    if runners and ask and sys.stdin.isatty():
        runners[0].shared.ask = _asker(bars)
    with bars:
        results = campaigns.run_all(runners, on_wait=update)
        update()
    table = Table(title="runs", title_justify="left")
    for header in ("cell", "protocol", "status", "why", "run file"):
        table.add_column(header)
    for r in runners:
        status, reason = results.get(r.protocol.cell.id, ("failed", "did not run"))
        colour = {"finished": "green", "tripped": "yellow"}.get(status, "red")
        table.add_row(r.protocol.cell.id, r.protocol.name, f"[{colour}]{status}[/]", reason or "", str(r.writer.path))
    console.print(table)
    statuses = {s for s, _ in results.values()}
    if runners and runners[0].shared.interrupt.is_set():
        sys.exit(130)
    if "failed" in statuses:
        sys.exit(1)


def _asker(bars: Progress) -> Callable[[str], str]:
    """Ask the operator at this terminal for a run's observation, one run at a time, the bars held meanwhile."""
    one = threading.Lock()

    def yes_no(what: str) -> bool:
        return click.prompt(f"  {what}", type=click.Choice(["yes", "no"]), err=True) == "yes"

    def ask(cell: str) -> str:
        with one:
            bars.stop()
            try:
                err.print(f"[bold]{cell}: what did you see during the test?[/] (or `cellrig observe` later)")
                seen = {what: yes_no(what) for what in observations.OBSERVED}
                note = click.prompt("  note (optional)", default="", show_default=False, err=True).strip()
            finally:
                bars.start()
        return observations.message(seen, note, getpass.getuser())

    return ask


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc).strip("'\""))


@click.command()
@click.argument("protocol")
@runs_folder("Folder for the run file (created if missing; runs are never overwritten).")
@click.option(
    "--lab", "lab_file", type=click.Path(dir_okay=False, path_type=Path), help="Lab file (default: the virtual lab)."
)
@click.option("--set", "params", multiple=True, metavar="NAME=VALUE", help="Override a protocol parameter. Repeatable.")
@click.option("--cell-type", help="Cell type (ratings) — default: the virtual lab's cell on the channel.")
@click.option("--cell-id", default="cell-1", show_default=True, help="Name of the cell under test.")
@click.option(
    "--channel",
    type=int,
    help="Cycler channel (and thermocouple); default 101, or on the virtual lab the first whose cell is rated "
    "for the protocol's temperatures.",
)
@click.option("--cycler", help="Lab role of the cycler (default: the lab's only one, if it has one).")
@click.option("--chamber", help="Lab role of the chamber (default: the lab's only one, if it has one).")
@click.option("--rig", help="Lab role of the abuse rig (default: the lab's only one, if it has one).")
@click.option("--daq", help="Lab role of the DAQ.")
@click.option(
    "--probe", "probes", multiple=True, metavar="NAME=CHANNEL", help="A DAQ thermocouple, e.g. temperature=101."
)
@click.option(
    "--cell-probe",
    metavar="NAME",
    help="The probe on the cell, supervised as cell temperature (default: 'temperature', or the only one).",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=1),
    help=(
        "Virtual lab clock speed (default: the fastest the protocol's instruments can follow, said at start). "
        "Faster than this host can follow, the run ends, naming the speed it held."
    ),
)
@click.option(
    "--ageing",
    type=click.FloatRange(min=1),
    default=1.0,
    show_default=True,
    help="Virtual cells age this much faster (N× the time and throughput; docs/ageing.md).",
)
@click.option(
    "--specimen",
    type=click.Choice(list(PRESET_TYPES)),
    default="nmc811",
    show_default=True,
    help="Virtual rig/SMU cell.",
)
def run(
    protocol: str,
    out_dir: Path,
    lab_file: Path | None,
    params: tuple[str, ...],
    cell_type: str | None,
    cell_id: str,
    channel: int | None,
    cycler: str | None,
    chamber: str | None,
    rig: str | None,
    daq: str | None,
    probes: tuple[str, ...],
    cell_probe: str | None,
    speed: float | None,
    ageing: float,
    specimen: str,
) -> None:
    """Run PROTOCOL (a library name, see `cellrig protocols list`, or a YAML file) on one cell.

    With no --lab, on the virtual lab: cycling on the BT2200 channel (its chamber and
    thermocouple follow the channel), electrical abuse on the SMU, mechanical abuse on the
    rig.  The protocol is checked against the cell's ratings and the lab's limits first;
    nothing moves if any step could exceed them.  Ctrl-C, SIGTERM or SIGHUP stop the run
    safely (resume it with `cellrig resume`).
    """
    overrides = _parameters(params)
    with _stopping() as stop:
        try:
            if lab_file is None:
                if channel is None:
                    channel = _rated_channel(protocol, overrides, cell_type)
                default_type, binding = _virtual_setup(protocol, channel, specimen)
                cell = cell_spec(cell_type or default_type, cell_id)
                p = library.protocol(protocol, cell, overrides)
                if speed is None:
                    speed, why = speed_for(binding.roles().values(), p.header.sample_interval)
                    err.print(f"virtual lab clock ×{speed:g} ({why})", highlight=False)
                with VirtualLab(speed=speed, ageing=ageing, specimen=specimen) as virtual:
                    _run_one(p, binding, Lab.on(virtual), out_dir, stop)
                return
            lab = Lab.from_file(lab_file)
            cell = cell_spec(cell_type or "nmc811-5Ah", cell_id)
            p = library.protocol(protocol, cell, overrides)
            binding, said = sole_roles(
                p, lab, Binding(cycler, channel or 101, chamber, rig, daq, _probes(probes), cell_probe)
            )
            for line in said:
                err.print(line, highlight=False)
            _run_one(p, binding, lab, out_dir, stop)
        except REFUSED as exc:
            raise _fail(exc) from None


def _rated_channel(name: str, overrides: dict[str, str], cell_type: str | None) -> int:
    """The first virtual cycler channel whose cell is rated for every chamber temperature of the protocol."""
    for channel, preset in zip(wiring.CYCLER_CHANNELS, wiring.CYCLER_CELLS, strict=True):
        cell = cell_spec(cell_type or PRESET_TYPES[preset])
        if all(cell.t_min <= t <= cell.t_max for t in chamber_setpoints(library.protocol(name, cell, overrides))):
            if channel != 101:
                err.print(f"channel {channel}: its {cell.type} cell is rated for the protocol's temperatures")
            return channel
    return 101


def _run_one(p: Protocol, binding: Binding, lab: Lab, out_dir: Path, stop: StopRequest) -> None:
    cell = p.cell
    err.print(f"[bold]{p.name}[/] ({p.header.title}) on {cell.id} ({cell.type or cell.chemistry}) · {lab.name}")
    with lab:
        runner = Runner.start(p, binding, out_dir, Shared(lab, interrupt=stop))
        _execute([runner])


@click.command()
@click.argument("campaign_file", type=click.Path(dir_okay=False, path_type=Path))
@runs_folder("Folder for the run files and campaign.json (a new folder).")
@click.option(
    "--lab", "lab_file", type=click.Path(dir_okay=False, path_type=Path), help="Lab file (default: the campaign's)."
)
@click.option(
    "--set", "params", multiple=True, metavar="NAME=VALUE", help="Override a parameter of every cell's protocol."
)
def campaign(campaign_file: Path, out_dir: Path, lab_file: Path | None, params: tuple[str, ...]) -> None:
    """Run every cell of CAMPAIGN_FILE at once, each with its protocol, sharing cyclers and chambers.

    Every protocol is checked first and all problems are reported together; nothing moves
    until all pass.  One cell tripping stops that cell only (unless its chamber is marked
    safe_on_trip).  Watch it with `cellrig status DIR`; steer it with `cellrig pause DIR`.
    """
    with _stopping() as stop:
        try:
            lab = Lab.from_file(lab_file) if lab_file else None
            plan = campaigns.load_campaign(campaign_file, lab, _parameters(params))
            with plan.lab:
                runners = campaigns.start(plan, out_dir, interrupt=stop)
                err.print(f"[bold]{plan.name}[/]: {len(runners)} runs on {plan.lab.name} → {out_dir}")
                _execute(runners)
        except REFUSED as exc:
            raise _fail(exc) from None


@click.command()
@click.argument("target", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--lab",
    "lab_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Lab file (default: the one the run used).",
)
@click.option(
    "--ack-trip",
    is_flag=True,
    help="Also continue tripped runs: you have found why they tripped (recorded in each file).",
)
def resume(target: Path, lab_file: Path | None, ack_trip: bool) -> None:
    """Continue an interrupted (or stopped) run in its own file, or every such run in a folder.

    The run goes on from its last checkpoint (after the last completed step); a step that was
    interrupted runs again.  A tripped run continues only with --ack-trip; abuse tests never resume.
    A run of the embedded virtual lab gets that lab rebuilt, its cell as the last checkpoint left it;
    a demo's folder goes on with the demo and ends with its report.
    """
    if (target / DEMO_MARK).is_file() and lab_file is None:
        _demo(target, resume=True)
        return
    with _stopping() as stop:
        try:
            lab = Lab.from_file(lab_file) if lab_file else None
            runners = campaigns.resume(target, lab, ack_trip=ack_trip, interrupt=stop, virtual_lab=_embedded_lab)
            with runners[0].lab:
                _execute(runners)
        except REFUSED as exc:
            raise _fail(exc) from None


def _embedded_lab(options: dict[str, Any]) -> Lab:
    """The embedded virtual lab rebuilt with the options its runs recorded (``VirtualLab.options``), serving."""
    return Lab.on(VirtualLab(**options).start())


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
def status(folder: Path) -> None:
    """Show each run in FOLDER: state, step, cycle, last readings and elapsed time (live runs too).

    Read from the run files only, so it works from another terminal while runs go on.
    """
    if not folder.is_dir():
        raise click.ClickException(f"{folder}: no such folder")
    campaign = open_campaign(folder)
    if not len(campaign):
        raise click.ClickException(f"{folder}: no run files")
    table = Table(title=f"runs in {folder}", title_justify="left")
    for header in ("cell", "protocol", "state", "step", "cycle", "V", "A", "elapsed h", "why it ended"):
        table.add_column(header)
    for run in campaign:
        events = run.events
        steps = events[events["kind"] == "step_start"]
        step = steps.iloc[-1] if len(steps) else None
        last = run.last(run.cycle_stream) if run.cycle_stream else {}
        state = control.state(run)
        colour = {"running": "cyan", "paused": "yellow", "finished": "green"}.get(state, "red")
        table.add_row(
            str(run.meta.get("cell", {}).get("id", "?")),
            str(run.meta.get("protocol", {}).get("name", "?")),
            f"[{colour}]{state}[/]",
            str(step["message"]) if step is not None else "",
            str(int(step["cycle"])) if step is not None else "",
            f"{last['voltage']:.3f}" if "voltage" in last else "",
            f"{last['current']:.3f}" if "current" in last else "",
            f"{last.get('time', 0.0) / 3600:.2f}",
            run.end_reason or "",
        )
    console.print(table)


#: which runs each operator command is for (their state as ``control.state`` tells it)
LIVE = ("running", "paused")
ADDRESSEES = {"pause": ("running",), "continue": ("paused",), "stop": LIVE, "abort": LIVE}


def _addressees(target: Path, command: str) -> list[Path]:
    paths = sorted(target.glob("*.h5")) if target.is_dir() else [target]
    wanted = ADDRESSEES[command]
    chosen = [p for p in paths if control.state(open_run(p)) in wanted]
    if not chosen:
        raise click.ClickException(f"{target}: no {' or '.join(wanted)} run to {command}")
    return chosen


def _operator(command: str, doc: str) -> click.Command:
    """The operator command ``command``: send it to the runs it is for, and wait for their engines' answers."""

    @click.command(command, help=doc)
    @click.argument("target", type=click.Path(exists=True, path_type=Path))
    @click.option(
        "--timeout",
        type=click.FloatRange(min=0),
        default=30.0,
        show_default=True,
        help="Seconds to wait for each run's engine to answer; an unanswered command is withdrawn.",
    )
    def send(target: Path, timeout: float) -> None:
        try:
            paths = _addressees(target, command)
            answered = {p: control.replies(open_run(p)) for p in paths}
            for path in paths:
                control.send(path, command, expires=timeout)  # unanswered by then, it is withdrawn or void
            deadline = time.monotonic() + timeout
            unanswered = [p for p in paths if not answer(p, answered[p], deadline)]
        except RunFileError as exc:
            raise _fail(exc) from None
        if unanswered:
            names = ", ".join(p.name for p in unanswered)
            raise click.ClickException(f"{command}: no answer within {timeout:g} s from {names} (is its engine alive?)")

    return send


def answer(path: Path, answered: int, deadline: float, command: str = "") -> bool:
    """Wait for the engine of ``path`` to take its ``command`` and record the event that answers it (one
    more than ``answered`` of them); print it.  Unanswered by ``deadline`` (monotonic), it is withdrawn."""
    kinds = (observations.EVENT,) if command == "observe" else control.REPLIES
    while time.monotonic() < deadline:
        run = open_run(path)
        if control.replies(run, kinds) > answered:
            events = run.events
            reply = events[events["kind"].isin(kinds)].iloc[-1]
            said = f"{reply['kind']} at t = {reply['time']:.0f} s" if command == "observe" else reply["kind"]
            console.print(f"{path.name}: {said}: {reply['message']}", highlight=False, soft_wrap=True)
            return True
        time.sleep(0.05)
    if control.withdraw(path, command):
        err.print(f"{path.name}: not taken; withdrawn", highlight=False)
    return False


OPERATORS = (
    _operator("pause", "Pause a running run (or every run in a folder): outputs off, supervision goes on."),
    _operator("continue", "Continue a paused run (or every paused run in a folder) where it paused."),
    _operator(
        "stop", "Stop a run (or every run in a folder) in an orderly way: safe state, status stopped, resumable."
    ),
    _operator("abort", "Abort a run (or every run in a folder) now: safe state, status aborted."),
)


@click.group()
def protocols() -> None:
    """The standard protocol library, and checking protocol files before they run."""


@protocols.command("list")
def protocols_list() -> None:
    """List the library's protocols with the standard each follows."""
    table = Table(title="protocol library", title_justify="left")
    for header in ("name", "kind", "title"):
        table.add_column(header)
    for name in library.names():
        h = library.header(name)
        table.add_row(name, h.kind + (" (verify)" if h.verify else ""), h.title)
    console.print(table)


@protocols.command("show")
@click.argument("name")
def protocols_show(name: str) -> None:
    """Show a library protocol: what it does, its standard, parameters and steps."""
    try:
        path = library.path(name)
        h = library.header(str(path))
    except BAD_INPUT as exc:
        raise _fail(exc) from None
    console.print(f"[bold]{h.name}[/] — {h.title}\n[dim]{h.kind}[/]  {h.standard}")
    if h.verify:
        console.print("[yellow]built on values docs/standards.md marks unverified: check them[/]")
    table = Table(title="parameters (override with --set NAME=VALUE)", title_justify="left")
    for header in ("name", "default", "meaning"):
        table.add_column(header)
    for key, p in h.parameters.items():
        table.add_row(key, str(p.default), p.help)
    console.print(table)
    console.print(path.read_text(), highlight=False, markup=False)


@protocols.command("check")
@click.argument("protocol")
@click.option(
    "--lab", "lab_file", type=click.Path(dir_okay=False, path_type=Path), help="Lab file (default: the virtual lab)."
)
@click.option("--cell-type", help="Cell type (default: the virtual lab's cell for the protocol).")
@click.option("--set", "params", multiple=True, metavar="NAME=VALUE", help="Override a protocol parameter.")
@click.option("--channel", type=int, default=101, show_default=True, help="Cycler channel.")
def protocols_check(
    protocol: str, lab_file: Path | None, cell_type: str | None, params: tuple[str, ...], channel: int
) -> None:
    """Check PROTOCOL (file or library name) against the cell's ratings and the lab's limits; move nothing."""
    try:
        default_type, binding = _virtual_setup(protocol, channel, "nmc811")
        cell = cell_spec(cell_type or default_type)
        p = library.protocol(protocol, cell, _parameters(params))
        if lab_file:
            problems = check(p, Lab.from_file(lab_file), binding)
        else:
            with VirtualLab() as virtual:
                problems = check(p, Lab.from_dict(virtual.lab_dict(), "virtual lab"), binding)
    except BAD_INPUT as exc:
        raise _fail(exc) from None
    if problems:
        raise click.ClickException("would not run:\n" + "\n".join(problems))
    console.print(f"[green]ok[/]: {p.name} on {cell.type or cell.chemistry}: {len(p.leaves)} steps within every limit")


@click.command()
@click.option(
    "--out",
    "out_dir",
    default="demo",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the runs, the tables and report.html (must be new or empty).",
)
def demo(out_dir: Path) -> None:
    """Test a sulfide all-solid-state cell's claims on the virtual lab and report: would it pass, how long will it live?

    A sulfide all-solid-state cell beside NMC811 and LFP cells: cycle life with RPTs at 25 °C
    and 45 °C to 80 % retention (cells age 120× faster than rated), a -20…85 °C temperature
    sweep, HPPC, then a 200 °C hot box, nail penetration and crush on fresh cells.  Everything
    streams to run files, is analysed with dask and reported in OUT/report.html.  Needs no
    lab file and no network; takes a few minutes.
    """
    if out_dir.exists() and any(out_dir.iterdir()):
        raise click.ClickException(f"{out_dir}: not empty; the demo never overwrites runs (choose another --out)")
    _demo(out_dir)


def _demo(out_dir: Path, resume: bool = False) -> None:
    """Run (or go on with) the demo into OUT_DIR, then analyse and report it."""
    from ..analysis.report import render_report, write_tables

    with _stopping() as stop:
        try:
            watched = partial(_execute, ask=False)  # a demo is watched, not observed: its abuse runs await one
            run_demo(out_dir, watched, lambda text: err.print(f"\n[bold]{text}[/]"), stop, resume=resume)
        except (RuntimeError, *REFUSED) as exc:  # e.g. the virtual lab could not start
            raise _fail(exc) from None
    if stop.is_set():
        err.print(
            f"[red]interrupted[/]: every instrument made safe, every run file closed; go on: cellrig resume {out_dir}"
        )
        sys.exit(130)
    campaign, analysis = analyse_folder(out_dir, None)
    tables = write_tables(analysis, campaign, out_dir / "analysis")
    page = render_report(analysis, "cellrig demo: sulfide all-solid-state vs NMC811 vs LFP", 3.0)
    report = out_dir / "report.html"
    report.write_text(page, encoding="utf-8")
    console.print(f"\nruns:    {out_dir}/<phase>/*.h5\ntables:  {tables[0].parent}\nreport:  {report}", highlight=False)
