"""A simulated ESPEC chamber speaking ESPEC's ASCII protocol (docs/instruments.md §2.1).

By default a battery-safety oven rated −40…200 °C (``TYPE?`` answers ``T,S2,200.0``).  CR LF
both ways; a setting command answers ``OK: <cmd>``, a refused one ``NA:<message>``: ``CMD ERR``
for an unknown command, ``PARA ERR`` for a malformed argument, ``DATA OUT OF RANGE`` for a
temperature outside the rating.  Commands: ``TYPE?``, ``ROM?``, ``MON?``, ``TEMP?``,
``TEMP, S<sp> [H<hi> L<lo>]``, ``MODE?``, ``MODE, CONSTANT|STANDBY|OFF``, ``POWER, ON|OFF``,
``ALARM?`` and the one-step remote program ``RUN PRGM, TEMP<t0> GOTEMP<t1> TIME<h>:<mm>``
(the set point ramps from t0 to t1 over the time, then holds).

Departures, stated once: air outside the H/L alarm limits stops the chamber (mode STANDBY)
with an alarm, which a new start clears; ``ALARM?`` uses ESPEC's codes (6 over-heating for the
cutout, 2/3 for the absolute limits); the ``ROM?`` text is this simulator's (unverified); the
base class's IEEE 488.2 commands (``*IDN?`` …) answer too.
"""

import re

from pymeasure.instruments.validators import strict_discrete_set

from ..clock import Clock
from ..instruments.espec import ABOVE_LIMIT, BELOW_LIMIT, OVERHEAT
from ._scpi import Reply, SCPIError, SimInstrument, command
from .chamber_air import ChamberAir, ChamberRating, air_for

UNDEFINED_HEADER = -113  # what the base class queues for a command it does not know


def _refused(text: str) -> SCPIError:
    return SCPIError(-222, text, reply=f"NA:{text}")


class Espec(SimInstrument):
    """The virtual ESPEC chamber: its controller's modes and alarm limits over a :class:`ChamberAir`."""

    read_termination = "\r\n"
    write_termination = "\r\n"
    rating = ChamberRating()

    def __init__(self, clock: Clock, air: ChamberAir | None = None) -> None:
        super().__init__()
        self.air = air_for(clock, air, self.rating)
        self.mode = "STANDBY"
        self.constant_setpoint = self.air.setpoint

    def quiet(self) -> bool:
        """True while the controller is not driving the air."""
        return not self.air.running

    def _dispatch(self, cmd: str) -> Reply:
        self.air.advance()
        if self.mode in ("CONSTANT", "RUN") and not self.air.running:
            self.mode = "STANDBY"  # an alarm stopped the chamber
        self.errors.clear()  # every command answers for itself; nothing queues
        head, _, args = cmd.partition(",")
        reply = super()._dispatch(f"{head.strip()} {args.strip()}".strip())
        if reply is None and self.errors:
            return "NA:CMD ERR" if self.errors[-1][0] == UNDEFINED_HEADER else "NA:PARA ERR"
        return f"OK: {cmd}" if reply is None else reply

    def _enter(self, mode: str) -> None:
        """Change the operating mode; a program (RUN) has set up the air's set point already."""
        self.mode = mode
        if mode == "CONSTANT":
            self.air.set_setpoint(self.constant_setpoint)
        if mode in ("CONSTANT", "RUN"):
            self.air.start()
        else:
            self.air.stop()

    def _alarms(self) -> list[int]:
        codes = [OVERHEAT] if self.air.cutout_tripped else []
        if self.air.limit_alarm:
            codes.append(ABOVE_LIMIT if self.air.limit_alarm == "high" else BELOW_LIMIT)
        return codes

    # -- commands --------------------------------------------------------------------------

    @command("TYPE?")
    def _type(self, args: str) -> Reply:
        return f"T,S2,{self.air.rating.max_temperature:.1f}"

    @command("ROM?")
    def _rom(self, args: str) -> Reply:
        return "SIM 1.00"

    @command("MON?")
    def _monitor(self, args: str) -> Reply:
        return f"{self.air.temperature:.1f},,{self.mode},{len(self._alarms())}"

    @command("TEMP?")
    def _temp_query(self, args: str) -> Reply:
        low, high = self.air.alarm_limits
        return f"{self.air.temperature:.1f},{self.air.working_setpoint:.1f},{high:.1f},{low:.1f}"

    @command("TEMP")
    def _temp(self, args: str) -> Reply:
        given = {token[:1].upper(): float(token[1:]) for token in args.split()}
        if not given or not set(given) <= set("SHL"):
            raise ValueError(args)
        low, high = given.get("L", self.air.alarm_limits[0]), given.get("H", self.air.alarm_limits[1])
        setpoint = given.get("S", self.constant_setpoint)
        if not (self.air.covers(setpoint) and self.air.covers(low) and self.air.covers(high) and low < high):
            raise _refused("DATA OUT OF RANGE")
        self.air.alarm_limits = (low, high)
        self.constant_setpoint = setpoint
        if self.mode == "CONSTANT":
            self.air.set_setpoint(setpoint)
        return None

    @command("MODE?")
    def _mode_query(self, args: str) -> Reply:
        return self.mode

    @command("MODE")
    def _mode(self, args: str) -> Reply:
        self._enter(strict_discrete_set(args.upper(), ("CONSTANT", "STANDBY", "OFF")))
        return None

    @command("POWER")
    def _power(self, args: str) -> Reply:
        self._enter("CONSTANT" if strict_discrete_set(args.upper(), ("ON", "OFF")) == "ON" else "OFF")
        return None

    @command("ALARM?")
    def _alarm(self, args: str) -> Reply:
        codes = self._alarms()
        return ",".join(str(n) for n in (len(codes), *codes))

    @command("RUN PRGM")
    def _run_program(self, args: str) -> Reply:
        fields = dict(re.findall(r"(GOTEMP|TEMP|TIME)(\S+)", args.upper()))
        if not {"TEMP", "TIME"} <= fields.keys():
            raise ValueError(args)
        start = float(fields["TEMP"])
        target = float(fields.get("GOTEMP", start))
        hours, minutes = (int(x) for x in fields["TIME"].split(":"))
        duration_min = hours * 60 + minutes
        if duration_min <= 0:
            raise ValueError(args)
        if not (self.air.covers(start) and self.air.covers(target)):
            raise _refused("DATA OUT OF RANGE")
        if target == start:
            self.air.set_setpoint(start)
        else:
            self.air.ramp(target, abs(target - start) / duration_min, start=start)
        self._enter("RUN")
        return None
