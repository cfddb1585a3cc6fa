"""Alerts: tell people when a run needs one, through apprise (email, Slack, Teams, Matrix, ntfy, webhooks …).

In the lab file (a campaign file's ``notify:`` list adds routes for its runs)::

    [notify]
    disk_free_gb = 5                  # alert when the run folder's volume has less free (default 2)

    [[notify.to]]
    url = "mailtos://alerts:PASSWORD@smtp.example.com?to=lab-oncall@example.com"
    events = ["trip", "stale", "failed", "disk"]        # default: every kind in KINDS

    [[notify.to]]
    url = "ntfy://ntfy.sh/cell-lab-2"

The URLs are apprise's (https://github.com/caronc/apprise/wiki).  A run only queues a message:
each route sends on its own thread, retried, so a slow or failing service never delays a safe
state, a sample or another route.  What was delivered (or not, and why) is recorded in the run
file as ``notified`` / ``notify_failed`` events, with the URL's secrets masked.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from queue import SimpleQueue
from typing import Any

import apprise

log = logging.getLogger(__name__)

#: What a route can be told about, and when each is sent.
KINDS = {
    "trip": "a limit tripped (sent as the outputs are made safe)",
    "stale": "an instrument stopped giving data (a stale-data trip)",
    "failed": "a run failed, or its safe state was not confirmed",
    "stopped": "a run was stopped (operator, Ctrl-C, SIGTERM): it can be resumed",
    "finished": "a run finished",
    "campaign": "every run of a campaign has ended",
    "disk": "the run folder's volume is nearly full",
}
_TYPES = {"trip": "failure", "stale": "failure", "failed": "failure", "stopped": "warning", "disk": "warning"}
TRIES = 3
BACKOFF_S = (2.0, 8.0)  # real seconds before the second and the third try
DISK_FREE_GB = 2.0

#: Records an event in the run file: (kind, message).
Record = Callable[[str, str], None]


@dataclass(frozen=True)
class Route:
    """One apprise URL and the kinds of alert it is sent."""

    url: str
    kinds: frozenset[str] = frozenset(KINDS)

    @property
    def shown(self) -> str:
        """The URL with its passwords and tokens masked, fit for a run file or a terminal."""
        service = apprise.Apprise()
        service.add(self.url)
        return service.urls(privacy=True)[0].split("?")[0]


@dataclass(frozen=True)
class NotifySpec:
    """A lab file's ``[notify]``: where alerts go, and when the disk counts as nearly full."""

    routes: tuple[Route, ...] = ()
    disk_free_gb: float = DISK_FREE_GB


def read_routes(entries: Any, where: str, problems: list[str]) -> list[Route]:
    """``[{url, events?}, …]`` checked: every problem is added to ``problems`` with ``where`` and the index."""
    if not isinstance(entries, list):
        problems.append(f"{where}: expected a list of {{url, events}} entries, got {entries!r}")
        return []
    routes = []
    for i, entry in enumerate(entries):
        at = f"{where}[{i}]"
        if not isinstance(entry, dict) or set(entry) - {"url", "events"} or "url" not in entry:
            problems.append(f'{at}: expected {{url = "…", events = [...]}}, got {entry!r}')
            continue
        url, kinds = entry["url"], entry.get("events", sorted(KINDS))
        known_url = isinstance(url, str) and apprise.Apprise().add(url)
        if not known_url:
            problems.append(f"{at}.url: not a notification URL apprise knows ({url!r})")
        unknown = [k for k in kinds if k not in KINDS] if isinstance(kinds, list) else [kinds]
        if unknown:
            problems.append(f"{at}.events: unknown {unknown} (known: {', '.join(KINDS)})")
        if known_url and not unknown:
            routes.append(Route(url, frozenset(kinds)))
    return routes


def read_notify(data: Any, where: str, problems: list[str]) -> NotifySpec:
    """A lab file's ``[notify]`` table, checked (problems added, never raised)."""
    if data is None:
        return NotifySpec()
    if not isinstance(data, dict) or set(data) - {"to", "disk_free_gb"}:
        problems.append(f"{where}: expected to = [...] and disk_free_gb, got {data!r}")
        return NotifySpec()
    free = data.get("disk_free_gb", DISK_FREE_GB)
    if isinstance(free, bool) or not isinstance(free, int | float) or free < 0:
        problems.append(f"{where}.disk_free_gb: expected gigabytes (≥ 0), got {free!r}")
        free = DISK_FREE_GB
    return NotifySpec(tuple(read_routes(data.get("to", []), f"{where}.to", problems)), float(free))


@dataclass(frozen=True)
class Message:
    kind: str
    title: str
    body: str
    record: Record | None = None


def deliver(route: Route, message: Message) -> str | None:
    """Send ``message`` to ``route``, up to :data:`TRIES` times; None once delivered, else why not."""
    service = apprise.Apprise()
    service.add(route.url)
    why = "not delivered"
    for attempt in range(TRIES):
        if attempt:
            time.sleep(BACKOFF_S[attempt - 1])  # a backoff on the sending thread, never the run's
        result = service.notify(message.body, message.title, notify_type=_TYPES.get(message.kind, "info"))
        if result:
            return None
        said = [entry.message for entry in result.logs() if entry.level in ("WARNING", "ERROR", "CRITICAL")]
        why = said[-1] if said else "not delivered"
    return f"{why} ({TRIES} tries)"


class Notifier:
    """Sends alerts to routes, one thread and queue per route; :meth:`send` never blocks nor raises."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = tuple(routes)
        self._queues = [SimpleQueue[Message]() for _ in self.routes]
        self._pending = 0
        self._idle = threading.Condition()
        for route, queue in zip(self.routes, self._queues, strict=True):
            threading.Thread(target=self._work, args=(route, queue), name="notify", daemon=True).start()

    def send(self, kind: str, title: str, body: str, record: Record | None = None) -> None:
        """Queue an alert of ``kind`` for every route that wants it; ``record`` is told what became of it."""
        message = Message(kind, title, body, record)
        for route, queue in zip(self.routes, self._queues, strict=True):
            if kind in route.kinds:
                with self._idle:
                    self._pending += 1
                queue.put(message)

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` real seconds for every queued alert to be sent or given up; True if all were."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def _work(self, route: Route, queue: "SimpleQueue[Message]") -> None:
        while True:
            message = queue.get()
            try:
                why = deliver(route, message)
                said = f"{message.kind} to {route.shown}: " + ("delivered" if why is None else f"failed: {why}")
                if why is not None:
                    log.warning("alert %s", said)
                if message.record is not None:
                    message.record("notified" if why is None else "notify_failed", said)
            except Exception:  # a notifier must never die: the next alert may be the one that matters
                log.exception("alert %s to %s", message.kind, route.shown)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()
