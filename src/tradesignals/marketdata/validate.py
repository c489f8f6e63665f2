"""First line of defence for incoming market data: reject what is wrong, keep what is right, never raise.

Every event gets a verdict: accepted, accepted with a *flag* (something worth counting that may well
be real), or rejected with *reasons*. Both are counted per validator (``rejected``, ``flagged``) and
process-wide in Prometheus (``ts_marketdata_rejected_total{reason}``, ``ts_marketdata_flagged_total
{reason}``). Any exception while judging — a field of the wrong type, an object that is no market
event — is caught and counted as ``malformed``: a feed can never take the pipeline down.

The rules, and the judgement calls in them (the cost of dropping a real trade is a wrong bar and a
wrong signal, so when a rule cannot tell bad from unusual it flags instead of rejecting):

- fields: NaN/inf anywhere, price ≤ 0, negative size/volume, bar high < low, bar open/close outside
  [low, high], an empty or non-string symbol, a non-integer timestamp: rejected.
- out of order: a timestamp older than the last accepted one of that symbol (per symbol *and*
  timeframe for bars): rejected, except within ``reorder_tolerance_ns`` (default 0), where it is
  accepted and flagged — consolidated feeds print a few ms out of order and the aggregator places
  such ticks correctly inside the open bar.
- duplicate, defined narrowly: a tick equal in symbol, ts, price *and* size to the last accepted tick
  of that symbol. Without a trade id that is indistinguishable from two real fills (one order swept
  against two resting 100-share orders at one price prints exactly that), so by default it is
  *flagged and accepted*; ``duplicate_ticks="reject"`` is for sources known to redeliver. A bar with
  the same (symbol, timeframe, ts) as the last accepted one cannot be real and is rejected.
- stale (ts older than now − ``stale_after_ns``) and future (ts newer than now + ``max_future_ns``):
  rejected; both off by default because replays and backtests run on old data, and the live wiring
  sets them. The future check reads the clock only when a tick passes the cached limit.
- spike: a log return, against the symbol's last accepted price, beyond ``spike_sigma`` standard
  deviations of its recent returns — an EWMA of squared returns with span ``spike_window`` (O(1)
  state; the mean is taken as zero, tick-to-tick drift being orders of magnitude below the noise) —
  and larger than ``spike_min_move`` (so a one-cent move after a run of unchanged prints is no spike).
  Judged only after ``spike_window`` returns. The spike's own return never enters the variance until
  the next tick settles it: if the next tick stays nearer the new price it is *confirmed* (a real
  gap: the variance takes the clipped return) else *reverted* (a bad print: the next tick is judged
  against the pre-spike price, so the return to normal is not itself a spike).

  Policy. ``check()`` (the hot path: a bool per event) **accepts a spike and flags it**; the
  settlement is counted as ``spike_confirmed`` / ``spike_reverted``. A genuine gap move is never lost
  and costs no latency; the price is that a bad print reaches the bar it falls in (flagged and
  counted). ``process()`` is the stricter policy for consumers that can wait one tick: it **holds** a
  spike until the symbol's next tick and then releases it (confirmed) or rejects it with reason
  ``spike`` (reverted). ``flush()`` releases ticks still held at the end of a stream: unproven is not
  wrong.

Use one of ``check``/``inspect`` or ``process`` per validator; a validator is not thread-safe (one
per ingest loop).
"""

from __future__ import annotations

import math
import numbers
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from prometheus_client import Counter as PromCounter

from tradesignals.domain.bar_quality import QualityReason
from tradesignals.domain.market import Bar, Tick, Timeframe

MarketEvent = Tick | Bar


REJECTED_TOTAL = PromCounter(
    "ts_marketdata_rejected_total", "Market events rejected by validation, by reason.", ["reason"]
)
FLAGGED_TOTAL = PromCounter(
    "ts_marketdata_flagged_total", "Market events accepted with a flag by validation, by reason.", ["reason"]
)
# Labelled children resolved once: ``labels()`` hashes and locks, too dear per bad tick in a flood.
_REJECT_INC: dict[str, Callable[[], None]] = {
    r.value: REJECTED_TOTAL.labels(reason=r.value).inc for r in QualityReason
}
_FLAG_INC: dict[str, Callable[[], None]] = {
    r.value: FLAGGED_TOTAL.labels(reason=r.value).inc for r in QualityReason
}

_INF = math.inf
_log = math.log

# Bits of a judgement (internal): accepted; flagged as a new spike; settled an earlier spike either way.
_ACCEPT = 1
_SPIKE = 2
_CONFIRMED = 4
_REVERTED = 8


@dataclass(frozen=True, slots=True)
class Verdict:
    """The full judgement of one event: rejected ``reasons`` (empty when accepted) and ``flags``."""

    accepted: bool
    reasons: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()


class _State:
    """What a symbol (or a symbol's timeframe, for bars) needs remembered; touched on every event.

    ``logp`` is the log of ``price`` (one ``log`` per changed price, no division that could
    underflow); ``var`` the EWMA of squared log returns over ``n`` returns seen so far (capped at the
    warm-up); ``ref`` the price before an unsettled spike (0.0 when none); ``held`` the spike event
    ``process()`` is holding back.
    """

    __slots__ = ("held", "logp", "n", "price", "ref", "size", "ts", "var")

    def __init__(self, ts: int, price: float, size: float) -> None:
        self.ts = ts
        self.price = price
        self.logp = _log(price)
        self.size = size
        self.var = 0.0
        self.n = 0
        self.ref = 0.0
        self.held: MarketEvent | None = None


class Validator:
    """Judges ticks and bars; see the module docstring for every rule and the spike policy.

    ``check(event) -> bool`` is the hot path, ``inspect(event) -> Verdict`` the same judgement with its
    reasons, ``process(event) -> list`` the hold-and-confirm spike policy. ``accepted`` counts events
    let through; ``rejected`` and ``flagged`` count reasons (an event can carry several).
    """

    def __init__(
        self,
        *,
        spike_sigma: float = 8.0,
        spike_window: int = 50,
        spike_min_move: float = 0.005,
        stale_after_ns: int | None = None,
        max_future_ns: int | None = None,
        reorder_tolerance_ns: int = 0,
        duplicate_ticks: Literal["flag", "reject"] = "flag",
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if not spike_sigma > 0:
            raise ValueError(f"spike_sigma must be > 0 (got {spike_sigma})")
        if spike_window < 1:
            raise ValueError(f"spike_window must be >= 1 (got {spike_window})")
        if not spike_min_move >= 0:
            raise ValueError(f"spike_min_move must be >= 0 (got {spike_min_move})")
        if reorder_tolerance_ns < 0:
            raise ValueError(f"reorder_tolerance_ns must be >= 0 (got {reorder_tolerance_ns})")
        if duplicate_ticks not in ("flag", "reject"):
            raise ValueError(f"duplicate_ticks must be 'flag' or 'reject' (got {duplicate_ticks!r})")
        for name, value in (("stale_after_ns", stale_after_ns), ("max_future_ns", max_future_ns)):
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 or None (got {value})")
        self.spike_sigma = spike_sigma
        self.spike_window = spike_window
        self.spike_min_move = spike_min_move
        self.stale_after_ns = stale_after_ns
        self.max_future_ns = max_future_ns
        self.reorder_tolerance_ns = reorder_tolerance_ns
        self.duplicate_ticks = duplicate_ticks
        self._clock = clock
        self._k2 = spike_sigma * spike_sigma
        self._floor2 = math.log1p(spike_min_move) ** 2
        self._alpha = 2.0 / (spike_window + 1)
        self._warm = spike_window
        self._future_limit = -_INF if max_future_ns is not None else _INF  # read the clock on first use
        self._set_time_gate()
        self._ticks: dict[str, _State] = {}
        self._bars: dict[tuple[str, Timeframe], _State] = {}
        self._trace: tuple[list[str], list[str]] | None = None
        self.rejected: Counter[str] = Counter()
        self.flagged: Counter[str] = Counter()
        self.accepted = 0

    # -- public API -------------------------------------------------------------------------------

    def check(self, event: MarketEvent) -> bool:
        """True when ``event`` may enter the pipeline; otherwise its reasons are counted. Never raises."""
        return self._judge(event) & _ACCEPT != 0

    def inspect(self, event: MarketEvent) -> Verdict:
        """``check`` with its reasons: what a CLI report or a test wants to read. Never raises."""
        rejected: list[str] = []
        flags: list[str] = []
        self._trace = (rejected, flags)
        try:
            code = self._judge(event)
        finally:
            self._trace = None
        return Verdict(code & _ACCEPT != 0, tuple(rejected), tuple(flags))

    def process(self, event: MarketEvent) -> list[MarketEvent]:
        """Events to pass on now, holding a spike until the next event of its symbol settles it.

        Returns ``[]`` (rejected, or a spike held back), ``[event]``, or ``[held, event]`` when
        ``event`` confirms the spike held before it. A reverted spike is rejected with reason
        ``spike`` and dropped. Never raises.
        """
        code = self._judge(event)
        out: list[MarketEvent] = []
        if code & (_CONFIRMED | _REVERTED):
            st = self._state_of(event)
            held = st.held if st is not None else None
            if st is not None:
                st.held = None
            if held is not None:
                if code & _CONFIRMED:
                    out.append(held)
                else:
                    self.accepted -= 1
                    self._reject(QualityReason.SPIKE.value)
        if code & _SPIKE:
            st = self._state_of(event)
            if st is not None:
                st.held = event
                return out
        if code & _ACCEPT:
            out.append(event)
        return out

    def flush(self) -> list[MarketEvent]:
        """Release every spike ``process()`` still holds (end of stream): unsettled is not disproved."""
        out: list[MarketEvent] = []
        for states in (self._ticks.values(), self._bars.values()):
            for st in states:
                if st.held is not None:
                    out.append(st.held)
                    st.held = None
        out.sort(key=lambda e: e.ts)
        return out

    # -- judgement --------------------------------------------------------------------------------

    def _judge(self, event: object) -> int:
        try:
            if type(event) is Tick:
                ts = event.ts
                price = event.price
                size = event.size
                if not (
                    type(ts) is int
                    and type(price) is float
                    and type(size) is float
                    and 0.0 < price < _INF
                    and 0.0 <= size < _INF
                ):
                    fixed = self._tick_fields(event)
                    if fixed is None:
                        return 0
                    ts, price, size = fixed
                if ts > self._time_gate and not self._in_time(ts, ts):
                    return 0
                st = self._ticks.get(event.symbol)
                if st is None:
                    return self._first(self._ticks, event.symbol, event.symbol, ts, price, size)
                last = st.ts
                if ts <= last:
                    if ts < last:
                        return self._late(last - ts)
                    if price == st.price and size == st.size:
                        return self._duplicate_tick()
                return self._advance(st, ts, price, size)
            if isinstance(event, Bar):
                return self._judge_bar(event)
            if isinstance(event, Tick):  # a subclass: judged like a tick, off the fast path
                return self._judge(Tick(event.symbol, event.ts, event.price, event.size))
            self._reject(QualityReason.MALFORMED.value)
            return 0
        except Exception:
            self._reject(QualityReason.MALFORMED.value)
            return 0

    def _advance(self, st: _State, ts: int, price: float, size: float) -> int:
        """Accept an in-order event: settle a pending spike, judge this return, update the stats."""
        code = _ACCEPT
        ref = st.ref
        logp = st.logp
        if ref:
            st.ref = 0.0
            prev = st.price
            if (price * price > ref * prev) == (prev > ref):
                code |= _CONFIRMED
                self._flag(QualityReason.SPIKE_CONFIRMED.value)
                thr = self._k2 * st.var
                st.var += self._alpha * ((thr if thr > self._floor2 else self._floor2) - st.var)
            else:
                code |= _REVERTED
                self._flag(QualityReason.SPIKE_REVERTED.value)
                logp = _log(ref)
                st.price = ref
                st.logp = logp
        n = st.n
        if price != st.price:
            lp = _log(price)
            r = lp - logp
            rr = r * r
            # The floor first: almost every return is below it, and then nothing else is computed.
            if rr > self._floor2 and rr > self._k2 * st.var and n >= self._warm:
                st.ref = st.price
                st.ts, st.price, st.logp, st.size = ts, price, lp, size
                self._flag(QualityReason.SPIKE.value)
                self.accepted += 1
                return code | _SPIKE
            st.logp = lp
        else:
            rr = 0.0
        if n < self._warm:
            n += 1
            st.n = n
            st.var += (rr - st.var) / n
        else:
            st.var += self._alpha * (rr - st.var)
        st.ts = ts
        st.price = price
        st.size = size
        self.accepted += 1
        return code

    def _tick_fields(self, tick: Tick) -> tuple[int, float, float] | None:
        """The slow path for a tick whose fields failed the fast test: reasons, or usable values."""
        reasons: list[str] = []
        if (why := _symbol_problem(tick.symbol)) is not None:
            reasons.append(why)
        ts = _as_int(tick.ts)
        if ts is None:
            reasons.append(QualityReason.BAD_TIMESTAMP.value)
        price = _as_float(tick.price)
        if price is None:
            reasons.append(QualityReason.MALFORMED.value)
        elif not math.isfinite(price):
            reasons.append(QualityReason.NOT_FINITE.value)
        elif price <= 0:
            reasons.append(QualityReason.NON_POSITIVE_PRICE.value)
        size = _as_float(tick.size)
        if size is None:
            if QualityReason.MALFORMED.value not in reasons:
                reasons.append(QualityReason.MALFORMED.value)
        elif not math.isfinite(size):
            if QualityReason.NOT_FINITE.value not in reasons:
                reasons.append(QualityReason.NOT_FINITE.value)
        elif size < 0:
            reasons.append(QualityReason.NEGATIVE_SIZE.value)
        if reasons or ts is None or price is None or size is None:
            for reason in reasons:
                self._reject(reason)
            return None
        return ts, price, size

    def _judge_bar(self, bar: Bar) -> int:
        reasons: list[str] = []
        if (why := _symbol_problem(bar.symbol)) is not None:
            reasons.append(why)
        if not isinstance(bar.timeframe, Timeframe):
            reasons.append(QualityReason.MALFORMED.value)
        ts = _as_int(bar.ts)
        if ts is None:
            reasons.append(QualityReason.BAD_TIMESTAMP.value)
        values = [_as_float(v) for v in (bar.open, bar.high, bar.low, bar.close, bar.volume)]
        if any(v is None for v in values):
            if QualityReason.MALFORMED.value not in reasons:
                reasons.append(QualityReason.MALFORMED.value)
        else:
            o, h, lo, c, vol = (v for v in values if v is not None)
            if not all(math.isfinite(v) for v in (o, h, lo, c, vol)):
                reasons.append(QualityReason.NOT_FINITE.value)
            else:
                if min(o, h, lo, c) <= 0:
                    reasons.append(QualityReason.NON_POSITIVE_PRICE.value)
                if h < lo:
                    reasons.append(QualityReason.HIGH_BELOW_LOW.value)
                elif not (lo <= o <= h and lo <= c <= h):
                    reasons.append(QualityReason.OPEN_CLOSE_OUTSIDE_RANGE.value)
                if vol < 0:
                    reasons.append(QualityReason.NEGATIVE_VOLUME.value)
        if reasons or ts is None:
            for reason in reasons:
                self._reject(reason)
            return 0
        close, volume = float(bar.close), float(bar.volume)
        if not self._in_time(ts, ts + bar.timeframe.ns):
            return 0
        key = (bar.symbol, bar.timeframe)
        st = self._bars.get(key)
        if st is None:
            return self._first(self._bars, key, bar.symbol, ts, close, volume)
        if ts < st.ts:
            self._reject(QualityReason.OUT_OF_ORDER.value)
            return 0
        if ts == st.ts:
            self._reject(QualityReason.DUPLICATE.value)
            return 0
        return self._advance(st, ts, close, volume)

    def _first(
        self,
        states: dict[str, _State] | dict[tuple[str, Timeframe], _State],
        key: str | tuple[str, Timeframe],
        symbol: object,
        ts: int,
        price: float,
        size: float,
    ) -> int:
        if (why := _symbol_problem(symbol)) is not None:
            self._reject(why)
            return 0
        states[key] = _State(ts, price, size)  # type: ignore[index]
        self.accepted += 1
        return _ACCEPT

    def _late(self, behind_ns: int) -> int:
        if behind_ns <= self.reorder_tolerance_ns:
            self._flag(QualityReason.OUT_OF_ORDER.value)
            self.accepted += 1
            return _ACCEPT
        self._reject(QualityReason.OUT_OF_ORDER.value)
        return 0

    def _duplicate_tick(self) -> int:
        if self.duplicate_ticks == "reject":
            self._reject(QualityReason.DUPLICATE.value)
            return 0
        self._flag(QualityReason.DUPLICATE.value)
        self.accepted += 1
        return _ACCEPT

    def _set_time_gate(self) -> None:
        """Ticks newer than the gate need a time check: every tick when staleness is on, else only
        those past the cached future limit (none when both are off)."""
        self._time_gate = -_INF if self.stale_after_ns is not None else self._future_limit

    def _in_time(self, ts: int, end: int) -> bool:
        """Stale/future checks; ``end`` is when the event was complete (a bar's close, a tick's ts)."""
        if self.max_future_ns is not None and ts > self._future_limit:
            self._future_limit = self._clock() + self.max_future_ns
            self._set_time_gate()
            if ts > self._future_limit:
                self._reject(QualityReason.FUTURE.value)
                return False
        if self.stale_after_ns is not None and end < self._clock() - self.stale_after_ns:
            self._reject(QualityReason.STALE.value)
            return False
        return True

    def _state_of(self, event: MarketEvent) -> _State | None:
        if isinstance(event, Bar):
            return self._bars.get((event.symbol, event.timeframe))
        return self._ticks.get(event.symbol)

    def _reject(self, reason: str) -> None:
        self.rejected[reason] += 1
        _REJECT_INC[reason]()
        if self._trace is not None:
            self._trace[0].append(reason)

    def _flag(self, reason: str) -> None:
        self.flagged[reason] += 1
        _FLAG_INC[reason]()
        if self._trace is not None:
            self._trace[1].append(reason)


def _symbol_problem(symbol: object) -> str | None:
    """``empty_symbol`` for ``""``, ``bad_symbol`` for anything that is not a string, else None."""
    if type(symbol) is not str:
        return QualityReason.BAD_SYMBOL.value
    return None if symbol else QualityReason.EMPTY_SYMBOL.value


def _as_int(value: object) -> int | None:
    """An integer timestamp, numpy's included; bools and floats are refused (ns need exactness)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return None
    return int(value)


def _as_float(value: object) -> float | None:
    """A real number as float (inf for ints too large for one); None for anything else, bools included."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        return float(value)
    except OverflowError:
        return _INF if value > 0 else -_INF  # type: ignore[operator]
    except (TypeError, ValueError):
        return None
