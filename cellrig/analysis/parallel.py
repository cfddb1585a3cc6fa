"""Campaign analysis with dask: one task per run file, on the local scheduler or a dask.distributed cluster.

Each task opens one run, computes its cycle summary and life metrics and returns them, so no
process ever holds more than the runs it is working on.  The same call runs on the local
scheduler (``"threads"`` by default, ``"processes"``, ``"synchronous"``), on a
``dask.distributed.Client`` or on a scheduler address (``"tcp://host:8786"``) unchanged; the
workers must be able to read the run files under the same paths.
"""

import os
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import pandas as pd
import xarray as xr

from ..storage._campaign import Campaign, open_campaign
from .cycles import cycle_summary
from .life import life_metrics
from .steps import DEFAULT_DETECTION, StepDetection

LOCAL_SCHEDULERS = ("threads", "processes", "synchronous", "sync", "single-threaded")


@dataclass(frozen=True)
class RunResult:
    """What one task returns: a run's summary and life metrics, or why it could not be analysed."""

    path: str
    summary: pd.DataFrame | None = None
    life: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class CampaignAnalysis:
    """Every run's cycle summary (``cycles``), one row of life metrics per run (``life``) and the failures."""

    cycles: pd.DataFrame  # run_id, cell_id, then the cycle_summary columns
    life: pd.DataFrame  # indexed by path: catalog columns (if known) + LifeMetrics fields
    errors: pd.DataFrame  # path, error

    def cycles_xarray(self) -> xr.Dataset:
        """The cycle summaries as an xarray Dataset over (run_id, cycle)."""
        return self.cycles.drop(columns="cell_id").set_index(["run_id", "cycle"]).to_xarray()


def analyse_run(
    path: str | os.PathLike, detection: StepDetection = DEFAULT_DETECTION, life_options: dict | None = None
) -> RunResult:
    """Summarise one run and compute its life metrics; an error is returned, not raised."""
    try:
        summary = cycle_summary(path, detection=detection)
        life = life_metrics(summary, **(life_options or {})).as_dict() if len(summary) else {}
        return RunResult(str(path), summary, life)
    except Exception as exc:  # one bad run must not sink the campaign: report it with its path
        return RunResult(str(path), error=f"{type(exc).__name__}: {exc}")


def analyse_campaign(
    runs: Campaign | str | os.PathLike | Iterable[str | os.PathLike],
    *,
    scheduler: Any = "threads",
    num_workers: int | None = None,
    detection: StepDetection = DEFAULT_DETECTION,
    **life_options: Any,
) -> CampaignAnalysis:
    """Analyse every run of a campaign (a :class:`Campaign`, a folder or run file paths), one dask task per run.

    ``scheduler`` is a local dask scheduler name, a ``dask.distributed.Client`` or a scheduler
    address; ``num_workers`` sizes the local pools.  ``life_options`` go to
    :func:`cellrig.analysis.life.life_metrics` (threshold, reference, consecutive, ...).
    """
    campaign = runs if isinstance(runs, Campaign) else open_campaign(runs) if _is_folder(runs) else None
    paths = [str(p) for p in (campaign.paths if campaign else runs)]
    tasks = [dask.delayed(analyse_run, pure=True)(p, detection, life_options) for p in paths]
    with ExitStack() as stack:
        results = dask.compute(*tasks, **_compute_options(scheduler, num_workers, stack))
    return _collect(results, campaign.catalog if campaign else None)


def _is_folder(runs: Any) -> bool:
    return isinstance(runs, str | os.PathLike) and Path(runs).is_dir()


def _compute_options(scheduler: Any, num_workers: int | None, stack: ExitStack) -> dict[str, Any]:
    if scheduler is None or scheduler in LOCAL_SCHEDULERS:
        return {"scheduler": scheduler or "threads"} | ({"num_workers": num_workers} if num_workers else {})
    if isinstance(scheduler, str):  # an address: connect for this call only
        from distributed import Client

        scheduler = stack.enter_context(Client(scheduler, set_as_default=False))
    return {"scheduler": scheduler}


def _collect(results: Iterable[RunResult], catalog: pd.DataFrame | None) -> CampaignAnalysis:
    done = [r for r in results if r.error is None]
    frames = [r.summary.assign(run_id=r.summary.attrs["run_id"], cell_id=r.summary.attrs["cell_id"]) for r in done]
    cycles = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["run_id", "cell_id", "cycle"])
    cycles = cycles[["run_id", "cell_id", *(c for c in cycles.columns if c not in ("run_id", "cell_id"))]]
    life = pd.DataFrame([r.life for r in done], index=pd.Index([r.path for r in done], name="path"))
    if catalog is not None:
        life = catalog.set_index("path").join(life, how="inner")
    errors = pd.DataFrame([(r.path, r.error) for r in results if r.error is not None], columns=["path", "error"])
    return CampaignAnalysis(cycles, life, errors)
