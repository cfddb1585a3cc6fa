"""Keysight DAQ970A (also 34972A) data acquisition unit as a :class:`~cellrig.instruments.roles.DAQ`.

Channels are numbered slot-first (101–120 on a 20-channel DAQM901A in slot 1, 201–…), a
scan list is swept on a timer, and every reading goes with its channel number and its time
since the start of the scan into the reading memory, which the host drains with
``DATA:POIN?`` / ``DATA:REM? <n>``.  Command strings are the DAQ970A scan of
docs/instruments.md §4.1: ``*RST``, ``CONF:TEMP TC,K,(@…)``, ``UNIT:TEMP C,(@…)``,
``SENS:TEMP:NPLC 1,(@…)``, ``CONF:VOLT:DC 10,(@…)``, ``ROUT:SCAN (@…)``,
``FORM:READ:CHAN ON``, ``FORM:READ:TIME ON``, ``TRIG:SOUR TIM``, ``TRIG:TIM 1``,
``TRIG:COUN INF``, ``INIT``, ``DATA:REM? n``, ``FETC?``, ``SYST:ERR?``.  From the
34970A/34972A user guide: ``ABOR``, ``TRIG:SOUR?`` answering ``TIM``/``IMM``/``BUS``/``EXT``,
the reading layout (reading, time since the scan started, channel) and CONFigure switching
those fields off and replacing the scan list.  ``DATA:POIN?`` and the value sets marked
*unverified* below are recalled from the 34970A manual, not checked in a source.

What it shares with the Keithley DAQ6510 wrapper (channel lists, scan plans, scan-shaped
samples, the error queue) is in :mod:`._scan`.
"""

import logging
import math
from collections.abc import Iterable
from functools import partial

from pymeasure.instruments import Instrument
from pymeasure.instruments.generic_types import SCPIMixin
from pymeasure.instruments.validators import (
    joined_validators,
    strict_discrete_range,
    strict_discrete_set,
    strict_range,
)

from ._connection import ManagedConnection
from ._scan import ScanLogger, channel_list, check_channels, plan_scan, raise_errors, scan_samples
from .commands import Command
from .roles import DAQChannel, Identity, Samples

log = logging.getLogger(__name__)

#: Readings the memory holds (the DAQ970A/DAQ973A programming guide, p. 215: 100,000; the
#: 34970A's 50,000 is the older model's).  When it overflows the oldest readings are overwritten.
MEMORY = 100_000
#: Channels per second an armature multiplexer (DAQM901A) scans (docs/instruments.md §4.1, GW Instek spec).
SCAN_RATE = 80.0
SLOTS = (1, 2, 3)  # unverified
TC_TYPES = ("B", "E", "J", "K", "N", "R", "S", "T")  # unverified
VOLT_RANGES = (0.1, 1.0, 10.0, 100.0, 300.0)  # V, unverified

_DAQ = "ricardo1slas/BT2202A_Plugin (a real DAQ970A's session log); DAQ970A/DAQ973A programming guide"
COMMANDS = (
    Command("*IDN?, *RST, *CLS, *OPC?", "verified", "IEEE 488.2"),
    Command("CONF:TEMP TC,<type>,(@…)", "verified", _DAQ),
    Command("UNIT:TEMP C,(@…), SENS:TEMP:NPLC 1,(@…)", "inferred", "docs/instruments.md §4.1 (34972A user guide)"),
    Command("CONF:VOLT:DC <range>,(@…)", "inferred", "docs/instruments.md §4.1 (34972A user guide)"),
    Command("ROUT:SCAN (@…)", "verified", _DAQ),
    Command("FORM:READ:CHAN ON, FORM:READ:TIME ON", "verified", _DAQ),
    Command("TRIG:SOUR TIM, TRIG:TIM <s>, TRIG:COUN INF, INIT", "verified", _DAQ),
    Command("DATA:POIN?", "unverified", "not seen in a source; the guide's name for the memory count"),
    Command("DATA:REM? <n>", "verified", _DAQ),
    Command("ABOR", "unverified", "SCPI's abort; not seen in a DAQ970A source"),
    Command("SYST:ERR?", "verified", "docs/instruments.md §4.1"),
)
NPLC = (0.02, 0.2, 1, 2, 10, 20, 100, 200)  # unverified
MAX_TIMER = 359_999.0  # s between scans, unverified
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
    slots = SLOTS
    scan_rate = SCAN_RATE

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
