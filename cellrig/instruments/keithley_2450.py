"""Keithley 2450 / 2460 / 2461 SourceMeter through pymeasure's stock ``Keithley2450``, as a one-channel cycler.

Steps follow the Tektronix ``SMU_Battery_Cycling_Solution`` approach (docs/instruments.md §3.2): the SMU
sources voltage with a current limit; the limit is the CC phase, the voltage the CV phase.
``cc`` holds the step's end voltage (or the limits' rail) with the current limited to the step
current, ``cccv`` and ``cv`` hold the step voltage, and ``rest`` switches the output off with
the High-Z off state, so the relay opens and the cell is not loaded (docs/instruments.md §3.2).  With the
relay open the SMU cannot measure (2450 reference manual, "High-impedance output-off state"):
a rest step yields no samples and ends on ``max_time``.

**Host-polled.**  An SMU runs no step sequence of its own, so each step's end (``until_*``,
``max_time``) is checked here, on one fresh reading, every time :meth:`fetch_samples` or
:meth:`status` is called: a step ends up to one poll late, and the readings are one per poll —
unlike a cycler that runs its own sequence and buffers its readings (BT2200).  The voltage
source bounds the damage of a late end: a CC step overstays as CV at its end voltage.

Through the stock driver: ``id``, ``source_mode``, ``source_voltage_range``,
``source_voltage``, ``measure_current()``, ``enable_source()``, ``disable_source()``,
``voltage_output_off_state``.  Through its ``write`` / ``values``, because the stock driver
lacks them or would be wrong here: ``:SOUR:VOLT:READ:BACK ON``, ``:SOUR:VOLT:ILIM <I>`` (the
stock ``compliance_current`` silently truncates to ±1.05 A, which would clip a 2460's 7 A) and
``:READ? "defbuffer1", SOUR, READ`` (voltage and current of one reading; the stock ``current``
and ``voltage`` read only the sense function), all from docs/instruments.md §3.2.  The stock
``shutdown()`` is not the safe state: it ramps the source to 0 V with the output on, which
would drain the cell at the current limit.
"""

import math
import re
from dataclasses import dataclass

import numpy as np
from pymeasure.instruments.keithley import Keithley2450
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from ..clock import Clock, wall_clock
from ._connection import InstrumentError, ManagedConnection
from ._scan import raise_errors
from .commands import Command
from .roles import CyclerLimits, CyclerStep, Identity, Samples

_MANUAL = "2450 manual 2450-901-01B"
_TEK = "tektronix/keithley smu_battery_cycle_solution.py"
#: What the cycler sends, the stock driver's ("stock") included; the SMU must be in its native SCPI
#: command set (not TSP, not "SCPI 2400" emulation).  Manual pages: the 2450 reference manual, section 6.
COMMANDS = (
    Command("*IDN?", "verified", "IEEE 488.2; " + _TEK),
    Command(
        ":SENS:FUNC 'CURR';:SENS:CURR:NPLC 1.000000;",
        "verified",
        f'stock; {_MANUAL} pp. 6-48, 6-50; {_TEK} (SENS:FUNC "CURR")',
    ),
    Command(":SENS:CURR:RANG:AUTO 1;", "verified", f"stock; {_MANUAL} p. 6-50; {_TEK}"),
    Command(":SOUR:FUNC VOLT", "verified", f"stock; {_MANUAL} p. 6-72; {_TEK}"),
    Command(
        ":SOUR:VOLT:RANG:AUTO 0;:SOUR:VOLT:RANG <V>",
        "verified",
        f"stock; {_MANUAL} pp. 6-74, 6-75; {_TEK}",
    ),
    Command(":SOUR:VOLT:READ:BACK ON", "verified", f"{_MANUAL} p. 6-77; {_TEK}"),
    Command(":SOUR:VOLT:ILIM <A>", "verified", f"{_MANUAL} p. 6-71; {_TEK}"),
    Command(":SOUR:VOLT:LEV <V>", "verified", f"stock; {_MANUAL} p. 6-70; {_TEK} (SOUR:VOLT <V>)"),
    Command(
        "OUTPUT ON|OFF, OUTPUT?",
        "verified",
        f"stock; {_MANUAL} p. 6-34; {_TEK}",
    ),
    Command(
        ":OUTP:VOLT:SMOD HIMP",
        "verified",
        f"stock; {_MANUAL} p. 6-32; tektronix/keithley 2460 Rechargeable_Battery_Measurements_SCPI.py (OUTP:SMOD HIMP)",
    ),
    Command(':READ? "defbuffer1", SOUR, READ', "verified", f"{_MANUAL} p. 6-6; {_TEK}"),
    Command(
        "SYST:ERR?",
        "verified",
        "2461 manual 2461-901-01A p. 6-150 (:SYSTem:ERRor[:NEXT]?); also stock measure_current()",
    ),
)


@dataclass(frozen=True)
class Rating:
    limits: CyclerLimits
    power: float  # W


#: By the model number in ``*IDN?``: docs/instruments.md §3.2 (2450 and 2460 unverified, 2461 sourced).
RATINGS = {
    "2450": Rating(CyclerLimits(min_voltage=-200.0, max_voltage=200.0, max_current=1.05), 20.0),
    "2460": Rating(CyclerLimits(min_voltage=-100.0, max_voltage=100.0, max_current=7.0), 100.0),
    "2461": Rating(CyclerLimits(min_voltage=-100.0, max_voltage=100.0, max_current=7.0), 100.0),
}
#: How close the measured voltage must come to an ``until_voltage_*`` level to end the step: the
#: voltage source holds the cell at the level, and reads it back only within its accuracy.
VOLTAGE_TOLERANCE = 0.005  # V, a margin over the few-mV accuracy of the 20 V range (unverified)
MODES = ("cc", "cv", "cccv", "rest")
READING = ':READ? "defbuffer1", SOUR, READ'


def rating_of(identity: Identity) -> Rating:
    """The rating of the SourceMeter model ``identity`` names (``MODEL 2450`` → the 2450's)."""
    m = re.search(r"24(50|60|61)", identity.model)
    if not m:
        raise ValueError(f"{identity.model!r} is not a Keithley 2450, 2460 or 2461")
    return RATINGS[m.group(0)]


class ManagedKeithley2450(ManagedConnection, Keithley2450):
    """pymeasure's stock ``Keithley2450`` under cellrig's connection policy; no command changed."""

    model = "Keithley 2450"
    strict_numbers = False  # the stock getters read text (source_mode …) through numeric casts

    def __init__(self, adapter, name: str = "Keithley 2450 SourceMeter", **kwargs) -> None:
        kwargs.setdefault("read_termination", "\n")
        kwargs.setdefault("write_termination", "\n")
        super().__init__(adapter, name, **kwargs)


class Keithley2450Cycler:
    """A Keithley 2450/2460/2461 as a :class:`~cellrig.instruments.roles.Cycler`, around a stock ``Keithley2450``.

    ``limits`` default to the rating of the model in ``*IDN?``; every step is checked against
    them and the model's power rating before anything is written.  Sample times come from
    ``clock`` (the lab's), read just before each reading.
    """

    def __init__(self, smu: Keithley2450, limits: CyclerLimits | None = None, *, clock: Clock | None = None) -> None:
        self.smu = smu
        self.clock = clock or wall_clock()
        self.rating = rating_of(self.identify())
        self.limits = self.rating.limits
        self.configure_limits(limits or self.rating.limits)
        self.step: CyclerStep | None = None
        self.step_number = 0
        self.started = 0.0
        self.polled_at = -math.inf
        self.state = "idle"
        self.sourcing = False  # output on as a voltage source, set up by _prepare()
        self.pending: list[tuple[float, float, float, int]] = []  # time, voltage, current, step

    def __repr__(self) -> str:
        return f"<Keithley2450Cycler on {self.smu.adapter}>"

    def identify(self) -> Identity:
        return Identity.from_idn(self.smu.id)

    def configure_limits(self, limits: CyclerLimits) -> None:
        """Set the limits every step is checked against (within the model's rating)."""
        r = self.rating.limits
        if not (
            r.min_voltage <= limits.min_voltage < limits.max_voltage <= r.max_voltage
            and 0 < limits.max_current <= r.max_current
        ):
            raise ValueError(f"{self!r}: limits {limits} exceed the rating {r}")
        self.limits = limits

    # -- steps -----------------------------------------------------------------------------

    def start_step(self, step: CyclerStep) -> None:
        """Check ``step`` against the limits, then program and start it (output off for a rest)."""
        setpoints = self._setpoints(step)
        try:
            if setpoints is None:
                self._output_off()
            else:
                self._source(*setpoints)
            raise_errors(self.smu)
        except Exception:
            self._output_off()
            self.state = "failed"
            raise
        self.step, self.step_number, self.state = step, self.step_number + 1, "running"
        self.started = self.clock.now()

    def _setpoints(self, step: CyclerStep) -> tuple[float, float] | None:
        """(source voltage, current limit) for ``step``, or None for a rest; ValueError if out of bounds."""
        lim = self.limits
        strict_discrete_set(step.mode, MODES)
        if step.max_time <= 0:
            raise ValueError(f"{self!r}: max_time must be positive")
        strict_range(abs(step.current), (0.0, lim.max_current))
        for level in (step.voltage, step.until_voltage_above, step.until_voltage_below):
            if level is not None:
                strict_range(level, (lim.min_voltage, lim.max_voltage))
        if step.mode == "rest":
            return None
        if step.mode == "cc":
            if step.current == 0:
                raise ValueError(f"{self!r}: a cc step needs a current")
            charging = step.current > 0
            end = step.until_voltage_above if charging else step.until_voltage_below
            voltage = end if end is not None else (lim.max_voltage if charging else lim.min_voltage)
        elif step.voltage is None:
            raise ValueError(f"{self!r}: a {step.mode} step needs a voltage")
        else:
            voltage = step.voltage
        current_limit = abs(step.current) or lim.max_current
        if abs(voltage) * current_limit > self.rating.power:
            raise ValueError(f"{self!r}: {voltage} V at {current_limit} A exceeds {self.rating.power} W")
        return voltage, current_limit

    def _source(self, voltage: float, current_limit: float) -> None:
        if not self.sourcing:
            self._prepare()
        self.smu.write(f":SOUR:VOLT:ILIM {current_limit:g}")
        self.smu.source_voltage = voltage
        self.smu.enable_source()
        self.sourcing = True

    def _prepare(self) -> None:
        """Measure current (auto range) and source voltage on a fixed range, reading the voltage back."""
        smu = self.smu
        smu.measure_current()  # first: it reads the error queue but only logs, so later errors reach raise_errors
        smu.source_mode = "voltage"
        smu.source_voltage_range = max(abs(self.limits.min_voltage), abs(self.limits.max_voltage))
        smu.write(":SOUR:VOLT:READ:BACK ON")

    def _output_off(self) -> None:
        """Output off with the relay open (High-Z off state), so the cell is not loaded."""
        try:
            self.smu.voltage_output_off_state = "HIMP"
        finally:
            self.smu.disable_source()
        self.sourcing = False

    # -- polling ---------------------------------------------------------------------------

    def _poll(self) -> None:
        """Take one reading if a sourcing step runs (at most one per clock instant), and end the step if due."""
        now = self.clock.now()
        if self.state != "running" or self.step is None or now == self.polled_at:
            return
        self.polled_at = now
        step = self.step
        if step.mode != "rest":
            voltage, current = self.smu.values(READING)
            self.pending.append((now, voltage, current, self.step_number))
            if _reached(step, voltage, current):
                self._finish("done")
                return
        if now - self.started >= step.max_time:
            self._finish("done")

    def _finish(self, state: str) -> None:
        self._output_off()
        self.state = state

    def fetch_samples(self) -> Samples:
        """Poll, then return the readings since the last call: time (s, lab clock), voltage, current, step."""
        self._poll()
        rows = np.array(self.pending, dtype=np.float64).reshape(-1, 4)
        self.pending = []
        return {"time": rows[:, 0], "voltage": rows[:, 1], "current": rows[:, 2], "step": rows[:, 3].astype(np.int32)}

    def status(self) -> str:
        """Poll, then report: idle, running, done, failed or aborted."""
        self._poll()
        return self.state

    def stop(self) -> None:
        """End the step now: output off, High-Z, confirmed by reading the output state back."""
        self._output_off()
        if self.state == "running":
            self.state = "aborted"
        if self.smu.source_enabled:
            raise InstrumentError(f"{self!r}: the output is still on after OUTPUT OFF")

    def safe_state(self) -> None:
        """Output off with the relay open (High-Z): the cell is disconnected."""
        self.stop()


def _reached(step: CyclerStep, voltage: float, current: float) -> bool:
    """Whether a reading meets one of the step's ``until_*`` conditions."""
    return (
        (step.until_voltage_above is not None and voltage >= step.until_voltage_above - VOLTAGE_TOLERANCE)
        or (step.until_voltage_below is not None and voltage <= step.until_voltage_below + VOLTAGE_TOLERANCE)
        or (step.until_current_below is not None and abs(current) < step.until_current_below)
    )
