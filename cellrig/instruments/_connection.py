"""The connection policy every cellrig driver follows, in one place.

- one lock per connection: a query (write + read) is never interleaved with another thread's;
- a timeout on every call (the VISA timeout);
- transient faults (timeouts, dropped sockets, garbled replies) are retried with exponential
  backoff on a fresh connection;
- what still fails raises :class:`InstrumentError`, naming the role, model and resource.

A dead instrument therefore raises within ``(retries + 1) × timeout + backoff`` seconds.
"""

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pyvisa
from pymeasure.adapters import VISAAdapter

from ._visa import tune_socket

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class ConnectionPolicy:
    """How hard a driver tries before it gives up on an instrument."""

    timeout_s: float = 5.0
    retries: int = 2
    backoff_s: float = 0.1

    @property
    def give_up_after_s(self) -> float:
        """Upper bound on the time a dead instrument takes to raise."""
        return (self.retries + 1) * self.timeout_s + self.backoff_s * (2**self.retries - 1)


class InstrumentError(RuntimeError):
    """An instrument failed (after the policy's retries) or reported an error."""


#: Faults worth another try: I/O errors and timeouts, dropped sockets, replies that do not parse.
TRANSIENT = (pyvisa.errors.VisaIOError, OSError, ValueError, IndexError)
_CONNECTION = (pyvisa.errors.VisaIOError, OSError)


class ManagedConnection:
    """Mixin for pymeasure ``Instrument`` drivers: applies the connection policy to all I/O.

    Put it first in the bases: ``class Driver(ManagedConnection, SCPIMixin, Instrument)``.
    """

    role: str = ""
    model: str = ""
    #: A numeric query whose reply holds no number raises (a garbled reply) instead of returning text.
    #: Stock pymeasure drivers read text through numeric getters, so their wrappers switch this off.
    strict_numbers: bool = True

    def __init__(self, adapter: Any, name: str, *, policy: ConnectionPolicy | None = None, **kwargs: Any) -> None:
        if policy is None and "timeout" in kwargs:  # a plain VISA timeout (ms) sets the policy's
            policy = ConnectionPolicy(timeout_s=kwargs.pop("timeout") / 1000)
        self.policy = policy or ConnectionPolicy()
        kwargs["timeout"] = int(self.policy.timeout_s * 1000)
        self._open_kwargs = {k: v for k, v in kwargs.items() if k not in ("visa_library", "includeSCPI")}
        self.lock = threading.RLock()
        self._depth = threading.local()
        super().__init__(adapter, name, **kwargs)
        tune_socket(self.adapter)

    # -- what the policy wraps ------------------------------------------------------------

    def write(self, command: str, **kwargs: Any) -> None:
        return self._guarded(f"write {command!r}", super().write, command, **kwargs)

    def ask(self, command: str, query_delay: float | None = None) -> str:
        return self._guarded(f"query {command!r}", super().ask, command, query_delay)

    def values(self, command: str, *args: Any, **kwargs: Any) -> list[Any]:
        """Query and parse; unlike plain pymeasure, a numeric reply with no number in it is an error, not text.

        (Mixed replies such as SCPI's ``-113,"Undefined header"`` keep pymeasure's behaviour.)
        """
        return self._guarded(f"query {command!r}", self._strict_values, command, *args, **kwargs)

    def _strict_values(self, command: str, *args: Any, **kwargs: Any) -> list[Any]:
        result = super().values(command, *args, **kwargs)
        cast = kwargs.get("cast", float)
        if self.strict_numbers and cast in (int, float) and all(isinstance(v, str) for v in result):
            raise ValueError(f"reply {result!r} to {command!r} does not parse as {cast.__name__}")
        return result

    def transaction(self, what: str, fn: Callable[[], T], *, retry: bool = True) -> T:
        """Run a multi-step exchange (e.g. write then read a binary block) under the policy.

        ``retry=False`` for destructive reads (a data log that pops what it returns): a retry
        could silently drop what the failed attempt consumed, so the failure is raised instead.
        """
        return self._guarded(what, fn, attempts=None if retry else 1)

    def query_block(self, command: str) -> bytes:
        """Send a query answered by an IEEE 488.2 definite-length block; return the block's bytes.

        Retried while nothing of the reply has arrived.  Once the block has begun, a failure
        raises :class:`InstrumentError` saying what it held is lost: a data log that pops what
        it returns must not be asked again as if nothing happened.
        """
        return self.transaction(f"query {command!r}", lambda: self._read_block(command))

    def _read_block(self, command: str) -> bytes:
        self.write(command)
        with self._termination_off():
            head = self.read_bytes(2)
            try:
                if head[:1] != b"#":
                    raise ValueError(f"the reply does not start a binary block: {head!r}")
                size = int(self.read_bytes(int(head[1:2])))
                payload = self.read_bytes(size) if size else b""
                self.read_bytes(1)  # the terminator after the block
            except TRANSIENT as exc:
                self._start_clean()
                raise InstrumentError(
                    f"{self.describe()}: the reply to {command!r} broke off; what it held is lost: {exc}"
                ) from exc
        return payload

    @contextlib.contextmanager
    def _termination_off(self) -> Iterator[None]:
        """Read with the termination character off: a block's bytes may hold it, and pyvisa-py hands a
        read over up to each one (a 2 MB block of floats in thousands of pieces, seconds on a busy process)."""
        conn = getattr(self.adapter, "connection", None)
        termination = getattr(conn, "read_termination", None)
        if not termination:
            yield
            return
        conn.read_termination = None
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # a connection replaced after a fault has its own
                conn.read_termination = termination

    def raise_errors(self) -> None:
        """Raise :class:`InstrumentError` if the instrument's SCPI error queue holds errors (emptying it)."""
        errors = self.check_errors()
        if errors:
            text = "; ".join(f"{int(float(code)):+d} {str(msg).strip(chr(34))}" for code, msg in errors)
            raise InstrumentError(f"{self.describe()}: instrument reported {text}")

    # -- the policy -----------------------------------------------------------------------

    @property
    def resource(self) -> str:
        return str(getattr(self.adapter, "resource_name", None) or self.adapter)

    def describe(self) -> str:
        """``role (model at resource)``: how errors name this instrument."""
        who = self.model or self.name
        return f"{self.role} ({who} at {self.resource})" if self.role else f"{who} at {self.resource}"

    def _guarded(self, what: str, fn: Callable[..., T], *args: Any, attempts: int | None = None, **kwargs: Any) -> T:
        with self.lock:
            if getattr(self._depth, "n", 0):  # already inside a guarded call: the outer one handles faults
                return fn(*args, **kwargs)
            self._depth.n = 1
            try:
                return self._with_retries(what, fn, args, kwargs, attempts or self.policy.retries + 1)
            finally:
                self._depth.n = 0

    def _with_retries(self, what: str, fn: Callable[..., T], args: tuple, kwargs: dict, attempts: int) -> T:
        for attempt in range(attempts):
            try:
                return fn(*args, **kwargs)
            except TRANSIENT as exc:
                self._start_clean()  # a timed-out or garbled exchange may leave stale bytes behind
                if attempt == attempts - 1:
                    tries = f"after {attempts} attempts" if attempts > 1 else "(not retried)"
                    raise InstrumentError(
                        f"{self.describe()}: {what} failed {tries}: {type(exc).__name__}: {exc}"
                    ) from exc
                log.warning("%s: %s failed (%s), retrying", self.describe(), what, exc)
                time.sleep(self.policy.backoff_s * 2**attempt)
        raise AssertionError("unreachable")

    def _start_clean(self) -> None:
        try:
            self.reconnect()
        except _CONNECTION as err:  # still down: the next attempt reports it
            log.warning("%s: reconnect failed: %s", self.describe(), err)

    def reconnect(self) -> None:
        """Close and reopen the VISA connection."""
        adapter = self.adapter
        if not isinstance(adapter, VISAAdapter):
            return
        try:
            adapter.connection.close()
        except Exception as err:  # a dead connection may fail to close; it is replaced anyway
            log.debug("%s: close before reconnect failed: %s", self.describe(), err)
        adapter.connection = adapter.manager.open_resource(adapter.resource_name, **self._open_kwargs)
        tune_socket(adapter)
