"""The rulebook's costs: what a trade costs someone who follows a signal, by asset class.

Labels, the lifecycle and the backtest apply this one model, so a "win" is a win after costs
everywhere. Costs are charged on both sides of the trade, in basis points of the traded price, plus
a daily borrow for shorts:

* ``commission_bp`` — the broker's or exchange's fee per side;
* ``half_spread_bp`` — crossing half the bid/ask spread per side (we buy at the ask, sell at the bid);
* ``slippage_bp`` — the price moving against a market order while it fills, per side;
* ``borrow_bp_per_day`` — shorts only: the cost of borrowing the asset, per calendar day held
  (pro rata, so an intraday short pays a fraction of a day).

Defaults (documented in README, settable with ``TS_COSTS_<CLASS>_<FIELD>``):

==========  ==========  ===========  ========  ===============  =====================================
class       commission  half spread  slippage  borrow/day       why
==========  ==========  ===========  ========  ===============  =====================================
equity      1.0 bp      2.0 bp       2.0 bp    0.137 bp (0.5 %  US large caps: ~$0.005/share at $50,
                                               a year)          one-cent spreads, general collateral
crypto      10.0 bp     1.0 bp       2.0 bp    2.74 bp (10 % a  spot taker fee of the large venues,
                                               year)            tight BTC/ETH books, margin borrow
==========  ==========  ===========  ========  ===============  =====================================

A round trip in a US large cap therefore costs 10 bp, in crypto 26 bp, before borrow. These are
deliberately not flattering: a plan that only wins at zero cost does not win.

All amounts are in percent of the **fill price** (``costs_pct``), so that gross and net P/L in percent
of the fill subtract directly; `TradeCosts.in_r` converts to R with the plan's risk.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

from tradesignals.domain.market import NS_PER_SECOND, AssetClass

DAY_SECONDS = 86_400


def round_trip_costs_pct(
    sign: float, fill: float, exit_price: float, held_ns: float, per_side_bp: float, borrow_bp_per_day: float
) -> float:
    """The cost formula, on plain numbers so that the numba label kernel compiles this very function.

    Each side pays ``per_side_bp`` of its own price; expressed in percent of the fill. A short pays
    ``borrow_bp_per_day`` of the fill per calendar day held.
    """
    sides = per_side_bp * (fill + exit_price) / fill
    borrow = 0.0
    if sign < 0 and held_ns > 0:
        borrow = borrow_bp_per_day * held_ns / (DAY_SECONDS * NS_PER_SECOND)
    return (sides + borrow) / 100.0


@dataclass(frozen=True, slots=True)
class CostModel:
    """Per-side costs in basis points of the traded price, and a daily short borrow."""

    commission_bp: float
    half_spread_bp: float
    slippage_bp: float
    borrow_bp_per_day: float

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{f.name} must be a finite number >= 0 (got {value!r})")

    @property
    def per_side_bp(self) -> float:
        return self.commission_bp + self.half_spread_bp + self.slippage_bp

    def costs_pct(self, sign: int, fill: float, exit_price: float, held_ns: int) -> float:
        """Costs of one round trip in percent of ``fill``: both sides, plus borrow for a short."""
        return round_trip_costs_pct(sign, fill, exit_price, held_ns, self.per_side_bp, self.borrow_bp_per_day)

    def replace(self, **changes: float) -> CostModel:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        unknown = set(changes) - set(values)
        if unknown:
            raise ValueError(f"unknown cost field(s) {sorted(unknown)}; expected {sorted(values)}")
        values.update(changes)
        return CostModel(**values)


ZERO_COSTS = CostModel(0.0, 0.0, 0.0, 0.0)

DEFAULT_COSTS: Mapping[AssetClass, CostModel] = {
    AssetClass.EQUITY: CostModel(
        commission_bp=1.0, half_spread_bp=2.0, slippage_bp=2.0, borrow_bp_per_day=50 / 365
    ),
    AssetClass.CRYPTO: CostModel(
        commission_bp=10.0, half_spread_bp=1.0, slippage_bp=2.0, borrow_bp_per_day=1000 / 365
    ),
}


@dataclass(frozen=True, slots=True)
class CostSchedule:
    """The cost model of each asset class: the one object every rule asks "what does this cost"."""

    by_class: Mapping[AssetClass, CostModel]

    def for_class(self, asset: AssetClass) -> CostModel:
        return self.by_class[asset]

    def as_dict(self) -> dict[str, dict[str, float]]:
        """JSON-safe, for a model's metadata and a backtest's report."""
        return {a.value: {f.name: getattr(m, f.name) for f in fields(m)} for a, m in self.by_class.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, float]]) -> CostSchedule:
        return cls({AssetClass(k): CostModel(**{n: float(x) for n, x in v.items()}) for k, v in data.items()})


DEFAULT_SCHEDULE = CostSchedule(DEFAULT_COSTS)
NO_COSTS = CostSchedule(dict.fromkeys(AssetClass, ZERO_COSTS))


__all__ = [
    "DEFAULT_COSTS",
    "DEFAULT_SCHEDULE",
    "NO_COSTS",
    "ZERO_COSTS",
    "CostModel",
    "CostSchedule",
    "round_trip_costs_pct",
]
