"""Keysight BT2200 (BT2202A mainframe, BT2203A cards): a multi-channel cycler.

Cells are defined on channels (``CELL:DEFine 1001,(@101)``: slot × 100 + channel),
sequences of CHARGE / DISCHARGE / REST / PRECHARGE steps are stored in the instrument with
end and fail tests, and the instrument runs them itself, buffering one record per interval
in its data log, which the host drains with ``DATA:LOG?``.  Command strings follow the
reference's BT2200 table; the argument order of ``SEQ:STEP:DEF`` / ``SEQ:TEST:DEF`` and the
status codes other than 1 (running) are unverified against Keysight's programming guide.
"""

import numpy as np
from pymeasure.instruments import Instrument
from pymeasure.instruments.generic_types import SCPIMixin
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from ._connection import InstrumentError, ManagedConnection
from .roles import CyclerLimits, CyclerStep, Identity, Samples

MODES = ("CHARGE", "DISCHARGE", "REST", "PRECHARGE")
TESTS = ("VOLT_GE", "VOLT_LE", "CURR_GE", "CURR_LE")
TIMINGS = ("AT", "BEFORE", "AFTER")
ACTIONS = ("NEXT", "FAIL")
#: STATus:CELL:REPort? codes.
STATUS = {0: "idle", 1: "running", 2: "done", 3: "failed", 4: "aborted"}
CURRENT_RANGE = (0.0, 6.25)  # A per channel, BT2203A class
VOLTAGE_RANGE = (0.0, 5.0)  # V
CELL_IDS = (1001, 8032)
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


def cells_arg(cells: int | list[int] | tuple[int, ...]) -> str:
    """An SCPI cell list: ``0`` (all), ``(@1001)`` or ``(@1001,1002)``."""
    if isinstance(cells, int):
        return "0" if cells == 0 else f"(@{cells})"
    return "(@" + ",".join(str(int(c)) for c in cells) + ")"


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
        """
        with self.lock:
            self.watch(channel)
            queue = self._backlog[channel]
            while len(records := self.fetch_log()):
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

    def define_step(self, sequence: int, step: int, mode: str, duration: float, current: float, voltage: float) -> None:
        """Define a sequence step: mode, maximum duration (s), current (A, positive) and voltage (V).

        CHARGE is constant current up to ``voltage`` then constant voltage; DISCHARGE is
        constant current down to ``voltage`` then constant voltage; REST is open circuit.
        """
        strict_discrete_set(mode, MODES)
        strict_range(current, CURRENT_RANGE)
        strict_range(voltage, VOLTAGE_RANGE)
        strict_range(duration, (1, 10_000_000))
        self.write(f"SEQ:STEP:DEF {sequence},{step},{mode},{duration:g},{current:g},{voltage:g}")

    def define_test(
        self, sequence: int, step: int, test: int, kind: str, value: float, timing: str, time: float, action: str
    ) -> None:
        """Attach a test to a step: e.g. end (``NEXT``) when current ≤ 0.25 A after 0 s."""
        strict_discrete_set(kind, TESTS)
        strict_discrete_set(timing, TIMINGS)
        strict_discrete_set(action, ACTIONS)
        strict_range(value, (0.0, max(CURRENT_RANGE[1], VOLTAGE_RANGE[1])))
        self.write(f"SEQ:TEST:DEF {sequence},{step},{test},{kind},{value:g},{timing},{time:g},{action}")

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
        """Get each cell's sequence status: idle, running, done, failed or aborted."""
        reply = self.ask(f"STAT:CELL:REP? {cells_arg(cells)}")
        return [STATUS.get(int(code), f"code {code}") for code in reply.strip().split(",")]

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


class BT2200Channel:
    """One BT2200 channel as a :class:`~cellrig.instruments.roles.Cycler`.

    Each step is loaded as a one-step sequence of its own (sequence number = the channel's
    position + 1) and run by the instrument; samples come from the shared data log.
    """

    def __init__(self, mainframe: KeysightBT2200, channel: int, limits: CyclerLimits | None = None) -> None:
        self.mainframe = mainframe
        self.channel = channel
        self.cell_id = channel // 100 * 1000 + channel % 100
        self.sequence = channel_index(channel) + 1
        self.limits = RATING
        self.configure_limits(limits or RATING)
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

    def start_step(self, step: CyclerStep) -> None:
        """Load ``step`` into the instrument and start it; checked against the limits first."""
        mode, current, voltage, tests = self._translate(step)
        seq, bt = self.sequence, self.mainframe
        bt.write(f"SEQ:CLEAR {seq}")
        bt.define_step(seq, 1, mode, step.max_time, current, voltage)
        for number, (kind, value) in enumerate(tests, start=1):
            bt.define_test(seq, 1, number, kind, value, "AFTER", 0, "NEXT")
        bt.enable(self.cell_id, seq)
        bt.initiate(self.cell_id)
        bt.raise_errors()

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
            tests.append(("CURR_LE", step.until_current_below))
        return mode, current, voltage, tests

    def fetch_samples(self) -> Samples:
        """Buffered samples of this channel: time (s, instrument clock), voltage, current, step state."""
        records = self.mainframe.take_records(self.channel)
        if not len(records):
            return {k: np.empty(0) for k in ("time", "voltage", "current", "step")}
        i = channel_index(self.channel)
        return {
            "time": records["timestamp_ms"] / 1000.0,
            "voltage": records["vsense"][:, i].astype(np.float64),
            "current": records["imon"][:, i].astype(np.float64),
            "step": records["seq_state"][:, i].astype(np.int32),
        }

    def status(self) -> str:
        return self.mainframe.cell_status(self.cell_id)[0]

    def stop(self) -> None:
        self.mainframe.abort(self.cell_id)

    def safe_state(self) -> None:
        """Abort this channel's cell (open circuit), then read back that it stopped; other channels keep running.

        The read-back is what confirms it: a command alone can vanish into a dead connection.
        """
        self.stop()
        status = self.status()
        if status == "running":
            raise InstrumentError(f"{self!r}: still running after CELL:ABORT")
