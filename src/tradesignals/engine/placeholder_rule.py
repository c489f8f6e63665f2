"""A transparent indicator rule that stands in for the ML model until one is registered.

SMA(5)/SMA(20) crossover with ATR(14) stops. It exists so that the whole path (bars → decision →
ledger → API → WebSocket) runs end to end from day one; it claims no edge, and its confidence is a
plain function of trend strength, labelled with ``MODEL_VERSION`` so nobody mistakes it for the model.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tradesignals.domain.market import Bar
from tradesignals.domain.signals import Direction

MODEL_VERSION = "rule-sma-cross-v0"
FAST, SLOW, ATR_N = 5, 20, 14


@dataclass(frozen=True, slots=True)
class Decision:
    direction: Direction
    confidence: float
    atr: float
    reasons: tuple[str, ...]
    # Reasons that cost real time (model contributions): computed only if the decision becomes a
    # signal, never for one the engine suppresses as a duplicate or during cool-down.
    explain: Callable[[], tuple[str, ...]] | None = None
    # The model's input row, so the online adapter can learn from this signal's outcome.
    features: Any = None
    # Where the confidence ranks on the model's own out-of-fold scale (None for rules).
    confidence_rank: float | None = None


@dataclass(slots=True)
class _State:
    closes: deque[float] = field(default_factory=lambda: deque(maxlen=SLOW))
    fast_sum: float = 0.0
    slow_sum: float = 0.0
    prev_close: float = math.nan
    atr: float = 0.0
    tr_seen: int = 0
    prev_diff: float = math.nan


@dataclass(slots=True)
class AtrState:
    """One symbol's Wilder ATR(14), computed as the placeholder computes it: for rules that need one."""

    prev_close: float = math.nan
    atr: float = 0.0
    tr_seen: int = 0

    @property
    def value(self) -> float | None:
        """The ATR once ``ATR_N`` true ranges were seen, else None."""
        return self.atr if self.tr_seen >= ATR_N else None

    def update(self, bar: Bar) -> float | None:
        PlaceholderRule._update_atr(self, bar)
        return self.value


class PlaceholderRule:
    """O(1) per bar per symbol: running sums, Wilder ATR, no history rescans."""

    version = MODEL_VERSION

    def __init__(self) -> None:
        self._state: dict[str, _State] = {}

    def forget(self, which: Callable[[str], bool]) -> None:
        """Drop the state of the symbols ``which`` selects (their partition is rebuilt elsewhere)."""
        for symbol in [s for s in self._state if which(s)]:
            del self._state[symbol]

    def on_bar(self, bar: Bar) -> Decision | None:
        st = self._state.get(bar.symbol)
        if st is None:
            st = self._state[bar.symbol] = _State()
        self._update_atr(st, bar)
        closes = st.closes
        if len(closes) == SLOW:
            st.slow_sum -= closes[0]
        if len(closes) >= FAST:
            st.fast_sum -= closes[-FAST]
        closes.append(bar.close)
        st.fast_sum += bar.close
        st.slow_sum += bar.close
        if len(closes) < SLOW or st.tr_seen < ATR_N:
            return None
        fast, slow = st.fast_sum / FAST, st.slow_sum / SLOW
        diff = fast - slow
        prev, st.prev_diff = st.prev_diff, diff
        if math.isnan(prev) or (prev <= 0) == (diff <= 0):
            return None
        direction = Direction.LONG if diff > 0 else Direction.SHORT
        strength = abs(diff) / st.atr if st.atr > 0 else 0.0
        confidence = round(0.5 + 0.15 * math.tanh(strength), 4)
        reasons = (
            f"SMA{FAST} crossed {'above' if diff > 0 else 'below'} SMA{SLOW}",
            f"ATR{ATR_N} {st.atr:.4g}",
        )
        return Decision(direction, confidence, st.atr, reasons)

    @staticmethod
    def _update_atr(st: _State | AtrState, bar: Bar) -> None:
        """Wilder's ATR, seeded with the plain mean of the first ATR_N true ranges (as TA-Lib)."""
        pc = st.prev_close
        tr = bar.high - bar.low if math.isnan(pc) else max(bar.high, pc) - min(bar.low, pc)
        st.prev_close = bar.close
        st.tr_seen += 1
        n = st.tr_seen
        st.atr = st.atr + (tr - st.atr) / (n if n <= ATR_N else ATR_N)
