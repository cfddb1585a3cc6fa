"""BioLogic EC-Lab text exports (``.mpt`` and "Export as text"), including Modulo Bat (MB) techniques.

Covered: EC-Lab ASCII files with their ``EC-Lab ASCII FILE`` / ``Nb header lines : N`` block
(tab separated), and header-less exports whose first line holds the column names (semicolon or
tab separated, as in the TRI/BEEP MB file).  Columns used: ``time/s`` (seconds, or a
``MM/DD/YYYY hh:mm:ss.fff`` date stamp as in that file), ``Ecell/V`` or ``Ewe/V``, ``I/mA`` or
``<I>/mA``, ``dq/mA.h`` (the charge of each row's interval; EC-Lab's ``Q charge``/``Q discharge``
counters are its running sums), ``Ns`` (step), ``cycle number`` (from 0) and ``Temperature/°C`` if
filled in.  EC-Lab writes cp1252 (``°``, ``µ``); a UTF-8 re-save as in the sample reads too.  Binary ``.mpr``
files are not covered.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from ._common import SourceFileError, Table, Text, check_time, read_lines, read_text

FORMAT = "biologic-text"
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
        raise SourceFileError(text.path, f"column 'time/s': {raw.iloc[k]!r} is not a time", int(text.lines[k]))
    return (stamps - stamps.iloc[0]).dt.total_seconds().to_numpy(), f"{stamps.iloc[0].isoformat()} (local time)"
