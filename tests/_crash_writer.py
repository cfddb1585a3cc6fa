"""Child process for the crash tests: append known rows to a run until killed.

Usage: python _crash_writer.py RUN_FILE SEED {create|resume}

Row i holds time = i, voltage = 3 + i / 1e6, current = (i % 7) - 3, cycle = 1 + i // 997.
After every explicit flush it prints ``flushed <rows>`` (rows the file then holds for sure).
"""

import sys

import numpy as np

from cellrig.storage import Column, RunWriter

STREAMS = {"cycler": {"voltage": Column("V"), "current": Column("A"), "cycle": Column("", "i4")}}


def rows(start: int, n: int) -> dict[str, np.ndarray]:
    i = np.arange(start, start + n)
    return {
        "time": i.astype(float),
        "voltage": 3 + i / 1e6,
        "current": (i % 7 - 3).astype(float),
        "cycle": (1 + i // 997).astype("i4"),
    }


def main() -> None:
    path, seed, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rng = np.random.default_rng(seed)
    if mode == "create":
        w = RunWriter.create(path, STREAMS, {"seed": seed}, cycle_stream="cycler", flush_interval=0.02)
    else:
        w = RunWriter.resume(path, flush_interval=0.02)
    n = w.rows("cycler")
    while True:
        size = int(rng.choice([1, 1, 3, 50, 700, 5000]))
        if size == 1:
            row = {k: v[0].item() for k, v in rows(n, 1).items()}
            w.append("cycler", **row)
        else:
            w.append("cycler", **rows(n, size))
        n += size
        if rng.random() < 0.05:
            w.event("note", f"at row {n}")
        if rng.random() < 0.1:
            w.flush()
            print(f"flushed {n}", flush=True)


if __name__ == "__main__":
    main()
