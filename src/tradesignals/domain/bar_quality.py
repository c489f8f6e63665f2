"""One vocabulary for what is wrong (or suspicious) with a piece of market data.

Bar validity used to be spelled four ways — ``Bar.problems()`` prose, the live validator's snake
case, file ingest's own strings, the replay counting ``Bar.problems()`` — so the same bad row read
"high < low" in one report and "high_below_low" in another, and nothing tied them together. Every
place that judges market data now names its verdicts with ``QualityReason``: the validator, file
ingest, the replay feed, the dataset builder's corporate-action flags and (through
``Bar.problems()``) the lifecycle. The value is the wire spelling: the Prometheus ``reason`` label
(``ts_marketdata_rejected_total`` / ``..._flagged_total``), the keys of ingest's JSON counts and of
the replay's ``rejected`` counter.

A reason is either a *rejection* (the event cannot be used) or a *flag* (accepted, but worth
counting and, for the corporate-action flags, worth keeping out of labels and feature warm-up).
``REJECTIONS`` / ``FLAGS`` say which; a few (``duplicate``, ``out_of_order``) are either, depending
on the validator's policy.
"""

from __future__ import annotations

from enum import StrEnum


class QualityReason(StrEnum):
    """Why an event, a bar or a row was rejected or flagged; the value is the label everywhere."""

    # -- the event itself cannot be read ---------------------------------------------------------
    MALFORMED = "malformed"
    EMPTY_SYMBOL = "empty_symbol"
    BAD_SYMBOL = "bad_symbol"  # not a string, too long for the store, control characters
    BAD_TIMESTAMP = "bad_timestamp"
    # -- field rules (``Bar.problems`` / ``Tick.problems``) --------------------------------------
    NOT_FINITE = "not_finite"  # a price, a size or a volume is NaN or infinite
    NON_POSITIVE_PRICE = "non_positive_price"
    NEGATIVE_SIZE = "negative_size"
    NEGATIVE_VOLUME = "negative_volume"
    HIGH_BELOW_LOW = "high_below_low"
    OPEN_CLOSE_OUTSIDE_RANGE = "open_close_outside_range"
    # -- rules about a stream or a file ----------------------------------------------------------
    OUT_OF_ORDER = "out_of_order"
    DUPLICATE = "duplicate"
    CONFLICTING_DUPLICATE = "conflicting_duplicate"  # same (symbol, ts), other values: none is kept
    STALE = "stale"
    FUTURE = "future"
    # -- the live validator's tick/bar spike policy ----------------------------------------------
    SPIKE = "spike"
    SPIKE_CONFIRMED = "spike_confirmed"
    SPIKE_REVERTED = "spike_reverted"
    # -- one-day moves that look like unadjusted corporate actions or glitches (history files) ---
    REVERSED_JUMP = "reversed_jump"  # far beyond recent volatility and undone the next bar
    SPLIT_RATIO = "split_ratio"  # far beyond recent volatility, at a split's price ratio
    LEVEL_DROP = "level_drop"  # a lasting fall deeper than a 3:2 split's: a spin-off's signature


REJECTIONS = frozenset(
    {
        QualityReason.MALFORMED,
        QualityReason.EMPTY_SYMBOL,
        QualityReason.BAD_SYMBOL,
        QualityReason.BAD_TIMESTAMP,
        QualityReason.NOT_FINITE,
        QualityReason.NON_POSITIVE_PRICE,
        QualityReason.NEGATIVE_SIZE,
        QualityReason.NEGATIVE_VOLUME,
        QualityReason.HIGH_BELOW_LOW,
        QualityReason.OPEN_CLOSE_OUTSIDE_RANGE,
        QualityReason.OUT_OF_ORDER,
        QualityReason.DUPLICATE,
        QualityReason.CONFLICTING_DUPLICATE,
        QualityReason.STALE,
        QualityReason.FUTURE,
        QualityReason.SPIKE,
    }
)
"""Reasons that can keep an event out (some, like ``duplicate``, only under a policy)."""

CORPORATE_ACTION_FLAGS = (
    QualityReason.REVERSED_JUMP,
    QualityReason.SPLIT_RATIO,
    QualityReason.LEVEL_DROP,
)
"""The flags ``marketdata.corporate_actions`` gives, in the order it tests them."""

FLAGS = frozenset(
    {
        QualityReason.OUT_OF_ORDER,
        QualityReason.DUPLICATE,
        QualityReason.SPIKE,
        QualityReason.SPIKE_CONFIRMED,
        QualityReason.SPIKE_REVERTED,
        *CORPORATE_ACTION_FLAGS,
    }
)
"""Reasons that can mark an accepted event (counted, not dropped)."""
