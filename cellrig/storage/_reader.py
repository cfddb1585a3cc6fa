"""open_run: a run file (finished, crashed or still being written) as xarray and pandas."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import xarray as xr

from . import _layout as L
from ._errors import NotARunFileError, RunNotFoundError, UnknownStreamError
from ._lock import writer_alive

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def check_run_file(path: str | os.PathLike) -> None:
    """Raise a clear error unless ``path`` is a cellrig run file."""
    with _open(Path(path)):
        pass


@contextmanager
def _open(path: Path) -> Iterator[h5py.File]:
    if not path.exists():
        raise RunNotFoundError(f"{path}: no such run file")
    if path.is_dir():
        raise NotARunFileError(f"{path}: is a directory, not a run file")
    try:
        f = h5py.File(path, "r", swmr=True, locking=False)
    except OSError as exc:
        with path.open("rb") as fh:
            is_hdf5 = fh.read(8) == _HDF5_SIGNATURE
        what = "an HDF5 file cellrig cannot open" if is_hdf5 else "not an HDF5 file"
        raise NotARunFileError(f"{path}: {what}, so not a cellrig run ({exc})") from None
    try:
        schema = f.attrs.get("schema")
        if schema != L.SCHEMA:
            found = f"schema {schema!r}" if schema else "no cellrig schema attribute"
            raise NotARunFileError(f"{path}: not a cellrig run file ({found}; expected {L.SCHEMA!r})")
        yield f
    finally:
        f.close()


def _columns(group: h5py.Group) -> dict[str, np.ndarray]:
    """Every column of a table, cut to the rows all of them hold."""
    rows = L.held_rows(group)
    return {name: d[:rows] for name, d in group.items()}


def _last_row(group: h5py.Group) -> dict[str, float]:
    rows = L.held_rows(group)
    return {c: d[rows - 1].item() for c, d in group.items()} if rows else {}


def _event_frame(cols: dict[str, np.ndarray]) -> pd.DataFrame:
    df = pd.DataFrame(cols)
    for c in ("kind", "message"):
        df[c] = df[c].map(lambda b: b.decode() if isinstance(b, bytes) else b).astype("string")
    return df


class Run:
    """One run file.  Each access reads the file afresh, so a live run shows new rows."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        with _open(self.path) as f:
            self.attrs: dict[str, Any] = L.read_attrs(f)
            self.meta: dict[str, Any] = L.read_meta(f[L.META])
            self._units = {
                name: {c: d.attrs.get("units", "") for c, d in g.items()} for name, g in f[L.STREAMS].items()
            }

    def __repr__(self) -> str:
        return f"<cellrig.Run {self.path.name} {self.status} streams={list(self.streams)}>"

    @property
    def streams(self) -> tuple[str, ...]:
        return tuple(self._units)

    def stream(self, name: str) -> xr.Dataset:
        """A stream as an xarray Dataset: ``time`` coordinate, one variable per column, units in attrs."""
        if name not in self._units:
            raise UnknownStreamError(f"{self.path}: unknown stream {name!r} (streams: {', '.join(self.streams)})")
        with _open(self.path) as f:
            cols = _columns(f[L.STREAMS][name])
        time = cols.pop(L.TIME)
        units = self._units[name]
        return xr.Dataset(
            {c: (L.TIME, v, {"units": units[c]}) for c, v in cols.items()},
            coords={L.TIME: (L.TIME, time, {"units": "s", "long_name": "seconds since the run started"})},
            attrs={"run_id": self.attrs["run_id"], "stream": name, "started": self.attrs["started"]},
        )

    __getitem__ = stream

    def columns(self, name: str) -> dict[str, str]:
        """A stream's columns and their units, without reading any data."""
        if name not in self._units:
            raise UnknownStreamError(f"{self.path}: unknown stream {name!r} (streams: {', '.join(self.streams)})")
        return dict(self._units[name])

    def last(self, name: str) -> dict[str, float]:
        """A stream's last row (reads only that row): column → value, empty if the stream has none."""
        self.columns(name)
        with _open(self.path) as f:
            return _last_row(f[L.STREAMS][name])

    def lasts(self) -> dict[str, dict[str, float]]:
        """Every stream's last row (empty for a stream with none), in one opening of the file."""
        with _open(self.path) as f:
            return {name: _last_row(f[L.STREAMS][name]) for name in self.streams}

    @property
    def elapsed(self) -> float:
        """Run time (s) of the newest row of any stream; 0 before the first."""
        return max((row.get(L.TIME, 0.0) for row in self.lasts().values()), default=0.0)

    def rows(self, name: str) -> int:
        """Rows a stream holds now (cheap: reads no data)."""
        if name not in self._units:
            raise UnknownStreamError(f"{self.path}: unknown stream {name!r} (streams: {', '.join(self.streams)})")
        with _open(self.path) as f:
            return L.held_rows(f[L.STREAMS][name])

    def tail(self, name: str, since: float | None = None) -> dict[str, np.ndarray]:
        """A stream's columns (``time`` too) from run time ``since`` (s) on, or whole; reads only those rows."""
        self.columns(name)
        with _open(self.path) as f:
            group = f[L.STREAMS][name]
            rows = L.held_rows(group)
            first = 0 if since is None else int(np.searchsorted(group[L.TIME][:rows], since))
            return {c: d[first:rows] for c, d in group.items()}

    def events_of(self, *kinds: str, last: int | None = None, but: tuple[str, ...] = ()) -> pd.DataFrame:
        """Only the events of ``kinds`` (no kinds: all ``but`` those), the ``last`` of them if given, reading the
        messages of those rows only: cheap on a months-long run's thousands of events."""
        with _open(self.path) as f:
            events = f[L.EVENTS]
            found = event_kinds(events)
            wanted = np.isin(found, [k.encode() for k in kinds or but], invert=not kinds)
            rows = np.flatnonzero(wanted)
            rows = rows[-last:] if last else rows
            return _event_frame({c: events[c][rows] if len(rows) else events[c][:0] for c in L.EVENT_COLUMNS})

    @property
    def events(self) -> pd.DataFrame:
        """Events (step start/end, checkpoint, pause, trip, note, end) in order."""
        with _open(self.path) as f:
            return _event_frame(_columns(f[L.EVENTS]))

    @property
    def cycle_index(self) -> pd.DataFrame:
        """First row of each cycle in the cycle stream."""
        with _open(self.path) as f:
            return pd.DataFrame(_columns(f[L.CYCLE_INDEX]))

    @property
    def live(self) -> bool:
        """True while a writer process holds this run open."""
        return writer_alive(self.path)

    @property
    def status(self) -> str:
        """How the run ended, ``running`` while written, or ``interrupted`` if its writer died."""
        return status_of(self.path, self._end())

    @property
    def end_reason(self) -> str | None:
        """The error text or reason recorded with the end, if any."""
        end = self._end()
        return end[1] if end else None

    def _end(self) -> tuple[str, str | None] | None:
        with _open(self.path) as f:
            return read_end(f[L.EVENTS])

    @cached_property
    def cycle_stream(self) -> str | None:
        return self.attrs.get("cycle_stream") or None


def status_of(path: Path, end: tuple[str, str | None] | None) -> str:
    """A run's status from its ``end`` (see :func:`read_end`): the end's, else running or interrupted."""
    if end is not None:
        return end[0]
    return "running" if writer_alive(path) else "interrupted"


def event_kinds(events: h5py.Group) -> np.ndarray:
    """The kind (bytes) of every event row that all the event columns hold (a crash may leave one longer)."""
    return events["kind"][: L.held_rows(events)]


def read_end(events: h5py.Group) -> tuple[str, str | None] | None:
    """The run's last ``end`` event as (status, reason); None if it has none or was resumed after it."""
    kinds = event_kinds(events)
    ends = np.flatnonzero(kinds == b"end")
    if not ends.size or (kinds[ends[-1] :] == b"resume").any():
        return None
    message = events["message"][ends[-1]]
    status, _, reason = (message.decode() if isinstance(message, bytes) else str(message)).partition(": ")
    return status, reason or None


def open_run(path: str | os.PathLike) -> Run:
    """Open a run file (finished, crashed or live) for reading."""
    return Run(path)
