"""Keithley DAQ6510 through pymeasure's stock ``KeithleyDAQ6510``, wrapped as a :class:`~cellrig.instruments.roles.DAQ`.

The stock driver measures the front terminals or one closed channel, but has no
temperature-scan commands (docs/instruments.md §4.2, §7).  :class:`DAQ6510Logger` keeps an unmodified
stock instance and sends Tektronix's thermocouple-scan SCPI through its ``write`` /
``ask`` (``:FUNC 'TEMP',(@…)``, ``:SENS:TEMP:TRAN TC``, ``:SENS:TEMP:TC:TYPE``,
``:SENS:TEMP:TC:RJUN:RSEL INT``, ``:SENS:TEMP:ODET ON``, ``:ROUT:SCAN:CRE``,
``:ROUT:SCAN:COUN:SCAN``, ``:ROUT:SCAN:INT``, ``:INIT``, ``:TRAC:ACT?``,
``:TRAC:DATA? <start>, <end>, "defbuffer1", READ, REL, CHAN``); starting and aborting the
scan use the stock ``start_buffer()`` (``:INIT``) and ``stop_buffer()`` (``:ABOR``).
:data:`COMMANDS` names the public source of each.  Unverified: ``:ROUT:SCAN:COUN:SCAN 0``
meaning "scan until aborted" (seen only in user scripts), REL being seconds since the scan's
first reading, and an open thermocouple with open detection on reading the overflow +9.9E+37
(``keysight_daq970a.OVERLOAD``, which the samples carry as +inf).

The buffer is read by index and never cleared during a scan, so a fetch that fails can be
repeated; ``defbuffer1`` must be large enough for the whole scan (its overflow is not handled).
"""

from pymeasure.instruments.keithley import KeithleyDAQ6510
from pymeasure.instruments.validators import strict_range

from ._connection import ManagedConnection
from ._scan import ScanLogger, channel_list, plan_scan, raise_errors, scan_samples
from .commands import Command
from .roles import DAQChannel, Identity, Samples

_TC = "tektronix/keithley DAQ6510 thermocouple scan SCPI example"
_FAST = "tektronix/keithley DAQ6510 speed scanning SCPI example"
#: What the logger sends, the stock driver's ("stock") included.  The Tektronix examples are under
#: Instrument_Examples/DAQ6510/ (Scan_Temperaure_Using_Thermocouples, Speed_Scanning_for_Increased_Test_Throughput,
#: Mixed_Function_Multi-Channel_Scanning, Frequency_Scanning).
COMMANDS = (
    Command("*IDN?, *RST, *CLS, *OPC?", "verified", f"IEEE 488.2; stock; {_TC} (*RST, *IDN?)"),
    Command(
        ":FUNC 'TEMP',(@…), :SENS:TEMP:TRAN TC,(@…), :SENS:TEMP:TC:TYPE <type>,(@…), "
        ":SENS:TEMP:TC:RJUN:RSEL INT,(@…), :SENS:TEMP:ODET ON,(@…)",
        "verified",
        _TC + " (type K; the other types unverified)",
    ),
    Command(
        ":FUNC 'VOLT:DC',(@…), :SENS:VOLT:RANG <V>,(@…)",
        "verified",
        _FAST + " (FUNC 'VOLT:DC', VOLT:RANG 1); mixed-function scanning SCPI example",
    ),
    Command(":ROUT:SCAN:CRE (@…), :ROUT:SCAN:INT <s>", "verified", _TC),
    Command(
        ":ROUT:SCAN:COUN:SCAN 0",
        "inferred",
        "form as in the thermocouple example (1440 scans); 0 meaning until aborted is seen only in public "
        "user scripts, not in a Tektronix source",
    ),
    Command(":TRAC:CLE, :TRAC:ACT?", "verified", _FAST),
    Command(":INIT", "verified", f"stock start_buffer(); {_TC}"),
    Command(
        ':TRAC:DATA? <first>, <last>, "defbuffer1", READ, REL, CHAN',
        "verified",
        "tektronix/keithley DAQ6510 mixed-function SCPI example (READ, CHAN) and frequency scanning IVI "
        "example (READ, UNIT, CHAN, REL); "
        "REL as seconds since the scan's first reading unverified",
    ),
    Command(
        ":ABOR",
        "inferred",
        "stock stop_buffer() (pymeasure keithley/buffer.py, shared by its Keithley buffer drivers); "
        "not seen in a DAQ6510 example",
    ),
    Command(
        "SYST:ERR?",
        "verified",
        "stock check_errors(), run on a DAQ6510 by pymeasure tests/instruments/keithley/"
        "test_keithleyDAQ6510_with_device.py",
    ),
)
SLOTS = (1, 2)  # docs/instruments.md §4.2
SCAN_RATE = 80.0  # channels per second, taken as the DAQ970A's armature multiplexer (unverified)
TC_TYPES = ("B", "E", "J", "K", "N", "R", "S", "T")  # unverified
VOLT_RANGES = (0.1, 1.0, 10.0, 100.0, 1000.0)  # V, the stock driver's DC voltage_range limits
MAX_INTERVAL = 100_000.0  # s between scans, unverified
BUFFER = "defbuffer1"


class ManagedKeithleyDAQ6510(ManagedConnection, KeithleyDAQ6510):
    """pymeasure's stock ``KeithleyDAQ6510`` under cellrig's connection policy; no command changed."""

    model = "Keithley DAQ6510"

    def __init__(self, adapter, name: str = "Keithley DAQ6510", **kwargs) -> None:
        kwargs.setdefault("read_termination", "\n")
        kwargs.setdefault("write_termination", "\n")
        super().__init__(adapter, name, **kwargs)

    strict_numbers = False  # the stock getters read text (sense_mode …) through numeric casts


class DAQ6510Logger(ScanLogger):
    """A DAQ6510 with multiplexer cards as a scanning logger, around a stock ``KeithleyDAQ6510``.

    ``modules`` maps slot → channels of the card there (default: one 20-channel 7700 in slot 1).
    Scan speed is assumed the armature-multiplexer rate of docs/instruments.md §4.1 (unverified for the 7700).
    """

    slots = SLOTS
    scan_rate = SCAN_RATE

    def __init__(self, daq: KeithleyDAQ6510, modules: dict[int, int] | None = None) -> None:
        self.daq = daq
        self.name = daq.name
        self._install(modules)
        self.next_index = 1  # buffer index of the next reading to fetch

    def __repr__(self) -> str:
        return f"<DAQ6510Logger on {self.daq.adapter}>"

    def identify(self) -> Identity:
        return Identity.from_idn(self.daq.id)

    def configure_channels(self, channels: dict[str, DAQChannel]) -> None:
        """Reset, then set up thermocouple (open detection on) and voltage channels and the scan list."""
        plan = plan_scan(channels, self.modules, TC_TYPES, VOLT_RANGES)
        daq = self.daq
        daq.reset()
        daq.clear()
        for tc_type, chans in plan.thermocouples.items():
            where = channel_list(chans)
            daq.write(f":FUNC 'TEMP',{where}")
            daq.write(f":SENS:TEMP:TRAN TC,{where}")
            daq.write(f":SENS:TEMP:TC:TYPE {tc_type},{where}")
            daq.write(f":SENS:TEMP:TC:RJUN:RSEL INT,{where}")
            daq.write(f":SENS:TEMP:ODET ON,{where}")
        for volt_range, chans in plan.voltages.items():
            where = channel_list(chans)
            daq.write(f":FUNC 'VOLT:DC',{where}")
            daq.write(f":SENS:VOLT:RANG {volt_range:g},{where}")
        daq.write(f":ROUT:SCAN:CRE {channel_list(plan.channels)}")
        raise_errors(daq)
        self.plan = plan

    def start_scan(self, interval: float) -> None:
        """Scan every ``interval`` seconds into a cleared ``defbuffer1`` until stopped."""
        self._configured()
        strict_range(interval, (self.limits.min_interval, MAX_INTERVAL))
        daq = self.daq
        daq.write(":ROUT:SCAN:COUN:SCAN 0")
        daq.write(f":ROUT:SCAN:INT {interval:g}")
        daq.write(":TRAC:CLE")
        daq.start_buffer()
        raise_errors(daq)
        self.next_index = 1

    def fetch_samples(self) -> Samples:
        """The whole scans buffered since the last fetch: time (s since the scan's first reading) and one
        column per name.  A scan still in progress waits for the next call."""
        plan = self._configured()
        stored = self.daq.values(":TRAC:ACT?", cast=int)[0]
        whole = (stored - self.next_index + 1) // len(plan.names) * len(plan.names)
        if whole <= 0:
            return scan_samples([], plan, self.name)
        first, last = self.next_index, self.next_index + whole - 1
        readings = self.daq.values(f':TRAC:DATA? {first}, {last}, "{BUFFER}", READ, REL, CHAN')
        self.next_index = last + 1
        return scan_samples(readings, plan, self.name)

    def stop(self) -> None:
        """Abort the scan, and wait for the instrument to confirm; a scan cut short is never fetched."""
        self.daq.stop_buffer()
        self.daq.ask("*OPC?")

    def safe_state(self) -> None:
        """Abort the scan (a logger has no outputs to switch off)."""
        self.stop()
