"""Ingest benchmark: sustained append rate of cellrig's run writer against the usual alternatives.

What it measures
    Rows/s and MB/s for a 6-column float64 stream (the implicit ``time`` column plus 5 declared
    float64 columns: 48 bytes of payload per row), written with 1 s flushes by
    :class:`cellrig.storage.RunWriter` (SWMR publish + fsync at least every second) as single-row
    appends of Python floats and as batches of 100, 1,000 and 10,000 rows.  Every case starts from
    a fresh file in a temporary directory under /tmp; the timing (``time.perf_counter``) covers
    creating, filling and closing the file.  The data are pre-generated with numpy
    (``default_rng(0)``) so generation is not timed.  Each case is run 3 times; the median counts.
    Slow cases get fewer rows than fast ones (each run takes ~2-3 s): rates are what is compared.

Baselines, measured in the same run on the same data
    CSV per row     a text line of the 6 floats written and flushed per row, which is what
                    pymeasure's ``Results`` file does (``f.write(line); f.flush()``).
    SQLite          stdlib ``sqlite3``, WAL journal, ``synchronous=FULL``, one table of 6 REAL columns,
                    ``executemany`` of 1,000-row chunks each followed by a commit, as QCoDeS does.
    raw h5py        the ceiling: the writer's layout (a group of 6 resizable 1-D float64 datasets
                    chunked by 16,384 rows, ``libver="latest"``) filled by ``resize`` + slice assignment
                    per batch, without SWMR and without fsync, ``flush()`` about once per second.

It prints one table, the writer's speed-up over each baseline, and a PASS/FAIL line per acceptance
target (it reports; it never fails).  Run from the repository root::

    python bench/ingest.py            # about 1-2 minutes on 2 cores
    python bench/ingest.py --quick    # a few seconds, smoke test
"""

import argparse
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import cycle, islice
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from cellrig.storage import Column, RunWriter

COLUMNS = ("time", "a", "b", "c", "d", "e")
ROW_BYTES = 8 * len(COLUMNS)
CHUNK_ROWS = 16_384  # the writer's chunk (and buffer block) size, used for the raw h5py layout too
FLUSH_INTERVAL = 1.0
SQLITE_COMMIT_ROWS = 1_000
POOL_ROWS = 1 << 20  # distinct rows generated; longer cases cycle through them
QUICK_DIVISOR = 50

WRITER = "cellrig RunWriter"
RAW_H5PY = "raw h5py, no SWMR"
CSV = "CSV line+flush per row"
SQLITE = "SQLite WAL, commit/1000"

Chunk = tuple[Any, ...]  # one row of Python floats, or one batch of equal-length column arrays
WriteFn = Callable[[Path, Sequence[Chunk]], None]


# -- the contenders: each creates `path`, writes every chunk and closes the file ------------------


def write_cellrig(path: Path, chunks: Sequence[Chunk]) -> None:
    streams = {"data": {"a": Column("V"), "b": Column("V"), "c": Column("A"), "d": Column("degC"), "e": Column("s")}}
    writer = RunWriter.create(path, streams, meta={"bench": "ingest"}, flush_interval=FLUSH_INTERVAL, fsync=True)
    append = writer.append
    for t, a, b, c, d, e in chunks:
        append("data", time=t, a=a, b=b, c=c, d=d, e=e)
    writer.close("finished")


def write_raw_h5py(path: Path, chunks: Sequence[Chunk]) -> None:
    with h5py.File(path, "x", libver="latest") as f:
        group = f.create_group("data")
        datasets = [group.create_dataset(c, (0,), "f8", maxshape=(None,), chunks=(CHUNK_ROWS,)) for c in COLUMNS]
        rows = 0
        last_flush = time.perf_counter()
        for chunk in chunks:
            n = len(chunk[0])
            for ds, values in zip(datasets, chunk, strict=True):
                ds.resize((rows + n,))
                ds[rows : rows + n] = values
            rows += n
            if time.perf_counter() - last_flush >= FLUSH_INTERVAL:
                f.flush()
                last_flush = time.perf_counter()


def write_csv(path: Path, chunks: Sequence[Chunk]) -> None:
    with open(path, "w") as f:
        f.write(",".join(COLUMNS) + "\n")
        for row in chunks:
            f.write(",".join(map(str, row)) + "\n")
            f.flush()


def write_sqlite(path: Path, chunks: Sequence[Chunk]) -> None:
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.execute(f"CREATE TABLE data ({', '.join(f'{c} REAL' for c in COLUMNS)})")
        insert = f"INSERT INTO data VALUES ({', '.join('?' * len(COLUMNS))})"
        for start in range(0, len(chunks), SQLITE_COMMIT_ROWS):
            con.executemany(insert, chunks[start : start + SQLITE_COMMIT_ROWS])
            con.commit()
    finally:
        con.close()


# -- cases, data and timing ----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    method: str
    batch: int  # rows per call; 1 means one row of Python floats per call
    rows: int
    write: WriteFn
    columnar: bool = True  # input as batches of column arrays, else as rows (tuples of Python floats)


@dataclass(frozen=True)
class Result:
    case: Case
    seconds: float

    @property
    def rows_per_s(self) -> float:
        return self.case.rows / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.rows_per_s * ROW_BYTES / 1e6


def make_cases(quick: bool) -> list[Case]:
    """Row counts sized for ~2-3 s per run on a 2-core machine (slow baselines get fewer rows)."""
    full = [
        Case(WRITER, 1, 1_000_000, write_cellrig, columnar=False),
        Case(WRITER, 100, 10_000_000, write_cellrig),
        Case(WRITER, 1_000, 20_000_000, write_cellrig),
        Case(WRITER, 10_000, 30_000_000, write_cellrig),
        Case(RAW_H5PY, 1, 5_000, write_raw_h5py),  # ~0.4 ms per row: h5py's per-call cost x 12 calls
        Case(RAW_H5PY, 100, 500_000, write_raw_h5py),
        Case(RAW_H5PY, 1_000, 5_000_000, write_raw_h5py),
        Case(RAW_H5PY, 10_000, 30_000_000, write_raw_h5py),
        Case(CSV, 1, 500_000, write_csv, columnar=False),
        Case(SQLITE, SQLITE_COMMIT_ROWS, 2_000_000, write_sqlite, columnar=False),
    ]
    if not quick:
        return full
    return [replace(c, rows=max(c.batch, c.rows // QUICK_DIVISOR // c.batch * c.batch)) for c in full]


def make_pool(rows: int = POOL_ROWS) -> np.ndarray:
    """Test data as one contiguous array per column: a monotonic time in s, then 5 columns of noise."""
    data = np.random.default_rng(0).standard_normal((len(COLUMNS), rows))
    data[0] = np.arange(rows) * 1e-3
    return data


def make_chunks(pool: np.ndarray, case: Case) -> list[Chunk]:
    """The case's input, cycling through the pool: batches of column views, or rows of Python floats."""
    span = min(case.rows, pool.shape[1])
    if case.columnar:
        size = case.batch
        units = [tuple(pool[:, i : i + size]) for i in range(0, span - size + 1, size)]
    else:
        size, units = 1, list(zip(*pool[:, :span].tolist(), strict=True))
    return list(islice(cycle(units), case.rows // size))


def measure(case: Case, pool: np.ndarray, repeat: int, directory: str) -> Result:
    """Median wall time of `repeat` runs of one case, each into a fresh file that is deleted afterwards."""
    chunks = make_chunks(pool, case)
    times = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(dir=directory, prefix="cellrig-ingest-") as tmp:
            path = Path(tmp) / "bench"
            start = time.perf_counter()
            case.write(path, chunks)
            times.append(time.perf_counter() - start)
    return Result(case, statistics.median(times))


# -- report -------------------------------------------------------------------------------------


def print_table(results: Sequence[Result]) -> None:
    print(f"{'method':<26}{'batch':>7}{'rows':>13}{'seconds':>10}{'rows/s':>14}{'MB/s':>9}   (MB = 10^6 B)")
    for r in results:
        c = r.case
        print(f"{c.method:<26}{c.batch:>7,}{c.rows:>13,}{r.seconds:>10.3f}{r.rows_per_s:>14,.0f}{r.mb_per_s:>9.1f}")


def print_verdict(results: Sequence[Result]) -> None:
    rate = {(r.case.method, r.case.batch): r.rows_per_s for r in results}
    writer = {b: v for (m, b), v in rate.items() if m == WRITER}
    ceiling = {b: rate[(RAW_H5PY, b)] for b in writer}
    csv = rate[(CSV, 1)]

    print("\nratios (rows/s)")
    print("  writer / raw h5py   " + "   ".join(f"batch {b:,}: {writer[b] / ceiling[b]:.2f}×" for b in writer))
    print("  writer / CSV        " + "   ".join(f"batch {b:,}: {writer[b] / csv:.1f}×" for b in writer))
    print(f"  single-row writer / CSV per row: {writer[1] / csv:.2f}×")

    print("\nacceptance targets")
    for b in sorted(b for b in writer if b >= 1_000):
        _verdict(f"batch {b:,}: ≥ 2,000,000 rows/s", writer[b] >= 2e6, f"{writer[b]:,.0f} rows/s")
        _verdict(f"batch {b:,}: ≥ 50 % of raw h5py", writer[b] >= 0.5 * ceiling[b], f"{writer[b] / ceiling[b]:.0%}")
        _verdict(f"batch {b:,}: ≥ 8× CSV per row", writer[b] >= 8 * csv, f"{writer[b] / csv:.1f}×")
    _verdict("single row: ≥ CSV per row", writer[1] >= csv, f"{writer[1] / csv:.2f}×")


def _verdict(target: str, ok: bool, measured: str) -> None:
    print(f"  {'PASS' if ok else 'FAIL'}  {target:<36} measured {measured}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_DIVISOR}× fewer rows, 1 repetition (smoke test)")
    parser.add_argument("--repeat", type=int, default=None, help="repetitions per case (default 3, or 1 with --quick)")
    parser.add_argument("--dir", default="/tmp", help="where the temporary files go (default /tmp: local disk)")
    args = parser.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 3)

    pool = make_pool()
    print(f"{len(COLUMNS)} float64 columns ({ROW_BYTES} B/row), {FLUSH_INTERVAL:g} s flushes, median of {repeat} runs")
    print(f"h5py {h5py.version.version}, HDF5 {h5py.version.hdf5_version}, SQLite {sqlite3.sqlite_version}\n")
    results = [measure(case, pool, repeat, args.dir) for case in make_cases(args.quick)]
    print_table(results)
    print_verdict(results)


if __name__ == "__main__":
    main()
