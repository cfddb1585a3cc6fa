"""Simulated instruments as TCP servers speaking a line-terminated (SCPI-style) command set.

A simulator subclasses :class:`SimInstrument` and marks handlers with :func:`command`,
giving the header in SCPI notation (upper case = short form, ``[...]`` = optional node):
``@command("SEQuence:STEP:DEFine")`` matches ``SEQ:STEP:DEF``, ``sequence:step:define`` ...
:class:`SimServer` serves one simulator on a free localhost port as a VISA
``TCPIP0::127.0.0.1::<port>::SOCKET`` resource.
"""

import contextlib
import re
import socket
import socketserver
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

Reply = str | bytes | None
Handler = Callable[..., Reply]


def command(header: str) -> Callable[[Handler], Handler]:
    """Mark a method as the handler of an SCPI header; it gets the argument text."""

    def mark(fn: Handler) -> Handler:
        fn.scpi_header = header  # type: ignore[attr-defined]
        return fn

    return mark


def _node(node: str) -> str:
    short = "".join(ch for ch in node if not ch.islower())
    rest = node[len(short) :].upper()
    return re.escape(short.upper()) + (f"(?:{re.escape(rest)})?" if rest else "")


def header_regex(header: str) -> re.Pattern[str]:
    """Compile an SCPI header (``[:SOURce]:VOLTage?``) into a case-insensitive regex."""
    query = header.endswith("?")
    text = header.rstrip("?").lstrip(":")
    parts = re.split(r"(\[[^\]]*\])", text)
    out = ""
    for part in parts:
        if not part:
            continue
        if part.startswith("["):
            inner = part[1:-1].strip(":")
            out += "(?::?" + ":".join(_node(n) for n in inner.split(":")) + ")?"
        else:
            nodes = [n for n in part.split(":") if n]
            joined = ":".join(_node(n) for n in nodes)
            out += (":?" if out or part.startswith(":") else "") + joined
    if text.startswith("*"):
        out = re.escape(text.upper())
    return re.compile(rf":?{out}{re.escape('?') if query else ''}(?=\s|$)", re.IGNORECASE)


class SimInstrument:
    """A simulated instrument: a command table, an error queue and the IEEE 488.2 basics."""

    idn: str = "cellrig,SimInstrument,0,0"
    read_termination: str = "\n"
    write_termination: str = "\n"
    _table: ClassVar[list[tuple[re.Pattern[str], str]]] = []
    #: Whether a ``stall`` fault means anything here (a scanning data logger).
    stalls: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        table = []
        for klass in reversed(cls.__mro__):
            for name, fn in vars(klass).items():
                if hasattr(fn, "scpi_header"):
                    table.append((header_regex(fn.scpi_header), name))
        # longest headers first, so "DATA:LOG:CLEar" wins over "DATA:LOG?"
        cls._table = sorted(table, key=lambda item: -len(item[0].pattern))

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.errors: deque[tuple[int, str]] = deque(maxlen=20)
        self.faults: list[Fault] = []
        self.last_replies: dict[str, bytes] = {}
        self.dead = False
        self.playing: FaultKind | None = None  # the fault played on the line being handled
        self.world: Any = None  # set when the simulator joins a World

    def advance(self) -> None:
        """Bring the simulated physics up to the present (simulators with physics override this)."""

    def quiet(self) -> bool:
        """True when nothing in this simulator changes fast (its world may then take large steps)."""
        return False

    def inject(self, kind: "FaultKind", count: int = 1, match: str = "", **details: Any) -> None:
        """Play a fault on the next ``count`` commands starting with ``match`` (see :class:`Fault`).

        ValueError for an unknown kind, a negative count, or a stall on an instrument that does not scan.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r} (kinds: {', '.join(FAULT_KINDS)})")
        if count < 0:
            raise ValueError(f"a fault's count must be 0 or more, got {count}")
        if kind == "stall" and not self.stalls:
            raise ValueError(f"{type(self).__name__} has no scan to stall")
        with self.lock:
            self.faults.append(Fault(kind, count, match, **details))

    def take_fault(self, line: str) -> "Fault | None":
        """The fault due for this command, if any (consuming one of its count)."""
        with self.lock:
            for fault in self.faults:
                if line.upper().startswith(fault.match.upper()):
                    if fault.kind == "dead":
                        self.dead = True
                        return fault
                    fault.count -= 1
                    if fault.count <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def handle(self, line: str, fault: "FaultKind | None" = None) -> Reply:
        """Run one line (commands separated by ``;``) and return the reply, if any.

        ``fault``: the kind played on this line; ``nan`` and ``stall`` shape what it answers.
        """
        replies = []
        with self.lock:
            self.playing = fault
            try:
                if self.world is not None:
                    self.world.advance()
                for cmd in (c.strip() for c in line.split(";")):
                    if cmd:
                        reply = self._dispatch(cmd)
                        if reply is not None:
                            replies.append(reply)
            finally:
                self.playing = None
        if not replies:
            return None
        if len(replies) == 1:
            reply = replies[0]
        else:
            reply = ";".join(r if isinstance(r, str) else r.decode("latin-1") for r in replies)
        return self.not_a_number(reply) if fault == "nan" else reply

    def not_a_number(self, reply: Reply) -> Reply:
        """The reply under a ``nan`` fault: every number of a text reply reads ``NAN`` (binary blocks pass)."""
        return NUMBER.sub("NAN", reply) if isinstance(reply, str) else reply

    def _dispatch(self, cmd: str) -> Reply:
        for regex, name in self._table:
            m = regex.match(cmd)
            if m:
                args = cmd[m.end() :].strip()
                try:
                    return getattr(self, name)(args)
                except SCPIError as exc:
                    self.errors.append((exc.code, exc.text))
                    return exc.reply
                except (ValueError, IndexError):
                    self.errors.append((-224, "Illegal parameter value"))
                    return None
        self.errors.append((-113, "Undefined header"))
        return None

    # -- IEEE 488.2 common commands and the error queue -----------------------------------

    @command("*IDN?")
    def _idn(self, args: str) -> Reply:
        return self.idn

    @command("*RST")
    def _rst(self, args: str) -> Reply:
        self.reset()
        return None

    @command("*CLS")
    def _cls(self, args: str) -> Reply:
        self.errors.clear()
        return None

    @command("*OPC?")
    def _opc(self, args: str) -> Reply:
        return "1"

    @command("SYSTem:ERRor[:NEXT]?")
    def _next_error(self, args: str) -> Reply:
        code, text = self.errors.popleft() if self.errors else (0, "No error")
        return f'{code:+d},"{text}"'

    def reset(self) -> None:
        """Return to the power-on state (``*RST``)."""


class SCPIError(Exception):
    """Raised by a handler: queued as an SCPI error, optionally answered with ``reply``."""

    def __init__(self, code: int, text: str, reply: Reply = None) -> None:
        super().__init__(f"{code}: {text}")
        self.code, self.text, self.reply = code, text, reply


FaultKind = Literal["timeout", "drop", "garble", "stuck", "error", "dead", "nan", "stall"]
FAULT_KINDS: tuple[str, ...] = FaultKind.__args__
#: A number standing alone in a reply (not the digits of a word such as ``S2`` or ``DAQ970A``).
NUMBER = re.compile(r"(?<![\w.])[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![\w.])")


@dataclass
class Fault:
    """A fault the simulator plays on the next ``count`` commands that start with ``match``.

    - ``timeout``: the command is swallowed, no reply;
    - ``drop``: the connection is closed (the instrument accepts a new one);
    - ``garble``: the reply arrives corrupted;
    - ``stuck``: a query answers what it answered last time (a frozen reading);
    - ``error``: the command is refused with SCPI error ``code``;
    - ``dead``: the instrument never answers again and refuses connections (``count`` ignored);
    - ``nan``: the reply's readings are not numbers: every number of a text reply reads ``NAN``
      (so choose ``match``: a status code turns into ``NAN`` too); a data logger instead reports
      its overload value +9.9E+37 in the reading fields of its scan data, channel and time intact;
    - ``stall``: (data loggers only) the logger answers but its scan stopped: from the injection
      until ``count`` matching commands have been answered, the readings that fall due are lost,
      so the reading count does not grow.  Afterwards the scan goes on at its own times.
    """

    kind: FaultKind
    count: int = 1
    match: str = ""
    code: int = -350
    text: str = "Device-specific error"


def garble(reply: bytes) -> bytes:
    """Corrupt a reply the way a noisy line does: digits turn into junk."""
    out = bytes(b if not 48 <= b <= 57 else 63 for b in reply)
    return out if out != reply else b"\x15" + reply


class _Handler(socketserver.StreamRequestHandler):
    server: "_TCPServer"

    def setup(self) -> None:
        super().setup()
        self.server.clients.add(self.request)

    def finish(self) -> None:
        self.server.clients.discard(self.request)
        super().finish()

    def handle(self) -> None:
        sim = self.server.sim
        term = sim.read_termination.encode()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        while not sim.dead:  # a dead instrument's network interface still accepts, then hangs up
            try:
                chunk = self.request.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while term in buf:
                raw, buf = buf.split(term, 1)
                if not self._serve(sim, raw.decode("latin-1").strip("\r\n")):
                    return

    def _serve(self, sim: "SimInstrument", line: str) -> bool:
        """Answer one line, playing any fault due; False when the connection must close."""
        fault = sim.take_fault(line)
        kind = fault.kind if fault else None
        if kind in ("drop", "dead"):
            return False
        if kind == "timeout":
            return True
        if kind == "error":
            sim.errors.append((fault.code, fault.text))
            return True
        reply = sim.last_replies.get(line) if kind == "stuck" and line in sim.last_replies else sim.handle(line, kind)
        if reply is None:
            return True
        data = reply.encode("latin-1") if isinstance(reply, str) else reply
        sim.last_replies[line] = data
        self.request.sendall((garble(data) if kind == "garble" else data) + sim.write_termination.encode())
        return True


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, sim: SimInstrument, host: str, port: int) -> None:
        self.sim = sim
        self.clients: set[socket.socket] = set()
        super().__init__((host, port), _Handler)


#: How often a server looks for a stop request: socketserver's default 0.5 s made stopping a virtual
#: lab of nine servers take 4 s (most of a refused ``cellrig run``'s time on the embedded lab).
STOP_POLL_S = 0.02


class SimServer:
    """Serve one simulated instrument on localhost (port 0 picks a free port)."""

    def __init__(self, sim: SimInstrument, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sim = sim
        self._server = _TCPServer(sim, host, port)
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": STOP_POLL_S},
            name=f"sim-{type(sim).__name__}-{self.port}",
            daemon=True,
        )

    @property
    def resource(self) -> str:
        """The VISA resource name that reaches this simulator."""
        return f"TCPIP0::{self.host}::{self.port}::SOCKET"

    def start(self) -> "SimServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop every open connection (the instrument is gone)."""
        self._server.shutdown()
        self._server.server_close()
        self.drop_connections()

    def drop_connections(self) -> None:
        """Close every open connection; the server keeps listening for new ones."""
        for client in list(self._server.clients):
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> "SimServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
