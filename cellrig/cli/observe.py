"""The ``observe`` command: what the operator saw during an abuse test, recorded in its run file."""

import getpass
import time
from pathlib import Path

import click

from .. import observations
from ..protocols import control
from ..storage import RunFileError, RunWriter, open_run
from ._common import console
from .runs import answer

YES_NO = click.Choice(["yes", "no"])


def _asked(what: str) -> click.Option:
    return click.option(f"--{what}", required=True, type=YES_NO, help=f"{what.capitalize()} seen: yes or no.")


def _each_observed(fn: click.Command) -> click.Command:
    for what in reversed(observations.OBSERVED):
        fn = _asked(what)(fn)
    return fn


@click.command()
@click.argument("run_path", metavar="RUN", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("note", required=False, default="")
@_each_observed
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds to wait for a live run's engine to record it.",
)
def observe(run_path: Path, note: str, timeout: float, **seen: str) -> None:
    """Record what was seen during the test in RUN, with an optional NOTE: while it runs, or after.

    Every criterion the standards judge by observation is answered, yes or no; the verdict then
    follows them (without an observation it is only provisional).  A live run's engine records it at
    its next poll, at that lab time; an ended run gets it appended.  Each call adds an 'observation'
    event, the operator's name with it; the last one counts.

    \b
    Example:
      cellrig observe runs/nail.h5 "smoke from the vent, no flame" --fire no --explosion no \\
          --rupture no --venting yes --smoke yes --leakage no
    """
    answers = {k: seen[k] == "yes" for k in observations.OBSERVED}
    message = observations.message(answers, note, getpass.getuser())
    try:
        run = open_run(run_path)
        if run.status == "running":
            before = control.replies(run, (observations.EVENT,))
            control.send(run_path, "observe", expires=timeout, payload=message)
            if not answer(run_path, before, time.monotonic() + timeout, "observe"):
                raise click.ClickException(f"{run_path}: not recorded within {timeout:g} s (is its engine alive?)")
            return
        RunWriter.annotate(run_path, observations.EVENT, message)
    except RunFileError as exc:
        raise click.ClickException(str(exc)) from None
    console.print(f"{run_path}: observation recorded ({observations.said(answers)})", highlight=False, soft_wrap=True)
