"""Novonix HPC exports (``[Summary]`` … ``[End Summary]``, ``[Protocol]`` … ``[End Protocol]``, ``[Data]``).

Covered: the CSV export of HPC software version 2.2.1.6 (``Version:`` in the summary; the
TRI/BEEP formation file), each line possibly wrapped in double quotes as in that file; other 2.x
versions with the same columns should read alike (unverified).  Columns used: ``Run Time (h)``,
``Potential (V)``, ``Current (A)`` (taken as negative on discharge: the sample file only
charges, so unverified), ``Capacity (Ah)`` (an unsigned counter that runs on across steps and
restarts from zero at some of them: taken as restarting wherever it drops or the cycle changes),
``Temperature (°C)``, ``Step Number`` and ``Cycle Number`` (from 1).  The summary's
``Capacity (Ah)`` becomes the nominal capacity unless one is given.
"""

from pathlib import Path

import numpy as np

from ._common import SourceFileError, Table, check_time, read_lines, read_text, segment_increments

FORMAT = "novonix-hpc"


def matches(lines: list[str]) -> bool:
    return len(lines) > 1 and lines[0].strip() == "[Summary]" and "Novonix" in lines[1]


def read(path: Path) -> Table:
    """Parse a Novonix HPC CSV export."""
    lines = [_unquote(line) for line in read_lines(path)]  # UTF-8 throughout (its protocol block has Δ)
    try:
        header = lines.index("[Data]") + 1
    except ValueError:
        raise SourceFileError(path, "no [Data] section (truncated before the data?)", len(lines)) from None
    if header >= len(lines):
        raise SourceFileError(path, "no column names after [Data]", header)
    summary = _summary(lines)
    text = read_text(path, lines, header, ",")
    time = text.numbers("Run Time (h)", scale=3600.0)
    check_time(text, time)
    current = text.numbers("Current (A)")
    step, cycle = text.numbers("Step Number").astype("i4"), text.numbers("Cycle Number").astype("i4")
    meta = {k: summary[k] for k in ("Protocol", "Cell", "Channel", "Capacity (Ah)", "Mass (g)") if k in summary}
    return Table(
        time=time,
        voltage=text.numbers("Potential (V)"),
        current=current,
        step=step,
        cycle=cycle,
        charge=segment_increments(text.numbers("Capacity (Ah)"), cycle) * np.sign(current),
        temperature=text.optional("Temperature (°C)"),
        format=FORMAT,
        version=f"HPC {summary.get('Version', 'unknown version')}",
        started=summary.get("Started"),
        meta=meta,
        nominal_capacity=_number(summary.get("Capacity (Ah)")),
    )


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _unquote(line: str) -> str:
    line = line.strip()
    return line[1:-1] if len(line) > 1 and line[0] == line[-1] == '"' else line


def _summary(lines: list[str]) -> dict[str, str]:
    end = lines.index("[End Summary]") if "[End Summary]" in lines else 0
    pairs = (line.split(":", 1) for line in lines[1:end] if ":" in line)
    return {k.strip(): v.strip() for k, v in pairs}
