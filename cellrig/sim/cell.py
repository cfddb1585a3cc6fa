"""A battery cell for the virtual lab.

Electrical: an equivalent circuit (OCV(SOC), R0, one RC pair) whose resistance rises in the
cold (Arrhenius) and whose accessible capacity shrinks below 25 °C.  Ageing (:mod:`.ageing`):
each chemistry's published calendar and cycle laws and lithium plating, applied once a minute of
cell time to what the cell went through, as loss of lithium inventory (LLI: the bottom of the
OCV curve is out of reach) and of active material (LAM: the whole curve shrinks), with the
resistance growth they bring.  Thermal: one lumped mass with Joule and reversible (entropic) heat and
convection to its surroundings.  Abuse: an internal short (from a nail or crush, or when the
separator melts) discharges the cell through itself; self-heating follows an Arrhenius rate
linearised around the onset temperature T1 (dT/dt = 0.02 K/min there, 1 K/s at the trigger T2,
the definitions of docs/standards.md §7) and consumes a reactant whose heat takes an
adiabatic cell to about T3; venting loses mass and releases gas (H₂S for sulfide cells).

Sign convention: current is positive when charging.  The model is stepped with fixed time
steps by the instruments that hold the cell; the same inputs give the same result.
"""

import bisect
import functools
import math
from dataclasses import dataclass
from random import Random

import numpy as np

from .ageing import (
    R_GAS,
    T_REF,
    WINDOW_S,
    Ageing,
    InterfaceGrowth,
    NaumannCalendar,
    Plating,
    SchmalstiegCalendar,
    SchmalstiegCycle,
    WangCycle,
    Window,
    advance,
)

ONSET_RATE = 0.02 / 60  # K/s self-heating at T1 (ARC seek threshold, docs/standards.md §7)
TRIGGER_RATE = 1.0  # K/s self-heating at T2 (the 1 °C/s criterion, docs/standards.md §7)
DORMANT_THETAS = 2.0  # self-heating below T1 by this many e-foldings (under 14 % of the onset rate) is none
MIN_RETAINED = 0.05  # of its capacity: what a cell worn out keeps (ageing stops there)
LLI_TAIL = 0.05  # share of an aged cell's charge on the steep tail at the end of discharge
MIN_HALF_CYCLE = 0.05  # a reversal after less than this swing of SOC (a pulse) is not a half-cycle
MEAN_OVER = 2.0  # Ah/Ah: the throughput (about a cycle) the mean voltage of the cycle ageing is taken over
REST_STEP_S = 10.0  # s: a cell carrying no current is stepped at most this often (relaxation is slow)


@dataclass(frozen=True)
class Chemistry:
    """A chemistry preset: everything the model needs, per ampere-hour where it scales."""

    name: str
    soc: tuple[float, ...]
    ocv: tuple[float, ...]
    r0_ohm_ah: float  # ohmic resistance × capacity at 25 °C
    r1_ohm_ah: float  # RC-pair resistance × capacity at 25 °C
    tau_s: float  # RC-pair time constant
    v_min: float
    v_max: float
    t_min: float  # rated operating window, °C
    t_max: float
    coulombic_efficiency: float  # charge stored per charge passed while charging
    resistance_activation_j_mol: float  # Arrhenius activation energy of R0 and R1
    cold_capacity_per_k: float  # accessible-capacity loss per K below 25 °C
    specific_energy_wh_kg: float  # sets the cell mass
    entropic_v_per_k: float  # dU/dT for the reversible heat
    t1: float  # °C, self-heating onset
    t2: float  # °C, thermal-runaway trigger
    t3: float  # °C, peak of an adiabatic runaway
    separator_fail_c: float  # internal short forms above this (separator melt / electrolyte decomposition)
    vent_c: float  # venting temperature; inf for cells that do not vent
    electrolyte_fraction: float  # of cell mass
    gas: str  # what venting releases
    nail_short_ohm_ah: float  # internal-short resistance × capacity with a nail fully through
    ageing: Ageing
    source: str
    stack_pressure_kpa: float = 0.0  # the fixture pressure it is rated at; below it contact is lost


#: NMC811/graphite (liquid).  OCV shape after Chen et al., J. Electrochem. Soc. 167, 080534 (2020)
#: (LG M50, 5 Ah), read at coarse SOC points; T1/T2/T3 representative of NCM811 ARC results
#: reviewed by Feng et al., Energy Storage Materials 10 (2018) 246 (values not re-read: unverified).
NMC811 = Chemistry(
    name="NMC811/graphite",
    soc=(0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    ocv=(2.50, 3.20, 3.40, 3.48, 3.56, 3.62, 3.68, 3.75, 3.84, 3.93, 4.02, 4.10, 4.20),
    r0_ohm_ah=0.050,
    r1_ohm_ah=0.025,
    tau_s=60.0,
    v_min=2.5,
    v_max=4.2,
    t_min=-20.0,
    t_max=60.0,
    coulombic_efficiency=0.9995,
    resistance_activation_j_mol=30_000,
    cold_capacity_per_k=0.004,
    specific_energy_wh_kg=260,
    entropic_v_per_k=-0.0001,
    t1=100.0,
    t2=180.0,
    t3=750.0,
    separator_fail_c=150.0,
    vent_c=130.0,
    electrolyte_fraction=0.15,
    gas="CO/H2",
    nail_short_ohm_ah=0.25,
    ageing=Ageing(
        calendar=SchmalstiegCalendar(),
        cycle=SchmalstiegCycle(),
        plating=Plating(critical_c_rate=1.6, rate=0.003),
        source="Schmalstieg et al. 2014 (calendar, cycle); Waldmann et al. 2014 (temperature, plating)",
    ),
    source="Chen et al. 2020 (OCV, LG M50); Feng et al. 2018 (T1/T2/T3, unverified)",
)

#: LFP/graphite: flat 3.2–3.3 V plateau; cycle life of the EVE 304 Ah datasheet (≥ 3500 cycles at 25 °C,
#: docs/standards.md §8, S13); T1/T2/T3 representative of LFP ARC results in Feng et al. 2018 (unverified).
LFP = Chemistry(
    name="LFP/graphite",
    soc=(0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.95, 0.98, 1.0),
    ocv=(2.50, 2.90, 3.10, 3.20, 3.24, 3.27, 3.29, 3.31, 3.33, 3.36, 3.42, 3.65),
    r0_ohm_ah=0.060,
    r1_ohm_ah=0.030,
    tau_s=80.0,
    v_min=2.5,
    v_max=3.65,
    t_min=-20.0,
    t_max=60.0,
    coulombic_efficiency=0.9997,
    resistance_activation_j_mol=32_000,
    cold_capacity_per_k=0.005,
    specific_energy_wh_kg=165,
    entropic_v_per_k=-0.00005,
    t1=120.0,
    t2=250.0,
    t3=450.0,
    separator_fail_c=170.0,
    vent_c=160.0,
    electrolyte_fraction=0.15,
    gas="CO/H2",
    nail_short_ohm_ah=0.25,
    ageing=Ageing(
        calendar=NaumannCalendar(),
        cycle=WangCycle(),
        plating=Plating(critical_c_rate=3.6, rate=0.0002, lam_scale=0.1),
        source="Naumann et al. 2018 (calendar); Wang et al. 2011 (cycle); Waldmann et al. 2014 (plating)",
    ),
    source="EVE LF304 datasheet (cycle life; docs/standards.md §8, S13); Feng et al. 2018 (T1/T2/T3, unverified)",
)

#: Sulfide all-solid-state cell matching a maker's published claims: 350 Wh/kg, rated −20…85 °C, > 3000 cycles,
#: survives a 200 °C chamber, nail and crush without fire.  No liquid to vent; the sulfide releases H₂S when damaged
#: (docs/standards.md §6, unverified).  Its T1/T2/T3 are set to honour those claims, not measured.
SULFIDE_ASSB = Chemistry(
    name="sulfide all-solid-state (Si/NMC)",
    soc=(0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    ocv=(2.50, 3.15, 3.35, 3.45, 3.55, 3.61, 3.67, 3.74, 3.83, 3.92, 4.01, 4.09, 4.20),
    r0_ohm_ah=0.070,
    r1_ohm_ah=0.040,
    tau_s=120.0,
    v_min=2.5,
    v_max=4.2,
    t_min=-20.0,
    t_max=85.0,
    coulombic_efficiency=0.9997,
    resistance_activation_j_mol=35_000,
    cold_capacity_per_k=0.005,
    specific_energy_wh_kg=350,
    entropic_v_per_k=-0.00008,
    t1=240.0,
    t2=320.0,
    t3=520.0,
    separator_fail_c=400.0,
    vent_c=math.inf,
    electrolyte_fraction=0.0,
    gas="H2S",
    nail_short_ohm_ah=5.0,
    ageing=Ageing(
        calendar=InterfaceGrowth(k_ref=0.002, activation_j_mol=50_000.0, by_throughput=False),
        cycle=InterfaceGrowth(k_ref=0.0022, activation_j_mol=15_000.0, by_throughput=True),
        source="assumed: interphase growth and contact loss, set to the maker's >3000 cycles (docs/ageing.md)",
    ),
    source="maker's claims (350 Wh/kg, -20…85 °C, >3000 cycles, 200 °C / nail / crush without fire)",
    stack_pressure_kpa=500.0,  # the maker's preload "cut by 90 %": from ~5 MPa to ~0.5 MPa (illustrative)
)

CHEMISTRIES = {c.name: c for c in (NMC811, LFP, SULFIDE_ASSB)}


@functools.cache
def _smooth_ocv(chem: Chemistry) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The preset's OCV points through a monotone cubic (PCHIP), tabulated finely: a smooth curve,
    so dQ/dV shows peaks rather than the steps of straight lines between the points."""
    from scipy.interpolate import PchipInterpolator

    soc = np.linspace(0.0, 1.0, 401)
    return tuple(soc.tolist()), tuple(PchipInterpolator(chem.soc, chem.ocv)(soc).tolist())


PRESETS = {"nmc811": NMC811, "lfp": LFP, "sulfide": SULFIDE_ASSB}


def _on_curve(soc: float, cut: float) -> float:
    """Where on the new cell's OCV curve a cell at ``soc`` stands when ``cut`` of the curve's bottom is out of
    reach (lost lithium: the positive electrode is never refilled); the discharge ends where the negative
    empties, on a steep tail (the last :data:`LLI_TAIL` of the charge) through the rest of the curve."""
    if soc < LLI_TAIL:
        return soc * (LLI_TAIL + cut) / LLI_TAIL
    return 1.0 - (1.0 - soc) * (1.0 - LLI_TAIL - cut) / (1.0 - LLI_TAIL)  # from the top: a full cell stays at 1.0


def _soc_at(x: float, cut: float) -> float:
    """The SOC that stands at ``x`` on the curve: the inverse of :func:`_on_curve`."""
    if x < LLI_TAIL + cut:
        return x * LLI_TAIL / (LLI_TAIL + cut)
    return 1.0 - (1.0 - x) * (1.0 - LLI_TAIL) / (1.0 - LLI_TAIL - cut)


def production_spread(random: Random) -> dict[str, float]:
    """A production line's cell-to-cell spread, as :class:`Cell` fields: standard deviation 1 % capacity, 3 %
    resistance and 8 % ageing rate (lognormal: lives about 15 % apart under one protocol; assumed, docs/ageing.md)."""
    return {
        "capacity_variation": random.gauss(1.0, 0.01),
        "resistance_variation": random.gauss(1.0, 0.03),
        "ageing_variation": random.lognormvariate(0.0, 0.08),
    }


@dataclass
class Cell:
    """State of one cell.  The ``*_variation`` factors are its spread from the chemistry's typical cell."""

    chemistry: Chemistry = NMC811
    capacity_ah: float = 5.0
    soc: float = 0.5
    temperature: float = 25.0  # °C
    ambient: float = 25.0  # °C, set by whatever the cell sits in
    h_w_per_k: float = 0.5  # convection to the surroundings
    stack_pressure_kpa: float | None = None  # the fixture's pressure; None = as rated
    capacity_variation: float = 1.0
    resistance_variation: float = 1.0
    ageing_variation: float = 1.0  # scales every ageing rate
    v_rc: float = 0.0
    throughput_ah: float = 0.0
    lli: float = 0.0  # capacity lost as lithium inventory (fraction of rated)
    lam: float = 0.0  # capacity lost as active material
    calendar_loss: float = 0.0  # each mechanism's loss so far (what its power law continues from)
    cycle_loss: float = 0.0
    plating_loss: float = 0.0
    short_ohm: float = math.inf  # internal short imposed from outside (nail, crush)
    reacted: float = 0.0  # fraction of the runaway reactant consumed
    vented: bool = False
    mass_loss_g: float = 0.0
    gas_released_mmol: float = 0.0
    ageing: float = 1.0  # > 1 ages faster (an accelerated virtual lab); every cell of a lab alike

    def __post_init__(self) -> None:
        self._ocv_table = _smooth_ocv(self.chemistry)
        # what the cell went through since its last ageing update (floats only: a snapshot of a cell is shallow)
        self._seconds = self._charged = self._charge_s = self._discharged = self._discharge_s = 0.0
        self._mean_v = self.ocv()  # running mean OCV over about a cycle
        self._from_soc, self._charging, self._depth = self.soc, True, 0.0  # the half-cycle so far, the last one's depth

    # -- derived properties --------------------------------------------------------------

    @property
    def mass_g(self) -> float:
        nominal_v = self.chemistry.ocv[len(self.chemistry.ocv) // 2]
        return self.capacity_ah * nominal_v / self.chemistry.specific_energy_wh_kg * 1000

    @property
    def heat_capacity_j_per_k(self) -> float:
        return self.mass_g * 1.0  # ≈ 1 J/(g K) for a Li-ion cell

    def contact_loss(self) -> float:
        """0 at or above the rated stack pressure, up to 1 with none: solid-solid contact opens."""
        rated = self.chemistry.stack_pressure_kpa
        if not rated or self.stack_pressure_kpa is None:
            return 0.0
        return min(max(1.0 - self.stack_pressure_kpa / rated, 0.0), 1.0)

    def fade(self) -> float:
        """Fraction of capacity lost to ageing (LLI + LAM)."""
        return self.lli + self.lam

    @property
    def retained_capacity_ah(self) -> float:
        """Capacity at 25 °C after ageing."""
        return self.capacity_ah * self.capacity_variation * (1.0 - self.fade())

    def _arrhenius(self) -> float:
        t = min(self.temperature, 80.0) + 273.15  # the fit holds over the operating range only
        return math.exp(self.chemistry.resistance_activation_j_mol / R_GAS * (1 / t - 1 / T_REF))

    @property
    def r0(self) -> float:
        a = self.chemistry.ageing
        growth = (1.0 + a.resistance_per_lli * self.lli + a.resistance_per_lam * self.lam) * (
            1.0 + 4.0 * self.contact_loss()
        )
        return self.chemistry.r0_ohm_ah / self.capacity_ah * self.resistance_variation * growth * self._arrhenius()

    @property
    def r1(self) -> float:
        return self.chemistry.r1_ohm_ah / self.capacity_ah * self.resistance_variation * self._arrhenius()

    def accessible_fraction(self) -> float:
        """Share of the capacity reachable at the present temperature (less in the cold)."""
        cold = max(25.0 - self.temperature, 0.0)
        return max(1.0 - self.chemistry.cold_capacity_per_k * cold, 0.2)

    def _lli_cut(self) -> float:
        """The share of the positive electrode's curve the lost lithium puts out of reach."""
        return min(self.lli / max(1.0 - self.lam, 0.05), 0.9)

    def ocv(self) -> float:
        """Open-circuit voltage.  In the cold the bottom of the capacity is kinetically out of reach,
        so the voltage reaches its floor early (the charge is still there when the cell warms)."""
        f = self.accessible_fraction()
        soc = (self.soc - (1.0 - f)) / f if f < 1.0 else self.soc
        if self.lli:
            soc = _on_curve(soc, self._lli_cut())
        xs, ys = self._ocv_table
        i = min(max(bisect.bisect_right(xs, soc), 1), len(xs) - 1)
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        emf = y0 + (y1 - y0) * (min(max(soc, x0), x1) - x0) / (x1 - x0)
        return emf * (1.0 - self.reacted)  # runaway destroys the electrodes: the voltage collapses

    def internal_short_ohm(self) -> float:
        """The short inside the cell: imposed (nail, crush) or from a failed separator."""
        if self.temperature >= self.chemistry.separator_fail_c or self.reacted > 0.5:
            return min(self.short_ohm, 0.005)
        return self.short_ohm

    # -- what instruments see ------------------------------------------------------------

    def voltage(self, current: float) -> float:
        """Terminal voltage with ``current`` flowing in the external circuit."""
        short = self.internal_short_ohm()
        if math.isinf(short):
            return self.ocv() + self.v_rc + current * self.r0
        # the cell's EMF drives the external current and the short in parallel
        return (self.ocv() + self.v_rc + current * self.r0) * short / (short + self.r0)

    def current_for_voltage(self, volts: float) -> float:
        """The current that holds the terminal at ``volts`` now (constant-voltage phase)."""
        return (volts - self.ocv() - self.v_rc) / self.r0

    # -- time ----------------------------------------------------------------------------

    def step(self, current: float, dt: float) -> None:
        """Pass ``current`` through the terminals for ``dt`` seconds."""
        c = self.chemistry
        q_full = 3600.0 * self.retained_capacity_ah
        short = self.internal_short_ohm()
        i_short = 0.0 if math.isinf(short) else -max(self.voltage(current), 0.0) / short
        total = current + i_short
        eff = c.coulombic_efficiency if total > 0 else 1.0
        self.soc = min(max(self.soc + total * eff * dt / q_full, 0.0), 1.0)
        self.throughput_ah += abs(current) * dt / 3600.0
        self._gather(current, dt)
        decay = math.exp(-dt / c.tau_s)
        self.v_rc = self.v_rc * decay + self.r1 * current * (1.0 - decay)
        t_k = self.temperature + 273.15
        joule = total**2 * self.r0 + (i_short**2 * short if i_short else 0.0)
        reversible = -total * t_k * c.entropic_v_per_k
        self._relax(joule + reversible, dt)
        self._self_heat(dt)
        self._vent(dt)

    # -- ageing --------------------------------------------------------------------------

    def _gather(self, current: float, dt: float) -> None:
        """Add one step's time and charge to the ageing window; age the cell once the window is full."""
        self._seconds += dt
        if current > 0:
            self._charged += current * dt
            self._charge_s += dt
        elif current < 0:
            self._discharged -= current * dt
            self._discharge_s += dt
        if self._seconds >= WINDOW_S:
            self._age()

    def _close_window(self) -> Window:
        """The window just ended, its conditions as the cell is now (they change little in a minute); the running
        mean voltage and the half-cycle it tracks move on to it."""
        ah = 3600.0 * self.capacity_ah
        charged, discharged = self._charged / ah, self._discharged / ah
        volts = self.ocv()
        self._mean_v += (volts - self._mean_v) * min((charged + discharged) / MEAN_OVER, 1.0)
        if charged != discharged:  # a half-cycle ends where the current turns, unless the swing was a pulse
            charging = charged > discharged
            swing = abs(self.soc - self._from_soc)
            if charging != self._charging and swing >= MIN_HALF_CYCLE:
                self._depth, self._from_soc, self._charging = swing, self.soc, charging
        return Window(
            seconds=self._seconds,
            rest_seconds=self._seconds - self._charge_s - self._discharge_s,
            kelvin=self.temperature + 273.15,
            ocv=volts,
            soc=self.soc,
            mean_voltage=self._mean_v,
            dod=max(self._depth, abs(self.soc - self._from_soc)),
            charged=charged,
            discharged=discharged,
            charge_rate=self._charged / self._charge_s / self.capacity_ah if self._charge_s else 0.0,
            discharge_rate=self._discharged / self._discharge_s / self.capacity_ah if self._discharge_s else 0.0,
        )

    def _age(self) -> None:
        """Apply the chemistry's laws to the window just ended (its time and throughput × :attr:`ageing`)."""
        w = self._close_window()
        self._seconds = self._charged = self._charge_s = self._discharged = self._discharge_s = 0.0
        a, scale, spread, contact = self.chemistry.ageing, self.ageing, self.ageing_variation, self.contact_loss()
        calendar = advance(a.calendar, self.calendar_loss, w, scale, spread, contact) - self.calendar_loss
        cycle = advance(a.cycle, self.cycle_loss, w, scale, spread, contact) - self.cycle_loss
        plating = 0.0
        if a.plating and w.charged:
            plating = (
                a.plating.rate * a.plating.over_rate(w.charge_rate, w.kelvin, self.lam) * w.charged * scale * spread
            )
        lam = cycle * a.cycle.lam_share + (plating * a.plating.lam_share if a.plating else 0.0)
        lost = calendar + cycle + plating
        share = min(max(1.0 - MIN_RETAINED - self.fade(), 0.0) / lost, 1.0) if lost else 0.0  # of it still to lose
        where = _on_curve(self.soc, self._lli_cut())
        self.lam += lam * share
        self.lli += (lost - lam) * share
        self.soc = _soc_at(where, self._lli_cut())  # the positive electrode as it was, the charge less
        self.calendar_loss += calendar
        self.cycle_loss += cycle
        self.plating_loss += plating

    def _relax(self, power_w: float, dt: float) -> None:
        """Heat ``power_w`` in, convection and radiation out: exact for a constant loss coefficient,
        so any step is stable (idle cells can take long steps)."""
        t, ta = self.temperature + 273.15, self.ambient + 273.15
        area = 0.02 * (self.mass_g / 70.0) ** (2 / 3)  # scaled from a 70 g pouch's 0.02 m²
        radiation = 0.8 * 5.67e-8 * area * (t * t + ta * ta) * (t + ta)  # W/K, emissivity 0.8
        h = self.h_w_per_k + radiation
        settle = self.ambient + power_w / h
        self.temperature = settle + (self.temperature - settle) * math.exp(-h * dt / self.heat_capacity_j_per_k)

    def self_heating_rate(self) -> float:
        """K/s of runaway self-heating now: 0.02 K/min at T1, 1 K/s at T2, exponential between; none more than
        :data:`DORMANT_THETAS` e-foldings below T1 (else weeks at 45 °C would slowly use up the cell)."""
        c = self.chemistry
        theta = (c.t2 - c.t1) / math.log(TRIGGER_RATE / ONSET_RATE)
        if self.reacted >= 1.0 or self.temperature < c.t1 - DORMANT_THETAS * theta:
            return 0.0
        rate = ONSET_RATE * math.exp(min((self.temperature - c.t1) / theta, 50.0))
        return rate * (1.0 - self.reacted)

    def _self_heat(self, dt: float) -> None:
        c = self.chemistry
        adiabatic_rise = c.t3 - c.t1
        rate = self.self_heating_rate()
        substeps = min(max(1, math.ceil(rate * dt / 5.0)), 400)  # ~5 K per substep, bounded: runaway is fast
        for _ in range(substeps):
            rise = min(self.self_heating_rate() * dt / substeps, (1.0 - self.reacted) * adiabatic_rise)
            self.temperature += rise
            self.reacted = min(self.reacted + rise / adiabatic_rise, 1.0)

    def _vent(self, dt: float) -> None:
        c = self.chemistry
        if not self.vented and self.temperature >= c.vent_c:
            self.vented = True
            self.mass_loss_g += 0.3 * c.electrolyte_fraction * self.mass_g
            self.gas_released_mmol += 5.0 * self.capacity_ah
        if self.reacted > 0.5 and c.electrolyte_fraction:  # runaway ejects most of the electrolyte and more
            self.mass_loss_g = max(self.mass_loss_g, (c.electrolyte_fraction + 0.15) * self.mass_g)
        if c.gas == "H2S" and (self.short_ohm < math.inf or self.temperature > c.t1):
            self.gas_released_mmol += 1e-3 * dt  # a trickle of H₂S from exposed or hot sulfide electrolyte
