"""One open signal's state at one bar: the payload of ``signal:{id}:live`` (the dynamic upgrade).

The engine writes one ``LiveUpdate`` per open signal per bar of its symbol on the bus topic
``signal.live`` (``bus.topics.SIGNAL_LIVE``); the API relays it to the signal's live channel. It is
the contract between the two roles, so it lives here, below both. Figures are net of the rulebook's
costs (``domain.costs``) as if the position were closed at ``price`` now, so the live P/L and the
outcome written at close mean the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LiveUpdate:
    """What a holder of an upgrade sees each bar.

    ``probability`` is the model's re-scored chance that the signal still wins (the rulebook's win:
    net R > 0 at the plan's exit), from the features of this bar; None where the signal's model
    cannot re-score (the rule-based placeholder). ``filled`` is False until the entry fill
    (then P/L fields are None). Distances are in percent of ``price``, signed so that a positive
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
