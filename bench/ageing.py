"""Ageing benchmark: do the virtual lab's cells age like the published cells they are modelled on?

What it measures
    checkpoints  each source's test conditions, run on a virtual cell (``cellrig.sim.cell.Cell`` stepped
                 directly: storage at a temperature and SOC, or CC cycling over a SOC window), beside
                 the source's fitted law evaluated at the same conditions (the papers' fits; the
                 laws' constants are in docs/ageing.md).  Printed: simulated and published
                 capacity loss and the relative error; target: within 15 %.  What differs between
                 the two is what a real test has and a fit leaves out: the voltage moving as the cell
                 ages, self-heating, the other mechanisms running alongside.
    batch        a Severson-like batch (Severson et al. 2019: A123 LFP/graphite, 1.1 Ah, 30 °C):
                 ``--cells`` cells, each with a production line's spread and its own two-step fast
                 charge (C1 to Q1, then C2 to 80 % of nominal; C1 drawn from 3.6–8C, Q1 from 10–70 %,
                 C2 from 3.6–4.8C: assumed ranges, of the kind Severson et al. tested), then
                 1C CC-CV to 3.6 V, rests of 5 min, a 4C discharge to 2.5 V, until the discharge
                 capacity falls below 80 % of nominal.  The first 100 cycles are recorded and handed
                 to cellrig's own early-prediction code (``cellrig.analysis.early``).  Printed: the
                 lives, the Pearson correlation between log₁₀ var(ΔQ₁₀₀₋₁₀) and log₁₀ cycle life
                 (target |ρ| ≥ 0.8; Severson's was −0.93), and the cross-validated error of the
                 variance model against predicting the mean life (target: at least 2× smaller).
                 One dask task per cell on a process pool.

    python bench/ageing.py [--cells 40] [--seed 0]
"""

import argparse
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import dask
import numpy as np
import pandas as pd

from cellrig.analysis.early import VARIANCE_FEATURES, features_from_columns, fit_cycle_life
from cellrig.sim.ageing import NaumannCalendar, SchmalstiegCalendar, SchmalstiegCycle, WangCycle, Window
from cellrig.sim.cell import LFP, NMC811, Cell, Chemistry, production_spread

DAY = 86400.0
TARGET_ERROR = 0.15
TARGET_RHO = 0.8
TARGET_GAIN = 2.0


# -- checkpoints ---------------------------------------------------------------------------------


def stored(chemistry: Chemistry, celsius: float, soc: float, days: float) -> float:
    """Capacity loss of a cell stored at ``celsius`` and ``soc`` for ``days``."""
    cell = Cell(chemistry, 5.0, soc=soc, temperature=celsius, ambient=celsius)
    for _ in range(round(days * 24)):
        cell.step(0.0, 3600.0)
    return cell.fade()


def cycled(chemistry: Chemistry, celsius: float, c_rate: float, window: tuple[float, float], cycles: int) -> Cell:
    """A cell after ``cycles`` CC cycles at ``c_rate`` between the SOCs of ``window``, in air at ``celsius``."""
    cell = Cell(chemistry, 5.0, soc=window[0], temperature=celsius, ambient=celsius)
    current, dt = c_rate * cell.capacity_ah, 30.0 / c_rate
    for _ in range(cycles):
        while cell.soc < window[1]:
            cell.step(current, dt)
        while cell.soc > window[0]:
            cell.step(-current, dt)
    return cell


def mean_ocv(chemistry: Chemistry, window: tuple[float, float]) -> float:
    """The mean OCV of a fresh cell over a SOC window (what Schmalstieg's V̄ is)."""
    socs = np.linspace(*window, 201)
    return float(np.mean([Cell(chemistry, soc=s).ocv() for s in socs]))


def conditions(
    celsius: float, ocv: float = 3.7, soc: float = 0.5, dod: float = 0.0, throughput: float = 0.0, c_rate: float = 0.0
) -> Window:
    """One window holding a whole test's conditions: the published laws are evaluated on it."""
    return Window(
        seconds=1.0,
        rest_seconds=1.0,
        kelvin=celsius + 273.15,
        ocv=ocv,
        soc=soc,
        mean_voltage=ocv,
        dod=dod,
        charged=throughput / 2,
        discharged=throughput / 2,
        charge_rate=c_rate,
        discharge_rate=c_rate,
    )


@dataclass(frozen=True)
class Checkpoint:
    source: str
    test: str
    simulate: Callable[[], float]
    published: Callable[[], float]


def _schmalstieg_calendar(celsius: float, soc: float, days: float) -> Checkpoint:
    volts = Cell(NMC811, soc=soc).ocv()
    law = SchmalstiegCalendar()
    return Checkpoint(
        "Schmalstieg 2014 calendar",
        f"NMC stored {days:.0f} d at {celsius:.0f} °C, {soc:.0%} SOC ({volts:.2f} V)",
        lambda: stored(NMC811, celsius, soc, days),
        lambda: law.rate(conditions(celsius, ocv=volts), 0.0) * days**law.exponent,
    )


def _schmalstieg_cycle(celsius: float, window: tuple[float, float], cycles: int) -> Checkpoint:
    dod, volts, c_rate = window[1] - window[0], mean_ocv(NMC811, window), 1.0
    days = cycles * 2 * dod / c_rate / 24
    calendar, cycle = SchmalstiegCalendar(), SchmalstiegCycle()
    w = conditions(celsius, ocv=volts, dod=dod)

    def published() -> float:
        return calendar.rate(w, 0.0) * days**calendar.exponent + cycle.rate(w, 0.0) * (2 * dod * cycles) ** 0.5

    return Checkpoint(
        "Schmalstieg 2014 cycle + calendar",
        f"NMC {cycles} cycles 1C, {dod:.0%} DOD at {window[0]:.0%}–{window[1]:.0%} SOC, {celsius:.0f} °C",
        lambda: cycled(NMC811, celsius, c_rate, window, cycles).fade(),
        published,
    )


def _naumann(celsius: float, soc: float, days: float) -> Checkpoint:
    law = NaumannCalendar()
    return Checkpoint(
        "Naumann 2018 calendar",
        f"LFP stored {days:.0f} d at {celsius:.0f} °C, {soc:.0%} SOC",
        lambda: stored(LFP, celsius, soc, days),
        lambda: law.rate(conditions(celsius, soc=soc), 0.0) * (days * DAY) ** law.exponent,
    )


def _wang(celsius: float, c_rate: float, cycles: int) -> Checkpoint:
    law = WangCycle()
    w = conditions(celsius, c_rate=c_rate, throughput=2 * 0.9 * cycles)
    return Checkpoint(
        "Wang 2011 cycle",
        f"LFP {cycles} cycles {c_rate:g}C, 90 % DOD, {celsius:.0f} °C",
        lambda: cycled(LFP, celsius, c_rate, (0.05, 0.95), cycles).fade(),
        lambda: law.rate(w, 0.0) * law.amount(w) ** law.exponent,
    )


CHECKPOINTS = (
    _schmalstieg_calendar(50.0, 0.5, 300),
    _schmalstieg_calendar(35.0, 0.9, 300),
    _schmalstieg_cycle(35.0, (0.1, 0.9), 1000),
    _schmalstieg_cycle(35.0, (0.4, 0.6), 2000),
    _naumann(40.0, 1.0, 300),
    _naumann(25.0, 0.5, 300),
    _wang(45.0, 0.5, 1000),
    _wang(15.0, 2.0, 2000),
)


def checkpoints() -> bool:
    print(f"{'source':34} {'test':58} {'simulated':>9} {'published':>9} {'error':>7}")
    ok = True
    for point in CHECKPOINTS:
        simulated, published = point.simulate(), point.published()
        error = simulated / published - 1
        ok &= abs(error) <= TARGET_ERROR
        print(f"{point.source:34} {point.test:58} {simulated:9.2%} {published:9.2%} {error:+7.1%}")
    return ok


# -- a Severson-like batch -----------------------------------------------------------------------

NOMINAL_AH, CHAMBER_C, V_MAX, V_MIN = 1.1, 30.0, 3.6, 2.5
POWER_CELL = 1 / 3  # the A123 18650 is a power cell: a third of the LFP preset's resistance (assumed)
RECORDED = 100  # cycles recorded for early prediction (Severson's first 100)
MAX_CYCLES = 3000


@dataclass(frozen=True)
class Protocol:
    c1: float
    q1: float
    c2: float

    def __str__(self) -> str:
        return f"{self.c1:.1f}C({self.q1:.0%})-{self.c2:.1f}C"


class Recorder:
    """Steps a cell through a cycle's steps, keeping the rows of the recorded cycles."""

    def __init__(self, cell: Cell) -> None:
        self.cell, self.time, self.rows = cell, 0.0, []
        self.cycle = self.step_no = 0

    def _tick(self, current: float, dt: float) -> None:
        self.cell.step(current, dt)
        self.time += dt
        if self.cycle <= RECORDED:
            self.rows.append((self.time, self.cell.voltage(current), current, self.cycle, self.step_no))

    def cc(self, current: float, dt: float, done: Callable[[], bool], charge: float = math.inf) -> float:
        """A constant-current step until ``done()`` or ``charge`` (Ah) passed; get the charge passed."""
        self.step_no += 1
        passed = 0.0
        while passed < charge and not done():
            self._tick(current, dt)
            passed += abs(current) * dt / 3600
        return passed

    def cv(self, volts: float, dt: float, until: float) -> None:
        """A constant-voltage step until the current falls to ``until``."""
        self.step_no += 1
        while (current := self.cell.current_for_voltage(volts)) > until:
            self._tick(current, dt)

    def rest(self, seconds: float, dt: float = 30.0) -> None:
        self.step_no += 1
        for _ in range(round(seconds / dt)):
            self._tick(0.0, dt)

    def columns(self) -> dict[str, np.ndarray]:
        t, v, i, cycle, step = (np.asarray(c) for c in zip(*self.rows, strict=True))
        return {"time": t, "voltage": v, "current": i, "cycle": cycle.astype(np.int64), "step": step.astype(np.int64)}


def severson_cell(protocol: Protocol, seed: int) -> tuple[dict[str, float], int]:
    """One cell's early-life features and its cycle life (first cycle below 80 % of nominal)."""
    spread = production_spread(random.Random(seed))
    spread["resistance_variation"] *= POWER_CELL
    cell = Cell(LFP, NOMINAL_AH, soc=0.0, temperature=CHAMBER_C, ambient=CHAMBER_C, **spread)
    rec, c = Recorder(cell), NOMINAL_AH

    def full(current: float) -> Callable[[], bool]:
        return lambda: cell.voltage(current) >= V_MAX

    for n in range(1, MAX_CYCLES + 1):
        rec.cycle, rec.step_no = n, 0
        dt = 2.0 if n <= RECORDED else 6.0
        q = rec.cc(protocol.c1 * c, dt, full(protocol.c1 * c), protocol.q1 * c)
        rec.cc(protocol.c2 * c, dt, full(protocol.c2 * c), max(0.8 * c - q, 0.0))
        rec.cc(c, dt, full(c))
        rec.cv(V_MAX, dt, c / 20)
        rec.rest(300.0)
        discharged = rec.cc(-4 * c, dt, lambda: cell.voltage(-4 * c) <= V_MIN)
        rec.rest(300.0)
        if discharged < 0.8 * NOMINAL_AH:
            break
    return features_from_columns(rec.columns(), nominal_capacity=NOMINAL_AH), n


def protocols(cells: int, seed: int) -> list[Protocol]:
    rng = random.Random(seed)
    return [Protocol(rng.uniform(3.6, 8.0), rng.uniform(0.1, 0.7), rng.uniform(3.6, 4.8)) for _ in range(cells)]


def batch(cells: int, seed: int) -> bool:
    plan = protocols(cells, seed)
    start = time.perf_counter()
    tasks = [dask.delayed(severson_cell)(p, seed * 1000 + k) for k, p in enumerate(plan)]
    results = dask.compute(*tasks, scheduler="processes", num_workers=2)
    wall = time.perf_counter() - start
    features = pd.DataFrame([f for f, _ in results])
    lives = pd.Series([life for _, life in results], dtype=float)
    rho = float(np.corrcoef(features["delta_q_log_variance"], np.log10(lives))[0, 1])
    model = fit_cycle_life(features, lives, columns=VARIANCE_FEATURES, seed=seed)
    gain = model.baseline_mape / model.cv_mape
    print(f"\n{cells} LFP cells, 30 °C, two-step fast charge, 4C discharge: simulated in {wall:.0f} s (2 processes)")
    for p, life in sorted(zip(plan, lives, strict=True), key=lambda x: x[1]):
        print(f"  {p!s:20} {life:6.0f} cycles")
    print(f"cycle lives {lives.min():.0f}–{lives.max():.0f} (mean {lives.mean():.0f}; Severson: 150–2,300, mean 806)")
    print(f"ρ(log var ΔQ100-10, log life) = {rho:+.3f}   (target |ρ| ≥ {TARGET_RHO}; Severson −0.93)")
    print(
        f"variance model, cross-validated: {model.cv_mape:.1f} % error, RMSE {model.cv_rmse:.0f} cycles; "
        f"mean life: {model.baseline_mape:.1f} %, RMSE {model.baseline_rmse:.0f} cycles -> {gain:.1f}× better "
        f"(target ≥ {TARGET_GAIN:g}×)"
    )
    return abs(rho) >= TARGET_RHO and gain >= TARGET_GAIN


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    ok = checkpoints()
    ok &= batch(args.cells, args.seed)
    print("\nall targets met" if ok else "\nSOME TARGETS MISSED")


if __name__ == "__main__":
    main()
