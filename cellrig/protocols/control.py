"""Operator commands to a running run from another terminal: pause, continue, stop, abort, observe.

A command is a small file beside the run file (``<run>.h5.control``; an observation has its own,
``<run>.h5.observation``, so it never displaces a pause or a stop): a line
``<command> <run id> <sent> <expires>`` (Unix times), then what it carries (an observation's
JSON).  It belongs to one run and expires: the engine takes it at its next poll (moving it aside
first, so a command is either taken or withdrawn, never both), acts, and records an event; the
sender waits for that (:func:`send` then :func:`taken`).  A command for another run, expired, or
sent before the engine started or resumed (left by a killed sender, or for a dead run) is never
acted on: it is discarded, and the engine records ``command_discarded`` saying why.
"""

import contextlib
import datetime as dt
import os
import time
from collections.abc import Callable
from pathlib import Path

from .. import observations
from ..storage import Run, open_run

COMMANDS = ("pause", "continue", "stop", "abort", "observe")
REPLIES = ("pause", "pause_refused", "continue", "end")  # the events that answer a command (observe: observation)
EXPIRES = 30.0  # s a command waits to be taken, by default (the CLI: its --timeout)


def control_path(run: str | os.PathLike, command: str = "") -> Path:
    """The file ``command`` waits in beside ``run``."""
    return Path(f"{os.fspath(run)}.{'observation' if command == 'observe' else 'control'}")


def send(run: str | os.PathLike, command: str, expires: float = EXPIRES, payload: str = "") -> Path:
    """Ask the engine running ``run`` to ``command`` within ``expires`` seconds (written atomically)."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r} (known: {', '.join(COMMANDS)})")
    run_id = open_run(run).attrs["run_id"]
    now = time.time()
    path = control_path(run, command)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text(f"{command} {run_id} {now:.6f} {now + expires:.6f}\n{payload}")
    os.replace(tmp, path)
    return path


def take(run: str | os.PathLike, run_id: str, discarded: Callable[[str], None] | None = None) -> str | None:
    """The command waiting for ``run`` (removed once read) if it is for ``run_id`` and not expired, else None.

    A command that is not (for another run, expired, unreadable) is removed too, and
    ``discarded`` is told why.
    """
    taken = _take(control_path(run), run_id, discarded)
    return None if taken is None else taken[0]


def take_observation(run: str | os.PathLike, run_id: str, discarded: Callable[[str], None] | None = None) -> str | None:
    """An observation waiting for ``run`` (:func:`send` ``observe``): its JSON, as :func:`take` takes a command."""
    taken = _take(control_path(run, "observe"), run_id, discarded)
    return None if taken is None else taken[1]


def _take(path: Path, run_id: str, discarded: Callable[[str], None] | None) -> tuple[str, str] | None:
    text = _grab(path)
    if text is None:
        return None
    command, _, why = _judge(text, run_id)
    if why is not None and discarded is not None:
        discarded(why)
    return None if why is not None else (command, text.partition("\n")[2])


def discard_stale(run: str | os.PathLike, run_id: str, since: float) -> str | None:
    """At start or resume: remove a waiting command not sent to ``run_id`` at or after ``since``; say why.

    A valid command sent since (the engine is live: a sender may already address it) is left waiting.
    """
    text = _grab(control_path(run))
    if text is None:
        return None
    command, sent, why = _judge(text, run_id)
    if why is None and sent < since:
        why = f"{command!r} sent {_when(sent)}, before this start or resume"
    if why is None:  # put back, unless a newer command has arrived meanwhile
        tmp = control_path(run).with_name(control_path(run).name + f".back-{os.getpid()}")
        tmp.write_text(text)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, control_path(run))
        tmp.unlink()
    return why


def taken(run: str | os.PathLike, command: str = "") -> bool:
    """Whether the engine has taken the ``command`` sent to ``run``."""
    return not control_path(run, command).exists()


def withdraw(run: str | os.PathLike, command: str = "") -> bool:
    """Withdraw a ``command`` the engine has not taken yet; False if it was taken meanwhile."""
    with contextlib.suppress(FileNotFoundError):
        control_path(run, command).unlink()
        return True
    return False


def _grab(path: Path) -> str | None:
    """Move the waiting command aside and read it (so the sender can no longer withdraw it), or None."""
    mine = path.with_name(path.name + f".taken-{os.getpid()}")
    try:
        os.rename(path, mine)
    except FileNotFoundError:
        return None
    try:
        return mine.read_text(errors="replace")[:10_000]
    finally:
        mine.unlink()


def _judge(text: str, run_id: str) -> tuple[str, float, str | None]:
    """The command in ``text``, when it was sent, and why it must not be acted on (None if it may)."""
    parts = text.partition("\n")[0].split()
    command = parts[0] if parts else ""
    try:
        _, for_run, sent, expires = parts
        sent, expires = float(sent), float(expires)
    except ValueError:
        return command, 0.0, f"{text.strip()[:60]!r}: not a command for any run (expected COMMAND RUN-ID SENT EXPIRES)"
    if command not in COMMANDS:
        return command, sent, f"unknown command {command!r}"
    if for_run != run_id:
        return command, sent, f"{command!r} sent {_when(sent)} for another run ({for_run})"
    if time.time() > expires:
        return command, sent, f"{command!r} sent {_when(sent)} expired at {_when(expires)}"
    return command, sent, None


def _when(t: float) -> str:
    try:
        return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")
    except (ValueError, OverflowError, OSError):  # a time no clock shows
        return f"at {t!r}"


def state(run: Run) -> str:
    """The run's status; ``paused`` for a running run whose last pause has no continue after it, and
    ``<status>, awaiting observation`` for an ended run that awaits the operator's observation."""
    status, kinds = run.status, run.events["kind"]
    if status == "running":
        held = kinds[kinds.isin(["pause", "continue"])]
        if len(held) and held.iloc[-1] == "pause":
            return "paused"
    seen = kinds[kinds.isin([observations.AWAITING_EVENT, observations.EVENT])]
    if status != "running" and len(seen) and seen.iloc[-1] == observations.AWAITING_EVENT:
        return f"{status}, awaiting observation"
    return status


def replies(run: Run, kinds: tuple[str, ...] = REPLIES) -> int:
    """How many events answering an operator command (``kinds`` of them) the run has recorded."""
    return int(run.events["kind"].isin(kinds).sum())
