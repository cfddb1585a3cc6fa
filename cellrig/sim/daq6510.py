"""A simulated Keithley DAQ6510 with multiplexer cards: what pymeasure's stock driver and cellrig's scan send.

The stock ``KeithleyDAQ6510`` measures one thing at a time: ``:SENS:FUNC "VOLT"``,
``:SENS:VOLT:NPLC``, ``:SENS:VOLT:RANG:AUTO``, ``:ROUT:CLOS (@ch)`` / ``:ROUT:OPEN (@ch)`` and
``:READ?`` (the closed channel, or the front terminals, which nothing is wired to).  The scan
commands are those of docs/instruments.md §4.2 (``:FUNC 'TEMP',(@…)``, ``:SENS:TEMP:TRAN``, ``:TC:TYPE``,
``:TC:RJUN:RSEL``, ``:ODET``, ``:ROUT:SCAN:CRE``, ``:ROUT:SCAN:COUN:SCAN``, ``:ROUT:SCAN:INT``,
``:INIT``, ``:ABOR``, ``:TRAC:ACT?``, ``:TRAC:DATA?``) plus ``:FUNC 'VOLT:DC',(@…)``,
``:SENS:VOLT:RANG <r>,(@…)`` and ``:TRAC:CLE`` (unverified).

Channels read their ``probes`` (channel → function of simulated time) as in the DAQ970A
simulator; an unwired thermocouple channel reads the overflow value +9.9E+37 (what a real one
reads with open detection off is not modelled), an unwired voltage channel 0 V.  A scan sweeps
its channels ``channel_time`` apart, every ``:ROUT:SCAN:INT`` seconds of ``clock`` (in a
:class:`~cellrig.sim.world.World`, pass the world) from ``:INIT``, into
``defbuffer1``, whose readings are returned by index as ``reading,relative time,channel``
(relative to the scan's first reading).  Departures: one buffer, which never overflows; only the
temperature (thermocouple, internal reference junction) and DC-voltage functions.
"""

import math
import re
from typing import Any

from ..clock import Clock
from ..instruments.keithley_daq6510 import BUFFER, TC_TYPES, VOLT_RANGES
from ._scpi import Reply, SCPIError, command
from .daq970a import ON_OFF, Probe, Reading, Scanner, ScanningLogger, channels_on, choice, probe_reading

FUNCTIONS = {"VOLT": "VOLT", "VOLT:DC": "VOLT", "TEMP": "TEMP"}
FUNCTION_ARGS = re.compile(r"""\s*["']([A-Z:]+)["']\s*(?:,\s*(\(@.*\)))?\s*""", re.IGNORECASE)
ELEMENTS = ("READ", "REL", "CHAN")


class DAQ6510(ScanningLogger):
    """The virtual DAQ6510: probes on card channels, a timed scan into ``defbuffer1``."""

    idn = "KEITHLEY INSTRUMENTS,MODEL DAQ6510,SIM0000003,1.7.0"

    def __init__(self, clock: Clock, probes: dict[int, Probe] | None = None, **options: Any) -> None:
        super().__init__(clock, probes, **options)
        self.buffer: list[Reading] = []
        self.reset()

    def reset(self) -> None:
        self.scanner = Scanner(self.probes, self.channel_time)
        self.function = "VOLT"  # of the front terminals or the closed channel
        self.closed: int | None = None
        self.scan_count = 1.0
        self.scan_interval = 0.0

    def advance(self) -> None:
        """Buffer the scan readings that fell due up to the clock's present."""
        self.buffer.extend(self.scanned())

    def _dispatch(self, cmd: str) -> Reply:
        self.advance()
        return super()._dispatch(cmd)

    def _temperature_channels(self, args: str, allowed: tuple[str, ...]) -> None:
        """Check ``<setting>,(@list)`` for thermocouple settings: a known value, on TEMP channels."""
        value, channels = (a.strip() for a in args.split(",", 1))
        if value.upper() not in allowed:
            raise SCPIError(-224, "Illegal parameter value")
        if any(self.scanner.functions.get(ch) != "TEMP" for ch in channels_on(channels, self.modules)):
            raise SCPIError(-221, "Settings conflict")

    # -- measurement functions -----------------------------------------------------------

    @command("[:SENSe]:FUNCtion[:ON]")
    def _function(self, args: str) -> Reply:
        m = FUNCTION_ARGS.fullmatch(args)
        function = FUNCTIONS.get(m.group(1).upper()) if m else None
        if function is None:
            raise SCPIError(-224, "Illegal parameter value")
        if m.group(2):
            self.scanner.functions.update(dict.fromkeys(channels_on(m.group(2), self.modules), function))
        else:
            self.function = function
        return None

    @command("[:SENSe]:VOLTage[:DC]:NPLCycles")
    def _nplc(self, args: str) -> Reply:
        float(args.split(",", 1)[0])
        return None

    @command("[:SENSe]:VOLTage[:DC]:RANGe:AUTO")
    def _autorange(self, args: str) -> Reply:
        choice(args.split(",", 1)[0], ON_OFF)
        return None

    @command("[:SENSe]:VOLTage[:DC]:RANGe[:UPPer]")
    def _range(self, args: str) -> Reply:
        volt_range, _, channels = args.partition(",")
        if float(volt_range) not in VOLT_RANGES:
            raise SCPIError(-222, "Data out of range")
        if channels:
            channels_on(channels, self.modules)
        return None

    @command("[:SENSe]:TEMPerature:TRANsducer")
    def _transducer(self, args: str) -> Reply:
        self._temperature_channels(args, ("TC",))
        return None

    @command("[:SENSe]:TEMPerature:TC:TYPE")
    def _tc_type(self, args: str) -> Reply:
        self._temperature_channels(args, TC_TYPES)
        return None

    @command("[:SENSe]:TEMPerature:TC:RJUNction:RSELect")
    def _reference_junction(self, args: str) -> Reply:
        self._temperature_channels(args, ("INT",))
        return None

    @command("[:SENSe]:TEMPerature:ODETector")
    def _open_detection(self, args: str) -> Reply:
        self._temperature_channels(args, tuple(ON_OFF))
        return None

    # -- one reading ---------------------------------------------------------------------

    @command("ROUTe:CLOSe")
    def _close(self, args: str) -> Reply:
        (self.closed,) = channels_on(args, self.modules)
        return None

    @command("ROUTe:OPEN")
    def _open(self, args: str) -> Reply:
        if self.closed in channels_on(args, self.modules):
            self.closed = None
        return None

    @command("READ?")
    def _read(self, args: str) -> Reply:
        return f"{self.shown(probe_reading(self.probes, self.closed, self.function, self.clock.now())):+.6E}"

    # -- scanning ------------------------------------------------------------------------

    @command("ROUTe:SCAN:CREate")
    def _create(self, args: str) -> Reply:
        channels = channels_on(args, self.modules)
        if any(ch not in self.scanner.functions for ch in channels):
            raise SCPIError(-221, "Settings conflict")
        self.scanner.use(channels)
        return None

    @command("ROUTe:SCAN:COUNt:SCAN")
    def _scan_count(self, args: str) -> Reply:
        count = int(args)
        if count < 0:
            raise SCPIError(-222, "Data out of range")
        self.scan_count = count or math.inf
        return None

    @command("ROUTe:SCAN:INTerval")
    def _scan_interval(self, args: str) -> Reply:
        self.scan_interval = float(args)
        return None

    @command("INITiate[:IMMediate]")
    def _initiate(self, args: str) -> Reply:
        self.start_scan(self.scan_interval, self.scan_count)
        return None

    # -- the reading buffer --------------------------------------------------------------

    @command("TRACe:CLEar")
    def _clear_buffer(self, args: str) -> Reply:
        self.buffer.clear()
        return None

    @command("TRACe:ACTual?")
    def _actual(self, args: str) -> Reply:
        return str(len(self.buffer))

    @command("TRACe:DATA?")
    def _data(self, args: str) -> Reply:
        first, last, name, *elements = (a.strip() for a in args.split(","))
        start, end = int(first), int(last)
        if name.strip("\"'") != BUFFER or any(e.upper() not in ELEMENTS for e in elements):
            raise SCPIError(-224, "Illegal parameter value")
        if not 1 <= start <= end <= len(self.buffer):
            raise SCPIError(-222, "Data out of range")
        fields = {"READ": "{0:+.6E}", "REL": "{1:.6f}", "CHAN": "{2}"}
        pattern = ",".join(fields[e.upper()] for e in elements)
        return ",".join(pattern.format(self.shown(value), t, ch) for value, t, ch in self.buffer[start - 1 : end])
