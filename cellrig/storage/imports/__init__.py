"""Import other cyclers' exports into cellrig run files, and exchange run data as Battery Data Format.

An imported run has the layout, stream, units and sign conventions of a run cellrig recorded: one
``cycler`` stream with ``time`` (s), ``voltage`` (V), ``current`` (A, positive charging; see
:func:`._common.interval_current` for how the interval mean is obtained), ``step`` (the source's
step number), ``cycle`` (from 1) and ``temperature`` (degC) where the source logs one.  ``/meta``
holds the cell and ``source``: file name, sha256, detected format and version, start instant,
how the current was obtained and the cycle offset applied.

Formats (versions covered are in each module's docstring and in docs/imports.md): :mod:`.arbin`
(CSV, Excel), :mod:`.maccor`, :mod:`.biologic` (text, ``.mpr``), :mod:`.novonix`, :mod:`.neware`
(``.nda``, ``.ndax``), :mod:`.bdf`.  Malformed or truncated files raise :class:`SourceFileError`
naming the file and line (record or sheet row for binary and Excel files); an import that fails
leaves no file behind.
"""

import os
from collections.abc import Iterable
from pathlib import Path

from ...inputs import InputError, path_in
from .._errors import RunExistsError
from . import arbin, bdf, biologic, maccor, neware, novonix
from ._common import (
    MAX_SOURCE_BYTES,
    Reader,
    SourceFileError,
    build_meta,
    from_one,
    interval_current,
    read_source,
    write_run,
)
from .bdf import export_bdf

READERS = (
    Reader(neware.FORMAT, neware.read, sniff=neware.sniff),
    Reader(biologic.MPR_FORMAT, biologic.read_mpr, sniff=biologic.sniff_mpr),
    Reader(arbin.XLSX_FORMAT, arbin.read_xlsx, sniff=arbin.sniff_xlsx),
    *(Reader(m.FORMAT, m.read, matches=m.matches) for m in (arbin, maccor, biologic, novonix, bdf)),
)
FORMATS = tuple(r.format for r in READERS)
_SNIFF_BYTES = 1 << 16
TABLE_SUFFIXES = {".csv", ".txt", ".mpt", ".bdf", ".gz", ".parquet", ".pq", ".xlsx", ".xlsm", ".mpr", ".nda", ".ndax"}


def detect(path: str | os.PathLike) -> str:
    """The format of a source file, from its name (Parquet), its first bytes (binary formats) or its first lines."""
    path = Path(path)
    if bdf.is_parquet(path):
        return bdf.FORMAT
    raw = read_source(path, _SNIFF_BYTES)
    reader = next((r for r in READERS if r.sniff is not None and r.sniff(path, raw)), None)
    if reader is None:
        head = raw.decode("latin-1").splitlines()
        reader = next((r for r in READERS if r.matches is not None and r.matches(head)), None)
    if reader is None:
        raise SourceFileError(path, f"unknown format (known: {', '.join(FORMATS)})", 1)
    return reader.format


def run_name(path: Path) -> str:
    """The source's name without the suffixes of known file formats (a Maccor ``.078`` stays)."""
    name = path.name
    while (suffix := Path(name).suffix.lower()) in TABLE_SUFFIXES:
        name = name[: -len(suffix)]
    return name


def import_file(
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    cell: str | None = None,
    chemistry: str | None = None,
    nominal_capacity: float | None = None,
) -> Path:
    """Import one source file as ``<out_dir>/<run_name(path)>.h5`` (never an overwrite); returns the run path.

    The run name follows :func:`cellrig.inputs.check_name`; a file over :data:`MAX_SOURCE_BYTES` is refused.

    ``cell`` (default: the run name), ``chemistry`` and ``nominal_capacity`` (Ah; a
    Novonix file states its own) go to the run's ``cell`` metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such source file")
    if path.stat().st_size > MAX_SOURCE_BYTES:
        raise SourceFileError(path, f"larger than {MAX_SOURCE_BYTES >> 30} GiB")
    try:
        target = path_in(out_dir, run_name(path), ".h5", "run name")
    except InputError as exc:
        raise SourceFileError(path, f"{exc} (rename the file)") from None
    if target.exists():
        raise RunExistsError(f"{target}: a run file is never overwritten")
    reader = READERS[FORMATS.index(detect(path))]
    table = reader.read(path)
    table.cycle, offset = from_one(table.cycle)
    current, how = interval_current(table)
    nominal = table.nominal_capacity if nominal_capacity is None else nominal_capacity
    cell_meta = {"id": cell or run_name(path), "chemistry": chemistry, "nominal_capacity_Ah": nominal}
    meta = build_meta(table, path, how, offset, cell_meta)
    return write_run(table, target, meta, current)


def import_files(
    paths: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    chemistry: str | None = None,
    nominal_capacity: float | None = None,
) -> list[Path]:
    """Import several files (each cell named after its file); stops at the first failure, keeping those done."""
    return [import_file(p, out_dir, chemistry=chemistry, nominal_capacity=nominal_capacity) for p in paths]


__all__ = ["FORMATS", "SourceFileError", "detect", "export_bdf", "import_file", "import_files"]
