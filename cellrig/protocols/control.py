"""Operator commands to a running run from another terminal: pause, continue, stop, abort.

A command is a small file beside the run file (``<run>.h5.control``); the engine reads it
at its next poll, acts, records an event and removes it.
"""

import os
from pathlib import Path

COMMANDS = ("pause", "continue", "stop", "abort")


def control_path(run: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(run)}.control")


def send(run: str | os.PathLike, command: str) -> Path:
    """Ask the engine running ``run`` to ``command`` (written atomically)."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r} (known: {', '.join(COMMANDS)})")
    path = control_path(run)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(command + "\n")
    os.replace(tmp, path)
    return path


def take(run: str | os.PathLike) -> str | None:
    """The command waiting for ``run`` (removed once read), or None."""
    path = control_path(run)
    try:
        command = path.read_text().strip()
    except FileNotFoundError:
        return None
    path.unlink(missing_ok=True)
    return command if command in COMMANDS else None
