"""The standard protocol library: one YAML file per protocol, each naming the standard it follows."""

from pathlib import Path

from ..cells import CellSpec
from ..language import Header, Protocol, ProtocolError, load

FOLDER = Path(__file__).parent


def names() -> list[str]:
    return sorted(p.stem for p in FOLDER.glob("*.yaml"))


def path(name_or_file: str | Path) -> Path:
    """A protocol file: ``name_or_file`` itself if it is a file, else the library's protocol of that name."""
    given = Path(name_or_file)
    if given.suffix in (".yaml", ".yml") or given.exists():
        return given
    if str(name_or_file) in names():
        return FOLDER / f"{name_or_file}.yaml"
    raise ProtocolError([f"{name_or_file}: no such protocol file, and not in the library ({', '.join(names())})"])


def header(name: str) -> Header:
    """A protocol's description (title, standard, parameters), from the protocol compiled for the default cell."""
    return protocol(name).header


def protocol(name_or_file: str | Path, cell: CellSpec | None = None, overrides: dict | None = None) -> Protocol:
    """Load and compile a library protocol or a protocol file for ``cell``."""
    return load(path(name_or_file), cell, overrides)
