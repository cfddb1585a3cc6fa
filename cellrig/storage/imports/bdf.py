"""Battery Data Format (BDF) time series: read into a run file, and export a run's cycler stream.

Covered: CSV (``.csv``, ``.bdf``, ``.bdf.gz``) and Parquet (``.parquet``, ``.bdf.parquet``; needs
pyarrow) with the preferred labels of ontology 1.3.0 (batterydf 0.2.0, docs/analysis.md §3.5):
``Test Time / s``, ``Voltage / V``, ``Current / A`` (positive charging) required; ``Cycle Count / 1``,
``Step ID``, ``Temperature T1 / degC`` and ``Unix Time / s`` used when present.  The older
batterydf 0.1.0 labels ``Step Index / 1`` and ``Surface Temperature T1 / degC`` are read too.
Any other ``Quantity / unit`` column is kept as a column named after its quantity, so a cellrig
column without a BDF term survives the round trip as ``<name> / <units>``; columns that are not
numbers throughout (``Step Type``, text) are left out and listed in ``source.skipped_columns``.
A BDF file's current is taken as the interval mean that cellrig stores.  Errors in a Parquet
file name the 1-based row as its "line".
"""

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .._layout import Column
from .._reader import Run, open_run
from ._common import SourceFileError, Table, Text, check_time, read_lines, read_text

FORMAT = "bdf"
VERSION = "ontology 1.3.0 (batterydf 0.2.0 labels)"
LABELS = {  # cellrig column -> BDF preferred label (ontology 1.3.0)
    "time": "Test Time / s",
    "voltage": "Voltage / V",
    "current": "Current / A",
    "cycle": "Cycle Count / 1",
    "step": "Step ID",
    "temperature": "Temperature T1 / degC",
}
OLD_LABELS = {"Step Index / 1": "step", "Surface Temperature T1 / degC": "temperature"}  # batterydf 0.1.0
UNIX_TIME = "Unix Time / s"
PARQUET_SUFFIXES = (".parquet", ".pq")


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() in PARQUET_SUFFIXES


def matches(lines: list[str]) -> bool:
    return bool(lines) and all(LABELS[c] in lines[0] for c in ("time", "voltage", "current"))


def export_bdf(run: Run | str | Path, path: str | Path) -> Path:
    """Write a run's cycler stream as a BDF table (Parquet for a ``.parquet`` name, else CSV); never overwrites.

    ``Unix Time / s`` is written when the start instant is known in UTC (not for an import from
    a source that logs local time only).  Other streams are not exported: a BDF file is one
    time series per cell.
    """
    run = run if isinstance(run, Run) else open_run(run)
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path}: an export is never overwritten")
    ds = run[run.cycle_stream or "cycler"]
    frame = pd.DataFrame({LABELS["time"]: ds["time"].values})
    started = _start_instant(run)
    if started is not None:
        frame[UNIX_TIME] = started + ds["time"].values
    for name, var in ds.data_vars.items():
        frame[LABELS.get(name) or f"{name} / {var.attrs.get('units') or '1'}"] = var.values
    partial = path.with_name(f".{path.name}.partial")
    try:
        if is_parquet(path):
            _to_parquet(frame, partial)
        else:
            frame.to_csv(partial, index=False, float_format="%.17g")
        partial.rename(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def read(path: Path) -> Table:
    """Parse a BDF CSV or Parquet file."""
    if is_parquet(path):
        frame = _parquet(path)
        text = Text(path, frame, np.arange(1, len(frame) + 1))  # Parquet has rows, not lines: row numbers
    else:
        text = read_text(path, read_lines(path), 0, ",")
    names = _names(text.frame.columns)
    if len(names) != len(text.frame.columns):
        raise SourceFileError(path, f"two columns map to one name: {list(text.frame.columns)}", 1)
    text.frame.columns = list(names)
    time = text.numbers("time")
    check_time(text, time)
    rows = len(time)
    extra = {n: (text.optional(n), names[n]) for n in names if n not in (*LABELS, "unix_time")}
    skipped = sorted(n for n, (values, _) in extra.items() if values is None)
    unix = text.optional("unix_time")
    started = None if unix is None else _iso(unix[0] - time[0])
    return Table(
        time=time,
        voltage=text.numbers("voltage"),
        current=text.numbers("current"),
        step=text.numbers("step").astype("i4") if "step" in names else np.zeros(rows, "i4"),
        cycle=text.numbers("cycle").astype("i4") if "cycle" in names else np.ones(rows, "i4"),
        temperature=text.numbers("temperature") if "temperature" in names else None,
        format=FORMAT,
        version=VERSION,
        started=started,
        meta=({"started_unix": float(unix[0] - time[0])} if unix is not None else {})
        | ({"skipped_columns": skipped} if skipped else {}),
        extra={n: (values, Column(units)) for n, (values, units) in extra.items() if values is not None},
    )


def _names(labels: pd.Index) -> dict[str, str]:
    """cellrig column name -> units for each BDF label (in order)."""
    inverse = {v: k for k, v in LABELS.items()} | OLD_LABELS | {UNIX_TIME: "unix_time"}
    out = {}
    for label in map(str, labels):
        if label in inverse:
            out[inverse[label]] = ""
            continue
        quantity, _, units = label.partition(" / ")
        out[re.sub(r"\W+", "_", quantity.strip()).strip("_").lower()] = "" if units in ("", "1") else units
    return out


def _to_parquet(frame: pd.DataFrame, path: Path) -> None:
    try:
        frame.to_parquet(path, index=False)
    except ImportError as exc:
        raise ImportError(f"writing BDF Parquet needs pyarrow ({exc})") from None


def _parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except ImportError as exc:
        raise SourceFileError(path, f"reading BDF Parquet needs pyarrow ({exc})") from None
    except Exception as exc:  # pyarrow reports a damaged file in many ways
        raise SourceFileError(path, f"not a readable Parquet file ({exc})") from None


def _start_instant(run: Run) -> float | None:
    """Unix time of the run's start: recorded by cellrig, or an imported source's if it stated one in UTC."""
    if "source" not in run.meta:
        return dt.datetime.fromisoformat(run.attrs["started"]).timestamp()
    return run.meta["source"].get("started_unix")


def _iso(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix, dt.UTC).isoformat(timespec="microseconds")
