"""How long a run has left, where its protocol says: the remaining steps' durations walked through its loops.

A step of fixed ``duration`` (rest, hold, wait, observe, pulse) counts exactly; one that ends on
a measurement (a charge to a voltage, a soak until stable) counts its ``max_time``, so the whole
is then an upper bound.  A loop that ends on a measured condition (``until``), or a step with no
time limit (a press), leaves no estimate: nothing can promise when it ends.
"""

import json
from functools import lru_cache
from typing import Any

from ..protocols import language as L
from ..protocols.cells import CellSpec
from ..protocols.engine import State
from ..protocols.program import Check, Count, Enter, Leaf

MAX_WALK = 2_000_000  # instructions: a 3,000-cycle protocol is tens of thousands


def _step_time(leaf: Leaf) -> tuple[float, bool] | None:
    """(seconds, exact) of one step; None if it has no time limit."""
    times = []
    for part in leaf.parts:
        if hasattr(part.spec, "duration"):
            times.append((float(part.spec.duration), True))
        elif hasattr(part.spec, "max_time"):
            times.append((float(part.spec.max_time), False))
        else:
            return None
    return max(t for t, _ in times), all(exact for _, exact in times)


def time_left(program: list[Any], state: State, in_step: float | None) -> tuple[float, bool] | None:
    """(seconds, exact) left from ``state`` (the last checkpoint); ``in_step``: how long the step at
    ``state.pc`` has run, None if it has not started.  None where the protocol allows no estimate."""
    if any(isinstance(ins, Check) and ins.until is not None for ins in program):
        return None
    count, pc, left, exact = dict(state.count), state.pc, 0.0, True
    for _ in range(MAX_WALK):
        if pc >= len(program):
            return left, exact
        ins = program[pc]
        if isinstance(ins, Leaf):
            step = _step_time(ins)
            if step is None:
                return None
            seconds, step_exact = step
            if pc == state.pc and in_step is not None:
                seconds = max(seconds - in_step, 0.0)
            left, exact, pc = left + seconds, exact and step_exact, pc + 1
        elif isinstance(ins, Enter):
            count[ins.loop], pc = 0, pc + 1
        elif isinstance(ins, Count):
            count[ins.loop] = n = count.get(ins.loop, 0) + 1
            pc = pc + 1 if ins.rpt_every is not None and n % ins.rpt_every == 0 else ins.after_rpt
        else:
            pc = pc + 1 if count.get(ins.loop, 0) >= ins.times else ins.body
    return None


@lru_cache(maxsize=256)
def _program(text: str, origin: str, cell: str, parameters: str) -> list[Any]:
    return L.parse(text, origin, CellSpec.from_meta(json.loads(cell)), json.loads(parameters)).program


def run_time_left(meta: dict[str, Any], checkpoint: str | None, in_step: float | None) -> tuple[float, bool] | None:
    """A run's (seconds, exact) left from its file's meta and its last checkpoint; None where there is none
    (the protocol's, or a run with no protocol text: an import, a synthetic run)."""
    protocol = meta.get("protocol", {})
    try:
        cell = json.dumps(meta["cell"], sort_keys=True)
        program = _program(protocol["text"], protocol["origin"], cell, protocol["parameters"])
    except (KeyError, TypeError, ValueError, L.ProtocolError):
        return None
    return time_left(program, State.from_json(checkpoint) if checkpoint else State(), in_step)
