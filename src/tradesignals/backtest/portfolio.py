"""The portfolio of someone who follows the signals: sizing, limits, cash, and the equity curve.

It replays the engine's events in time order — a signal's publication, its fill, its exit — and at
each bar time marks open positions to the bars' closes. Everything about a trade's prices and costs
is the engine's `domain.outcomes.Outcome` (the rulebook's fill, exit and net P/L); what this module
adds is what a follower with finite money can take:

* **sizing** — at publication, `domain.risk.fit` with the chosen profile (risk per trade over the
  stop distance, capped by the maximum position and the sector cap) on the equity marked at the
  deciding bar's close; the quantity is that percent of equity over the decision price, in whole
  units for equities (an order for 37.4 shares is not placed) and to 1e-8 for crypto;
* **limits** — at most ``max_open`` positions (a signal waiting for its fill counts) and
  ``max_per_symbol`` on one symbol;
* **cash and margin** — no leverage: the gross exposure of open positions at their marks plus the
  orders waiting for a fill never exceeds equity; a long pays for its shares, a short receives the
  proceeds and owes the shares back (equity = cash + long value − short value);
* signals not taken are counted by reason (``REASONS``).

Cash moves at the fill (price and entry-side costs) and at the exit, whose cash flow is chosen so
that each trade adds exactly its net P/L (``Outcome.net_pnl_pct`` of the filled notional) to cash:
at the end final equity = starting cash + the sum of the trades' ``pnl``, to the last bit.

Prices in the trade list: ``entry_price``/``exit_price`` include half spread and slippage (the
rulebook's per-side costs, against the trader), ``fees`` are the commissions on both sides plus a
short's borrow, in currency, so ``pnl`` = direction × quantity × (exit − entry) − fees.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from tradesignals.backtest.engine_pass import EngineRun, Published, decided_ns
from tradesignals.domain.costs import CostSchedule
from tradesignals.domain.market import AssetClass, to_ns
from tradesignals.domain.outcomes import Outcome, OutcomeKind
from tradesignals.domain.risk import RiskProfile, fit
from tradesignals.domain.sessions import asset_class_of

REASONS = (
    "profile_edge",
    "profile_rank",
    "profile_volatility",
    "profile_type",
    "sector_cap",
    "max_open",
    "max_per_symbol",
    "no_cash",
    "too_small",
)
"""Why a published signal was not taken, in the order they are checked."""

_FIT_PREFIX = (
    ("edge ", "profile_edge"),
    ("confidence ranks", "profile_rank"),
    ("volatility", "profile_volatility"),
    ("signal type", "profile_type"),
    ("sector ", "sector_cap"),
)

END_OF_DATA = "end_of_data"


@dataclass(frozen=True, slots=True)
class PortfolioConfig:
    """The follower: starting cash, risk profile and position limits."""

    cash: float
    profile: RiskProfile
    max_open: int = 10
    max_per_symbol: int = 1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.cash) and self.cash > 0):
            raise ValueError(f"starting cash must be a positive number (got {self.cash!r})")
        if self.max_open < 1 or self.max_per_symbol < 1:
            raise ValueError("max open positions and max per symbol must be at least 1")


@dataclass(frozen=True, slots=True)
class Trade:
    """One position taken and closed (the trades.csv row, plus what the metrics group by)."""

    symbol: str
    direction: str
    signal_id: str
    decided_at: int
    entry_time: int
    entry_price: float
    exit_time: int
    exit_price: float
    quantity: float
    fees: float
    pnl: float
    return_pct: float
    r: float
    exit_reason: str
    signal_type: str
    confidence: float
    notional: float  # quantity × fill price (before costs): what turnover counts


@dataclass(slots=True)
class EquityPoint:
    ts: int
    equity: float
    cash: float
    exposure: float  # gross value of open positions / equity


@dataclass(slots=True)
class PortfolioResult:
    trades: list[Trade] = field(default_factory=list)
    equity: list[EquityPoint] = field(default_factory=list)
    not_taken: Counter[str] = field(default_factory=Counter)
    taken: int = 0
    not_filled: int = 0


@dataclass(slots=True)
class _Position:
    pub: Published
    outcome: Outcome
    quantity: float
    reserved: float  # decision-price notional held back until the fill
    filled: bool = False
    entry_flow: float = 0.0  # cash paid at the fill (negative for a short's proceeds)


# Event order at one instant: exits free cash and slots before fills and new decisions use them.
_EXIT, _FILL, _PUBLISH = 0, 1, 2


def simulate(
    run: EngineRun,
    config: PortfolioConfig,
    costs: CostSchedule,
    *,
    asset_class: AssetClass | None = None,
) -> PortfolioResult:
    """Follow ``run``'s signals with ``config``'s money and limits; see the module docstring."""
    events: list[tuple[int, int, int, Published]] = []
    for i, pub in enumerate(run.signals):
        events.append((to_ns(pub.signal.created_at), _PUBLISH, i, pub))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    result = PortfolioResult()
    cash = config.cash
    marks: dict[str, float] = {}
    positions: dict[str, _Position] = {}
    queue: list[tuple[int, int, int, str]] = []  # (time, kind, seq, signal_id) of fills and exits
    seq = 0
    e = 0
    steps = run.steps

    def equity_now() -> tuple[float, float]:
        value = gross = 0.0
        for p in positions.values():
            if p.filled:
                mark = marks.get(p.pub.signal.symbol, p.outcome.fill_price or 0.0)
                v = p.quantity * mark
                value += p.pub.signal.direction.sign * v
                gross += v
        return cash + value, gross

    def process_queue(until: int | None) -> None:
        nonlocal cash
        queue.sort()
        while queue and (until is None or queue[0][0] < until):
            _, kind, _, sid = queue.pop(0)
            pos = positions[sid]
            o = pos.outcome
            sign = pos.pub.signal.direction.sign
            model = costs.for_class(asset_class_of(o.symbol, asset_class))
            if kind == _FILL:
                assert o.fill_price is not None
                slip = (model.half_spread_bp + model.slippage_bp) / 1e4
                entry_px = o.fill_price * (1 + sign * slip)
                fee_in = pos.quantity * o.fill_price * model.commission_bp / 1e4
                pos.entry_flow = sign * pos.quantity * entry_px + fee_in
                cash -= pos.entry_flow
                pos.filled = True
                continue
            del positions[sid]
            if not pos.filled:
                result.not_filled += 1
                continue
            result.trades.append(_trade(pos, model, o.signal_id in run.end_of_data))
            cash += result.trades[-1].pnl + pos.entry_flow

    for k, ts in enumerate(steps):
        for sym, close in run.closes[k]:
            marks[sym] = close
        until = steps[k + 1] if k + 1 < len(steps) else None
        while e < len(events) and (until is None or events[e][0] < until):
            t, _, _, pub = events[e]
            e += 1
            process_queue(t + 1)  # everything up to and including this instant first
            o = run.outcomes.get(pub.signal.id)
            if o is None:  # cannot happen: every signal ends (end of data closes the rest)
                raise AssertionError(f"signal {pub.signal.id} has no outcome")
            equity, gross = equity_now()
            reason, qty = _decide(pub, positions, config, equity, gross, asset_class)
            if reason is not None:
                result.not_taken[reason] += 1
                continue
            result.taken += 1
            positions[pub.signal.id] = _Position(pub, o, qty, qty * pub.signal.entry)
            if o.filled and o.filled_at is not None:
                queue.append((to_ns(o.filled_at), _FILL, seq, pub.signal.id))
                seq += 1
            queue.append((to_ns(o.closed_at), _EXIT, seq, pub.signal.id))
            seq += 1
        process_queue(until)
        equity, gross = equity_now()
        result.equity.append(EquityPoint(ts, equity, cash, gross / equity if equity > 0 else math.inf))
    process_queue(None)
    if result.equity and not positions:
        last = result.equity[-1]
        result.equity[-1] = EquityPoint(last.ts, cash, cash, 0.0)
    return result


def _decide(
    pub: Published,
    positions: dict[str, _Position],
    config: PortfolioConfig,
    equity: float,
    gross: float,
    asset_class: AssetClass | None,
) -> tuple[str | None, float]:
    """(reason not taken, None) or (None, quantity)."""
    s = pub.signal
    open_pct = 100.0 * sum(p.quantity * p.pub.signal.entry for p in positions.values()) / equity
    f = fit(s, config.profile, volatility=pub.volatility, sector=None, open_exposure_by_sector={"": open_pct})
    if not f.accepted:
        for prefix, reason in _FIT_PREFIX:
            if f.reasons[0].startswith(prefix):
                return reason, 0.0
        raise AssertionError(f"unrecognised fit reason: {f.reasons[0]}")
    if len(positions) >= config.max_open:
        return "max_open", 0.0
    if sum(1 for p in positions.values() if p.pub.signal.symbol == s.symbol) >= config.max_per_symbol:
        return "max_per_symbol", 0.0
    notional = equity * f.position_pct / 100.0
    if asset_class_of(s.symbol, asset_class) is AssetClass.EQUITY:
        qty = float(math.floor(notional / s.entry))
    else:
        qty = math.floor(notional / s.entry * 1e8) / 1e8
    if qty <= 0:
        return "too_small", 0.0
    pending = sum(p.reserved for p in positions.values() if not p.filled)
    if gross + pending + qty * s.entry > equity:
        return "no_cash", 0.0
    return None, qty


def _trade(pos: _Position, model: object, end_of_data: bool) -> Trade:
    from tradesignals.domain.costs import CostModel

    assert isinstance(model, CostModel)
    o, s = pos.outcome, pos.pub.signal
    assert o.fill_price is not None and o.exit_price is not None and o.filled_at is not None
    assert o.net_pnl_pct is not None and o.net_r is not None and o.costs_pct is not None
    sign = s.direction.sign
    slip = (model.half_spread_bp + model.slippage_bp) / 1e4
    q = pos.quantity
    notional = q * o.fill_price
    pnl = notional * o.net_pnl_pct / 100.0
    entry_px = o.fill_price * (1 + sign * slip)
    exit_px = o.exit_price * (1 - sign * slip)
    # Everything of the rulebook's round-trip cost that is not in the two prices: commissions, borrow.
    fees = notional * o.costs_pct / 100.0 - q * slip * (o.fill_price + o.exit_price)
    reason = END_OF_DATA if end_of_data else o.outcome.value
    if o.outcome is OutcomeKind.NOT_FILLED:  # pragma: no cover - filtered by the caller
        raise AssertionError("a position that never filled is not a trade")
    return Trade(
        symbol=s.symbol,
        direction=s.direction.value,
        signal_id=s.id,
        decided_at=decided_ns(s),
        entry_time=to_ns(o.filled_at),
        entry_price=entry_px,
        exit_time=to_ns(o.closed_at),
        exit_price=exit_px,
        quantity=q,
        fees=fees,
        pnl=pnl,
        return_pct=o.net_pnl_pct,
        r=o.net_r,
        exit_reason=reason,
        signal_type=s.type.value,
        confidence=s.confidence,
        notional=notional,
    )


__all__ = ["END_OF_DATA", "REASONS", "EquityPoint", "PortfolioConfig", "PortfolioResult", "Trade", "simulate"]
