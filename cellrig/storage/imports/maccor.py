"""Maccor text exports (tab separated, a "Today's Date … Date of Test:" header line).

Covered: the layout of the TRI/BEEP diagnostic files (which Maccor software versions write it is
unverified): one header line (test date, file name, procedure, comment) then the column names
``Rec#, Cyc#, Step, Test (Sec), Step (Sec), Amp-hr, Watt-hr, Amps, Volts, State, ES, DPt Time, …``
.  ``State`` (C charge, D discharge, R rest, S stop) gives the sign of
``Amps`` (signed in that file, unsigned in some exports), ``Amp-hr`` counts the charge of each step
from zero and ``Cyc#`` counts from 0.  Undecodable bytes are read as cp1252.  Comma-separated
Maccor exports and the binary ``.0xx`` raw files are not covered.
"""

from pathlib import Path

import numpy as np

from ._common import SourceFileError, Table, check_time, read_lines, read_text, segment_increments

FORMAT = "maccor-text"


def matches(lines: list[str]) -> bool:
    return len(lines) > 1 and lines[0].startswith("Today's Date") and lines[1].startswith("Rec#")


def read(path: Path) -> Table:
    """Parse a Maccor tab-separated text export."""
    lines = read_lines(path, fallback="cp1252")
    if not matches(lines):
        raise SourceFileError(path, "not a Maccor text export (expected a 'Today's Date' line, then 'Rec#…')", 1)
    text = read_text(path, lines, 1, "\t")
    time = text.numbers("Test (Sec)")
    check_time(text, time)
    current = _signed(text.numbers("Amps"), text.column("State").to_numpy())
    cycle, step = text.numbers("Cyc#").astype("i4"), text.numbers("Step").astype("i4")
    charge = segment_increments(text.numbers("Amp-hr"), cycle, step) * np.sign(current)
    stamps = text.frame.get("DPt Time")
    return Table(
        time=time,
        voltage=text.numbers("Volts"),
        current=current,
        step=step,
        cycle=cycle,
        charge=charge,
        format=FORMAT,
        version="text export with a 'Today's Date' header line",
        started=None if stamps is None else f"{stamps.iloc[0]} (tester's local time, first row)",
        meta={"header": " ".join(lines[0].split())},
    )


def _signed(amps: np.ndarray, state: np.ndarray) -> np.ndarray:
    """Current positive on charge: State C charges, D discharges, others keep the logged sign."""
    direction = np.where(state == "D", -1.0, np.where(state == "C", 1.0, np.sign(amps)))
    return np.abs(amps) * direction
