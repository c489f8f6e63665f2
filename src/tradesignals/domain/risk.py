"""Risk profiles: which signals a user sees and how large a position each gets.

Kept a plain value so that accounts, fan-out and the questionnaire can all share it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tradesignals.domain.signals import SignalType


class ProfileName(StrEnum):
    CONSERVATIVE = "conservative"
    MODERATE = "moderate"
    AGGRESSIVE = "aggressive"


@dataclass(frozen=True, slots=True)
class RiskProfile:
    name: ProfileName
    risk_tolerance: float
    max_position_pct: float
    risk_per_trade_pct: float
    min_confidence: float
    max_volatility: float
    allowed_types: frozenset[SignalType]
    sector_caps_pct: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.risk_tolerance <= 1.0:
            raise ValueError(f"risk_tolerance {self.risk_tolerance} is outside [0, 1]")
        if not 0.0 < self.risk_per_trade_pct <= self.max_position_pct <= 100.0:
            raise ValueError("need 0 < risk_per_trade_pct <= max_position_pct <= 100")

    def position_pct(self, entry: float, stop: float) -> float:
        """Percent of equity to commit: risk per trade / distance to stop, capped by max position."""
        distance = abs(entry - stop) / entry
        if distance <= 0:
            return 0.0
        return min(self.max_position_pct, self.risk_per_trade_pct / distance)


PRESETS: dict[ProfileName, RiskProfile] = {
    ProfileName.CONSERVATIVE: RiskProfile(
        ProfileName.CONSERVATIVE, 0.2, 5.0, 0.5, 0.65, 0.30, frozenset({SignalType.SWING})
    ),
    ProfileName.MODERATE: RiskProfile(
        ProfileName.MODERATE, 0.5, 10.0, 1.0, 0.58, 0.60, frozenset({SignalType.SWING, SignalType.EVENT})
    ),
    ProfileName.AGGRESSIVE: RiskProfile(
        ProfileName.AGGRESSIVE, 0.85, 25.0, 2.0, 0.52, 2.0, frozenset(SignalType)
    ),
}
