"""A run's states, every transition between them in one table, and the exceptions that end a run.

A run starts ``running``; the operator pauses and continues it; it ends in one of the end
states, written into its file with the reason.  ``interrupted`` is never entered by a run:
it is what a file says whose process died before it could close it.
"""

from enum import StrEnum


class RunState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    STOPPED = "stopped"  # by the operator or a signal, in order: resumable
    ABORTED = "aborted"
    TRIPPED = "tripped"  # a limit crossed: resumable once acknowledged
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # the process died: resumable


_ENDS = frozenset({RunState.FINISHED, RunState.STOPPED, RunState.ABORTED, RunState.TRIPPED, RunState.FAILED})

#: Every state a run may move to from each state; an end state leads nowhere.
TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.RUNNING: _ENDS | {RunState.PAUSED},
    RunState.PAUSED: (_ENDS - {RunState.FINISHED}) | {RunState.RUNNING},
}


def advance(current: RunState, new: RunState) -> RunState:
    """``new``, if the table allows moving there from ``current``; else ValueError (an engine fault)."""
    if new not in TRANSITIONS.get(current, frozenset()):
        raise ValueError(f"a run cannot go from {current} to {new}")
    return new


def resumable(ack_trip: bool = False) -> tuple[RunState, ...]:
    """The end states a run continues from: interrupted or stopped, and tripped once acknowledged."""
    states = (RunState.INTERRUPTED, RunState.STOPPED)
    return (*states, RunState.TRIPPED) if ack_trip else states


class RunEnded(Exception):
    """Ends a run with ``status`` (tripped, stopped, aborted, failed) and ``reason``."""

    def __init__(self, status: RunState, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status, self.reason = status, reason


#: What each supervised signal is, for what a trip of it does: a thermal trip in a shared
#: chamber makes the chamber safe for every run in it; any other trip stops its own cell only.
SIGNAL_CLASS = {
    "voltage": "electrical",
    "current": "electrical",
    "cycler limit test": "electrical",
    "cell temperature": "thermal",
    "dT/dt": "thermal",
    "gas": "thermal",
    "chamber temperature": "thermal",
    "force": "mechanical",
    "invalid reading": "data",
    "stale data": "data",
}


class Trip(RunEnded):
    """A limit crossed: ends the run ``tripped``; ``signal`` names what crossed, ``time`` when (run time, s)."""

    def __init__(self, signal: str, reason: str, time: float) -> None:
        super().__init__(RunState.TRIPPED, reason)
        self.signal, self.time = signal, time

    @property
    def thermal(self) -> bool:
        return SIGNAL_CLASS[self.signal] == "thermal"
