"""Neware BTS binary files (``.nda``, ``.ndax``), read with NewareNDA.

Covered: whatever ``NewareNDA.read`` decodes (NewareNDA 2026.6: ``.nda`` versions 29 and 130 —
BTS 9.0 and 9.1 — and ``.ndax`` zips whose ``data.ndc`` is of ndc version 2, 5, 11, 14, 16 or
17).  NewareNDA's columns: ``Time`` (the step clock, s: it restarts at every step, so test time
is each step's clock added to the end of the steps before it; a file whose clock runs on across
steps is taken as is), ``Voltage`` (V), ``Current(mA)`` (its sign forced by ``Status``: ``…_DChg``
negative, ``…_Chg`` positive), ``Charge_Capacity(mAh)``/``Discharge_Capacity(mAh)`` (counters
that restart every step), ``Step_Index`` (the protocol's step number), ``Step`` (NewareNDA's
running count of steps, the key for those restarts), ``Cycle`` (the tester's cycle counter, from
1; where the records carry none, as in BTS 9.0 ``.nda``, NewareNDA's software count in its
``auto`` mode: a new cycle wherever the file's first kind of step, charge or discharge, comes back),
``Timestamp`` and the first auxiliary temperature ``T<n>`` (degC).  A ``.nda`` cut inside a record
is refused (NewareNDA would drop the partial record silently); errors in decoded values name the
1-based record.
"""

import logging
import mmap
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from ._common import MISSING_EXTRA, SourceFileError, Table, Text, check_time, segment_increments

FORMAT = "neware"
NDA_MAGIC = b"NEWARE"
ZIP_MAGIC = b"PK\x03\x04"
NDA_V29_RECORD = 86  # bytes
NDA_V29_START = b"\x00\x00\x00\x00\x55\x00"  # 4 bytes before the first record, as NewareNDA looks for it
#: What ``NewareNDA.read`` raises for a file it cannot decode (an unknown range or status is a KeyError).
LIBRARY_ERRORS = (ValueError, KeyError, IndexError, TypeError, EOFError, NotImplementedError, OSError)


def sniff(path: Path, head: bytes) -> bool:
    """An ``.nda`` (magic ``NEWARE``) or an ``.ndax`` (a zip named so, or one holding ``data.ndc``)."""
    if head.startswith(NDA_MAGIC):
        return True
    if not head.startswith(ZIP_MAGIC):
        return False
    if path.suffix.lower() == ".ndax":
        return True
    try:
        with zipfile.ZipFile(path) as zf:
            return "data.ndc" in zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def read(path: Path) -> Table:
    """Parse a Neware ``.nda`` or ``.ndax`` file."""
    ndax = path.read_bytes()[:4] == ZIP_MAGIC
    if not ndax:
        _check_nda_records(path)
    frame, software_cycles = _frame(path, ndax)
    text = Text(path, frame, np.arange(1, len(frame) + 1), unit="record")
    clock = text.numbers("Time")
    runs = text.numbers("Step").astype("i8")
    time = clock_to_test_time(clock, runs)
    check_time(text, time)
    status = frame["Status"].astype(str).to_numpy()
    current = signed_current(text.numbers("Current(mA)", scale=1e-3), status)
    charged = segment_increments(text.numbers("Charge_Capacity(mAh)", scale=1e-3), runs)
    discharged = segment_increments(text.numbers("Discharge_Capacity(mAh)", scale=1e-3), runs)
    temperature = next((c for c in sorted(map(str, frame.columns)) if c[:1] == "T" and c[1:].isdigit()), None)
    meta = _metadata(path)
    started = _started(frame, time)
    return Table(
        time=time,
        voltage=text.numbers("Voltage"),
        current=current,
        step=text.numbers("Step_Index").astype("i4"),
        cycle=text.numbers("Cycle").astype("i4"),
        charge=charged - discharged,
        temperature=None if temperature is None else text.optional(temperature),
        format=FORMAT,
        version=_version(path, ndax, meta),
        started=started[0],
        meta={
            "reader": f"NewareNDA {_library_version()}",
            "cycle_counter": "NewareNDA software cycle (auto mode)" if software_cycles else "the tester's",
            **({"temperature_column": temperature} if temperature else {}),
            **started[1],
            **{k: v for k, v in meta.items() if isinstance(v, str | int | float) and k != "nda_version"},
        },
    )


def clock_to_test_time(clock: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """Seconds since the first step started, from a clock that restarts at every step.

    ``runs`` numbers the steps as run.  If the clock never drops where a step starts it already
    counts test time and is returned as it is.
    """
    starts = np.flatnonzero(runs[1:] != runs[:-1]) + 1
    if not len(starts) or not (clock[starts] < clock[starts - 1]).any():
        return clock.astype("f8")
    offset = np.zeros(len(clock))
    offset[starts] = clock[starts - 1]  # each step begins where the one before it ended
    return clock.astype("f8") + np.cumsum(offset)


def signed_current(current: np.ndarray, status: np.ndarray) -> np.ndarray:
    """Current positive on charge: ``…_DChg`` steps discharge, ``…_Chg`` steps charge, others keep their sign."""
    discharging = np.char.endswith(status.astype(str), "_DChg")
    charging = np.char.endswith(status.astype(str), "_Chg")
    return np.where(discharging, -np.abs(current), np.where(charging, np.abs(current), current))


def _frame(path: Path, ndax: bool) -> tuple[pd.DataFrame, bool]:
    """NewareNDA's table of every record, and whether its cycle is NewareNDA's own count."""
    try:
        import NewareNDA
    except ImportError:
        raise SourceFileError(path, f"reading Neware files needs NewareNDA: {MISSING_EXTRA}") from None
    suffix = ".ndax" if ndax else ".nda"
    if path.suffix.lower() != suffix:
        raise SourceFileError(path, f"a Neware {suffix} file must be named *{suffix} (NewareNDA goes by the name)")
    logging.getLogger("newarenda").setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():  # NewareNDA's own use of deprecated pandas calls is not the user's to fix
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="NewareNDA")
            warnings.filterwarnings("ignore", category=FutureWarning, module="NewareNDA")
            frame = NewareNDA.read(str(path), software_cycle_number=False, log_level="WARNING")
            software = len(frame) > 0 and bool((frame["Cycle"] == 0).all())  # BTS 9.0 records carry no cycle
            if software:
                frame = NewareNDA.read(str(path), software_cycle_number=True, cycle_mode="auto", log_level="WARNING")
    except (*LIBRARY_ERRORS, zipfile.BadZipFile) as exc:
        kind = "ndax (zip)" if ndax else "nda"
        reason = f"not a readable Neware {kind} file (truncated or damaged?): {type(exc).__name__}: {exc}"
        raise SourceFileError(path, reason) from None
    if frame.empty:
        raise SourceFileError(path, "no data records")
    return frame.reset_index(drop=True), software


def _check_nda_records(path: Path) -> None:
    """A version-29 ``.nda`` is a header then 86-byte records: a record cut short means a truncated file.

    The data start is found as NewareNDA finds it; a short tail that does not begin like a record
    (data ``0x55``, auxiliary ``0x65``) is left to NewareNDA, which ignores it.
    """
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        if len(mm) < 15 or mm[14] != 29:
            return  # version 130 files end in a footer record; NewareNDA stops there
        start = mm.find(NDA_V29_START)
        while start != -1 and start + 4 + NDA_V29_RECORD < len(mm):
            record = start + 4
            if mm[record + NDA_V29_RECORD] == 0x55 and mm[record + 12] != 0:
                break
            start = mm.find(NDA_V29_START, record)
        if start == -1:
            raise SourceFileError(path, "no data records (truncated before the data?)")
        whole, cut = divmod(len(mm) - start - 4, NDA_V29_RECORD)
        tail = mm[len(mm) - cut] if cut else None
    if tail in (0x55, 0x65):
        reason = f"truncated: the last record has {cut} of its {NDA_V29_RECORD} bytes"
        raise SourceFileError(path, reason, whole + 1, unit="record (data and auxiliary records counted)")


def _metadata(path: Path) -> dict:
    """NewareNDA's ``read_metadata`` flattened one level (``.ndax``: its XML files), or {} where it fails."""
    import NewareNDA

    try:
        meta = NewareNDA.read_metadata(path)
    except (*LIBRARY_ERRORS, zipfile.BadZipFile, SyntaxError):  # xml.etree's ParseError is a SyntaxError
        return {}
    flat = {}
    for key, value in meta.items():
        if isinstance(value, dict):
            for inner, attrs in value.items():
                if isinstance(attrs, dict):
                    flat |= {f"{key}.{inner}.{k}": v for k, v in attrs.items() if isinstance(v, str)}
        else:
            flat[key] = value
    return flat


def _version(path: Path, ndax: bool, meta: dict) -> str:
    if not ndax:
        parts = [f"nda version {meta.get('nda_version', '?')}"]
        parts += [str(meta[k]) for k in ("bts_version", "server_version", "client_version") if meta.get(k)]
        return ", ".join(parts)
    with zipfile.ZipFile(path) as zf:
        head = zf.read("data.ndc")[:3] if "data.ndc" in zf.namelist() else b""
    parts = [f"ndax, data.ndc version {head[2]}" if len(head) == 3 else "ndax"]
    server = meta.get("VersionInfo.ZwjVersion.SvrVer")
    if server:
        parts.append(f"BTS server {server}")
    return ", ".join(parts)


def _started(frame: pd.DataFrame, time: np.ndarray) -> tuple[str | None, dict]:
    """The start instant from the first record's timestamp (UTC where NewareNDA gives a zone)."""
    if "Timestamp" not in frame or pd.isna(frame["Timestamp"].iloc[0]):
        return None, {}
    first = pd.Timestamp(frame["Timestamp"].iloc[0]) - pd.Timedelta(seconds=float(time[0]))
    if first.tzinfo is None:
        return f"{first.isoformat()} (tester's local time)", {}
    return first.tz_convert("UTC").isoformat(), {"started_unix": first.timestamp()}


def _library_version() -> str:
    import NewareNDA

    return str(getattr(NewareNDA, "__version__", "unknown"))
