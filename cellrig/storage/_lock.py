"""The writer lock: who writes a run file, and whether that writer is still alive.

A run file's writer holds an exclusive lock on the run file itself for as long as it writes:
an open-file-description lock (``F_OFD_SETLK``) over the whole file, on a descriptor of its
own.  The kernel drops it when the process dies, however it dies, so a run file whose lock
can be taken has no live writer and may be resumed.  It is not HDF5's file locking (off:
HDF5 ``flock``\\s, which this lock does not touch, so SWMR readers with HDF5's locking on still
read a live run) and it outlives HDF5 opening and closing the file.  Where the system has no
OFD locks (macOS) an exclusive ``flock`` stands in; readers there need HDF5's locking off.

``<run>.h5.writer`` beside the file says who writes it (pid and host), for the refusal; it is
written once the lock is held and removed before it is released, and it decides nothing.
"""

import contextlib
import fcntl
import os
import socket
import struct
from pathlib import Path

from ._errors import RunExistsError, WriterAliveError

_OFD = hasattr(fcntl, "F_OFD_SETLK")
_FLOCK = struct.Struct("hhqqi4x")  # struct flock on 64-bit Linux: type, whence, start, len (0: to the end), pid


def writer_path(run_path: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(run_path)}.writer")


def _lock(fd: int) -> bool:
    """Take the writer lock on ``fd``'s file; False if another descriptor holds it."""
    try:
        if _OFD:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
        else:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (BlockingIOError, PermissionError):  # EAGAIN, or EACCES on some systems
        return False
    return True


class WriterLock:
    """An exclusive, non-blocking lock on a run file, held on a descriptor of its own."""

    def __init__(self, run_path: str | os.PathLike) -> None:
        self.run_path = Path(run_path)
        self.path = writer_path(run_path)
        self._fd: int | None = None

    def acquire(self, *, create: bool = False) -> None:
        """Lock the run file (with ``create``: a new, empty one, never an existing one)."""
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
        try:
            fd = os.open(self.run_path, flags, 0o644)
        except FileExistsError:
            raise RunExistsError(f"{self.run_path}: a run file is never overwritten") from None
        if not _lock(fd):
            os.close(fd)
            try:
                holder = self.path.read_text().strip()
            except OSError:
                holder = ""
            raise WriterAliveError(
                f"{self.run_path}: another process is writing this run ({holder or 'unknown writer'})"
            )
        self._fd = fd
        with contextlib.suppress(OSError):  # only the refusal's words: the lock is what counts
            self.path.write_text(f"pid {os.getpid()} on {socket.gethostname()}\n")

    def release(self) -> None:
        """Remove the note of who writes (still holding the lock), then unlock."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)  # drops the lock
        self._fd = None


def writer_alive(run_path: str | os.PathLike) -> bool:
    """True while some process holds the run file's writer lock (asked without taking it)."""
    try:
        fd = os.open(run_path, os.O_RDONLY)
    except (FileNotFoundError, IsADirectoryError):
        return False
    try:
        if _OFD:
            query = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
            return _FLOCK.unpack(fcntl.fcntl(fd, fcntl.F_OFD_GETLK, query))[0] != fcntl.F_UNLCK
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False
    finally:
        os.close(fd)
