"""The run engine: runs a compiled protocol on a lab's instruments and streams everything to a run file.

A :class:`Runner` owns one run.  Between steps and while a step runs it polls every
instrument of the run (cycler channel, chamber, DAQ probes, rig), appends what they
measured to the run file at their own rates, and hands every block to the safety
supervisor.  Its states and every transition between them are the table in :mod:`.states`.

Every way out — the end of the protocol, a trip, an operator's stop or abort, a signal
(passed in as ``Shared.interrupt``), a lost instrument, any error — puts the run's
instruments in their safe state and closes the file with the status and the reason.  A trip
makes the outputs safe and then keeps the run's loggers recording (:func:`observation`: an
abuse test's whole event, a cycling cell until it has cooled) before the run ends ``tripped``.
After every completed step a checkpoint event records where the program stands, so
:meth:`Runner.resume` continues an interrupted run in the same file with no cycle repeated
or skipped (an interrupted step is run again).  Abuse tests are never resumed.
"""

import contextlib
import dataclasses
import datetime as dt
import getpass
import itertools
import json
import logging
import re
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..inputs import path_in
from ..lab import Lab
from ..lab_locks import Claim
from ..notify import Notifier, Route
from ..storage import Column, RunExistsError, RunWriter, open_run
from . import control
from . import language as L
from .alerts import CampaignEnd, RunAlerts
from .cells import CellSpec
from .kinds import Activity, activity
from .observing import Ask, RunObservation
from .preflight import Binding, calibration_record, check, hardware_limits, instruments_record
from .program import Check, Count, Enter, Leaf
from .schema import Limits
from .sharing import ChamberShare, DAQHub, Timebase
from .states import RunEnded, RunState, Trip, advance, resumable
from .stopping import StopRequest
from .supervisor import Supervisor, chamber_setpoints, effective_limits

CYCLER_COLUMNS = {
    "voltage": Column("V", "f8", "cell voltage"),
    "current": Column("A", "f8", "current, positive charging"),
    "step": Column("", "i4", "protocol step number (stable across loop iterations)"),
    "cycle": Column("", "i4", "cycle number, from 1 (a new cycle starts with a charge after a discharge)"),
}
CHAMBER_COLUMNS = {
    "temperature": Column("degC", "f8", "chamber air temperature"),
    "setpoint": Column("degC", "f8", "chamber setpoint"),
}
RIG_COLUMNS = {
    "position": Column("mm", "f8", "ram position from home"),
    "force": Column("kN", "f8", "load cell, compressive positive"),
    "voltage": Column("V", "f8", "cell voltage on the rig's fast channel"),
}
log = logging.getLogger(__name__)
CHAMBER_PERIOD = 10.0  # lab seconds between chamber readings
POLL = 1.0  # lab seconds between polls of a run's instruments …
MIN_WALL_POLL = 0.002  # … but at least this much real time, however fast the lab clock runs …
MAX_WALL_POLL = 0.25  # … and at most this much, so a trip on a real lab is acted on within a quarter second
ABUSE_OBSERVE = 3600.0  # s recorded after an abuse trip: GB/T 31485, GB 38031 observe 1 h (docs/standards.md §2–§4)
COOLING_OBSERVE = 3600.0  # s at most recorded after another run trips, until its cell is back in its rated range


def observation(protocol: L.Protocol) -> tuple[float, float | None]:
    """How long a tripped run keeps its loggers recording, and the cell temperature that ends it sooner.

    The protocol's ``observe_after_trip``; else, for an abuse test, its longest ``observe``
    step (the standard's observation), or :data:`ABUSE_OBSERVE`; else until the cell is back
    at its rated maximum temperature, at most :data:`COOLING_OBSERVE`.
    """
    if protocol.header.observe_after_trip is not None:
        return protocol.header.observe_after_trip, None
    if protocol.abuse:
        parts = [p for leaf in protocol.leaves for p in leaf.parts]
        return max((p.spec.duration for p in parts if p.kind == "observe"), default=ABUSE_OBSERVE), None
    return COOLING_OBSERVE, protocol.cell.t_max


class PreflightError(ValueError):
    """The protocol must not run here: every reason, each with file and line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass
class State:
    """Where the program stands: the checkpoint written after every completed step."""

    pc: int = 0
    cycle: int = 1
    discharged: bool = False  # a discharge happened in this cycle (the next charge starts a new one)
    steps_done: int = 0
    count: dict[int, int] = field(default_factory=dict)
    q_first: dict[int, float] = field(default_factory=dict)
    q_last: dict[int, float] = field(default_factory=dict)
    q_iter: dict[int, float] = field(default_factory=dict)
    met: dict[int, int] = field(default_factory=dict)  # consecutive iterations meeting the loop's condition
    active: list[int] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "State":
        data = json.loads(text)
        for key in ("count", "q_first", "q_last", "q_iter", "met"):
            data[key] = {int(k): v for k, v in data[key].items()}
        return cls(**data)

    def retention(self, loop: int) -> float | None:
        first = self.q_first.get(loop)
        return self.q_last[loop] / first if first else None


_DISCHARGED = re.compile(r": ([0-9.]+) Ah discharged$")


def step_discharge(message: str) -> float | None:
    """The Ah a ``step_end`` event's message says its step discharged; None if it discharged nothing."""
    found = _DISCHARGED.search(message)
    return float(found.group(1)) if found else None


#: The event that records, at each checkpoint of a run on the embedded virtual lab, its cell's state.
VIRTUAL_CELL = "virtual_cell"


def _lab_meta(lab: Lab) -> dict[str, str]:
    """Where the run's lab comes from: its file, or the options that rebuild the embedded virtual lab."""
    options = lab.virtual.options() if lab.virtual is not None else {}
    if options:
        return {"name": lab.name, "virtual": json.dumps(options)}
    return {"name": lab.name, "file": str(Path(lab.origin).resolve())}


@dataclass
class Shared:
    """What the runs of a campaign share: the lab, DAQ hubs, chamber shares, the interrupt, who is alerted."""

    lab: Lab
    hubs: dict[str, DAQHub] = field(default_factory=dict)
    chambers: dict[str, ChamberShare] = field(default_factory=dict)
    interrupt: StopRequest = field(default_factory=StopRequest)
    chamber_safe_on_trip: set[str] = field(default_factory=set)
    poll: float = POLL  # lab seconds between polls (MIN_WALL_POLL to MAX_WALL_POLL of real time)
    routes: tuple[Route, ...] = ()  # alert routes beside the lab file's [notify] ones: a campaign file's
    campaign: CampaignEnd | None = None  # the runs' campaign, told of once its last run ends
    ask: Ask | None = None  # asks the operator at the terminal for an observation; None: nobody is there
    notifier: Notifier | None = field(init=False, default=None)  # sends to every route; None without one

    def __post_init__(self) -> None:
        routes = (*self.lab.notify.routes, *self.routes)
        self.notifier = Notifier(routes) if routes else None

    def hub(self, role: str) -> DAQHub:
        if role not in self.hubs:
            self.hubs[role] = DAQHub(self.lab[role], self.lab.clock)
        return self.hubs[role]

    def chamber(self, role: str) -> ChamberShare:
        if role not in self.chambers:
            self.chambers[role] = ChamberShare(self.lab[role])
        return self.chambers[role]


def _set_temperature(protocol: L.Protocol) -> dict[str, float]:
    """``temperature_degC``: the chamber temperature a protocol holds its cell at, when it names one."""
    sets = set(chamber_setpoints(protocol))
    return {"temperature_degC": sets.pop()} if len(sets) == 1 else {}


def run_paths(out_dir: str | Path, protocol_name: str, cell_id: str) -> Iterator[Path]:
    """``<cell>_<protocol>_<UTC time>.h5`` in ``out_dir``, then ``…-2.h5``, ``…-3.h5`` …: the names a new run
    tries in turn (creating the file takes one atomically, so two runs started in one second get one each)."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    base = path_in(out_dir, f"{cell_id}_{protocol_name}_{stamp}", "", "run name")
    yield base.with_name(f"{base.name}.h5")
    for n in itertools.count(2):
        yield base.with_name(f"{base.name}-{n}.h5")


Progress = Callable[["Runner"], None]


class Runner:
    """One run of ``protocol`` on one cell.  Build with :meth:`start` or :meth:`resume`, then :meth:`run`."""

    def __init__(
        self,
        protocol: L.Protocol,
        binding: Binding,
        writer: RunWriter,
        shared: Shared,
        *,
        t0: float,
        state: State,
        progress: Progress | None = None,
        claim: Claim | None = None,
    ) -> None:
        self.protocol, self.binding, self.writer, self.shared = protocol, binding, writer, shared
        self.claim = claim  # the run's instruments, lab-wide: released once the run has ended
        self.lab = shared.lab
        self.key = writer.path.name
        self.t0, self.state, self.progress = t0, state, progress
        instruments = self.instruments(protocol, binding, self.lab)
        chamber_max = hardware_limits(self.lab, binding.chamber).max_temperature if binding.chamber else None
        self.columns = binding.signal_columns()
        self.supervisor = Supervisor(effective_limits(protocol, chamber_max), self.columns, self.lab.clock.scale)
        self.supervising = True
        self.cycler = instruments.get("cycler")
        self.share = shared.chamber(binding.chamber) if binding.chamber else None
        self.chamber = self.share.chamber if self.share else None
        self.rig = instruments.get("rig")
        self.hub = shared.hub(binding.daq) if "daq" in instruments else None
        if self.share is not None:  # every run of a campaign joins before any asks for a setpoint
            self.share.join(self.key)
        if self.hub is not None:
            self.hub.interval = min(self.hub.interval, protocol.header.sample_interval)
            self.hub.subscribe(self.key, binding.probes)
        self.timebases = {name: Timebase(self.lab.clock) for name in ("cycler", "rig")}
        self.last: dict[str, float] = {}  # stream -> time of its last row
        self.last_cell_temperature: float | None = None
        self.peak_cell_temperature = -np.inf
        self.last_voltage: float | None = None
        self.cycler_spacing: deque[float] = deque(maxlen=21)  # between the cycler's latest records
        self.cycler_interval: float | None = None  # lab seconds between the cycler's records while a step runs
        self.leaf: Leaf | None = None
        self.leaf_discharge = 0.0
        self.rig_acquiring = False
        self.chamber_read_at = -np.inf
        self.chamber_last: tuple[float, float] | None = None
        self.status = RunState.RUNNING
        self.alerts = RunAlerts(self, self._record)
        self.observation = RunObservation(self)

    # -- building -------------------------------------------------------------------------------

    @staticmethod
    def instruments(protocol: L.Protocol, binding: Binding, lab: Lab) -> dict[str, Any]:
        """The run's instruments by kind, connected (one that cannot be reached fails here, before any file)."""
        roles, out = protocol.roles(), {}
        if "cycler" in roles:
            out["cycler"] = lab.channel(binding.cycler, binding.channel)
        if binding.chamber:
            out["chamber"] = lab[binding.chamber]
        if "rig" in roles:
            out["rig"] = lab[binding.rig]
        if binding.daq and binding.probes:
            out["daq"] = lab[binding.daq]
        return out

    @staticmethod
    def owned(protocol: L.Protocol, binding: Binding, lab: Lab) -> dict[str, tuple[str, str]]:
        """What the run drives, by kind (cycler channel or SMU, chamber, rig): each one's lab-wide lock key and name."""
        roles, out = protocol.roles(), {}
        if "cycler" in roles:
            out["cycler"] = lab.lock_key(binding.cycler, binding.channel)
        if binding.chamber:
            out["chamber"] = lab.lock_key(binding.chamber)
        if "rig" in roles:
            out["rig"] = lab.lock_key(binding.rig)
        return out

    @classmethod
    def _claim(cls, protocol: L.Protocol, binding: Binding, lab: Lab, holder: str) -> Claim:
        """Lock what the run drives lab-wide (InstrumentHeldError, naming the holder, if another process has it)."""
        return lab.locks.claim(dict(cls.owned(protocol, binding, lab).values()), holder)

    @staticmethod
    def streams(protocol: L.Protocol, binding: Binding) -> dict[str, dict[str, Column]]:
        roles = protocol.roles()
        streams: dict[str, dict[str, Column]] = {}
        if "cycler" in roles:
            streams["cycler"] = CYCLER_COLUMNS
        if binding.chamber:
            streams["chamber"] = CHAMBER_COLUMNS
        if binding.daq and binding.probes:
            streams["daq"] = {
                n: Column(p.units, "f8", f"DAQ channel {p.channel} ({p.kind})") for n, p in binding.probes.items()
            }
        if "rig" in roles:
            streams["rig"] = RIG_COLUMNS
        return streams

    @classmethod
    def start(
        cls,
        protocol: L.Protocol,
        binding: Binding,
        out: str | Path,
        shared: Shared,
        *,
        progress: Progress | None = None,
    ) -> "Runner":
        """Pre-flight ``protocol`` (nothing moves if it fails), then create its run file (``out``: file or folder)."""
        problems = check(protocol, shared.lab, binding)
        if problems:
            raise PreflightError(problems)
        out = Path(out)
        claim = cls._claim(protocol, binding, shared.lab, f"{protocol.name} on {protocol.cell.id} starting in {out}")
        try:
            return cls._start(protocol, binding, out, shared, claim, progress)
        except BaseException:
            claim.release()
            raise

    @classmethod
    def _start(
        cls, protocol: L.Protocol, binding: Binding, out: Path, shared: Shared, claim: Claim, progress: Progress | None
    ) -> "Runner":
        cls.instruments(protocol, binding, shared.lab)
        clock = shared.lab.clock
        meta = {
            "protocol": {
                "name": protocol.name,
                "title": protocol.header.title,
                "standard": protocol.header.standard,
                "criteria": protocol.header.criteria.record() if protocol.header.criteria else "",
                "kind": protocol.header.kind,
                "origin": protocol.origin,
                "text": protocol.source,
                "sha256": protocol.sha256,
                "parameters": json.dumps(protocol.parameters),
                **_set_temperature(protocol),
            },
            "cell": protocol.cell.as_meta(),
            "binding": binding.as_meta(),
            "lab": _lab_meta(shared.lab),
            "calibration": calibration_record(shared.lab, binding, dt.date.today()),
            "instruments": instruments_record(shared.lab, binding),
            "clock": {"scale": clock.scale, "started": clock.now()},
            "started": dt.datetime.now(dt.UTC).isoformat(),
            "operator": getpass.getuser(),
            "host": socket.gethostname(),
        }
        for what, rec in meta["calibration"].items():  # a certification run never gets here with one expired
            if rec["state"] in ("expired", "due soon"):
                log.warning("%s: calibration %s (%s, due %s)", what, rec["state"], rec["certificate"], rec["due"])
        streams = cls.streams(protocol, binding)
        since = time.time()
        for path in [out] if out.suffix == ".h5" else run_paths(out, protocol.name, protocol.cell.id):
            try:
                writer = RunWriter.create(path, streams, meta, cycle_stream="cycler" if "cycler" in streams else None)
                break
            except RunExistsError:
                if path == out:
                    raise
        claim.holder(f"run {writer.path.resolve()}")
        runner = cls(protocol, binding, writer, shared, t0=clock.now(), state=State(), progress=progress, claim=claim)
        runner._discard_stale(since)
        return runner

    @classmethod
    def resume(
        cls, path: str | Path, shared: Shared, *, progress: Progress | None = None, ack_trip: bool = False
    ) -> "Runner":
        """Continue an interrupted (or stopped) run in its own file from its last checkpoint.

        A tripped run resumes only with ``ack_trip`` (someone has looked at why), recorded in the file.
        """
        run = open_run(path)
        if run.status == RunState.TRIPPED and not ack_trip:
            raise ValueError(
                f"{path}: run tripped ({run.end_reason}); once the cause is understood, resume it with --ack-trip"
            )
        if run.status not in resumable(ack_trip):
            raise ValueError(f"{path}: run is {run.status}; only interrupted or stopped runs resume")
        meta = run.meta
        if meta["protocol"]["kind"] == "abuse":
            raise ValueError(f"{path}: abuse tests are never resumed (the cell may be damaged); start a new run")
        tripped = run.end_reason if run.status == RunState.TRIPPED else None
        cell = CellSpec.from_meta(meta["cell"])
        params = json.loads(meta["protocol"]["parameters"])
        protocol = L.parse(meta["protocol"]["text"], meta["protocol"]["origin"], cell, params)
        binding = Binding.from_meta(meta["binding"])
        checkpoints = run.events[run.events["kind"] == "checkpoint"]
        state = State.from_json(checkpoints["message"].iloc[-1]) if len(checkpoints) else State()
        started_clock = float(meta["clock"]["started"])
        last = run.elapsed
        claim = cls._claim(protocol, binding, shared.lab, f"run {Path(path).resolve()}")
        try:
            if shared.lab.virtual is not None:
                cells = run.events[run.events["kind"] == VIRTUAL_CELL]["message"]
                if len(cells) and binding.cycler:
                    shared.lab.virtual.restore_cell(binding.cycler, binding.channel, json.loads(cells.iloc[-1]))
            since = time.time()
            writer = RunWriter.resume(path)
            # a lab clock that restarted (a new virtual lab) must not send time backwards
            t0 = min(started_clock, shared.lab.clock.now() - last)
            runner = cls(protocol, binding, writer, shared, t0=t0, state=state, progress=progress, claim=claim)
        except BaseException:
            claim.release()
            raise
        if tripped is not None:
            runner.event("trip_ack", f"trip acknowledged by {getpass.getuser()}: {tripped}")
        writer.event("note", f"resumed from step {state.steps_done + 1} (cycle {state.cycle})", time=runner.now())
        runner._discard_stale(since)
        return runner

    def _discard_stale(self, since: float) -> None:
        """A command waiting from before this start or resume (a dead run's, a killed sender's) is dropped, said."""
        why = control.discard_stale(self.writer.path, self.writer.run_id, since)
        if why is not None:
            self.event("command_discarded", why)

    def _command(self) -> str | None:
        """The operator's command for this run, if one waits (one for another run, or expired, is dropped, said)."""
        return control.take(self.writer.path, self.writer.run_id, lambda why: self._record("command_discarded", why))

    # -- time and recording -----------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self.writer.path

    def now(self) -> float:
        """Seconds since the run started, on the lab clock."""
        return self.lab.clock.now() - self.t0

    def event(self, kind: str, message: str) -> None:
        step = self.leaf.number if self.leaf else -1
        self.writer.event(kind, message, time=self.now(), step=step, cycle=self.state.cycle)

    def _append(self, stream: str, t: np.ndarray, **columns: np.ndarray) -> None:
        t = np.maximum(np.asarray(t, dtype=np.float64), self.last.get(stream, 0.0))
        self.writer.append(stream, time=t, **columns)
        self.last[stream] = float(t[-1])
        if self.supervising:
            self.supervisor.check(stream, columns, t)
            behind = self.supervisor.lag(stream, float(t[-1]), self.now(), time.monotonic())
            if behind:
                self.event("lag", behind)
                raise RunEnded(RunState.FAILED, behind)

    def poll(self) -> None:
        """Fetch what every instrument of the run measured, record it, supervise it."""
        if self.cycler is not None:
            s = self.cycler.fetch_samples()
            keep = s["step"] != 0 if "step" in s else slice(None)
            t = s["time"][keep]
            if len(t):
                t = self.timebases["cycler"](t) - self.t0
            if len(t) and t[-1] > self.last.get("cycler", -np.inf):  # not a frozen log replayed
                self._cycler_records(t)
                v, i = s["voltage"][keep], s["current"][keep]
                previous = self.last.get("cycler", t[0])
                dt_ = np.diff(t, prepend=previous)
                self.leaf_discharge += float(np.sum(np.where(i < 0, -i, 0.0) * dt_)) / 3600.0
                n = len(t)
                step = self.leaf.number if self.leaf else 0
                self._append(
                    "cycler",
                    t,
                    voltage=v,
                    current=i,
                    step=np.full(n, step, np.int32),
                    cycle=np.full(n, self.state.cycle, np.int32),
                )
                self.last_voltage = float(v[-1])
        if self.chamber is not None and self.lab.clock.now() - self.chamber_read_at >= CHAMBER_PERIOD:
            self.chamber_read_at = self.lab.clock.now()
            reading = (self.chamber.read_temperature(), self.chamber.read_setpoint())
            self.chamber_last = reading
            self._append(
                "chamber", np.array([self.now()]), temperature=np.array([reading[0]]), setpoint=np.array([reading[1]])
            )
        if self.hub is not None:
            block = self.hub.take(self.key)
            t = block.pop("time", np.empty(0)) - self.t0
            if len(t) and t[-1] > self.last.get("daq", -np.inf):  # new scans, not frozen readings replayed
                self.supervisor.fresh("daq", self.lab.clock.now(), time.monotonic())
                cell = block.get(self.columns.get("cell temperature", ""))
                if cell is not None:
                    self.last_cell_temperature = float(cell[-1])
                    peak = float(np.nanmax(cell, initial=-np.inf))
                    self.peak_cell_temperature = max(self.peak_cell_temperature, peak)
                self._append("daq", t, **block)
        if self.rig is not None and self.rig_acquiring:
            s = self.rig.fetch_samples()
            if len(s["time"]):
                t = self.timebases["rig"](s["time"]) - self.t0
                self._append("rig", t, position=s["position"], force=s["force"], voltage=s["voltage"])
        if self.supervising:
            self.supervisor.check_fresh(self.lab.clock.now(), time.monotonic(), self.now())
        self.alerts.check_disk()
        self.observation.take()

    def _cycler_records(self, t: np.ndarray) -> None:
        """New cycler records: the stream is fresh, and its spacing is what a running step is watched at."""
        self.supervisor.fresh("cycler", self.lab.clock.now(), time.monotonic())
        previous = self.last.get("cycler")
        self.cycler_spacing.extend((np.diff(t) if previous is None else np.diff(t, prepend=previous)).tolist())
        if len(self.cycler_spacing) >= 3:  # the median shrugs off the gaps between steps
            self.cycler_interval = max(float(np.median(self.cycler_spacing)), self.shared.poll)

    # -- what steps ask (kinds.StepContext) --------------------------------------------------------

    @property
    def cell(self) -> CellSpec:
        return self.protocol.cell

    @property
    def limits(self) -> Limits:
        return self.supervisor.limits

    def voltage(self) -> float | None:
        return self.last_voltage

    def cycler_running(self, running: bool) -> None:
        """While a cycler step runs, its records are watched for staleness (once their spacing is known)."""
        if not running:
            self.supervisor.unwatch("cycler")
        elif "cycler" not in self.supervisor.watches and self.cycler_interval is not None:
            self.supervisor.watch("cycler", self.cycler_interval, self.lab.clock.now(), time.monotonic())

    def rig_recording(self, on: bool) -> None:
        """Record the rig's fast channels from now on, or stop its acquisition and record what it buffered."""
        if not on:
            self.rig.stop_acquisition()
            self.poll()
        self.rig_acquiring = on

    def chamber_reading(self) -> tuple[float, float] | None:
        return self.chamber_last

    def cell_temperature(self) -> float | None:
        return self.last_cell_temperature

    def chamber_request(self, kind: str, temperature: float, rate: float | None = None) -> None:
        self.share.request(self.key, kind, temperature, rate)
        self.chamber_read_at = -np.inf  # read the new setpoint at the next poll

    def chamber_granted(self) -> bool:
        if self.share.granted(self.key):
            return True
        conflict = self.share.conflict()
        if conflict:
            raise RunEnded(RunState.FAILED, conflict)
        return False

    # -- running --------------------------------------------------------------------------------

    def wait(self) -> None:
        time.sleep(min(max(self.shared.poll / self.lab.clock.scale, MIN_WALL_POLL), MAX_WALL_POLL))

    def run(self) -> tuple[RunState, str | None]:
        """Run to the end; return (status, reason).  The run file is closed whatever happens."""
        trip: Trip | None = None
        try:
            self._prepare()
            self._settle()
            while self.state.pc < len(self.protocol.program):
                self._step(self.protocol.program[self.state.pc])
                self.state.pc += 1
                self._settle()
                self._checkpoint()
            status, reason = RunState.FINISHED, None
        except RunEnded as end:
            status, reason = end.status, end.reason
            trip = end if isinstance(end, Trip) else None
        except KeyboardInterrupt:
            status, reason = RunState.STOPPED, "interrupted (Ctrl-C)"
        except Exception as exc:
            status, reason = RunState.FAILED, f"{type(exc).__name__}: {exc}"
        except BaseException as exc:  # SystemExit and the like: end safe first, then let it go on
            self._finish(RunState.FAILED, f"{type(exc).__name__}: {exc}", None)
            self.status = advance(self.status, RunState.FAILED)
            raise
        reason = self._finish(status, reason, trip)  # the safe state comes before any bookkeeping
        self.status = advance(self.status, status)
        return status, reason

    def _prepare(self) -> None:
        """Limits into every instrument, the cycler stopped, the loggers scanning and watched for stale data."""
        for kind, instrument in (("cycler", self.cycler), ("chamber", self.chamber), ("rig", self.rig)):
            if instrument is not None:
                given = self.lab.roles[self.binding.roles()[kind]].limits  # the lab file's, within the model's rating
                instrument.configure_limits(dataclasses.replace(instrument.limits, **given))
        if self.cycler is not None:
            self.cycler.stop()  # a resumed run's cycler may still be running the interrupted step
        if self.hub is not None:
            self.hub.start()
            self.supervisor.watch("daq", self.hub.period, self.lab.clock.now(), time.monotonic())
        what = f"{self.protocol.name} on {self.protocol.cell.id}" if self.state.steps_done == 0 else "continuing"
        if self.state.steps_done == 0:
            self.event("start", what)

    def _settle(self) -> None:
        """Walk the control flow (loop entries, counts, checks) up to the next step."""
        program, st = self.protocol.program, self.state
        while st.pc < len(program) and not isinstance(program[st.pc], Leaf):
            ins = program[st.pc]
            if isinstance(ins, Enter):
                st.count[ins.loop], st.q_iter[ins.loop], st.met[ins.loop] = 0, 0.0, 0
                st.q_first.pop(ins.loop, None)
                st.active.append(ins.loop)
                st.pc += 1
            elif isinstance(ins, Count):
                n = st.count[ins.loop] = st.count[ins.loop] + 1
                st.q_last[ins.loop] = st.q_iter[ins.loop]
                st.q_first.setdefault(ins.loop, st.q_iter[ins.loop])
                st.q_iter[ins.loop] = 0.0
                due = ins.rpt_every is not None and n % ins.rpt_every == 0
                st.pc = st.pc + 1 if due else ins.after_rpt
            elif isinstance(ins, Check):
                if self._loop_done(ins):
                    st.active.remove(ins.loop)
                    st.pc += 1
                else:
                    st.pc = ins.body

    def _loop_done(self, ins: Check) -> bool:
        st = self.state
        if st.count[ins.loop] >= ins.times:
            return True
        if ins.until is None:
            return False
        what, op, limit = ins.until
        value = st.retention(ins.loop) if what == "retention" else st.q_last[ins.loop]
        if value is None:
            return False
        met = {"<": value < limit, "<=": value <= limit, ">": value > limit, ">=": value >= limit}[op]
        st.met[ins.loop] = st.met.get(ins.loop, 0) + 1 if met else 0
        if st.met[ins.loop] < ins.confirm:
            return False
        held = f" for {ins.confirm} iterations" if ins.confirm > 1 else ""
        self.event("loop_end", f"{what} {value:.4g} {op} {limit:g}{held} after {st.count[ins.loop]} iterations")
        return True

    def _step(self, leaf: Leaf) -> None:
        self.leaf, self.leaf_discharge = leaf, 0.0
        if self.state.discharged and any(part.spec.charges() for part in leaf.parts):
            self.state.cycle += 1
            self.state.discharged = False
        self.event("step_start", leaf.label)
        act = activity(leaf)
        act.start(self)
        while True:
            self.poll()
            self._control(act)
            if act.done(self):
                break
            self.wait()
        self.poll()
        if self.leaf_discharge > 1e-6:
            self.state.discharged = True
            if not leaf.rpt:
                for loop in self.state.active:
                    self.state.q_iter[loop] += self.leaf_discharge
        # step_discharge reads the Ah back from this message
        message = leaf.label + (f": {self.leaf_discharge:.4f} Ah discharged" if self.leaf_discharge > 1e-6 else "")
        self.event("step_end", message)

    def _checkpoint(self) -> None:
        self.state.steps_done += 1
        self.writer.event(
            "checkpoint", self.state.to_json(), time=self.now(), step=self.leaf.number, cycle=self.state.cycle
        )
        try:
            cell = self.lab.virtual.cell_state(self.binding.cycler, self.binding.channel) if self.lab.virtual else None
        except (OSError, ValueError):  # a served lab that did not answer: a resume puts back an earlier state
            cell = None
        if cell is not None:  # what a resume in a new process puts back into the rebuilt virtual lab
            self.event(VIRTUAL_CELL, json.dumps(cell))
        self.writer.flush()
        if self.progress:
            self.progress(self)

    def _stop_asked(self) -> None:
        """End the run ``stopped`` (resumable) if a signal asks, or if its shared chamber was made safe."""
        if self.shared.interrupt.is_set():
            raise RunEnded(RunState.STOPPED, self.shared.interrupt.reason)
        tripped = self.share.tripped if self.share is not None else None
        if tripped is not None and tripped[0] != self.key:
            raise RunEnded(RunState.STOPPED, f"the chamber was made safe after a thermal trip of {tripped[1]}")

    def _control(self, act: Activity) -> None:
        """Act on the operator's commands, a signal, and a shared chamber made safe."""
        self._stop_asked()
        command = self._command()
        if command == "pause" and not act.pausable:
            self.event("pause_refused", f"step {self.leaf.label} cannot pause")
        elif command == "pause":
            act.pause(self)
            self.status = advance(self.status, RunState.PAUSED)
            self.event("pause", "paused by the operator")
            while (command := self._command()) != "continue":
                if command in ("stop", "abort"):
                    break
                self._stop_asked()
                self.poll()
                self.wait()
            else:
                self.status = advance(self.status, RunState.RUNNING)
                self.event("continue", "continued by the operator")
                act.resume(self)
        if command == "stop":
            raise RunEnded(RunState.STOPPED, "stopped by the operator")
        if command == "abort":
            raise RunEnded(RunState.ABORTED, "aborted by the operator")

    def _finish(self, status: str, reason: str | None, trip: Trip | None) -> str | None:
        """Safe state for every output of the run (read back), a tripped run's observation, then the file
        closed saying how and why (and people told, :mod:`.alerts`); return the final reason.  Nothing here
        raises: whatever fails is said."""
        failures: list[str] = []

        def safe(what: str, fn: Callable[[], None]) -> None:
            try:
                fn()
            except Exception as exc:  # keep going: every other instrument must still be made safe
                failures.append(f"{what}: {type(exc).__name__}: {exc}")

        if trip is not None:
            self._record("trip", trip.reason)
            self.alerts.trip(trip)
        if self.cycler is not None:
            safe("cycler", self.cycler.safe_state)
        if self.rig is not None:
            safe("rig", self.rig.safe_state)
            self.rig_acquiring = False
        if self.share is not None:
            thermal = trip is not None and (trip.thermal or self.binding.chamber in self.shared.chamber_safe_on_trip)
            safe("chamber", lambda: self._leave_chamber(thermal, trip))
        if failures:
            reason = f"{reason or status}; safe state NOT confirmed: {'; '.join(failures)}"
        self._record("safe_state", "all outputs of the run safe" if not failures else "; ".join(failures))
        if failures:
            self.alerts.unsafe(failures)
        if trip is not None:
            self._observe(trip)
        self.observation.at_end(status)
        if self.hub is not None:
            try:
                self.hub.leave(self.key)
            except Exception as exc:  # a logger has no output to make safe: say it, go on
                self._record("note", f"the DAQ did not stop scanning: {type(exc).__name__}: {exc}")
        self.alerts.ended(status, reason, bool(failures))
        self.alerts.drain()  # off the safety path: the outputs are safe; their delivery lands in the file
        try:
            self.writer.close(status, reason, time=self.now())
        except Exception as exc:  # e.g. a full disk: the file keeps what it had, the lock is released
            said = f"{type(exc).__name__}: {exc}"
            if said not in (reason or ""):  # not the write error that ended the run, said again
                reason = f"{reason or status}; the run file could not record the end: {said}"
        if self.claim is not None:  # outputs safe, file closed: the instruments may go to another run
            self.claim.release()
        return reason

    def _leave_chamber(self, thermal: bool, trip: Trip | None) -> None:
        """Leave the run's chamber; make it safe if nobody is left in it, or for every run in it on a thermal trip."""
        if thermal and trip is not None:
            self.share.trip(self.key, f"{self.protocol.cell.id}: {trip.reason}")
        if self.share.leave(self.key) or thermal:
            self.chamber.safe_state()

    def _record(self, kind: str, message: str) -> None:
        """An event, if the file can still take it (after a write error it may not)."""
        with contextlib.suppress(Exception):  # the end reason says the file failed; the safe state comes first
            self.event(kind, message)

    def _observe(self, trip: Trip) -> None:
        """After a trip, with the outputs safe: keep recording the loggers (unsupervised) for :func:`observation`."""
        duration, cool = observation(self.protocol)
        if cool is not None and "cell temperature" not in self.columns:
            return  # nothing tells when the cell has cooled
        self.supervising = False
        until = f" or until the cell is at or below {cool:g} °C" if cool is not None else ""
        self._record("observe", f"outputs safe; recording for {duration / 60:g} min{until} after the trip")
        end, why = self.now() + duration, "observation complete"
        try:
            while self.now() < end:
                self.poll()
                if cool is not None and self.last_cell_temperature is not None and self.last_cell_temperature <= cool:
                    why = f"the cell is at {self.last_cell_temperature:.1f} °C"
                    break
                if self.shared.interrupt.is_set():
                    why = f"observation cut short ({self.shared.interrupt.reason})"
                    break
                if self._command() in ("stop", "abort"):
                    why = "observation cut short by the operator"
                    break
                self.wait()
        except Exception as exc:
            why = f"observation cut short: {type(exc).__name__}: {exc}"
        if np.isfinite(self.peak_cell_temperature):
            why += f"; peak cell temperature {self.peak_cell_temperature:.1f} °C"
        self._record("observe_end", why)
