"""Thermotron 3800 chambers through pymeasure's stock driver, wrapped to the Chamber role.

The stock :class:`pymeasure.instruments.thermotron.Thermotron3800` is used as it is (docs/instruments.md
§2.2 and §7): ``IDEN?`` (asked directly: the stock ``id`` casts the reply to float), ``PVAR1?``,
``SETP1?``/``SETP1,<v>`` (a new set point takes effect on ``RUNM``), ``STOP``, ``MODE?`` bit
codes, and a 1 s pause after every command it writes, queries included.  Its set point
validator is [−55, 150] °C, so a wrapped 3800 cannot be asked for more than 150 °C.  The stock
driver sets no terminators; this wrapper passes CR both ways (the 3800's RS-232/485 framing,
docs/instruments.md §6.1) unless told otherwise (LF for an 8200 over telnet).

``ALRM1?`` and its bits are sourced for the 8800 (C6) and unverified for the 3800.  The stock
driver has no alarm-limit or ramp command: :meth:`Thermotron3800Chamber.configure_limits`
programs nothing on the instrument, and a ramp runs only at the chamber's own rate.
"""

import math
from typing import Any

from pymeasure.instruments.thermotron import Thermotron3800
from pymeasure.instruments.validators import strict_range

from ._chamber import check_limits, check_ramp
from ._connection import ManagedConnection
from .commands import Command
from .roles import ChamberLimits, Identity

_STOCK = "pymeasure thermotron3800.py (stock)"
#: A public C# 8800 TCP driver (namespace RemoteTempChamber, repository not identified) uses the same
#: mnemonics; Thermotron's own 8800 list is C6 of docs/instruments.md §10.
_8800 = "also a public C# 8800 driver"
COMMANDS = (
    Command("IDEN?", "verified", f"{_STOCK} id; {_8800}"),
    Command("SETP1,<°C>, SETP1?", "verified", f"{_STOCK} setpoint"),
    Command(
        "RUNM",
        "verified",
        f"{_STOCK} run(); {_8800}, which reads an acknowledge 0 after it (the stock driver reads none)",
    ),
    Command("PVAR1?", "verified", f"{_STOCK} temperature"),
    Command("STOP", "verified", f"{_STOCK} stop(); {_8800} (acknowledge 0, as RUNM)"),
    Command(
        "ALRM1?",
        "unverified",
        "an 8800 command (bits 0, 1 deviation and 4, 5 process alarms: Thermotron's 8800 command list, "
        "the C# 8800 driver); in no 3800 source and no 3800 alternative published: "
        "a 3800 without it times out in alarms()",
    ),
)
STOCK_SETPOINT_RANGE = (-55.0, 150.0)  # °C, Thermotron3800.setpoint's strict_range
#: ``ALRM1?`` bits (8800 command list, C6).
LOW_PROCESS, HIGH_PROCESS = 4, 5
ALARM_BITS = {0: "low deviation", 1: "high deviation", LOW_PROCESS: "low process", HIGH_PROCESS: "high process"}


class _StockDriver:
    """Opens the stock driver with the VISA arguments :class:`ManagedConnection` passes on."""

    def __init__(self, adapter: Any, name: str, **kwargs: Any) -> None:
        self.name = name
        self.oven = Thermotron3800(adapter, name, **kwargs)

    @property
    def adapter(self) -> Any:
        return self.oven.adapter


class Thermotron3800Chamber(ManagedConnection, _StockDriver):
    """The Chamber role around an unmodified stock ``Thermotron3800`` (``.oven``).

    Every exchange goes through the connection policy (lock, timeout, retries, errors naming
    the instrument): use the stock driver inside :meth:`transaction`, as the role methods do.
    Each stock command costs a second, so a set point takes two.

    >>> chamber = Thermotron3800Chamber("ASRL1::INSTR", visa_library="@py")
    >>> chamber.set_temperature(130.0)  # SETP1,130 then RUNM
    """

    model = "Thermotron 3800"

    def __init__(
        self, adapter: Any, name: str = "Thermotron 3800", *, max_ramp_rate: float = 5.0, **kwargs: Any
    ) -> None:
        kwargs.setdefault("read_termination", "\r")
        kwargs.setdefault("write_termination", "\r")
        super().__init__(adapter, name, **kwargs)
        self.rating = ChamberLimits(*STOCK_SETPOINT_RANGE, max_ramp_rate)
        self.limits = self.rating

    def identify(self) -> Identity:
        """Get who the controller says it is (``IDEN?``)."""
        return Identity("Thermotron", self.transaction("query 'IDEN?'", lambda: self.oven.ask("IDEN?").strip()))

    def configure_limits(self, limits: ChamberLimits) -> None:
        """Check the run's limits against the rating (the stock driver programs none)."""
        check_limits(limits, self.rating)
        self.limits = limits

    def set_temperature(self, celsius: float) -> None:
        """Set the set point and run manual mode: ``SETP1,<v>`` then ``RUNM``."""
        strict_range(celsius, (self.limits.min_temperature, self.limits.max_temperature))
        self.transaction(f"set point {celsius:g} °C", lambda: self._run_to(celsius))

    def _run_to(self, celsius: float) -> None:
        self.oven.setpoint = celsius
        self.oven.run()

    def ramp_temperature(self, celsius: float, rate_k_per_min: float) -> None:
        """Go to ``celsius`` in manual mode, which ramps at the chamber's rated rate only.

        Any other rate raises ValueError: a slower ramp needs a 3800 program, which the stock
        driver cannot write.
        """
        check_ramp(celsius, rate_k_per_min, self.limits)
        if not math.isclose(rate_k_per_min, self.rating.max_ramp_rate):
            raise ValueError(
                f"{self.model} ramps only at its rated {self.rating.max_ramp_rate:g} K/min, not {rate_k_per_min:g}"
            )
        self.set_temperature(celsius)

    def read_temperature(self) -> float:
        """Measure the chamber temperature (°C, ``PVAR1?``)."""
        return self.transaction("query 'PVAR1?'", lambda: float(self.oven.temperature))

    def read_setpoint(self) -> float:
        """Get the set point (°C, ``SETP1?``)."""
        return self.transaction("query 'SETP1?'", lambda: float(self.oven.setpoint))

    def alarms(self) -> list[str]:
        """Get the active alarms from the ``ALRM1?`` bits."""
        bits = self.transaction("query 'ALRM1?'", lambda: int(self.oven.ask("ALRM1?")))
        return [name for bit, name in ALARM_BITS.items() if bits >> bit & 1]

    def safe_state(self) -> None:
        """Stop heating and cooling: ``STOP`` (the controller keeps reading the chamber)."""
        self.transaction("STOP", self.oven.stop)
