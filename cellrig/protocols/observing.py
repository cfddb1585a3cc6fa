"""The operator's observation of a run (:mod:`cellrig.observations`): taken live, asked for at the end.

While a run goes on, ``cellrig observe RUN …`` from another terminal leaves an observation beside
the run file (:func:`.control.take_observation`); the engine records it at its next poll, at the
lab time it arrived.  When a run whose criteria are judged by observation ends (finished or
tripped, outputs safe, a trip's observation recorded) without one, a terminal attached to the
run (``Shared.ask``) is asked for it while the loggers keep recording; with nobody there (or on
Ctrl-C) the run records ``awaiting_observation`` and ends: a rig is not held for an operator who
may come tomorrow, and ``cellrig observe`` records the observation after the end.
"""

import threading
from collections.abc import Callable
from typing import Any

from .. import observations
from . import control
from .states import RunState

#: Asks whoever is at the terminal for the observation of cell ``what``; returns the event's message.
Ask = Callable[[str], str]


class RunObservation:
    def __init__(self, runner: Any) -> None:
        self.r = runner
        criteria = runner.protocol.header.criteria
        self.needed = criteria is not None and criteria.needs_observation
        self.recorded = False

    def take(self) -> None:
        """Record an observation sent by ``cellrig observe`` (a malformed one is discarded, said)."""
        r = self.r
        said = control.take_observation(r.path, r.writer.run_id, lambda why: r._record("command_discarded", why))
        if said is None:
            return
        try:
            observations.read(said)
        except ValueError as exc:
            r._record("command_discarded", f"observation: {exc}")
            return
        r.event(observations.EVENT, said)
        self.recorded = True

    def at_end(self, status: str) -> None:
        """Where the criteria need one and none is recorded: ask the terminal, or record that it awaits one."""
        r = self.r
        if not self.needed or self.recorded:
            return
        ask: Ask | None = r.shared.ask
        if ask is not None and status in (RunState.FINISHED, RunState.TRIPPED) and not r.shared.interrupt.is_set():
            self._ask(ask)
        if not self.recorded:
            r._record(
                observations.AWAITING_EVENT,
                f"its criteria are judged by observation: record one with `cellrig observe {r.path} …`",
            )

    def _ask(self, ask: Ask) -> None:
        """Ask in a thread; meanwhile record the loggers (unsupervised: the outputs are already safe)."""
        r = self.r
        answer: list[str] = []
        asking = threading.Thread(target=lambda: answer.append(ask(r.protocol.cell.id)), daemon=True)
        r._record("note", "asking the operator at the terminal for the observation")
        r.supervising = False
        asking.start()
        recording = True
        while asking.is_alive() and not self.recorded and not r.shared.interrupt.is_set():
            if recording:
                try:
                    r.poll()
                except Exception as exc:  # a logger lost now loses the recording, not the observation
                    r._record("note", f"recording stopped while asking: {type(exc).__name__}: {exc}")
                    recording = False
            r.wait()
        if answer and not self.recorded:
            r._record(observations.EVENT, answer[0])
            self.recorded = True
