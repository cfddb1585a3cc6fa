"""Watlow F4T controllers (TestEquity 107/115, ESPEC ES-102 and other chambers) over SCPI on TCP.

Commands follow docs/instruments.md §2.3 (sourced from the Tektronix DAQ6510
F4T script, C8, and DAsh0244/te107_control, C9): LF termination, port 5025, ``*IDN?``
starting ``Watlow Electric``; loop 1 ``:SOURCE:CLOOP1:SPOINT``/``PVALUE?``, ramping with
``RACTION``/``RSCALE``/``RRATE``, ``:UNIT:TEMPERATURE`` and ``:OUTPUT1:STATE``.
``:SOURCE:CLOOP1:ERROR?`` (input error) and the ``?`` forms of ``RRATE`` and ``OUTPUT1:STATE``
are from te107_control's ``ref/scpi_commands.csv`` (C9), which keeps TestEquity's list of the
F4T's SCPI commands.  That list has no error queue (``SYST:ERR?``), so the driver reads back
what it set instead, and switches the output off if any call of a set or ramp fails.
Firmware before 04.05.0007 has no ``:UNIT`` command and works in °F: the driver refuses it.

Event output 1 switches the chamber's conditioning (heat and cool) on TestEquity chambers;
that wiring is the chamber maker's and is unverified for others.  The F4T's own limit
parameters have no SCPI command in TestEquity's list, so :meth:`WatlowF4T.configure_limits`
programs none: the chamber's independent limit controller is set at its panel.
"""

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pymeasure.instruments import Instrument
from pymeasure.instruments.generic_types import SCPIMixin
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from ._chamber import MIN_RAMP_RATE, LimitedSetpoint, check_limits, check_ramp
from ._connection import InstrumentError, ManagedConnection
from .commands import Command
from .roles import ChamberLimits, Identity

#: A 200 °C chamber ramping at 5 K/min; pass the chamber's datasheet values as ``rating``.
RATING = ChamberLimits(min_temperature=-40.0, max_temperature=200.0, max_ramp_rate=5.0)
#: The first firmware with ``:UNIT:TEMPERATURE`` (older firmware works in °F only).
UNIT_FIRMWARE = (4, 5, 7)

_TE = "TestEquity's F4T SCPI list, kept in DAsh0244/te107_control ref/scpi_commands.csv"
COMMANDS = (
    Command("*IDN?", "verified", _TE),
    Command(":UNIT:TEMPERATURE C, :UNIT:TEMPERATURE?", "verified", _TE + "; firmware ≥ 04.05.0007 only"),
    Command(":SOURCE:CLOOP1:RACTION OFF|SETPOINT", "verified", _TE),
    Command(":SOURCE:CLOOP1:RSCALE MINUTES", "verified", _TE),
    Command(":SOURCE:CLOOP1:RRATE <K/min>, :SOURCE:CLOOP1:RRATE?", "verified", _TE),
    Command(":SOURCE:CLOOP1:SPOINT <°C>, :SOURCE:CLOOP1:SPOINT?", "verified", _TE + "; tektronix/keithley F4T TSP"),
    Command(":SOURCE:CLOOP1:PVALUE?", "verified", _TE),
    Command(":SOURCE:CLOOP1:ERROR?", "verified", _TE),
    Command(
        ":OUTPUT1:STATE ON|OFF, :OUTPUT1:STATE?", "verified", _TE + "; output 1 = conditioning is TestEquity's wiring"
    ),
)


class WatlowF4T(LimitedSetpoint, ManagedConnection, SCPIMixin, Instrument):
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

    # -- the Chamber role ---------------------------------------------------------------------

    def identify(self) -> Identity:
        """Get who the controller says it is (``*IDN?``)."""
        return Identity.from_idn(self.id)

    def configure_limits(self, limits: ChamberLimits) -> None:
        """Check the run's limits against the rating and the firmware; switch the interface to °C and read it back."""
        check_limits(limits, self.rating)
        firmware = self.identify().firmware
        version = re.search(r"(\d+)\.(\d+)\.(\d+)", firmware)
        if version and tuple(int(n) for n in version.groups()) < UNIT_FIRMWARE:
            raise InstrumentError(
                f"{self.describe()}: firmware {firmware} predates 04.05.0007: it has no :UNIT command and "
                "works in °F; update the controller"
            )
        self.temperature_unit = "C"
        self._confirm("the temperature unit", self.temperature_unit, "C")
        self.limits = limits

    def set_temperature(self, celsius: float) -> None:
        """Step the set point to ``celsius`` (ramping off), read it back and switch the conditioning on."""
        strict_range(celsius, (self.limits.min_temperature, self.limits.max_temperature))
        with self._off_on_failure():
            self.ramp_action = "OFF"
            self.setpoint = celsius
            self._confirm("the set point", self.setpoint, celsius)
            self._switch_on()

    def ramp_temperature(self, celsius: float, rate_k_per_min: float) -> None:
        """Ramp from the present air temperature to ``celsius`` at ``rate_k_per_min`` (docs/instruments.md §2.3).

        The rate is read back; the target is not (the active set point moves during the ramp).
        """
        check_ramp(celsius, rate_k_per_min, self.limits)
        with self._off_on_failure():
            self.ramp_action = "SETPOINT"
            self.ramp_scale = "MINUTES"
            self.ramp_rate = rate_k_per_min
            self._confirm("the ramp rate", self.ramp_rate, rate_k_per_min)
            self.setpoint = celsius
            self._switch_on()

    def _switch_on(self) -> None:
        self.output_enabled = True
        self._confirm("event output 1", self.output_enabled, True)

    def _confirm(self, what: str, read_back: Any, wanted: Any) -> None:
        """Raise unless ``read_back`` is what was set (the F4T has no error queue to ask)."""
        numeric = isinstance(wanted, int | float) and not isinstance(wanted, bool)
        same = math.isclose(read_back, wanted, abs_tol=0.05) if numeric else read_back == wanted
        if not same:
            raise InstrumentError(f"{self.describe()}: {what} read back as {read_back!r}, not {wanted!r}")

    @contextmanager
    def _off_on_failure(self) -> Iterator[None]:
        """Switch the conditioning off if anything in the block fails, then re-raise."""
        try:
            yield
        except Exception as exc:
            try:
                self.safe_state()
            except Exception as off:
                raise InstrumentError(f"{exc}; and switching event output 1 off failed too: {off}") from exc
            raise

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
