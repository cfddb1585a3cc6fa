"""The overview of the runs in some folders, refreshed by one thread that re-reads only what changed."""

import hashlib
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .. import observations
from ..storage import Run, RunFileError, open_run
from .eta import run_time_left

REFRESH_S = 2.0  # real seconds between looks at the folders
RECHECK_S = 10.0  # a live run's file unchanged this long is read again (its writer may have died)
#: the order of the overview: what needs a person first
RANK = {"tripped": 0, "failed": 1, "interrupted": 2, "paused": 3, "running": 4, "stopped": 5, "aborted": 5}


def run_id(path: Path) -> str:
    return hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]


def _value(lasts: dict[str, dict[str, float]], stream: str | None, column: str) -> float | None:
    value = lasts.get(stream or "", {}).get(column)
    return None if value is None or not math.isfinite(value) else float(value)


def _temperature(run: Run, lasts: dict[str, dict[str, float]]) -> float | None:
    """The cell's temperature where a probe gives it, else the chamber air's."""
    if "daq" in run.streams:
        probes = [c for c, units in run.columns("daq").items() if units == "degC"]
        named = [c for c in probes if "cell" in c or c == "temperature"] or probes
        if named:
            return _value(lasts, "daq", named[0])
    air = _value(lasts, "chamber", "temperature")
    return air if air is not None else _value(lasts, run.cycle_stream, "temperature")


def _left(run: Run, step: pd.DataFrame, now: float) -> tuple[float, bool] | None:
    """Time left, from the last checkpoint and the step started after it (if one has)."""
    checkpoint = run.events_of("checkpoint", last=1)
    since = float(checkpoint["time"].iloc[-1]) if len(checkpoint) else -1.0
    started = len(step) and float(step["time"].iloc[-1]) >= since
    in_step = now - float(step["time"].iloc[-1]) if started else None
    return run_time_left(run.meta, str(checkpoint["message"].iloc[-1]) if len(checkpoint) else None, in_step)


def row(run: Run, folder: Path) -> dict[str, Any]:
    """One run's line of the overview, read from its file: a few rows, and the last event of each kind that
    matters (a months-long run has tens of thousands of events; their messages are not read)."""
    meta, status, state, reason = run.meta, run.status, run.status, run.end_reason
    steps = run.events_of("step_start", last=1)
    held = run.events_of("pause", "continue", last=1)
    trips = run.events_of("trip", last=1)
    if status == "running" and len(trips):  # the outputs are safe; the loggers still record the aftermath
        state, reason = "tripped", f"{trips['message'].iloc[-1]} (still recording)"
    elif status == "running" and len(held) and held["kind"].iloc[-1] == "pause":
        state = "paused"
    seen = run.events_of(observations.AWAITING_EVENT, observations.EVENT, last=1)
    if status != "running" and len(seen) and seen["kind"].iloc[-1] == observations.AWAITING_EVENT:
        state = f"{status}, awaiting observation"  # ranked as its status: a tripped one stays at the top
    electrical = [s for s in run.streams if "voltage" in run.columns(s)]  # an abuse run's: the rig's
    cycle_stream = run.cycle_stream or (electrical[0] if electrical else None)
    lasts = run.lasts()  # every stream's last row, in one read
    elapsed = max((last.get("time", 0.0) for last in lasts.values()), default=0.0)
    left = _left(run, steps, elapsed) if state in ("running", "paused") else None
    return {
        "id": run_id(run.path),
        "file": str(run.path.relative_to(folder.parent) if run.path.is_relative_to(folder.parent) else run.path),
        "cell": str(meta.get("cell", {}).get("id", "?")),
        "protocol": str(meta.get("protocol", {}).get("name", "?")),
        "kind": str(meta.get("protocol", {}).get("kind", "cycling")),
        "state": state,
        "reason": reason or "",
        "step": str(steps["message"].iloc[-1]) if len(steps) else "",
        "cycle": int(steps["cycle"].iloc[-1]) if len(steps) else None,
        "voltage": _value(lasts, cycle_stream, "voltage"),
        "current": _value(lasts, cycle_stream, "current"),
        "temperature": _temperature(run, lasts),
        "elapsed_h": elapsed / 3600.0,
        "left_h": None if left is None else left[0] / 3600.0,
        "left_exact": bool(left and left[1]),
        "started": str(run.attrs.get("started", "")),
    }


@dataclass
class _Seen:
    stamp: tuple[int, int]
    checked: float
    row: dict[str, Any]
    path: Path


@dataclass
class Watcher:
    """The runs under ``folders``, as overview rows; :meth:`start` keeps them fresh on a thread."""

    folders: list[Path]
    seen: dict[Path, _Seen] = field(default_factory=dict)
    version: int = 0  # bumped whenever a row changes
    _stop: threading.Event = field(default_factory=threading.Event)

    def refresh(self) -> None:
        """Look at every folder once.  The rows are swapped in whole: a request never sees them half-made."""
        now, changed, seen = time.monotonic(), False, {}
        for folder in self.folders:
            for path in sorted(folder.glob("**/*.h5")):
                try:
                    stat = path.stat()
                except OSError:
                    continue
                stamp, old = (stat.st_mtime_ns, stat.st_size), self.seen.get(path)
                live = old is not None and old.row["state"] in ("running", "paused", "tripped")
                if old is not None and old.stamp == stamp and not (live and now - old.checked > RECHECK_S):
                    seen[path] = old
                    continue
                try:
                    new = row(open_run(path), folder)
                except (RunFileError, OSError, KeyError, ValueError):  # being created, or not a run
                    if old is not None:  # a read that failed this once: keep what it said before
                        seen[path] = old
                    continue
                changed = changed or old is None or new != old.row
                seen[path] = _Seen(stamp, now, new, path)
        changed = changed or set(seen) != set(self.seen)
        self.seen = seen
        if changed:
            self.version += 1  # the event stream sends the rows again

    def rows(self) -> list[dict[str, Any]]:
        """Every run, what needs a person first, then the newest first."""
        rows = sorted((s.row for s in self.seen.values()), key=lambda r: r["started"], reverse=True)  # one dict
        return sorted(rows, key=lambda r: RANK.get(r["state"].split(",")[0], 6))

    def path(self, run: str) -> Path | None:
        return next((s.path for s in self.seen.values() if s.row["id"] == run), None)

    def start(self) -> "Watcher":
        self.refresh()
        threading.Thread(target=self._loop, name="serve-watch", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(REFRESH_S):
            self.refresh()
