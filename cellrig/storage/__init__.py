"""The run file: one HDF5 file per run, written live (SWMR) and read as xarray.

Layout (``cellrig-run/1``)::

    /                  attrs: schema, run_id, started (UTC), cellrig_version, cycle_stream
    /meta              protocol, cell, lab, operator, host ... (nested groups and attributes)
    /streams/<name>/   time (s since start, dimension scale) and 1-D columns with ``units``
    /events            time, kind, step, cycle, message; the last ``end`` event holds the exit status
    /index/cycles      cycle (dimension scale), first_row of each cycle in the cycle stream
"""

from ._campaign import CATALOG_COLUMNS, Campaign, open_campaign
from ._errors import (
    ColumnError,
    NotARunFileError,
    RunClosedError,
    RunExistsError,
    RunFileError,
    RunNotFoundError,
    RunWriteError,
    UnknownStreamError,
    WriterAliveError,
)
from ._layout import EXIT_STATUSES, SCHEMA, Column
from ._lock import writer_alive
from ._reader import Run, open_run
from ._runfile import RunFile, run_file
from ._writer import RunWriter

__all__ = [
    "CATALOG_COLUMNS",
    "EXIT_STATUSES",
    "SCHEMA",
    "Campaign",
    "Column",
    "ColumnError",
    "NotARunFileError",
    "Run",
    "RunClosedError",
    "RunExistsError",
    "RunFile",
    "RunFileError",
    "RunNotFoundError",
    "RunWriteError",
    "RunWriter",
    "UnknownStreamError",
    "WriterAliveError",
    "open_campaign",
    "open_run",
    "run_file",
    "writer_alive",
]
