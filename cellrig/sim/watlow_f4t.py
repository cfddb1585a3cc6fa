"""A simulated Watlow F4T chamber controller over SCPI on TCP (docs/instruments.md §2.3).

LF both ways; long and short SCPI forms (``:SOURCE:CLOOP1:SPOINT`` = ``SOUR:CLOOP1:SPOINT``).
Commands: ``*IDN?`` (``Watlow Electric,…``), ``:SOURce:CLOOP1:SPOINT <v>``/``?`` (the active set
point, which moves during a ramp), ``:SOURce:CLOOP1:PVALUE?``, ``:SOURce:CLOOP1:ERROR?``
(sensor input error), ramping ``RACTION OFF|STARTUP|SETPOINT|BOTH``, ``RSCALE MINUTES|HOURS``,
``RRATE <v>``/``?``, ``:UNIT:TEMPerature C|F``/``?`` (values on the interface follow it),
``:OUTPut1:STATe ON|OFF``/``?`` (event output 1, wired to the chamber's conditioning as on
TestEquity chambers).  Like the real F4T (TestEquity's command list) it has no ``SYST:ERR?``:
a refused command (a set point outside the rating, a malformed argument, an unknown header)
changes nothing and answers nothing; the simulator keeps the SCPI error in ``errors`` for tests.
``firmware`` before 04.05.0007 has no ``:UNIT`` command and works in °F.
"""

from pymeasure.instruments.validators import strict_discrete_set

from ..clock import Clock
from ._scpi import Reply, SCPIError, SimInstrument, command
from .chamber_air import ChamberAir, ChamberRating, air_for


class F4T(SimInstrument):
    """The virtual F4T: loop 1 and event output 1 over a :class:`ChamberAir`."""

    rating = ChamberRating()

    def __init__(self, clock: Clock, air: ChamberAir | None = None, firmware: str = "04.05.0007") -> None:
        super().__init__()
        self.idn = f"Watlow Electric,F4T,0000001,{firmware}"
        self.has_unit = tuple(int(n) for n in firmware.split(".")) >= (4, 5, 7)
        self.air = air_for(clock, air, self.rating)
        self.input_error = False  # a broken sensor: set it to see the alarm
        self.reset()

    def reset(self) -> None:
        self.unit = "C" if self.has_unit else "F"
        self.ramp_action = "OFF"
        self.ramp_scale = "MINUTES"
        self.ramp_rate = 1.0  # unit per ramp_scale
        self.output = False
        self.air.stop()

    def quiet(self) -> bool:
        """True while the controller is not driving the air."""
        return not self.air.running

    def _dispatch(self, cmd: str) -> Reply:
        self.air.advance()
        return super()._dispatch(cmd)

    # -- units on the interface ------------------------------------------------------------

    def _to_celsius(self, value: float) -> float:
        return (value - 32) / 1.8 if self.unit == "F" else value

    def _from_celsius(self, celsius: float) -> float:
        return celsius * 1.8 + 32 if self.unit == "F" else celsius

    def _rate_k_per_min(self) -> float:
        return self.ramp_rate / (1.8 if self.unit == "F" else 1) / (60 if self.ramp_scale == "HOURS" else 1)

    # -- commands --------------------------------------------------------------------------

    @command("SOURce:CLOOP1:SPOINT")
    def _setpoint(self, args: str) -> Reply:
        celsius = self._to_celsius(float(args))
        if not self.air.covers(celsius):
            raise SCPIError(-222, "Data out of range")
        if self.ramp_action in ("SETPOINT", "BOTH"):
            self.air.ramp(celsius, self._rate_k_per_min())
        else:
            self.air.set_setpoint(celsius)
        return None

    @command("SOURce:CLOOP1:SPOINT?")
    def _setpoint_query(self, args: str) -> Reply:
        return f"{self._from_celsius(self.air.working_setpoint):.1f}"

    @command("SOURce:CLOOP1:PVALUE?")
    def _process_value(self, args: str) -> Reply:
        return f"{self._from_celsius(self.air.temperature):.1f}"

    @command("SOURce:CLOOP1:ERROR?")
    def _input_error(self, args: str) -> Reply:
        return "ERROR" if self.input_error else "NONE"

    @command("SOURce:CLOOP1:RACTION")
    def _ramp_action(self, args: str) -> Reply:
        self.ramp_action = strict_discrete_set(args.upper(), ("OFF", "STARTUP", "SETPOINT", "BOTH"))
        return None

    @command("SOURce:CLOOP1:RSCALE")
    def _ramp_scale(self, args: str) -> Reply:
        self.ramp_scale = strict_discrete_set(args.upper(), ("MINUTES", "HOURS"))
        return None

    @command("SOURce:CLOOP1:RRATE")
    def _ramp_rate(self, args: str) -> Reply:
        rate = float(args)
        if rate <= 0:
            raise SCPIError(-222, "Data out of range")
        self.ramp_rate = rate
        return None

    @command("SOURce:CLOOP1:RRATE?")
    def _ramp_rate_query(self, args: str) -> Reply:
        return f"{self.ramp_rate:g}"

    @command("UNIT:TEMPerature")
    def _unit(self, args: str) -> Reply:
        self._check_unit()
        self.unit = strict_discrete_set(args.upper(), ("C", "F"))
        return None

    @command("UNIT:TEMPerature?")
    def _unit_query(self, args: str) -> Reply:
        self._check_unit()
        return self.unit

    def _check_unit(self) -> None:
        if not self.has_unit:
            raise SCPIError(-113, "Undefined header")

    def _next_error(self, args: str) -> Reply:
        """Not in the F4T's command set: no answer (the query times out, as on a real F4T)."""
        raise SCPIError(-113, "Undefined header")

    @command("OUTPut[1]:STATe")
    def _output(self, args: str) -> Reply:
        self.output = strict_discrete_set(args.upper(), ("ON", "OFF")) == "ON"
        if self.output:
            self.air.start()
        else:
            self.air.stop()
        return None

    @command("OUTPut[1]:STATe?")
    def _output_query(self, args: str) -> Reply:
        return "ON" if self.output else "OFF"
