"""Web view benchmark: how fast `cellrig serve` answers over a big lab, and what it costs the writers.

What it measures
    files     ``--runs`` run files of ``--rows`` cycler rows each (time, voltage, current, step, cycle,
              temperature) and an event per step, like a long cycling campaign; ``--live`` of them
              are appended to at 1,000 rows/s each (a busy mainframe's channels) by writer
              processes (RunWriter, blocks of 100 rows) while it runs, and one more run, started
              empty, as fast as its writer can (its rate is the measure).
    latency   `cellrig serve` started as its own process over the folder: the overview's JSON
              (``/api/overview``) and a random run's page data (``/api/run/<id>``, the last 6 h and the
              whole run), time to the first byte and to the last, p50 and p99 over ``--requests``.
    writers   the fast writer's append rate (rows/s) for ``--seconds`` with nobody looking, then for
              as long with 10 clients each loading the overview and a run page once a second (a
              room of browsers left open), in the same run.  Printed: both rates and the ratio.
              One writer flat out takes one of a 2-core machine's cores: the ratio shows what the
              server and its readers cost a writer, not how many writers the machine can hold.
              Targets (issue #19): overview p99 < 500 ms, run page p99 < 1 s, the writer keeps at
              least 95 % of its rate.

    python bench/serve.py [--runs 100] [--rows 1000000] [--live 4] [--requests 200] [--seconds 20]
                          [--folder DIR]   (DIR: keep the files there, and use them again next time)
"""

import argparse
import http.client
import json
import multiprocessing as mp
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from cellrig.storage import Column, RunWriter

CELLRIG = Path(sys.executable).with_name("cellrig")
COLUMNS = {
    "voltage": Column("V", "f8", "cell voltage"),
    "current": Column("A", "f8", "current"),
    "step": Column("", "i4", "step"),
    "cycle": Column("", "i4", "cycle"),
    "temperature": Column("degC", "f8", "cell temperature"),
}
CYCLE_ROWS = 2000  # rows per cycle: four steps of 500


def _rows(start: int, n: int) -> dict[str, np.ndarray]:
    i = np.arange(start, start + n)
    phase = (i % CYCLE_ROWS) / CYCLE_ROWS
    return {
        "time": i * 10.0,
        "voltage": 3.0 + 1.2 * np.abs(np.sin(np.pi * phase)),
        "current": np.where(phase < 0.5, 2.5, -2.5),
        "step": (1 + (i % CYCLE_ROWS) // 500).astype(np.int32),
        "cycle": (1 + i // CYCLE_ROWS).astype(np.int32),
        "temperature": 25.0 + np.sin(i / 700.0),
    }


def write_file(path: Path, rows: int, n: int) -> RunWriter:
    meta = {"cell": {"id": f"B{n:03d}"}, "protocol": {"name": "bench-cycling", "kind": "cycling"}}
    writer = RunWriter.create(path, {"cycler": COLUMNS}, meta, cycle_stream="cycler", fsync=False)
    for start in range(0, rows, 100_000):
        block = _rows(start, min(100_000, rows - start))
        writer.append("cycler", **block)
        for s in range(start, start + len(block["time"]), 500):
            writer.event("step_start", f"step {1 + (s % CYCLE_ROWS) // 500}", time=s * 10.0, cycle=1 + s // CYCLE_ROWS)
    return writer


def keep_writing(
    path: Path, pace: float | None, stop: "mp.synchronize.Event", counter: "mp.sharedctypes.Synchronized"
) -> None:
    """Append blocks of 100 rows to the run at ``path`` (resumed), ``pace`` rows/s or flat out, until ``stop``."""
    writer = RunWriter.resume(path)
    start = writer.rows("cycler")
    while not stop.is_set():
        writer.append("cycler", **_rows(start, 100))
        start += 100
        if pace is not None:
            stop.wait(100 / pace)
            continue
        with counter.get_lock():
            counter.value += 100
    writer.close("stopped")


def get(port: int, path: str) -> tuple[float, float]:
    """(first byte, last byte) seconds for one GET."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    t0 = time.perf_counter()
    conn.request("GET", path)
    reply = conn.getresponse()
    first = time.perf_counter() - t0
    reply.read()
    conn.close()
    if reply.status != 200:
        raise RuntimeError(f"GET {path}: {reply.status}")
    return first, time.perf_counter() - t0


def percentiles(samples: list[tuple[float, float]]) -> str:
    a = np.array(samples) * 1000
    return (
        f"first byte p50 {np.percentile(a[:, 0], 50):6.1f} ms  p99 {np.percentile(a[:, 0], 99):6.1f} ms   "
        f"last byte p50 {np.percentile(a[:, 1], 50):6.1f} ms  p99 {np.percentile(a[:, 1], 99):6.1f} ms"
    )


def rate(counter: "mp.sharedctypes.Synchronized", seconds: float) -> float:
    before, t0 = counter.value, time.perf_counter()
    time.sleep(seconds)
    return (counter.value - before) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--live", type=int, default=4)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--folder", type=Path, help="where the files are kept (default: a temporary folder, removed)")
    args = ap.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="cellrig-serve-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        measure(args, folder)
    finally:
        if args.folder is None:
            shutil.rmtree(folder)


def measure(args: argparse.Namespace, folder: Path) -> None:
    t0 = time.perf_counter()
    for n in range(args.runs):
        path = folder / f"run-{n:03d}.h5"
        if not path.exists():
            write_file(path, args.rows, n).close("finished" if n >= args.live else "stopped")
    size = sum(p.stat().st_size for p in folder.glob("*.h5")) / 1e9
    print(f"files    {args.runs} runs × {args.rows:,} rows ({size:.1f} GB), ready in {time.perf_counter() - t0:.0f} s")

    stop, counter = mp.Event(), mp.Value("q", 0)
    flat_out = folder / "flat-out.h5"
    flat_out.unlink(missing_ok=True)
    write_file(flat_out, 0, args.runs).close("stopped")
    writers = [mp.Process(target=keep_writing, args=(flat_out, None, stop, counter))]
    writers += [
        mp.Process(target=keep_writing, args=(folder / f"run-{n:03d}.h5", 1000.0, stop, counter))
        for n in range(args.live)
    ]
    for w in writers:
        w.start()
    server = subprocess.Popen([str(CELLRIG), "serve", str(folder), "--port", "0"], stderr=subprocess.PIPE, text=True)
    try:
        port = int(re.search(r":(\d+)/", server.stderr.readline()).group(1))
        ids = [r["id"] for r in json.loads(_body(port, "/api/overview"))["runs"]]
        while len(ids) < args.runs + 1:
            time.sleep(0.5)
            ids = [r["id"] for r in json.loads(_body(port, "/api/overview"))["runs"]]
        runs = json.loads(_body(port, "/api/overview"))["runs"]
        ids = [r["id"] for r in runs if not r["file"].endswith("flat-out.h5")]  # the 100 runs of about --rows
        rnd = random.Random(0)
        overview = [get(port, "/api/overview") for _ in range(args.requests)]
        recent = [get(port, f"/api/run/{rnd.choice(ids)}?hours=6") for _ in range(max(20, args.requests // 4))]
        whole = [get(port, f"/api/run/{rnd.choice(ids)}") for _ in range(max(20, args.requests // 4))]
        print(f"overview      {percentiles(overview)}")
        print(f"run, last 6 h {percentiles(recent)}")
        print(f"run, whole    {percentiles(whole)}")

        alone = rate(counter, args.seconds)
        quit_ = threading.Event()

        def browse(k: int) -> None:
            r = random.Random(k)
            while not quit_.is_set():
                get(port, "/api/overview")
                get(port, f"/api/run/{r.choice(ids)}?hours=6")
                quit_.wait(1.0)

        clients = [threading.Thread(target=browse, args=(k,), daemon=True) for k in range(10)]
        for c in clients:
            c.start()
        watched = rate(counter, args.seconds)
        quit_.set()
        print(
            f"writer   flat out (beside {args.live} at 1,000 rows/s): {alone:,.0f} rows/s alone, "
            f"{watched:,.0f} rows/s with 10 clients (ratio {watched / alone:.3f})"
        )
    finally:
        stop.set()
        for w in writers:
            w.join(60)
        server.terminate()
        server.wait(30)
        flat_out.unlink(missing_ok=True)


def _body(port: int, path: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", path)
    body = conn.getresponse().read()
    conn.close()
    return body


if __name__ == "__main__":
    main()
