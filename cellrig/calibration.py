"""Calibration on record: each instrument's certificate, read from the lab file, judged against a date.

An accredited lab (ISO/IEC 17025) must show which calibrated instrument measured what.  A lab
file's role may carry a ``calibration`` table (certificate, date, due date, the uncertainty the
certificate states) and, for probes or channels calibrated apart, a ``channels`` table of the same
keyed by channel.  :func:`state` says whether a certificate is valid, due soon or expired on a day.
"""

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

DUE_SOON_DAYS = 30  # a certificate due within this many days is warned of
KEYS = ("certificate", "date", "due", "uncertainty")

State = Literal["valid", "due soon", "expired", "none"]


@dataclass(frozen=True)
class Certificate:
    """One calibration certificate: its id, when it was issued, when it is due, the stated uncertainty."""

    certificate: str
    date: dt.date
    due: dt.date
    uncertainty: str

    def state(self, today: dt.date) -> State:
        if today > self.due:
            return "expired"
        return "due soon" if (self.due - today).days <= DUE_SOON_DAYS else "valid"

    def says(self, today: dt.date) -> str:
        """A line for a table or a warning: the state, the certificate and its due date."""
        state = self.state(today)
        when = f"since {self.due}" if state == "expired" else f"due {self.due}"
        return f"{state}: {self.certificate}, {when}"

    def as_meta(self, today: dt.date) -> dict[str, str]:
        return {
            "certificate": self.certificate,
            "date": self.date.isoformat(),
            "due": self.due.isoformat(),
            "uncertainty": self.uncertainty,
            "state": self.state(today),
        }


@dataclass(frozen=True)
class Calibration:
    """An instrument's certificate, and those of its channels calibrated apart."""

    instrument: Certificate | None = None
    channels: dict[int, Certificate] | None = None

    def of(self, channel: int | None = None) -> Certificate | None:
        """The certificate covering ``channel`` (its own, else the instrument's)."""
        return (self.channels or {}).get(channel, self.instrument) if channel is not None else self.instrument

    def certificates(self) -> dict[str, Certificate]:
        """Every certificate on record, by what it covers (``instrument``, ``channel 101`` …)."""
        out = {"instrument": self.instrument} if self.instrument else {}
        return out | {f"channel {ch}": c for ch, c in sorted((self.channels or {}).items())}

    def as_meta(self, today: dt.date) -> dict[str, Any]:
        return {what: c.as_meta(today) for what, c in self.certificates().items()}


def read_calibration(where: str, given: Any, problems: list[str]) -> Calibration:
    """Check a role's ``calibration`` table; every problem goes to ``problems``, each naming its key."""
    if not isinstance(given, dict):
        problems.append(f"{where}: expected a table of {', '.join(KEYS)} (and channels), got {given!r}")
        return Calibration()
    channels: dict[int, Certificate] = {}
    table = given.get("channels", {})
    if not isinstance(table, dict):
        problems.append(f"{where}.channels: expected a table of channel = {{ {', '.join(KEYS)} }}, got {table!r}")
        table = {}
    for key, entry in table.items():
        if not str(key).isdigit():
            problems.append(f"{where}.channels.{key}: a channel is a number, e.g. 101")
        elif (cert := _certificate(f"{where}.channels.{key}", entry, problems)) is not None:
            channels[int(key)] = cert
    rest = {k: v for k, v in given.items() if k != "channels"}
    instrument = _certificate(where, rest, problems) if rest else None
    return Calibration(instrument, channels or None)


def _certificate(where: str, entry: Any, problems: list[str]) -> Certificate | None:
    if not isinstance(entry, dict):
        problems.append(f"{where}: expected a table of {', '.join(KEYS)}, got {entry!r}")
        return None
    start = len(problems)
    for key in sorted(set(entry) - set(KEYS)):
        problems.append(f"{where}.{key}: unknown key (known: {', '.join(KEYS)}, channels)")
    for key in KEYS:
        if key not in entry:
            problems.append(f"{where}.{key}: missing (a certificate needs {', '.join(KEYS)})")
    for key in ("certificate", "uncertainty"):
        if key in entry and (not isinstance(entry[key], str) or not entry[key].strip()):
            problems.append(f"{where}.{key}: expected text, got {entry[key]!r}")
    for key in ("date", "due"):  # TOML dates (2026-03-02), not text and not date-times
        if key in entry and (not isinstance(entry[key], dt.date) or isinstance(entry[key], dt.datetime)):
            problems.append(f"{where}.{key}: expected a date such as 2026-03-02, got {entry[key]!r}")
    if len(problems) > start:
        return None
    if entry["due"] <= entry["date"]:
        problems.append(f"{where}.due: {entry['due']} is not after the calibration date {entry['date']}")
        return None
    return Certificate(entry["certificate"].strip(), entry["date"], entry["due"], entry["uncertainty"].strip())
