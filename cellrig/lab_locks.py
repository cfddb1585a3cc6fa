"""Lab-wide locks: each cycler channel, chamber, rig and SMU belongs to one process at a time.

A lab file's instruments are locked in its lock directory (``locks = "…"`` in the lab file,
default ``<lab file stem>.locks`` beside it): one file per instrument (per channel of a
multi-channel cycler), named after its VISA resource, held with an exclusive ``flock``.  The
kernel drops a lock when its process dies, however it dies; lock files are never removed
(removing one that another process is about to lock would let two processes in).  Each file
says who holds it (run file, host, pid), for the refusal.

Within one process the locks are shared: the runs of a campaign hold several channels and
share chambers (the campaign refuses two of its runs on one channel or rig).  The embedded
virtual lab (``cellrig run`` without ``--lab``) belongs to its process alone and has no lock
directory.
"""

import fcntl
import os
import re
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path


class InstrumentHeldError(RuntimeError):
    """An instrument a run needs is held by another process: says which, and who holds it."""


class LabLocks:
    """The lab-wide locks this process holds in ``directory`` (None: the lab is this process's alone)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._held: dict[str, tuple[int, int]] = {}  # key -> (descriptor, how many claims share it)
        self._mutex = threading.Lock()

    def claim(self, wanted: Mapping[str, str], holder: str) -> "Claim":
        """Lock every ``key`` of ``wanted`` (key -> what it is, for messages) for ``holder``, or none of them.

        Raises :class:`InstrumentHeldError` naming the instrument and its holder if another process has one.
        """
        claim = Claim(self, list(wanted))
        if self.directory is None:
            return claim
        with self._mutex:
            taken: list[str] = []
            try:
                for key, what in wanted.items():
                    self._take(key, what, holder)
                    taken.append(key)
            except BaseException:
                for key in taken:
                    self._drop(key)
                raise
        return claim

    @contextmanager
    def holding(self, wanted: Mapping[str, str], holder: str) -> Iterator["Claim"]:
        """:meth:`claim` for the block: e.g. a campaign holds every run's instruments while it starts them."""
        claim = self.claim(wanted, holder)
        try:
            yield claim
        finally:
            claim.release()

    def _take(self, key: str, what: str, holder: str) -> None:
        if key in self._held:
            fd, count = self._held[key]
            self._held[key] = (fd, count + 1)
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path(key), os.O_RDWR | os.O_CREAT, 0o664)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            by = os.pread(fd, 1000, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise InstrumentHeldError(f"{what} is in use by {by}; nothing was started") from None
        self._held[key] = (fd, 1)
        _say(fd, holder)

    def _drop(self, key: str) -> None:
        fd, count = self._held[key]
        if count > 1:
            self._held[key] = (fd, count - 1)
        else:
            del self._held[key]
            os.close(fd)  # unlocks; the file stays

    def _path(self, key: str) -> Path:
        return self.directory / f"{re.sub(r'[^A-Za-z0-9.@-]+', '_', key)}.lock"


class Claim:
    """The lab-wide locks of one run (or a campaign starting): released once, by :meth:`release`."""

    def __init__(self, locks: LabLocks, keys: list[str]) -> None:
        self._locks, self.keys = locks, keys
        self._released = False

    def holder(self, holder: str) -> None:
        """Say who holds these locks now (e.g. the run file, once it exists)."""
        if self._locks.directory is None:
            return
        with self._locks._mutex:
            for key in self.keys:
                if key in self._locks._held:
                    _say(self._locks._held[key][0], holder)

    def release(self) -> None:
        if self._released or self._locks.directory is None:
            return
        self._released = True
        with self._locks._mutex:
            for key in self.keys:
                self._locks._drop(key)


def _say(fd: int, holder: str) -> None:
    """Write who holds a lock: written first, then cut to length, so a reader never finds it empty."""
    text = f"{holder} (host {socket.gethostname()}, pid {os.getpid()})\n".encode()
    os.pwrite(fd, text, 0)
    os.ftruncate(fd, len(text))
