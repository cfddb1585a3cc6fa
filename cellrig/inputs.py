"""What the user hands over: names that become parts of paths, and text files read within stated limits.

A name that becomes part of a file's path (cell id, protocol name, campaign cell, imported
file's name) follows one rule, :func:`check_name`: it can hold no separator and is never
``.`` or ``..``, so :func:`path_in` always gives a path directly in the folder the user gave.
Protocol, campaign and lab files are read whole, at most :data:`MAX_TEXT_BYTES` each, as UTF-8.
"""

import os
import re
from pathlib import Path

NAME_RULE = "1–100 letters, digits, '_', '.' or '-', starting with a letter or digit"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")

#: The largest protocol, campaign or lab file read (the library's protocols are a few KiB).
MAX_TEXT_BYTES = 256 * 1024


class InputError(ValueError):
    """A name or file the user gave that cannot be used: one line saying which and why."""


def check_name(name: object, what: str) -> str:
    """``name`` if it follows the name rule; else :class:`InputError` saying ``what`` it names."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InputError(f"{what} {name!r} is not a name: use {NAME_RULE}")
    return name


def path_in(folder: str | os.PathLike, stem: str, suffix: str, what: str) -> Path:
    """``folder/<stem><suffix>``, ``stem`` checked by :func:`check_name` so the path stays in ``folder``."""
    return Path(folder) / f"{check_name(stem, what)}{suffix}"


def read_text(path: str | os.PathLike, what: str) -> str:
    """A ``what`` file's text (UTF-8, at most :data:`MAX_TEXT_BYTES`); :class:`InputError` naming the file if not."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_TEXT_BYTES + 1)
    except FileNotFoundError:
        raise InputError(f"{path}: no such {what} file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what} file ({exc.strerror or exc})") from None
    if len(data) > MAX_TEXT_BYTES:
        raise InputError(f"{path}: larger than {MAX_TEXT_BYTES // 1024} KiB: not a {what} file")
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not UTF-8 text ({exc.reason}): not a {what} file") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # as Path.read_text reads line ends
