"""Synthetic cycle-life runs with known ground truth, for tests and benchmarks.

Every cycle is a 1C CC-CV charge to ``v_max`` ending at C/20, a rest holding a 10 s discharge
pulse (DCIR), a CC discharge to empty and a rest, logged like the engine logs a cycler: each
row holds the mean current and voltage over the interval since the previous row.  The cell is
a simple model chosen so that every summary number has a closed form:

* OCV(SOC) from :class:`OCVCurve`: SOC as a function of voltage is a sum of logistic steps, so
  dQ/dV has peaks at known voltages;
* terminal voltage = OCV + I·R (ohmic only), R growing as the cell fades;
* capacity fading along :class:`FadeCurve`: straight segments joined at a knee onset and a knee,
  reaching 80 % retention at a chosen cycle (knee ≈ 95 %, onset ≈ 97.1 % retention by default:
  the averages Fermín-Cueto et al. report for the Severson cells, docs/analysis.md §1.3);
* charge stored = coulombic efficiency × charge passed; temperature = ambient + θ·I²·R.

Everything is generated as (cycles × samples) numpy arrays in one pass: no Python loop over
cycles.  :func:`synthesize` returns the columns and the truth, :func:`write_run` a finished run
file, :func:`write_campaign` many of them in parallel processes.
"""

import math
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from ..storage import Column, RunWriter

EOL_RETENTION = 0.8
#: Share of a cycle's rows per phase: CC charge, CV charge, rest, pulse, rest, CC discharge, rest.
PHASE_SHARES = (0.38, 0.15, 0.03, 0.01, 0.02, 0.36)
PHASE_STEPS = (1, 1, 2, 2, 2, 3, 4)  # the engine's step numbers: 1 charge, 2 rest, 3 discharge, 4 rest


def _logistic(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass(frozen=True)
class OCVCurve:
    """Open-circuit voltage vs state of charge, with incremental-capacity peaks at known voltages.

    SOC(V) = background·(V − v_min)/(v_max − v_min) + Σ share_k·logistic((V − V_k)/width_k),
    scaled to run from 0 at ``v_min`` to 1 at ``v_max``; dQ/dV then peaks at each V_k.
    """

    v_min: float = 3.0
    v_max: float = 4.2
    peaks: tuple[tuple[float, float, float], ...] = ((3.45, 0.025, 0.25), (3.68, 0.03, 0.3), (3.95, 0.025, 0.2))
    background: float = 0.25
    points: int = 4001

    @cached_property
    def _table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        v = np.linspace(self.v_min, self.v_max, self.points)
        raw = self.background * (v - self.v_min) / (self.v_max - self.v_min)
        for centre, width, share in self.peaks:
            raw = raw + share * _logistic((v - centre) / width)
        soc = (raw - raw[0]) / (raw[-1] - raw[0])
        energy = np.concatenate(([0.0], np.cumsum(np.diff(soc) * (v[1:] + v[:-1]) / 2)))  # ∫ V dSOC
        return soc, v, energy

    def voltage(self, soc: np.ndarray) -> np.ndarray:
        """Get the OCV (V) at each state of charge (0..1)."""
        s, v, _ = self._table
        return np.interp(soc, s, v)

    def soc(self, voltage: np.ndarray) -> np.ndarray:
        """Get the state of charge at each OCV (V)."""
        s, v, _ = self._table
        return np.interp(voltage, v, s)

    def energy(self, soc: np.ndarray) -> np.ndarray:
        """Get ∫ OCV dSOC from empty to ``soc`` (Wh per Ah of capacity)."""
        s, _, e = self._table
        return np.interp(soc, s, e)


@dataclass(frozen=True)
class FadeCurve:
    """Capacity retention vs cycle: three straight segments, joined smoothly at the knee onset and the knee.

    Retention starts at 1, reaches ``retention_at_onset`` at cycle ``onset``, ``retention_at_knee``
    at cycle ``knee`` and 0.8 at cycle ``eol`` (which may lie beyond the cycles run: a censored
    cell).  ``onset=None`` leaves out the middle segment (a single knee).  ``smoothing`` is the
    width of each joint in cycles.
    """

    knee: float = 800.0
    eol: float = 1000.0
    onset: float | None = None
    retention_at_knee: float = 0.95
    retention_at_onset: float = 0.971
    smoothing: float = 2.0

    def __post_init__(self) -> None:
        start = self.onset if self.onset is not None else self.knee
        if not 0 < start <= self.knee < self.eol:
            raise ValueError(f"need 0 < onset ≤ knee < eol, got onset={self.onset}, knee={self.knee}, eol={self.eol}")
        before, middle, after = self._slopes
        if not 0 <= before <= middle <= after or before == after:
            raise ValueError(f"fade must accelerate at each joint, got slopes per cycle {before}, {middle}, {after}")

    @property
    def _slopes(self) -> tuple[float, float, float]:
        """Fade per cycle before the onset, between onset and knee, after the knee."""
        after = (self.retention_at_knee - EOL_RETENTION) / (self.eol - self.knee)
        if self.onset is None:
            before = (1.0 - self.retention_at_knee) / self.knee
            return before, before, after
        before = (1.0 - self.retention_at_onset) / self.onset
        middle = (self.retention_at_onset - self.retention_at_knee) / (self.knee - self.onset)
        return before, middle, after

    def retention(self, cycle: np.ndarray) -> np.ndarray:
        """Get the noise-free retention (fraction of the initial capacity) at each cycle."""
        before, middle, after = self._slopes
        n = np.asarray(cycle, dtype=float)
        out = 1.0 - before * n - (after - middle) * self._hinge(n - self.knee)
        if self.onset is not None:
            out -= (middle - before) * self._hinge(n - self.onset)
        return out

    def _hinge(self, x: np.ndarray) -> np.ndarray:
        """max(x, 0), rounded over ``smoothing`` cycles (a softplus)."""
        w = self.smoothing
        return w * np.logaddexp(0.0, x / w) if w > 0 else np.maximum(x, 0.0)

    def first_crossing(self, cycles: int, threshold: float = EOL_RETENTION) -> int | None:
        """Get the first cycle (1..cycles) whose noise-free retention is below ``threshold``, or None."""
        below = np.flatnonzero(self.retention(np.arange(1, cycles + 1)) < threshold)
        return int(below[0]) + 1 if len(below) else None


@dataclass(frozen=True)
class SyntheticCell:
    """Everything that defines one synthetic run: cell, protocol, ageing, noise and seed.

    Rates are multiples of the initial capacity (C-rates); times in seconds; temperatures in degC.
    ``temperature`` says where the cell temperature is logged: a ``temperature`` column of the
    cycler stream, a separate ``daq`` stream every ``daq_period`` s, or nowhere.
    ``outliers`` scales the capacity of chosen cycles, e.g. ``((120, 0.7),)`` for one bad cycle.
    """

    cell_id: str = "SYN-001"
    cycles: int = 1000
    samples: int = 1000
    capacity: float = 5.0
    fade: FadeCurve = field(default_factory=FadeCurve)
    ocv: OCVCurve = field(default_factory=OCVCurve)
    resistance: float = 0.010
    resistance_growth: float = 0.5  # relative rise of R by the time retention reaches 80 %
    charge_rate: float = 1.0
    end_current_rate: float = 0.05
    discharge_rate: float = 1.0
    pulse_rate: float = 1.0
    pulse_s: float = 10.0
    rest_s: float = 600.0
    coulombic_efficiency: float = 0.9995
    capacity_noise: float = 3e-4
    voltage_noise: float = 2e-4
    ambient: float = 25.0
    thermal_resistance: float = 3.0  # K/W
    temperature_noise: float = 0.05
    temperature: Literal["cycler", "daq", "none"] = "cycler"
    daq_period: float = 10.0
    outliers: tuple[tuple[int, float], ...] = ()
    chemistry: str = "synthetic NMC/graphite"
    protocol: str = "synthetic-cccv-1C"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.samples < 60:
            raise ValueError(f"samples per cycle must be ≥ 60 (every phase needs rows), not {self.samples}")
        if self.cycles < 1:
            raise ValueError(f"cycles must be ≥ 1, not {self.cycles}")

    @property
    def phase_rows(self) -> tuple[int, ...]:
        """Rows per cycle of each phase (CC, CV, rest, pulse, rest, discharge, rest)."""
        rows = [max(2, int(share * self.samples)) for share in PHASE_SHARES]
        return (*rows, self.samples - sum(rows))


@dataclass
class SyntheticRun:
    """The columns of each stream, the run metadata and the ground truth of one synthetic run."""

    streams: dict[str, dict[str, np.ndarray]]
    meta: dict
    truth: pd.DataFrame  # one row per cycle, named like cellrig.analysis.cycle_summary
    cell: SyntheticCell

    @property
    def eol(self) -> int | None:
        """The first cycle the noise-free retention is below 80 %, None if the run ends before."""
        return self.cell.fade.first_crossing(self.cell.cycles)


COLUMNS = {
    "cycler": {
        "voltage": Column("V", "f8", "cell voltage (mean over the interval since the previous row)"),
        "current": Column("A", "f8", "current, positive charging (mean over the interval since the previous row)"),
        "step": Column("", "i4", "step within the cycle (1 charge, 2 rest, 3 discharge, 4 rest)"),
        "cycle": Column("", "i4", "cycle number, from 1"),
    },
    "temperature": Column("degC", "f8", "cell surface temperature"),
}


class _Phases:
    """Per-cycle phase blocks (cycles × rows) of interval length, current, voltage and SOC."""

    def __init__(self, cycles: int) -> None:
        self.cycles = cycles
        self.dt: list[np.ndarray] = []
        self.current: list[np.ndarray] = []
        self.voltage: list[np.ndarray] = []

    def add(self, rows: int, duration: np.ndarray, current: np.ndarray, voltage: np.ndarray) -> None:
        shape = (self.cycles, rows)
        self.dt.append(np.broadcast_to((duration / rows)[:, None], shape))
        self.current.append(np.broadcast_to(current, shape))
        self.voltage.append(np.broadcast_to(voltage, shape))

    def stack(self, name: str) -> np.ndarray:
        return np.concatenate(getattr(self, name), axis=1)


def _midpoints(rows: int) -> np.ndarray:
    """Fractions (k + ½)/rows of a phase at the middle of each row's interval, shape (1, rows)."""
    return ((np.arange(rows) + 0.5) / rows)[None, :]


def synthesize(cell: SyntheticCell) -> SyntheticRun:
    """Generate a synthetic run's columns and its per-cycle ground truth (seeded, vectorised)."""
    rng = np.random.default_rng(cell.seed)
    n = np.arange(1, cell.cycles + 1)
    fade = cell.fade.retention(n)
    factor = np.ones(cell.cycles)
    for cycle, scale in cell.outliers:
        factor[cycle - 1] = scale
    cap = cell.capacity * fade * factor * (1.0 + cell.capacity_noise * rng.standard_normal(cell.cycles))
    r = cell.resistance * (1.0 + cell.resistance_growth * (1.0 - fade) / (1.0 - EOL_RETENTION))
    ocv, ce = cell.ocv, cell.coulombic_efficiency
    i_c, i_e = cell.charge_rate * cell.capacity, cell.end_current_rate * cell.capacity
    i_d, i_p = cell.discharge_rate * cell.capacity, cell.pulse_rate * cell.capacity
    s_cc = ocv.soc(ocv.v_max - i_c * r)  # CC ends where OCV + I·R reaches the limit
    q_cc, q_cv = s_cc * cap / ce, (1.0 - s_cc) * cap / ce
    tau = 3600.0 * q_cv / (i_c - i_e)  # CV current decays as exp(−t/τ) from I_c to I_end
    t_cc, t_cv = 3600.0 * q_cc / i_c, tau * math.log(i_c / i_e)
    ds_pulse = i_p * cell.pulse_s / 3600.0 / cap
    t_dis = 3600.0 * (1.0 - ds_pulse) * cap / i_d
    rows = cell.phase_rows
    col = {k: v[:, None] for k, v in {"cap": cap, "r": r, "s_cc": s_cc, "tau": tau, "ds": ds_pulse}.items()}

    ph = _Phases(cell.cycles)
    f = _midpoints(rows[0])
    ph.add(rows[0], t_cc, i_c, ocv.voltage(col["s_cc"] * f) + i_c * col["r"])
    k = np.arange(rows[1])[None, :]
    x = (t_cv / rows[1])[:, None] / col["tau"]  # each row's interval in units of τ
    cv_current = i_c / x * (np.exp(-k * x) - np.exp(-(k + 1) * x))  # exact mean over each interval
    ph.add(rows[1], t_cv, cv_current, ocv.v_max)
    rest_before, rest_after = 0.6 * cell.rest_s, 0.4 * cell.rest_s
    ph.add(rows[2], np.full(cell.cycles, rest_before), 0.0, ocv.voltage(np.ones((cell.cycles, 1))))
    s_pulse = 1.0 - col["ds"] * _midpoints(rows[3])
    ph.add(rows[3], np.full(cell.cycles, cell.pulse_s), -i_p, ocv.voltage(s_pulse) - i_p * col["r"])
    ph.add(rows[4], np.full(cell.cycles, rest_after), 0.0, ocv.voltage(1.0 - col["ds"]))
    s_dis = (1.0 - col["ds"]) * (1.0 - _midpoints(rows[5]))
    ph.add(rows[5], t_dis, -i_d, ocv.voltage(s_dis) - i_d * col["r"])
    ph.add(rows[6], np.full(cell.cycles, cell.rest_s), 0.0, ocv.voltage(np.zeros((cell.cycles, 1))))

    dt, current = ph.stack("dt"), ph.stack("current")
    voltage = ph.stack("voltage") + cell.voltage_noise * rng.standard_normal(dt.shape)
    steps = np.repeat(np.array(PHASE_STEPS, dtype=np.int32), rows)
    first = {  # a leading row at t = 0: the cycler's first reading, with no interval before it
        "time": 0.0,
        "voltage": float(ocv.voltage(0.0) + i_c * r[0]),
        "current": i_c,
        "step": 1,
        "cycle": 1,
    }
    time = np.concatenate(([0.0], np.cumsum(dt)))
    cycler = {
        "time": time,
        "voltage": np.concatenate(([first["voltage"]], voltage.ravel())),
        "current": np.concatenate(([first["current"]], current.ravel())),
        "step": np.concatenate(([1], np.tile(steps, cell.cycles))).astype(np.int32),
        "cycle": np.concatenate(([1], np.repeat(n, cell.samples))).astype(np.int32),
    }
    ends = time[cell.samples :: cell.samples]  # end time of each cycle
    heating = np.concatenate(([0.0], (current**2 * col["r"]).ravel())) * cell.thermal_resistance
    temperature = cell.ambient + heating + cell.temperature_noise * rng.standard_normal(len(time))
    streams = {"cycler": cycler}
    if cell.temperature == "cycler":
        cycler["temperature"] = temperature
    elif cell.temperature == "daq":
        t_daq = np.arange(0.0, time[-1], cell.daq_period)
        streams["daq"] = {"time": t_daq, "temperature": np.interp(t_daq, time, temperature)}

    e_charge = cap / ce * ocv.energy(s_cc) + i_c**2 * r * t_cc / 3600.0 + ocv.v_max * q_cv
    e_discharge = cap * ocv.energy(1.0) - (i_p**2 * r * cell.pulse_s + i_d**2 * r * t_dis) / 3600.0
    v_pulse_end = ocv.voltage(1.0 - ds_pulse * (1.0 - 0.5 / rows[3])) - i_p * r
    durations = t_cc + t_cv + cell.pulse_s + 2 * cell.rest_s + t_dis
    truth = pd.DataFrame(
        {
            "cycle": n,
            "start_time": ends - durations,
            "duration": durations,
            "charge_capacity": cap / ce,
            "discharge_capacity": cap,
            "charge_energy": e_charge,
            "discharge_energy": e_discharge,
            "coulombic_efficiency": np.full(cell.cycles, ce),
            "energy_efficiency": e_discharge / e_charge,
            "cc_charge_capacity": q_cc,
            "cv_charge_capacity": q_cv,
            "cc_charge_time": t_cc,
            "cv_charge_time": t_cv,
            "charge_time": t_cc + t_cv,
            "discharge_time": cell.pulse_s + t_dis,
            "rest_time": np.full(cell.cycles, 2 * cell.rest_s),
            "mean_charge_voltage": e_charge / (cap / ce),
            "mean_discharge_voltage": e_discharge / cap,
            "end_charge_voltage": np.full(cell.cycles, ocv.v_max),
            "end_discharge_voltage": ocv.voltage(s_dis[:, -1]) - i_d * r,
            "dc_internal_resistance": (ocv.voltage(1.0) - v_pulse_end) / i_p,
            "resistance": r,
            "retention": fade * factor,
        }
    )
    if cell.temperature != "none":
        truth = truth.join(_temperature_truth(streams, cell.temperature, ends), on="cycle")
    return SyntheticRun(streams, _meta(cell), truth, cell)


def _temperature_truth(streams: dict, where: str, ends: np.ndarray) -> pd.DataFrame:
    """Min, mean and max of the temperature samples inside each cycle (by pandas, not by cellrig's kernel)."""
    s = streams[where]
    cycle = np.searchsorted(ends, s["time"], side="left") + 1  # a sample at a cycle's end time belongs to it
    df = pd.DataFrame({"cycle": cycle, "t": s["temperature"]})
    g = df[df["cycle"] <= len(ends)].groupby("cycle")["t"]
    return pd.DataFrame({"temperature_min": g.min(), "temperature_mean": g.mean(), "temperature_max": g.max()})


def _meta(cell: SyntheticCell) -> dict:
    spec = asdict(cell)
    return {
        "protocol": {"name": cell.protocol, "temperature_degC": cell.ambient, "synthetic": True},
        "cell": {
            "id": cell.cell_id,
            "chemistry": cell.chemistry,
            "nominal_capacity_Ah": cell.capacity,
            "min_voltage_V": cell.ocv.v_min,
            "max_voltage_V": cell.ocv.v_max,
        },
        "synthetic": {
            "seed": cell.seed,
            "fade": {k: v for k, v in spec["fade"].items() if v is not None},
            "resistance_ohm": cell.resistance,
        },
    }


def write_run(path: str | os.PathLike, cell: SyntheticCell | SyntheticRun) -> SyntheticRun:
    """Write a synthetic run as a finished run file (a new file: never an overwrite)."""
    run = cell if isinstance(cell, SyntheticRun) else synthesize(cell)
    streams = {"cycler": dict(COLUMNS["cycler"])}
    if "temperature" in run.streams["cycler"]:
        streams["cycler"]["temperature"] = COLUMNS["temperature"]
    if "daq" in run.streams:
        streams["daq"] = {"temperature": COLUMNS["temperature"]}
    with RunWriter.create(path, streams, run.meta, cycle_stream="cycler", flush_interval=3600, fsync=False) as w:
        for name, columns in run.streams.items():
            w.append(name, **columns)
    return run


def _write_one(item: tuple[Path, SyntheticCell]) -> Path:
    path, cell = item
    write_run(path, cell)
    return path


def write_campaign(folder: str | os.PathLike, cells: Iterable[SyntheticCell], *, workers: int = 1) -> list[Path]:
    """Write one run file per cell (``<cell_id>.h5``) into ``folder``, in ``workers`` processes."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    items = [(folder / f"{c.cell_id}.h5", c) for c in cells]
    if workers <= 1:
        return [_write_one(i) for i in items]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(_write_one, items))


def severson_like(count: int, *, cycles: int = 1000, samples: int = 1000, seed: int = 0) -> Sequence[SyntheticCell]:
    """Cells with knee and end of life spread over 150–2,300 cycles, like Severson et al. 2019.

    The cycle-life range is the one reported for the 124 Severson cells (docs/analysis.md
    §2.1); cells whose end of life lies beyond ``cycles`` are censored.
    """
    rng = np.random.default_rng(seed)
    eol = np.exp(rng.uniform(np.log(150), np.log(2300), count))
    base = SyntheticCell(cycles=cycles, samples=samples)
    return [
        replace(
            base,
            cell_id=f"SYN-{i + 1:03d}",
            fade=FadeCurve(knee=0.8 * e, onset=0.68 * e, eol=e),
            seed=seed * 100_003 + i,
        )
        for i, e in enumerate(eol)
    ]


@dataclass(frozen=True)
class SyntheticAbuse:
    """A nail or crush test with a known outcome, logged like the engine logs an abuse run.

    The DAQ (1 Hz) holds the cell surface temperature ``t_cell`` and ``voltage``; the rig (10 Hz)
    ``position``, ``force`` and its own ``voltage``.  The ram reaches the cell at ``contact`` s and the
    cell shorts at ``short_at``; with ``runaway`` the temperature then self-heats at ``onset_rate``
    for ``onset_s`` and runs away at ``runaway_rate`` to ``peak``, the voltage collapsing; without,
    it warms by ``warming`` K and cools again.  ``observations`` go to the run's ``meta/observations``.
    """

    cell_id: str = "ABU-001"
    protocol: str = "nail-gbt31485"
    chemistry: str = "synthetic NMC/graphite"
    duration: float = 4300.0
    contact: float = 598.0
    short_at: float = 600.0
    runaway: bool = True
    onset_rate: float = 0.2  # °C/s
    onset_s: float = 30.0
    runaway_rate: float = 20.0  # °C/s
    peak: float = 650.0
    warming: float = 20.0
    cooling_s: float = 600.0
    ambient: float = 25.0
    voltage: float = 4.15
    speed: float = 25.0  # mm/s
    depth: float = 32.0  # mm
    stiffness: float = 0.2  # kN/mm
    noise: float = 0.05  # °C
    observations: tuple[tuple[str, float | bool], ...] = ()
    seed: int = 0


def abuse_streams(test: SyntheticAbuse) -> dict[str, dict[str, np.ndarray]]:
    """The ``daq`` and ``rig`` columns of a synthetic abuse test (seeded)."""
    rng = np.random.default_rng(test.seed)
    t = np.arange(0.0, test.duration + 0.5)
    after = np.maximum(t - test.short_at, 0.0)
    if test.runaway:
        onset = test.ambient + test.onset_rate * np.minimum(after, test.onset_s)
        start = test.ambient + test.onset_rate * test.onset_s
        rise_s = (test.peak - start) / test.runaway_rate
        run = np.maximum(after - test.onset_s, 0.0)
        hot = np.minimum(start + test.runaway_rate * run, test.peak)
        cooling = np.maximum(run - rise_s, 0.0)
        temperature = np.where(run > 0, test.ambient + (hot - test.ambient) * np.exp(-cooling / test.cooling_s), onset)
        collapse = test.short_at + test.onset_s
        voltage = np.where(t < test.short_at, test.voltage, np.where(t < collapse, test.voltage - 0.3, 0.05))
    else:
        temperature = test.ambient + test.warming * (1 - np.exp(-after / 60.0)) * np.exp(-after / test.cooling_s)
        voltage = np.where(t < test.short_at, test.voltage, test.voltage - 0.3)
    rig_t = np.arange(0.0, test.duration + 0.05, 0.1)
    position = np.clip(test.speed * (rig_t - test.contact), 0.0, test.depth)
    return {
        "daq": {
            "time": t,
            "t_cell": temperature + test.noise * rng.standard_normal(len(t)),
            "voltage": voltage + 1e-3 * rng.standard_normal(len(t)),
        },
        "rig": {
            "time": rig_t,
            "position": position,
            "force": test.stiffness * position,
            "voltage": np.interp(rig_t, t, voltage),
        },
    }


ABUSE_COLUMNS = {
    "daq": {"t_cell": Column("degC", "f8", "cell surface thermocouple"), "voltage": Column("V", "f8", "cell voltage")},
    "rig": {
        "position": Column("mm", "f8", "ram position from home"),
        "force": Column("kN", "f8", "load cell, compressive positive"),
        "voltage": Column("V", "f8", "cell voltage on the rig's fast channel"),
    },
}


def _criteria(protocol: str) -> str:
    """The pass criteria of a library protocol, as its runs record them."""
    from ..protocols import library  # synthetic runs stand in for the library's; analysis needs no protocols

    criteria = library.header(protocol).criteria
    return criteria.record() if criteria else ""


def write_abuse_run(path: str | os.PathLike, test: SyntheticAbuse) -> dict[str, dict[str, np.ndarray]]:
    """Write a synthetic abuse test as a finished run file (protocol kind ``abuse``); get its columns."""
    streams = abuse_streams(test)
    meta = {
        "protocol": {"name": test.protocol, "criteria": _criteria(test.protocol), "kind": "abuse", "synthetic": True},
        "cell": {"id": test.cell_id, "chemistry": test.chemistry},
    }
    if test.observations:
        meta["observations"] = dict(test.observations)
    with RunWriter.create(path, ABUSE_COLUMNS, meta, flush_interval=3600, fsync=False) as w:
        for name, columns in streams.items():
            w.append(name, **columns)
    return streams
