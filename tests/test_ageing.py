"""The virtual cells' ageing (cellrig/sim/ageing.py): each mechanism moves fade the way the published laws say."""

import random

import numpy as np
import pytest
from scipy.signal import find_peaks

from cellrig.sim.ageing import WINDOW_S
from cellrig.sim.cell import LFP, NMC811, SULFIDE_ASSB, Cell, production_spread


def stored(chemistry, celsius: float, soc: float, days: float, ageing: float = 1.0) -> Cell:
    cell = Cell(chemistry, 5.0, soc=soc, temperature=celsius, ambient=celsius, ageing=ageing)
    for _ in range(round(days * 24)):
        cell.step(0.0, 3600.0)
    return cell


def cycled(cell: Cell, cycles: int, window=(0.0, 1.0), charge: float = 1.0, discharge: float = 1.0) -> list[float]:
    """CC cycles between two SOCs, ``dt`` 60 s; get the fade after each cycle."""
    fades = []
    for _ in range(cycles):
        while cell.soc < window[1]:
            cell.step(charge * cell.capacity_ah, 60.0)
        while cell.soc > window[0]:
            cell.step(-discharge * cell.capacity_ah, 60.0)
        fades.append(cell.fade())
    return fades


@pytest.mark.parametrize("chemistry", [NMC811, LFP, SULFIDE_ASSB], ids=lambda c: c.name)
def test_a_hotter_store_fades_faster_and_a_fuller_one_too(chemistry):
    cool, hot = stored(chemistry, 25.0, 0.5, 60), stored(chemistry, 45.0, 0.5, 60)
    assert hot.fade() > 1.5 * cool.fade() > 0
    assert hot.lam == cool.lam == 0  # storage loses lithium, not active material
    if chemistry is not SULFIDE_ASSB:  # the sulfide's assumed law has no SOC term
        assert stored(chemistry, 25.0, 0.95, 60).fade() > 1.2 * cool.fade()


def test_the_nmc_calendar_loss_follows_schmalstieg_arrhenius_and_power_law():
    """α ∝ exp(−6976/T) and loss ∝ t^0.75: 45 °C against 25 °C is ×4.35; 120 days against 30 is ×2.83."""
    ratio = stored(NMC811, 45.0, 0.5, 30).fade() / stored(NMC811, 25.0, 0.5, 30).fade()
    assert ratio == pytest.approx(np.exp(6976 * (1 / 298.15 - 1 / 318.15)), rel=0.05)
    longer = stored(NMC811, 25.0, 0.5, 120).fade() / stored(NMC811, 25.0, 0.5, 30).fade()
    assert longer == pytest.approx(4**0.75, rel=0.05)


def test_acceleration_scales_time_alike():
    """``ageing`` ×10 for 10 days is 100 days of a cell ageing as rated."""
    fast, slow = stored(NMC811, 35.0, 0.8, 10, ageing=10.0), stored(NMC811, 35.0, 0.8, 100)
    assert fast.fade() == pytest.approx(slow.fade(), rel=0.02)


def test_a_deeper_cycle_fades_faster_for_the_same_charge_through_it():
    deep, shallow = Cell(NMC811, 5.0, soc=0.05, ageing=10.0), Cell(NMC811, 5.0, soc=0.4, ageing=10.0)
    cycled(deep, 20, (0.05, 0.95))
    while shallow.throughput_ah < deep.throughput_ah:
        cycled(shallow, 1, (0.4, 0.6))
    assert deep.throughput_ah == pytest.approx(shallow.throughput_ah, rel=0.05)
    assert deep.cycle_loss > 1.3 * shallow.cycle_loss
    assert deep.lam > shallow.lam > 0  # part of cycling's loss is active material


def test_a_cold_charge_plates_lithium_and_bends_the_fade_into_a_knee():
    warm = Cell(NMC811, 5.0, soc=0.0, ageing=5.0)
    cold = Cell(NMC811, 5.0, soc=0.0, temperature=5.0, ambient=5.0, ageing=5.0)
    warm_fades = cycled(warm, 8, (0.02, 0.9))
    cold_fades = cycled(cold, 8, (0.02, 0.9))
    assert warm.plating_loss == 0 < cold.plating_loss
    assert cold.fade() > 2 * warm.fade()
    early, late = np.diff(warm_fades)[[1, -1]]
    assert late < early  # √-like without plating: slows down
    early, late = np.diff(cold_fades)[[1, -1]]
    assert late > 1.5 * early  # plating isolates anode, the anode sees a higher rate, plates more: speeds up


def test_a_fast_charge_at_room_temperature_plates_once_enough_anode_is_lost():
    """The knee: 1C at 25 °C plates nothing while the cell is new, and does once its active material is worn."""
    new, worn = Cell(NMC811, 5.0, soc=0.0, ageing=20.0), Cell(NMC811, 5.0, soc=0.0, ageing=20.0, lam=0.06)
    cycled(new, 3, (0.02, 0.9))
    cycled(worn, 3, (0.02, 0.9))
    assert new.plating_loss == 0 < worn.plating_loss


def dq_dv_peaks(cell: Cell) -> list[tuple[float, float]]:
    """(voltage, height) of the OCV curve's dQ/dV peaks."""
    soc = np.linspace(0.001, 0.999, 4000)
    volts = []
    for s in soc:
        cell.soc = s
        volts.append(cell.ocv())
    grid = np.linspace(min(volts) + 0.05, max(volts) - 0.01, 500)
    dq_dv = np.gradient(np.interp(grid, volts, soc * cell.retained_capacity_ah), grid)
    peaks, _ = find_peaks(dq_dv, prominence=0.5)
    return [(grid[i], dq_dv[i]) for i in peaks]


def test_lost_active_material_shrinks_every_dq_dv_peak_in_place_and_lost_lithium_takes_the_bottom():
    new = dq_dv_peaks(Cell(LFP, 5.0))
    lam = dq_dv_peaks(Cell(LFP, 5.0, lam=0.1))
    lli = dq_dv_peaks(Cell(LFP, 5.0, lli=0.35))
    assert len(new) == len(lam) == 3
    for (v0, h0), (v1, h1) in zip(new, lam, strict=True):
        assert v1 == pytest.approx(v0, abs=0.003) and h1 / h0 == pytest.approx(0.9, abs=0.01)
    assert len(lli) == 2  # the lowest-voltage peak is beyond reach
    for (v0, h0), (v1, h1) in zip(new[1:], lli, strict=True):
        assert v1 == pytest.approx(v0, abs=0.003) and h1 / h0 == pytest.approx(1.0, abs=0.05)


def test_an_aged_cell_still_ends_its_discharge_at_the_floor():
    """Lost lithium ends the discharge on the steep tail of an emptied negative electrode, below the floor."""
    for chemistry in (NMC811, LFP, SULFIDE_ASSB):
        cell = Cell(chemistry, 5.0, soc=0.0, lli=0.3, lam=0.1)
        assert cell.ocv() < chemistry.v_min + 0.01
        cell.soc = 1.0
        assert cell.ocv() == pytest.approx(chemistry.v_max, abs=0.005)
        assert cell.r0 > Cell(chemistry, 5.0).r0 * 1.5


def test_the_production_spread_is_seeded_and_its_ageing_factor_scales_the_fade():
    assert production_spread(random.Random(3)) == production_spread(random.Random(3))
    factors = [production_spread(random.Random(seed))["ageing_variation"] for seed in range(400)]
    assert np.std(np.log(factors)) == pytest.approx(0.08, rel=0.15)
    slow, fast = (Cell(LFP, 5.0, soc=0.0, ageing=20.0, ageing_variation=f) for f in (0.9, 1.1))
    cycled(slow, 5)
    cycled(fast, 5)
    assert fast.fade() == pytest.approx(slow.fade() * 1.1 / 0.9, rel=0.05)


def test_the_laws_apply_once_a_window_not_per_sample():
    cell = Cell(NMC811, 5.0, soc=0.5)
    for _ in range(round(WINDOW_S) - 1):
        cell.step(5.0, 1.0)
    assert cell.fade() == 0.0
    cell.step(5.0, 1.0)
    assert cell.fade() > 0.0


def test_the_sulfide_cell_ages_faster_below_its_stack_pressure():
    rated = Cell(SULFIDE_ASSB, 5.0, soc=0.0, stack_pressure_kpa=500.0, ageing=20.0)
    loose = Cell(SULFIDE_ASSB, 5.0, soc=0.0, stack_pressure_kpa=50.0, ageing=20.0)
    cycled(rated, 10)
    cycled(loose, 10)
    assert loose.fade() > 1.5 * rated.fade()


@pytest.mark.parametrize("chemistry", [NMC811, LFP, SULFIDE_ASSB], ids=lambda c: c.name)
def test_a_full_cell_stays_full_through_an_ageing_update(chemistry):
    """The update keeps the point on the curve: a charge that ended at 100 % must not be left a rounding below it
    (a loop charging until full then never ended)."""
    for lli in np.linspace(0.01, 0.6, 60):
        cell = Cell(chemistry, 5.0, soc=1.0, lli=float(lli), temperature=45.0, ambient=45.0, ageing=50.0)
        cell.step(0.0, WINDOW_S)
        assert cell.lli > lli and cell.soc == 1.0
