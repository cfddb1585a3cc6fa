"""A battery cell for the virtual lab: an equivalent circuit (OCV(SOC), R0, one RC pair).

Sign convention: current is positive when charging.  The model is stepped with a fixed
time step by whatever instrument drives it; with the same inputs it gives the same
answer, whatever the wall clock does.
"""

import bisect
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Chemistry:
    """A chemistry preset: OCV curve, resistances, voltage window, coulombic efficiency."""

    name: str
    soc: tuple[float, ...]
    ocv: tuple[float, ...]
    r0_ohm_ah: float  # ohmic resistance times capacity (so R0 scales as 1/capacity)
    r1_ohm_ah: float  # RC-pair resistance times capacity
    tau_s: float  # RC-pair time constant
    v_min: float
    v_max: float
    coulombic_efficiency: float  # charge stored per charge passed while charging
    source: str


#: NMC811/graphite: OCV shape from Chen et al., J. Electrochem. Soc. 167, 080534 (2020)
#: (LG M50, 5 Ah), read off at coarse SOC points; R0 ≈ 15 mΩ·(5 Ah) and a 60 s RC pair
#: are typical of that cell's HPPC at 25 °C.
NMC811 = Chemistry(
    name="NMC811/graphite",
    soc=(0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    ocv=(2.50, 3.20, 3.40, 3.48, 3.56, 3.62, 3.68, 3.75, 3.84, 3.93, 4.02, 4.10, 4.20),
    r0_ohm_ah=0.050,
    r1_ohm_ah=0.025,
    tau_s=60.0,
    v_min=2.5,
    v_max=4.2,
    coulombic_efficiency=0.9995,
    source="Chen et al., J. Electrochem. Soc. 167, 080534 (2020)",
)


@dataclass
class Cell:
    """State of one cell: state of charge, RC-pair voltage, charge passed."""

    chemistry: Chemistry = NMC811
    capacity_ah: float = 5.0
    soc: float = 0.5
    v_rc: float = 0.0

    @property
    def r0(self) -> float:
        return self.chemistry.r0_ohm_ah / self.capacity_ah

    @property
    def r1(self) -> float:
        return self.chemistry.r1_ohm_ah / self.capacity_ah

    def ocv(self) -> float:
        xs, ys = self.chemistry.soc, self.chemistry.ocv
        i = min(max(bisect.bisect_right(xs, self.soc), 1), len(xs) - 1)
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        return y0 + (y1 - y0) * (min(max(self.soc, x0), x1) - x0) / (x1 - x0)

    def voltage(self, current: float) -> float:
        """Terminal voltage with ``current`` flowing now."""
        return self.ocv() + self.v_rc + current * self.r0

    def current_for_voltage(self, volts: float) -> float:
        """The current that holds the terminal at ``volts`` now (constant-voltage phase)."""
        return (volts - self.ocv() - self.v_rc) / self.r0

    def step(self, current: float, dt: float) -> None:
        """Pass ``current`` for ``dt`` seconds."""
        eff = self.chemistry.coulombic_efficiency if current > 0 else 1.0
        self.soc = min(max(self.soc + current * eff * dt / (3600.0 * self.capacity_ah), 0.0), 1.0)
        decay = math.exp(-dt / self.chemistry.tau_s)
        self.v_rc = self.v_rc * decay + self.r1 * current * (1.0 - decay)
