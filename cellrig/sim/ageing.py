"""How the virtual lab's cells age: published semi-empirical laws per chemistry, split by mechanism.

A chemistry's :class:`Ageing` has three mechanisms, each with its source (docs/ageing.md):

* **calendar** — SEI growth, driven by time, temperature (Arrhenius) and storage voltage or SOC;
* **cycle** — driven by charge throughput, depth of discharge, mean voltage, C-rate and
  temperature; a share of it is loss of active material (LAM), the rest loss of lithium (LLI);
* **plating** — lithium plating on graphite when charging cold or fast.  The rate the anode
  sees grows as it loses active material, so a cell that cycles long enough at a rate it
  tolerated when new starts to plate, and the plated lithium isolates more anode: the knee.

A cell adds up what it went through while it is stepped and applies the laws once per
:data:`WINDOW_S` of cell time to a :class:`Window`, so ageing costs next to nothing per sample.  A
loss that grows as a power of time or throughput (``loss = k·x^z``) is advanced by the
equivalent-time method: the ``x`` that gives the loss so far at today's ``k``, then a step on from
there — how a fit made at constant conditions is carried over a varying profile.
"""

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

R_GAS = 8.314  # J/(mol K)
T_REF = 298.15  # K (25 °C)
WINDOW_S = 60.0  # s of cell time between ageing updates


def arrhenius(activation_j_mol: float, t_k: float, t_ref_k: float = T_REF) -> float:
    """The rate at ``t_k`` relative to the rate at ``t_ref_k``."""
    return math.exp(-activation_j_mol / R_GAS * (1.0 / t_k - 1.0 / t_ref_k))


@dataclass(frozen=True)
class Window:
    """What a cell went through in one ageing update: its time, conditions and throughput."""

    seconds: float
    rest_seconds: float  # of them with no current
    kelvin: float
    ocv: float  # the storage voltage (V)
    soc: float
    mean_voltage: float  # the mean OCV of the last cycle or so (Schmalstieg's V̄)
    dod: float  # depth of the latest half-cycle (0–1)
    charged: float  # Ah per Ah of capacity
    discharged: float
    charge_rate: float  # mean C-rate while charging
    discharge_rate: float

    @property
    def days(self) -> float:
        return self.seconds / 86400.0

    @property
    def throughput(self) -> float:
        return self.charged + self.discharged

    @property
    def c_rate(self) -> float:
        """Mean C-rate over the window's throughput."""
        total = self.throughput
        return (self.charged * self.charge_rate + self.discharged * self.discharge_rate) / total if total else 0.0


class PowerLaw(Protocol):
    """A capacity loss ``k·x^exponent``: ``k`` from a window's conditions, ``x`` its time or throughput."""

    exponent: float

    def rate(self, w: Window, contact_loss: float) -> float: ...
    def amount(self, w: Window) -> float: ...


class CycleLaw(PowerLaw, Protocol):
    """A cycling loss, part of it loss of active material."""

    lam_share: float


def advance(law: PowerLaw, loss: float, w: Window, scale: float, spread: float, contact_loss: float) -> float:
    """The loss after window ``w`` (its time and throughput × ``scale``, the rate × ``spread``), given ``loss``."""
    k = law.rate(w, contact_loss) * spread
    x = law.amount(w) * scale
    if k <= 0.0 or x <= 0.0:
        return loss
    equivalent = (loss / k) ** (1.0 / law.exponent)
    return k * (equivalent + x) ** law.exponent


@dataclass(frozen=True)
class SchmalstiegCalendar:
    """Schmalstieg et al. 2014 (NMC/graphite 18650): loss α·t^0.75, t in days,
    α = (7.543·V − 23.75)·10⁶·exp(−6976/T): faster at higher storage voltage and when hot."""

    exponent: float = 0.75

    def rate(self, w: Window, contact_loss: float) -> float:
        return max(7.543 * w.ocv - 23.75, 0.0) * 1e6 * math.exp(-6976.0 / w.kelvin)

    def amount(self, w: Window) -> float:
        return w.days


@dataclass(frozen=True)
class SchmalstiegCycle:
    """Schmalstieg et al. 2014: loss β·√Q, Q the charge throughput (Ah, charge and discharge) of their 2.05 Ah
    cell, β = 7.348·10⁻³·(V̄ − 3.667)² + 7.60·10⁻⁴ + 4.081·10⁻³·DOD.  Fitted at 35 °C; carried to other
    temperatures with an assumed SEI activation energy (docs/ageing.md)."""

    exponent: float = 0.5
    cell_ah: float = 2.05
    fit_k: float = 308.15
    activation_j_mol: float = 16_000.0
    lam_share: float = 0.3

    def rate(self, w: Window, contact_loss: float) -> float:
        beta = 7.348e-3 * (w.mean_voltage - 3.667) ** 2 + 7.60e-4 + 4.081e-3 * w.dod
        return beta * math.sqrt(self.cell_ah) * arrhenius(self.activation_j_mol, w.kelvin, self.fit_k)

    def amount(self, w: Window) -> float:
        return w.throughput


@dataclass(frozen=True)
class WangCycle:
    """Wang et al. 2011 (LFP/graphite 26650, 2.2 Ah): loss (%) = B·exp((−31700 + 370.3·C)/(R·T))·Ah^0.55,
    Ah the discharged throughput, B by C-rate (interpolated between the fitted rates)."""

    exponent: float = 0.55
    cell_ah: float = 2.2
    prefactors: tuple[tuple[float, float], ...] = ((0.5, 31_630.0), (2.0, 21_681.0), (6.0, 12_934.0), (10.0, 15_512.0))
    lam_share: float = 0.3

    def rate(self, w: Window, contact_loss: float) -> float:
        rates, bs = zip(*self.prefactors, strict=True)
        c = min(max(w.c_rate, rates[0]), rates[-1])
        b = float(np.interp(c, rates, bs)) / 100.0
        return b * math.exp((-31_700.0 + 370.3 * c) / (R_GAS * w.kelvin)) * self.cell_ah**self.exponent

    def amount(self, w: Window) -> float:
        return w.discharged


@dataclass(frozen=True)
class NaumannCalendar:
    """Naumann et al. 2018 (LFP/graphite 26650): loss k_T·k_SOC·√t, t in s,
    k_T = 1.2571·10⁻⁵·exp(−17126/R·(1/T − 1/298.15)), k_SOC = 2.8575·(SOC − 0.5)³ + 0.60225.
    Counts the time at rest only: Wang et al.'s cycle law was fitted to whole cycling tests, their time in it."""

    exponent: float = 0.5

    def rate(self, w: Window, contact_loss: float) -> float:
        k_soc = 2.8575 * (w.soc - 0.5) ** 3 + 0.60225
        return 1.2571e-5 * arrhenius(17_126.0, w.kelvin) * k_soc

    def amount(self, w: Window) -> float:
        return w.rest_seconds


@dataclass(frozen=True)
class InterfaceGrowth:
    """The sulfide cell's assumed law (no published fit): interphase growth ∝ √x at an Arrhenius rate, x its
    throughput (Ah/Ah) or its time (days); contact loss (stack pressure below rating) multiplies the rate
    by 1 + 3·loss."""

    k_ref: float
    activation_j_mol: float
    by_throughput: bool
    exponent: float = 0.5
    lam_share: float = 0.3

    def rate(self, w: Window, contact_loss: float) -> float:
        return self.k_ref * arrhenius(self.activation_j_mol, w.kelvin) * (1.0 + 3.0 * contact_loss)

    def amount(self, w: Window) -> float:
        return w.throughput if self.by_throughput else w.days


@dataclass(frozen=True)
class Plating:
    """Lithium plating on graphite (Waldmann et al. 2014: below 25 °C ageing speeds up as it gets colder and
    the charge faster).  The anode sees ``C × arrhenius(activation) × (1 + LAM/lam_scale)``; above
    ``critical_c_rate`` the excess plates ``rate`` of capacity per Ah/Ah charged, a ``lam_share`` of it
    as anode isolated by dead lithium (assumed constants, docs/ageing.md)."""

    critical_c_rate: float
    rate: float
    activation_j_mol: float = -30_000.0  # negative: faster when colder
    lam_scale: float = 0.07
    lam_share: float = 0.5

    def over_rate(self, c_rate: float, t_k: float, lam: float) -> float:
        seen = c_rate * arrhenius(self.activation_j_mol, t_k) * (1.0 + lam / self.lam_scale)
        return max(seen - self.critical_c_rate, 0.0)


@dataclass(frozen=True)
class Ageing:
    """A chemistry's ageing: its laws, and how lost lithium and lost active material raise resistance."""

    calendar: PowerLaw
    cycle: CycleLaw
    source: str
    plating: Plating | None = None
    resistance_per_lli: float = 1.5  # relative R0 growth per unit of capacity lost as lithium
    resistance_per_lam: float = 3.0  # … and as active material
