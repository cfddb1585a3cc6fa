"""``cellrig serve``: a read-only web view of the runs in some folders, live while they are written.

The overview (every run: cell, protocol, state, step, cycle, last readings, elapsed time; trips
and failures first) is kept by one watcher thread that re-reads only the files that changed
(:mod:`.watch`); a run's page plots every stream, quantity by quantity, decimated on the server
(:mod:`.series`).  Pages update by server-sent events (:mod:`.app`).  Files are opened
read-only with SWMR and no lock: a writer never waits for a reader.
"""

from .app import make_app
from .watch import Watcher

__all__ = ["Watcher", "make_app"]
