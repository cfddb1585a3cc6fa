"""cellrig PRESS-100: a nail-penetration / crush rig (servo press, load cell, displacement, fast voltage).

No vendor is known to publish a command set for battery nail/crush testers (docs/instruments.md §5), so
this driver speaks the small SCPI-style set defined in ``docs/abuse-rig.md``, which a rig
integrator implements on the rig's controller.  The rig runs a press by itself (speed, stop
conditions: depth past contact, force, voltage drop since contact — first reached wins) and
buffers hardware-timed records (10 kHz clock, decimated) that the host drains as binary blocks.

>>> rig = Press100("TCPIP0::192.168.1.30::5025::SOCKET", visa_library="@py")
>>> rig.configure_limits(RigLimits(max_force=20, max_speed=30, max_depth=60))
>>> rig.press(Press("nail", 25.0, PressStop(voltage_drop=0.5)))   # GB/T 31485 nail speed
>>> rig.status(); rig.fetch_samples()
"""

import logging
from typing import Any

import numpy as np
from pymeasure.instruments import Instrument
from pymeasure.instruments.generic_types import SCPIMixin
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from ._connection import InstrumentError, ManagedConnection
from .commands import Command
from .roles import Identity, Press, RigLimits, Samples

log = logging.getLogger(__name__)

_SPEC = "cellrig's own rig spec, not a vendor's: docs/abuse-rig.md §3"
#: What the rig role sends.  PRESS-100 is defined by cellrig for a rig integrator to implement, so the
#: source is that spec, not a published instrument.
COMMANDS = (
    Command("*IDN?, SYST:ERR?", "verified", _SPEC + ", Common"),
    Command("SOUR:LIM:FORC|SPE|TRAV <value>", "verified", _SPEC + ", Hardware limits"),
    Command("PRES:MODE NAIL|CRUSH, PRES:SPE <mm/s>", "verified", _SPEC + ", Press set-up"),
    Command("PRES:STOP:DEPT|FORC|VDR <value|OFF>", "verified", _SPEC + ", Press set-up"),
    Command("ACQ:RATE <Hz>, ACQ:STAR, ACQ:STOP", "verified", _SPEC + ", Acquisition"),
    Command("ACQ:POIN?, ACQ:DATA? <n>", "verified", _SPEC + ", Acquisition; record layout §7"),
    Command("PRES:STAR, HOLD <s>, RETR <mm/s>, STOP, ESTOP", "verified", _SPEC + ", Motion"),
    Command("STAT?", "verified", _SPEC + ", State and readings"),
)

#: What a PRESS-100 can do (docs/instruments.md §5: servo presses cover ≈ 0.1–80 mm/s, which spans
#: GB/T 31485's 25 mm/s nail and SAE J2464's 80 mm/s; 100 kN covers the 13 kN UN 38.3 and 100 kN GB 38031 crush).
MIN_SPEED = 0.1  # mm/s
RATED = RigLimits(max_force=100.0, max_speed=80.0, max_depth=100.0, min_speed=MIN_SPEED)
MIN_FORCE = 0.1  # kN, smallest force limit or force stop
MIN_TRAVEL = 1.0  # mm
FORCE_LIMIT_RANGE = (MIN_FORCE, RATED.max_force)  # kN
SPEED_LIMIT_RANGE = (MIN_SPEED, RATED.max_speed)  # mm/s
TRAVEL_LIMIT_RANGE = (MIN_TRAVEL, RATED.max_depth)  # mm
VOLTAGE_DROP_RANGE = (0.001, 60.0)  # V, the fast voltage channel spans 0–60 V
HOLD_RANGE = (0.0, 86_400.0)  # s
PRETRIGGER_RANGE = (0.0, 1.0)  # s; docs/instruments.md §5 recommends keeping 10–100 ms
SAFE_RETRACT_SPEED = 5.0  # mm/s
MODES = {"nail": "NAIL", "crush": "CRUSH"}
STATES = ("idle", "pressing", "holding", "retracting", "stopped", "estop")
#: ACQuire:RATE: the 10 kHz sample clock divided by a whole number, in whole hertz.
RATES = tuple(r for r in range(1, 10_001) if 10_000 % r == 0)
#: Most records one ACQuire:DATA? returns.
MAX_RECORDS_PER_QUERY = 100_000
#: SCPI's "not a number", the PRESs:CONTact? reply before contact.
SCPI_NAN = 9.91e37
#: One ACQuire:DATA? record, little-endian and packed (20 bytes).
RECORD = np.dtype([("time", "<f8"), ("position", "<f4"), ("force", "<f4"), ("voltage", "<f4")])


def _off_or_range(value: float | None, values: tuple[float, float]) -> float | None:
    """Validate a stop condition: ``None`` (disarmed) or a number within ``values``."""
    return None if value is None else strict_range(value, values)


def _off_or_number(value: float | None) -> str:
    return "OFF" if value is None else f"{value:g}"


def _none_if_off(value: str) -> float | None:
    return None if value == "OFF" else float(value)


def _contact(values: list[float]) -> tuple[float, float] | None:
    position, voltage = values
    return None if position >= SCPI_NAN else (position, voltage)


def setpoint_ranges(limits: RigLimits) -> dict[str, tuple[float, float]]:
    """The ranges of the press set points under hardware ``limits`` (stop depth counts from contact)."""
    return {
        "speed": (MIN_SPEED, limits.max_speed),
        "stop_depth": (0.0, limits.max_depth),
        "stop_force": (MIN_FORCE, limits.max_force),
        "stop_voltage_drop": VOLTAGE_DROP_RANGE,
    }


RATED_RANGES = setpoint_ranges(RATED)


def _stop_condition(command: str, what: str, values: tuple[float, float]) -> property:
    return Instrument.control(
        f"{command}?",
        f"{command} %s",
        f"Control the {what}, or None (disarmed).",
        validator=_off_or_range,
        values=values,
        set_process=_off_or_number,
        cast=str,
        get_process=_none_if_off,
        dynamic=True,
    )


class Press100(ManagedConnection, SCPIMixin, Instrument):
    """cellrig PRESS-100 nail / crush rig (the ``AbuseRig`` role).

    Set points are refused beyond ``limits`` (the hardware limits this driver configured)
    before a byte is sent; what the rig refuses anyway raises :class:`InstrumentError`.
    """

    model = "cellrig PRESS-100"
    #: Records asked for per ACQuire:DATA? query.
    records_per_query = MAX_RECORDS_PER_QUERY

    def __init__(
        self, adapter: Any, name: str = "cellrig PRESS-100", *, limits: RigLimits = RATED, **kwargs: Any
    ) -> None:
        kwargs.setdefault("read_termination", "\n")
        kwargs.setdefault("write_termination", "\n")
        super().__init__(adapter, name, **kwargs)
        self._check_limits(limits)
        self._use_limits(limits)

    # -- settings ------------------------------------------------------------------------

    mode = Instrument.control(
        "PRES:MODE?",
        "PRES:MODE %s",
        """Control the tool fitted: "nail" or "crush".""",
        validator=strict_discrete_set,
        values=MODES,
        map_values=True,
        cast=str,
    )

    speed = Instrument.control(
        "PRES:SPE?",
        "PRES:SPE %g",
        """Control the press speed (mm/s), up to the speed limit.""",
        validator=strict_range,
        values=RATED_RANGES["speed"],
        dynamic=True,
    )

    stop_depth = _stop_condition(
        "PRES:STOP:DEPT", "depth past contact (mm) that ends a press", RATED_RANGES["stop_depth"]
    )
    stop_force = _stop_condition("PRES:STOP:FORC", "force (kN) that ends a press", RATED_RANGES["stop_force"])
    stop_voltage_drop = _stop_condition(
        "PRES:STOP:VDR", "drop below the contact voltage (V) that ends a press", RATED_RANGES["stop_voltage_drop"]
    )

    force_limit = Instrument.control(
        "SOUR:LIM:FORC?",
        "SOUR:LIM:FORC %g",
        """Control the hardware force limit (kN): reaching it halts the ram (error +310).""",
        validator=strict_range,
        values=FORCE_LIMIT_RANGE,
    )

    speed_limit = Instrument.control(
        "SOUR:LIM:SPE?",
        "SOUR:LIM:SPE %g",
        """Control the hardware speed limit (mm/s) for pressing and retracting.""",
        validator=strict_range,
        values=SPEED_LIMIT_RANGE,
    )

    travel_limit = Instrument.control(
        "SOUR:LIM:TRAV?",
        "SOUR:LIM:TRAV %g",
        """Control the hardware travel limit (mm from home): the ram stops there (error +311).""",
        validator=strict_range,
        values=TRAVEL_LIMIT_RANGE,
    )

    acquisition_rate = Instrument.control(
        "ACQ:RATE?",
        "ACQ:RATE %d",
        """Control the record rate (Hz): 10 kHz divided by a whole number.""",
        validator=strict_discrete_set,
        values=RATES,
        cast=int,
    )

    pretrigger = Instrument.control(
        "ACQ:PRET?",
        "ACQ:PRET %g",
        """Control the seconds of records before ACQuire:STARt that an acquisition keeps.""",
        validator=strict_range,
        values=PRETRIGGER_RANGE,
    )

    # -- readings ------------------------------------------------------------------------

    position = Instrument.measurement("MEAS:POS?", """Measure the ram position (mm from home, + towards the anvil).""")
    force = Instrument.measurement("MEAS:FORC?", """Measure the load-cell force (kN, + compressive).""")
    voltage = Instrument.measurement("MEAS:VOLT?", """Measure the cell voltage on the fast channel (V).""")

    interlock_closed = Instrument.measurement(
        "SYST:INT?",
        """Get whether the enclosure interlock is closed (pressing allowed).""",
        values={True: 1, False: 0},
        map_values=True,
        cast=int,
    )

    stop_reason = Instrument.measurement(
        "STOP:REAS?",
        """Get why the last press ended: none, depth, force, vdrop, travel, overforce, interlock, estop or host.""",
        cast=str,
        get_process=str.lower,
    )

    contact = Instrument.measurement(
        "PRES:CONT?",
        """Get the (position mm, voltage V) latched at contact, or None before contact.""",
        get_process_list=_contact,
    )

    points_available = Instrument.measurement("ACQ:POIN?", """Measure how many records wait to be fetched.""", cast=int)

    # -- the role ------------------------------------------------------------------------

    def identify(self) -> Identity:
        """Get who the rig says it is."""
        return Identity.from_idn(self.id)

    def configure_limits(self, limits: RigLimits) -> None:
        """Program the rig's hardware limits; later set points are refused beyond them."""
        self._check_limits(limits)

        def program() -> None:
            self.force_limit = limits.max_force
            self.speed_limit = limits.max_speed
            self.travel_limit = limits.max_depth
            self.raise_errors()

        self.transaction("configure limits", program)
        self._use_limits(limits)

    def press(self, press: Press) -> None:
        """Start buffering records and press until the first stop condition (or a limit) is reached.

        Refused (nothing moves) while the rig reports an error.  Not retried: a motion start
        is not repeated behind the caller's back.
        """
        ranges = setpoint_ranges(self.limits)
        stops = {
            "stop_depth": press.stop.depth,
            "stop_force": press.stop.force,
            "stop_voltage_drop": press.stop.voltage_drop,
        }
        strict_discrete_set(press.mode, MODES)
        strict_range(press.speed, ranges["speed"])
        for name, value in stops.items():
            _off_or_range(value, ranges[name])

        def start() -> None:
            self.raise_errors()
            self.mode = press.mode
            self.speed = press.speed
            for name, value in stops.items():
                setattr(self, name, value)
            self.start_acquisition()
            self.write("PRES:STAR")
            self.raise_errors()

        self.transaction("press", start, retry=False)

    def hold(self, seconds: float) -> None:
        """Hold the ram where it stands for ``seconds`` (status "holding", then "stopped")."""
        strict_range(seconds, HOLD_RANGE)
        self._send(f"HOLD {seconds:g}")

    def retract(self, speed: float) -> None:
        """Retract the ram to home at ``speed`` mm/s (status "retracting", then "idle")."""
        strict_range(speed, setpoint_ranges(self.limits)["speed"])
        self._send(f"RETR {speed:g}")

    def estop(self) -> None:
        """Stop the ram at once and refuse motion until :meth:`reset_estop`; raise unless the rig latched it."""

        def latch() -> None:
            self.write("ESTOP")
            if self.status() != "estop":
                raise InstrumentError(f"{self.describe()}: e-stop did not latch")

        self.transaction("e-stop", latch)

    def reset_estop(self) -> None:
        """Clear a latched e-stop (status "stopped")."""
        self._send("ESTOP:RES")

    def stop(self) -> None:
        """Stop pressing, holding or retracting; the ram stays where it stops."""
        self.write("STOP")

    def status(self) -> str:
        """Get the rig state: idle, pressing, holding, retracting, stopped or estop."""
        return self.transaction("query STAT?", lambda: strict_discrete_set(self.ask("STAT?").strip().lower(), STATES))

    def start_acquisition(self) -> None:
        """Start buffering records, from ``pretrigger`` seconds ago (no effect while buffering)."""
        self.write("ACQ:STAR")

    def stop_acquisition(self) -> None:
        """Stop buffering records; those buffered stay to be fetched."""
        self.write("ACQ:STOP")

    def fetch_samples(self) -> Samples:
        """Fetch the records buffered when called: time (s), position (mm), force (kN), voltage (V)."""
        waiting = self.points_available
        blocks = []
        while waiting > 0:
            n = min(waiting, self.records_per_query)
            block = self._fetch(n)
            if not len(block):
                break
            blocks.append(block)
            waiting -= len(block)
        records = np.concatenate(blocks) if blocks else np.empty(0, RECORD)
        return {name: np.ascontiguousarray(records[name]) for name in RECORD.names}

    def safe_state(self) -> None:
        """Stop, then retract home at a slow speed; e-stop if the rig refuses the retract or does not confirm it.

        A rig slow to answer the error query after the stop still gets the retract: the stop
        alone would leave the ram in the specimen.
        """
        self.stop()
        try:
            self.check_errors()  # faults that led here are logged, not mistaken for a refused retract
        except InstrumentError as err:
            log.warning("%s: error queue unread after the stop (%s); retracting anyway", self.describe(), err)
        try:
            self.retract(min(SAFE_RETRACT_SPEED, self.limits.max_speed))
        except InstrumentError as err:
            log.error("%s: retract refused or unconfirmed (%s); e-stop", self.describe(), err)
            self.estop()

    # -- helpers -------------------------------------------------------------------------

    def _send(self, command: str) -> None:
        def send() -> None:
            self.write(command)
            self.raise_errors()

        self.transaction(command, send)

    def _fetch(self, n: int) -> np.ndarray:
        payload = self.query_block(f"ACQ:DATA? {n}")
        if len(payload) % RECORD.itemsize:
            raise InstrumentError(f"{self.describe()}: ACQ:DATA? block of {len(payload)} bytes is not whole records")
        return np.frombuffer(payload, RECORD)

    @staticmethod
    def _check_limits(limits: RigLimits) -> None:
        strict_range(limits.max_force, FORCE_LIMIT_RANGE)
        strict_range(limits.max_speed, SPEED_LIMIT_RANGE)
        strict_range(limits.max_depth, TRAVEL_LIMIT_RANGE)

    def _use_limits(self, limits: RigLimits) -> None:
        self.limits = limits
        for name, values in setpoint_ranges(limits).items():
            setattr(self, f"{name}_values", values)  # the dynamic validators' ranges
