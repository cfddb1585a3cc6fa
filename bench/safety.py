"""Safety benchmark: real-time latency from a limit crossing inside the virtual lab to the run's outputs off.

What it measures
    For each supervised signal, ``--trips`` runs (default 20) of the engine (``Runner`` in a thread of
    this process), each on a fresh in-process ``VirtualLab`` at clock ×1 set up to cross a limit within
    seconds; ``--parallel`` trips (default 4) run at once, each with its own lab.  A monitor thread
    reads the simulators' own state every ~1 ms: under the world's lock it first walks the world (and
    the simulator holding the signal) to the present, as any instrument command does, then reads the
    true signal and the run's outputs.  The world steps in 10 ms (``--dt``): with VirtualLab's
    default 1 s step the whole lab, the rig's 10 kHz ram included, moves in 1 s bursts and a DAQ
    sweep of two channels is delivered one step late, which adds up to a second to what is measured.

    crossing    the simulated time of the first state beyond the limit (the world's step, the rig's
                tick, the chamber air's 1 s step): the cycler cell's terminal voltage and |current|,
                the chamber air, the rig's load cell, the rig cell's temperature and the gas its
                thermocouple and gas sensor read.  The cycler's are also taken at every step the
                BT2200 integrates, whoever advanced it (a hook on the simulator): a channel that
                fails its own limit test opens within the step that crossed, so the state beyond the
                limit may last less than the monitor's gap between looks.  dT/dt: the supervisor's estimator (standards
                docs/standards.md §7: a linear fit over the last 10 samples spanning ≥ 9 s) applied, at the
                DAQ's own sample times, to the cell's true temperature (the monitor's trace, linearly
                interpolated); the crossing is the first sample time whose fit exceeds the limit.
                Stale data: the moment a ``stall`` fault stops the DAQ's scan (readings already due
                are stored first).
    outputs off the lab-clock time the monitor first sees the run's output off for good (the last
                on → off change): cycler channel not running, rig neither pressing nor holding,
                chamber in standby.  Latency = off − crossing (at ×1 lab seconds are real seconds).
    →trip, →off the means of where the time goes: crossing → the trip event in the run file (the
                wait for a sample, its delivery and the engine's poll), trip event → outputs off
                (negative where the instrument opened before the engine recorded the trip: the
                BT2200's own limit tests, which the engine reads back after the fact).

    Set-ups (limits, waits and speeds randomised so crossings fall at random phases of the streams'
    sample grids and the engine's polls): voltage: a 1C charge on BT2200 channel 101, voltage_max
    between the voltages a copy of the cell reaches at whole seconds 2–12 s in; current: a 0.5C
    charge, current_max 2 A (both reach the BT2200 as FAIL tests of its own, as any run's limits do);
    chamber temperature: the ESPEC set to 40 °C, chamber_temperature_max 3–13 s of full heating
    above the air (at n.n5 °C, so the 0.1 °C reading exceeds it when the air does); cell temperature,
    dT/dt and gas: a nail (20–30 mm/s, 3 mm past contact, then a hold) into the rig's fully charged
    NMC811 cell, temperature_max 35 °C, dTdt_max 1 K/s (after 10 s more of
    waiting, so the fit's window is full first), gas_max 100 ppm (the vent); force: a slow deep nail
    (4–6 mm/s, 10 mm: the ram still presses when the engine acts), force_max 1 kN; stale data: the
    DAQ scanning the cell during a charge stalls 3–4 s into the run.  Protocols sample every 1 s;
    the cycler logs at the BT2200's period and the engine reads the chamber every CHAMBER_PERIOD.

    The target (it reports; it never fails): every signal's p99 latency ≤ 1 s plus one sample
    interval of its stream, and stale data detected within 3 intervals (every trip, in intervals).

Run from the repository root (clock ×1, so it takes real time; every lab is stopped at the end)::

    python bench/safety.py                              # 20 trips of each signal, about 11 minutes
    python bench/safety.py --quick                      # 3 trips each, about 2 minutes
    python bench/safety.py --trips 5 --signals force,gas
"""

import argparse
import contextlib
import copy
import math
import random
import re
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cellrig import open_run
from cellrig.lab import Lab
from cellrig.protocols import Binding, Probe, cell_spec, parse
from cellrig.protocols.engine import CHAMBER_PERIOD, Runner, Shared
from cellrig.protocols.supervisor import DTDT_MIN_SPAN, DTDT_WINDOW
from cellrig.sim.abuse_rig import TICK
from cellrig.sim.bt2200 import BT2200, RUNNING
from cellrig.sim.lab import VirtualLab
from cellrig.sim.wiring import GAS_PROBE, RIG

MONITOR_PERIOD = 0.001  # s of real time between the monitor's looks
WORLD_DT = 0.01  # s: the world's step (VirtualLab's default 1 s lets the lab move in 1 s bursts, see above)
STALE_BOUND = 3.0  # intervals: stale data must be detected within this many
TRIP_TIMEOUT = 120.0  # s: a trip not seen by then is counted as missed
SAMPLE_INTERVAL = 1.0  # s between DAQ scans (the protocols' sample_interval)
RIG_HZ = 1000  # the rig's fast channel while the ram presses (engine's RIG_ACQUISITION_HZ)
CELL = cell_spec("nmc811-5Ah", "bench-101")
SIGNALS = ("voltage", "current", "cell temperature", "dT/dt", "chamber temperature", "force", "gas", "stale data")
#: How the engine's end reason starts for each signal's trip.
SAID = {
    "voltage": "cycler voltage",
    "current": "cycler current",
    "cell temperature": "cell temperature",
    "dT/dt": "cell dT/dt",
    "chamber temperature": "chamber temperature",
    "force": "rig force",
    "gas": "gas",
    "stale data": "stale data",
}
AT = re.compile(r"at t = ([-\d.]+) s")


@dataclass
class Setup:
    """One trip's protocol, binding and what the monitor reads (called under the world's lock)."""

    text: str
    binding: Binding
    interval: float  # s between samples of the stream the signal arrives on
    on: Callable[[], bool]  # the run's output is on
    truth: Callable[[], tuple[float, float]] | None = None  # (simulated time, true value)
    limit: float = math.inf
    advance: Callable[[], None] = lambda: None  # bring the signal's simulator to the present
    stall_after: float | None = None  # s after the run starts: the DAQ stops scanning
    stepped: "Stepped | None" = None  # the crossing and the offs as the simulator stepped, if hooked
    daq: str | None = None  # the DAQ whose sample grid the dT/dt estimator uses


@dataclass
class Outcome:
    """One trip's outcome; times on the lab clock (s)."""

    signal: str
    status: str = "not run"
    reason: str | None = None
    crossed: float | None = None
    off: float | None = None
    tripped: float | None = None  # the engine's trip event
    interval: float = math.nan
    gaps: tuple[float, float] = (math.nan, math.nan)  # the monitor's mean time between looks, longest in the trip

    @property
    def latency(self) -> float | None:
        ok = self.status == "tripped" and (self.reason or "").startswith(SAID[self.signal])
        if not ok or self.crossed is None or self.off is None:
            return None
        return self.off - self.crossed


# -- the set-ups -------------------------------------------------------------------------------


def _protocol(name: str, limits: str, steps: Sequence[str], *, abuse: bool = False) -> str:
    kind = "kind: abuse\n" if abuse else ""
    body = "".join(f"  - {s}\n" for s in steps)
    return (
        f"name: bench-{name}\n{kind}sample_interval: {SAMPLE_INTERVAL:g} s\nobserve_after_trip: 1 s\n"
        f"limits: {{{limits}}}\nsteps:\n{body}"
    )


@dataclass
class Stepped:
    """A hook on the BT2200's integration of one channel: the simulated time of its first step that ends beyond
    ``limit`` and of every step in which the channel stopped running by itself (a test, the end of its step)."""

    bt: BT2200
    ch: Any  # the simulator's channel
    value: Callable[[], float]
    limit: float
    crossed: float | None = None
    offs: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        integrate = self.bt._integrate

        def watched(channel: Any, dt: float) -> bool:
            ended = integrate(channel, dt)
            if channel is self.ch:
                t = self.bt.t + dt  # advance() moves bt.t on after the step
                if self.crossed is None and self.value() > self.limit:
                    self.crossed = t
                if self.ch.status != RUNNING:
                    self.offs.append(t)
            return ended

        self.bt._integrate = watched  # type: ignore[method-assign]


def _cycler(v: VirtualLab, signal: str, rng: random.Random) -> Setup:
    bt = v.sims["cycler"]
    ch = bt.channels[101]

    def on() -> bool:
        return ch.status == RUNNING

    def terminal() -> float:
        return ch.cell.voltage(ch.current)

    def amps() -> float:
        return abs(ch.current)

    charge = "cc: {current: %s, until_voltage: 4.2 V, max_time: 1 h}"
    if signal == "current":
        return Setup(
            _protocol("current", "current_max: 2 A", [charge % "0.5C"]),
            Binding("cycler", 101),
            bt.log_period,
            on,
            lambda: (bt.t, amps()),
            2.0,
            bt.advance,
            stepped=Stepped(bt, ch, amps, 2.0),
        )
    if signal == "stale data":
        logged = Binding("cycler", 101, daq="daq", probes={"temperature": Probe(101)})
        return Setup(
            _protocol("stale", "", [charge % "0.5C"]),
            logged,
            SAMPLE_INTERVAL,
            on,
            stall_after=rng.uniform(3.0, 4.0),
        )
    # voltage: the limit between the voltages a copy of the cell reaches at whole seconds around 2–12 s
    cell, current = copy.deepcopy(ch.cell), CELL.capacity_ah
    cell.step(0.0, ch.resting)
    k = int(rng.uniform(2.0, 2.0 + bt.log_period))
    volts = []
    for _ in range(k + 1):
        cell.step(current, 1.0)  # whole seconds, whatever the world step
        volts.append(cell.voltage(current))
    limit = round((volts[k - 1] + volts[k]) / 2, 6)  # as the protocol states it
    return Setup(
        _protocol("voltage", f"voltage_max: {limit:.6f} V", [charge % "1C"]),
        Binding("cycler", 101),
        bt.log_period,
        on,
        lambda: (bt.t, terminal()),
        limit,
        bt.advance,
        stepped=Stepped(bt, ch, terminal, limit),
    )


def _chamber(v: VirtualLab, rng: random.Random) -> Setup:
    espec = v.sims["chamber"]
    air = espec.air
    r = air.rating
    rate = r.heat_capacity_j_per_k * r.max_ramp_rate / 60 / (r.heat_capacity_j_per_k + air.load_heat_capacity_j_per_k)
    # a limit of n.n5 °C: the chamber's 0.1 °C reading exceeds it exactly when the air does
    limit = math.floor((air.temperature + rate * rng.uniform(3.0, 3.0 + CHAMBER_PERIOD)) * 10) / 10 + 0.05
    return Setup(
        _protocol("chamber", f"chamber_temperature_max: {limit:.2f} °C", ["set: 40 °C", "wait: 10 min"]),
        Binding(chamber="chamber"),
        CHAMBER_PERIOD,
        lambda: espec.mode in ("CONSTANT", "RUN"),
        lambda: (air.t, air.temperature),
        limit,
        air.advance,
    )


RIG_LIMITS = {
    "cell temperature": ("temperature_max: 35 °C", 35.0),
    "dT/dt": ("dTdt_max: 1 K/s", 1.0),
    "gas": ("gas_max: 100 ppm", 100.0),
    "force": ("force_max: 1 kN", 1.0),
}


def _rig(v: VirtualLab, signal: str, rng: random.Random) -> Setup:
    rig, daq = v.sims["rig"], v.sims["daq2"]
    limits, limit = RIG_LIMITS[signal]
    # a random wait (the DAQ's sample grid) and speed (the engine's polls, timed from the press's start)
    wait = rng.uniform(0.5, 1.5) + (DTDT_WINDOW * SAMPLE_INTERVAL if signal == "dT/dt" else 0.0)
    # force: slow and deep, so the ram still presses when the engine acts (a press that reached its
    # depth has stopped by itself); the others: the nail in, then a hold while the cell runs away
    speed, depth = (rng.uniform(4.0, 6.0), 10) if signal == "force" else (rng.uniform(20.0, 30.0), 3)
    press = f"{{mode: nail, speed: {speed:.2f} mm/s, depth: {depth} mm}}"
    steps = [f"wait: {wait:.3f} s", f"press: {press}", "hold: 10 min"]
    read: dict[str, Callable[[float], float]] = {
        "cell temperature": daq.probes[101],
        "dT/dt": daq.probes[101],
        "gas": lambda t: daq.probes[GAS_PROBE](t) * RIG.probes["gas"].scale,
        "force": lambda t: rig.force,
    }

    def truth() -> tuple[float, float]:
        t = rig.tick * TICK
        return t, read[signal](t)

    return Setup(
        _protocol(signal.replace("/", "").replace(" ", "-"), limits, steps, abuse=True),
        RIG,
        1.0 / RIG_HZ if signal == "force" else SAMPLE_INTERVAL,
        lambda: rig.state in ("PRESSING", "HOLDING"),
        truth,
        math.inf if signal == "dT/dt" else limit,  # dT/dt: found afterwards, from the trace
        rig.advance,
        daq="daq2" if signal == "dT/dt" else None,
    )


def setup(v: VirtualLab, signal: str, rng: random.Random) -> Setup:
    if signal in ("voltage", "current", "stale data"):
        return _cycler(v, signal, rng)
    if signal == "chamber temperature":
        return _chamber(v, rng)
    return _rig(v, signal, rng)


# -- the monitor -------------------------------------------------------------------------------


@dataclass
class Monitor:
    """Reads the simulators' ground truth every ~1 ms in a thread; keeps the crossing and the offs."""

    v: VirtualLab
    s: Setup
    crossed: float | None = None
    offs: list[float] = field(default_factory=list)
    trace: list[tuple[float, float]] = field(default_factory=list)  # (simulated time, true value)
    grid: tuple[float, float] | None = None  # the dT/dt DAQ's (scan start, sweep period)
    looks: list[float] = field(default_factory=list)  # lab-clock times of the looks

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="safety-monitor", daemon=True)

    def _run(self) -> None:
        world, was_on = self.v.world, False
        while not self._stop.wait(MONITOR_PERIOD):
            with world.lock:
                world.advance()
                self.s.advance()
                sample = self.s.truth() if self.s.truth is not None else None
                on = self.s.on()
                if self.s.daq is not None and self.grid is None:
                    scanner = self.v.sims[self.s.daq].scanner
                    if scanner.running:
                        self.grid = (scanner.t0, max(scanner.interval, len(scanner.channels) * scanner.channel_time))
            now = self.v.clock.now()
            self.looks.append(now)
            if sample is not None:
                if self.s.daq is not None:
                    self.trace.append(sample)
                if self.crossed is None and sample[1] > self.s.limit:
                    self.crossed = sample[0]
            if was_on and not on:
                self.offs.append(now)
            was_on = on

    def stall(self, role: str) -> None:
        """Stop the DAQ's scan now: the readings already due are stored first."""
        with self.v.world.lock:
            self.v.sims[role].advance()
            self.v.inject(role, "stall", 1_000_000)
            self.crossed = self.v.clock.now()

    def dtdt_crossing(self, limit: float) -> float | None:
        """The first DAQ sample time where the supervisor's estimator, fed the true temperature, exceeds ``limit``."""
        if self.grid is None or len(self.trace) < 2:
            return None
        t_true, temp = np.array(self.trace).T
        t0, period = self.grid
        times = t0 + period * np.arange(int((t_true[-1] - t0) / period) + 1)
        temps = np.interp(times, t_true, temp)
        for k in range(DTDT_WINDOW - 1, len(times)):
            ts, ys = times[k - DTDT_WINDOW + 1 : k + 1], temps[k - DTDT_WINDOW + 1 : k + 1]
            if ts[-1] - ts[0] >= DTDT_MIN_SPAN and np.polyfit(ts - ts[0], ys, 1)[0] > limit:
                return float(ts[-1])
        return None

    def gaps(self, start: float | None, end: float | None) -> tuple[float, float]:
        """The mean time between two looks, and the longest between ``start`` and ``end`` (the trip) (s)."""
        looks = np.array(self.looks)
        if len(looks) < 2:
            return math.nan, math.nan
        during = looks[(looks >= (start or 0.0) - 0.1) & (looks <= (end or looks[-1]) + 0.1)]
        return float(np.diff(looks).mean()), float(np.diff(during).max()) if len(during) > 1 else math.nan

    def __enter__(self) -> "Monitor":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- one trip ----------------------------------------------------------------------------------


def trip(signal: str, seed: int, out: Path, dt: float = WORLD_DT) -> Outcome:
    """Run one trip of ``signal`` on a fresh virtual lab (clock ×1, world steps of ``dt`` s) and measure it."""
    rng = random.Random(seed)
    result = Outcome(signal)
    out.mkdir(parents=True, exist_ok=True)
    with VirtualLab(speed=1.0, seed=seed, dt=dt) as v:
        s = setup(v, signal, rng)
        result.interval = s.interval
        lab = Lab.from_dict(v.lab_dict(), "virtual", v.clock)
        with lab, Monitor(v, s) as monitor:
            shared = Shared(lab)
            runner = Runner.start(parse(s.text, f"<{signal}>", CELL), s.binding, out, shared)
            outcome: list[tuple[str, str | None]] = []
            worker = threading.Thread(target=lambda: outcome.append(runner.run()), name="safety-run", daemon=True)
            started = time.monotonic()
            worker.start()
            if s.stall_after is not None:
                time.sleep(s.stall_after)
                monitor.stall(s.binding.daq)
            worker.join(TRIP_TIMEOUT - (time.monotonic() - started))
            if worker.is_alive():  # no trip: end the run (safe state, file closed) and count it missed
                shared.interrupt.ask("the benchmark's time for one trip ran out")
                worker.join(60.0)
            # the monitor sees the last change; for dT/dt it traces 2 samples more: a DAQ reading is the value
            # when the simulator took it (its probes ignore the scan time), so under load the supervisor may
            # trip a sample before the estimator on the true temperature does (a negative latency, shown)
            time.sleep(0.05 if s.daq is None else 2 * SAMPLE_INTERVAL)
        result.status, result.reason = outcome[0] if outcome else ("hung", None)
        result.crossed = monitor.dtdt_crossing(RIG_LIMITS[signal][1]) if signal == "dT/dt" else monitor.crossed
        if s.stepped is not None and (hooked := s.stepped.crossed) is not None:
            result.crossed = hooked if result.crossed is None else min(result.crossed, hooked)
        offs = monitor.offs + (s.stepped.offs if s.stepped is not None else [])
        result.off = max(offs) if offs else None  # the last on → off, seen by the monitor or as the sim stepped
        result.gaps = monitor.gaps(result.crossed, result.off)
        with contextlib.suppress(Exception):  # when the engine tripped, as its run file records it
            events = open_run(runner.writer.path).events
            result.tripped = runner.t0 + float(events[events["kind"] == "trip"]["time"].iloc[0])
    return result


# -- the table ---------------------------------------------------------------------------------


def _mean(values: Sequence[float | None]) -> str:
    xs = [x for x in values if x is not None]
    return f"{np.mean(xs):8.3f}" if xs else f"{'—':>8}"


def report(trips: dict[str, list[Outcome]]) -> bool:
    """Print the table; True if every signal meets its bound."""
    head = (
        f"{'signal':<20}{'interval s':>11}{'trips':>6}{'p50':>9}{'p99':>9}{'max':>9}{'bound':>10}"
        f"  {'verdict':<8}{'→trip s':>8}{'→off s':>8}"
    )
    print("\n" + head + "\n" + "-" * len(head))
    every = True
    for signal, runs in trips.items():
        interval = runs[0].interval
        latencies = np.array([r.latency for r in runs if r.latency is not None])
        missed = len(runs) - len(latencies)
        stats = [np.percentile(latencies, 50), np.percentile(latencies, 99), latencies.max()] if len(latencies) else []
        if signal == "stale data":  # in intervals; every trip within the bound
            shown = [f"{x / interval:7.2f} ×" for x in stats]
            ok, bound = bool(stats) and stats[2] / interval <= STALE_BOUND, f"{STALE_BOUND:g} ×"
        else:
            shown = [f"{x:7.3f} s" for x in stats]
            ok, bound = bool(stats) and stats[1] <= 1.0 + interval, f"{1.0 + interval:.3f} s"
        ok = ok and not missed
        every &= ok
        counted = f"{len(latencies)}" + (f"/{len(runs)}" if missed else "")
        print(
            f"{signal:<20}{interval:>11.3g}{counted:>6}{''.join(f'{x:>9}' for x in shown or ['—'] * 3)}{bound:>10}"
            f"  {'PASS' if ok else 'FAIL':<8}"
            f"{_mean([r.tripped - r.crossed if r.tripped and r.crossed is not None else None for r in runs])}"
            f"{_mean([r.off - r.tripped if r.off and r.tripped else None for r in runs])}"
        )
    for signal, runs in trips.items():
        for r in runs:
            if r.latency is None:
                print(f"  missed {signal}: {r.status}: {r.reason} (crossed {r.crossed}, off {r.off})")
    return every


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--trips", type=int, default=20, help="trips of each signal (default 20)")
    parser.add_argument("--quick", action="store_true", help="3 trips of each signal (smoke test)")
    parser.add_argument("--signals", help=f"comma-separated subset of: {', '.join(SIGNALS)}")
    parser.add_argument("--parallel", type=int, default=4, help="trips at a time, each on its own lab (default 4)")
    parser.add_argument(
        "--dt", type=float, default=WORLD_DT, help=f"the virtual world's time step, s (default {WORLD_DT:g})"
    )
    args = parser.parse_args(argv)
    signals = [s.strip() for s in args.signals.split(",")] if args.signals else list(SIGNALS)
    unknown = [s for s in signals if s not in SIGNALS]
    if unknown:
        parser.error(f"unknown signal(s) {', '.join(unknown)} (known: {', '.join(SIGNALS)})")
    n = 3 if args.quick else args.trips
    print(
        f"{n} trips of each of {len(signals)} signals, {args.parallel} at a time, each on a fresh virtual lab "
        f"(clock ×1, world steps of {args.dt:g} s); the monitor looks every {MONITOR_PERIOD * 1000:g} ms"
    )
    started = time.monotonic()
    trips: dict[str, list[Outcome]] = {s: [] for s in signals}
    plan = [(i, signal) for i in range(n) for signal in signals]  # signal after signal: a slow spell falls on all
    with tempfile.TemporaryDirectory(prefix="cellrig-bench-safety-") as tmp, ThreadPoolExecutor(args.parallel) as pool:
        seeds = {(i, s): 1000 * i + SIGNALS.index(s) for i, s in plan}
        futures = {
            pool.submit(trip, s, seeds[i, s], Path(tmp) / f"{i}-{SIGNALS.index(s)}", args.dt): (i, s) for i, s in plan
        }
        for future in as_completed(futures):
            i, signal = futures[future]
            r = future.result()
            trips[signal].append(r)
            shown = f"{r.latency:.3f} s" if r.latency is not None else f"MISSED ({r.status}: {r.reason})"
            print(f"round {i + 1}/{n} {signal:<20} {shown}", flush=True)
    every = report(trips)
    gaps = np.array([r.gaps for runs in trips.values() for r in runs])
    print(
        f"\nthe monitor looked every {np.nanmean(gaps[:, 0]) * 1000:.2f} ms on average "
        f"(longest gap during a trip {np.nanmax(gaps[:, 1]) * 1000:.1f} ms); "
        "→trip: crossing → the engine's trip event, →off: trip event → outputs off (means)"
    )
    print(
        f"{'PASS' if every else 'FAIL'}  every p99 ≤ 1 s + one sample interval, stale data within "
        f"{STALE_BOUND:g} intervals; {len(plan)} trips in {time.monotonic() - started:.0f} s wall"
    )


if __name__ == "__main__":
    main()
