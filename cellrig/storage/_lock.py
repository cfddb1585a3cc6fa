"""The writer lock: who writes a run file, and whether that writer is still alive.

A run file's writer holds an exclusive ``flock`` on ``<run>.h5.lock`` for as long as
it writes.  The kernel drops the lock when the process dies, however it dies, so a
lock that can be taken means no writer is alive and the file may be resumed.
"""

import fcntl
import os
import socket
from pathlib import Path

from ._errors import WriterAliveError


def lock_path(run_path: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(run_path)}.lock")


class WriterLock:
    """An exclusive, non-blocking lock on a run file's sidecar lock file."""

    def __init__(self, run_path: str | os.PathLike) -> None:
        self.path = lock_path(run_path)
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise WriterAliveError(
                f"{self.path.with_suffix('')}: another process is writing this run "
                f"({self.path.read_text().strip() or 'unknown writer'})"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        self._fd = fd

    def release(self, remove: bool = True) -> None:
        if self._fd is None:
            return
        if remove:
            self.path.unlink(missing_ok=True)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


def writer_alive(run_path: str | os.PathLike) -> bool:
    """True while some process holds the run's writer lock."""
    path = lock_path(run_path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
