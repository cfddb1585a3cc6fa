"""A simulated Keysight BT2200 (BT2202A mainframe with BT2203A cards) over its SCPI set.

The command set follows docs/instruments.md §3.1 (``CELL:DEFine``, ``SEQuence:STEP:DEFine``,
``SEQuence:TEST:DEFine``, ``CELL:ENABle``, ``CELL:INITiate``, ``STATus:CELL:REPort?``)
and the binary data log (``DATA:LOG?``: an IEEE 488.2 definite-length block holding an
int32 record count, then per record a uint64 millisecond time stamp and, per channel,
float32 IMon, VSense, VLocal, Dcir1, Dcir2, uint16 CellId and int16 SequenceState).

The virtual mainframe runs each cell's sequence itself on the lab clock with a fixed
integration step, so what it records depends only on the sequence and the cell, never on
when the host happens to ask.  Records are written every ``log_period`` seconds and at the
end of every step; IMon and VSense are means over the interval since the previous record
(so capacity sums exactly).  Departures from the real instrument, stated here once: a
record carries the 32 channels of each installed card (the real one always 256), and the
log period is a property of the virtual instrument (the real one logs every second).

Step tests are evaluated on the cell's instantaneous voltage and current (the instrument's own
measurement), never on the averaged log records.  A tick in which a step ends is bisected for the
moment it ended, so a step ends, and a ``FAIL`` test opens the channel, within 0.1 % of ``dt`` of
the crossing, whatever the log period; of levels crossed within that last sliver, the one crossed
first (interpolated) acts.  Which test failed, its level and the value measured are answered by
``STATus:CELL:VERBose?`` in the layout a public pre-charger documents.

Where public sources leave the real instrument's behaviour open, the simulator can take
either reading, so the driver is tested against both: ``log_states`` (CellId and
SequenceState filled in, or 0 as a public parser says real units return; default 0),
``rest_levels`` (REST as ``REST,<s>`` as publicly shown, or only as ``REST,<s>,0,0``) and
``signed_current_tests`` (``CURR_GE``/``CURR_LE`` compare |I|, or signed I, negative on discharge).
"""

import dataclasses
import math
import operator
import re
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..clock import Clock
from ..instruments.keysight_bt2200 import CHANNELS_PER_CARD, STATUS_CODES, channel_index, record_dtype
from ._scpi import Reply, SCPIError, SimInstrument, command
from .cell import REST_STEP_S, Cell

MODES = ("CHARGE", "DISCHARGE", "REST", "PRECHARGE")
TESTS = ("VOLT_GE", "VOLT_LE", "CURR_GE", "CURR_LE")
TIMINGS = ("AT", "BEFORE", "AFTER")
ACTIONS = ("NEXT", "FAIL")
MAX_CURRENT = 6.25  # A per channel
MAX_VOLTAGE = 5.0  # V
END_RESOLUTION = 0.001  # of a tick: how closely the moment a step ends is found
CV_OVERSHOOT = 0.002  # V past a step's voltage level at the end of a tick that has it taken again in sub-steps
MAX_SUBSTEPS = 256  # per tick, at most
#: Records the data log holds; the oldest are overwritten beyond (assumed: no public source gives the
#: BT2200's log size; 100,000 records of a 32-channel card are 78 MB).
LOG_CAPACITY = 100_000

#: STATus:CELL:REPort? codes, as the driver's STATUS_CODES names them.
_CODE = {meaning: code for code, meaning in STATUS_CODES.items()}
IDLE, RUNNING, DONE, FAILED, ABORTED = (_CODE[m] for m in ("none", "running", "ok", "fail", "aborted"))


@dataclass(frozen=True)
class Step:
    mode: str
    duration: float
    current: float
    voltage: float


@dataclass(frozen=True)
class Test:
    kind: str
    value: float
    timing: str
    time: float
    action: str
    number: int = 0  # the test's number in its step (SEQ:TEST:DEF's third field)


@dataclass
class _Channel:
    """A channel with its cell and the run state of its sequence."""

    cell: Cell
    cell_id: int = 0
    sequence: int = 0
    status: int = IDLE
    step: int = 0
    step_time: float = 0.0
    current: float = 0.0
    q: float = 0.0  # ∫I dt since the last record
    e: float = 0.0  # ∫V dt since the last record
    dt: float = 0.0  # time since the last record
    idle_v: float | None = None  # open-circuit voltage while idle, updated when the cell is stepped
    ended: int | None = None  # SequenceState of a step that ended since the last record
    resting: float = 0.0  # idle time not yet applied to the cell
    failed: tuple[Test, float] | None = None  # the FAIL test that ended the sequence, and the value it measured
    last: tuple[float, float] | None = None  # voltage and current at the end of the step's previous tick
    steps: list[tuple[int, Step, list[Test]]] = field(default_factory=list)


def cell_list(text: str) -> list[int]:
    """Parse an SCPI channel list ``(@1001:1004,1007)`` (or a bare number) into numbers."""
    m = re.fullmatch(r"\s*\(@([\d:,\s]+)\)\s*|\s*(\d+)\s*", text)
    if not m:
        raise SCPIError(-224, "Illegal parameter value")
    if m.group(2):
        return [int(m.group(2))]
    out: list[int] = []
    for part in m.group(1).split(","):
        lo, _, hi = part.strip().partition(":")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


_ATTRIBUTES: dict[type, tuple[tuple[str, ...], operator.attrgetter]] = {}


def _attributes(obj: object) -> tuple[tuple[str, ...], operator.attrgetter]:
    """The attribute names of ``obj``'s dataclass (as a fresh copy of it has them) and a getter of them all."""
    kind = type(obj)
    if kind not in _ATTRIBUTES:
        names = tuple(vars(dataclasses.replace(obj)))
        _ATTRIBUTES[kind] = names, operator.attrgetter(*names)
    return _ATTRIBUTES[kind]


def _snapshot(obj: object) -> tuple:
    """Every attribute of ``obj``, read by name: CPython slows attribute access for the rest of an object's life
    once its ``__dict__`` is read.  Shallow, so a snapshot only while the values are immutable (a cell's are)."""
    return _attributes(obj)[1](obj)


def _put_back(obj: object, snapshot: tuple) -> None:
    """Set every attribute of ``obj`` as :func:`_snapshot` took it."""
    for name, value in zip(_attributes(obj)[0], snapshot, strict=True):
        setattr(obj, name, value)


class BT2200(SimInstrument):
    """The virtual BT2200: cells on channels, sequences, buffered binary data log."""

    idn = "Keysight Technologies,BT2202A,SIM0000001,1.0.0"

    def __init__(
        self,
        clock: Clock,
        cells: dict[int, Cell],
        *,
        cards: int = 1,
        log_period: float = 1.0,
        dt: float = 1.0,
        records_per_query: int = 10,
        log_states: bool = False,
        rest_levels: bool = False,
        signed_current_tests: bool = False,
    ) -> None:
        super().__init__()
        self.log_states = log_states
        self.rest_levels = rest_levels
        self.signed_current_tests = signed_current_tests
        self.clock = clock
        self.cards = cards
        self.n = cards * CHANNELS_PER_CARD
        self.log_period = log_period
        self.dt = dt
        self.records_per_query = records_per_query
        self.record = record_dtype(self.n)
        for ch in cells:
            self._slot(ch)
        self.channels = {ch: _Channel(cell) for ch, cell in cells.items()}
        self.t = 0.0
        self.since_record = 0.0
        self.last_record_t: float | None = None
        self.log: deque[bytes] = deque(maxlen=LOG_CAPACITY)
        self.reset()

    def reset(self) -> None:
        self.sequences: dict[int, dict[int, Step]] = {}
        self.tests: dict[tuple[int, int], dict[int, Test]] = {}
        self.cells: dict[int, int] = {}  # cell id -> channel
        self.output = False
        for ch in self.channels.values():
            ch.cell_id, ch.sequence, ch.status, ch.step, ch.current = 0, 0, IDLE, 0, 0.0

    # -- time ------------------------------------------------------------------------------

    def _dispatch(self, cmd: str) -> Reply:
        self.advance()
        return super()._dispatch(cmd)

    def quiet(self) -> bool:
        """True while no channel runs a sequence (time can then pass in large steps)."""
        return all(ch.status != RUNNING for ch in self.channels.values())

    def advance(self) -> None:
        """Run every channel forward to the lab clock's present, in fixed steps.

        While every channel is idle, the cells rest in one step and the periodic records of
        that span are written as one block.
        """
        now = self.clock.now()
        if self.quiet() and now - self.t >= self.dt:
            self._rest((now - self.t) // self.dt * self.dt)
        while self.t + self.dt <= now:
            ended = False
            for ch in self.channels.values():
                if ch.status == RUNNING:
                    ended |= self._integrate(ch, self.dt)
                else:
                    self._idle(ch, self.dt)
            self.t += self.dt
            self.since_record += self.dt
            if ended or self.since_record >= self.log_period - 1e-9:
                self._log()

    @staticmethod
    def _idle(ch: _Channel, dt: float) -> None:
        """An idle channel: its cell rests (stepped every :data:`REST_STEP_S`)."""
        ch.current = 0.0
        ch.resting += dt
        if ch.resting >= REST_STEP_S or ch.idle_v is None:
            ch.cell.step(0.0, ch.resting)
            ch.resting = 0.0
            ch.idle_v = ch.cell.voltage(0.0)
        ch.e += ch.idle_v * dt
        ch.dt += dt

    def _rest(self, span: float) -> None:
        """Every channel idle for ``span`` seconds: one cell step, the span's records in one block."""
        first = self.log_period - self.since_record
        count = int((span - first) // self.log_period) + 1 if span >= first - 1e-9 else 0
        for ch in self.channels.values():
            self._idle(ch, span)
        if count:
            times = self.t + first + self.log_period * np.arange(count)
            block = np.zeros(count, self.record)
            block["timestamp_ms"] = np.round(times * 1000)
            for number, ch in self.channels.items():
                i = channel_index(number)
                block["vsense"][:, i] = block["vlocal"][:, i] = ch.cell.voltage(0.0)
                block["cell_id"][:, i] = ch.cell_id if self.log_states else 0
                ch.q = ch.e = ch.dt = 0.0
            self.log.extend(rec.tobytes() for rec in block)
            self.last_record_t = float(times[-1])
        self.t += span
        self.since_record = (self.since_record + span) % self.log_period

    def _integrate(self, ch: _Channel, dt: float) -> bool:
        """Advance one channel by ``dt``; return True if its step ended.

        A tick in which the step ends is taken again from its start, bisecting for the moment it ends
        (to :data:`END_RESOLUTION` of the tick), so a step ends at its level, as on the instrument, which
        checks far more often, not up to a tick past it.  For the rest of the tick the cell rests (not in
        the step's record, which holds the means over the step's own time).
        """
        start = _snapshot(ch), _snapshot(ch.cell)
        if not self._advance_step(ch, dt, start[1]):
            return False
        lo, hi, at = 0.0, dt, dt  # the step runs on at lo, has ended at hi; the channel stands at ``at``
        while hi - lo > END_RESOLUTION * dt:
            at = (lo + hi) / 2
            if self._advance_step(self._restore(ch, start), at, start[1]):
                hi = at
            else:
                lo = at
        if at != hi:
            self._advance_step(self._restore(ch, start), hi, start[1])
        if hi < dt:
            ch.cell.step(0.0, dt - hi)
        return True

    @staticmethod
    def _restore(ch: _Channel, start: tuple[tuple, tuple]) -> _Channel:
        """Put a channel and its cell back as they were at ``start`` (their snapshots); return the channel."""
        _put_back(ch, start[0])
        _put_back(ch.cell, start[1])
        return ch

    def _advance_step(self, ch: _Channel, dt: float, cell_at_start: tuple) -> bool:
        """Advance one channel's step by ``dt`` from its cell's state ``cell_at_start`` (a snapshot of it as it
        stands); return True if it ended."""
        number, step, tests = ch.steps[ch.step]
        mean, current = self._drive(ch.cell, step, dt, cell_at_start)
        volts = ch.cell.voltage(current)
        ch.current = current
        ch.q += mean * dt
        ch.e += volts * dt
        ch.dt += dt
        ch.step_time += dt
        # the test whose level was crossed first within the tick acts (the instrument checks far
        # more often than every dt): a step ending at its voltage is not failed by a lower FAIL level
        firing = [(1.0, "NEXT", None)] if ch.step_time >= step.duration - 1e-9 else []
        for test in tests:
            measured = self._test_fires(test, ch.step_time, volts, current)
            if measured is not None:
                firing.append((self._crossed_at(test, ch.last, measured), test.action, (test, measured)))
        ch.last = (volts, current)
        if not firing:
            return False
        _, action, failed = min(firing, key=lambda f: (f[0], f[1] != "FAIL"))
        if action == "FAIL":
            ch.failed = failed
            ch.status = FAILED
        elif ch.step + 1 < len(ch.steps):
            ch.step += 1
            ch.step_time, ch.last = 0.0, None
        else:
            ch.status = DONE
        ch.ended = -number if action == "FAIL" else number
        return True

    @staticmethod
    def _drive(cell: Cell, step: Step, dt: float, start: tuple) -> tuple[float, float]:
        """Hold the step's current, or its voltage once there, for ``dt``; get the mean and the final current.

        The instrument regulates continuously: a tick that ends past the voltage level by more than
        :data:`CV_OVERSHOOT` (a cell small for the current, where its voltage runs away within the tick) is
        taken again from ``start`` (the cell's snapshot as it stands) in 4× as many sub-steps, each holding the
        current that meets the level."""
        if step.mode == "REST":
            cell.step(0.0, dt)
            return 0.0, 0.0
        sign = 1.0 if step.mode in ("CHARGE", "PRECHARGE") else -1.0
        n = 1
        while True:
            total = 0.0
            for _ in range(n):
                current = sign * max(min(step.current, sign * cell.current_for_voltage(step.voltage)), 0.0)
                cell.step(current, dt / n)
                total += current
            if sign * (cell.voltage(current) - step.voltage) <= CV_OVERSHOOT or n >= MAX_SUBSTEPS:
                return total / n, current
            _put_back(cell, start)
            n *= 4

    def _crossed_at(self, test: Test, last: tuple[float, float] | None, measured: float) -> float:
        """Where within the tick ``test``'s level was crossed (0 at its start, 1 at its end), interpolated."""
        if last is None:  # the step's first tick: its tests fire at its start
            return 0.0
        before = self._measured(test, *last)
        if before == measured:
            return 0.0
        return min(max((before - test.value) / (before - measured), 0.0), 1.0)

    def _test_fires(self, test: Test, t: float, volts: float, current: float) -> float | None:
        """The value ``test`` measured if it fires at step time ``t``, else None."""
        if (test.timing == "BEFORE" and t > test.time) or (test.timing == "AFTER" and t < test.time):
            return None
        if test.timing == "AT" and not math.isclose(t, test.time):
            return None
        x = self._measured(test, volts, current)
        fires = x >= test.value if test.kind.endswith("GE") else x <= test.value
        return x if fires else None

    def _measured(self, test: Test, volts: float, current: float) -> float:
        """What ``test`` compares: the voltage, or the current (signed or its magnitude, as configured)."""
        return volts if test.kind.startswith("VOLT") else current if self.signed_current_tests else abs(current)

    def _log(self) -> None:
        rec = np.zeros(1, self.record)
        rec["timestamp_ms"] = round(self.t * 1000)
        for number, ch in self.channels.items():
            i = channel_index(number)
            idle = ch.cell.voltage(0.0)
            rec["imon"][0, i] = ch.q / ch.dt if ch.dt else ch.current
            rec["vsense"][0, i] = ch.e / ch.dt if ch.dt else idle
            state = self._seq_state(ch)
            if self.log_states:
                rec["cell_id"][0, i], rec["seq_state"][0, i] = ch.cell_id, state
            ch.q = ch.e = ch.dt = 0.0
        rec["vlocal"] = rec["vsense"]
        self.log.append(rec.tobytes())
        self.since_record = 0.0
        self.last_record_t = self.t

    def _start_record(self) -> None:
        """Give each started channel a record at its start, so its first interval has a beginning.

        If a record was already logged at this instant, no second one is: the started channels'
        states are written into it if it is still in the log.
        """
        if self.last_record_t != self.t:
            self._log()
            return
        if not (self.log_states and self.log):
            return
        rec = np.frombuffer(self.log[-1], self.record).copy()
        for number, ch in self.channels.items():
            if ch.status == RUNNING and ch.step == 0 and ch.step_time == 0.0:
                rec["seq_state"][0, channel_index(number)] = ch.steps[0][0]
        self.log[-1] = rec.tobytes()

    def _seq_state(self, ch: _Channel) -> int:
        """The step that ran during the record's interval (negative if it failed)."""
        if ch.ended is not None:
            state, ch.ended = ch.ended, None
            return state
        return ch.steps[ch.step][0] if ch.status == RUNNING else 0

    # -- addressing ------------------------------------------------------------------------

    def _slot(self, channel: int) -> tuple[int, int]:
        slot, ch = divmod(channel, 100)
        if not (1 <= slot <= self.cards and 1 <= ch <= CHANNELS_PER_CARD):
            raise SCPIError(-222, "Data out of range")
        return slot, ch

    def _channel_of(self, cell_id: int) -> _Channel:
        if cell_id not in self.cells:
            raise SCPIError(-222, f"Cell {cell_id} not defined")
        return self.channels[self.cells[cell_id]]

    def _cells(self, text: str) -> list[int]:
        ids = cell_list(text)
        return list(self.cells) if ids == [0] else ids

    # -- commands --------------------------------------------------------------------------

    @command("CELL:DEFine")
    def _define(self, args: str) -> Reply:
        cell_text, _, chan_text = args.partition(",")
        cell_id, (channel,) = int(cell_text), cell_list(chan_text)
        if channel not in self.channels:
            self._slot(channel)
            raise SCPIError(-241, f"No cell connected to channel {channel}")
        self.cells[cell_id] = channel
        self.channels[channel].cell_id = cell_id
        return None

    @command("CELL:ENABle")
    def _enable(self, args: str) -> Reply:
        cells_text, _, seq_text = args.rpartition(",")
        seq = int(seq_text)
        if seq not in self.sequences:
            raise SCPIError(-222, f"Sequence {seq} not defined")
        for cid in self._cells(cells_text):
            self._channel_of(cid).sequence = seq
        return None

    @command("CELL:INITiate")
    def _initiate(self, args: str) -> Reply:
        for cid in self._cells(args):
            ch = self._channel_of(cid)
            steps = self.sequences.get(ch.sequence)
            if not steps:
                raise SCPIError(-221, f"Settings conflict: cell {cid} has no sequence enabled")
            ch.steps = [(n, steps[n], list(self.tests.get((ch.sequence, n), {}).values())) for n in sorted(steps)]
            ch.cell.step(0.0, ch.resting)  # the rest not yet applied, before the cell carries current
            ch.resting, ch.idle_v, ch.failed, ch.last = 0.0, None, None, None
            ch.step, ch.step_time, ch.status = 0, 0.0, RUNNING
        self.output = True
        self._start_record()
        return None

    @command("CELL:ABORt")
    def _abort(self, args: str) -> Reply:
        for cid in self._cells(args):
            ch = self._channel_of(cid)
            if ch.status == RUNNING:
                ch.status = ABORTED
        return None

    @command("CELL:CLEar")
    def _clear_cells(self, args: str) -> Reply:
        for cid in self._cells(args):
            ch = self._channel_of(cid)
            ch.cell_id, ch.sequence, ch.status = 0, 0, IDLE
            del self.cells[cid]
        return None

    @command("SEQuence:CLEar")
    def _clear_sequence(self, args: str) -> Reply:
        seq = int(args)
        for s in list(self.sequences) if seq == 0 else [seq]:
            self.sequences.pop(s, None)
            for key in [k for k in self.tests if k[0] == s]:
                del self.tests[key]
        return None

    @command("SEQuence:STEP:DEFine")
    def _define_step(self, args: str) -> Reply:
        fields = [a.strip() for a in args.split(",")]
        if len(fields) == 4 and fields[2].upper() == "REST" and not self.rest_levels:
            fields += ["0", "0"]
        if len(fields) != 6:
            raise SCPIError(-109, "Missing parameter" if len(fields) < 6 else "Parameter not allowed")
        seq, step, mode, duration, current, voltage = fields
        mode = mode.upper()
        if mode not in MODES:
            raise SCPIError(-224, "Illegal parameter value")
        cur, volts, dur = float(current), float(voltage), float(duration)
        if not (0 <= cur <= MAX_CURRENT and 0 <= volts <= MAX_VOLTAGE and dur > 0):
            raise SCPIError(-222, "Data out of range")
        self.sequences.setdefault(int(seq), {})[int(step)] = Step(mode, dur, cur, volts)
        return None

    @command("SEQuence:STEP:DEFine?")
    def _query_step(self, args: str) -> Reply:
        seq, step = (int(a) for a in args.split(","))
        s = self.sequences[seq][step]
        if s.mode == "REST" and not self.rest_levels:
            return f"REST,{s.duration:g}"
        return f"{s.mode},{s.duration:g},{s.current:g},{s.voltage:g}"

    @command("SEQuence:TEST:DEFine")
    def _define_test(self, args: str) -> Reply:
        seq, step, number, kind, value, timing, time, action = (a.strip().upper() for a in args.split(","))
        if kind not in TESTS or timing not in TIMINGS or action not in ACTIONS:
            raise SCPIError(-224, "Illegal parameter value")
        if (int(seq), int(step)) not in {(s, n) for s, steps in self.sequences.items() for n in steps}:
            raise SCPIError(-222, f"Step {seq},{step} not defined")
        self.tests.setdefault((int(seq), int(step)), {})[int(number)] = Test(
            kind, float(value), timing, float(time), action, int(number)
        )
        return None

    @command("OUTPut[:STATe]")
    def _output(self, args: str) -> Reply:
        self.output = args.upper() in ("ON", "1")
        if not self.output:
            for ch in self.channels.values():
                if ch.status == RUNNING:
                    ch.status = ABORTED
        return None

    @command("OUTPut[:STATe]?")
    def _output_q(self, args: str) -> Reply:
        return "1" if self.output else "0"

    @command("STATus:CELL:REPort?")
    def _report(self, args: str) -> Reply:
        return ",".join(str(self._channel_of(cid).status) for cid in self._cells(args))

    @command("STATus:CELL:VERBose?")
    def _verbose(self, args: str) -> Reply:
        """``IDLE|RUNNING,<seq>,<step>,<Vsense>,<Imon>,NONE|OK|FAIL|ABORTED,<testId>,<testType>,<limit>,<measured>``."""
        (cid,) = cell_list(args)
        ch = self._channel_of(cid)
        state = "RUNNING" if ch.status == RUNNING else "IDLE"
        result = {DONE: "OK", FAILED: "FAIL", ABORTED: "ABORTED"}.get(ch.status, "NONE")
        step = ch.steps[ch.step][0] if ch.steps else 0
        test, measured = ch.failed if ch.status == FAILED and ch.failed else (None, 0.0)
        failed = f"{test.number},{test.kind},{test.value:g},{measured:.6f}" if test else "0,NONE,0,0"
        current = ch.current if ch.status == RUNNING else 0.0  # an ended sequence leaves the channel open
        return f"{state},{ch.sequence},{step},{ch.cell.voltage(current):.6f},{current:.6f},{result},{failed}"

    @command("MEASure:CELL:VOLTage?")
    def _meas_volt(self, args: str) -> Reply:
        return ",".join(f"{(ch := self._channel_of(cid)).cell.voltage(ch.current):.6f}" for cid in self._cells(args))

    @command("MEASure:CELL:CURRent?")
    def _meas_curr(self, args: str) -> Reply:
        return ",".join(f"{self._channel_of(cid).current:.6f}" for cid in self._cells(args))

    @command("DATA:LOG:RECords:AVAilable?")
    def _available(self, args: str) -> Reply:
        return str(len(self.log))

    @command("DATA:LOG:CLEar")
    def _clear_log(self, args: str) -> Reply:
        self.log.clear()
        self.last_record_t = None  # a step started at this instant gets a record of its own (_start_record)
        return None

    @command("DATA:LOG?")
    def _data_log(self, args: str) -> Reply:
        n = min(len(self.log), self.records_per_query)
        payload = np.int32(n).tobytes() + b"".join(self.log.popleft() for _ in range(n))
        size = str(len(payload))
        return f"#{len(size)}{size}".encode() + payload
