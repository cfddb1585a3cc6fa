"""A simulated Thermotron 3800 controller, answering what pymeasure's stock driver sends.

CR both ways (the 3800's RS-232/485 framing, docs/instruments.md §2.2 and §6.1).  Commands:
``IDEN?``, ``PVAR1?`` (chamber temperature, ``22.000`` style), ``SETP1?``, ``SETP1,<v>`` (stored;
the chamber goes there on ``RUNM``), ``RUNM`` (run manual), ``STOP``, ``INIT``, ``MODE?`` (bit
code: 16 while running manual) and ``ALRM1?`` (bits: 4 low process, 5 high process).  Writes
get no reply, as the stock driver expects.

Unverified, and this simulator's choices: the ``IDEN?`` text, ``MODE?`` = 0 when stopped,
``INIT`` stopping the chamber, a set point outside the rating being ignored (the 3800's reply
to one is not documented), the over-temperature cutout reported as a high process alarm, and
``ALRM1?`` on a 3800 at all (sourced for the 8800).
"""

from pymeasure.instruments.thermotron import thermotron3800 as stock

from ..clock import Clock
from ..instruments.thermotron import HIGH_PROCESS, LOW_PROCESS
from ._scpi import Reply, SimInstrument, command
from .chamber_air import ChamberAir, ChamberRating, air_for

MANUAL_MODE = int(stock.Thermotron3800.Thermotron3800Mode.MANUAL_MODE)


class Thermotron3800(SimInstrument):
    """The virtual 3800: a stored set point and run/stop over a :class:`ChamberAir`."""

    read_termination = "\r"
    write_termination = "\r"
    rating = ChamberRating(min_temperature=-70.0, max_temperature=180.0, cutout_temperature_c=190.0)

    def __init__(self, clock: Clock, air: ChamberAir | None = None) -> None:
        super().__init__()
        self.air = air_for(clock, air, self.rating)
        self.setpoint = self.air.setpoint

    def quiet(self) -> bool:
        """True while the controller is not driving the air."""
        return not self.air.running

    def _dispatch(self, cmd: str) -> Reply:
        self.air.advance()
        return super()._dispatch(cmd.replace(",", " ", 1))  # "SETP1,130": the argument follows a comma

    @command("IDEN?")
    def _identify(self, args: str) -> Reply:
        return "THERMOTRON 3800 SIM"

    @command("PVAR1?")
    def _temperature(self, args: str) -> Reply:
        return f"{self.air.temperature:.3f}"

    @command("SETP1?")
    def _setpoint_query(self, args: str) -> Reply:
        return f"{self.setpoint:.3f}"

    @command("SETP1")
    def _setpoint(self, args: str) -> Reply:
        celsius = float(args)
        if self.air.covers(celsius):
            self.setpoint = celsius
        return None

    @command("RUNM")
    def _run_manual(self, args: str) -> Reply:
        self.air.set_setpoint(self.setpoint)
        self.air.start()
        return None

    @command("STOP")
    def _stop(self, args: str) -> Reply:
        self.air.stop()
        return None

    @command("INIT")
    def _initialize(self, args: str) -> Reply:
        self.air.stop()
        return None

    @command("MODE?")
    def _mode(self, args: str) -> Reply:
        return str(MANUAL_MODE if self.air.running else 0)

    @command("ALRM1?")
    def _alarms(self, args: str) -> Reply:
        high = self.air.cutout_tripped or self.air.limit_alarm == "high"
        low = self.air.limit_alarm == "low"
        return str(high << HIGH_PROCESS | low << LOW_PROCESS)
