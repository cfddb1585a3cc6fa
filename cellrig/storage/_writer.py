"""RunWriter: stream rows into a crash-safe, live-readable HDF5 run file (SWMR)."""

import contextlib
import datetime as dt
import os
import re
import threading
import time as _time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import h5py
import numpy as np

from .. import __version__
from . import _layout as L
from ._errors import ColumnError, RunClosedError, RunWriteError, UnknownStreamError
from ._lock import WriterLock
from ._superblock import clear_write_flags

# No chunk cache: the writer hands HDF5 whole chunks, which then reach the disk within the append that
# wrote them, before any flush writes the larger extent. With a cache, a full disk could fail the
# chunks at a later flush after the object headers (in place, early in the file) took the new extent:
# rows of zeros the run never recorded.
_OPEN = {"libver": "latest", "locking": False, "rdcc_nbytes": 0}

_SCALARS = (int, float, np.number, np.bool_, bool)
_FAST_TYPES = {  # exact Python/numpy scalar types a column of each kind takes as they are
    "f": {float, int, np.float64, np.float32, np.int64, np.int32},
    "i": {int, np.int64, np.int32, np.int16, np.int8},
    "u": {np.uint64, np.uint32, np.uint16, np.uint8},
    "b": {bool, np.bool_},
}


class _Stream:
    """One stream's datasets plus a block buffer that turns small appends into big writes."""

    def __init__(self, name: str, group: h5py.Group) -> None:
        self.name = name
        self.columns = {c: L.Column(ds.attrs.get("units", ""), ds.dtype.str) for c, ds in group.items()}
        self.names = tuple(self.columns)
        self.datasets = {c: group[c] for c in self.names}
        self.rows = L.held_rows(self.datasets)
        self.buffer = {c: np.empty(L.CHUNK_ROWS, np.dtype(col.dtype)) for c, col in self.columns.items()}
        self.pending = 0
        self.fast_types = {c: _FAST_TYPES[np.dtype(col.dtype).kind] for c, col in self.columns.items()}

    def check(self, values: Mapping[str, Any]) -> None:
        if values.keys() != self.columns.keys():
            missing = sorted(self.columns.keys() - values.keys())
            extra = sorted(values.keys() - self.columns.keys())
            raise ColumnError(
                f"stream {self.name!r}: "
                + "; ".join(
                    part
                    for part in (
                        f"missing column(s) {missing}" if missing else "",
                        f"unknown column(s) {extra} (declared: {list(self.names)})" if extra else "",
                    )
                    if part
                )
            )

    def add_row(self, values: Mapping[str, Any]) -> None:
        n = self.pending
        for c, fast in self.fast_types.items():
            v = values[c]
            if type(v) not in fast and not self._fits(c, v):
                raise ColumnError(f"stream {self.name!r}, column {c!r}: {v!r} is not a {self.columns[c].dtype} value")
            self.buffer[c][n] = v
        self.pending = n + 1

    def _fits(self, column: str, value: Any) -> bool:
        return isinstance(value, _SCALARS) and np.asarray(value).dtype.kind in self.columns[column].accepts

    def as_arrays(self, values: Mapping[str, Any]) -> dict[str, np.ndarray]:
        arrays = {c: np.asarray(values[c]) for c in self.names}
        lengths = {c: a.shape for c, a in arrays.items()}
        if any(a.ndim != 1 for a in arrays.values()) or len({a.shape[0] for a in arrays.values()}) != 1:
            raise ColumnError(f"stream {self.name!r}: columns must be 1-D and of equal length, got {lengths}")
        for c, a in arrays.items():
            if a.dtype.kind not in self.columns[c].accepts:
                raise ColumnError(
                    f"stream {self.name!r}, column {c!r}: {a.dtype} values do not fit a {self.columns[c].dtype} column"
                )
        return arrays

    def add_block(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Append arrays through the buffer, writing whole chunk-aligned blocks."""
        n = len(arrays[L.TIME])
        done = 0
        while done < n:
            if self.pending == 0 and n - done >= L.CHUNK_ROWS:  # whole chunks go straight to the file
                k = (n - done) // L.CHUNK_ROWS * L.CHUNK_ROWS
                self.write({c: a[done : done + k] for c, a in arrays.items()}, k)
                done += k
                continue
            k = min(L.CHUNK_ROWS - self.pending, n - done)
            for c in self.names:
                self.buffer[c][self.pending : self.pending + k] = arrays[c][done : done + k]
            self.pending += k
            done += k
            if self.pending == L.CHUNK_ROWS:
                self.drain()

    def write(self, arrays: Mapping[str, np.ndarray], n: int) -> None:
        for c in self.names:
            ds = self.datasets[c]
            ds.resize((self.rows + n,))
            ds[self.rows : self.rows + n] = arrays[c][:n]
        self.rows += n

    def drain(self) -> None:
        if self.pending:
            self.write(self.buffer, self.pending)
            self.pending = 0


class RunWriter:
    """Write one run: declared streams of typed columns, events, metadata and a cycle index.

    Create with :meth:`create` (a new file, never an overwrite) or :meth:`resume` (continue a
    file whose writer died).  Rows are buffered and written in blocks; everything written is
    published to readers (and fsync'ed) at least every ``flush_interval`` seconds, so a killed
    writer loses at most that much.  Use as a context manager: leaving the block by an
    exception records a ``failed`` (or, on Ctrl-C, ``aborted``) end before closing.

    The first write that fails (a full disk) cuts the file off: it keeps what reached it before,
    every later write raises :class:`RunWriteError` without touching HDF5, and :meth:`close`
    still closes it and releases the lock (HDF5 left half-flushed would crash the process at exit).
    """

    def __init__(
        self,
        path: Path,
        file: h5py.File,
        lock: WriterLock,
        *,
        cycle_stream: str | None,
        flush_interval: float,
        fsync: bool,
    ) -> None:
        self.path = path
        self._file = file
        self.run_id = str(file.attrs["run_id"])
        self._lock = lock
        self._fsync = fsync
        self.flush_interval = flush_interval
        self._mutex = threading.RLock()
        self._streams = {name: _Stream(name, group) for name, group in file[L.STREAMS].items()}
        self._events = file[L.EVENTS]
        self._index = file[L.CYCLE_INDEX]
        self.cycle_stream = cycle_stream
        self._last_cycle = self._restore_last_cycle()
        self._dirty = False
        self._last_flush = _time.monotonic()
        self._closed = False
        self._lost: RunWriteError | None = None  # the first write error: the file is cut off after it
        self.status: str | None = None
        self._stop_flusher = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, name=f"cellrig-flush-{path.name}", daemon=True)
        self._flusher.start()

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        streams: Mapping[str, Mapping[str, L.Column]],
        meta: Mapping[str, Any] | None = None,
        *,
        cycle_stream: str | None = None,
        flush_interval: float = 1.0,
        fsync: bool = True,
    ) -> Self:
        """Create a new run file declaring every stream and its columns up front.

        Each stream gets a ``time`` column (float64 seconds since the run started) as its
        dimension scale.  ``cycle_stream`` names the stream whose ``cycle`` column feeds
        the cycle index.
        """
        path = Path(path)
        if cycle_stream is not None and (cycle_stream not in streams or "cycle" not in streams[cycle_stream]):
            raise ColumnError(f"cycle_stream {cycle_stream!r} must be a declared stream with a 'cycle' column")
        for name, columns in streams.items():
            if L.TIME in columns:
                raise ColumnError(f"stream {name!r}: 'time' is implicit (float64 s since start); do not declare it")
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = WriterLock(path)
        lock.acquire(create=True)  # the name is taken here, atomically: RunExistsError if it was
        try:
            f = h5py.File(path, "w", **_OPEN)  # the empty file just made, locked
            _declare(f, streams, meta or {}, cycle_stream)
            f.swmr_mode = True
        except BaseException:
            path.unlink(missing_ok=True)  # this call's own half-made file, still locked
            lock.release()
            raise
        return cls(path, f, lock, cycle_stream=cycle_stream, flush_interval=flush_interval, fsync=fsync)

    @classmethod
    def resume(cls, path: str | os.PathLike, *, flush_interval: float = 1.0, fsync: bool = True) -> Self:
        """Reopen a run whose writer died (or closed) to append to it.

        Refuses while another writer is alive.  Clears the flags a killed writer leaves,
        trims streams to the rows every column holds, and records a ``resume`` event.
        """
        writer = cls._reopen(path, flush_interval=flush_interval, fsync=fsync)
        writer.event("resume", "writer resumed", time=writer.last_time())
        writer.flush()
        return writer

    @classmethod
    def annotate(cls, path: str | os.PathLike, kind: str, message: str) -> None:
        """Add one event to a run no writer holds (an operator's observation after the test); its status stays.

        Appended as :meth:`resume` appends (SWMR, flushed and fsync'ed), so a kill meanwhile loses at most
        the event.  Refuses while the run's writer is alive.
        """
        writer = cls._reopen(path, flush_interval=1.0, fsync=True)
        writer._close(lambda: writer.event(kind, message))

    @classmethod
    def _reopen(cls, path: str | os.PathLike, *, flush_interval: float, fsync: bool) -> Self:
        from ._reader import check_run_file  # the reader owns "is this a run file"

        path = Path(path)
        check_run_file(path)
        lock = WriterLock(path)
        lock.acquire()
        try:
            clear_write_flags(path)
            f = h5py.File(path, "a", **_OPEN)
            cycle_stream = f.attrs.get("cycle_stream") or None
            for group in f[L.STREAMS].values():
                _trim(group)
            _trim(f[L.EVENTS])
            _trim(f[L.CYCLE_INDEX])
            f.swmr_mode = True
        except BaseException:
            lock.release()
            raise
        return cls(path, f, lock, cycle_stream=cycle_stream, flush_interval=flush_interval, fsync=fsync)

    # -- writing ---------------------------------------------------------------------------

    def append(self, stream: str, /, **values: Any) -> None:
        """Append rows to a stream: one row of scalars, or equal-length 1-D arrays.

        Every declared column plus ``time`` must be given.
        """
        with self._mutex, self._writing():
            s = self._stream(stream)
            s.check(values)
            if isinstance(values.get(L.TIME), _SCALARS):
                s.add_row(values)
                if stream == self.cycle_stream:
                    self._index_row(s, values["cycle"])
                if s.pending == L.CHUNK_ROWS:
                    s.drain()
            else:
                arrays = s.as_arrays(values)
                if stream == self.cycle_stream:
                    self._index_block(s, arrays["cycle"])
                s.add_block(arrays)
            self._dirty = True
            if _time.monotonic() - self._last_flush >= self.flush_interval:
                self.flush()

    def event(
        self, kind: str, message: str = "", *, time: float | None = None, step: int = -1, cycle: int = -1
    ) -> None:
        """Record an event (step start/end, checkpoint, pause, trip, note, ...)."""
        with self._mutex, self._writing():
            self._check_open()
            t = self.last_time() if time is None else float(time)
            ev = self._events
            n = ev[L.TIME].shape[0]
            row = (t, L.fit_text(kind, L.EVENT_KIND_BYTES), step, cycle, L.fit_text(message, L.EVENT_MESSAGE_BYTES))
            for name, value in zip(L.EVENT_COLUMNS, row, strict=True):
                ev[name].resize((n + 1,))
                ev[name][n] = value
            self._dirty = True

    def flush(self) -> None:
        """Write buffered rows and publish everything to readers now."""
        with self._mutex, self._writing():
            self._check_open()
            for s in self._streams.values():
                s.drain()
            if self._dirty:
                self._file.flush()
                if self._fsync:
                    os.fsync(self._file.id.get_vfd_handle())
                self._dirty = False
            self._last_flush = _time.monotonic()

    def close(self, status: str = "finished", error: str | None = None, *, time: float | None = None) -> None:
        """Record the ``end`` event (at ``time``, default the last row's) with the status and error, flush, close.

        The file is closed and the lock released even when the end cannot be written (a full
        disk): the error is raised after, and the file keeps everything flushed before it.
        """
        if status not in L.EXIT_STATUSES:
            raise ValueError(f"status must be one of {L.EXIT_STATUSES}, not {status!r}")

        def end() -> None:
            self.event("end", status if not error else f"{status}: {error}", time=time)
            self.status = status

        self._close(end)

    def _close(self, last: Callable[[], None]) -> None:
        """Make the ``last`` writes and flush; then, whatever failed, close the file, release the lock and join
        the flusher thread (outside the mutex, which the flusher takes)."""
        try:
            with self._mutex:
                if self._closed:
                    return
                try:
                    last()
                    self.flush()
                finally:
                    self._stop_flusher.set()
                    self._closed = True
                    try:
                        with contextlib.suppress(Exception) if self._lost else contextlib.nullcontext():
                            self._file.close()
                    finally:
                        self._lock.release()
        finally:
            if self._flusher is not threading.current_thread():
                self._flusher.join()  # no writer thread outlives its writer (nor the process's exit)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.close("finished")
        elif isinstance(exc, KeyboardInterrupt):
            self.close("aborted", "interrupted (Ctrl-C)")
        else:
            self.close("failed", f"{type(exc).__name__}: {exc}")

    # -- reading back what this writer knows ---------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def streams(self) -> tuple[str, ...]:
        return tuple(self._streams)

    def rows(self, stream: str) -> int:
        """Rows appended to a stream so far (written or buffered)."""
        s = self._stream(stream)
        return s.rows + s.pending

    def last_time(self) -> float:
        """The latest ``time`` appended to any stream, or 0 for an empty run."""
        with self._mutex:
            latest = 0.0
            for s in self._streams.values():
                if s.pending:
                    latest = max(latest, float(s.buffer[L.TIME][s.pending - 1]))
                elif s.rows:
                    latest = max(latest, float(s.datasets[L.TIME][s.rows - 1]))
            return latest

    @property
    def last_cycle(self) -> int | None:
        return self._last_cycle

    # -- internals -------------------------------------------------------------------------

    def _stream(self, name: str) -> _Stream:
        self._check_open()
        try:
            return self._streams[name]
        except KeyError:
            raise UnknownStreamError(
                f"{self.path}: unknown stream {name!r} (declared: {', '.join(self._streams) or 'none'})"
            ) from None

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Around every HDF5 write: the first that fails cuts the file off (:meth:`_cut_off`) and says why."""
        if self._lost is not None:
            raise self._lost
        try:
            yield
        except (OSError, RuntimeError) as exc:  # h5py's write and flush errors
            self._lost = RunWriteError(f"{self.path}: writing failed ({_cause(exc)}); the file keeps what it had")
            self._cut_off()
            raise self._lost from exc

    def _cut_off(self) -> None:
        """Point the file's descriptor at /dev/null: HDF5 can close, nothing more reaches the file."""
        with contextlib.suppress(Exception):
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, self._file.id.get_vfd_handle())
            os.close(null)

    def _check_open(self) -> None:
        if self._closed:
            raise RunClosedError(f"{self.path}: the run is closed ({self.status}); nothing more can be written")

    def _index_row(self, s: _Stream, cycle: Any) -> None:
        if cycle != self._last_cycle:
            self._add_cycles([int(cycle)], [s.rows + s.pending - 1])

    def _index_block(self, s: _Stream, cycles: np.ndarray) -> None:
        if not len(cycles):
            return
        prev = self._last_cycle if self._last_cycle is not None else cycles[0] - 1
        starts = np.flatnonzero(np.diff(cycles, prepend=prev))
        if len(starts):
            self._add_cycles(cycles[starts].tolist(), (s.rows + s.pending + starts).tolist())

    def _add_cycles(self, cycles: list[int], rows: list[int]) -> None:
        idx = self._index
        n = idx["cycle"].shape[0]
        for name, values in (("cycle", cycles), ("first_row", rows)):
            idx[name].resize((n + len(values),))
            idx[name][n:] = values
        self._last_cycle = int(cycles[-1])

    def _restore_last_cycle(self) -> int | None:
        if self.cycle_stream is None:
            return None
        s = self._streams[self.cycle_stream]
        return int(s.datasets["cycle"][s.rows - 1]) if s.rows else None

    def _flush_loop(self) -> None:
        while not self._stop_flusher.wait(self.flush_interval / 2):
            with self._mutex:
                if self._closed:
                    return
                pending = self._dirty or any(s.pending for s in self._streams.values())
                if pending and _time.monotonic() - self._last_flush >= self.flush_interval / 2:
                    try:
                        self.flush()
                    except RunWriteError:  # e.g. a full disk: the writer's own next write says so
                        return


def _cause(exc: BaseException) -> str:
    """The operating system's words inside an HDF5 error (e.g. "No space left on device"), else the error."""
    found = re.search(r"errno = (\d+), error message = '([^']*)'", str(exc))
    return f"{found[2]}, errno {found[1]}" if found else f"{type(exc).__name__}: {exc}"


def _declare(
    f: h5py.File, streams: Mapping[str, Mapping[str, L.Column]], meta: Mapping[str, Any], cycle_stream: str | None
) -> None:
    """Create every group, dataset, attribute and dimension scale (before SWMR starts)."""
    f.attrs["schema"] = L.SCHEMA
    f.attrs["run_id"] = str(uuid.uuid4())
    f.attrs["started"] = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
    f.attrs["cellrig_version"] = __version__
    f.attrs["cycle_stream"] = cycle_stream or ""
    L.write_meta(f.create_group(L.META), meta)
    group = f.create_group(L.STREAMS)
    for name, columns in streams.items():
        _table(group.create_group(name, track_order=True), {c: (col.dtype, _attrs(col)) for c, col in columns.items()})
    # Fixed-length text: variable-length strings live in a global heap that a killed writer can
    # leave half-written, after which appending to the resumed file fails ("bad heap index").
    kind_text = h5py.string_dtype("utf-8", L.EVENT_KIND_BYTES)
    text = h5py.string_dtype("utf-8", L.EVENT_MESSAGE_BYTES)
    _table(
        f.create_group(L.EVENTS, track_order=True),
        {
            "kind": (kind_text, {}),
            "step": ("i4", {"long_name": "protocol step number, -1 if none"}),
            "cycle": ("i4", {"long_name": "cycle number, -1 if none"}),
            "message": (text, {}),
        },
        chunk=256,
    )
    _table(
        f.create_group(L.CYCLE_INDEX, track_order=True),
        {"first_row": ("i8", {"long_name": f"first row of the cycle in {L.STREAMS}/{cycle_stream}"})},
        scale=("cycle", "i4", {}),
        chunk=1024,
    )


def _attrs(col: L.Column) -> dict[str, str]:
    return {"units": col.units} | ({"long_name": col.description} if col.description else {})


_TIME_SCALE = (L.TIME, "f8", {"units": "s", "long_name": "seconds since the run started"})


def _table(
    group: h5py.Group,
    columns: Mapping[str, tuple[Any, dict[str, str]]],
    *,
    scale: tuple[str, Any, dict[str, str]] = _TIME_SCALE,
    chunk: int = L.CHUNK_ROWS,
) -> None:
    """Resizable 1-D columns sharing one dimension scale, the way xarray reads them."""
    name, dtype, attrs = scale
    dim = group.create_dataset(name, (0,), dtype, maxshape=(None,), chunks=(chunk,))
    dim.attrs.update(attrs)
    dim.make_scale(name)
    for name, (dtype, attrs) in columns.items():
        ds = group.create_dataset(name, (0,), dtype, maxshape=(None,), chunks=(chunk,))
        ds.attrs.update(attrs)
        ds.dims[0].attach_scale(dim)


def _trim(group: h5py.Group) -> None:
    rows = L.held_rows(group)
    for d in group.values():
        d.resize((rows,))
