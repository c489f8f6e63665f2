"""One open signal's state at one bar: the payload of ``signal:{id}:live`` (the dynamic upgrade).

The engine writes one ``LiveUpdate`` per open signal per bar of its symbol on the bus topic
``signal.live`` (``bus.topics.SIGNAL_LIVE``); the API relays it to the signal's live channel. It is
the contract between the two roles, so it lives here, below both. Figures are net of the rulebook's
costs (``domain.costs``) as if the position were closed at ``price`` now, so the live P/L and the
outcome written at close mean the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

from tradesignals.domain.costs import CostModel
from tradesignals.domain.exits import gross_pct, pct_to_r
from tradesignals.domain.signals import Signal


@dataclass(frozen=True, slots=True)
class LiveUpdate:
    """What a holder of an upgrade sees each bar.

    ``probability`` is the model's re-scored chance that the signal still wins (the rulebook's win:
    net R > 0 at the plan's exit), from the features of this bar; None where the signal's model
    cannot re-score (the rule-based placeholder). ``filled`` is False until the entry fill
    (then P/L fields are None); ``fill_price`` and ``filled_ns`` are that fill (None before it; absent
    from marks of older engines). Distances are in percent of ``price``, signed so that a positive
    number means "still that far away".
    """

    signal_id: str
    symbol: str
    ts_ns: int
    price: float
    filled: bool
    unrealised_net_pct: float | None
    unrealised_net_r: float | None
    distance_to_stop_pct: float
    distance_to_targets_pct: tuple[float, ...]
    probability: float | None
    model_version: str
    fill_price: float | None = None
    filled_ns: int | None = None


def live_update(
    signal: Signal,
    *,
    ts_ns: int,
    price: float,
    fill: float | None,
    filled_ns: int | None,
    costs: CostModel,
    probability: float | None,
    model_version: str,
) -> LiveUpdate:
    """The ``LiveUpdate`` of ``signal`` marked at ``price`` at ``ts_ns``.

    ``fill``/``filled_ns`` are the lifecycle's (the rulebook's fill rule, ``domain.exits``); None
    while the signal waits for its fill. P/L is what closing at ``price`` now would book: the same
    gross, cost and R functions as the outcome written at close (``domain.exits.gross_pct``,
    ``domain.costs.CostModel.costs_pct``, ``domain.exits.pct_to_r``), so the last live figure before
    an exit and the outcome differ only by the exit price.
    """
    sign = signal.direction.sign
    net_pct: float | None = None
    net_r: float | None = None
    if fill is not None and filled_ns is not None:
        gross = gross_pct(sign, fill, price)
        net_pct = gross - costs.costs_pct(sign, fill, price, max(0, ts_ns - filled_ns))
        net_r = pct_to_r(net_pct, fill, signal.risk_per_unit)
    return LiveUpdate(
        signal_id=signal.id,
        symbol=signal.symbol,
        ts_ns=ts_ns,
        price=price,
        filled=fill is not None,
        unrealised_net_pct=net_pct,
        unrealised_net_r=net_r,
        distance_to_stop_pct=sign * (price - signal.stop) * 100.0 / price,
        distance_to_targets_pct=tuple(sign * (t - price) * 100.0 / price for t in signal.targets),
        probability=probability,
        model_version=model_version,
        fill_price=fill if net_pct is not None else None,
        filled_ns=filled_ns if net_pct is not None else None,
    )
