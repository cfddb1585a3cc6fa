"""The ``notify`` commands: check that a lab's alerts reach the people they are for."""

import getpass
import socket
import sys
from pathlib import Path

import click

from ..lab import Lab, LabFileError
from ..notify import KINDS, Message, deliver
from ._common import console


@click.group()
def notify() -> None:
    """Alerts of a lab file's [notify] section: trips, failures, ends, a nearly full disk."""


@notify.command("test")
@click.argument("lab_file", metavar="LAB", type=click.Path(dir_okay=False, path_type=Path))
def notify_test(lab_file: Path) -> None:
    """Send a test message to every route of LAB's [notify] section, now, and say what arrived.

    Exits non-zero if any route could not be reached (after the retries a run's alerts get).
    """
    try:
        the_lab = Lab.from_file(lab_file)
    except LabFileError as exc:
        raise click.ClickException(str(exc)) from None
    routes = the_lab.notify.routes
    if not routes:
        raise click.ClickException(f"{lab_file}: no [[notify.to]] routes (see: python -m pydoc cellrig.notify)")
    body = f"A test of the alerts of lab {the_lab.name}, sent by {getpass.getuser()} on {socket.gethostname()}."
    failed = 0
    for route in routes:
        why = deliver(route, Message("test", f"cellrig test alert ({the_lab.name})", body))
        kinds = ", ".join(k for k in KINDS if k in route.kinds)
        if why is None:
            console.print(f"[green]delivered[/] {route.shown} (told of: {kinds})")
        else:
            failed += 1
            console.print(f"[red]FAILED[/] {route.shown}: {why}")
    if failed:
        sys.exit(1)
