"""Record what a driver writes, and find what its ``COMMANDS`` table does not name."""

import re


def recording(adapter) -> list[str]:
    """Every command written through ``adapter`` from now on."""
    sent: list[str] = []
    write = adapter.write

    def record(command, **kwargs):
        sent.append(command)
        return write(command, **kwargs)

    adapter.write = record
    return sent


def untabled(sent: list[str], commands) -> list[str]:
    """The commands whose header (up to a space, comma or semicolon) no row of ``commands`` names."""
    rows = " ".join(c.text for c in commands)
    return [c for c in sent if re.match(r"[^ ;,]+", c)[0] not in rows]
