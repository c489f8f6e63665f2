"""Trace ids: one id follows a decision from its bar to its signal to each delivery of it, in the logs.

Derived, never carried: the id is a digest of what names the decision — the symbol, the bar's
timeframe and the bar's close (the signal's ``decided_at``) — so every stage computes the same id
from what it already holds, on any node, with no new field in the bus messages, the stored
signals or the ledger. ``grep trace_id=…`` over the roles' logs gives the bar's path.
"""

from __future__ import annotations

import hashlib

from tradesignals.domain.market import to_ns
from tradesignals.domain.signals import Signal


def trace_id(symbol: str, timeframe: str, decided_ns: int) -> str:
    """16 hex digits for the decision on ``symbol``'s ``timeframe`` bar closing at ``decided_ns``."""
    return hashlib.blake2b(f"{symbol}|{timeframe}|{decided_ns}".encode(), digest_size=8).hexdigest()


def signal_trace_id(signal: Signal) -> str:
    """The trace id of the bar that decided ``signal`` (its ``created_at`` for signals from before
    ``decided_at`` existed)."""
    return trace_id(signal.symbol, signal.timeframe, to_ns(signal.decided_at or signal.created_at))
