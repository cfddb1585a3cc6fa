"""Analysis benchmark: cellrig's cycle summary and campaign analysis on a Severson-scale synthetic campaign.

What it measures
    A synthetic campaign (``cellrig.analysis.synthetic.severson_like``: 64 cells × 1,000 cycles ×
    1,000 rows, cycle lives spread over 150–2,300 as in Severson et al. 2019) is written as run
    files under a temporary folder (2 processes; the time is reported, not compared).  Then:

    summary rate    on the first 8 runs: the per-cycle summary by cellrig (steps + 31 summary
                    columns) against a pandas ``groupby`` implementation of the same columns
                    with the same definitions (below, checked equal to 1e-9), both from
                    already-loaded columns ("kernel": timing T1) and from the file
                    ("file": cellrig's ``cycle_summary(path)`` against cellrig's public reader
                    ``read_stream(path)`` (h5py straight into fresh numpy arrays) +
                    ``pd.DataFrame`` + the pandas summary: timing T2).  Both run in one
                    thread.
    campaign        ``analyse_campaign`` of the folder (catalog row, summary and life metrics of
                    every run) in one process of its own (dask's synchronous scheduler, a task
                    per run) against a ``dask.distributed.LocalCluster`` of 2 worker processes
                    × 1 thread with dask's default settings (its default batches: about 4 tasks
                    per worker thread).  Beside them, what the machine itself gives a second
                    process: the same runs, one per task, in a plain 2-process pool (no dask: what
                    is left is the runs' own scaling, their HDF5 reads and memory traffic
                    shared), and a pure-arithmetic loop (no memory traffic, nothing shared) in
                    one process against a pool of two; on this VM even that loop's gain swings
                    between about 1.5× and 2× from one second to the next.
    rounds          every measurement of a group runs once per round, in turn, 7 rounds (in a
                    quick run 1, and 2 for the campaign), and the best round counts (the median is
                    printed beside it): fresh processes' start-up and compilation are not
                    counted, and a slow spell of the machine falls on every measurement alike.
    peak memory     resident memory of this process plus all its child processes (cluster
                    workers included), sampled every 50 ms over the whole benchmark, against
                    the campaign's size on disk: analysis never loads the whole campaign.

It prints one table, the ratios, and a PASS/FAIL line per target (it reports; it never fails):
the cycle summary ≥ 10× the pandas groupby's rate on the same loaded data (T1), 2 workers ≥ 1.6×
one process, peak memory < 4 GB.  The from-file ratio (T2) is printed beside the first: there
both sides also pay the same HDF5 read (on this 2-core machine about 6.9 ms of cellrig's 16 ms
per million rows, the page-cache copy), which no summary code can speed up.  Run from the
repository root::

    python bench/analysis.py            # about 1.5 minutes on 2 cores, 2.6 GB of temporary files
    python bench/analysis.py --quick    # a few seconds, smoke test
"""

import argparse
import contextlib
import functools
import multiprocessing
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import psutil
from distributed import Client, LocalCluster

from cellrig import open_run
from cellrig.analysis import cycle_summary
from cellrig.analysis.cycles import summarise
from cellrig.analysis.parallel import analyse_campaign, analyse_runs
from cellrig.analysis.steps import DEFAULT_DETECTION, find_steps, read_stream
from cellrig.analysis.synthetic import severson_like, write_campaign

FULL = {"cells": 64, "cycles": 1000, "samples": 1000, "summary_runs": 8, "repeat": 7}
QUICK = {"cells": 4, "cycles": 100, "samples": 1000, "summary_runs": 2, "repeat": 1}
TARGETS = {"summary": 10.0, "workers": 1.6, "memory_gb": 4.0}
NOMINAL = 5.0  # Ah: the synthetic cells' nominal capacity (it sets the rest threshold)
IDEAL_LOOP, IDEAL_TASKS = 1_000_000, 8  # the ideal loop: 8 calls of a million iterations, about 0.5 s on one core


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores)."""
    t = psutil.cpu_times()
    return t.user + t.system + getattr(t, "nice", 0.0) + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)


def _tree_seconds(processes: Sequence[psutil.Process]) -> dict[int, float]:
    """CPU seconds (user + system) each of ``processes`` has used so far."""
    out = {}
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            out[proc.pid] = t.user + t.system
    return out


class PeakMemory:
    """Samples the resident memory of this process and its descendants in a thread; keeps the peak.

    Listing descendants scans all of /proc, so the list is refreshed only every ``refresh`` samples;
    each refresh also records how busy *other* processes kept the CPU since the last (``foreign``:
    % of one core, the machine's busy time minus this benchmark's), since on a shared machine they
    skew every ratio, most of all the 2-worker one.
    """

    def __init__(self, period: float = 0.05, refresh: int = 20) -> None:
        self.period, self.refresh, self.peak = period, refresh, 0
        self.foreign: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me, children, sample, last = psutil.Process(), [], 0, None
        while not self._stop.wait(self.period):
            if sample % self.refresh == 0:
                children = me.children(recursive=True)
                now = (time.perf_counter(), _busy_seconds(), _tree_seconds([me, *children]))
                if last is not None:  # others' CPU = the machine's busy time − this benchmark's
                    ours = sum(t - last[2].get(pid, 0.0) for pid, t in now[2].items())
                    self.foreign.append(max(0.0, 100.0 * (now[1] - last[1] - ours) / (now[0] - last[0])))
                last = now
            sample += 1
            total = me.memory_info().rss
            for child in children:
                with contextlib.suppress(psutil.NoSuchProcess):  # a worker may have exited since
                    total += child.memory_info().rss
            self.peak = max(self.peak, total)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def rounds(repeat: int, measurements: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Seconds of each measurement (each returns its own), taken in turn ``repeat`` times (A B C A B C ...).

    Interleaved, so a slow spell of the machine (its single-core speed swings by ±30 % over
    seconds here) falls on every measurement alike rather than on whichever ran during it.
    """
    times: dict[str, list[float]] = {name: [] for name in measurements}
    for _ in range(repeat):
        for name, seconds in measurements.items():
            times[name].append(seconds())
    return times


# -- the pandas baseline: the same columns with the same definitions, written with groupby -------------


def pandas_summary(df: pd.DataFrame, nominal_capacity: float = NOMINAL) -> pd.DataFrame:
    """cellrig's summary columns by pandas groupby (rest/CC/CV/pulse rules of cellrig.analysis.steps)."""
    d = DEFAULT_DETECTION
    dt = df["time"].diff().fillna(0.0)
    threshold = d.rest_current * nominal_capacity
    direction = np.sign(df["current"].where(df["current"].abs() > threshold, 0.0)).astype(int)
    # a row below the threshold continues a CV hold: same sign, cycle and step as the last active row, voltage held
    last = pd.Series(np.where(direction != 0, np.arange(len(df)), np.nan)).ffill()
    quiet = (direction == 0) & (df["current"] != 0) & last.notna()
    at = last[quiet].astype(int).to_numpy()
    rows = df[quiet]
    held = (
        (np.sign(rows["current"]).to_numpy() == direction.to_numpy()[at])
        & (rows["cycle"].to_numpy() == df["cycle"].to_numpy()[at])
        & (rows["step"].to_numpy() == df["step"].to_numpy()[at])
        & (np.abs(rows["voltage"].to_numpy() - df["voltage"].to_numpy()[at]) <= d.cv_voltage_tolerance)
    )
    direction[rows.index[held]] = direction.to_numpy()[at[held]]
    df = df.assign(dt=dt, direction=direction, abs_i=df["current"].abs(), idt=df["current"] * dt)
    df["ivdt"], df["vdt"] = df["idt"] * df["voltage"], df["voltage"] * dt
    phase_key = df[["cycle", "step", "direction"]]
    phase = phase_key.ne(phase_key.shift()).any(axis=1).cumsum()
    by_phase = df.groupby(phase)
    extreme = by_phase["voltage"].transform("max").where(df["direction"] > 0, by_phase["voltage"].transform("min"))
    df["cv"] = (
        ((df["voltage"] - extreme).abs() <= d.cv_voltage_tolerance)
        & (df["abs_i"] < (1 - d.cc_tolerance) * by_phase["abs_i"].transform("max"))
        & (df["direction"] != 0)
    )
    step_id = (phase.ne(phase.shift()) | df["cv"].ne(df["cv"].shift())).cumsum()
    df["row"] = np.arange(len(df))
    steps = df.groupby(step_id).agg(
        cycle=("cycle", "first"),
        direction=("direction", "first"),
        cv=("cv", "first"),
        first_row=("row", "first"),
        end_time=("time", "last"),
        q=("idt", "sum"),
        e=("ivdt", "sum"),
        v_end=("voltage", "last"),
        i_end=("current", "last"),
        v_max=("voltage", "max"),
        v_min=("voltage", "min"),
    )
    before = (steps["first_row"] - 1).clip(lower=0)
    steps["start_time"] = df["time"].to_numpy()[before]
    steps["duration"] = steps["end_time"] - steps["start_time"]
    steps["q"], steps["e"] = steps["q"].abs() / 3600, steps["e"].abs() / 3600
    previous_rest = (df["direction"].to_numpy()[before] == 0) & (steps["first_row"] > 0)
    steps["pulse"] = (steps["direction"] != 0) & ~steps["cv"] & (steps["duration"] <= d.pulse_max_duration)
    steps["pulse"] &= previous_rest
    dv = steps["v_end"] - df["voltage"].to_numpy()[before]
    steps["r"] = (dv / (steps["i_end"] - df["current"].to_numpy()[before])).abs().where(steps["pulse"])
    charge, discharge = steps["direction"] > 0, steps["direction"] < 0
    cc, cv = charge & ~steps["cv"] & ~steps["pulse"], charge & steps["cv"]
    steps = steps.assign(
        qc=steps["q"].where(charge, 0.0),
        qd=steps["q"].where(discharge, 0.0),
        ec=steps["e"].where(charge, 0.0),
        ed=steps["e"].where(discharge, 0.0),
        q_cc=steps["q"].where(cc, 0.0),
        q_cv=steps["q"].where(cv, 0.0),
        t_cc=steps["duration"].where(cc, 0.0),
        t_cv=steps["duration"].where(cv, 0.0),
        v_end_charge=steps["v_end"].where(charge & ~steps["pulse"]),
        v_end_discharge=steps["v_end"].where(discharge & ~steps["pulse"]),
    )
    per_cycle = steps.groupby("cycle").agg(
        start_time=("start_time", "first"),
        end_time=("end_time", "last"),
        charge_capacity=("qc", "sum"),
        discharge_capacity=("qd", "sum"),
        charge_energy=("ec", "sum"),
        discharge_energy=("ed", "sum"),
        cc_charge_capacity=("q_cc", "sum"),
        cv_charge_capacity=("q_cv", "sum"),
        cc_charge_time=("t_cc", "sum"),
        cv_charge_time=("t_cv", "sum"),
        end_charge_voltage=("v_end_charge", "last"),
        end_discharge_voltage=("v_end_discharge", "last"),
        max_voltage=("v_max", "max"),
        min_voltage=("v_min", "min"),
        dc_internal_resistance=("r", "last"),
    )
    per_cycle["coulombic_efficiency"] = per_cycle["discharge_capacity"] / per_cycle["charge_capacity"]
    per_cycle["energy_efficiency"] = per_cycle["discharge_energy"] / per_cycle["charge_energy"]
    temperature = df.groupby("cycle")["temperature"].agg(["min", "mean", "max"])
    per_cycle[["temperature_min", "temperature_mean", "temperature_max"]] = temperature.to_numpy()
    per_cycle["charge_throughput"] = (per_cycle["charge_capacity"] + per_cycle["discharge_capacity"]).cumsum()
    return per_cycle.reset_index()


def pandas_from_file(path: Path) -> pd.DataFrame:
    """cellrig's public reader (h5py straight into fresh numpy arrays), then a DataFrame and the pandas summary."""
    return pandas_summary(pd.DataFrame(read_stream(path)))


def check_equal(cellrig: pd.DataFrame, pandas: pd.DataFrame) -> int:
    """Compare every column both have; return how many were compared (raises if one differs)."""
    common = [c for c in pandas.columns if c in cellrig.columns and c != "end_time"]
    for c in common:
        np.testing.assert_allclose(cellrig[c], pandas[c], rtol=1e-9, atol=1e-12, err_msg=c)
    return len(common)


# -- the measurements --------------------------------------------------------------------------------


def summary_rates(paths: Sequence[Path], repeat: int) -> dict[str, list[float]]:
    """Rows/s of each round, cellrig and pandas, kernel-only and from the file, over the given runs."""
    rows = sum(open_run(p).rows("cycler") for p in paths)
    loaded = [read_stream(p) for p in paths]
    frames = [pd.DataFrame(c) for c in loaded]
    compared = {check_equal(cycle_summary(p), pandas_summary(f)) for p, f in zip(paths, frames, strict=True)}

    def kernel() -> list[pd.DataFrame]:
        return [summarise(find_steps(c, nominal_capacity=NOMINAL), c, NOMINAL) for c in loaded]

    times = rounds(
        repeat,
        {
            "cellrig kernel": lambda: timed(kernel),
            "pandas kernel": lambda: timed(lambda: [pandas_summary(f) for f in frames]),
            "cellrig file": lambda: timed(lambda: [cycle_summary(p) for p in paths]),
            "pandas file": lambda: timed(lambda: [pandas_from_file(p) for p in paths]),
        },
    )
    print(f"summary: {len(paths)} runs, {rows:,} rows; pandas and cellrig agree on {compared.pop()} columns (1e-9)")
    return {name: [rows / t for t in ts] for name, ts in times.items()}


def ideal_loop(n: int = IDEAL_LOOP) -> int:
    """Pure arithmetic on one integer, no memory traffic: the most any work can gain from a second core."""
    total = 0
    for i in range(n):
        total += i * i
    return total


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    """Wall seconds of one call, measured where it runs (in a pool's process: without the round trip)."""
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def ideal_loops() -> None:
    """The ideal loop ``IDEAL_TASKS`` times in turn."""
    for _ in range(IDEAL_TASKS):
        ideal_loop()


def campaign_rates(folder: Path, rows: int, repeat: int) -> dict[str, list[float]]:
    """Rows/s of each round of analyse_campaign in one process and on 2 workers; the ideal loop's iterations/s."""
    spawn = multiprocessing.get_context("spawn")  # fresh processes, as dask's workers are
    with ProcessPoolExecutor(1, mp_context=spawn) as alone, ProcessPoolExecutor(2, mp_context=spawn) as pair:
        list(pair.map(ideal_loop, [1, 1]))  # start the pools' processes before the cluster's threads
        alone.submit(timed, analyse_campaign, folder, scheduler="synchronous").result()  # and compile the kernel
        with (
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
            Client(cluster) as client,
        ):
            two, loops = analyse_campaign(folder, scheduler=client), [IDEAL_LOOP] * IDEAL_TASKS
            runs = [[str(p)] for p in sorted(folder.glob("**/*.h5"))]  # a run per task: a pool's best balance
            analyse = functools.partial(analyse_runs, detection=DEFAULT_DETECTION, life_options=None, catalog=True)
            times = rounds(
                repeat,
                {
                    "campaign 1 process": lambda: alone.submit(
                        timed, analyse_campaign, folder, scheduler="synchronous"
                    ).result(),
                    "campaign 2 workers": lambda: timed(analyse_campaign, folder, scheduler=client),
                    "  same runs, process pool": lambda: timed(lambda: list(pair.map(analyse, runs))),
                    "ideal loop 1 process": lambda: alone.submit(timed, ideal_loops).result(),
                    "ideal loop 2 processes": lambda: timed(lambda: list(pair.map(ideal_loop, loops))),
                },
            )
    one = analyse_campaign(folder, scheduler="synchronous")
    pd.testing.assert_frame_equal(one.cycles, two.cycles)
    assert one.errors.empty and two.errors.empty
    censored = int(one.life["censored"].sum())
    print(f"campaign: {len(one.life)} runs analysed ({censored} censored), {len(one.cycles):,} cycle rows")
    iterations = IDEAL_LOOP * IDEAL_TASKS  # the ideal loop's rate is in iterations/s
    return {name: [(iterations if name.startswith("ideal") else rows) / t for t in ts] for name, ts in times.items()}


def verdict(rates: dict[str, list[float]], peak: int, disk: int, foreign: Sequence[float]) -> None:
    best = {name: max(r) for name, r in rates.items()}
    summary = best["cellrig kernel"] / best["pandas kernel"], best["cellrig file"] / best["pandas file"]
    workers = best["campaign 2 workers"] / best["campaign 1 process"]
    pool = best["  same runs, process pool"] / best["campaign 1 process"]
    ideal = best["ideal loop 2 processes"] / best["ideal loop 1 process"]
    gb = peak / 1e9

    def line(ok: bool, text: str) -> None:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")

    if foreign:
        print(
            f"\nother processes used {np.mean(foreign):.0f} % of a core on average (max {max(foreign):.0f} %) "
            "while this ran; the ratios assume they used none"
        )
    print()
    line(
        summary[0] >= TARGETS["summary"],
        f"cycle summary ≥ {TARGETS['summary']:g}× pandas groupby on the same data: {summary[0]:.1f}× "
        f"({summary[1]:.1f}× with the HDF5 read both share)",
    )
    target = TARGETS["workers"]
    line(
        workers >= target,
        f"2 dask workers ≥ {target:g}× one process: {workers:.2f}× (in the same rounds: the same runs in a "
        f"2-process pool {pool:.2f}×, the ideal loop {ideal:.2f}×)",
    )
    line(
        gb < TARGETS["memory_gb"],
        f"peak memory < {TARGETS['memory_gb']:g} GB: {gb:.2f} GB (campaign on disk {disk / 1e9:.2f} GB)",
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="4 cells × 100 cycles, 1 repetition (smoke test)")
    parser.add_argument("--dir", default="/tmp", help="where the temporary run files go (default /tmp: local disk)")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    print(
        f"pandas {pd.__version__}, numpy {np.__version__}, dask {dask.__version__}; "
        f"{psutil.cpu_count()} cores; best of {size['repeat']} interleaved rounds"
    )
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp, PeakMemory() as memory:
        folder = Path(tmp) / "campaign"
        cells = severson_like(size["cells"], cycles=size["cycles"], samples=size["samples"])
        start = time.perf_counter()
        paths = write_campaign(folder, cells, workers=2)
        rows = sum(open_run(p).rows("cycler") for p in paths)
        disk = sum(p.stat().st_size for p in paths)
        took = time.perf_counter() - start
        print(
            f"wrote {len(paths)} runs, {rows:,} rows, {disk / 1e9:.2f} GB in {took:.1f} s ({rows / took:,.0f} rows/s)"
        )
        rates = summary_rates(paths[: size["summary_runs"]], size["repeat"])
        rates |= campaign_rates(folder, rows, max(size["repeat"], 2))
    print(f"\n{'rows/s (ideal loop: iterations/s)':<34}{'best':>14}{'median':>14}")
    for name, rate in rates.items():
        print(f"{name:<34}{max(rate):>14,.0f}{np.median(rate):>14,.0f}")
    verdict(rates, memory.peak, disk, memory.foreign)


if __name__ == "__main__":
    main()
