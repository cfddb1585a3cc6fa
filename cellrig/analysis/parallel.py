"""Campaign analysis with dask: one task per run file, on the local scheduler or a dask.distributed cluster.

Each task opens one run, computes its cycle summary and life metrics and returns them, so no
process ever holds more than the runs it is working on.  The same call runs on the local
scheduler (``"threads"`` by default, ``"processes"``, ``"synchronous"``), on a
``dask.distributed.Client`` or on a scheduler address (``"tcp://host:8786"``) unchanged; the
workers must be able to read the run files under the same paths.
"""

import os
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr
from dask.callbacks import Callback
from dask.utils import key_split

from ..storage import CATALOG_COLUMNS, Campaign, RunFileError, run_file
from .characterisation import specific_energy
from .cycles import SUMMARY_COLUMNS, cycle_summary
from .life import LifeMetrics, life_metrics
from .steps import DEFAULT_DETECTION, StepDetection

LOCAL_SCHEDULERS = ("threads", "processes", "synchronous", "sync", "single-threaded")
CAMPAIGN_PATTERN = "**/*.h5"  # open_campaign's default
CYCLER = "cycler"  # the stream a run's cycles come from
TASKS_PER_THREAD = 4  # on a cluster: batches small enough to balance, few enough to cost little
CONNECT_TIMEOUT = 10  # s to reach a dask.distributed scheduler
LIFE_COLUMNS = [f.name for f in fields(LifeMetrics)] + ["specific_energy"]  # every life row's, even with no row

Progress = Callable[[int], None]  # called with the number of runs analysed so far


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
    progress: Progress | None = None,
    **life_options: Any,
) -> CampaignAnalysis:
    """Analyse every run of a campaign (a :class:`Campaign`, a folder or run file paths), one dask task per run.

    ``scheduler`` is a local dask scheduler name, a ``dask.distributed.Client`` or a scheduler
    address; ``num_workers`` sizes the local pools.  ``batch`` runs go to each task: by default one
    on the local schedulers and, on a cluster, enough for about ``TASKS_PER_THREAD`` tasks per
    worker thread (each distributed task costs milliseconds of scheduler and client time, taken
    from the workers on a small machine).  ``progress(runs_done)`` is called as tasks finish; on a
    cluster each result is fetched as soon as its task ends, while the others still run.
    ``life_options`` go to :func:`cellrig.analysis.life.life_metrics` (threshold, reference,
    consecutive, ...).  For a folder, each task also reads its run's catalog row (as
    :func:`open_campaign` would, files that are no runs left out), so cataloguing runs on the
    workers too instead of before them.
    """
    folder = _is_folder(runs)
    catalog = runs.catalog if isinstance(runs, Campaign) else None
    if folder:
        paths = [str(p) for p in sorted(Path(runs).glob(CAMPAIGN_PATTERN))]
    else:
        paths = [str(p) for p in (runs.paths if isinstance(runs, Campaign) else runs)]
    options = {"detection": detection, "life_options": life_options, "catalog": folder}
    with ExitStack() as stack:
        scheduler = _connect("threads" if scheduler is None else scheduler, stack)
        size = batch or _batch_size(scheduler, len(paths))
        groups = [paths[i : i + size] for i in range(0, len(paths), size)]
        counter = _RunsDone(progress)
        if isinstance(scheduler, str):
            pools = {"num_workers": num_workers} if num_workers else {}
            tasks = [dask.delayed(analyse_runs, pure=True)(g, **options) for g in groups]
            with counter:
                results = dask.compute(*tasks, scheduler=scheduler, **pools)
        else:
            results = _gather(scheduler, scheduler.map(analyse_runs, groups, pure=True, **options), counter.add)
    results = [r for group in results for r in group if r.skipped is None]
    if folder:
        catalog = _catalog([r.entry for r in results])
    return _collect(results, catalog)


def analyse_runs(
    paths: list[str], detection: StepDetection, life_options: dict | None, catalog: bool
) -> list[RunResult]:
    """:func:`analyse_run` of each path in turn (one task for a batch of runs)."""
    return [analyse_run(p, detection, life_options, catalog) for p in paths]


class _RunsDone(Callback):
    """Counts the runs analysed as tasks finish, calling ``progress(runs_done)``; a local-scheduler callback too."""

    def __init__(self, progress: Progress | None) -> None:
        super().__init__()
        self.progress, self.done = progress, 0

    def add(self, group: list[RunResult]) -> None:
        """Count a finished task's runs (files that are no runs do not count)."""
        if (runs := sum(r.skipped is None for r in group)) and self.progress:
            self.done += runs
            self.progress(self.done)

    def _posttask(self, key, result, dsk, state, worker_id) -> None:
        if key_split(key) == analyse_runs.__name__:
            self.add(result)


def _gather(client: Any, futures: list[Any], done: Callable[[Any], None]) -> list[Any]:
    """The futures' results in their order, each fetched as soon as it is ready and passed to ``done``."""
    from distributed import as_completed

    position = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    for future, result in as_completed(futures, loop=client.loop, with_results=True):
        results[position[future.key]] = result
        done(result)
    return results


def _batch_size(scheduler: Any, runs: int) -> int:
    """Runs per task: one locally; on a cluster about ``TASKS_PER_THREAD`` tasks per worker thread."""
    if isinstance(scheduler, str):
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


def _connect(scheduler: Any, stack: ExitStack) -> Any:
    """A local scheduler's name or a Client: an address is connected to for this call only."""
    if not isinstance(scheduler, str) or scheduler in LOCAL_SCHEDULERS:
        return scheduler
    from distributed import Client

    return stack.enter_context(Client(scheduler, set_as_default=False, timeout=CONNECT_TIMEOUT))


def _collect(results: Iterable[RunResult], catalog: pd.DataFrame | None) -> CampaignAnalysis:
    results = list(results)
    done = [r for r in results if r.error is None and r.other is None]
    if done:
        cycles = pd.concat([r.summary for r in done], ignore_index=True)
        lengths = [len(r.summary) for r in done]
        for i, name in enumerate(("run_id", "cell_id")):  # repeat each run's label, then convert: not every row
            cycles.insert(i, name, pd.Index([r.summary.attrs[name] for r in done]).repeat(lengths).array)
    else:
        cycles = pd.DataFrame(columns=["run_id", "cell_id", *SUMMARY_COLUMNS])  # e.g. a folder of abuse tests
    life = pd.DataFrame([r.life for r in done], index=pd.Index([r.path for r in done], name="path"))
    life = life.reindex(columns=[*life.columns, *(c for c in LIFE_COLUMNS if c not in life.columns)])
    if catalog is not None:
        life = catalog.set_index("path").join(life, how="inner")
    errors = pd.DataFrame([(r.path, r.error) for r in results if r.error is not None], columns=["path", "error"])
    others = pd.DataFrame([(r.path, r.other) for r in results if r.other is not None], columns=["path", "why"])
    return CampaignAnalysis(cycles, life, errors, others)
