"""What the served lab's instruments say about their own state: asked over plain sockets, in each one's command set.

For tests that check the way an auditor would that a run left the lab safe: from the instruments
themselves, never from cellrig's variables or drivers.  Each reader opens its own connection to
a ``TCPIP0::<host>::<port>::SOCKET`` resource, asks one line and returns a plain value.
"""

import socket
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

TIMEOUT_S = 10.0
#: Rig states with the ram out of the specimen or on its way out: what its safe state leaves
#: (a retract, or an e-stop when the retract is refused).
RIG_SAFE = ("IDLE", "RETRACTING", "ESTOP")


def ask(resource: str, query: str, termination: str = "\n") -> str:
    """Send one line to a raw-socket resource and return its one-line reply, stripped."""
    _, host, port, _ = resource.split("::")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT_S) as conn:
        conn.sendall((query + termination).encode("latin-1"))
        return conn.makefile("rb").readline().decode("latin-1").strip()


def bt2200_running(resource: str, channel: int) -> bool:
    """Whether the BT2200 runs a sequence on ``channel`` (``STAT:CELL:REP?``: 1 is running).

    Asks for the cell cellrig defines there (slot × 1000 + channel), which must be defined: for an
    undefined cell the instrument answers nothing and queues an error, and LookupError is raised.
    """
    cell = channel // 100 * 1000 + channel % 100
    reply = ask(resource, f"STAT:CELL:REP? (@{cell});*OPC?")  # *OPC? answers even when the cell is undefined
    status, _, done = reply.rpartition(";")
    if not status or done != "1":
        raise LookupError(f"{resource}: no cell {cell} defined on channel {channel} (reply {reply!r})")
    return int(status) == 1


def espec_mode(resource: str) -> str:
    """The ESPEC chamber's operating mode (``MODE?``): CONSTANT, RUN, STANDBY or OFF."""
    return ask(resource, "MODE?", "\r\n")


def f4t_output(resource: str) -> bool:
    """Whether the F4T's event output 1, which runs the chamber's conditioning, is on (``:OUTPUT1:STATE?``)."""
    return ask(resource, ":OUTPUT1:STATE?") == "ON"


def rig_state(resource: str) -> str:
    """The abuse rig's state (``STAT?``): IDLE, PRESSING, HOLDING, RETRACTING, STOPPED or ESTOP."""
    return ask(resource, "STAT?")


def smu_output(resource: str) -> bool:
    """Whether the Keithley 2450's output is on (``:OUTP?``)."""
    return ask(resource, ":OUTP?") == "1"


#: Per driver: whether a role's instrument is in its safe state, from its lab-file entry.
SAFE: dict[str, Callable[[dict[str, Any]], bool]] = {
    "keysight_bt2200": lambda e: not bt2200_running(e["resource"], e.get("options", {}).get("channel", 101)),
    "espec": lambda e: espec_mode(e["resource"]) in ("STANDBY", "OFF"),
    "watlow_f4t": lambda e: not f4t_output(e["resource"]),
    "press_100": lambda e: rig_state(e["resource"]) in RIG_SAFE,
    "keithley_2450": lambda e: not smu_output(e["resource"]),
}


def safe_states(lab_file: str | Path, roles: list[str]) -> dict[str, bool | str]:
    """Per role: True if its instrument says it is in its safe state, False if not, or why it could not be told."""
    entries = tomllib.loads(Path(lab_file).read_text())["roles"]
    out: dict[str, bool | str] = {}
    for role in roles:
        entry = entries[role]
        safe = SAFE.get(entry["driver"])
        try:
            out[role] = safe(entry) if safe else f"no reader for {entry['driver']}"
        except (OSError, LookupError, ValueError) as exc:
            out[role] = f"unreadable: {type(exc).__name__}: {exc}"
    return out


def sim_pids(lab_file: Path) -> list[int]:
    """Pids of the ``cellrig sim`` processes serving ``lab_file`` (their command lines name it)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"sim" in argv and str(lab_file).encode() in argv:
                found.append(int(proc.name))
    return found
