"""The ``lab`` commands: check a lab file's instruments, list the VISA resources."""

import datetime as dt
import sys
import warnings
from pathlib import Path

import click
from rich.table import Table

from ..calibration import Calibration
from ..instruments.commands import commands_of
from ..instruments.registry import VISA_LIBRARY
from ..lab import Lab, LabFileError
from ._common import console, err


@click.group()
def lab() -> None:
    """Check and list the instruments of a lab (a lab.toml file)."""


@lab.command("check")
@click.argument("lab_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--verbose", is_flag=True, help="Also print each driver's commands and how far sources confirm them.")
def lab_check(lab_file: Path, verbose: bool) -> None:
    """Open every instrument in LAB_FILE, compare it with the file and program its limits.

    Prints role, model, serial, firmware, resource, calibration (expired in red, due within 30
    days in yellow) and status for each; exits non-zero if any instrument is unreachable or is
    not the model the file says.
    """
    try:
        the_lab = Lab.from_file(lab_file)
    except LabFileError as exc:
        raise click.ClickException(str(exc)) from None
    with the_lab:
        rows = the_lab.check()
    table = Table(title=f"lab check: {the_lab.name}", title_justify="left")
    for header in ("role", "model", "serial", "firmware", "resource", "calibration", "status"):
        table.add_column(header)
    today = dt.date.today()
    for row in rows:
        ident = row.identity
        cells = (ident.model, ident.serial, ident.firmware) if ident else ("?", "", "")
        status = f"[green]{row.status}[/]" if row.ok else f"[red]{row.status}[/]"
        table.add_row(row.role, *cells, row.spec.resource, _calibration(row.spec.calibration, today), status)
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


def _calibration(calibration: Calibration, today: dt.date) -> str:
    """Each certificate on record, coloured by its state (expired red, due soon yellow)."""
    said = []
    for what, cert in calibration.certificates().items():
        colour = {"expired": "red", "due soon": "yellow"}.get(cert.state(today), "green")
        said.append(f"[{colour}]{'' if what == 'instrument' else what + ': '}{cert.says(today)}[/]")
    return "\n".join(said) or "none on record"


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
