"""Arbin channel exports: CSV ("Data_Point, Test_Time, DateTime, … Charge_Capacity" columns) and Excel (.xlsx).

Covered: the comma-separated channel export with ``Test_Time`` in s, ``DateTime`` as Unix seconds,
``Current`` in A (positive charging), ``Voltage`` in V and ``Charge_Capacity``/``Discharge_Capacity``
counters in Ah that restart every cycle (the TRI/BEEP files, docs/analysis.md §3.1), with the
optional ``<name>_Metadata.csv`` beside it (its ``schedule_version`` becomes the version).

The Excel export of MITS Pro (``.xlsx``, read with openpyxl): a ``Global_Info`` sheet and one
``Channel_<unit>-<channel>`` sheet per channel (continued as ``Channel_1-008_2``, … when one sheet
overflows), columns with their units in brackets: ``Data_Point, Test_Time(s), Date_Time,
Step_Time(s), Step_Index, Cycle_Index, Current(A), Voltage(V), Charge_Capacity(Ah),
Discharge_Capacity(Ah)``, …; mA, mAh, mV and h columns are scaled.  One file is one cell: a
workbook holding several channels is refused.  ``Statistics_*`` sheets are not read (the data
rows are the source of truth).  Arbin ``.res`` (Access) files and the old ``.xls`` exports are not
covered.
"""

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ._common import MISSING_EXTRA, SourceFileError, Table, Text, check_time, read_lines, read_text, segment_increments

FORMAT = "arbin-csv"
XLSX_FORMAT = "arbin-xlsx"
SIGNATURE = ("Data_Point", "Test_Time", "Charge_Capacity")
ZIP_MAGIC = b"PK\x03\x04"
XLSX_SUFFIXES = (".xlsx", ".xlsm")
CHANNEL_SHEET = re.compile(r"^(Channel_?\d+(?:-\d+)?)(?:_(\d+))?$")
#: Scale from a bracketed unit to the SI unit cellrig stores (temperatures stay in degC).
UNITS = {"": 1.0, "s": 1.0, "h": 3600.0, "A": 1.0, "mA": 1e-3, "V": 1.0, "mV": 1e-3, "Ah": 1.0, "mAh": 1e-3}
UNITS |= {"A.h": 1.0, "mA.h": 1e-3, "C": 1.0, "°C": 1.0, "degC": 1.0}
SCALED = ("Test_Time", "Voltage", "Current", "Charge_Capacity", "Discharge_Capacity")
GLOBAL_INFO = ["Channel", "Start DateTime", "Schedule File Name", "Software Version", "Schedule Version", "Creator"]


def matches(lines: list[str]) -> bool:
    return bool(lines) and all(name in lines[0] for name in SIGNATURE)


def metadata_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}_Metadata{path.suffix}")


def read(path: Path) -> Table:
    """Parse an Arbin CSV export (and its ``_Metadata`` file if present)."""
    text = read_text(path, read_lines(path, fallback="cp1252"), 0, ",")
    rows = _rows(text)
    epoch = text.optional("DateTime")
    start = None if epoch is None else float(epoch[0] - rows.time[0])
    companion = metadata_path(path)
    meta = _metadata(companion)
    return _table(
        rows,
        format=FORMAT,
        version=meta.get("schedule_version", "unknown (no _Metadata file)"),
        started=None if start is None else pd.Timestamp(start, unit="s", tz="UTC").isoformat(),
        companions=[companion] if companion.exists() else [],
        meta=meta | ({} if start is None else {"started_unix": start}),
    )


def sniff_xlsx(path: Path, head: bytes) -> bool:
    """A zip that is a workbook (by its suffix, or by holding ``xl/workbook.xml``)."""
    if not head.startswith(ZIP_MAGIC):
        return False
    if path.suffix.lower() in XLSX_SUFFIXES:
        return True
    try:
        with zipfile.ZipFile(path) as zf:
            return "xl/workbook.xml" in zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def read_xlsx(path: Path) -> Table:
    """Parse an Arbin MITS Pro Excel export: the ``Channel_*`` sheets of one channel, in order."""
    book = _workbook(path)
    names = _channel_sheets(path, book)
    sheets = [_sheet_text(path, name, book[name]) for name in names]
    parts = [_rows(text) for text in sheets]
    for before, after, text in zip(parts, parts[1:], sheets[1:], strict=False):
        if after.time[0] < before.time[-1]:
            raise text.error(f"time runs backwards across sheets ({before.time[-1]} s, then {after.time[0]} s)", 0)
    rows = _Rows.concat(parts)
    stamp = _first_stamp(sheets[0])
    started = None if stamp is None else stamp - pd.Timedelta(seconds=float(rows.time[0]))
    info = _global_info(book)
    software = info.get("Software Version")
    return _table(
        rows,
        format=XLSX_FORMAT,
        version=f"MITS Pro Excel export{f' (software {software})' if software else ''}",
        started=None if started is None else f"{started.isoformat()} (tester's local time)",
        meta={"sheets": ", ".join(names), **info},
    )


# -- shared by both exports -----------------------------------------------------------------------------


@dataclass
class _Rows:
    """The columns an Arbin export contributes, validated and in SI units."""

    time: np.ndarray
    voltage: np.ndarray
    current: np.ndarray
    step: np.ndarray
    cycle: np.ndarray
    charged: np.ndarray  # the source's counters, Ah
    discharged: np.ndarray
    temperature: np.ndarray | None

    @classmethod
    def concat(cls, parts: list["_Rows"]) -> "_Rows":
        if len(parts) == 1:
            return parts[0]
        temps = [p.temperature for p in parts]
        temperature = None if any(t is None for t in temps) else np.concatenate(temps)
        names = ("time", "voltage", "current", "step", "cycle", "charged", "discharged")
        columns = {n: np.concatenate([getattr(p, n) for p in parts]) for n in names}
        return cls(**columns, temperature=temperature)


def _rows(text: Text) -> _Rows:
    """The columns of one CSV file or sheet; column names may carry units in brackets (``Current(A)``)."""
    units = _units(text)

    def column(name: str) -> np.ndarray:
        label, scale = units[name]
        return text.numbers(label, scale=scale)

    time = column("Test_Time")
    check_time(text, time)
    temperature = next((n for n in units if n == "Temperature" or n.startswith("Aux_Temperature")), None)
    return _Rows(
        time=time,
        voltage=column("Voltage"),
        current=column("Current"),
        step=column("Step_Index").astype("i4"),
        cycle=column("Cycle_Index").astype("i4"),
        charged=column("Charge_Capacity"),
        discharged=column("Discharge_Capacity"),
        temperature=None if temperature is None else text.optional(units[temperature][0]),
    )


def _units(text: Text) -> dict[str, tuple[str, float]]:
    """Plain column name -> (column as in the source, scale to SI), for ``Name``, ``Name(unit)``, ``Name (unit)``."""
    out = {}
    for label in map(str, text.frame.columns):
        match = re.fullmatch(r"\s*(.*?)\s*(?:\((.*)\))?\s*", label)
        name, unit = match.group(1).replace(" ", "_"), (match.group(2) or "").strip()
        if name in SCALED and unit not in UNITS:
            raise text.error(f"column {label!r}: unit {unit!r} is not one of {', '.join(u for u in UNITS if u)}")
        out.setdefault(name, (label, UNITS.get(unit, 1.0)))
    for required in (*SCALED, "Step_Index", "Cycle_Index"):
        if required not in out:
            raise text.error(f"no column {required!r} (columns: {', '.join(map(str, text.frame))})")
    return out


def _table(rows: _Rows, **fields) -> Table:
    """The normalised table: charge per interval from the counters, which restart every cycle."""
    charged = segment_increments(rows.charged, rows.cycle)
    discharged = segment_increments(rows.discharged, rows.cycle)
    return Table(
        time=rows.time,
        voltage=rows.voltage,
        current=rows.current,
        step=rows.step,
        cycle=rows.cycle,
        charge=charged - discharged,
        temperature=rows.temperature,
        **fields,
    )


# -- CSV companion and Excel sheets ---------------------------------------------------------------------


def _metadata(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    try:
        frame = pd.read_csv(path, dtype=str)  # quoted fields hold commas: let the CSV parser count them
    except (ValueError, UnicodeDecodeError) as exc:
        raise SourceFileError(path, f"unreadable test metadata ({exc})") from None
    if len(frame) != 1:
        raise SourceFileError(path, f"expected one row of test metadata, found {len(frame)}")
    keep = ("test_id", "schedule_file_name", "schedule_version", "first_start_datetime", "item_id")
    return {k: str(frame[k].iloc[0]) for k in keep if k in frame and not pd.isna(frame[k].iloc[0])}


def _workbook(path: Path) -> dict[str, pd.DataFrame]:
    """Every sheet as read (no header row taken), or a SourceFileError for a damaged workbook."""
    try:
        return pd.read_excel(io.BytesIO(path.read_bytes()), sheet_name=None, header=None, engine="openpyxl")
    except ImportError:
        raise SourceFileError(path, f"reading Arbin Excel exports needs openpyxl: {MISSING_EXTRA}") from None
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
        raise SourceFileError(path, f"not a readable .xlsx workbook (truncated or damaged?): {exc}") from None


def _channel_sheets(path: Path, book: dict[str, pd.DataFrame]) -> list[str]:
    """The ``Channel_*`` sheet names in order (``Channel_1-008``, ``Channel_1-008_2``, …), all of one channel."""
    found = [(name, CHANNEL_SHEET.match(name)) for name in book]
    found = [(name, m) for name, m in found if m]
    if not found:
        raise SourceFileError(path, f"no Channel_* sheet (sheets: {', '.join(book)})")
    channels = sorted({m.group(1) for _, m in found})
    if len(channels) > 1:
        raise SourceFileError(path, f"holds channels {', '.join(channels)}: export one channel per file (one cell)")
    found.sort(key=lambda item: int(item[1].group(2) or 1))
    return [name for name, _ in found]


def _sheet_text(path: Path, name: str, raw: pd.DataFrame) -> Text:
    """A sheet's first row as column names and the rest as data, numbered as Excel shows the rows."""
    unit = f"sheet {name!r} row"
    if raw.empty:
        raise SourceFileError(path, "empty sheet (no column names)", 1, unit=unit)
    header = [str(v).strip() for v in raw.iloc[0]]
    body = raw.iloc[1:].dropna(how="all")
    if body.empty:
        raise SourceFileError(path, "no data rows after the column names", 1, unit=unit)
    frame = pd.DataFrame(body.to_numpy(), columns=header)
    frame = frame.loc[:, [h not in ("", "nan") for h in header]]
    return Text(path, frame, body.index.to_numpy() + 1, unit=unit)


def _first_stamp(text: Text) -> pd.Timestamp | None:
    column = next((c for c in text.frame.columns if str(c).replace(" ", "_") in ("Date_Time", "DateTime")), None)
    if column is None:
        return None
    stamp = pd.to_datetime(text.frame[column].iloc[0], errors="coerce")
    return None if pd.isna(stamp) else stamp


def _global_info(book: dict[str, pd.DataFrame]) -> dict[str, str]:
    """From ``Global_Info``: the values under the labels that name the test (the row below each label)."""
    sheet = book.get("Global_Info")
    if sheet is None:
        return {}
    out = {}
    cells = sheet.to_numpy()
    for r, c in zip(*np.nonzero(np.isin(cells.astype(str), GLOBAL_INFO)), strict=True):
        value = cells[r + 1, c] if r + 1 < len(cells) else None
        if value is not None and not pd.isna(value):
            out[str(cells[r, c])] = str(value)
    return out
