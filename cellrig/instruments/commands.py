"""What each driver sends, and how far public sources confirm it: one table per driver.

A driver module keeps its table as ``COMMANDS``; ``docs/lab.md`` and ``cellrig lab check
--verbose`` both print it from there, so a lab with the real instrument knows what to check
on its first day.
"""

import importlib
from dataclasses import dataclass
from typing import Literal

Status = Literal["verified", "inferred", "unverified"]


@dataclass(frozen=True)
class Command:
    """One command a driver sends: ``verified`` (seen in a public source), ``inferred`` or ``unverified``."""

    text: str
    status: Status
    source: str  # the source, or why it is inferred or unverified


def commands_of(target: str) -> tuple[Command, ...]:
    """The ``COMMANDS`` table of a driver given as ``"module:Class"`` (empty if it has none)."""
    return tuple(getattr(importlib.import_module(target.partition(":")[0]), "COMMANDS", ()))


def markdown_table(commands: tuple[Command, ...]) -> str:
    """The table as Markdown, as ``docs/lab.md`` shows it."""
    rows = ["| command | status | source or reason |", "|---|---|---|"]
    rows += [f"| `{c.text.replace('|', chr(92) + '|')}` | {c.status} | {c.source} |" for c in commands]
    return "\n".join(rows)
