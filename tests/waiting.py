"""Waiting for something another thread or process does: polled with a deadline, never a fixed sleep."""

import time
from collections.abc import Callable


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120.0, period: float = 0.01) -> None:
    """Return once ``condition()`` holds (asked every ``period`` s); fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(period)
