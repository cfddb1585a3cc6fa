"""What a run tells people through :mod:`cellrig.notify`: a trip, a safe state not confirmed, how it
ended, the end of its campaign, and a nearly full disk.  Every call only queues a message."""

import logging
import math
import shutil
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..notify import Notifier, Record
from .states import RunState, Trip

log = logging.getLogger(__name__)
DISK_CHECK_S = 60.0  # real seconds between looks at the run folder's free space
DRAIN_S = 15.0  # real seconds a run's end waits for its alerts to go out, so their delivery is in its file
_ENDED = {RunState.FINISHED: "finished", RunState.STOPPED: "stopped", RunState.ABORTED: "stopped"}


@dataclass
class CampaignEnd:
    """The runs of one campaign: the last to end tells of them all."""

    name: str
    runs: set[str] = field(default_factory=set)
    ended: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # run -> (status, reason)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def end(self, key: str, status: str, reason: str | None) -> dict[str, tuple[str, str | None]] | None:
        """Record one run's end; every run's, once the last has ended (to this call only)."""
        with self._lock:
            last = key not in self.ended and set(self.ended) | {key} >= self.runs
            self.ended[key] = (status, reason)
            return dict(self.ended) if last else None


class Alerting(Protocol):
    """What alerts read of a run (the engine's ``Runner``)."""

    key: str
    shared: Any  # engine.Shared: its notifier and campaign
    lab: Any
    protocol: Any
    leaf: Any
    state: Any

    @property
    def path(self) -> Path: ...
    def now(self) -> float: ...


class RunAlerts:
    """One run's alerts; silent when the lab has nobody to tell, except the disk warning, which is
    always recorded in the run file."""

    def __init__(self, runner: Alerting, record: Record) -> None:
        self.runner, self.record = runner, record
        self.notifier: Notifier | None = runner.shared.notifier
        self.free_gb = runner.lab.notify.disk_free_gb
        self.campaign: CampaignEnd | None = runner.shared.campaign
        if self.campaign is not None:
            self.campaign.runs.add(runner.key)
        self.disk_checked = -math.inf
        self.disk_low = False

    def _send(self, kind: str, headline: str, detail: str) -> None:
        if self.notifier is not None:
            try:
                self._compose(kind, headline, detail)
            except Exception:  # called on the way to a safe state: telling must never stop it
                log.exception("alert %s for %s", kind, self.runner.key)

    def _compose(self, kind: str, headline: str, detail: str) -> None:
        r = self.runner
        step = f"step {r.leaf.number} ({r.leaf.label}), cycle {r.state.cycle}" if r.leaf else "before the first step"
        lines = [detail, f"run: {r.path.resolve()}", f"protocol: {r.protocol.name}; {step}"]
        lines.append(f"lab: {r.lab.name} on {socket.gethostname()}; run time {r.now() / 3600:.2f} h")
        self.notifier.send(kind, f"{r.protocol.cell.id} {headline} ({r.lab.name})", "\n".join(lines), self.record)

    def trip(self, trip: Trip) -> None:
        kind = "stale" if trip.signal == "stale data" else "trip"
        self._send(kind, "TRIPPED", f"{trip.reason}; the outputs are being made safe")

    def unsafe(self, failures: list[str]) -> None:
        self._send("failed", "SAFE STATE NOT CONFIRMED", "; ".join(failures) + "\nGo and check the instruments.")

    def ended(self, status: str, reason: str | None, failed_told: bool) -> None:
        """The run's end (a trip or an unsafe end was told already), then its campaign's if it was the last."""
        kind = "failed" if status == RunState.FAILED else _ENDED.get(status)
        if kind and not (kind == "failed" and failed_told):
            self._send(kind, status.upper() if kind == "failed" else status, reason or status)
        if self.campaign is None:
            return
        every = self.campaign.end(self.runner.key, status, reason)
        if every is not None:
            counts = ", ".join(f"{n} {s}" for s, n in Counter(status for status, _ in every.values()).items())
            lines = [f"{key}: {status}" + (f" ({why})" if why else "") for key, (status, why) in sorted(every.items())]
            self._send("campaign", f"was the last run of {self.campaign.name}: {counts}", "\n".join(lines))

    def drain(self) -> None:
        if self.notifier is not None:
            self.notifier.drain(DRAIN_S)

    def check_disk(self) -> None:
        """Every :data:`DISK_CHECK_S`: a run folder's volume below ``disk_free_gb`` is said once (and alerted)."""
        if time.monotonic() - self.disk_checked < DISK_CHECK_S:
            return
        self.disk_checked = time.monotonic()
        try:
            free = shutil.disk_usage(self.runner.path.parent).free / 1e9
        except OSError:  # a lost volume: the next write says so, and ends the run
            return
        if free >= self.free_gb or self.disk_low:
            self.disk_low = free < self.free_gb
            return
        self.disk_low = True
        said = f"{free:.2f} GB free on the run folder's volume (alert below {self.free_gb:g} GB)"
        self.record("disk_low", said)
        self._send("disk", "disk nearly full", said + "; a full disk ends the run")
