"""The ``cellrig`` command."""

import re
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import __version__
from .analysis import cycle_summary
from .instruments.commands import commands_of
from .instruments.registry import VISA_LIBRARY
from .lab import Lab, LabFileError
from .protocols import control
from .protocols.stopping import StopRequest, signals_ask_to_stop
from .sim import DEFAULT_SPEED
from .sim._scpi import FAULT_KINDS, Fault
from .sim.lab import VirtualLab
from .sim.process import orphaned
from .storage import RunFileError, open_campaign, open_run
from .storage.imports import SourceFileError, import_file

if TYPE_CHECKING:
    from .analysis.parallel import CampaignAnalysis
    from .storage import Campaign

F = TypeVar("F", bound=Callable[..., object])
console = Console()
err = Console(stderr=True)


def runs_folder(help: str) -> Callable[[F], F]:
    """The required ``--out DIR`` option of the commands that write run files."""
    return click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help=help)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="cellrig")
def main() -> None:
    """cellrig runs a battery test lab: it drives cyclers, chambers, data loggers and abuse rigs
    through VISA, streams every reading to HDF5 run files while the test runs, and analyses
    the results.

    \b
    Start here:
      cellrig protocols list           the standard test library (cycle life, HPPC, hot box, nail, crush …)
      cellrig run capacity --out runs/ run one on a virtual cell (no lab file: the virtual lab)
      cellrig campaign FILE --out DIR  many cells at once; cellrig status DIR to watch, pause/stop to steer
      cellrig resume DIR               continue interrupted runs from their last checkpoint
      cellrig summary runs/<file>.h5   status and per-cycle summary of any run file
      cellrig analyze runs/            per-cycle tables (Parquet, CSV) and life metrics of a campaign
      cellrig report runs/ -o r.html   a self-contained HTML report with plots
      cellrig sim --write-lab v.toml   serve the virtual lab; then: cellrig lab check v.toml
    """


@main.command()
@click.argument("run_file", type=click.Path(path_type=Path))
@click.option("--all", "show_all", is_flag=True, help="Print every cycle, not the first and last few.")
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the summary to this CSV file.",
)
def summary(run_file: Path, show_all: bool, csv_path: Path | None) -> None:
    """Print a run's status and per-cycle summary (works on live runs too)."""
    _report(run_file, show_all=show_all, csv_path=csv_path)


def _report(path: Path, *, show_all: bool = False, csv_path: Path | None = None) -> None:
    try:
        r = open_run(path)
        table = cycle_summary(r)
    except RunFileError as exc:
        raise click.ClickException(str(exc)) from None
    console.print(_table(table, show_all))
    status = r.status
    colour = "green" if status in ("finished", "running") else "red"
    console.print(f"run file: {path}\nstatus:   [{colour}]{status}[/]" + (f" ({r.end_reason})" if r.end_reason else ""))
    if csv_path:
        table.to_csv(csv_path, index=False)
        console.print(f"summary:  {csv_path}")
    if status not in ("finished", "running"):
        sys.exit(1)


_COLUMNS = {  # summary column -> (header, format)
    "cycle": ("cycle", "{:.0f}"),
    "charge_capacity": ("Qc Ah", "{:.4f}"),
    "discharge_capacity": ("Qd Ah", "{:.4f}"),
    "charge_energy": ("Ec Wh", "{:.3f}"),
    "discharge_energy": ("Ed Wh", "{:.3f}"),
    "coulombic_efficiency": ("CE", "{:.4f}"),
    "energy_efficiency": ("EE", "{:.4f}"),
    "duration": ("hours", "{:.2f}"),
}


def _table(df: pd.DataFrame, show_all: bool) -> Table:
    table = Table(
        title="per-cycle summary",
        title_justify="left",
        caption="Q capacity, E energy (c charge, d discharge), CE = Qd/Qc, EE = Ed/Ec",
        caption_justify="left",
    )
    for header, _ in _COLUMNS.values():
        table.add_column(header, justify="right")
    cut = not show_all and len(df) > 12
    rows = pd.concat([df.head(5), df.tail(5)]) if cut else df
    for i, (_, row) in enumerate(rows.iterrows()):
        if cut and i == 5:
            table.add_row(*["…"] * len(_COLUMNS))
        values = {**row, "duration": row["duration"] / 3600}
        table.add_row(*(fmt.format(values[c]) for c, (_, fmt) in _COLUMNS.items()))
    return table


def _scheduler(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from .analysis.parallel import LOCAL_SCHEDULERS

    if value is None or value in LOCAL_SCHEDULERS or re.fullmatch(r"[a-z]+://[^\s/]+:\d+", value):
        return value
    raise click.BadParameter(
        f"{value!r}: expected an address like tcp://host:8786 or one of {', '.join(LOCAL_SCHEDULERS)}"
    )


_scheduler_option = click.option(
    "--scheduler",
    metavar="ADDRESS",
    callback=_scheduler,
    help="dask scheduler: a dask.distributed address (tcp://host:8786; its workers must see the run files "
    "under the same paths) or a local one (threads, processes).  Default: local threads.",
)


def _analyse_campaign(folder: Path, scheduler: str | None) -> tuple["Campaign", "CampaignAnalysis"]:
    """Catalog FOLDER and analyse its runs under a progress bar; clear one-line errors for bad input."""
    from .analysis.parallel import analyse_campaign
    from .storage import open_campaign

    try:
        campaign = open_campaign(folder)
    except NotADirectoryError as exc:
        raise click.ClickException(str(exc)) from None
    if not len(campaign):
        raise click.ClickException(f"{folder}: no run files (*.h5) in this folder")
    for path, why in campaign.skipped.items():
        err.print(f"[yellow]skipped[/]: {path}: {why}", highlight=False, soft_wrap=True)
    with _progress() as bar:
        task = bar.add_task(f"analysing runs on {scheduler}" if scheduler else "analysing runs", total=len(campaign))
        try:
            analysis = analyse_campaign(
                campaign, scheduler=scheduler, progress=lambda done: bar.update(task, completed=done)
            )
        except OSError as exc:  # an unreachable dask scheduler (connection refused, timeout)
            raise click.ClickException(f"dask scheduler {scheduler}: {exc}") from None
        bar.update(task, completed=len(campaign))
    for path, error in analysis.errors.itertuples(index=False):
        err.print(f"[red]not analysed[/]: {path}: {error}", highlight=False, soft_wrap=True)
    if len(analysis.others):
        err.print(f"{len(analysis.others)} runs without cycles (abuse tests and the like: see the report)")
    return campaign, analysis


@main.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the tables (created if missing).  Default: FOLDER/analysis.",
)
@_scheduler_option
def analyze(folder: Path, out_dir: Path | None, scheduler: str | None) -> None:
    """Analyse every run file in FOLDER (a campaign) in parallel with dask.

    Writes the per-cycle summaries of all runs (one table with Battery Data Format column names),
    the life metrics per cell and the catalog, each as Parquet and CSV, and prints a table per cell.
    Exits non-zero if any run could not be analysed.
    """
    from .analysis.report import write_tables

    campaign, analysis = _analyse_campaign(folder, scheduler)
    written = write_tables(analysis, campaign, out_dir or folder / "analysis")
    console.print(_life_summary(analysis.life))
    console.print("files:\n" + "\n".join(f"  {p}" for p in written), highlight=False, soft_wrap=True)
    if not analysis.errors.empty:
        sys.exit(1)


def _life_summary(life: pd.DataFrame) -> Table:
    table = Table(title="life per cell", title_justify="left", caption="EOL: 80 % retention", caption_justify="left")
    for header in ("cell", "chemistry", "cycles", "retention %", "EOL", "knee"):
        table.add_column(header, justify="left" if header in ("cell", "chemistry") else "right")
    for _, row in life.iterrows():
        knee = "—" if pd.isna(row["knee"]) else f"{row['knee']:.0f}"
        table.add_row(
            str(row["cell_id"]),
            str(row["chemistry"]),
            f"{row['last_cycle']}",
            f"{100 * row['last_retention']:.1f}",
            _eol(row),
            knee,
        )
    return table


def _eol(row: pd.Series) -> str:
    if not row["censored"]:
        return f"{row['eol_robust']:.0f}"
    return f"censored (≈{row['projected_eol']:.0f})" if pd.notna(row["projected_eol"]) else "censored"


@main.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--out",
    "out_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The HTML file to write (one self-contained file: plots embedded, no links).",
)
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0, min_open=True),
    default=3.0,
    show_default=True,
    help="Capacity spec for the yield: ± this % of nominal at the first cycle (cellrig's default, not a standard's).",
)
@_scheduler_option
def report(folder: Path, out_file: Path, tolerance: float, scheduler: str | None) -> None:
    """Write an HTML report of the campaign in FOLDER: fade, voltage and dQ/dV curves, DCIR,
    temperature, consistency and a table of life metrics.  Exits non-zero if any run could not be
    analysed (the report lists it)."""
    from .analysis.report import SECTIONS, render_report

    _, analysis = _analyse_campaign(folder, scheduler)
    if analysis.life.empty:
        raise click.ClickException(f"{folder}: no run could be analysed")
    with _progress() as bar:
        task = bar.add_task("writing report", total=len(SECTIONS))
        page = render_report(
            analysis,
            f"Campaign report: {folder.resolve().name}",
            tolerance,
            lambda done: bar.update(task, completed=done),
        )
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(page, encoding="utf-8")
    console.print(f"report: {out_file}", highlight=False, soft_wrap=True)
    if not analysis.errors.empty:
        sys.exit(1)


@main.command()
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


@main.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@runs_folder("Folder for the run files (created if missing; existing runs are never overwritten).")
@click.option("--cell", help="Cell name (one file only; default: the file's name).")
@click.option("--chemistry", help="Chemistry to record, e.g. NMC811/graphite.")
@click.option("--nominal-capacity", type=click.FloatRange(min=0, min_open=True), help="Nominal capacity (Ah).")
def import_(
    files: tuple[Path, ...], out_dir: Path, cell: str | None, chemistry: str | None, nominal_capacity: float | None
) -> None:
    """Turn other cyclers' exports into run files: Arbin CSV, Maccor text, BioLogic EC-Lab text,
    Novonix, Battery Data Format CSV/Parquet (format detected from the content).

    Each FILE becomes OUT/<name>.h5 with the cellrig layout, units and signs (discharge
    negative, A, Ah, cycles from 1) and the source's name and sha256 in /meta.  A file that
    cannot be read is reported with its line; nothing half-written is left behind.
    """
    if cell and len(files) > 1:
        raise click.BadParameter("--cell names one cell: give one file with it", param_hint="--cell")
    for path in files:
        try:
            run = import_file(path, out_dir, cell=cell, chemistry=chemistry, nominal_capacity=nominal_capacity)
        except (SourceFileError, RunFileError, FileNotFoundError) as exc:
            raise click.ClickException(str(exc)) from None
        console.print(f"{path} → {run}")


@main.group()
def lab() -> None:
    """Check and list the instruments of a lab (a lab.toml file)."""


@lab.command("check")
@click.argument("lab_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--verbose", is_flag=True, help="Also print each driver's commands and how far sources confirm them.")
def lab_check(lab_file: Path, verbose: bool) -> None:
    """Open every instrument in LAB_FILE, compare it with the file and program its limits.

    Prints role, model, serial, firmware, resource and status for each; exits non-zero if
    any instrument is unreachable or is not the model the file says.
    """
    try:
        the_lab = Lab.from_file(lab_file)
    except LabFileError as exc:
        raise click.ClickException(str(exc)) from None
    with the_lab:
        rows = the_lab.check()
    table = Table(title=f"lab check: {the_lab.name}", title_justify="left")
    for header in ("role", "model", "serial", "firmware", "resource", "status"):
        table.add_column(header)
    for row in rows:
        ident = row.identity
        cells = (ident.model, ident.serial, ident.firmware) if ident else ("?", "", "")
        status = f"[green]{row.status}[/]" if row.ok else f"[red]{row.status}[/]"
        table.add_row(row.role, *cells, row.spec.resource, status)
    console.print(table)
    if verbose:
        for row in rows:
            commands = commands_of(row.spec.info.target)
            detail = Table(title=f"{row.role}: {row.spec.driver} commands", title_justify="left")
            for header in ("command", "status", "source or reason"):
                detail.add_column(header)
            for c in commands:
                detail.add_row(c.text, c.status, c.source)
            console.print(detail if commands else f"{row.role}: {row.spec.driver}: no command table yet")
    if not all(row.ok for row in rows):
        sys.exit(1)


@lab.command("list")
def lab_list() -> None:
    """List the VISA resources pyvisa (pyvisa-py backend) can see on this machine."""
    import pyvisa

    with warnings.catch_warnings():  # pyvisa-py suggests zeroconf for HiSLIP discovery; not needed here
        warnings.simplefilter("ignore")
        resources = pyvisa.ResourceManager(VISA_LIBRARY).list_resources()
    for resource in resources:
        console.print(resource)
    if not resources:
        err.print("no VISA resources found (raw TCP socket instruments are not discoverable: name them in lab.toml)")


@main.command()
@click.option(
    "--speed",
    type=click.FloatRange(min=1),
    default=DEFAULT_SPEED,
    show_default=True,
    help="How much faster than real time the virtual lab's clock runs.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the cells' cell-to-cell variation.")
@click.option("--dt", type=click.FloatRange(min=0.1), default=1.0, show_default=True, help="World time step (s).")
@click.option(
    "--ageing",
    type=click.FloatRange(min=1),
    default=1.0,
    show_default=True,
    help="Cells age this many times faster than rated (reach end of life in a short campaign).",
)
@click.option(
    "--specimen",
    type=click.Choice(["nmc811", "lfp", "sulfide"]),
    default="nmc811",
    show_default=True,
    help="Chemistry of the rig's and the SMU's cell.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65000),
    default=0,
    show_default=True,
    help="Serve the roles on PORT, PORT+1 … in order (0: free ports), e.g. for examples/lab-virtual.toml.",
)
@click.option(
    "--write-lab",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a lab.toml pointing at the served instruments (for `cellrig lab check` …).",
)
@click.option(
    "--with-parent",
    is_flag=True,
    help="Stop when the process that started this one ends, however it ends (kill -9 included).",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="ROLE:KIND[:COUNT[:COMMAND]]",
    help=f"Inject a fault: KIND is {', '.join(FAULT_KINDS)}, on the next COUNT "
    "(default 1) commands starting with COMMAND (default any); nan: the replies' numbers read NAN (a logger's "
    "readings its overload value); stall (loggers only): the scan's readings are lost until then. Repeatable.",
)
def sim(
    speed: float,
    seed: int,
    dt: float,
    ageing: float,
    specimen: str,
    port: int,
    write_lab: Path | None,
    with_parent: bool,
    faults: tuple[str, ...],
) -> None:
    """Serve the virtual lab in the foreground until Ctrl-C (or SIGTERM).

    Every simulated instrument listens on its own localhost port and speaks its real
    command set; the table shows each role's VISA resource.  A control line on one more
    port (after the roles' with --port; in the lab file as [virtual] control = "HOST:PORT")
    takes faults while the lab runs, one line each, answered OK or ERR <reason>:
    FAULT ROLE KIND [COUNT [COMMAND]], as --fault; it is the virtual lab's test facility,
    no instrument's command.
    """
    planned: dict[str, list[Fault]] = {}
    for text in faults:
        parts = text.split(":", 3)
        role, kind, count, match = parts + ["", "1", ""][len(parts) - 1 :]
        if kind not in FAULT_KINDS or not count.isdigit():
            kinds = ", ".join(FAULT_KINDS)
            raise click.BadParameter(f"{text!r}: expected ROLE:KIND[:COUNT[:COMMAND]], KIND one of {kinds}")
        planned.setdefault(role, []).append(Fault(kind, int(count), match))
    try:
        virtual = VirtualLab(speed=speed, seed=seed, faults=planned, dt=dt, ageing=ageing, specimen=specimen)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fault") from None
    try:
        virtual.start(port)
    except OSError as exc:
        raise click.ClickException(f"cannot serve the virtual lab on port {port}: {exc}") from None
    with virtual:
        table = Table(title=f"virtual lab, clock ×{speed:g}", title_justify="left")
        for header in ("role", "driver", "VISA resource"):
            table.add_column(header)
        for name, resource in virtual.resources().items():
            table.add_row(name, virtual.roles[name].driver, resource)
        console.print(table)
        console.print(f"control: {virtual.control_address} (FAULT ROLE KIND [COUNT [COMMAND]])", highlight=False)
        if write_lab:
            console.print(f"lab file: {virtual.write_lab(write_lab)}")
        console.print("serving; Ctrl-C to stop", highlight=False)
        done = threading.Event()
        if with_parent:
            orphaned(done.set)
        with signals_ask_to_stop(StopRequest(done)):
            done.wait()
        err.print("stopped")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


from . import cli_runs  # noqa: E402,F401  (registers run, campaign, resume, pause … on main)
