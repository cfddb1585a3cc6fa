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
import numpy as np
import pandas as pd
import xarray as xr

from ..storage import RunFileError
from ..storage._campaign import CATALOG_COLUMNS, Campaign
from ._read import run_file
from .characterisation import specific_energy
from .cycles import cycle_summary
from .life import life_metrics
from .steps import DEFAULT_DETECTION, StepDetection

LOCAL_SCHEDULERS = ("threads", "processes", "synchronous", "sync", "single-threaded")
CAMPAIGN_PATTERN = "**/*.h5"  # open_campaign's default
CYCLER = "cycler"  # the stream a run's cycles come from
TASKS_PER_THREAD = 4  # on a cluster: batches small enough to balance, few enough to cost little


@dataclass(frozen=True)
class RunResult:
    """What one task returns: a run's summary and life metrics, or why it could not be analysed."""

    path: str
    summary: pd.DataFrame | None = None
    life: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    entry: dict[str, Any] | None = None  # the run's catalog row, when the task was asked for it
    skipped: str | None = None  # why the file is not a run (left out, as open_campaign does)
    other: str | None = None  # why a run has no cycles to summarise (an abuse test, say)


@dataclass
class CampaignAnalysis:
    """Every run's cycle summary (``cycles``), one row of life metrics per run (``life``) and the failures."""

    cycles: pd.DataFrame  # run_id, cell_id, then the cycle_summary columns
    life: pd.DataFrame  # indexed by path: catalog columns (if known) + LifeMetrics fields
    errors: pd.DataFrame  # path, error
    others: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["path", "why"]))  # no cycler stream

    def cycles_xarray(self) -> xr.Dataset:
        """The cycle summaries as an xarray Dataset over (run_id, cycle)."""
        return self.cycles.drop(columns="cell_id").set_index(["run_id", "cycle"]).to_xarray()


def analyse_run(
    path: str | os.PathLike,
    detection: StepDetection = DEFAULT_DETECTION,
    life_options: dict | None = None,
    catalog: bool = False,
) -> RunResult:
    """Summarise one run and compute its life metrics; an error is returned, not raised.

    With ``catalog`` the result also holds the run's catalog row, or says why the file is no run.
    """
    with ExitStack() as stack:
        try:
            f = stack.enter_context(run_file(path))
            entry = f.catalog_entry() if catalog else None
        except (RunFileError, OSError) as exc:
            return RunResult(str(path), skipped=str(exc)) if catalog else RunResult(str(path), error=_why(exc))
        if CYCLER not in f.streams:
            return RunResult(str(path), other=f"no {CYCLER} stream: not a cycling run", entry=entry)
        try:
            summary = cycle_summary(f, detection=detection)
            life = life_metrics(summary, **(life_options or {})).as_dict() if len(summary) else {}
            life["specific_energy"] = specific_energy(summary) if len(summary) else np.nan
            return RunResult(str(path), summary, life, entry=entry)
        except Exception as exc:  # one bad run must not sink the campaign: report it with its path
            return RunResult(str(path), error=_why(exc), entry=entry)


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def analyse_campaign(
    runs: Campaign | str | os.PathLike | Iterable[str | os.PathLike],
    *,
    scheduler: Any = "threads",
    num_workers: int | None = None,
    detection: StepDetection = DEFAULT_DETECTION,
    batch: int | None = None,
    **life_options: Any,
) -> CampaignAnalysis:
    """Analyse every run of a campaign (a :class:`Campaign`, a folder or run file paths), one dask task per run.

    ``scheduler`` is a local dask scheduler name, a ``dask.distributed.Client`` or a scheduler
    address; ``num_workers`` sizes the local pools.  ``batch`` runs go to each task: by default one
    on the local schedulers and, on a cluster, enough for about ``TASKS_PER_THREAD`` tasks per
    worker thread (each distributed task costs milliseconds of scheduler and client time, taken
    from the workers on a small machine).  ``life_options`` go to
    :func:`cellrig.analysis.life.life_metrics` (threshold, reference, consecutive, ...).  For a
    folder, each task also reads its run's catalog row (as :func:`open_campaign` would, files that
    are no runs left out), so cataloguing runs on the workers too instead of before them.
    """
    folder = _is_folder(runs)
    catalog = runs.catalog if isinstance(runs, Campaign) else None
    if folder:
        paths = [str(p) for p in sorted(Path(runs).glob(CAMPAIGN_PATTERN))]
    else:
        paths = [str(p) for p in (runs.paths if isinstance(runs, Campaign) else runs)]
    with ExitStack() as stack:
        options = _compute_options(scheduler, num_workers, stack)
        size = batch or _batch_size(options["scheduler"], len(paths))
        if size == 1:
            tasks = [dask.delayed(analyse_run, pure=True)(p, detection, life_options, folder) for p in paths]
        else:
            groups = [paths[i : i + size] for i in range(0, len(paths), size)]
            tasks = [dask.delayed(analyse_runs, pure=True)(g, detection, life_options, folder) for g in groups]
        results = dask.compute(*tasks, **options)
    if size > 1:
        results = [r for group in results for r in group]
    results = [r for r in results if r.skipped is None]
    if folder:
        catalog = _catalog([r.entry for r in results])
    return _collect(results, catalog)


def analyse_runs(
    paths: list[str], detection: StepDetection, life_options: dict | None, catalog: bool
) -> list[RunResult]:
    """:func:`analyse_run` of each path in turn (one task for a batch of runs)."""
    return [analyse_run(p, detection, life_options, catalog) for p in paths]


def _batch_size(scheduler: Any, runs: int) -> int:
    """Runs per task: one locally; on a cluster about ``TASKS_PER_THREAD`` tasks per worker thread."""
    if isinstance(scheduler, str) or scheduler is None:
        return 1
    threads = sum(scheduler.nthreads().values()) or 1
    return max(1, -(-runs // (TASKS_PER_THREAD * threads)))


def _catalog(entries: list[dict[str, Any]]) -> pd.DataFrame:
    """The catalog of :func:`open_campaign` from the tasks' rows (same columns and dtypes)."""
    catalog = pd.DataFrame(entries, columns=list(CATALOG_COLUMNS))
    catalog["temperature"] = pd.to_numeric(catalog["temperature"], errors="coerce").astype(float)
    catalog["rows"] = catalog["rows"].astype("int64")
    catalog["started"] = pd.to_datetime(catalog["started"], utc=True, format="ISO8601")
    return catalog


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
    results = list(results)
    done = [r for r in results if r.error is None and r.other is None]
    frames = [r.summary.assign(run_id=r.summary.attrs["run_id"], cell_id=r.summary.attrs["cell_id"]) for r in done]
    cycles = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["run_id", "cell_id", "cycle"])
    cycles = cycles[["run_id", "cell_id", *(c for c in cycles.columns if c not in ("run_id", "cell_id"))]]
    life = pd.DataFrame([r.life for r in done], index=pd.Index([r.path for r in done], name="path"))
    if catalog is not None:
        life = catalog.set_index("path").join(life, how="inner")
    errors = pd.DataFrame([(r.path, r.error) for r in results if r.error is not None], columns=["path", "error"])
    others = pd.DataFrame([(r.path, r.other) for r in results if r.other is not None], columns=["path", "why"])
    return CampaignAnalysis(cycles, life, errors, others)
