"""Safety metrics on traces from the virtual cell: nail, ARC, flat noise; EUCAR; pass/fail; a run file."""

from dataclasses import replace

import numpy as np
import pytest

from cellrig.analysis.safety import (
    Observations,
    SafetyOptions,
    eucar_level,
    passes,
    safety_from_run,
    safety_metrics,
)
from cellrig.protocols import library
from cellrig.sim.cell import NMC811, SULFIDE_ASSB, Cell, Chemistry
from cellrig.storage import Column, RunWriter

NAIL, CRUSH = (library.header(name).criteria.record() for name in ("nail-gbt31485", "crush-un38.3-t6"))
NAIL_AT = 600  # s: the nail pierces the cell here, after a full T1 window of rest
NOISE_C = 0.05  # °C thermocouple noise
TRIGGER = 1.0  # °C/s
RIG_HZ = 10


def nail_trace(chem: Chemistry, seconds: int = NAIL_AT + 3660, seed: int = 1) -> dict:
    """A charged 5 Ah cell at 1 Hz, rest then a nail fully through at ``NAIL_AT``; press at 10 Hz, 25 mm/s."""
    rng = np.random.default_rng(seed)
    cell = Cell(chem, 5.0, soc=1.0)
    temp, volt, gas = [cell.temperature], [cell.voltage(0.0)], [0.0]
    for t in range(1, seconds):
        if t == NAIL_AT:
            cell.short_ohm = chem.nail_short_ohm_ah / cell.capacity_ah
        cell.step(0.0, 1.0)
        temp.append(cell.temperature)
        volt.append(cell.voltage(0.0))
        gas.append(cell.gas_released_mmol)
    rig_t = np.arange(0, NAIL_AT + 100, 1 / RIG_HZ)
    position = np.clip(25.0 * (rig_t - (NAIL_AT - 2)), 0.0, 60.0)  # mm: 50 mm in at the short, 60 mm at the end
    return {
        "time": np.arange(seconds, dtype=float),
        "temperature": np.array(temp) + rng.normal(0, NOISE_C, seconds),
        "voltage": np.array(volt) + rng.normal(0, 1e-3, seconds),
        "force": (rig_t, 80.0 * position),  # N: a linear stiffness
        "position": (rig_t, position),
        "gas": np.array(gas),  # mmol released so far
        "mass_before_g": cell.mass_g,
        "mass_after_g": cell.mass_g - cell.mass_loss_g,
        "electrolyte_mass_g": chem.electrolyte_fraction * cell.mass_g,
    }


def arc_trace(chem: Chemistry, start: float, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """An adiabatic (ARC exotherm-mode) trace at 1 Hz from ``start`` °C until the reactant is spent, plus 60 s."""
    rng = np.random.default_rng(seed)
    cell = Cell(chem, 5.0, soc=1.0, temperature=start, ambient=start)
    temp, tail = [start], 60
    while tail:
        cell.ambient = cell.temperature  # the calorimeter tracks the cell: no heat loss
        cell.step(0.0, 1.0)
        temp.append(cell.temperature)
        tail -= cell.reacted >= 1.0
    return np.arange(len(temp), dtype=float), np.array(temp) + rng.normal(0, NOISE_C, len(temp))


def met(verdict) -> dict:
    """Each criterion's text and whether it was met."""
    return {text: ok for text, ok, _ in verdict.criteria}


def metrics(trace: dict, **kwargs):
    return safety_metrics(**trace, **kwargs)


@pytest.fixture(scope="module")
def nmc_nail():
    return metrics(nail_trace(NMC811))


@pytest.fixture(scope="module")
def sulfide_nail():
    return metrics(nail_trace(SULFIDE_ASSB, seconds=NAIL_AT + 4200))  # its short shows only after ~4 min


def test_arc_trace_gives_t1_t2_near_the_model_and_t3_near_its_adiabatic_peak():
    time, temp = arc_trace(NMC811, start=95.0)
    r = safety_metrics(time, temp)
    assert r.t1 == pytest.approx(NMC811.t1, abs=1.0)
    # the model's separator fails at 150 °C and the 5 mΩ short jumps the cell from 150 to ~188 °C within one
    # 1 Hz sample, so the first sample at ≥ 1 °C/s can only bracket the self-heating T2 of 180 °C
    assert NMC811.separator_fail_c < r.t2 < NMC811.t2 + 10.0
    assert r.t1_time < r.t2_time < r.t3_time
    assert r.t3 > 500 and r.max_rate > 10 * TRIGGER
    assert "600 samples for T1, 5 for T2" in r.rate_method
    assert r.sample_interval_s == 1.0 and r.options.sensor == "thermocouple"


def test_nmc_nail_runs_away_collapses_after_t2_and_reaches_eucar_4(nmc_nail):
    r = nmc_nail
    assert NAIL_AT <= r.t2_time <= NAIL_AT + 2  # the nail's Joule heat alone exceeds 1 °C/s
    assert r.t1_time <= r.t2_time and r.t1 <= r.t2
    assert r.t3 > 500
    assert r.short_time == NAIL_AT
    assert r.collapse_time is not None and r.t2_to_collapse_s > 0 and r.t2_to_peak_s >= 0
    assert r.collapse_threshold_v == pytest.approx(0.5 * r.pretest_voltage)
    assert r.eucar_level == 4  # mass loss ≥ 50 % of electrolyte; fire is an observation, not inferred from T3
    assert r.eucar_evidence["mass_loss_pct_electrolyte"] >= 50
    assert "adaptation" not in r.eucar_evidence


def test_force_and_position_are_read_at_the_short_on_the_rigs_own_time_base(nmc_nail):
    assert nmc_nail.position_at_short == pytest.approx(50.0)
    assert nmc_nail.force_at_short == pytest.approx(4000.0)
    assert nmc_nail.peak_force == pytest.approx(80.0 * 60.0)


def test_an_observed_fire_fails_the_nail_and_crush_criteria():
    trace = nail_trace(NMC811, seconds=NAIL_AT + 600)
    burning = metrics(trace, observed=Observations(fire=True, venting=True))
    assert burning.eucar_level == 5
    verdict = passes(NAIL, burning)
    assert verdict.passed is False
    assert met(verdict)["no fire"] is False
    assert met(verdict)["observed 1 h with the nail in (§6.2.8)"] is False
    assert passes(CRUSH, burning).passed is False  # T3 > 170 °C too


def test_sulfide_nail_has_no_t2_eucar_at_most_2_with_the_adaptation_and_passes_the_nail_test(sulfide_nail):
    r = sulfide_nail
    assert r.t2 is None and r.t2_to_collapse_s is None and r.collapse_time is None
    assert r.t3 < SULFIDE_ASSB.t1
    assert r.eucar_level <= 2
    assert r.peak_gas > 0  # H₂S trickles from the exposed sulfide
    assert r.force_at_short is None  # its 1 Ω nail short pulls the voltage 100 mV down only after the rig log ends
    assert r.eucar_evidence["mass_loss_g"] == 0.0
    assert "50 % electrolyte-mass rule is not applicable" in r.eucar_evidence["adaptation"]
    verdict = passes(NAIL, r)  # signals alone: fire and explosion are judged by observation
    assert verdict.passed is None and verdict.state == "provisional" and len(verdict.criteria) == 3
    assert met(verdict) == {"no fire": None, "no explosion": None, "observed 1 h with the nail in (§6.2.8)": True}
    seen = passes(NAIL, replace(r, observed=Observations()))  # the operator saw nothing happen
    assert seen.passed is True and seen.state == "PASS"


def test_a_runaway_nobody_observed_is_never_passed(nmc_nail):
    verdict = passes(NAIL, nmc_nail)
    assert nmc_nail.eucar_level >= 3 and nmc_nail.observed is None
    assert verdict.state == "provisional" and verdict.passed is None
    assert passes(CRUSH, nmc_nail).state == "FAIL"  # its 170 °C limit is measured, not observed


def test_a_noisy_flat_trace_gives_no_t1_because_of_the_smoothing():
    rng = np.random.default_rng(3)
    time = np.arange(3600.0)
    temp = 25.0 + rng.normal(0, NOISE_C, time.size)
    r = safety_metrics(time, temp)
    assert r.t1 is None and r.t2 is None
    raw_rate = np.diff(temp).max()
    assert raw_rate > 100 * SafetyOptions().onset_rate  # the raw derivative would have "found" T1


@pytest.mark.parametrize(
    ("observed", "kwargs", "level"),
    [
        (Observations(), {}, 0),
        (Observations(protection_activated=True), {}, 1),
        (Observations(), {"shorted": True}, 2),
        (Observations(), {"mass_before_g": 70.0, "mass_after_g": 68.0, "electrolyte_mass_g": 10.0}, 3),
        (Observations(), {"mass_before_g": 70.0, "mass_after_g": 65.0, "electrolyte_mass_g": 10.0}, 4),
        (Observations(), {"mass_before_g": 70.0, "mass_after_g": 60.0, "electrolyte_mass_g": 0.0}, 0),
        (Observations(venting=True), {}, 4),
        (Observations(fire=True, venting=True), {}, 5),
        (Observations(rupture=True, fire=True), {}, 6),
        (Observations(explosion=True), {}, 7),
        (Observations(), {"thermal_runaway": True}, 3),
    ],
)
def test_eucar_levels(observed, kwargs, level):
    got, evidence = eucar_level(observed, **kwargs)
    assert got == level
    assert evidence["rule"]


def test_eucar_evidence_records_raw_mass_loss_without_liquid_electrolyte():
    _, evidence = eucar_level(mass_before_g=70.0, mass_after_g=60.0, electrolyte_mass_g=0.0)
    assert evidence["mass_loss_g"] == pytest.approx(10.0)
    assert "mass_loss_pct_electrolyte" not in evidence and "not applicable" in evidence["adaptation"]


def test_sae_j2464_is_report_only_and_no_criteria_are_refused(sulfide_nail):
    verdict = passes(library.header("nail-sae-j2464").criteria.record(), sulfide_nail)
    assert verdict.passed is None and verdict.state == "report only"
    assert verdict.eucar_level == sulfide_nail.eucar_level and verdict.standard == "SAE J2464 nail penetration"
    with pytest.raises(ValueError, match="no pass criteria"):
        passes("", sulfide_nail)


def test_each_criterion_says_the_evidence_that_decided_it(nmc_nail):
    seen = passes(CRUSH, replace(nmc_nail, observed=Observations(smoke=True, venting=True)))
    evidence = {text: why for text, _, why in seen.criteria}
    assert evidence["external temperature ≤ 170 °C"].startswith(f"measured: T3 {nmc_nail.t3:.1f} °C")
    assert evidence["no fire"] == "observed: not seen" and evidence["observed 6 h"].startswith("measured: recorded")
    assert seen.standard == "UN 38.3 T.6 crush"


def test_options_are_validated_and_short_traces_refused():
    with pytest.raises(ValueError):
        SafetyOptions(onset_rate=2.0)
    with pytest.raises(ValueError, match="5 samples"):
        safety_metrics(np.arange(4.0), np.full(4, 25.0))


def test_safety_from_run_reads_stream_columns_with_their_own_time(tmp_path):
    trace = nail_trace(NMC811, seconds=NAIL_AT + 300)
    rig_t, force = trace["force"]
    meta = {"cell": {"id": "C-1", "chemistry": NMC811.name}}
    streams = {"daq": {"t_cell": Column("degC"), "voltage": Column("V")}, "rig": {"force": Column("N")}}
    with RunWriter.create(tmp_path / "nail.h5", streams, meta) as w:
        w.append("daq", time=trace["time"], t_cell=trace["temperature"], voltage=trace["voltage"])
        w.append("rig", time=rig_t, force=force)
    got = safety_from_run(tmp_path / "nail.h5", "daq/t_cell", voltage="daq/voltage", force="rig/force")
    want = safety_metrics(trace["time"], trace["temperature"], trace["voltage"], trace["force"])
    assert got == want
    assert got.force_at_short == pytest.approx(4000.0)
