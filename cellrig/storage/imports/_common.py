"""What every importer shares: the parsed table, text parsing with line numbers, and the atomic run-file write."""

import gzip
import hashlib
import io
import os
import uuid
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._errors import RunExistsError
from .._layout import Column
from .._writer import RunWriter

#: The cycler stream of an imported run: the columns of a cellrig run, plus temperature where the source has one.
COLUMNS = {
    "voltage": Column("V", "f8", "cell voltage"),
    "current": Column("A", "f8", "current, positive charging (interval mean where the source counts charge)"),
    "step": Column("", "i4", "the source's step number"),
    "cycle": Column("", "i4", "cycle number, from 1"),
}
TEMPERATURE = Column("degC", "f8", "temperature the source logged with the cycler data")

#: The largest source file imported (on disk, and a ``.gz`` once unpacked).
MAX_SOURCE_BYTES = 1 << 30
MISSING_EXTRA = "install the optional readers with: pip install 'cellrig[imports]'"

#: Intervals shorter than this keep the sampled current: a charge counter's last digit is too coarse over them.
MIN_COUNTER_INTERVAL = 1.0  # s


class SourceFileError(ValueError):
    """A source file is malformed or truncated; the message names the file and the line.

    Binary and spreadsheet sources number records or sheet rows instead: ``unit`` says which
    (``"record"``, ``"sheet 'Channel_1-008' row"``); ``line`` is that number.
    """

    def __init__(self, path: str | os.PathLike, reason: str, line: int | None = None, *, unit: str = "line") -> None:
        self.path, self.line = Path(path), line
        where = f"{self.path}, {unit} {line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {reason}")


@dataclass
class Table:
    """One cycler's data as parsed from a source file, in SI units with current positive on charge.

    ``charge`` is the charge (Ah, signed) the source counted over each row's interval, or None;
    ``extra`` holds further columns to keep (name -> values and declaration); ``companions`` are
    other files read with the source; ``nominal_capacity`` (Ah) is one the source states.
    """

    time: np.ndarray
    voltage: np.ndarray
    current: np.ndarray
    step: np.ndarray
    cycle: np.ndarray
    format: str
    version: str
    charge: np.ndarray | None = None
    temperature: np.ndarray | None = None
    started: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, tuple[np.ndarray, Column]] = field(default_factory=dict)
    companions: list[Path] = field(default_factory=list)
    nominal_capacity: float | None = None


@dataclass(frozen=True)
class Reader:
    """One source format: its name, its parser, and how to recognise it.

    ``matches`` looks at the first lines of a text source; ``sniff`` at the path and first
    bytes of a binary one (a zip, a vendor's magic number).
    """

    format: str
    read: Callable[[Path], Table]
    matches: Callable[[list[str]], bool] | None = None
    sniff: Callable[[Path, bytes], bool] | None = None


@dataclass
class Text:
    """A delimited table: the frame plus the 1-based number of each row in the source.

    ``unit`` names what those numbers count: file lines for text, records or sheet rows otherwise.
    """

    path: Path
    frame: pd.DataFrame
    lines: np.ndarray
    unit: str = "line"

    def error(self, reason: str, k: int | None = None) -> SourceFileError:
        """An error at row ``k`` (0-based in the frame), or about the whole source."""
        return SourceFileError(self.path, reason, None if k is None else int(self.lines[k]), unit=self.unit)

    def column(self, name: str) -> pd.Series:
        """A required column as it was read."""
        if name not in self.frame:
            raise self.error(f"no column {name!r} (columns: {', '.join(map(str, self.frame))})")
        return self.frame[name]

    def numbers(self, column: str, *, scale: float = 1.0) -> np.ndarray:
        """A required column as float64; a missing, empty or non-numeric cell raises naming its line."""
        raw = self.column(column)
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype="f8")
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            k = bad[0]
            what = "empty" if pd.isna(raw.iloc[k]) else f"{raw.iloc[k]!r} is not a number"
            raise self.error(f"column {column!r}: {what}", k)
        return values * scale

    def optional(self, column: str, *, scale: float = 1.0) -> np.ndarray | None:
        """An optional column as float64, or None when absent or not numeric throughout."""
        if column not in self.frame:
            return None
        values = pd.to_numeric(self.frame[column], errors="coerce").to_numpy(dtype="f8") * scale
        return values if np.isfinite(values).all() else None


def read_text(path: Path, lines: list[str], header: int, sep: str) -> Text:
    """Parse ``lines[header]`` (column names) and the rows after it; every row must have the header's fields."""
    fields = lines[header].count(sep)
    rows = [(n, line) for n, line in enumerate(lines[header + 1 :], start=header + 2) if line.strip()]
    if not rows:
        raise SourceFileError(path, "no data rows after the column names", header + 1)
    for n, line in rows:
        if line.count(sep) != fields:
            raise SourceFileError(path, f"{line.count(sep) + 1} fields where the header has {fields + 1}", n)
    body = "\n".join(line for _, line in [(0, lines[header]), *rows])
    frame = pd.read_csv(io.StringIO(body), sep=sep, keep_default_na=False, na_values=[""], low_memory=False)
    return Text(path, frame, np.array([n for n, _ in rows]))


def read_source(path: Path, size: int = MAX_SOURCE_BYTES) -> bytes:
    """The first ``size`` bytes of a source file (``.gz`` unpacked); more than :data:`MAX_SOURCE_BYTES` is refused."""
    gz = path.suffix.lower() == ".gz"
    try:
        with (gzip.open if gz else open)(path, "rb") as fh:
            data = fh.read(min(size, MAX_SOURCE_BYTES + 1))
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        reason = f"not a readable gzip file (truncated or damaged?): {exc}" if gz else f"cannot read it: {exc}"
        raise SourceFileError(path, reason) from None
    if len(data) > MAX_SOURCE_BYTES:
        raise SourceFileError(path, f"larger than {MAX_SOURCE_BYTES >> 30} GiB{' unpacked' if gz else ''}")
    return data


def read_lines(path: Path, *, fallback: str | None = None) -> list[str]:
    """A text file's lines (``.gz`` unpacked), as UTF-8 or else the ``fallback`` encoding.

    Undecodable bytes raise naming the line.
    """
    data = read_source(path)
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        if fallback is None:
            raise SourceFileError(path, f"not UTF-8 text ({exc.reason})", data[: exc.start].count(b"\n") + 1) from None
        text = data.decode(fallback)
    return text.splitlines()


def segment_increments(counter: np.ndarray, *keys: np.ndarray) -> np.ndarray:
    """Per-row increments of a counter that restarts from zero when any of ``keys`` changes or its value drops."""
    step = np.diff(counter, prepend=0.0)
    restart = step < 0
    restart[0] = True
    for key in keys:
        restart[1:] |= key[1:] != key[:-1]
    return np.where(restart, counter, step)


def check_time(text: Text, time: np.ndarray) -> None:
    """Time never runs backwards."""
    back = np.flatnonzero(np.diff(time) < 0)
    if len(back):
        k = back[0] + 1
        raise text.error(f"time runs backwards ({time[k - 1]} s, then {time[k]} s)", k)


def from_one(cycle: np.ndarray) -> tuple[np.ndarray, int]:
    """Cycle numbers counted from 1 (a 0-based counter is shifted by one), and the offset added."""
    offset = 1 if len(cycle) and cycle.min() == 0 else 0
    return (cycle + offset).astype("i4"), offset


def interval_current(table: Table) -> tuple[np.ndarray, str]:
    """The current as cellrig stores it, and how it was obtained.

    cellrig rows hold the mean current over the interval ending at the row.  Where the source
    counts charge, that mean is ΔQ/Δt over intervals of at least ``MIN_COUNTER_INTERVAL``, so
    per-cycle capacities integrate to the source's own counters; shorter intervals (and
    sources without counters) keep the sampled current, which at cycler logging rates differs
    from the mean by less than the logging resolution.
    """
    if table.charge is None:
        return table.current, "sampled current"
    dt = np.diff(table.time, prepend=table.time[0])
    use = dt >= MIN_COUNTER_INTERVAL
    mean = np.divide(table.charge * 3600.0, dt, out=np.zeros_like(dt), where=use)
    current = np.where(use, mean, table.current)
    return current, f"interval mean ΔQ/Δt from the source's charge counter where Δt ≥ {MIN_COUNTER_INTERVAL} s"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_meta(table: Table, path: Path, current_source: str, cycle_offset: int, cell: Mapping) -> dict:
    """The run's /meta: the cell, and the source files (name, sha256), format, version and conventions used."""
    source = {
        "file": path.name,
        "sha256": sha256(path),
        "format": table.format,
        "version": table.version,
        "started": table.started,
        "current": current_source,
        "cycle_offset": cycle_offset,
        **table.meta,
    }
    if table.companions:
        source["companions"] = {p.name: sha256(p) for p in table.companions}
    return {"cell": dict(cell), "protocol": {"name": f"imported {table.format}", "text": ""}, "source": source}


def write_run(table: Table, target: Path, meta: Mapping[str, Any], current: np.ndarray) -> Path:
    """Write ``table`` as a finished run at ``target`` (never an overwrite).

    The file is written under a hidden temporary name in the target folder and renamed only
    when complete, so a failed import leaves nothing behind and a visible run is always whole.
    """
    if target.exists():
        raise RunExistsError(f"{target}: a run file is never overwritten")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    streams = {"cycler": dict(COLUMNS)}
    rows = {"time": table.time, "voltage": table.voltage, "current": current, "step": table.step, "cycle": table.cycle}
    if table.temperature is not None:
        streams["cycler"]["temperature"] = TEMPERATURE
        rows["temperature"] = table.temperature
    for name, (values, column) in table.extra.items():
        streams["cycler"][name] = column
        rows[name] = values
    try:
        with RunWriter.create(partial, streams, meta, cycle_stream="cycler", flush_interval=3600, fsync=False) as w:
            w.append("cycler", **rows)
        os.link(partial, target)  # fails if the target appeared meanwhile: still never an overwrite
    except FileExistsError:
        raise RunExistsError(f"{target}: a run file is never overwritten") from None
    finally:
        partial.unlink(missing_ok=True)
        Path(f"{partial}.writer").unlink(missing_ok=True)
    return target
