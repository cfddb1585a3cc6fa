"""Operator commands to a running run from another terminal: pause, continue, stop, abort.

A command is a small file beside the run file (``<run>.h5.control``); the engine takes it at
its next poll (moving it aside first, so a command is either taken or withdrawn, never both),
acts, and records an event.  The sender waits for that: :func:`send` then :func:`taken`.
"""

import contextlib
import os
from pathlib import Path

from ..storage import Run

COMMANDS = ("pause", "continue", "stop", "abort")
REPLIES = ("pause", "pause_refused", "continue", "end")  # the events that answer a command


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
    mine = path.with_name(path.name + f".taken-{os.getpid()}")
    try:
        os.rename(path, mine)
    except FileNotFoundError:
        return None
    command = mine.read_text().strip()
    mine.unlink()
    return command if command in COMMANDS else None


def taken(run: str | os.PathLike) -> bool:
    """Whether the engine has taken the command sent to ``run``."""
    return not control_path(run).exists()


def withdraw(run: str | os.PathLike) -> bool:
    """Withdraw a command the engine has not taken yet; False if it was taken meanwhile."""
    with contextlib.suppress(FileNotFoundError):
        control_path(run).unlink()
        return True
    return False


def state(run: Run) -> str:
    """The run's status, ``paused`` for a running run whose last pause has no continue after it."""
    status = run.status
    if status == "running":
        held = run.events["kind"]
        held = held[held.isin(["pause", "continue"])]
        if len(held) and held.iloc[-1] == "pause":
            return "paused"
    return status


def replies(run: Run) -> int:
    """How many events answering an operator command the run has recorded."""
    return int(run.events["kind"].isin(REPLIES).sum())
