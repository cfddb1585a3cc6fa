"""The virtual cell's physics against what a battery engineer expects of each chemistry."""

import pytest

from cellrig.sim.cell import LFP, NMC811, PRESETS, SULFIDE_ASSB, Cell


def cc_cv_cycle(cell: Cell, c_rate: float = 1.0, dt: float = 1.0) -> tuple[float, float]:
    """One CC-CV charge (end C/20), 10 min rest, CC discharge, 10 min rest; returns (Qc, Qd) in Ah."""
    chem, current = cell.chemistry, c_rate * cell.capacity_ah
    qc = qd = 0.0
    while cell.voltage(current) < chem.v_max:
        cell.step(current, dt)
        qc += current * dt
    while (i := min(current, cell.current_for_voltage(chem.v_max))) > cell.capacity_ah / 20:
        cell.step(i, dt)
        qc += i * dt
    for _ in range(int(600 / dt)):
        cell.step(0.0, dt)
    while cell.voltage(-current) > chem.v_min:
        cell.step(-current, dt)
        qd += current * dt
    for _ in range(int(600 / dt)):
        cell.step(0.0, dt)
    return qc / 3600, qd / 3600


@pytest.mark.parametrize("chem", [NMC811, LFP, SULFIDE_ASSB], ids=lambda c: c.name)
def test_a_fresh_5ah_cell_delivers_its_capacity_at_1c_and_25c(chem):
    cell = Cell(chem, 5.0, soc=0.0, ageing=0.0)  # fresh through the test: its first cycles' fade is no error
    cc_cv_cycle(cell)
    qc, qd = cc_cv_cycle(cell)
    assert 4.9 <= qd <= 5.1
    assert 0.995 <= qd / qc <= 1.0


@pytest.mark.parametrize("chem", [NMC811, LFP, SULFIDE_ASSB], ids=lambda c: c.name)
def test_capacity_falls_in_the_cold_and_returns_when_warm(chem):
    warm = cc_cv_cycle(Cell(chem, 5.0, soc=0.0))[1]
    cold_cell = Cell(chem, 5.0, soc=0.0, temperature=-20.0, ambient=-20.0)
    cc_cv_cycle(cold_cell)
    cold = cc_cv_cycle(cold_cell)[1]
    assert cold < 0.9 * warm
    cold_cell.ambient = cold_cell.temperature = 25.0
    assert cc_cv_cycle(cold_cell)[1] == pytest.approx(warm, rel=0.02)


def nail(chem, soc: float = 1.0, seconds: int = 3600) -> Cell:
    cell = Cell(chem, 5.0, soc=soc)
    cell.short_ohm = chem.nail_short_ohm_ah / cell.capacity_ah
    peak = cell.temperature
    for _ in range(seconds):
        cell.step(0.0, 1.0)
        peak = max(peak, cell.temperature)
    cell.peak = peak
    return cell


def test_a_nail_through_a_charged_nmc_cell_runs_away():
    cell = nail(NMC811)
    assert cell.peak > 500
    assert cell.voltage(0.0) < 0.5  # voltage collapse
    assert cell.vented and cell.mass_loss_g > NMC811.electrolyte_fraction * cell.mass_g


def test_a_nail_through_the_sulfide_cell_stays_below_its_onset_and_releases_h2s():
    cell = nail(SULFIDE_ASSB)
    assert cell.peak < SULFIDE_ASSB.t1
    assert cell.reacted < 1e-6 and not cell.vented
    assert cell.gas_released_mmol > 0 and SULFIDE_ASSB.gas == "H2S"


@pytest.mark.parametrize(("chem", "runs_away"), [(NMC811, True), (SULFIDE_ASSB, False)], ids=["NMC811", "sulfide"])
def test_a_200c_chamber(chem, runs_away):
    cell = Cell(chem, 5.0, soc=1.0, ambient=200.0)
    peak = 0.0
    for _ in range(2 * 3600):
        cell.step(0.0, 1.0)
        peak = max(peak, cell.temperature)
    assert (peak > chem.t2) is runs_away
    if not runs_away:
        assert peak == pytest.approx(200.0, abs=1.0) and cell.voltage(0.0) > 4.0


def test_self_heating_matches_the_t1_t2_definitions():
    for chem in PRESETS.values():
        at_t1 = Cell(chem, temperature=chem.t1).self_heating_rate() * 60
        at_t2 = Cell(chem, temperature=chem.t2).self_heating_rate()
        assert at_t1 == pytest.approx(0.02) and at_t2 == pytest.approx(1.0)


def test_cell_to_cell_variation_scales_capacity():
    assert Cell(NMC811, 5.0, capacity_variation=0.98).retained_capacity_ah == pytest.approx(4.9)


def test_the_sulfide_cell_needs_its_stack_pressure_and_liquid_cells_do_not_care():
    rated = Cell(SULFIDE_ASSB, 5.0, stack_pressure_kpa=500.0)
    loose = Cell(SULFIDE_ASSB, 5.0, stack_pressure_kpa=50.0)
    assert loose.r0 > 3 * rated.r0  # and it ages faster (tests/test_ageing.py)
    assert Cell(NMC811, 5.0, stack_pressure_kpa=0.0).r0 == Cell(NMC811, 5.0).r0


def test_weeks_at_45_c_use_up_none_of_the_runaway_reactant():
    """Self-heating is dormant far below its onset: a cell stored warm for two months keeps its voltage."""
    cell = Cell(LFP, 5.0, soc=1.0, temperature=45.0, ambient=45.0, ageing=0.0)
    for _ in range(60 * 24):
        cell.step(0.0, 3600.0)
    assert cell.reacted == 0.0 and cell.ocv() == pytest.approx(LFP.v_max, abs=1e-3)
