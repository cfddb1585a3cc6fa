"""Safety metrics of abuse tests: T1/T2/T3, dT/dt, voltage collapse, force at the short, EUCAR, pass/fail.

Definitions (docs/standards.md §7): T1 is the first temperature where dT/dt ≥ 0.02 °C/min (the ARC
seek threshold), T2 the first where dT/dt ≥ 1 °C/s, T3 the maximum.  dT/dt is the slope of a linear
regression over a trailing window (one of the two smoothing methods of docs/standards.md §7) on a uniform
resampling of the trace: causal, so a sudden rise is never detected before it happens.  One
window cannot serve both thresholds: 0.02 °C/min is far below thermocouple noise over 5 samples, so
T1 uses a long window (default 600 s) and T2 and the peak rate a short one (default 5 samples, the
minimum docs/standards.md §7 gives).  Both windows, the method and the sensor are stored in the result.

Hazard levels follow the EUCAR table of docs/standards.md §6; fire, rupture and explosion are observations (video,
operator), never inferred from temperature.  For cells without liquid electrolyte (sulfide
solid-state) the 50 %-of-electrolyte mass rule is not applicable: the raw mass loss is recorded and
the evidence says so (docs/standards.md §6).
"""

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import observations
from ..storage import Run, RunFile, open_run, run_file

#: a signal sampled on the ``time`` argument, or a (time, values) pair on its own time base
Signal = np.ndarray | tuple[np.ndarray, np.ndarray]

ONSET_RATE = 0.02 / 60  # °C/s, T1 threshold (docs/standards.md §7, S10)
TRIGGER_RATE = 1.0  # °C/s, T2 threshold (docs/standards.md §7, unverified)


@dataclass(frozen=True)
class SafetyOptions:
    """Thresholds and filter windows, recorded with every result."""

    onset_rate: float = ONSET_RATE  # °C/s for T1
    trigger_rate: float = TRIGGER_RATE  # °C/s for T2
    onset_window_s: float = 600.0  # regression window for T1: slope noise = noise·√(12/n³) ≪ 0.02 °C/min
    trigger_window_s: float = 5.0  # regression window for T2 and the peak rate (≥ 5 samples is enforced)
    baseline_s: float = 10.0  # the pre-test voltage is the median over the first baseline_s (before any drop)
    short_drop_v: float = 0.1  # short onset: V this far below pre-test (UN 38.3 T.6 ΔV ≥ 100 mV, docs/standards.md §3)
    collapse_fraction: float = 0.5  # collapse: voltage below this share of the pre-test voltage …
    collapse_v: float = 0.5  # … or below this many volts, whichever threshold is higher
    sensor: str = "thermocouple"

    def __post_init__(self) -> None:
        if not (0 < self.onset_rate < self.trigger_rate and self.onset_window_s > 0 and self.trigger_window_s > 0):
            raise ValueError("need 0 < onset_rate < trigger_rate and positive windows")


@dataclass(frozen=True)
class Observations:
    """What was seen during the test (video, operator): the EUCAR observables of docs/standards.md §6."""

    protection_activated: bool = False  # reversible, e.g. a CID or PTC tripped
    damaged: bool = False  # irreversible damage
    leakage: bool = False
    venting: bool = False
    smoke: bool = False  # smoke means the cell vented (or burnt): EUCAR level 4 at least
    fire: bool = False
    rupture: bool = False  # flying parts of the active mass
    explosion: bool = False
    video_ref: str = ""


@dataclass(frozen=True)
class SafetyResult:
    """Metrics of one abuse test; times in s on the run's clock, temperatures in °C; None = not reached."""

    t1: float | None
    t1_time: float | None
    t2: float | None
    t2_time: float | None
    t3: float
    t3_time: float
    max_rate: float  # °C/s, short-window smoothed
    max_rate_time: float
    rate_method: str
    sample_interval_s: float
    options: SafetyOptions
    pretest_voltage: float | None = None
    short_time: float | None = None
    collapse_time: float | None = None
    collapse_threshold_v: float | None = None
    t2_to_collapse_s: float | None = None
    t2_to_peak_s: float | None = None
    force_at_short: float | None = None
    position_at_short: float | None = None
    peak_force: float | None = None
    peak_gas: float | None = None
    mass_loss_g: float | None = None
    observed: Observations | None = None  # None: nothing recorded, so a verdict resting on observation is open
    eucar_level: int = 0
    eucar_evidence: dict[str, Any] = field(default_factory=dict)
    end_time: float = 0.0


@dataclass(frozen=True)
class Verdict:
    """Pass/fail against a clause: each criterion's text, whether it was met, and the evidence that decided."""

    standard: str  # the clause judged to
    passed: bool | None  # None: no pass/fail (the standard has none, or a criterion was not observed)
    criteria: tuple[tuple[str, bool | None, str], ...]  # text, met (None: not observed), the evidence that decided
    eucar_level: int

    @property
    def state(self) -> str:
        """PASS, FAIL, provisional (signals pass, observations missing) or report only (no criteria)."""
        if self.passed is not None:
            return "PASS" if self.passed else "FAIL"
        return "provisional" if any(met is None for _, met, _ in self.criteria) else "report only"


def _uniform(time: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The trace on a uniform grid at its median sampling interval."""
    dt = float(np.median(np.diff(time)))
    grid = np.arange(time[0], time[-1] + dt / 2, dt)
    return grid, np.interp(grid, time, values), dt


def _trailing_slope(values: np.ndarray, dt: float, window_s: float) -> tuple[np.ndarray, int]:
    """Slope (per s) of a linear regression over the trailing window of each sample, and the window in samples.

    Causal, so a step never shows before it happens; samples before the first full window get NaN
    (a trace shorter than the window uses all of it).
    """
    if values.size < 5:
        raise ValueError("a temperature trace needs at least 5 samples")
    n = min(max(5, round(window_s / dt)), values.size)
    i = np.arange(values.size)
    start = np.maximum(i - n + 1, 0)
    m = (i - start + 1).astype(float)
    x, y = i.astype(float), values - values[0]

    def window_sum(v: np.ndarray) -> np.ndarray:
        c = np.concatenate(([0.0], np.cumsum(v)))
        return c[i + 1] - c[start]

    sx, sy, sxx, sxy = window_sum(x), window_sum(y), window_sum(x * x), window_sum(x * y)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(m == n, (m * sxy - sx * sy) / (m * sxx - sx * sx), np.nan)
    return slope / dt, n


def _first_at_or_above(rate: np.ndarray, threshold: float) -> int | None:
    hits = np.flatnonzero(rate >= threshold)
    return int(hits[0]) if hits.size else None


def _series(sig: Signal | None, time: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    if sig is None:
        return None
    t, v = sig if isinstance(sig, tuple) else (time, sig)
    return np.asarray(t, float), np.asarray(v, float)


def _first_below(series: tuple[np.ndarray, np.ndarray], threshold: float) -> float | None:
    t, v = series
    hits = np.flatnonzero(v < threshold)
    return float(t[hits[0]]) if hits.size else None


def _at(series: tuple[np.ndarray, np.ndarray] | None, when: float | None) -> float | None:
    """The signal at ``when``, interpolated; None outside its time range."""
    if series is None or when is None or not series[0][0] <= when <= series[0][-1]:
        return None
    return float(np.interp(when, *series))


def _peak(series: tuple[np.ndarray, np.ndarray] | None) -> float | None:
    return None if series is None else float(np.nanmax(series[1]))


def _since(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start


def eucar_level(
    observed: Observations | None = None,
    *,
    mass_before_g: float | None = None,
    mass_after_g: float | None = None,
    electrolyte_mass_g: float | None = None,
    thermal_runaway: bool = False,
    shorted: bool = False,
) -> tuple[int, dict[str, Any]]:
    """Get the EUCAR hazard level (0–7, docs/standards.md §6) and the evidence it rests on.

    Explosion 7, rupture 6, fire 5; venting, smoke or mass loss ≥ 50 % of the electrolyte 4; leakage, a smaller
    mass loss or a thermal runaway (which levels 0–2 exclude) 3; irreversible damage or an internal short 2;
    passive protection 1.  Without liquid electrolyte (``electrolyte_mass_g`` 0 or unknown) the 50 % rule
    is not applied and the raw mass loss is recorded instead.
    """
    mass_loss = None if mass_before_g is None or mass_after_g is None else mass_before_g - mass_after_g
    evidence: dict[str, Any] = {
        "mass_before_g": mass_before_g,
        "mass_after_g": mass_after_g,
        "mass_loss_g": mass_loss,
        "electrolyte_mass_g": electrolyte_mass_g,
        "thermal_runaway": thermal_runaway,
        "internal_short": shorted,
        **vars(observed := observed or Observations()),
    }
    heavy_loss = light_loss = False
    if electrolyte_mass_g:
        if mass_loss is not None:
            evidence["mass_loss_pct_electrolyte"] = 100.0 * mass_loss / electrolyte_mass_g
            heavy_loss = mass_loss >= 0.5 * electrolyte_mass_g
            light_loss = 0 < mass_loss < 0.5 * electrolyte_mass_g
    else:
        evidence["adaptation"] = (
            "no liquid electrolyte (or its mass unknown): the 50 % electrolyte-mass rule is not applicable; "
            "raw mass loss recorded, levels 3–4 from observed leakage/venting only"
        )
    rules = (
        (7, observed.explosion, "explosion"),
        (6, observed.rupture, "rupture (flying parts)"),
        (5, observed.fire, "fire or flame"),
        (4, observed.venting or observed.smoke or heavy_loss, "venting, smoke or mass loss ≥ 50 % of electrolyte"),
        (3, observed.leakage or light_loss or thermal_runaway, "leakage, mass loss < 50 % or thermal runaway"),
        (2, observed.damaged or shorted, "irreversible damage or internal short"),
        (1, observed.protection_activated, "passive protection activated"),
    )
    level, reason = next(((lv, why) for lv, hit, why in rules if hit), (0, "no effect"))
    evidence["rule"] = reason
    return level, evidence


def safety_metrics(
    time: np.ndarray,
    temperature: np.ndarray,
    voltage: Signal | None = None,
    force: Signal | None = None,
    position: Signal | None = None,
    gas: Signal | None = None,
    *,
    mass_before_g: float | None = None,
    mass_after_g: float | None = None,
    electrolyte_mass_g: float | None = None,
    observed: Observations | None = None,
    options: SafetyOptions = SafetyOptions(),
) -> SafetyResult:
    """Get the safety metrics of one abuse test from plain arrays.

    ``temperature`` is sampled on ``time``; the other signals either on ``time`` too or as
    ``(their_time, values)`` pairs.  The short is the first voltage sample ``short_drop_v`` below the
    pre-test voltage; force and position are read there.  ``observed``: what the operator saw, None if
    nothing was recorded (criteria judged by observation then stay open).
    """
    t_raw, temp_raw = np.asarray(time, float), np.asarray(temperature, float)
    grid, temp, dt = _uniform(t_raw, temp_raw)
    slow_rate, n_onset = _trailing_slope(temp, dt, options.onset_window_s)
    fast_rate, n_trigger = _trailing_slope(temp, dt, options.trigger_window_s)
    i1, i2 = _first_at_or_above(slow_rate, options.onset_rate), _first_at_or_above(fast_rate, options.trigger_rate)
    if i2 is not None and (i1 is None or i2 < i1):
        i1 = i2  # a rise of ≥ 1 °C/s is also one of ≥ 0.02 °C/min: the short window saw it first
    i3, imax = int(np.argmax(temp_raw)), int(np.nanargmax(fast_rate))
    t2_time = None if i2 is None else float(grid[i2])

    v = _series(voltage, t_raw)
    pretest = short = collapse = threshold = None
    if v is not None:
        before = v[0] <= v[0][0] + options.baseline_s  # the first baseline_s, up to a drop (a short so soon)
        drop = np.flatnonzero(v[1] < v[1][0] - options.short_drop_v)
        before[drop[0] if len(drop) else len(before) :] = False
        pretest = float(np.median(v[1][before]))
        threshold = max(options.collapse_fraction * pretest, options.collapse_v)
        short = _first_below(v, pretest - options.short_drop_v)
        collapse = _first_below(v, threshold)
    f, x, g = _series(force, t_raw), _series(position, t_raw), _series(gas, t_raw)
    level, evidence = eucar_level(
        observed,
        mass_before_g=mass_before_g,
        mass_after_g=mass_after_g,
        electrolyte_mass_g=electrolyte_mass_g,
        thermal_runaway=i2 is not None,
        shorted=short is not None,
    )
    return SafetyResult(
        t1=None if i1 is None else float(temp[i1]),
        t1_time=None if i1 is None else float(grid[i1]),
        t2=None if i2 is None else float(temp[i2]),
        t2_time=t2_time,
        t3=float(temp_raw[i3]),
        t3_time=float(t_raw[i3]),
        max_rate=float(fast_rate[imax]),
        max_rate_time=float(grid[imax]),
        rate_method=(
            f"trailing windowed linear regression at {dt:g} s: "
            f"{n_onset} samples for T1, {n_trigger} for T2 and the peak rate"
        ),
        sample_interval_s=dt,
        options=options,
        pretest_voltage=pretest,
        short_time=short,
        collapse_time=collapse,
        collapse_threshold_v=threshold,
        t2_to_collapse_s=_since(t2_time, collapse),
        t2_to_peak_s=_since(t2_time, float(t_raw[i3])),
        force_at_short=_at(f, short),
        position_at_short=_at(x, short),
        peak_force=_peak(f),
        peak_gas=_peak(g),
        mass_loss_g=evidence["mass_loss_g"],
        observed=observed,
        eucar_level=level,
        eucar_evidence=evidence,
        end_time=float(t_raw[-1]),
    )


def _column(run: Run, name: str) -> tuple[np.ndarray, np.ndarray]:
    stream, _, column = name.partition("/")
    ds = run.stream(stream)
    return ds["time"].values, ds[column].values


def safety_from_run(
    run: Run | str | os.PathLike,
    temperature: str,
    voltage: str | None = None,
    force: str | None = None,
    position: str | None = None,
    gas: str | None = None,
    **kwargs: Any,
) -> SafetyResult:
    """Get the safety metrics of a run from ``"stream/column"`` names (e.g. ``"daq/t_cell"``).

    Every signal keeps its own stream's time base; ``kwargs`` go to :func:`safety_metrics`.
    """
    run = run if isinstance(run, Run) else open_run(run)
    time, temp = _column(run, temperature)
    signals = {"voltage": voltage, "force": force, "position": position, "gas": gas}
    return safety_metrics(
        time, temp, **{k: _column(run, name) for k, name in signals.items() if name is not None}, **kwargs
    )


def _criterion(c: dict[str, Any], r: SafetyResult) -> tuple[bool | None, str]:
    """Whether criterion ``c`` (:meth:`cellrig.protocols.criteria.Criterion.record`) holds, and the evidence."""
    if c["kind"] == "not_seen":
        if r.observed is None:
            return None, "judged by observation: none recorded"
        seen = [k for k in c["seen"] if getattr(r.observed, k)]
        return not seen, "observed: " + (", ".join(seen) + " seen" if seen else "not seen")
    if c["kind"] == "temperature_max":
        return r.t3 <= c["value"], f"measured: T3 {r.t3:.1f} °C at {r.t3_time:.0f} s"
    start = r.short_time if r.short_time is not None else 0.0
    since = "the short" if r.short_time is not None else "the start"
    return r.end_time - start >= c["value"], f"measured: recorded {(r.end_time - start) / 3600:.2f} h after {since}"


def criteria_of(recorded: str | dict[str, Any]) -> dict[str, Any] | None:
    """A protocol's criteria as its run file records them (JSON), or None if it has none."""
    if isinstance(recorded, dict):
        return recorded
    return json.loads(recorded) if recorded else None


def passes(criteria: str | dict[str, Any], result: SafetyResult) -> Verdict:
    """Judge ``result`` by a protocol's criteria (as its run file records them: :func:`criteria_of`).

    A criterion judged by observation (fire, explosion, rupture …) is open while no observation is recorded:
    the verdict is then FAIL if a measured criterion failed, else provisional, never PASS.  No criteria
    (SAE J2464): report only, the EUCAR level.
    """
    c = criteria_of(criteria)
    if not c:
        raise ValueError("no pass criteria: the protocol states none")
    if not c["pass"]:
        said = (("no pass/fail criteria: report the EUCAR level", True, f"EUCAR level {result.eucar_level}"),)
        return Verdict(c["clause"], None, said, result.eucar_level)
    judged = tuple((x["text"], *_criterion(x, result)) for x in c["pass"])
    met = [m for _, m, _ in judged]
    passed = False if False in met else None if None in met else True
    return Verdict(c["clause"], passed, judged, result.eucar_level)


# -- abuse runs from their files ---------------------------------------------------------------

OBSERVATION_FIELDS = ("mass_before_g", "mass_after_g", "electrolyte_mass_g")


def _abuse_signals(f: RunFile) -> dict[str, str]:
    """``stream/column`` of the cell temperature, voltage, force and position of an abuse run (those it has)."""

    def first(candidates: list[tuple[str, str]]) -> str | None:
        return next((f"{s}/{c}" for s, c in candidates if s in f.streams and c in f.streams[s]), None)

    daq = [(s, c) for s in ("daq", *f.streams) if s in f.streams and s != "chamber" for c in f.streams[s]]
    temps = [(s, c) for s, c in daq if c != "time" and _units(f, s, c) in ("degC", "°C")]
    temps.sort(key=lambda sc: ("cell" not in sc[1], sc[0] != "daq"))  # a cell probe of the DAQ first
    volts = [
        ("rig", "voltage"),
        *((s, c) for s, c in daq if c != "time" and _units(f, s, c) == "V"),
        ("cycler", "voltage"),
    ]
    found = {
        "temperature": first(temps),
        "voltage": first(volts),
        "force": first([("rig", "force")]),
        "position": first([("rig", "position")]),
    }
    return {k: v for k, v in found.items() if v}


def _observations(f: RunFile) -> tuple[Observations | None, dict[str, float]]:
    """What the operator recorded: the last ``observation`` event (``cellrig observe``), else the run's
    ``meta/observations`` (fire, venting, masses ...); None if neither."""
    recorded = f.meta("observations") if "observations" in f.file["meta"] else None
    if (last := f.last_message(observations.EVENT)) is not None:
        recorded = (recorded or {}) | observations.read(last)
    if recorded is None:
        return None, {}
    flags = {k: bool(v) for k, v in recorded.items() if k in Observations.__dataclass_fields__ and k != "video_ref"}
    masses = {k: float(recorded[k]) for k in OBSERVATION_FIELDS if k in recorded}
    return Observations(**flags), masses


def abuse_result(path: str) -> tuple[dict[str, Any], SafetyResult, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Get an abuse run's description (cell, protocol, its pass ``criteria``), safety metrics and traces
    (label → time, values), from the signals its file has and what the operator recorded."""
    with run_file(path) as f:
        signals = _abuse_signals(f)
        observed, masses = _observations(f)
        protocol = f.meta("protocol")
        info = {
            "cell_id": f.cell.get("id", ""),
            "protocol": protocol.get("name", ""),
            "criteria": criteria_of(protocol.get("criteria", "")),  # the protocol's own (None: it has none)
        }
        traces = {}
        for key, label in (("temperature", "temperature (°C)"), ("voltage", "voltage (V)"), ("force", "force")):
            if key in signals:
                stream, column = signals[key].split("/")
                cols = f.read(stream, [column])
                traces[label if key != "force" else f"force ({_units(f, stream, column)})"] = (
                    cols["time"],
                    cols[column],
                )
    if "temperature" not in signals:
        raise ValueError(f"{path}: no temperature column (°C) to analyse")
    kwargs = {k: v for k, v in signals.items() if k != "temperature"}
    result = safety_from_run(path, signals["temperature"], **kwargs, observed=observed, **masses)
    info["signals"] = signals
    return info, result, traces


def marks(result: SafetyResult) -> dict[str, Any]:
    """What a trace plot marks (:func:`cellrig.analysis.plots.abuse_traces`): T1, T2, T3 and the short."""
    return {
        "T1": (result.t1_time, result.t1) if result.t1 is not None else None,
        "T2": (result.t2_time, result.t2) if result.t2 is not None else None,
        "T3": (result.t3_time, result.t3),
        "short": result.short_time,
    }


def _units(f: RunFile, stream: str, column: str) -> str:
    value = f.file["streams"][stream][column].attrs.get("units", "")
    return value.decode() if isinstance(value, bytes) else str(value)
