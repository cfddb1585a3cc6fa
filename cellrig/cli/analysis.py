"""The commands that read run files: summary, analyze, report, test-report, import."""

import re
import sys
from pathlib import Path

import click
import pandas as pd
from rich.table import Table

from ..analysis import cycle_summary
from ..storage import RunFileError, open_run
from ..storage.imports import SourceFileError, import_file
from ._common import analyse_folder, console, progress, runs_folder


@click.command()
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
    from ..analysis.parallel import LOCAL_SCHEDULERS

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


@click.command()
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
    from ..analysis.report import write_tables

    campaign, analysis = analyse_folder(folder, scheduler)
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


@click.command()
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
    from ..analysis.report import SECTIONS, render_report

    _, analysis = analyse_folder(folder, scheduler)
    if analysis.life.empty and analysis.others.empty:  # a folder of abuse tests alone still has its section
        raise click.ClickException(f"{folder}: no run could be analysed")
    with progress() as bar:
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


@click.command("test-report")
@click.argument("run_file", metavar="RUN", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--out",
    "out_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The report to write: FILE.pdf or FILE.html (self-contained).",
)
def test_report(run_file: Path, out_file: Path) -> None:
    """Write the report of one abuse test in RUN to its standard: sample, clause, conditions, instruments
    with serial, firmware and calibration, traces with T1/T2/T3, observations, the verdict per criterion
    with its evidence, and the run file's sha256.  Record the operator's observation first
    (`cellrig observe`): without it the verdict is only provisional."""
    from ..analysis.abuse_report import write
    from ..sim.cell import CHEMISTRIES  # the OCV curves of the chemistries cellrig models

    if out_file.suffix.lower() not in (".pdf", ".html", ".htm"):
        raise click.BadParameter(f"{out_file}: write FILE.pdf or FILE.html", param_hint="--out")
    if open_run(run_file).meta.get("protocol", {}).get("kind") != "abuse":
        raise click.ClickException(f"{run_file}: not an abuse test (protocol kind abuse); see `cellrig report`")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        write(run_file, out_file, {name: (c.soc, c.ocv) for name, c in CHEMISTRIES.items()})
    except (ValueError, RunFileError) as exc:
        raise click.ClickException(str(exc)) from None
    console.print(f"test report: {out_file}", highlight=False, soft_wrap=True)


@click.command("import")
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
