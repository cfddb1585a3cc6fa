"""A served virtual lab's control line, from cellrig's side: one line out, one line back.

A lab file's ``[virtual] control = "HOST:PORT"`` names the line; the virtual lab (:mod:`cellrig.sim`)
answers it.  :class:`ServedCells` carries a run's cell over a resume through it.
"""

import json
import socket
from typing import Any

TIMEOUT_S = 10.0


def ask(address: str, line: str) -> str:
    """One line to a virtual lab's control line (``host:port``), its one-line answer back."""
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT_S) as conn:
        conn.sendall(line.encode("latin-1") + b"\n")
        return conn.makefile(encoding="latin-1").readline().strip()


class ServedCells:
    """The cells of a virtual lab another process serves, through its control line: what a run
    records at its checkpoints and puts back when it resumes."""

    def __init__(self, address: str) -> None:
        self.address = address

    def options(self) -> dict[str, Any]:
        return {}  # whoever serves it rebuilds it: the run keeps its lab file

    def cell_state(self, role: str, channel: int | None) -> dict[str, Any] | None:
        reply = ask(self.address, f"CELL? {role} {channel or 101}")
        return None if reply.startswith("ERR") else json.loads(reply)

    def restore_cell(self, role: str, channel: int | None, state: dict[str, Any]) -> None:
        reply = ask(self.address, f"CELL {role} {channel or 101} {json.dumps(state)}")
        if reply != "OK":
            raise ValueError(f"the virtual lab at {self.address} refused the cell's state: {reply or 'no reply'}")

    def stop(self) -> None:
        """Nothing: the lab's own process serves it."""
