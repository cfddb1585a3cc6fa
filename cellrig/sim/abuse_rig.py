"""A simulated cellrig PRESS-100 nail / crush rig over the command set of ``docs/abuse-rig.md``.

The ram is velocity-controlled with an acceleration limit; it presses a :class:`Specimen` on
the anvil (force from the ram's travel, an internal short past a nail depth or crush strain,
the cell's terminal voltage).  Like the real rig's controller, everything runs on one 10 kHz
sample clock: every tick the ram moves, the stop conditions and protections are evaluated,
and every n-th sample is kept as a record (the acquisition rate).  A moving ram is advanced
in vectorised stretches of ticks between the ticks at which anything but its travel changes
(contact, a stop condition or protection, arrival or braking, a short, the specimen's own
steps), which are stepped one by one: the same samples as stepping every tick, to float
rounding.  A still ram is stepped from record to record (while acquiring, in stretches that
end where that stepping also stops); with no acquisition running, idle time is skipped in one
jump, keeping only the pre-trigger ring's worth.  The simulator
advances lazily to the lab clock's present whenever a command arrives, so what it records
depends only on the commands and the clock, never on when the host asks.
"""

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..clock import Clock
from ..instruments.abuse_rig import (
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
from ._scpi import Reply, SCPIError, SimInstrument, command
from .cell import NMC811, REST_STEP_S, Cell

TICK = 1e-4  # s: the 10 kHz sample clock (≥ 10 kHz resolves a short's first ms: docs/standards.md §9)
CONTACT_FORCE = 0.05  # kN: contact is the first sample at or above this
ACCEL = 5000.0  # mm/s²: the servo's acceleration and braking limit
MOVING = ("PRESSING", "RETRACTING")
EMPTY_BLOCK = b"#10"
SHORTED_STEP_S = 0.05  # a shorted cell is stepped at most this finely once its short has formed (slow by then)
EPS_S = 1e-9  # s: sums of ticks are compared within this (n ticks added one by one or at once differ by far less)
MAX_GLIDE = 10_000  # most ticks a moving ram is advanced at once (1 s of rig time)
MIN_GLIDE = 64  # ticks first tried at once after a stretch ended on an event

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
    as the rig's does; a specimen may use it to replay a recorded trace).  A moving ram's
    stretch of ticks asks ``forces`` and ``short_resistances`` for all its depths at once, and
    calls ``advance`` once for ticks that ``steady_s`` says change nothing but the time.
    """

    def force(self, depth_mm: float, mode: str) -> float:
        """kN the specimen pushes back with (``mode`` "NAIL" or "CRUSH")."""
        ...

    def forces(self, depths_mm: np.ndarray, mode: str) -> np.ndarray:
        """``force`` at each of ``depths_mm``."""
        ...

    def short_resistance(self, depth_mm: float, mode: str) -> float:
        """Ω of the internal short the tool makes (``mode`` "NAIL" or "CRUSH"), ``math.inf`` if none."""
        ...

    def short_resistances(self, depths_mm: np.ndarray, mode: str) -> np.ndarray:
        """``short_resistance`` at each of ``depths_mm``."""
        ...

    def steady_s(self) -> float:
        """Seconds ahead within which, the short staying what it was, ``advance`` changes nothing
        ``voltage`` shows (0: it may change at the next sample, e.g. a replayed trace)."""
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

    def forces(self, depths_mm: np.ndarray, mode: str = "CRUSH") -> np.ndarray:
        d = np.asarray(depths_mm, float) - self.gap_mm
        if mode == "NAIL":
            f = np.minimum(self.stiffness_kn_mm * d, self.nail_force_kn)
        else:
            f = self.stiffness_kn_mm * d + self.stiffening_kn_mm3 * d**3
            f = np.where(d >= self.failure_strain * self.thickness_mm, f * self.residual, f)
        return np.where(d <= 0, 0.0, f)

    def short_resistance(self, depth_mm: float, mode: str) -> float:
        d = depth_mm - self.gap_mm
        if mode == "NAIL":
            return self.through_ohm if d >= self.nail_short_depth_mm else math.inf
        return self.through_ohm * self.crush_short_factor if d >= self.failure_strain * self.thickness_mm else math.inf

    def short_resistances(self, depths_mm: np.ndarray, mode: str) -> np.ndarray:
        d = np.asarray(depths_mm, float) - self.gap_mm
        if mode == "NAIL":
            return np.where(d >= self.nail_short_depth_mm, self.through_ohm, math.inf)
        failed = d >= self.failure_strain * self.thickness_mm
        return np.where(failed, self.through_ohm * self.crush_short_factor, math.inf)

    def steady_s(self) -> float:
        if self.shorted_at is None:
            return REST_STEP_S - self.resting_s
        if self.t - self.shorted_at < 10 * self.tau_s - EPS_S:  # the contact forms: every sample
            return 0.0
        return SHORTED_STEP_S - self.resting_s

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
        if self.shorted_at is None:  # intact: rest time is gathered into one step of REST_STEP_S
            if self.resting_s >= REST_STEP_S - EPS_S:
                self._step_cell(REST_STEP_S)
            return
        forming = self.t - self.shorted_at < 10 * self.tau_s - EPS_S  # while the contact forms, every sample
        if forming or self.resting_s >= SHORTED_STEP_S - EPS_S:
            formed = -math.expm1(-(self.t - self.shorted_at) / self.tau_s)  # 0 → 1 as the contact forms
            self.cell.short_ohm = self.short_ohm / formed if formed > 0 else math.inf
            self._step_cell(self.max_cell_step_s)

    def _step_cell(self, most_s: float) -> None:
        """Apply the time gathered to the cell, in steps of at most ``most_s``."""
        n = max(1, math.ceil(self.resting_s / most_s - 1e-6))
        for _ in range(n):
            self.cell.step(0.0, self.resting_s / n)
        self.resting_s, self._volts = 0.0, None


class Records:
    """Records (time, position, force, voltage) in arrival order, at most ``maxlen``: the oldest are dropped.

    Held as float64 blocks of four columns (:func:`packed` makes :data:`RECORD` rows of them).
    """

    def __init__(self, maxlen: int) -> None:
        self.maxlen = maxlen
        self._blocks: deque[np.ndarray] = deque()
        self._held = 0  # rows in _blocks
        self._rows: list[tuple[float, float, float, float]] = []  # single rows not yet in a block

    def __len__(self) -> int:
        return min(self._held + len(self._rows), self.maxlen)

    def append(self, row: tuple[float, float, float, float]) -> int:
        """Add one row; return how many rows that dropped (0 or 1)."""
        full = len(self) == self.maxlen
        self._rows.append(row)
        if len(self._rows) >= 1024:
            self._seal()
        return int(full)

    def extend(self, block: np.ndarray) -> int:
        """Add rows; return how many rows that dropped."""
        dropped = max(0, len(self) + len(block) - self.maxlen)
        self._seal()
        if len(block):
            self._blocks.append(block)
            self._held += len(block)
        self._trim()
        return dropped

    def take(self, n: int) -> np.ndarray:
        """Remove and return the oldest ``n`` rows (fewer if there are fewer)."""
        self._seal()
        out = []
        while n > 0 and self._blocks:
            block = self._blocks.popleft()
            if len(block) > n:
                block, rest = block[:n], block[n:]
                self._blocks.appendleft(rest)
            out.append(block)
            self._held -= len(block)
            n -= len(block)
        return np.concatenate(out) if out else np.empty((0, 4))

    def clear(self) -> None:
        self._blocks.clear()
        self._rows.clear()
        self._held = 0

    def _seal(self) -> None:
        if self._rows:
            self._blocks.append(np.array(self._rows, float))
            self._held += len(self._rows)
            self._rows.clear()
        self._trim()

    def _trim(self) -> None:
        while self._held > self.maxlen:
            extra = self._held - self.maxlen
            block = self._blocks.popleft()
            if len(block) > extra:
                self._blocks.appendleft(block[extra:])
            self._held -= min(extra, len(block))


def packed(rows: np.ndarray) -> np.ndarray:
    """Rows of (time, position, force, voltage) as :data:`RECORD` records."""
    records = np.empty(len(rows), RECORD)
    for i, name in enumerate(RECORD.names):
        records[name] = rows[:, i]
    return records


def _number(args: str, lo: float, hi: float) -> float:
    value = float(args)
    if not lo <= value <= hi:  # NaN fails too
        raise SCPIError(-222, "Data out of range")
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
        vectorised: bool = True,
    ) -> None:
        """``vectorised=False`` steps a moving ram tick by tick (the reference for the vectorised stretches)."""
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
        self.short = math.nan  # the short the specimen was last advanced with (nan: not yet)
        self.vectorised = vectorised
        self.reach = MIN_GLIDE  # ticks the next stretch tries
        self.buffer = Records(buffer_records)
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
        self.ring = Records(self._ring_size())
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
            if not (self.vectorised and (self._stand(target) if self.quiet() else self._glide(target))):
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
        self.short = self.specimen.short_resistance(self.x, self.mode)
        self.specimen.advance(dt, self.short)
        self.volts = self.specimen.voltage(t)
        if self.state == "PRESSING":
            self._check_press()
        elif self.state == "HOLDING" and self.tick >= self.hold_end:
            self.state = "STOPPED"
        if self.tick % self.decimation == 0:
            self._record((t, self.x, self.force, self.volts))

    def _glide(self, target: int) -> int:
        """Advance a moving ram at once over the ticks before the next at which anything but its travel
        changes: contact, a stop condition or protection, arrival or braking for it, a change of
        short, a step of the specimen.  Return how many ticks that was (0: the next tick is one)."""
        goal = self._goal()
        if goal is None or (self.state == "PRESSING" and not self.interlock_closed):
            return 0  # braking to rest (a few ms), or a protection trips at the next tick
        steady = math.ceil(self.specimen.steady_s() / TICK - 1e-6) - 1  # ticks before the specimen's next step
        n = min(target - self.tick, self.reach, steady)
        end, speed = goal
        dist = end - self.x
        if n < 1 or not dist:
            return 0
        v_cmd, dv = math.copysign(speed, dist), self.accel * TICK
        if self.v == v_cmd:
            v = np.full(n, v_cmd)
        else:  # the ram accelerates or brakes towards the commanded speed, dv a tick
            ramp = np.cumsum(np.concatenate(([self.v], np.full(n, math.copysign(dv, v_cmd - self.v)))))[1:]
            v = np.minimum(ramp, v_cmd) if self.v < v_cmd else np.maximum(ramp, v_cmd)
        x = np.cumsum(np.concatenate(([self.x], v * TICK)))  # x[k]: after tick k, added as tick by tick
        depth = x[1:]
        forces = self.specimen.forces(depth, self.mode)
        ok = self.specimen.short_resistances(depth, self.mode) == self.short
        if self.state == "PRESSING":
            ok &= ~self._press_events(depth, forces)
        # speed-limited (not yet braking for the goal) and not there yet: the ram's distance to the goal
        # falls (after a reversal, first rises), so if the first and last ticks are and it is still on
        # the same side, all ticks are
        first, last = self._speed_limited(end, speed, x[:2]), self._speed_limited(end, speed, x[-2:])
        if not (first[0] and last[0] and (end - x[-1]) * dist > 0):
            ok &= self._speed_limited(end, speed, x)
        m = n if ok.all() else int(np.argmin(ok))
        self.reach = min(2 * self.reach, MAX_GLIDE) if m == n else MIN_GLIDE
        if not m:
            return 0
        first = self.tick + 1
        self.x, self.v, self.force = float(x[m]), float(v[m - 1]), float(forces[m - 1])
        self.tick += m
        self.specimen.advance(m * TICK, self.short)
        self.volts = self.specimen.voltage(self.tick * TICK)
        kept = slice(-first % self.decimation, m, self.decimation)  # the ticks that are records
        ticks = np.arange(first + kept.start, first + m, self.decimation)
        if len(ticks):
            self._records(np.column_stack((ticks * TICK, depth[kept], forces[kept], np.full(len(ticks), self.volts))))
        return m

    def _stand(self, target: int) -> int:
        """Advance a still ram, acquiring, at once to the last record (or the target) before the specimen's
        next step or a hold's end: ticks record-to-record stepping visits too.  Return how many ticks."""
        if not self.acquiring:
            return 0  # idle time is skipped in jumps anyway
        end = min(target, self.tick + math.ceil(self.specimen.steady_s() / TICK - 1e-6) - 1)
        if self.state == "HOLDING":
            end = min(end, self.hold_end - 1)
        if end < target:
            end -= end % self.decimation
        m = end - self.tick
        if m <= self.decimation:
            return 0
        first = self.tick + 1
        ticks = np.arange(first + -first % self.decimation, end + 1, self.decimation)
        self.tick = end
        self.specimen.advance(m * TICK, self.short)
        self.volts = self.specimen.voltage(end * TICK)
        block = np.empty((len(ticks), 4))
        block[:, 0], block[:, 1], block[:, 2], block[:, 3] = ticks * TICK, self.x, self.force, self.volts
        self._records(block)
        return m

    def _speed_limited(self, end: float, speed: float, x: np.ndarray) -> np.ndarray:
        """Per tick from ``x[k]`` to ``x[k + 1]``: the ram is driven at ``speed``, not braking for ``end``,
        and does not reach it (as :meth:`_move` decides)."""
        to_go = end - x[:-1]
        return (np.sqrt(2 * self.accel * np.abs(to_go)) >= speed) & ((end - x[1:]) * to_go > 0)

    def _press_events(self, depth: np.ndarray, forces: np.ndarray) -> np.ndarray:
        """Where :meth:`_check_press` would act at these samples (the voltage being what it is now)."""
        c = self.contact
        hit = forces >= self.force_limit
        if self.stop_force is not None:
            hit |= forces >= self.stop_force
        if c is None:
            return hit | (forces >= CONTACT_FORCE)
        if self.stop_depth is not None:
            hit |= depth - c[0] >= self.stop_depth
        if self.stop_vdrop is not None and self.volts <= c[1] - self.stop_vdrop:
            hit[:] = True
        return hit

    def _goal(self) -> tuple[float, float] | None:
        """(position, speed) the ram is driven to, or None (it comes to rest)."""
        return {"PRESSING": (self.travel, self.speed), "RETRACTING": (0.0, self.retract_speed)}.get(self.state)

    def _move(self, dt: float) -> None:
        """Velocity control towards the goal, braking in time to stop on it (or to rest when halting)."""
        goal = self._goal()
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
        elif self.buffer.append(record):
            self._overran()

    def _records(self, block: np.ndarray) -> None:
        if not self.acquiring:
            self.ring.extend(block)
        elif self.buffer.extend(block):
            self._overran()

    def _overran(self) -> None:
        if not self.overrun:
            self.overrun = True
            self.errors.append(BUFFER_OVERRUN)

    # -- guards ----------------------------------------------------------------------------

    def _not_pressing(self) -> None:
        if self.state == "PRESSING":
            raise SCPIError(-221, "Settings conflict: pressing")

    def _not_estop(self) -> None:
        if self.state == "ESTOP":
            raise SCPIError(*ESTOP_ACTIVE)

    def _not_acquiring(self) -> None:
        if self.acquiring:
            raise SCPIError(-221, "Settings conflict: acquiring")

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
            raise SCPIError(-224, "Illegal parameter value")
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
            raise SCPIError(*INTERLOCK_OPEN)
        if self.state in MOVING:
            raise SCPIError(-221, "Settings conflict: moving")
        if not self._setpoints_within_limits():
            raise SCPIError(-221, "Settings conflict: set point beyond a limit")
        if self.x >= self.travel:
            raise SCPIError(*TRAVEL_LIMIT)
        if self.force >= self.force_limit:
            raise SCPIError(*OVER_FORCE)
        self.state, self.reason = "PRESSING", "NONE"
        return None

    @command("HOLD")
    def _hold(self, args: str) -> Reply:
        self._not_estop()
        if self.state in MOVING:
            raise SCPIError(-221, "Settings conflict: moving")
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
            raise SCPIError(-222, "Data out of range: not 10 kHz / n")
        self.rate = rate
        self.ring = Records(self._ring_size())  # the old rate's samples are dropped
        return None

    @command("ACQuire:RATE?")
    def _rate_q(self, args: str) -> Reply:
        return str(self.rate)

    @command("ACQuire:PRETrigger")
    def _pretrigger(self, args: str) -> Reply:
        self._not_acquiring()
        self.pretrigger = _number(args, *PRETRIGGER_RANGE)
        ring, self.ring = self.ring.take(len(self.ring)), Records(self._ring_size())
        self.ring.extend(ring)
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
                for k in ticks:
                    if k >= 0:
                        self.ring.append((k * TICK, self.x, self.force, self.volts))
                self.ring_stale = False
            if self.buffer.extend(self.ring.take(len(self.ring))):
                self._overran()
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
        except (SCPIError, ValueError) as err:
            raise SCPIError(-222, "Data out of range", EMPTY_BLOCK) from err
        payload = packed(self.buffer.take(n)).tobytes()
        self.overrun = False
        size = str(len(payload))
        return f"#{len(size)}{size}".encode() + payload
