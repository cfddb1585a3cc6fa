"""What the command modules share: the consoles, the ``--out`` option, progress bars, analysing a campaign."""

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from ..analysis.parallel import CampaignAnalysis
    from ..storage import Campaign

F = TypeVar("F", bound=Callable[..., object])
console = Console()
err = Console(stderr=True)


def runs_folder(help: str) -> Callable[[F], F]:
    """The required ``--out DIR`` option of the commands that write run files."""
    return click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help=help)


def progress() -> Progress:
    """A progress bar on stderr: description, bar, done of total, time taken."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


def analyse_folder(folder: Path, scheduler: str | None) -> tuple["Campaign", "CampaignAnalysis"]:
    """Catalog FOLDER and analyse its runs under a progress bar; clear one-line errors for bad input."""
    from ..analysis.parallel import analyse_campaign
    from ..storage import open_campaign

    try:
        campaign = open_campaign(folder)
    except NotADirectoryError as exc:
        raise click.ClickException(str(exc)) from None
    if not len(campaign):
        raise click.ClickException(f"{folder}: no run files (*.h5) in this folder")
    for path, why in campaign.skipped.items():
        err.print(f"[yellow]skipped[/]: {path}: {why}", highlight=False, soft_wrap=True)
    with progress() as bar:
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
