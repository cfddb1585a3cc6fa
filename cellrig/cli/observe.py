"""The ``observe`` command: what the operator saw during an abuse test, recorded in its run file."""

import getpass
from pathlib import Path

import click

from ..analysis.safety import OBSERVATION_EVENT, OBSERVED, observation_message
from ..storage import RunFileError, RunWriter, open_run
from ._common import console

YES_NO = click.Choice(["yes", "no"])


def _asked(what: str) -> click.Option:
    return click.option(f"--{what}", required=True, type=YES_NO, help=f"{what.capitalize()} seen: yes or no.")


@click.command()
@click.argument("run_path", metavar="RUN", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("note", required=False, default="")
@_asked("fire")
@_asked("explosion")
@_asked("rupture")
@_asked("venting")
@_asked("leakage")
def observe(run_path: Path, note: str, **seen: str) -> None:
    """Record what was seen during the test in RUN (an ended run), with an optional NOTE.

    Every criterion the standards judge by observation is answered, yes or no; the report's verdict
    then follows them (without an observation it is only provisional).  Each call adds an
    'observation' event, the operator's name with it; the last one counts.

    \b
    Example:
      cellrig observe runs/nail.h5 "smoke from the vent, no flame" --fire no --explosion no \\
          --rupture no --venting yes --leakage no
    """
    run = open_run(run_path)
    if run.status == "running":
        raise click.ClickException(f"{run_path}: the run is still being written; observe it once it has ended")
    message = observation_message({k: seen[k] == "yes" for k in OBSERVED}, note, getpass.getuser())
    try:
        RunWriter.annotate(run_path, OBSERVATION_EVENT, message)
    except RunFileError as exc:
        raise click.ClickException(str(exc)) from None
    said = ", ".join(f"{k} {seen[k]}" for k in OBSERVED)
    console.print(f"{run_path}: observation recorded ({said})", highlight=False)
