"""What an operator sees during an abuse test, as the standards ask for it.

The standards judge fire, explosion and the like by observation (video, the operator), never from
signals.  One observation answers each of :data:`OBSERVED` yes or no, with a note and the
operator's name; it is recorded as an ``observation`` event whose message is the JSON of
:func:`message`.  The last one of a run counts.  A protocol whose pass criteria need one
(:mod:`cellrig.protocols.criteria`) asks for it at its end; until one is recorded the run is
"awaiting observation" (:data:`AWAITING_EVENT`).
"""

import json
from typing import Any

#: What an observation answers, each yes or no: the EUCAR observables of docs/standards.md §6 and smoke.
OBSERVED = ("fire", "explosion", "rupture", "venting", "smoke", "leakage")
EVENT = "observation"
AWAITING_EVENT = "awaiting_observation"


def message(seen: dict[str, bool], note: str = "", operator: str = "") -> str:
    """The message of an ``observation`` event: JSON of each of :data:`OBSERVED`, the note and who saw it."""
    if set(seen) != set(OBSERVED):
        missing = ", ".join(k for k in OBSERVED if k not in seen)
        raise ValueError(f"an observation answers each of {', '.join(OBSERVED)}, yes or no (missing: {missing})")
    return json.dumps({**{k: bool(seen[k]) for k in OBSERVED}, "note": note, "operator": operator}, ensure_ascii=False)


def read(text: str) -> dict[str, Any]:
    """An ``observation`` event's message back as a dict (ValueError if it is not one)."""
    try:
        seen = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not an observation: {exc}") from None
    if not isinstance(seen, dict) or any(not isinstance(seen.get(k), bool) for k in OBSERVED):
        raise ValueError(f"an observation answers each of {', '.join(OBSERVED)} with true or false")
    return seen


def said(seen: dict[str, Any]) -> str:
    """One line: what was seen and what not."""
    yes = [k for k in OBSERVED if seen.get(k)]
    return ("seen: " + ", ".join(yes) if yes else "none of " + ", ".join(OBSERVED) + " seen") + (
        f" ({seen['note']})" if seen.get("note") else ""
    )
