"""open_campaign: a catalog of the run files under a folder, finished or still being written.

One row per run file, read from its attributes and metadata only (no stream data), so opening a
campaign of hundreds of runs takes a fraction of a second per hundred.  The set temperature is
read from the run's ``protocol.temperature_degC`` metadata.
"""

import os
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ._errors import RunFileError
from ._reader import Run, open_run
from ._runfile import run_file

CATALOG_COLUMNS = ("path", "run_id", "cell_id", "chemistry", "protocol", "temperature", "status", "rows", "started")
TEMPERATURE_TOLERANCE = 0.5  # K: a single temperature given to filter() matches set points this close


@dataclass(frozen=True)
class Campaign:
    """A catalog of runs (``catalog``: one row per run, ``CATALOG_COLUMNS``) and the files that are not runs."""

    folder: Path
    catalog: pd.DataFrame
    skipped: dict[str, str] = field(default_factory=dict)  # path -> why it is not in the catalog

    def __len__(self) -> int:
        return len(self.catalog)

    def __iter__(self) -> Iterator[Run]:
        """Open each run in catalog order."""
        return (open_run(p) for p in self.catalog["path"])

    @property
    def paths(self) -> list[Path]:
        return [Path(p) for p in self.catalog["path"]]

    def filter(
        self,
        *,
        cell: str | Collection[str] | None = None,
        chemistry: str | Collection[str] | None = None,
        protocol: str | Collection[str] | None = None,
        status: str | Collection[str] | None = None,
        temperature: float | tuple[float, float] | None = None,
    ) -> "Campaign":
        """The runs matching every criterion given: a value or a collection of values for the names,
        a set point (± ``TEMPERATURE_TOLERANCE``) or an inclusive (low, high) range for the temperature."""
        df = self.catalog
        keep = pd.Series(True, index=df.index)
        for column, wanted in (("cell_id", cell), ("chemistry", chemistry), ("protocol", protocol), ("status", status)):
            if wanted is not None:
                keep &= df[column].isin([wanted] if isinstance(wanted, str) else list(wanted))
        if temperature is not None:
            low, high = (
                temperature
                if isinstance(temperature, tuple)
                else (temperature - TEMPERATURE_TOLERANCE, temperature + TEMPERATURE_TOLERANCE)
            )
            keep &= df["temperature"].between(low, high)
        return Campaign(self.folder, df[keep].reset_index(drop=True), self.skipped)


def _entry(path: Path) -> dict[str, Any]:
    with run_file(path) as f:
        return f.catalog_entry()


def open_campaign(folder: str | os.PathLike, pattern: str = "**/*.h5") -> Campaign:
    """Catalog every run file matching ``pattern`` under ``folder``; files that are not runs go to ``skipped``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: not a folder of run files")
    rows, skipped = [], {}
    for path in sorted(folder.glob(pattern)):
        try:
            rows.append(_entry(path))
        except (RunFileError, OSError) as exc:
            skipped[str(path)] = str(exc)
    catalog = pd.DataFrame(rows, columns=list(CATALOG_COLUMNS))
    catalog["temperature"] = pd.to_numeric(catalog["temperature"], errors="coerce").astype(float)
    catalog["rows"] = catalog["rows"].astype("int64")
    catalog["started"] = pd.to_datetime(catalog["started"], utc=True, format="ISO8601")
    return Campaign(folder, catalog, skipped)
