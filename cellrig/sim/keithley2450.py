"""A simulated Keithley 2450 / 2460 SourceMeter with a battery cell on its terminals.

It answers what pymeasure's stock ``Keithley2450`` sends for sourcing voltage and measuring
(``:SOUR:FUNC``, ``:SOUR:VOLT:RANG``, ``:SOUR:VOLT:LEV``, ``:SOUR:VOLT:ILIM``, ``:SENS:FUNC``,
``:SENS:<f>:NPLC``, ``:SENS:<f>:RANG:AUTO``, ``OUTPUT ON|OFF``, ``OUTPUT?``,
``:OUTP:VOLT:SMOD``, ``:READ?``) plus ``:SOUR:VOLT:READ:BACK ON`` and
``:READ? "defbuffer1", SOUR, READ`` (docs/instruments.md §3.2).

Physics: a voltage source with a symmetric current limit on a
:class:`~cellrig.sim.cell.Cell`: the current is what holds the cell at the source
voltage, clipped to ±ILIM (+ flows into the cell, charging).  It advances lazily to the present
of ``clock`` (in a :class:`~cellrig.sim.world.World`, pass the world) in fixed
steps, so results depend only on simulated time.  With the output off the cell rests.
Departures, stated once: every output-off state acts as High-Z (a real NORMal or ZERO off state
keeps a 0 V source connected), only the voltage source is simulated, and with the output off
``:READ?`` answers the overflow value +9.9E+37 for every field (what a real 2450 answers with
its relay open is unverified).
"""

from ..clock import Clock
from ..instruments._scan import OVERLOAD
from ..instruments.keithley_2450 import RATINGS
from ._scpi import Reply, SCPIError, SimInstrument, command
from .cell import REST_STEP_S, Cell
from .daq970a import ON_OFF, choice

OFF_STATES = ("HIMP", "NORM", "ZERO", "GUAR")
SENSE = {"CURR": "CURR", "CURR:DC": "CURR", "VOLT": "VOLT", "VOLT:DC": "VOLT"}


class SMU2450(SimInstrument):
    """The virtual SourceMeter (``model`` "2450" or "2460") with ``cell`` on its terminals."""

    def __init__(self, clock: Clock, cell: Cell, *, model: str = "2450", dt: float = 1.0) -> None:
        super().__init__()
        self.clock = clock
        self.cell = cell
        self.idn = f"KEITHLEY INSTRUMENTS,MODEL {model},SIM0000004,1.7.12b"
        self.rating = RATINGS[model].limits
        self.dt = dt
        self.t = clock.now()
        self.resting = 0.0  # rest time not yet applied to the cell
        self.reset()

    def reset(self) -> None:
        self.output = False
        self.off_state = "NORM"
        self.source_voltage = 0.0
        self.current_limit = 1.05e-4
        self.readback = True
        self.sense = "CURR"

    # -- physics ---------------------------------------------------------------------------

    def current(self) -> float:
        """The current flowing now (A, + into the cell)."""
        if not self.output:
            return 0.0
        wanted = self.cell.current_for_voltage(self.source_voltage)
        return min(max(wanted, -self.current_limit), self.current_limit)

    def quiet(self) -> bool:
        """True while the output is off."""
        return not self.output

    def advance(self) -> None:
        """Run the cell forward to the clock's present, in fixed steps (at rest, every :data:`REST_STEP_S`)."""
        now = self.clock.now()
        if not self.output and now - self.t >= self.dt:  # open circuit: the cell only rests
            span = (now - self.t) // self.dt * self.dt
            self.resting += span
            self.t += span
            if self.resting >= REST_STEP_S:
                self._rest()
        if self.t + self.dt <= now:
            self._rest()
        while self.t + self.dt <= now:
            self.cell.step(self.current(), self.dt)
            self.t += self.dt

    def _rest(self) -> None:
        """Apply the rest not yet applied to the cell."""
        if self.resting:
            self.cell.step(0.0, self.resting)
            self.resting = 0.0

    def _dispatch(self, cmd: str) -> Reply:
        self.advance()
        self._rest()  # what is asked is answered from the cell as it is now
        return super()._dispatch(cmd)

    def _level(self, text: str, limit: float) -> float:
        value = float(text)
        if abs(value) > limit:
            raise SCPIError(-222, "Data out of range")
        return value

    # -- source ----------------------------------------------------------------------------

    @command("[:SOURce]:FUNCtion[:MODE]")
    def _function(self, args: str) -> Reply:
        if args.upper() not in ("VOLT", "VOLTAGE"):
            raise SCPIError(-224, "Illegal parameter value")  # the current source is not simulated
        return None

    @command("[:SOURce]:FUNCtion[:MODE]?")
    def _function_q(self, args: str) -> Reply:
        return "VOLT"

    @command("[:SOURce]:VOLTage[:LEVel][:IMMediate][:AMPLitude]")
    def _voltage(self, args: str) -> Reply:
        self.source_voltage = self._level(args, self.rating.max_voltage)
        return None

    @command("[:SOURce]:VOLTage[:LEVel][:IMMediate][:AMPLitude]?")
    def _voltage_q(self, args: str) -> Reply:
        return f"{self.source_voltage:.6E}"

    @command("[:SOURce]:VOLTage:RANGe")
    def _range(self, args: str) -> Reply:
        self._level(args, self.rating.max_voltage)
        return None

    @command("[:SOURce]:VOLTage:RANGe:AUTO")
    def _range_auto(self, args: str) -> Reply:
        choice(args, ON_OFF)
        return None

    @command("[:SOURce]:VOLTage:ILIMit[:LEVel]")
    def _limit(self, args: str) -> Reply:
        limit = self._level(args, self.rating.max_current)
        if limit <= 0:
            raise SCPIError(-222, "Data out of range")
        self.current_limit = limit
        return None

    @command("[:SOURce]:VOLTage:ILIMit[:LEVel]?")
    def _limit_q(self, args: str) -> Reply:
        return f"{self.current_limit:.6E}"

    @command("[:SOURce]:VOLTage:READ:BACK")
    def _readback(self, args: str) -> Reply:
        self.readback = choice(args, ON_OFF)
        return None

    # -- output ----------------------------------------------------------------------------

    @command("OUTPut[:STATe]")
    def _output(self, args: str) -> Reply:
        self.output = choice(args, ON_OFF)
        return None

    @command("OUTPut[:STATe]?")
    def _output_q(self, args: str) -> Reply:
        return "1" if self.output else "0"

    @command("OUTPut:VOLTage:SMODe")
    def _off_state(self, args: str) -> Reply:
        if args.upper()[:4] not in OFF_STATES:
            raise SCPIError(-224, "Illegal parameter value")
        self.off_state = args.upper()[:4]
        return None

    @command("OUTPut:VOLTage:SMODe?")
    def _off_state_q(self, args: str) -> Reply:
        return self.off_state

    # -- measurement -----------------------------------------------------------------------

    @command("[:SENSe]:FUNCtion[:ON]")
    def _sense(self, args: str) -> Reply:
        self.sense = choice(args, SENSE)
        return None

    @command("[:SENSe]:CURRent[:DC]:NPLCycles")
    def _current_nplc(self, args: str) -> Reply:
        float(args)
        return None

    @command("[:SENSe]:VOLTage[:DC]:NPLCycles")
    def _voltage_nplc(self, args: str) -> Reply:
        float(args)
        return None

    @command("[:SENSe]:CURRent[:DC]:RANGe:AUTO")
    def _current_autorange(self, args: str) -> Reply:
        choice(args, ON_OFF)
        return None

    @command("[:SENSe]:VOLTage[:DC]:RANGe:AUTO")
    def _voltage_autorange(self, args: str) -> Reply:
        choice(args, ON_OFF)
        return None

    @command("READ?")
    def _read(self, args: str) -> Reply:
        """``:READ?`` gives the sense function's reading; ``:READ? "defbuffer1", SOUR, READ`` lists elements."""
        buffer, *elements = [a.strip() for a in args.split(",")] if args else ['"defbuffer1"', "READ"]
        if buffer.strip("\"'") != "defbuffer1" or not set(e.upper() for e in elements) <= {"SOUR", "READ"}:
            raise SCPIError(-224, "Illegal parameter value")
        current = self.current()
        voltage = self.cell.voltage(current)
        values = {
            "SOUR": voltage if self.readback else self.source_voltage,
            "READ": current if self.sense == "CURR" else voltage,
        }
        return ",".join(f"{values[e.upper()] if self.output else OVERLOAD:.6E}" for e in elements)
