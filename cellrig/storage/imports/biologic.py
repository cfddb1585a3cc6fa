"""BioLogic EC-Lab text exports (``.mpt`` and "Export as text"), including Modulo Bat (MB) techniques.

Covered: EC-Lab ASCII files with their ``EC-Lab ASCII FILE`` / ``Nb header lines : N`` block
(tab separated), and header-less exports whose first line holds the column names (semicolon or
tab separated, as in the TRI/BEEP MB file).  Columns used: ``time/s`` (seconds, or a
``MM/DD/YYYY hh:mm:ss.fff`` date stamp as in that file), ``Ecell/V`` or ``Ewe/V``, ``I/mA`` or
``<I>/mA``, ``dq/mA.h`` (the charge of each row's interval; EC-Lab's ``Q charge``/``Q discharge``
counters are its running sums), ``Ns`` (step), ``cycle number`` (from 0) and ``Temperature/°C`` if
filled in.  EC-Lab writes cp1252 (``°``, ``µ``); a UTF-8 re-save as in the sample reads too.

Binary EC-Lab ``.mpr`` files are read with galvani (``galvani.BioLogic.MPRfile``): data modules
of version 0, 2 and 3 with the module headers of EC-Lab before and from 11.50, as far as galvani
knows their column IDs.  Columns used: ``time/s``, ``Ewe-Ece/V`` (the cell voltage of a
3-electrode set-up) or else ``Ewe/V`` / ``<Ewe>/V``, ``I/mA`` or ``<I>/mA``, ``dq/mA.h`` /
``dQ/mA.h`` (or the differences of ``(Q-Qo)/mA.h``), ``Ns`` or else the running count of the
``Ns changes`` flag (from 0), ``cycle number`` (from 0, else ``half cycle`` // 2) and
``Temperature/°C``.  The start instant is the LOG module's timestamp (the instrument PC's local
time), else the settings module's date.  A cut or damaged file is refused as a whole: an ``.mpr``
has no lines, and galvani does not say where it stopped.
"""

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ._common import MISSING_EXTRA, SourceFileError, Table, Text, check_time, read_lines, read_text

if TYPE_CHECKING:
    from galvani.BioLogic import MPRfile

FORMAT = "biologic-text"
MPR_FORMAT = "biologic-mpr"
MPR_MAGIC = b"BIO-LOGIC MODULAR FILE"
MPR_VOLTAGES = ("Ewe-Ece/V", "Ewe/V", "<Ewe>/V")
VOLTAGES = ("Ecell/V", "Ewe/V")
CURRENTS = ("I/mA", "<I>/mA")
STAMP = "%m/%d/%Y %H:%M:%S.%f"


def matches(lines: list[str]) -> bool:
    if not lines:
        return False
    return lines[0].startswith("EC-Lab ASCII FILE") or ("time/s" in lines[0] and any(v in lines[0] for v in VOLTAGES))


def read(path: Path) -> Table:
    """Parse an EC-Lab text export."""
    lines = read_lines(path, fallback="cp1252")
    header, version = _header(path, lines)
    sep = ";" if lines[header].count(";") > lines[header].count("\t") else "\t"
    text = read_text(path, lines, header, sep)
    time, started = _time(text)
    check_time(text, time)
    return Table(
        time=time,
        voltage=text.numbers(_first(text, VOLTAGES)),
        current=text.numbers(_first(text, CURRENTS), scale=1e-3),
        step=text.numbers("Ns").astype("i4"),
        cycle=text.numbers("cycle number").astype("i4"),
        charge=text.optional("dq/mA.h", scale=1e-3),
        temperature=text.optional("Temperature/°C"),
        format=FORMAT,
        version=version,
        started=started,
    )


def _header(path: Path, lines: list[str]) -> tuple[int, str]:
    """Index of the column-name line, and which variant of the export this is."""
    if not lines[0].startswith("EC-Lab ASCII FILE"):
        return 0, "EC-Lab text export without a header block (column names on line 1)"
    for n, line in enumerate(lines[:5], start=1):
        if line.startswith("Nb header lines"):
            try:
                return int(line.split(":")[1]) - 1, "EC-Lab ASCII FILE (.mpt) with header block"
            except (IndexError, ValueError):
                raise SourceFileError(path, f"cannot read the header line count from {line!r}", n) from None
    raise SourceFileError(path, "no 'Nb header lines' line in the EC-Lab header block", 2)


def _first(text: Text, names: tuple[str, ...]) -> str:
    return next((n for n in names if n in text.frame), names[0])


def _time(text: Text) -> tuple[np.ndarray, str | None]:
    """Seconds since the first row, and the first row's date stamp when the column holds stamps."""
    raw = text.frame.get("time/s")
    if raw is None or pd.api.types.is_numeric_dtype(raw):
        return text.numbers("time/s"), None
    stamps = pd.to_datetime(raw, format=STAMP, errors="coerce")
    bad = np.flatnonzero(stamps.isna().to_numpy())
    if len(bad):
        k = bad[0]
        raise text.error(f"column 'time/s': {raw.iloc[k]!r} is not a time", k)
    return (stamps - stamps.iloc[0]).dt.total_seconds().to_numpy(), f"{stamps.iloc[0].isoformat()} (local time)"


# -- binary .mpr ----------------------------------------------------------------------------------------


def sniff_mpr(path: Path, head: bytes) -> bool:
    return head.startswith(MPR_MAGIC)


def read_mpr(path: Path) -> Table:
    """Parse an EC-Lab ``.mpr`` file with galvani."""
    mpr = _mpr(path)
    frame = pd.DataFrame({name: mpr.data[name] for name in mpr.data.dtype.names if name != "flags"})
    for flag in mpr.flags_dict:
        frame[flag] = mpr.get_flag(flag)
    if frame.empty:
        raise SourceFileError(path, "no data points")
    text = Text(path, frame, np.arange(1, len(frame) + 1), unit="data point")
    time = text.numbers("time/s")
    check_time(text, time)
    started = getattr(mpr, "timestamp", None)
    return Table(
        time=time,
        voltage=text.numbers(_first(text, MPR_VOLTAGES)),
        current=text.numbers(_first(text, CURRENTS), scale=1e-3),
        step=_mpr_step(text),
        cycle=_mpr_cycle(text),
        charge=_mpr_charge(text),
        temperature=text.optional("Temperature/°C"),
        format=MPR_FORMAT,
        version=f"EC-Lab .mpr, data module version {mpr.version}{_header_variant(mpr)}",
        started=f"{started.isoformat()} (local time)" if started else f"{mpr.startdate.isoformat()} (date only)",
        meta={"columns": ", ".join(frame.columns)},
    )


def _mpr(path: Path) -> "MPRfile":
    try:
        from galvani.BioLogic import MPRfile
    except ImportError:
        raise SourceFileError(path, f"reading BioLogic .mpr files needs galvani: {MISSING_EXTRA}") from None
    try:
        with path.open("rb") as fh:
            return MPRfile(fh)
    except (ValueError, OSError, AssertionError, NotImplementedError) as exc:
        # galvani reports a cut file as "Unexpected end of file", a mis-sized data block with a bare assert
        reason = str(exc).split("\n")[0].strip() or "the data block does not hold the stated number of points"
        raise SourceFileError(path, f"not a readable EC-Lab .mpr file (truncated or damaged?): {reason}") from None


def _header_variant(mpr: "MPRfile") -> str:
    long = any("max length" in m for m in mpr.modules)
    return ", module headers of EC-Lab ≥ 11.50" if long else ", module headers of EC-Lab < 11.50"


def _mpr_step(text: Text) -> np.ndarray:
    if "Ns" in text.frame:
        return text.numbers("Ns").astype("i4")
    if "Ns changes" in text.frame:
        return np.cumsum(text.frame["Ns changes"].to_numpy(dtype=bool)).astype("i4")
    return np.zeros(len(text.frame), "i4")


def _mpr_cycle(text: Text) -> np.ndarray:
    if "cycle number" in text.frame:
        return text.numbers("cycle number").astype("i4")
    if "half cycle" in text.frame:
        return (text.numbers("half cycle") // 2).astype("i4")
    return np.zeros(len(text.frame), "i4")


def _mpr_charge(text: Text) -> np.ndarray | None:
    """The charge (Ah) of each row's interval: EC-Lab's dq, or the steps of its (Q-Qo) counter."""
    for name in ("dq/mA.h", "dQ/mA.h"):
        if name in text.frame:
            return text.numbers(name, scale=1e-3)
    if "(Q-Qo)/mA.h" in text.frame:
        return np.diff(text.numbers("(Q-Qo)/mA.h", scale=1e-3), prepend=0.0)
    return None
