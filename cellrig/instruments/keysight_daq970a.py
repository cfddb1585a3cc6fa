"""Keysight DAQ970A (also 34972A) data acquisition unit as a :class:`~cellrig.instruments.roles.DAQ`.

Channels are numbered slot-first (101–120 on a 20-channel DAQM901A in slot 1, 201–…), a
scan list is swept on a timer, and every reading goes with its channel number and its time
since the start of the scan into the reading memory, which the host drains with
``DATA:POIN?`` / ``DATA:REM? <n>``.  Command strings are the reference's DAQ970A table
(instruments.md §4.1): ``*RST``, ``CONF:TEMP TC,K,(@…)``, ``UNIT:TEMP C,(@…)``,
``SENS:TEMP:NPLC 1,(@…)``, ``CONF:VOLT:DC 10,(@…)``, ``ROUT:SCAN (@…)``,
``FORM:READ:CHAN ON``, ``FORM:READ:TIME ON``, ``TRIG:SOUR TIM``, ``TRIG:TIM 1``,
``TRIG:COUN INF``, ``INIT``, ``DATA:REM? n``, ``FETC?``, ``SYST:ERR?``.  From the
34970A/34972A user guide: ``ABOR``, ``TRIG:SOUR?`` answering ``TIM``/``IMM``/``BUS``/``EXT``,
the reading layout (reading, time since the scan started, channel) and CONFigure switching
those fields off and replacing the scan list.  ``DATA:POIN?`` and the value sets marked
*unverified* below are recalled from the 34970A manual, not checked in a source.

The helpers at the top (channel lists, scan plans, scan-shaped samples, the error queue) are
shared with the Keithley DAQ6510 wrapper.
"""

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from pymeasure.instruments import Instrument
from pymeasure.instruments.generic_types import SCPIMixin
from pymeasure.instruments.validators import (
    joined_validators,
    strict_discrete_range,
    strict_discrete_set,
    strict_range,
)

from ._connection import InstrumentError, ManagedConnection
from .commands import Command
from .roles import DAQChannel, DAQLimits, Identity, Samples

log = logging.getLogger(__name__)

#: Readings the memory holds (the DAQ970A/DAQ973A programming guide, p. 215: 100,000; the
#: 34970A's 50,000 is the older model's).  When it overflows the oldest readings are overwritten.
MEMORY = 100_000
#: Channels per second an armature multiplexer (DAQM901A) scans (reference §4.1, GW Instek spec).
SCAN_RATE = 80.0
SLOTS = (1, 2, 3)  # unverified
TC_TYPES = ("B", "E", "J", "K", "N", "R", "S", "T")  # unverified
VOLT_RANGES = (0.1, 1.0, 10.0, 100.0, 300.0)  # V, unverified

_DAQ = "ricardo1slas/BT2202A_Plugin (a real DAQ970A's session log); DAQ970A/DAQ973A programming guide"
COMMANDS = (
    Command("*IDN?, *RST, *CLS, *OPC?", "verified", "IEEE 488.2"),
    Command("CONF:TEMP TC,<type>,(@…)", "verified", _DAQ),
    Command("UNIT:TEMP C,(@…), SENS:TEMP:NPLC 1,(@…)", "inferred", "reference §4.1 (34972A user guide)"),
    Command("CONF:VOLT:DC <range>,(@…)", "inferred", "reference §4.1 (34972A user guide)"),
    Command("ROUT:SCAN (@…)", "verified", _DAQ),
    Command("FORM:READ:CHAN ON, FORM:READ:TIME ON", "verified", _DAQ),
    Command("TRIG:SOUR TIM, TRIG:TIM <s>, TRIG:COUN INF, INIT", "verified", _DAQ),
    Command("DATA:POIN?", "unverified", "not seen in a source; the guide's name for the memory count"),
    Command("DATA:REM? <n>", "verified", _DAQ),
    Command("ABOR", "unverified", "SCPI's abort; not seen in a DAQ970A source"),
    Command("SYST:ERR?", "verified", "reference §4.1"),
)
NPLC = (0.02, 0.2, 1, 2, 10, 20, 100, 200)  # unverified
MAX_TIMER = 359_999.0  # s between scans, unverified
#: What an overloaded input or an open thermocouple reads (unverified); the samples carry ±inf instead.
OVERLOAD = 9.9e37


# -- shared by the scanning loggers -------------------------------------------------------------


def channel_list(channels: Iterable[int]) -> str:
    """An SCPI channel list with runs joined: ``[101, 102, 103, 111]`` → ``(@101:103,111)``."""
    runs: list[list[int]] = []
    for ch in sorted(set(channels)):
        if runs and ch == runs[-1][1] + 1:
            runs[-1][1] = ch
        else:
            runs.append([ch, ch])
    return "(@" + ",".join(f"{a}:{b}" if b > a else f"{a}" for a, b in runs) + ")"


def check_channels(channels: Iterable[int], modules: dict[int, int]) -> list[int]:
    """The channels in ascending order; raises ValueError for one not on an installed module.

    ``modules`` maps slot → channels on the module in that slot (e.g. ``{1: 20}``).
    """
    out = sorted(channels)
    for ch in out:
        slot, n = divmod(ch, 100)
        if not 1 <= n <= modules.get(slot, 0):
            raise ValueError(f"channel {ch} is not on an installed module (slot → channels: {modules})")
    return out


@dataclass(frozen=True)
class ScanPlan:
    """A validated channel configuration: which channel is which name, grouped by setting."""

    names: dict[int, str]  # channel → sample column name
    thermocouples: dict[str, list[int]] = field(default_factory=dict)  # type → channels
    voltages: dict[float, list[int]] = field(default_factory=dict)  # range → channels

    @property
    def channels(self) -> list[int]:
        return sorted(self.names)


def plan_scan(
    channels: dict[str, DAQChannel], modules: dict[int, int], tc_types: Iterable[str], volt_ranges: Iterable[float]
) -> ScanPlan:
    """Check every channel against the modules and the instrument's settings, then group them."""
    numbers = [c.channel for c in channels.values()]
    if not numbers or len(set(numbers)) != len(numbers):
        raise ValueError(f"need at least one channel and no channel twice: {numbers}")
    check_channels(numbers, modules)
    plan = ScanPlan({c.channel: name for name, c in channels.items()})
    for c in channels.values():
        strict_discrete_set(c.kind, ("tc", "volt"))
        if c.kind == "tc":
            plan.thermocouples.setdefault(strict_discrete_set(c.tc_type, tuple(tc_types)), []).append(c.channel)
        else:
            plan.voltages.setdefault(strict_discrete_set(c.range, tuple(volt_ranges)), []).append(c.channel)
    return plan


def scan_samples(readings: list[float], plan: ScanPlan, who: str) -> Samples:
    """Arrange whole scans of flat ``reading, time, channel`` triples into samples.

    ``time`` is the time of each scan's first reading (seconds since the scan started); the
    channel fields must follow the scan list, or readings were lost (memory overflow).  An
    overloaded input or open thermocouple (±:data:`OVERLOAD`) becomes ±inf: no value it could
    be mistaken for, and above any limit.
    """
    channels = plan.channels
    grid = np.asarray(readings, dtype=np.float64).reshape(-1, len(channels), 3)
    if not np.array_equal(grid[:, :, 2], np.broadcast_to(channels, grid.shape[:2])):
        raise InstrumentError(f"{who}: readings do not follow the scan list {channel_list(channels)}")
    values = grid[:, :, 0]
    values = np.where(np.abs(values) >= OVERLOAD, np.copysign(np.inf, values), values)
    samples = {"time": grid[:, 0, 1]}
    samples.update({plan.names[ch]: values[:, k] for k, ch in enumerate(channels)})
    return samples


class ScanLogger:
    """What the scanning loggers share: the installed modules, the configured scan, its limits."""

    slots: tuple[int, ...] = SLOTS
    scan_rate: float = SCAN_RATE
    name: str

    def _install(self, modules: dict[int, int] | None) -> None:
        self.modules = modules or {1: 20}
        if not set(self.modules) <= set(self.slots):
            raise ValueError(f"{self.name}: modules {self.modules} are not in slots {self.slots}")
        self.plan = ScanPlan({})

    @property
    def limits(self) -> DAQLimits:
        """Get the installed channel count and the shortest interval the present scan list allows."""
        return DAQLimits(sum(self.modules.values()), max(len(self.plan.names), 1) / self.scan_rate)

    def _configured(self) -> ScanPlan:
        """The scan ``configure_channels`` set up (ValueError if none is)."""
        if not self.plan.names:
            raise ValueError(f"{self.name}: no channels configured")
        return self.plan


def raise_errors(instrument: SCPIMixin) -> None:
    """Raise :class:`InstrumentError` if the SCPI error queue holds errors (and empty it)."""
    errors = instrument.check_errors()
    if errors:
        text = "; ".join(f"{int(float(code))} {str(msg).strip(chr(34))}" for code, msg in errors)
        raise InstrumentError(f"{instrument.name}: instrument reported {text}")


# -- the driver -------------------------------------------------------------------------------


class KeysightDAQ970A(ScanLogger, ManagedConnection, SCPIMixin, Instrument):
    """Keysight DAQ970A with multiplexer modules, as a scanning logger.

    >>> daq = KeysightDAQ970A("TCPIP0::192.168.1.30::5025::SOCKET", visa_library="@py")
    >>> daq.configure_channels({"t_cell": DAQChannel(101), "v_cell": DAQChannel(111, "volt")})
    >>> daq.start_scan(1.0)
    >>> daq.fetch_samples()  # {"time": ..., "t_cell": ..., "v_cell": ...}

    ``modules`` maps slot → channels of the module there (default: one 20-channel DAQM901A).
    """

    model = "Keysight DAQ970A"

    def __init__(
        self, adapter, name: str = "Keysight DAQ970A", modules: dict[int, int] | None = None, **kwargs
    ) -> None:
        kwargs.setdefault("read_termination", "\n")
        kwargs.setdefault("write_termination", "\n")
        super().__init__(adapter, name, **kwargs)
        self._install(modules)
        self._carry: list[float] = []  # fields of a scan in progress, taken from memory after an overflow

    reading_channel_enabled = Instrument.setting(
        "FORM:READ:CHAN %s",
        """Set whether each scan reading carries its channel number (bool).""",
        validator=strict_discrete_set,
        values={True: "ON", False: "OFF"},
        map_values=True,
    )

    reading_time_enabled = Instrument.setting(
        "FORM:READ:TIME %s",
        """Set whether each scan reading carries its time since the start of the scan (bool).""",
        validator=strict_discrete_set,
        values={True: "ON", False: "OFF"},
        map_values=True,
    )

    trigger_source = Instrument.control(
        "TRIG:SOUR?",
        "TRIG:SOUR %s",
        """Control what starts each sweep of the scan list: timer, immediate, bus or external.""",
        validator=strict_discrete_set,
        values={"timer": "TIM", "immediate": "IMM", "bus": "BUS", "external": "EXT"},
        map_values=True,
        cast=str,
    )

    trigger_timer = Instrument.control(
        "TRIG:TIM?",
        "TRIG:TIM %g",
        """Control the time between the starts of two sweeps with the timer trigger (s).""",
        validator=strict_range,
        values=(0.0, MAX_TIMER),
    )

    trigger_count = Instrument.setting(
        "TRIG:COUN %s",
        """Set how many sweeps a scan makes (1 to 100,000, or ``math.inf`` to sweep until aborted).""",
        validator=joined_validators(strict_discrete_set, partial(strict_discrete_range, step=1)),
        values=((math.inf,), (1, MEMORY)),
        set_process=lambda n: "INF" if n == math.inf else f"{int(n)}",
    )

    points = Instrument.measurement(
        "DATA:POIN?",
        """Measure how many readings wait in the reading memory (int).""",
        cast=int,
    )

    # -- multi-argument commands ---------------------------------------------------------

    def configure_thermocouple(self, channels: Iterable[int], tc_type: str = "K", nplc: float = 1) -> None:
        """Make channels thermocouple inputs of ``tc_type`` in °C, integrating ``nplc`` power-line cycles."""
        chans = channel_list(check_channels(channels, self.modules))
        strict_discrete_set(tc_type, TC_TYPES)
        strict_discrete_set(nplc, NPLC)
        self.write(f"CONF:TEMP TC,{tc_type},{chans}")
        self.write(f"UNIT:TEMP C,{chans}")
        self.write(f"SENS:TEMP:NPLC {nplc:g},{chans}")

    def configure_voltage(self, channels: Iterable[int], volt_range: float = 10.0) -> None:
        """Make channels DC voltage inputs on ``volt_range`` (V)."""
        chans = channel_list(check_channels(channels, self.modules))
        strict_discrete_set(volt_range, VOLT_RANGES)
        self.write(f"CONF:VOLT:DC {volt_range:g},{chans}")

    def set_scan(self, channels: Iterable[int]) -> None:
        """Set the scan list (swept in ascending channel order)."""
        self.write(f"ROUT:SCAN {channel_list(check_channels(channels, self.modules))}")

    def initiate(self) -> None:
        """Start the scan; this clears the reading memory."""
        self.write("INIT")
        self._carry = []

    def abort(self) -> None:
        """Stop the scan; readings stay in memory."""
        self.write("ABOR")

    def remove_readings(self, count: int) -> list[float]:
        """Take the ``count`` oldest readings out of memory, their fields flattened.

        Not retried on a fault: the instrument may already have removed what a failed
        attempt asked for.
        """
        strict_discrete_range(count, (1, MEMORY), 1)
        return self.transaction(f"DATA:REM? {count}", lambda: self.values(f"DATA:REM? {count}"), retry=False)

    def fetch_readings(self) -> list[float]:
        """Get every reading in memory without removing it, fields flattened."""
        return self.values("FETC?")

    # -- the DAQ role --------------------------------------------------------------------

    def identify(self) -> Identity:
        return Identity.from_idn(self.id)

    def configure_channels(self, channels: dict[str, DAQChannel]) -> None:
        """Reset, then set up and scan ``channels``; readings carry channel and time fields."""
        plan = plan_scan(channels, self.modules, TC_TYPES, VOLT_RANGES)
        self.reset()
        self.clear()
        for tc_type, chans in plan.thermocouples.items():
            self.configure_thermocouple(chans, tc_type)
        for volt_range, chans in plan.voltages.items():
            self.configure_voltage(chans, volt_range)
        self.set_scan(plan.channels)
        self.reading_channel_enabled = True  # after CONFigure, which switches the fields off
        self.reading_time_enabled = True
        raise_errors(self)
        self.plan = plan

    def start_scan(self, interval: float) -> None:
        """Sweep the scan list every ``interval`` seconds until stopped."""
        self._configured()
        strict_range(interval, (self.limits.min_interval, MAX_TIMER))
        self.trigger_source = "timer"
        self.trigger_timer = interval
        self.trigger_count = math.inf
        self.initiate()
        raise_errors(self)

    def fetch_samples(self) -> Samples:
        """Take the whole scans waiting in memory: time (s since the scan started) and one column per name.

        A scan still in progress stays in memory for the next call.  After the memory overflowed
        (the instrument then overwrites its oldest readings, so memory may start mid-scan) every
        reading is taken, the readings of the scan whose start was lost are dropped (and logged),
        and the scan in progress is kept here until the rest of it is fetched.
        """
        plan = self._configured()
        n, carried = len(plan.names), len(self._carry) // 3
        available = self.points
        if available < MEMORY:
            take = (carried + available) // n * n - carried
            readings, self._carry = self._carry + (self.remove_readings(take) if take > 0 else []), []
            return scan_samples(readings, plan, self.describe())
        readings = self._carry + self.remove_readings(available)
        channels = readings[2::3]
        start = next((i for i, ch in enumerate(channels) if ch == plan.channels[0]), len(channels))
        whole = start + (len(channels) - start) // n * n
        log.warning(
            "%s: reading memory full, the oldest overwritten; %d readings of a scan cut dropped", self.describe(), start
        )
        self._carry = readings[3 * whole :]
        return scan_samples(readings[3 * start : 3 * whole], plan, self.describe())

    def stop(self) -> None:
        """Stop scanning, and wait for the instrument to confirm; a scan cut short is never fetched."""
        self.abort()
        self.ask("*OPC?")

    def safe_state(self) -> None:
        """Stop scanning (a logger has no outputs to switch off)."""
        self.stop()
