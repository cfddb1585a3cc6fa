"""A simulated cellrig PRESS-100 nail / crush rig over the command set of ``docs/abuse-rig.md``.

The ram is velocity-controlled with an acceleration limit; it presses a :class:`Specimen` on
the anvil (force from the ram's travel, an internal short past a nail depth or crush strain,
the cell's terminal voltage).  Like the real rig's controller, everything runs on one 10 kHz
sample clock: while the ram moves, the simulator steps every tick, evaluates the stop
conditions and protections at each, and keeps every n-th sample as a record (the
acquisition rate).  A still ram is stepped from record to record; with no acquisition
running, idle time is skipped in one jump, keeping only the pre-trigger ring's worth.
The simulator advances lazily to the lab clock's present whenever a command arrives, so
what it records depends only on the commands and the clock, never on when the host asks.
"""

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ...clock import Clock
from ..abuse_rig import (
    FORCE_LIMIT_RANGE,
    HOLD_RANGE,
    MAX_RECORDS_PER_QUERY,
    MIN_FORCE,
    MIN_SPEED,
    PRETRIGGER_RANGE,
    RATED,
    RATES,
    RECORD,
    SPEED_LIMIT_RANGE,
    TRAVEL_LIMIT_RANGE,
    VOLTAGE_DROP_RANGE,
)
from ._scpi import InstrumentError, Reply, SimInstrument, command
from .cell import NMC811, Cell

TICK = 1e-4  # s: the 10 kHz sample clock (≥ 10 kHz resolves a short's first ms: standards reference §9)
CONTACT_FORCE = 0.05  # kN: contact is the first sample at or above this
ACCEL = 5000.0  # mm/s²: the servo's acceleration and braking limit
MOVING = ("PRESSING", "RETRACTING")
EMPTY_BLOCK = b"#10"
SHORTED_STEP_S = 0.05  # a shorted cell is stepped at most this finely once its short has formed (slow by then)

#: Device-specific errors (positive codes; see docs/abuse-rig.md).
INTERLOCK_OPEN = (301, "Interlock open")
ESTOP_ACTIVE = (302, "E-stop active")
OVER_FORCE = (310, "Over-force")
TRAVEL_LIMIT = (311, "Travel limit")
BUFFER_OVERRUN = (320, "Acquisition buffer overrun")


class Specimen(Protocol):
    """What sits on the anvil.  ``depth_mm`` is the tool's travel from home (the specimen knows its gap).

    The rig calls, at every step: ``force``, ``short_resistance``, then ``advance`` by the step
    with that short, then ``voltage`` at the rig time ``t`` the step reached (t counts from 0,
    as the rig's does; a specimen may use it to replay a recorded trace).
    """

    def force(self, depth_mm: float, mode: str) -> float:
        """kN the specimen pushes back with (``mode`` "NAIL" or "CRUSH")."""
        ...

    def short_resistance(self, depth_mm: float, mode: str) -> float:
        """Ω of the internal short the tool makes (``mode`` "NAIL" or "CRUSH"), ``math.inf`` if none."""
        ...

    def voltage(self, t: float) -> float:
        """Terminal voltage (V) at rig time ``t``."""
        ...

    def advance(self, dt: float, short_ohm: float) -> None:
        """Let ``dt`` seconds pass with the tool making a short of ``short_ohm``."""
        ...


@dataclass
class PouchCell:
    """A pouch or prismatic cell lying flat on the anvil, its top face ``gap_mm`` below the tool at home.

    Force rises linearly then stiffens (``k·d + k3·d³`` for an intrusion ``d``) up to failure at
    ``failure_strain`` of the thickness, where it drops to ``residual`` of the curve.  A nail
    shorts the cell from ``nail_short_depth_mm`` on, through the chemistry's nail-short
    resistance; a crush shorts it at failure, through ``crush_short_factor`` times that.
    Damage is permanent: the lowest short stays.  The short's contact forms with time constant ``tau_s``, so the
    terminal voltage collapses over a few of them.  The cell (:class:`Cell`) drains through it.
    The mechanical numbers are illustrative (a 10 mm cell under a 100 kN press), not measured.
    """

    cell: Cell = field(default_factory=lambda: Cell(NMC811, 5.0, soc=1.0))
    gap_mm: float = 20.0
    thickness_mm: float = 10.0
    stiffness_kn_mm: float = 5.0
    stiffening_kn_mm3: float = 1.0
    failure_strain: float = 0.14
    residual: float = 0.4
    nail_short_depth_mm: float = 1.0
    nail_force_kn: float = 3.0  # force to drive a nail through the layers (illustrative)
    crush_short_factor: float = 2.0
    tau_s: float = 0.005
    max_cell_step_s: float = 1.0  # the cell is sub-stepped at most this coarsely while shorted
    resting_s: float = 0.0  # rest time not yet applied to the cell
    t: float = field(default=0.0, init=False)
    short_ohm: float = field(default=math.inf, init=False)  # the lowest short made so far
    shorted_at: float | None = field(default=None, init=False)
    _volts: float | None = field(default=None, init=False, repr=False)

    @property
    def through_ohm(self) -> float:
        """Short resistance with a nail fully through."""
        return self.cell.chemistry.nail_short_ohm_ah / self.cell.capacity_ah

    def force(self, depth_mm: float, mode: str = "CRUSH") -> float:
        d = depth_mm - self.gap_mm
        if d <= 0:
            return 0.0
        if mode == "NAIL":  # a nail cuts through: its force rises to the penetration force and stays
            return min(self.stiffness_kn_mm * d, self.nail_force_kn)
        f = self.stiffness_kn_mm * d + self.stiffening_kn_mm3 * d**3
        return f * self.residual if d >= self.failure_strain * self.thickness_mm else f

    def short_resistance(self, depth_mm: float, mode: str) -> float:
        d = depth_mm - self.gap_mm
        if mode == "NAIL":
            return self.through_ohm if d >= self.nail_short_depth_mm else math.inf
        return self.through_ohm * self.crush_short_factor if d >= self.failure_strain * self.thickness_mm else math.inf

    def voltage(self, t: float) -> float:
        if self._volts is None:  # the state advance() reached at t holds the voltage: computed once per cell step
            self._volts = self.cell.voltage(0.0)
        return self._volts

    def advance(self, dt: float, short_ohm: float) -> None:
        self.t += dt
        if short_ohm < self.short_ohm:
            self.short_ohm = short_ohm
            if self.shorted_at is None:
                self.shorted_at = self.t
        self.resting_s += dt
        if self.shorted_at is None:  # intact: rest time is gathered into steps of max_cell_step_s
            if self.resting_s >= self.max_cell_step_s:
                self._step_cell()
            return
        forming = self.t - self.shorted_at < 10 * self.tau_s  # while the contact forms, every sample
        if forming or self.resting_s >= SHORTED_STEP_S:
            formed = -math.expm1(-(self.t - self.shorted_at) / self.tau_s)  # 0 → 1 as the contact forms
            self.cell.short_ohm = self.short_ohm / formed if formed > 0 else math.inf
            self._step_cell()

    def _step_cell(self) -> None:
        n = math.ceil(self.resting_s / self.max_cell_step_s)
        for _ in range(n):
            self.cell.step(0.0, self.resting_s / n)
        self.resting_s, self._volts = 0.0, None


def _number(args: str, lo: float, hi: float) -> float:
    value = float(args)
    if not lo <= value <= hi:  # NaN fails too
        raise InstrumentError(-222, "Data out of range")
    return value


def _optional(args: str, lo: float, hi: float) -> float | None:
    return None if args.strip().upper() == "OFF" else _number(args, lo, hi)


def _off(value: float | None) -> str:
    return "OFF" if value is None else f"{value:g}"


class PressSim(SimInstrument):
    """The virtual PRESS-100: ram, specimen, stop conditions, protections and the buffered DAQ."""

    def __init__(
        self,
        clock: Clock,
        specimen: Specimen | None = None,
        *,
        serial: str = "SIM0001",
        accel: float = ACCEL,
        buffer_records: int = 2_000_000,
    ) -> None:
        super().__init__()
        self.clock = clock
        self.specimen: Specimen = specimen or PouchCell()
        self.idn = f"cellrig,PRESS-100,{serial},1.0"
        self.accel = accel
        self.tick = 0
        self.x = 0.0  # mm from home, + towards the anvil
        self.v = 0.0  # mm/s
        self.force = self.specimen.force(0.0, "CRUSH")
        self.volts = self.specimen.voltage(0.0)
        self.interlock_closed = True
        self.state = "IDLE"
        self.reason = "NONE"
        self.contact: tuple[float, float] | None = None  # (position, voltage) at contact
        self.hold_end = 0
        self.retract_speed = MIN_SPEED
        self.buffer: deque[tuple[float, float, float, float]] = deque(maxlen=buffer_records)
        self.overrun = False
        self.reset()

    def reset(self) -> None:
        """``*RST``: default settings, no acquisition, empty buffer; a moving ram stops, an e-stop stays."""
        if self.state in (*MOVING, "HOLDING"):
            self._halt("HOST")
        self.mode = "NAIL"
        self.speed = 1.0
        self.stop_depth: float | None = None
        self.stop_force: float | None = None
        self.stop_vdrop: float | None = None
        self.force_limit, self.speed_limit, self.travel = RATED.max_force, RATED.max_speed, RATED.max_depth
        self.acquiring = False
        self.ring_stale = False  # the ram stood still while the ring was not kept up to date
        self.rate = 1000
        self.pretrigger = 0.1
        self.ring: deque[tuple[float, float, float, float]] = deque(maxlen=self._ring_size())
        self.buffer.clear()

    def set_interlock(self, closed: bool) -> None:
        """Close or open the enclosure door now (on the lab clock)."""
        with self.lock:
            self.advance()
            self.interlock_closed = closed

    # -- time ------------------------------------------------------------------------------

    @property
    def decimation(self) -> int:
        return 10_000 // self.rate

    def _ring_size(self) -> int:
        return round(self.pretrigger * self.rate)

    def _dispatch(self, cmd: str) -> Reply:
        self.advance()
        return super()._dispatch(cmd)

    def advance(self) -> None:
        """Run the rig forward to the lab clock's present."""
        target = math.floor(self.clock.now() / TICK + 1e-6)
        while self.tick < target:
            self._step(self._ticks_to_step(target))

    def quiet(self) -> bool:
        """True while the ram stands still."""
        return not self.v and self.state not in MOVING

    def _ticks_to_step(self, target: int) -> int:
        """One tick while the ram moves; else up to the next record anyone keeps, hold end or target."""
        if not self.quiet():
            return 1
        n = target - self.tick
        if self.state == "HOLDING":
            n = min(n, self.hold_end - self.tick)
        elif not self.acquiring:  # standing still, nothing kept: jump; ACQ:STAR refills the ring
            self.ring_stale = True
            return max(n, 1)
        next_record = self.tick + self.decimation - self.tick % self.decimation
        keep_from = self.tick if self.acquiring else target - self.ring.maxlen * self.decimation
        n = min(n, next_record - self.tick if next_record > keep_from else keep_from - self.tick)
        return max(n, 1)

    def _step(self, n: int) -> None:
        dt = n * TICK
        if n == 1:
            self._move(dt)
        self.tick += n
        t = self.tick * TICK
        self.force = self.specimen.force(self.x, self.mode)
        self.specimen.advance(dt, self.specimen.short_resistance(self.x, self.mode))
        self.volts = self.specimen.voltage(t)
        if self.state == "PRESSING":
            self._check_press()
        elif self.state == "HOLDING" and self.tick >= self.hold_end:
            self.state = "STOPPED"
        if self.tick % self.decimation == 0:
            self._record((t, self.x, self.force, self.volts))

    def _move(self, dt: float) -> None:
        """Velocity control towards the goal, braking in time to stop on it (or to rest when halting)."""
        goal = {"PRESSING": (self.travel, self.speed), "RETRACTING": (0.0, self.retract_speed)}.get(self.state)
        v_cmd, dist = 0.0, 0.0
        if goal:
            dist = goal[0] - self.x
            v_cmd = math.copysign(min(goal[1], math.sqrt(2 * self.accel * abs(dist))), dist)
        dv = self.accel * dt
        self.v += min(max(v_cmd - self.v, -dv), dv)
        self.x += self.v * dt
        if goal and (goal[0] - self.x) * dist <= 0:  # reached (or passed) the goal
            self.x, self.v = goal[0], 0.0
            self._arrive()

    def _arrive(self) -> None:
        if self.state == "PRESSING":
            self._fault(TRAVEL_LIMIT, "TRAVEL")
        else:
            self.state, self.contact = "IDLE", None

    def _check_press(self) -> None:
        """Stop conditions (first reached wins), then protections, at this sample."""
        if self.contact is None and self.force >= CONTACT_FORCE:
            self.contact = (self.x, self.volts)
        c = self.contact
        if c and self.stop_depth is not None and self.x - c[0] >= self.stop_depth:
            self._halt("DEPTH")
        elif self.stop_force is not None and self.force >= self.stop_force:
            self._halt("FORCE")
        elif c and self.stop_vdrop is not None and self.volts <= c[1] - self.stop_vdrop:
            self._halt("VDROP")
        elif self.force >= self.force_limit:
            self._fault(OVER_FORCE, "OVERFORCE")
        elif not self.interlock_closed:
            self._fault(INTERLOCK_OPEN, "INTERLOCK")

    def _halt(self, reason: str, state: str = "STOPPED") -> None:
        self.state, self.reason = state, reason

    def _fault(self, error: tuple[int, str], reason: str) -> None:
        self._halt(reason)
        self.errors.append(error)

    def _record(self, record: tuple[float, float, float, float]) -> None:
        if not self.acquiring:
            self.ring.append(record)
            return
        if len(self.buffer) == self.buffer.maxlen and not self.overrun:
            self.overrun = True
            self.errors.append(BUFFER_OVERRUN)
        self.buffer.append(record)

    # -- guards ----------------------------------------------------------------------------

    def _not_pressing(self) -> None:
        if self.state == "PRESSING":
            raise InstrumentError(-221, "Settings conflict: pressing")

    def _not_estop(self) -> None:
        if self.state == "ESTOP":
            raise InstrumentError(*ESTOP_ACTIVE)

    def _not_acquiring(self) -> None:
        if self.acquiring:
            raise InstrumentError(-221, "Settings conflict: acquiring")

    def _setpoints_within_limits(self) -> bool:
        return (
            self.speed <= self.speed_limit
            and (self.stop_depth is None or self.stop_depth <= self.travel)
            and (self.stop_force is None or self.stop_force <= self.force_limit)
        )

    # -- press set-up ----------------------------------------------------------------------

    @command("PRESs:MODE")
    def _mode(self, args: str) -> Reply:
        self._not_pressing()
        mode = args.strip().upper()
        if mode not in ("NAIL", "CRUSH"):
            raise InstrumentError(-224, "Illegal parameter value")
        self.mode = mode
        return None

    @command("PRESs:MODE?")
    def _mode_q(self, args: str) -> Reply:
        return self.mode

    @command("PRESs:SPEed")
    def _speed(self, args: str) -> Reply:
        self._not_pressing()
        self.speed = _number(args, MIN_SPEED, self.speed_limit)
        return None

    @command("PRESs:SPEed?")
    def _speed_q(self, args: str) -> Reply:
        return f"{self.speed:g}"

    @command("PRESs:STOP:DEPTh")
    def _stop_depth(self, args: str) -> Reply:
        self._not_pressing()
        self.stop_depth = _optional(args, 0.0, self.travel)
        return None

    @command("PRESs:STOP:DEPTh?")
    def _stop_depth_q(self, args: str) -> Reply:
        return _off(self.stop_depth)

    @command("PRESs:STOP:FORCe")
    def _stop_force(self, args: str) -> Reply:
        self._not_pressing()
        self.stop_force = _optional(args, MIN_FORCE, self.force_limit)
        return None

    @command("PRESs:STOP:FORCe?")
    def _stop_force_q(self, args: str) -> Reply:
        return _off(self.stop_force)

    @command("PRESs:STOP:VDRop")
    def _stop_vdrop(self, args: str) -> Reply:
        self._not_pressing()
        self.stop_vdrop = _optional(args, *VOLTAGE_DROP_RANGE)
        return None

    @command("PRESs:STOP:VDRop?")
    def _stop_vdrop_q(self, args: str) -> Reply:
        return _off(self.stop_vdrop)

    @command("SOURce:LIMit:FORCe")
    def _force_limit(self, args: str) -> Reply:
        self._not_pressing()
        self.force_limit = _number(args, *FORCE_LIMIT_RANGE)
        return None

    @command("SOURce:LIMit:FORCe?")
    def _force_limit_q(self, args: str) -> Reply:
        return f"{self.force_limit:g}"

    @command("SOURce:LIMit:SPEed")
    def _speed_limit(self, args: str) -> Reply:
        self._not_pressing()
        self.speed_limit = _number(args, *SPEED_LIMIT_RANGE)
        return None

    @command("SOURce:LIMit:SPEed?")
    def _speed_limit_q(self, args: str) -> Reply:
        return f"{self.speed_limit:g}"

    @command("SOURce:LIMit:TRAVel")
    def _travel_limit(self, args: str) -> Reply:
        self._not_pressing()
        self.travel = _number(args, *TRAVEL_LIMIT_RANGE)
        return None

    @command("SOURce:LIMit:TRAVel?")
    def _travel_limit_q(self, args: str) -> Reply:
        return f"{self.travel:g}"

    # -- motion ----------------------------------------------------------------------------

    @command("PRESs:STARt")
    def _start(self, args: str) -> Reply:
        self._not_estop()
        if not self.interlock_closed:
            raise InstrumentError(*INTERLOCK_OPEN)
        if self.state in MOVING:
            raise InstrumentError(-221, "Settings conflict: moving")
        if not self._setpoints_within_limits():
            raise InstrumentError(-221, "Settings conflict: set point beyond a limit")
        if self.x >= self.travel:
            raise InstrumentError(*TRAVEL_LIMIT)
        if self.force >= self.force_limit:
            raise InstrumentError(*OVER_FORCE)
        self.state, self.reason = "PRESSING", "NONE"
        return None

    @command("HOLD")
    def _hold(self, args: str) -> Reply:
        self._not_estop()
        if self.state in MOVING:
            raise InstrumentError(-221, "Settings conflict: moving")
        seconds = _number(args, *HOLD_RANGE)
        self.state, self.hold_end = "HOLDING", self.tick + max(1, round(seconds / TICK))
        return None

    @command("RETRact")
    def _retract(self, args: str) -> Reply:
        self._not_estop()
        speed = _number(args, MIN_SPEED, self.speed_limit)
        if self.state == "PRESSING":
            self.reason = "HOST"
        self.state, self.retract_speed = "RETRACTING", speed
        return None

    @command("STOP")
    def _stop(self, args: str) -> Reply:
        if self.state in (*MOVING, "HOLDING"):
            self._halt("HOST")
        return None

    @command("ESTOP")
    def _estop(self, args: str) -> Reply:
        self._halt("ESTOP", "ESTOP")
        return None

    @command("ESTOP:RESet")
    def _estop_reset(self, args: str) -> Reply:
        if self.state == "ESTOP":
            self.state = "STOPPED"
        return None

    # -- state and readings ----------------------------------------------------------------

    @command("STATus?")
    def _status(self, args: str) -> Reply:
        return self.state

    @command("STOP:REASon?")
    def _reason(self, args: str) -> Reply:
        return self.reason

    @command("PRESs:CONTact?")
    def _contact(self, args: str) -> Reply:
        return "9.91E+37,9.91E+37" if self.contact is None else f"{self.contact[0]:.4f},{self.contact[1]:.5f}"

    @command("MEASure:POSition?")
    def _position(self, args: str) -> Reply:
        return f"{self.x:.4f}"

    @command("MEASure:FORCe?")
    def _force(self, args: str) -> Reply:
        return f"{self.force:.4f}"

    @command("MEASure:VOLTage?")
    def _voltage(self, args: str) -> Reply:
        return f"{self.volts:.5f}"

    @command("SYSTem:INTerlock?")
    def _interlock(self, args: str) -> Reply:
        return "1" if self.interlock_closed else "0"

    # -- acquisition -----------------------------------------------------------------------

    @command("ACQuire:RATE")
    def _rate(self, args: str) -> Reply:
        self._not_acquiring()
        rate = round(_number(args, 1, 10_000))
        if rate not in RATES:
            raise InstrumentError(-222, "Data out of range: not 10 kHz / n")
        self.rate = rate
        self.ring = deque(maxlen=self._ring_size())  # the old rate's samples are dropped
        return None

    @command("ACQuire:RATE?")
    def _rate_q(self, args: str) -> Reply:
        return str(self.rate)

    @command("ACQuire:PRETrigger")
    def _pretrigger(self, args: str) -> Reply:
        self._not_acquiring()
        self.pretrigger = _number(args, *PRETRIGGER_RANGE)
        self.ring = deque(self.ring, maxlen=self._ring_size())
        return None

    @command("ACQuire:PRETrigger?")
    def _pretrigger_q(self, args: str) -> Reply:
        return f"{self.pretrigger:g}"

    @command("ACQuire:STARt")
    def _acq_start(self, args: str) -> Reply:
        if not self.acquiring:
            if self.ring_stale:  # the ram stood still through the pre-trigger window: its records are the present
                last = self.tick - self.tick % self.decimation
                ticks = range(last - (self.ring.maxlen - 1) * self.decimation, last + 1, self.decimation)
                self.ring.clear()
                self.ring.extend((k * TICK, self.x, self.force, self.volts) for k in ticks if k >= 0)
                self.ring_stale = False
            self.buffer.extend(self.ring)
            self.ring.clear()
            self.acquiring = True
        return None

    @command("ACQuire:STOP")
    def _acq_stop(self, args: str) -> Reply:
        self.acquiring = False
        return None

    @command("ACQuire:POINts?")
    def _points(self, args: str) -> Reply:
        return str(len(self.buffer))

    @command("ACQuire:DATA?")
    def _data(self, args: str) -> Reply:
        try:
            n = int(_number(args, 1, MAX_RECORDS_PER_QUERY))
        except (InstrumentError, ValueError) as err:
            raise InstrumentError(-222, "Data out of range", EMPTY_BLOCK) from err
        records = [self.buffer.popleft() for _ in range(min(n, len(self.buffer)))]
        self.overrun = False
        payload = np.array(records, RECORD).tobytes()
        size = str(len(payload))
        return f"#{len(size)}{size}".encode() + payload
