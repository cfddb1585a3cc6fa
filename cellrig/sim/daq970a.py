"""A simulated Keysight DAQ970A with multiplexer modules, over the command set of docs/instruments.md §4.1.

What each channel reads comes from ``probes``: channel → a function of simulated time giving a
thermocouple temperature (°C) or a voltage (V), so a virtual world can wire thermocouples to
cells and chamber air.  A channel with no probe reads as an open input: a thermocouple channel
returns the overload value :data:`~cellrig.instruments.keysight_daq970a.OVERLOAD` (+9.9E+37,
what Keysight and Keithley loggers return for an overload; unverified for an open thermocouple
on the DAQ970A), a voltage channel 0 V.

A scan runs on ``clock`` (in a :class:`~cellrig.sim.world.World`, pass the world):
sweep k starts k × TRIG:TIMer after INITiate (the first at once), and the channels of a sweep
are read one after another, ``channel_time`` apart (1/80 s, an armature multiplexer's rate), so
what the memory holds depends only on simulated time.  The memory keeps the newest 100,000
readings.  Readings are ``reading[,time][,channel]`` with time in seconds since the scan
started, to the millisecond; CONFigure switches the time and channel fields off and replaces
the scan list, as the 34970A/34972A user guide says.  Departures: only thermocouple and
DC-voltage functions, °C, and the timer and immediate trigger sources are simulated; settings
such as NPLC are accepted and have no effect.
"""

import math
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from ..clock import Clock
from ..instruments._scan import OVERLOAD, check_channels
from ..instruments.keysight_daq970a import MEMORY, SCAN_RATE, TC_TYPES, VOLT_RANGES
from ._scpi import Reply, SCPIError, SimInstrument, command
from .bt2200 import cell_list

T = TypeVar("T")
Probe = Callable[[float], float]
Reading = tuple[float, float, int]  # value, seconds since the scan started, channel
ON_OFF = {"ON": True, "1": True, "OFF": False, "0": False}


def choice(text: str, options: dict[str, T]) -> T:
    """The meaning of an enumerated SCPI argument (``ON``, ``OFF`` …); SCPI error -224 if it has none."""
    key = text.strip().strip("\"'").upper()
    if key not in options:
        raise SCPIError(-224, "Illegal parameter value")
    return options[key]


class Scanner:
    """A scan list swept on a timer from a start time; readings fall due at their simulated times."""

    def __init__(self, probes: dict[int, Probe], channel_time: float) -> None:
        self.probes = probes
        self.channel_time = channel_time
        self.functions: dict[int, str] = {}  # channel → "TEMP" | "VOLT"
        self.channels: list[int] = []  # the scan list, ascending
        self.interval = 0.0  # s between sweep starts
        self.count = math.inf  # sweeps
        self.running = False
        self.t0 = 0.0
        self.sweep = 0
        self.index = 0  # next channel of the sweep

    def use(self, channels: list[int]) -> None:
        """Make ``channels`` the scan list (SCPI error -221 while a scan runs)."""
        if self.running:
            raise SCPIError(-221, "Settings conflict")
        self.channels = channels

    def start(self, now: float) -> None:
        self.t0, self.sweep, self.index = now, 0, 0
        self.running = bool(self.channels)

    def take(self, now: float) -> list[Reading]:
        """The readings that fell due since the last call, up to ``now``."""
        out = []
        period = max(self.interval, len(self.channels) * self.channel_time)
        while self.running:
            t = self.sweep * period + self.index * self.channel_time
            if self.t0 + t > now + 1e-9:
                break
            channel = self.channels[self.index]
            value = probe_reading(self.probes, channel, self.functions.get(channel, "VOLT"), self.t0 + t)
            out.append((value, t, channel))
            self.index += 1
            if self.index == len(self.channels):
                self.sweep, self.index = self.sweep + 1, 0
                self.running = self.sweep < self.count
        return out


def probe_reading(probes: dict[int, Probe], channel: int | None, function: str, t: float) -> float:
    """What ``channel`` reads at simulated time ``t``: its probe, or an open input if none is wired."""
    probe = probes.get(channel) if channel is not None else None
    if probe is not None:
        return probe(t)
    return OVERLOAD if function == "TEMP" else 0.0


def channels_on(text: str, modules: dict[int, int]) -> list[int]:
    """Parse a channel list and check it against the installed modules (SCPI error -222 if not)."""
    try:
        return check_channels(cell_list(text), modules)
    except ValueError:
        raise SCPIError(-222, "Data out of range") from None


class ScanningLogger(SimInstrument):
    """What the simulated data loggers share: probes on module channels, read by a timed scan.

    Under a ``nan`` fault the readings they report are the overload value (:meth:`shown`); under a
    ``stall`` the readings that fall due are lost (:meth:`scanned`).
    """

    scanner: Scanner
    stalls = True

    def __init__(
        self,
        clock: Clock,
        probes: dict[int, Probe] | None = None,
        *,
        modules: dict[int, int] | None = None,
        channel_time: float = 1 / SCAN_RATE,
    ) -> None:
        super().__init__()
        self.clock = clock
        self.probes = {} if probes is None else probes
        self.modules = modules or {1: 20}
        self.channel_time = channel_time

    def quiet(self) -> bool:
        """True while no scan runs."""
        return not self.scanner.running

    def scanned(self) -> list[Reading]:
        """The readings that fell due up to the clock's present; none while a ``stall`` fault plays."""
        readings = self.scanner.take(self.clock.now())
        stalled = self.playing == "stall" or any(fault.kind == "stall" for fault in self.faults)
        return [] if stalled else readings

    def shown(self, value: float) -> float:
        """A reading as reported: the overload value while a ``nan`` fault plays."""
        return OVERLOAD if self.playing == "nan" else value

    def not_a_number(self, reply: Reply) -> Reply:
        """Left as it is: :meth:`shown` put the overload value in the reading fields only."""
        return reply

    def start_scan(self, interval: float, count: float) -> None:
        """INITiate: sweep the scan list every ``interval`` s, ``count`` times (SCPI error -221 if empty)."""
        if not self.scanner.channels:
            raise SCPIError(-221, "Settings conflict")
        self.scanner.interval, self.scanner.count = interval, count
        self.scanner.start(self.clock.now())

    @command("ABORt")
    def _abort(self, args: str) -> Reply:
        self.scanner.running = False
        return None


class DAQ970A(ScanningLogger):
    """The virtual DAQ970A: probes on channels, a timed scan, a reading memory."""

    idn = "Keysight Technologies,DAQ970A,SIM0000002,A.01.00"

    def __init__(self, clock: Clock, probes: dict[int, Probe] | None = None, **options: Any) -> None:
        super().__init__(clock, probes, **options)
        self.memory: deque[Reading] = deque(maxlen=MEMORY)
        self.reset()

    def reset(self) -> None:
        self.scanner = Scanner(self.probes, self.channel_time)
        self.fields = {"TIME": False, "CHAN": False}
        self.source = "IMM"
        self.timer = 1.0
        self.count = 1.0

    def advance(self) -> None:
        """Store the readings that fell due up to the clock's present."""
        self.memory.extend(self.scanned())

    def _dispatch(self, cmd: str) -> Reply:
        self.advance()
        return super()._dispatch(cmd)

    def _configure(self, function: str, text: str) -> None:
        channels = channels_on(text, self.modules)
        self.scanner.use(channels)
        self.scanner.functions.update(dict.fromkeys(channels, function))
        self.fields = dict.fromkeys(self.fields, False)

    def _format(self, reading: Reading) -> str:
        value, t, channel = reading
        fields = [f"{self.shown(value):+.8E}"]
        if self.fields["TIME"]:
            fields.append(f"{t:013.3f}")
        if self.fields["CHAN"]:
            fields.append(str(channel))
        return ",".join(fields)

    # -- configuration -------------------------------------------------------------------

    @command("CONFigure:TEMPerature")
    def _conf_temp(self, args: str) -> Reply:
        transducer, tc_type, channels = (a.strip() for a in args.split(",", 2))
        if transducer.upper() != "TC" or tc_type.upper() not in TC_TYPES:
            raise SCPIError(-224, "Illegal parameter value")
        self._configure("TEMP", channels)
        return None

    @command("CONFigure:VOLTage[:DC]")
    def _conf_volt(self, args: str) -> Reply:
        volt_range, channels = (a.strip() for a in args.split(",", 1))
        if float(volt_range) not in VOLT_RANGES:
            raise SCPIError(-224, "Illegal parameter value")
        self._configure("VOLT", channels)
        return None

    @command("UNIT:TEMPerature")
    def _unit(self, args: str) -> Reply:
        unit, channels = (a.strip() for a in args.split(",", 1))
        channels_on(channels, self.modules)
        if unit.upper() != "C":
            raise SCPIError(-224, "Illegal parameter value")
        return None

    @command("[SENSe:]TEMPerature:NPLCycles")
    def _nplc(self, args: str) -> Reply:
        float(args.split(",", 1)[0])
        return None

    @command("ROUTe:SCAN")
    def _scan(self, args: str) -> Reply:
        channels = channels_on(args, self.modules)
        if any(ch not in self.scanner.functions for ch in channels):
            raise SCPIError(-221, "Settings conflict")
        self.scanner.use(channels)
        return None

    @command("FORMat:READing:CHANnel")
    def _format_channel(self, args: str) -> Reply:
        self.fields["CHAN"] = choice(args, ON_OFF)
        return None

    @command("FORMat:READing:TIME")
    def _format_time(self, args: str) -> Reply:
        self.fields["TIME"] = choice(args, ON_OFF)
        return None

    # -- triggering ----------------------------------------------------------------------

    @command("TRIGger:SOURce")
    def _source(self, args: str) -> Reply:
        source = args.upper()[:3]
        if source not in ("TIM", "IMM"):
            raise SCPIError(-224, "Illegal parameter value")
        self.source = source
        return None

    @command("TRIGger:SOURce?")
    def _source_q(self, args: str) -> Reply:
        return self.source

    @command("TRIGger:TIMer")
    def _timer(self, args: str) -> Reply:
        self.timer = float(args)
        return None

    @command("TRIGger:TIMer?")
    def _timer_q(self, args: str) -> Reply:
        return f"{self.timer:+.8E}"

    @command("TRIGger:COUNt")
    def _count(self, args: str) -> Reply:
        self.count = math.inf if args.upper().startswith("INF") else float(args)
        return None

    @command("INITiate")
    def _initiate(self, args: str) -> Reply:
        if self.scanner.channels:
            self.memory.clear()
        self.start_scan(self.timer if self.source == "TIM" else 0.0, self.count)
        return None

    # -- reading memory ------------------------------------------------------------------

    @command("DATA:POINts?")
    def _points(self, args: str) -> Reply:
        return f"{len(self.memory):+d}"

    @command("DATA:REMove?")
    def _remove(self, args: str) -> Reply:
        count = int(args)
        if not 1 <= count <= len(self.memory):
            raise SCPIError(-222, "Data out of range")
        return ",".join(self._format(self.memory.popleft()) for _ in range(count))

    @command("FETCh?")
    def _fetch(self, args: str) -> Reply:
        return ",".join(self._format(r) for r in self.memory)
