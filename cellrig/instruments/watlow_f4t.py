"""Watlow F4T controllers (TestEquity 107/115, ESPEC ES-102 and other chambers) over SCPI on TCP.

Commands follow the instruments reference §2.3 (sourced there from the Tektronix DAQ6510
F4T script, C8, and DAsh0244/te107_control, C9): LF termination, port 5025, ``*IDN?``
starting ``Watlow Electric``; loop 1 ``:SOURCE:CLOOP1:SPOINT``/``PVALUE?``, ramping with
``RACTION``/``RSCALE``/``RRATE``, ``:UNIT:TEMPERATURE`` and ``:OUTPUT1:STATE``.
``:SOURCE:CLOOP1:ERROR?`` (input error) and the ``?`` forms of ``RRATE`` and ``OUTPUT1:STATE``
are from te107_control's ``ref/scpi_commands.csv`` (C9).

Event output 1 switches the chamber's conditioning (heat and cool) on TestEquity chambers;
that wiring is the chamber maker's and is unverified for others.  The F4T's own limit
parameters have no SCPI command in the reference, so :meth:`WatlowF4T.configure_limits`
programs none: the chamber's independent limit controller is set at its panel.
"""

from typing import Any

from pymeasure.instruments import Instrument
from pymeasure.instruments.generic_types import SCPIMixin
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from ._connection import InstrumentError, ManagedConnection
from .espec import MIN_RAMP_RATE, check_limits, check_ramp
from .roles import ChamberLimits, Identity

#: A 200 °C chamber ramping at 5 K/min; pass the chamber's datasheet values as ``rating``.
RATING = ChamberLimits(min_temperature=-40.0, max_temperature=200.0, max_ramp_rate=5.0)


class WatlowF4T(ManagedConnection, SCPIMixin, Instrument):
    """A chamber run by a Watlow F4T (temperature loop 1).

    >>> chamber = WatlowF4T("TCPIP0::192.168.1.30::5025::SOCKET", visa_library="@py")
    >>> chamber.ramp_temperature(130.0, 5.0)  # RACTION SETPOINT, RSCALE MINUTES, RRATE 5, SPOINT 130
    """

    model = "Watlow F4T"

    def __init__(
        self, adapter: Any, name: str = "Watlow F4T", *, rating: ChamberLimits = RATING, **kwargs: Any
    ) -> None:
        kwargs.setdefault("read_termination", "\n")
        kwargs.setdefault("write_termination", "\n")
        super().__init__(adapter, name, **kwargs)
        self.rating = rating
        self.limits = rating

    @property
    def limits(self) -> ChamberLimits:
        """Get the limits set points and ramps are checked against (the rating until configured)."""
        return self._limits

    @limits.setter
    def limits(self, limits: ChamberLimits) -> None:
        self._limits = limits
        self.setpoint_values = (limits.min_temperature, limits.max_temperature)
        self.ramp_rate_values = (MIN_RAMP_RATE, limits.max_ramp_rate)

    # -- the command set ----------------------------------------------------------------------

    setpoint = Instrument.control(
        ":SOURCE:CLOOP1:SPOINT?",
        ":SOURCE:CLOOP1:SPOINT %g",
        """Control the loop-1 set point (°C); reads the active set point, which moves during a ramp.""",
        validator=strict_range,
        values=(RATING.min_temperature, RATING.max_temperature),
        dynamic=True,
    )

    temperature = Instrument.measurement(
        ":SOURCE:CLOOP1:PVALUE?", """Measure the loop-1 process value: the air temperature (°C)."""
    )

    ramp_action = Instrument.setting(
        ":SOURCE:CLOOP1:RACTION %s",
        """Set when loop 1 ramps: SETPOINT (on every set point change) or OFF (it steps).""",
        validator=strict_discrete_set,
        values=("SETPOINT", "OFF"),
    )

    ramp_scale = Instrument.setting(
        ":SOURCE:CLOOP1:RSCALE %s",
        """Set the time unit of the ramp rate: MINUTES or HOURS.""",
        validator=strict_discrete_set,
        values=("MINUTES", "HOURS"),
    )

    ramp_rate = Instrument.control(
        ":SOURCE:CLOOP1:RRATE?",
        ":SOURCE:CLOOP1:RRATE %g",
        """Control the loop-1 ramp rate (°C per ramp_scale unit; the limits assume MINUTES).""",
        validator=strict_range,
        values=(MIN_RAMP_RATE, RATING.max_ramp_rate),
        dynamic=True,
    )

    temperature_unit = Instrument.control(
        ":UNIT:TEMPERATURE?",
        ":UNIT:TEMPERATURE %s",
        """Control the temperature unit of the communication interface: C or F.""",
        validator=strict_discrete_set,
        values=("C", "F"),
        cast=str,
    )

    output_enabled = Instrument.control(
        ":OUTPUT1:STATE?",
        ":OUTPUT1:STATE %s",
        """Control event output 1: the chamber's conditioning on TestEquity chambers (bool).""",
        validator=strict_discrete_set,
        values={True: "ON", False: "OFF"},
        map_values=True,
        cast=str,
    )

    input_error = Instrument.measurement(
        ":SOURCE:CLOOP1:ERROR?",
        """Get whether loop 1's sensor input reports an error (bool).""",
        values={True: "ERROR", False: "NONE"},
        map_values=True,
        cast=str,
    )

    next_error = Instrument.measurement(
        "SYST:ERR?",
        """Get the next entry of the error queue: (code, message).""",
        cast=str,
        maxsplit=1,
        get_process_list=lambda v: (int(v[0]), v[1].strip().strip('"')),
    )

    # -- the Chamber role ---------------------------------------------------------------------

    def identify(self) -> Identity:
        """Get who the controller says it is (``*IDN?``)."""
        return Identity.from_idn(self.id)

    def configure_limits(self, limits: ChamberLimits) -> None:
        """Check the run's limits against the rating; switch the interface to °C and read it back."""
        check_limits(limits, self.rating)
        self.temperature_unit = "C"
        if self.temperature_unit != "C":
            raise InstrumentError(f"{self.describe()}: the temperature unit did not switch to C")
        self.raise_errors()
        self.limits = limits

    def set_temperature(self, celsius: float) -> None:
        """Step the set point to ``celsius`` (ramping off) and switch the conditioning on."""
        strict_range(celsius, (self.limits.min_temperature, self.limits.max_temperature))
        self.ramp_action = "OFF"
        self._go(celsius)

    def ramp_temperature(self, celsius: float, rate_k_per_min: float) -> None:
        """Ramp from the present air temperature to ``celsius`` at ``rate_k_per_min`` (reference §2.3)."""
        check_ramp(celsius, rate_k_per_min, self.limits)
        self.ramp_action = "SETPOINT"
        self.ramp_scale = "MINUTES"
        self.ramp_rate = rate_k_per_min
        self._go(celsius)

    def _go(self, celsius: float) -> None:
        self.setpoint = celsius
        self.output_enabled = True
        self.raise_errors()

    def read_temperature(self) -> float:
        """Measure the air temperature (°C)."""
        return self.temperature

    def read_setpoint(self) -> float:
        """Get the active set point (°C)."""
        return self.setpoint

    def alarms(self) -> list[str]:
        """Get the active alarms: a loop-1 sensor input error (the limit controller is not on SCPI)."""
        return ["loop 1 input error"] if self.input_error else []

    def safe_state(self) -> None:
        """Stop heating and cooling: event output 1 off (``:OUTPUT1:STATE OFF``).

        The controller stays up, so air temperature stays readable while a hot cell cools.
        """
        self.output_enabled = False
