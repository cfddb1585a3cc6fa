"""Keysight BT2200 (BT2202A mainframe, BT2203A cards): a multi-channel cycler.

Cells are defined on channels (``CELL:DEFine 1001,(@101)``: slot × 100 + channel),
sequences of CHARGE / DISCHARGE / REST / PRECHARGE steps are stored in the instrument with
end and fail tests, and the instrument runs them itself, buffering one record per interval
in its data log, which the host drains with ``DATA:LOG?``.  :data:`COMMANDS` lists every
command sent, with how far public sources confirm it.

Where the sources are silent or disagree the driver takes the reading that fails safe:

- ``STATus:CELL:REPort?`` codes are those of public code for real units (:data:`STATUS_CODES`);
  a code outside them raises :class:`InstrumentError` (the run fails with the code), never "done".
- REST is sent as ``SEQ:STEP:DEF s,n,REST,<s>`` (the one public example); an instrument that
  wants current and voltage fields too rejects it, and :meth:`BT2200Channel.start_step` raises.
- Currents in ``SEQ:STEP:DEF`` and the ``CURR_LE`` end test are magnitudes (the log's IMon is
  signed).  If an instrument compared signed current, a discharge's ``CURR_LE`` would fire at
  once: a discharge step that ends on its current test with |I| still above twice the end
  current raises instead of reporting "done".
- The log's SequenceState and CellId fields read 0 on real units (the pre-charger's parser), so
  records are assigned to a step by the host: from the step's start until the first status
  read that finds it ended.  A record is never dropped for a 0 in those fields.

A channel given the run's electrical limits (:meth:`BT2200Channel.guard`) adds them to every step
as tests of its own with action ``FAIL`` (``VOLT_GE``, ``VOLT_LE``, ``CURR_GE`` after 0 s), so the
instrument opens the circuit at a crossing however long its log period; which test failed is read
back with ``STAT:CELL:VERB?`` (:meth:`BT2200Channel.failure`).  The instrument tests ≥ and ≤ where
the supervisor trips on > and <, so a step that itself ends at or holds a level within
:data:`GUARD_MARGIN` of a limit (a CC charge to 4.2 V under a 4.2 V ``voltage_max``) gets that
test at its own level plus the margin; every other test sits at the limit.  A limit the channel
cannot reach or measure (outside 0–5 V, above 6.25 A) is left to the supervisor.
"""

import math
import time
from dataclasses import dataclass

import numpy as np
from pymeasure.instruments import Instrument
from pymeasure.instruments.generic_types import SCPIMixin
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from ._connection import InstrumentError, ManagedConnection
from .commands import Command
from .roles import CyclerLimits, CyclerStep, Identity, Samples

MODES = ("CHARGE", "DISCHARGE", "REST", "PRECHARGE")
TESTS = ("VOLT_GE", "VOLT_LE", "CURR_GE", "CURR_LE")
TIMINGS = ("AT", "BEFORE", "AFTER")
ACTIONS = ("NEXT", "FAIL")
#: ``STATus:CELL:REPort?`` codes as public code for real units reads them (a BT2202 pre-charger,
#: a BT2203A controller that treats 4 as finished).
STATUS_CODES = {0: "none", 1: "running", 2: "fail", 3: "aborted", 4: "ok"}
#: What each code means to the engine (the Cycler role's states).
ROLE_STATUS = {"none": "idle", "running": "running", "fail": "failed", "aborted": "aborted", "ok": "done"}
#: A discharge ending on its current test with |I| above this many times the end current ended early.
EARLY_END_FACTOR = 2.0
#: How far beyond a step's own end or hold level (V, A) its limit test sits when that level is within this of
#: the limit: more than the level's regulation error and a CC end's overshoot at the instrument's test rate.
GUARD_MARGIN = {"voltage": 0.01, "current": 0.02}
CURRENT_RANGE = (0.0, 6.25)  # A per channel, BT2203A class
VOLTAGE_RANGE = (0.0, 5.0)  # V
#: Real seconds one drain of the data log sends ``DATA:LOG?`` for at most: a log refilling faster than
#: it is read (a virtual lab on a clock its host cannot follow) is read on at the next drain, and the
#: records' age shows it.
MAX_DRAIN_S = 1.0
CELL_IDS = (1001, 8032)

_PRECHARGER = "dhsys21/PRECHARGER_Romania, dhsys21/PreCharger (BT2202 production code)"
COMMANDS = (
    Command("*IDN?", "verified", "IEEE 488.2; ricardo1slas/BT2202A_Plugin session logs"),
    Command("CELL:DEF <cell>,(@<channel>)", "verified", _PRECHARGER),
    Command("SEQ:CLEAR <seq>", "verified", _PRECHARGER),
    Command("SEQ:STEP:DEF <seq>,<step>,CHARGE|DISCHARGE,<s>,<A>,<V>", "verified", _PRECHARGER + "; currents positive"),
    Command("SEQ:STEP:DEF <seq>,<step>,REST,<s>", "inferred", "the one public example is REST,300"),
    Command("SEQ:TEST:DEF <seq>,<step>,<n>,VOLT_GE|VOLT_LE,<V>,AFTER,0,NEXT", "verified", _PRECHARGER),
    Command(
        "SEQ:TEST:DEF <seq>,<step>,<n>,VOLT_LE,<V>,AFTER,0,FAIL",
        "verified",
        _PRECHARGER + " (VOLT_LE and CURR_LE with FAIL, e.g. VOLT_LE,0.1,BEFORE,90,FAIL)",
    ),
    Command(
        "SEQ:TEST:DEF <seq>,<step>,<n>,VOLT_GE,<V>,AFTER,0,FAIL",
        "inferred",
        "ricardo1slas/BT2202A_Plugin builds VOLT|CURR _ GE|LE with FAIL|NEXT; FAIL seen only with _LE",
    ),
    Command(
        "SEQ:TEST:DEF <seq>,<step>,<n>,CURR_GE,<A>,AFTER,0,FAIL",
        "inferred",
        "ricardo1slas/BT2202A_Plugin (CURR_GE composed, not seen sent); |I| assumed: a signed comparison would "
        "never fail a discharge, whose over-current is then the supervisor's alone",
    ),
    Command(
        "SEQ:TEST:DEF <seq>,<step>,<n>,CURR_LE,<A>,AFTER,0,NEXT",
        "unverified",
        "whether a discharge compares |I| or signed I is unsettled; an early end raises",
    ),
    Command("CELL:ENABLE (@<cell>),<seq>", "verified", _PRECHARGER),
    Command("CELL:INIT (@<cell>)", "verified", _PRECHARGER),
    Command("STAT:CELL:REP? (@<cell>)", "verified", _PRECHARGER + "; codes 0 none, 1 running, 2 fail, 3 aborted, 4 OK"),
    Command(
        "STAT:CELL:VERB? <cell>",
        "inferred",
        "dhsys21/PreCharger Equipment/KeysightBT2202.cs sends it and documents the reply IDLE|RUNNING,<seq>,<step>,"
        "<Vsense>,<Imon>,NONE|OK|FAIL|ABORTED,<testId>,<testType>,<limit>,<measured> (reads fields 0-5 only)",
    ),
    Command("CELL:ABORT (@<cell>)", "verified", _PRECHARGER),
    Command("OUTP 0|1, OUTP?", "verified", "docs/instruments.md §3.1, C12 (OUTP ON)"),
    Command("DATA:LOG?", "verified", "dhsys21/PreCharger DataLogNameSpace.cs (record layout)"),
    Command(
        "SYST:ERR?", "unverified", "the SCPI error queue; not seen in a BT2200 source (without it, calls time out)"
    ),
)
CHANNELS_PER_CARD = 32


def record_dtype(channels: int) -> np.dtype:
    """The layout of one ``DATA:LOG?`` record for a mainframe of ``channels`` channels."""
    return np.dtype(
        [
            ("timestamp_ms", "<u8"),
            ("imon", "<f4", (channels,)),
            ("vsense", "<f4", (channels,)),
            ("vlocal", "<f4", (channels,)),
            ("dcir1", "<f4", (channels,)),
            ("dcir2", "<f4", (channels,)),
            ("cell_id", "<u2", (channels,)),
            ("seq_state", "<i2", (channels,)),
        ]
    )


def channel_index(channel: int) -> int:
    """Position of a channel (slot × 100 + channel) in a data-log record."""
    slot, ch = divmod(channel, 100)
    if not (1 <= slot <= 8 and 1 <= ch <= CHANNELS_PER_CARD):
        raise ValueError(f"channel {channel} is not slot × 100 + channel (101–832)")
    return (slot - 1) * CHANNELS_PER_CARD + ch - 1


def _record_channels(record_bytes: int) -> int:
    channels, rest = divmod(record_bytes - 8, 24)
    if rest or channels <= 0:
        raise ValueError(f"a DATA:LOG? record of {record_bytes} bytes matches no channel count")
    return channels


def _level(value: float) -> str:
    """A test level to the µV / µA (``:g`` keeps 6 digits: 3.803945 would be sent as 3.80394)."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


def cells_arg(cells: int | list[int] | tuple[int, ...]) -> str:
    """An SCPI cell list: ``0`` (all), ``(@1001)`` or ``(@1001,1002)``."""
    if isinstance(cells, int):
        return "0" if cells == 0 else f"(@{cells})"
    return "(@" + ",".join(str(int(c)) for c in cells) + ")"


@dataclass(frozen=True)
class Verbose:
    """A cell's ``STAT:CELL:VERB?`` reply: its state, readings, and the test that ended its sequence."""

    state: str  # IDLE | RUNNING
    sequence: int
    step: int
    voltage: float  # V, Vsense
    current: float  # A, Imon
    result: str  # NONE | OK | FAIL | ABORTED
    test: int  # the test that ended the step (0: none)
    kind: str  # its kind (VOLT_GE, …; NONE)
    limit: float  # its level
    measured: float  # the value it measured

    @classmethod
    def parse(cls, reply: str) -> "Verbose":
        """Parse a reply; the test fields may be missing (read as none)."""
        f = [x.strip() for x in reply.strip().split(",")]
        if len(f) < 6:
            raise ValueError(f"STAT:CELL:VERB? answered {reply!r}: fewer than 6 fields")
        f += ["0", "NONE", "nan", "nan"][len(f) - 6 :] if len(f) < 10 else []
        state, result, kind = f[0].upper(), f[5].upper(), f[7].upper()
        seq, step, test = int(f[1]), int(f[2]), int(float(f[6]))
        return cls(state, seq, step, float(f[3]), float(f[4]), result, test, kind, float(f[8]), float(f[9]))


class KeysightBT2200(ManagedConnection, SCPIMixin, Instrument):
    """Keysight BT2200 cycler mainframe.

    >>> bt = KeysightBT2200("TCPIP0::192.168.1.20::5025::SOCKET", visa_library="@py")
    >>> bt.define_cell(1001, 101)
    >>> bt.define_step(1, 1, "CHARGE", 7200, 5.0, 4.2)
    >>> bt.define_test(1, 1, 1, "CURR_LE", 0.25, "AFTER", 0, "NEXT")
    >>> bt.enable(1001, 1); bt.initiate(1001)
    """

    model = "Keysight BT2200"

    def __init__(self, adapter, name: str = "Keysight BT2200", **kwargs) -> None:
        kwargs.setdefault("read_termination", "\n")
        kwargs.setdefault("write_termination", "\n")
        super().__init__(adapter, name, **kwargs)
        self._backlog: dict[int, list[np.ndarray]] = {}  # channel -> fetched records not yet taken

    def channel(self, channel: int, limits: CyclerLimits | None = None) -> "BT2200Channel":
        """One channel of this mainframe as a cycler (the ``Cycler`` role)."""
        return BT2200Channel(self, channel, limits)

    def watch(self, channel: int) -> None:
        """Keep the data-log records of ``channel`` for :meth:`take_records` from now on."""
        with self.lock:
            self._backlog.setdefault(channel, [])

    def take_records(self, channel: int) -> np.ndarray:
        """Drain the data log and return the records fetched so far for ``channel``.

        The log holds every channel; what other channels' consumers have not taken yet is
        kept for them, so several channels can run from one mainframe without losing records.
        A drain stops after :data:`MAX_DRAIN_S`.
        """
        with self.lock:
            self.watch(channel)
            queue, until = self._backlog[channel], time.monotonic() + MAX_DRAIN_S
            while time.monotonic() < until:
                if not len(records := self.fetch_log()):
                    break
                for backlog in self._backlog.values():
                    backlog.append(records)
            self._backlog[channel] = []
        return np.concatenate(queue) if queue else np.empty(0, record_dtype(0))

    output_enabled = Instrument.control(
        "OUTP?",
        "OUTP %d",
        """Control whether the mainframe's outputs are on (bool); off aborts running cells.""",
        validator=strict_discrete_set,
        values={True: 1, False: 0},
        map_values=True,
        cast=int,
    )

    log_records_available = Instrument.measurement(
        "DATA:LOG:REC:AVA?",
        """Measure how many data-log records wait to be fetched (int).""",
        cast=int,
    )

    def define_cell(self, cell_id: int, channel: int) -> None:
        """Define cell ``cell_id`` (1001–8032) on ``channel`` (slot × 100 + channel)."""
        strict_range(cell_id, CELL_IDS)
        strict_range(channel, (101, 832))
        self.write(f"CELL:DEF {cell_id},(@{channel})")

    def define_step(
        self,
        sequence: int,
        step: int,
        mode: str,
        duration: float,
        current: float | None = None,
        voltage: float | None = None,
    ) -> None:
        """Define a sequence step: mode, maximum duration (s), current (A, positive) and voltage (V).

        CHARGE is constant current up to ``voltage`` then constant voltage; DISCHARGE is
        constant current down to ``voltage`` then constant voltage; REST is open circuit and
        takes no current or voltage (``SEQ:STEP:DEF 1,1,REST,300``).
        """
        strict_discrete_set(mode, MODES)
        strict_range(duration, (1, 10_000_000))
        if mode == "REST":
            if current is not None or voltage is not None:
                raise ValueError("a REST step takes no current or voltage")
            self.write(f"SEQ:STEP:DEF {sequence},{step},REST,{duration:g}")
            return
        if current is None or voltage is None:
            raise ValueError(f"a {mode} step needs a current and a voltage")
        strict_range(current, CURRENT_RANGE)
        strict_range(voltage, VOLTAGE_RANGE)
        self.write(f"SEQ:STEP:DEF {sequence},{step},{mode},{duration:g},{current:g},{voltage:g}")

    def define_test(
        self, sequence: int, step: int, test: int, kind: str, value: float, timing: str, time: float, action: str
    ) -> None:
        """Attach a test to a step: e.g. end (``NEXT``) when current ≤ 0.25 A after 0 s."""
        strict_discrete_set(kind, TESTS)
        strict_discrete_set(timing, TIMINGS)
        strict_discrete_set(action, ACTIONS)
        strict_range(value, (0.0, max(CURRENT_RANGE[1], VOLTAGE_RANGE[1])))
        self.write(f"SEQ:TEST:DEF {sequence},{step},{test},{kind},{_level(value)},{timing},{time:g},{action}")

    def enable(self, cells: int | list[int], sequence: int) -> None:
        """Assign a sequence to cells."""
        self.write(f"CELL:ENABLE {cells_arg(cells)},{sequence}")

    def initiate(self, cells: int | list[int]) -> None:
        """Start the enabled sequence on cells."""
        self.write(f"CELL:INIT {cells_arg(cells)}")

    def abort(self, cells: int | list[int] = 0) -> None:
        """Stop cells (all by default); their outputs go open circuit."""
        self.write(f"CELL:ABORT {cells_arg(cells)}")

    def clear(self) -> None:
        """Abort and forget every cell and sequence."""
        self.write("CELL:ABORT 0")
        self.write("CELL:CLEAR 0")
        self.write("SEQ:CLEAR 0")

    def clear_log(self) -> None:
        """Discard the data log."""
        self.write("DATA:LOG:CLE")

    def cell_status(self, cells: int | list[int]) -> list[str]:
        """Get each cell's sequence status as :data:`STATUS_CODES` names it; an unknown code raises."""
        reply = self.ask(f"STAT:CELL:REP? {cells_arg(cells)}")
        codes = [int(code) for code in reply.strip().split(",")]
        unknown = [code for code in codes if code not in STATUS_CODES]
        if unknown:
            raise InstrumentError(
                f"{self.describe()}: STAT:CELL:REP? answered code {unknown[0]}, which is none of {STATUS_CODES}"
            )
        return [STATUS_CODES[code] for code in codes]

    def cell_verbose(self, cell: int) -> Verbose:
        """Get one cell's verbose status (state, readings, the test that ended its step)."""
        reply = self.ask(f"STAT:CELL:VERB? {int(cell)}")
        try:
            return Verbose.parse(reply)
        except ValueError as exc:
            raise InstrumentError(f"{self.describe()}: {exc}") from exc

    def fetch_log(self) -> np.ndarray:
        """Fetch the next records of the data log (the instrument returns at most a few)."""
        payload = self.query_block("DATA:LOG?")
        count = int(np.frombuffer(payload[:4], "<i4")[0])
        if count == 0:
            return np.empty(0, record_dtype(0))
        return np.frombuffer(payload[4:], record_dtype(_record_channels((len(payload) - 4) // count)))

    def safe_state(self) -> None:
        """Abort every cell and switch the outputs off."""
        self.abort(0)
        self.output_enabled = False


RATING = CyclerLimits(min_voltage=VOLTAGE_RANGE[0], max_voltage=VOLTAGE_RANGE[1], max_current=CURRENT_RANGE[1])


@dataclass(frozen=True)
class Guard:
    """A limit test a channel added to a step: which signal, which way, the run's limit and the test's level."""

    signal: str  # voltage | current
    word: str  # above | below
    limit: float  # the run's limit
    level: float  # where the test fires (the limit, or the step's own level plus the margin)

    @property
    def kind(self) -> str:
        return ("VOLT" if self.signal == "voltage" else "CURR") + ("_GE" if self.word == "above" else "_LE")


@dataclass(frozen=True)
class Failure:
    """Why a channel's step failed: the test (one of its guards, or ``guard`` None) and what it measured."""

    step: int
    test: int
    kind: str
    level: float
    measured: float
    guard: Guard | None


class BT2200Channel:
    """One BT2200 channel as a :class:`~cellrig.instruments.roles.Cycler`.

    Each step is loaded as a one-step sequence of its own (sequence number = the channel's
    position + 1) and run by the instrument; samples come from the shared data log.  The
    ``step`` column is 1 for records of a step and 0 for records between steps, assigned
    by the host (see the module docstring).
    """

    def __init__(self, mainframe: KeysightBT2200, channel: int, limits: CyclerLimits | None = None) -> None:
        self.mainframe = mainframe
        self.channel = channel
        self.cell_id = channel // 100 * 1000 + channel % 100
        self.sequence = channel_index(channel) + 1
        self.limits = RATING
        self.configure_limits(limits or RATING)
        self._running = False  # a started step not yet seen ended
        self._taken: list[tuple[np.ndarray, int]] = []  # records drained but not yet fetched, with their step
        self._step: CyclerStep | None = None
        self._step_start: float | None = None  # instrument time (s) of the step's first record
        self._step_last: tuple[float, float] | None = None  # (time, current) of its last record with current
        self._limits: dict[str, float | None] = {}  # the run's electrical limits, tested by the instrument
        self._guards: dict[int, Guard] = {}  # the running step's limit tests by number
        mainframe.define_cell(self.cell_id, channel)
        mainframe.raise_errors()
        mainframe.watch(channel)

    def __repr__(self) -> str:
        return f"<BT2200 channel {self.channel} on {self.mainframe.resource}>"

    def identify(self) -> Identity:
        return Identity.from_idn(self.mainframe.id)

    def configure_limits(self, limits: CyclerLimits) -> None:
        """Set the limits every step is checked against (within the channel's rating)."""
        if not (
            RATING.min_voltage <= limits.min_voltage < limits.max_voltage <= RATING.max_voltage
            and 0 < limits.max_current <= RATING.max_current
        ):
            raise ValueError(f"limits {limits} exceed the BT2200 channel rating {RATING}")
        self.limits = limits

    def guard(
        self, voltage_min: float | None = None, voltage_max: float | None = None, current_max: float | None = None
    ) -> None:
        """Have the instrument itself fail every step started from now on at these limits (None: not tested).

        No I/O: the tests go with each step (see the module docstring for where each sits).
        """
        for name, value in (("voltage_min", voltage_min), ("voltage_max", voltage_max), ("current_max", current_max)):
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{self!r}: {name} {value} is no number")
        if voltage_min is not None and voltage_max is not None and voltage_min >= voltage_max:
            raise ValueError(f"{self!r}: voltage_min {voltage_min} V is not below voltage_max {voltage_max} V")
        self._limits = {"voltage_min": voltage_min, "voltage_max": voltage_max, "current_max": current_max}

    def start_step(self, step: CyclerStep) -> None:
        """Load ``step`` into the instrument and start it; checked against the limits first."""
        mode, current, voltage, tests = self._translate(step)
        guards = self._guard_tests(mode, current, voltage)
        seq, bt = self.sequence, self.mainframe
        self._take()  # what the log holds from before the start belongs to no new step
        bt.write(f"SEQ:CLEAR {seq}")
        if mode == "REST":
            bt.define_step(seq, 1, mode, step.max_time)
        else:
            bt.define_step(seq, 1, mode, step.max_time, current, voltage)
        for number, (kind, value) in enumerate(tests, start=1):
            bt.define_test(seq, 1, number, kind, value, "AFTER", 0, "NEXT")
        self._guards = {len(tests) + n: g for n, g in enumerate(guards, start=1)}
        for number, g in self._guards.items():
            bt.define_test(seq, 1, number, g.kind, g.level, "AFTER", 0, "FAIL")
        bt.enable(self.cell_id, seq)
        bt.initiate(self.cell_id)
        self._running, self._step, self._step_start, self._step_last = True, step, None, None
        bt.raise_errors()

    def _guard_tests(self, mode: str, current: float, voltage: float) -> list[Guard]:
        """The limit tests of a step of ``mode`` at ``current`` (A, magnitude) and ``voltage`` (V, its end or hold)."""
        lim, out = self._limits, []
        own = {  # the step's own levels that may sit at a limit
            "voltage_max": voltage if mode in ("CHARGE", "PRECHARGE") else None,
            "voltage_min": voltage if mode == "DISCHARGE" else None,
            "current_max": current if mode != "REST" else None,
        }
        for name, signal, word, top in (
            ("voltage_max", "voltage", "above", VOLTAGE_RANGE[1]),
            ("voltage_min", "voltage", "below", VOLTAGE_RANGE[1]),
            ("current_max", "current", "above", CURRENT_RANGE[1]),
        ):
            limit = lim.get(name)
            if limit is None or (signal == "current" and mode == "REST"):
                continue
            level, margin, step_level = limit, GUARD_MARGIN[signal], own[name]
            if step_level is not None and abs(step_level - limit) <= margin:
                level = step_level + margin if word == "above" else step_level - margin
            # to the µV / µA it is sent with, rounded outwards: never a test inside the limit
            micro = level * 1e6
            level = (math.ceil(micro - 1e-3) if word == "above" else math.floor(micro + 1e-3)) / 1e6
            if 0 < level <= top:  # else the channel cannot test it: the supervisor's alone
                out.append(Guard(signal, word, limit, level))
        return out

    def failure(self) -> Failure | None:
        """Why the last step failed, read back from the instrument (None if it did not fail)."""
        v = self.mainframe.cell_verbose(self.cell_id)
        if v.result != "FAIL":
            return None
        guard = self._guards.get(v.test)
        if guard is not None and guard.kind != v.kind:
            guard = None  # not the test this channel defined under that number
        return Failure(v.step, v.test, v.kind, v.limit, v.measured, guard)

    def _translate(self, step: CyclerStep) -> tuple[str, float, float, list[tuple[str, float]]]:
        lim = self.limits
        if abs(step.current) > lim.max_current:
            raise ValueError(f"{self!r}: |{step.current}| A exceeds the {lim.max_current} A limit")
        for v in (step.voltage, step.until_voltage_above, step.until_voltage_below):
            if v is not None and not lim.min_voltage <= v <= lim.max_voltage:
                raise ValueError(f"{self!r}: {v} V is outside {lim.min_voltage}–{lim.max_voltage} V")
        if step.max_time <= 0:
            raise ValueError(f"{self!r}: max_time must be positive")
        if step.mode == "rest":
            return "REST", 0.0, 0.0, []
        charging = step.current > 0 or (step.mode == "cv" and step.current == 0)
        mode = "CHARGE" if charging else "DISCHARGE"
        current = abs(step.current) or lim.max_current
        tests: list[tuple[str, float]] = []
        if step.mode == "cc":
            target = step.until_voltage_above if charging else step.until_voltage_below
            voltage = target if target is not None else (lim.max_voltage if charging else lim.min_voltage)
            if target is not None:
                tests.append(("VOLT_GE" if charging else "VOLT_LE", target))
        else:  # cccv, cv: hold the voltage once reached
            if step.voltage is None:
                raise ValueError(f"{self!r}: a {step.mode} step needs a voltage")
            voltage = step.voltage
        if step.until_current_below is not None:
            tests.append(("CURR_LE", step.until_current_below))  # a magnitude, as the step's current
        return mode, current, voltage, tests

    def _take(self) -> None:
        """Drain this channel's records from the log, marking them as the running step's or none's."""
        records = self.mainframe.take_records(self.channel)
        if not len(records):
            return
        self._taken.append((records, 1 if self._running else 0))
        step = self._step
        if self._running and step is not None and step.until_current_below is not None:
            t, current = records["timestamp_ms"] / 1000.0, records["imon"][:, channel_index(self.channel)]
            self._step_start = float(t[0]) if self._step_start is None else self._step_start
            flowing = np.flatnonzero(np.abs(current) > step.until_current_below / 2)  # not an idle record
            if len(flowing):
                self._step_last = (float(t[flowing[-1]]), float(current[flowing[-1]]))

    def fetch_samples(self) -> Samples:
        """Buffered samples of this channel: time (s, instrument clock), voltage, current, step (1 or 0)."""
        self._take()
        taken, self._taken = self._taken, []
        if not taken:
            return {k: np.empty(0) for k in ("time", "voltage", "current", "step")}
        i = channel_index(self.channel)
        records = np.concatenate([r for r, _ in taken])
        return {
            "time": records["timestamp_ms"] / 1000.0,
            "voltage": records["vsense"][:, i].astype(np.float64),
            "current": records["imon"][:, i].astype(np.float64),
            "step": np.concatenate([np.full(len(r), label, np.int32) for r, label in taken]),
        }

    def status(self) -> str:
        """Get the channel's state (idle, running, done, failed, aborted); an implausible end raises."""
        state, ended = self._read_status()
        early = self._early_end() if ended and state == "done" else None
        if early:
            raise InstrumentError(early)
        return state

    def _read_status(self) -> tuple[str, bool]:
        """The channel's state, and whether this read is the first to find its step ended."""
        state = ROLE_STATUS[self.mainframe.cell_status(self.cell_id)[0]]
        ended = state != "running" and self._running
        if ended:
            self._take()  # the step's last records, up to this read
            self._running = False
        return state, ended

    def _early_end(self) -> str | None:
        """Why a discharge that ended on its current test ended early (the current still well above it), or None."""
        step, last = self._step, self._step_last
        if step is None or last is None or step.until_current_below is None or step.current >= 0:
            return None
        (t, current), end = last, step.until_current_below
        ran = t - (self._step_start if self._step_start is not None else t)
        if abs(current) > EARLY_END_FACTOR * end and ran < step.max_time - 1.0:
            return (
                f"{self!r}: the discharge ended after {ran:g} s on its CURR_LE {end:g} A test with "
                f"{current:g} A flowing; the instrument may compare signed current"
            )
        return None

    def stop(self) -> None:
        self.mainframe.abort(self.cell_id)

    def safe_state(self) -> None:
        """Abort this channel's cell (open circuit), then read back that it stopped; other channels keep running.

        The read-back is what confirms it: a command alone can vanish into a dead connection.
        """
        self.stop()
        if self._read_status()[0] == "running":
            raise InstrumentError(f"{self!r}: still running after CELL:ABORT")
