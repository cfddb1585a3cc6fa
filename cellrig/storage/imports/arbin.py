"""Arbin CSV exports ("Data_Point, Test_Time, DateTime, … Charge_Capacity, Discharge_Capacity" columns).

Covered: the comma-separated channel export with ``Test_Time`` in s, ``DateTime`` as Unix seconds,
``Current`` in A (positive charging), ``Voltage`` in V and ``Charge_Capacity``/``Discharge_Capacity``
counters in Ah that restart every cycle (reference/analysis.md §3.1, the TRI/BEEP files), with the
optional ``<name>_Metadata.csv`` beside it (its ``schedule_version`` becomes the version).  Arbin
``.res`` (Access) and Excel exports are not covered.
"""

from pathlib import Path

import pandas as pd

from ._common import SourceFileError, Table, check_time, read_lines, read_text, segment_increments

FORMAT = "arbin-csv"
SIGNATURE = ("Data_Point", "Test_Time", "Charge_Capacity")


def matches(lines: list[str]) -> bool:
    return bool(lines) and all(name in lines[0] for name in SIGNATURE)


def metadata_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}_Metadata{path.suffix}")


def read(path: Path) -> Table:
    """Parse an Arbin CSV export (and its ``_Metadata`` file if present)."""
    text = read_text(path, read_lines(path, fallback="cp1252"), 0, ",")
    time = text.numbers("Test_Time")
    check_time(text, time)
    cycle = text.numbers("Cycle_Index").astype("i4")
    charged = segment_increments(text.numbers("Charge_Capacity"), cycle)
    discharged = segment_increments(text.numbers("Discharge_Capacity"), cycle)
    epoch = text.optional("DateTime")
    started = None if epoch is None else pd.Timestamp(epoch[0] - time[0], unit="s", tz="UTC").isoformat()
    companion = metadata_path(path)
    meta = _metadata(companion)
    return Table(
        time=time,
        voltage=text.numbers("Voltage"),
        current=text.numbers("Current"),
        step=text.numbers("Step_Index").astype("i4"),
        cycle=cycle,
        charge=charged - discharged,
        temperature=text.optional("Temperature"),
        format=FORMAT,
        version=meta.get("schedule_version", "unknown (no _Metadata file)"),
        started=started,
        companions=[companion] if companion.exists() else [],
        meta=meta | ({} if epoch is None else {"started_unix": float(epoch[0] - time[0])}),
    )


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
