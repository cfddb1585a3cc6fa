"""Stopping runs from outside the engine: a signal or Ctrl-C only *asks* the runs to stop.

Each run's own thread then ends it the one way every run ends: the safe state of its
instruments, read back, and its file closed saying why.  A handler does nothing else (no
exception raised into the main thread, which must go on waiting for the runs), so a second
or third signal cannot skip a safe state.
"""

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType

#: The signals that stop runs, and how a run's end reason names them.
SIGNALS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


@dataclass
class StopRequest:
    """Set once when the runs must stop; ``reason`` is the first asker's."""

    event: threading.Event = field(default_factory=threading.Event)
    reason: str = "interrupted"

    def ask(self, reason: str) -> None:
        if not self.event.is_set():
            self.reason = reason
            self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()


@contextlib.contextmanager
def signals_ask_to_stop(request: StopRequest, say: Callable[[str], None] | None = None) -> Iterator[StopRequest]:
    """While the block runs, SIGINT, SIGTERM and SIGHUP set ``request`` (and ``say`` why); then the old handlers.

    Outside the main thread (where Python delivers no signal) the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        name = SIGNALS[signal.Signals(signum)]
        again = request.is_set()
        request.ask(f"interrupted ({name})")
        if say is not None:
            say(f"{name}: {'still ' if again else ''}stopping every run safely (safe state, then its file closed)")

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield request
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
