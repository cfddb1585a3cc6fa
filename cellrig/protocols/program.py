"""The compiled program the engine runs: steps, and the loop bookkeeping between them."""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Leaf:
    """One step the engine runs: ``number`` is its place in the protocol (stable across loop iterations)."""

    number: int
    label: str
    kind: str
    spec: Any  # the step's settings (a model of .kinds); for "parallel", a tuple of Leaf
    role: str | None
    rpt: bool = False  # part of a reference performance test
    line: int = 0  # where the protocol file says it

    @property
    def parts(self) -> tuple["Leaf", ...]:
        """The single steps this one runs: its parts if it is ``parallel``, else itself."""
        return self.spec if self.kind == "parallel" else (self,)


@dataclass(frozen=True)
class Enter:
    loop: int


@dataclass(frozen=True)
class Count:
    loop: int
    rpt_every: int | None
    after_rpt: int  # pc of the Check


@dataclass(frozen=True)
class Check:
    loop: int
    times: int
    until: tuple[str, str, float] | None  # (what, comparison, value)
    body: int  # pc of the loop's first instruction
    confirm: int = 1  # consecutive iterations the condition must hold


Instruction = Leaf | Enter | Count | Check
