"""ESPEC chambers and ovens over ESPEC's ASCII protocol (P-300, SCP-220, SH/SU; SPH safety ovens).

Commands, replies and error strings follow docs/instruments.md §2.1 (sourced from
EspecNorthAmerica/ChamberConnectLibrary, C1): CR LF both ways; a setting command
answers ``OK: <cmd>`` and a refused command ``NA:<message>`` (``CMD ERR``, ``PARA ERR``,
``DATA OUT OF RANGE``, ``PROTECT ON`` …), raised here as :class:`InstrumentError` naming the
instrument.  Since every command answers, :meth:`EspecChamber.write` reads and checks the
acknowledgement.

The rated maximum temperature is the last field of ``TYPE?``, read when the driver opens
(200.0 on a battery-safety oven); the minimum and the ramp rating come from the datasheet.
The ``ALARM?`` codes of :data:`ALARMS` are ESPEC's own (ChamberConnectLibrary's controller
interface); a code outside them is reported by number.  Unverified: the ``TIME<h>:<mm>`` zero
padding and the ``ROM?`` reply format.
"""

import math
from typing import Any

from pymeasure.instruments import Instrument
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from ._chamber import LimitedSetpoint, check_limits, check_ramp
from ._connection import InstrumentError, ManagedConnection
from .commands import Command
from .roles import ChamberLimits, Identity

_CCL = "EspecNorthAmerica/ChamberConnectLibrary (p300.py, especinteract.py)"
COMMANDS = (
    Command("TYPE?", "verified", _CCL + "; akaeba/ATWG (SH-641)"),
    Command("ROM?", "verified", _CCL + "; reply format unverified"),
    Command("TEMP?", "verified", _CCL),
    Command("TEMP, S<sp> H<max> L<min>", "verified", _CCL),
    Command("MODE, CONSTANT|STANDBY|OFF, MODE?", "verified", _CCL),
    Command("POWER, ON|OFF", "verified", _CCL),
    Command("MON?", "verified", _CCL + "; ESPEC EHS manual"),
    Command(
        "RUN PRGM, TEMP<t0> GOTEMP<t1> TIME<h>:<mm>",
        "inferred",
        "docs/instruments.md §2.1; zero padding of <mm> unverified",
    ),
    Command("ALARM?", "verified", "codes from ChamberConnectLibrary controllerinterface"),
)
#: ``ALARM?`` codes as ESPEC's ChamberConnectLibrary lists them.
SENSOR_FAILURE, UPPER_DEVIATION, ABOVE_LIMIT, BELOW_LIMIT, OVERHEAT, DOOR_OPEN = 0, 1, 2, 3, 6, 9
ALARMS = {
    SENSOR_FAILURE: "sensor failure",
    UPPER_DEVIATION: "temperature above the upper deviation",
    ABOVE_LIMIT: "temperature above the absolute upper alarm limit",
    BELOW_LIMIT: "temperature below the absolute lower alarm limit",
    OVERHEAT: "over-heating protector tripped",
    DOOR_OPEN: "door open",
}


class EspecChamber(LimitedSetpoint, ManagedConnection, Instrument):
    """An ESPEC chamber or oven (temperature loop only).

    >>> oven = EspecChamber("TCPIP0::192.168.100.11::57732::SOCKET", visa_library="@py")
    >>> oven.limits.max_temperature  # from TYPE?
    200.0
    >>> oven.ramp_temperature(130.0, 5.0)  # RUN PRGM, TEMP25.0 GOTEMP130.0 TIME0:21
    """

    model = "ESPEC"

    def __init__(
        self,
        adapter: Any,
        name: str = "ESPEC chamber",
        *,
        min_temperature: float = -40.0,
        max_ramp_rate: float = 5.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("read_termination", "\r\n")
        kwargs.setdefault("write_termination", "\r\n")
        super().__init__(adapter, name, includeSCPI=False, **kwargs)
        max_temperature = self.transaction("read TYPE?", lambda: float(self.chamber_type[-1]))
        self.rating = ChamberLimits(min_temperature, max_temperature, max_ramp_rate)
        self.limits = self.rating

    # -- the exchange: every command answers --------------------------------------------------

    def write(self, command: str, **kwargs: Any) -> None:
        """Send a command and check its ``OK:`` acknowledgement."""
        self.transaction(f"write {command!r}", lambda: self._acknowledge(command))

    def ask(self, command: str, query_delay: float | None = None) -> str:
        """Send a query and return its answer."""
        return self.transaction(f"query {command!r}", lambda: self._exchange(command))

    def _acknowledge(self, command: str) -> None:
        reply = self._exchange(command)
        if not reply.startswith("OK:"):
            raise ValueError(f"expected an OK: acknowledgement, got {reply!r}")  # garbled: retried

    def _exchange(self, command: str) -> str:
        self.adapter.write(command)
        reply = self.adapter.read().strip()
        if reply.startswith("NA:"):
            raise InstrumentError(f"{self.describe()}: {command!r} refused: {reply}")
        return reply

    # -- the command set ----------------------------------------------------------------------

    chamber_type = Instrument.measurement(
        "TYPE?",
        """Get the chamber type: sensor(s), controller and maximum temperature (list of str).""",
        cast=str,
    )

    firmware = Instrument.measurement("ROM?", """Get the controller's firmware (ROM) version.""", cast=str, maxsplit=0)

    monitor = Instrument.measurement(
        "MON?",
        """Measure temperature, humidity (empty without humidity control), mode and alarm count (list of str).""",
        cast=str,
    )

    temperature = Instrument.measurement(
        "TEMP?", """Measure the air temperature (°C).""", get_process_list=lambda v: v[0]
    )

    setpoint = Instrument.control(
        "TEMP?",
        "TEMP, S%.1f",
        """Control the constant temperature set point (°C); reads the controller's current set point,
        which moves during a program ramp.""",
        validator=strict_range,
        values=(-40.0, 200.0),
        dynamic=True,
        get_process_list=lambda v: v[1],
    )

    alarm_limits = Instrument.measurement(
        "TEMP?",
        """Get the upper and lower temperature alarm limits (°C, a tuple).""",
        get_process_list=lambda v: (v[2], v[3]),
    )

    mode = Instrument.control(
        "MODE?",
        "MODE, %s",
        """Control the operating mode: CONSTANT, STANDBY or OFF (reads RUN while a program runs).""",
        validator=strict_discrete_set,
        values=("CONSTANT", "STANDBY", "OFF"),
        cast=str,
    )

    power = Instrument.setting(
        "POWER, %s",
        """Set the controller power: True starts constant operation, False switches the controller off.""",
        validator=strict_discrete_set,
        values={True: "ON", False: "OFF"},
        map_values=True,
    )

    alarm_codes = Instrument.measurement(
        "ALARM?",
        """Get the codes of the active alarms (list of int; the reply is the count, then the codes).""",
        cast=int,
        get_process=lambda count: [],  # a lone count is 0: no alarms
        get_process_list=lambda v: v[1:],
    )

    # -- the Chamber role ---------------------------------------------------------------------

    def identify(self) -> Identity:
        """Get who the chamber is: ``TYPE?`` as the model, ``ROM?`` as the firmware."""
        return Identity("ESPEC", ",".join(self.chamber_type), firmware=self.firmware)

    def configure_limits(self, limits: ChamberLimits) -> None:
        """Program the run's limits as the controller's alarm limits (H/L) and read them back.

        Sends ``TEMP, S<sp> H<max> L<min>`` keeping the present set point, which must lie within
        the new limits.  Air outside the alarm limits stops the chamber with an alarm.
        """
        check_limits(limits, self.rating)
        setpoint = self.setpoint
        if not limits.min_temperature <= setpoint <= limits.max_temperature:
            raise ValueError(f"the set point {setpoint} °C lies outside the new limits {limits}")
        high, low = limits.max_temperature, limits.min_temperature
        self.write(f"TEMP, S{setpoint:.1f} H{high:.1f} L{low:.1f}")
        read_back = self.alarm_limits
        if not all(math.isclose(a, b, abs_tol=0.05) for a, b in zip(read_back, (high, low), strict=True)):
            raise InstrumentError(f"{self.describe()}: alarm limits read back as {read_back}, not {(high, low)}")
        self.limits = limits

    def set_temperature(self, celsius: float) -> None:
        """Hold ``celsius`` in constant mode; the chamber gets there at its own rate."""
        self.setpoint = celsius
        self.mode = "CONSTANT"

    def ramp_temperature(self, celsius: float, rate_k_per_min: float) -> None:
        """Ramp from the present air temperature to ``celsius`` with a one-step remote program.

        The program's duration is whole minutes rounded up: the ramp is never faster than asked.
        """
        check_ramp(celsius, rate_k_per_min, self.limits)
        start, target = round(self.temperature, 1), round(celsius, 1)
        hours, minutes = divmod(max(1, math.ceil(abs(target - start) / rate_k_per_min - 1e-9)), 60)
        self.write(f"RUN PRGM, TEMP{start:.1f} GOTEMP{target:.1f} TIME{hours}:{minutes:02d}")

    def read_temperature(self) -> float:
        """Measure the air temperature (°C)."""
        return self.temperature

    def read_setpoint(self) -> float:
        """Get the controller's current set point (°C)."""
        return self.setpoint

    def alarms(self) -> list[str]:
        """Get the active alarms, named where the code is known."""
        return [ALARMS.get(code, f"alarm code {code}") for code in self.alarm_codes]

    def safe_state(self) -> None:
        """Stop heating and cooling: ``MODE, STANDBY``.

        The controller stays on, so air temperature and alarms stay readable while a hot cell
        cools and the air drifts toward room temperature (``MODE, OFF`` would switch it off).
        """
        self.mode = "STANDBY"
