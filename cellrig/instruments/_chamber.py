"""What the chamber drivers share: checks of limits and ramps against a rating, and the run's limits
as pymeasure dynamic validators (ESPEC, Watlow F4T; the Thermotron wrapper checks its own calls)."""

from pymeasure.instruments.validators import strict_range

from .roles import ChamberLimits

MIN_RAMP_RATE = 0.1  # K/min: slower than this is a series of set points, not a ramp


def check_limits(limits: ChamberLimits, rating: ChamberLimits) -> None:
    """Refuse (ValueError) run limits beyond a chamber's rating."""
    strict_range(limits.min_temperature, (rating.min_temperature, limits.max_temperature))
    strict_range(limits.max_temperature, (limits.min_temperature, rating.max_temperature))
    strict_range(limits.max_ramp_rate, (MIN_RAMP_RATE, rating.max_ramp_rate))


def check_ramp(celsius: float, rate_k_per_min: float, limits: ChamberLimits) -> None:
    """Refuse (ValueError) a ramp whose target or rate exceeds the limits."""
    strict_range(celsius, (limits.min_temperature, limits.max_temperature))
    strict_range(rate_k_per_min, (MIN_RAMP_RATE, limits.max_ramp_rate))


class LimitedSetpoint:
    """A chamber whose ``setpoint`` control (and ``ramp_rate``, if it has one) is held to ``limits``."""

    _limits: ChamberLimits

    @property
    def limits(self) -> ChamberLimits:
        """Get the limits set points and ramps are checked against (the rating until configured)."""
        return self._limits

    @limits.setter
    def limits(self, limits: ChamberLimits) -> None:
        self._limits = limits
        self.setpoint_values = (limits.min_temperature, limits.max_temperature)
        if hasattr(type(self), "ramp_rate"):
            self.ramp_rate_values = (MIN_RAMP_RATE, limits.max_ramp_rate)
