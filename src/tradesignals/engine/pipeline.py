"""The engine role: market events → bars → decision → signal → store → bus.

``SignalEngine`` is the synchronous core (pure compute, no I/O) used unchanged by live, replay and
backtests. ``EngineService`` is the async shell that feeds it from the bus and does the I/O.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

import structlog

from tradesignals.bus import metrics as bus_metrics
from tradesignals.bus import topics
from tradesignals.bus.base import Bus, BusError, Consumer, Delivery, partition_for
from tradesignals.bus.codec import decoder, encode
from tradesignals.domain.costs import DEFAULT_SCHEDULE, CostSchedule
from tradesignals.domain.live import LiveUpdate
from tradesignals.domain.market import Bar, Tick, Timeframe, to_ns
from tradesignals.domain.outcomes import Outcome
from tradesignals.domain.sessions import SessionCalendar
from tradesignals.domain.signals import Direction, Signal, SignalStatus, SignalType
from tradesignals.domain.trace import signal_trace_id, trace_id
from tradesignals.domain.trade_plan import PlanParams
from tradesignals.engine import stage_metrics
from tradesignals.engine.backoff import with_backoff
from tradesignals.engine.decide import build_signal
from tradesignals.engine.event_rules import EventRule
from tradesignals.engine.lifecycle import LifecycleTracker
from tradesignals.engine.placeholder_rule import Decision
from tradesignals.marketdata.bars import BarAggregator
from tradesignals.news.earnings import EarningsCalendar
from tradesignals.storage.base import DuplicateError, SignalQuery, SignalRepository, StorageError

log = structlog.get_logger(__name__)

R = TypeVar("R")


class Scorer(Protocol):
    """Anything that turns the next bar of a symbol into a directional decision (rule or model)."""

    version: str

    def on_bar(self, bar: Bar) -> Decision | None: ...


@dataclass(frozen=True, slots=True)
class Rebuild:
    """One partition's state rebuilt after it was gained: how much history it took."""

    topic: str
    partition: int
    replayed: int
    restored: int
    seconds: float


@dataclass(slots=True)
class EngineStats:
    bars: int = 0
    ticks: int = 0
    decisions: int = 0
    signals: int = 0
    suppressed_duplicates: int = 0
    suppressed_cooldown: int = 0
    live_updates: int = 0
    last_latency_ns: int = 0


class _Lane:
    """What the engine keeps per bar timeframe: the scorer that speaks for bars of that length."""

    __slots__ = ("scorer", "timeframe")

    def __init__(self, timeframe: Timeframe, scorer: Scorer) -> None:
        self.timeframe = timeframe
        self.scorer = scorer


ScorerFor = Callable[[Timeframe], Scorer]


class SignalEngine:
    """Bars (or ticks) in, signals and outcomes out. Pure compute: live, replay and backtest drive it.

    ``scorer`` is one scorer for every bar, or a function giving the scorer for a timeframe: the
    engine learns the timeframe from the bars it receives (each bar carries it) and asks once per
    timeframe, so a daily replay in another process gets the swing model whatever any default says.
    ``tick_timeframe`` is the bar length ticks are aggregated to (a setting: ticks carry none);
    without it ticks are refused. A scorer that carries the plan its model was labelled with
    (``plan``) must match this engine's ``plan`` — a model trained on other stops or horizons would
    publish a confidence about another promise (``domain.trade_plan.PlanMismatch``).

    One open signal per (symbol, direction); a cool-down after a close. Every open signal is followed
    by the lifecycle on this engine's prices — bars in bar mode, ticks in tick mode (the fill is the
    next tick after publication) — and expiry is judged per symbol, on that symbol's own clock.
    """

    def __init__(
        self,
        scorer: Scorer | ScorerFor,
        tick_timeframe: Timeframe | None = None,
        plan: PlanParams = PlanParams(),
        *,
        calendar: SessionCalendar | Callable[[str], SessionCalendar] | None = None,
        earnings: EarningsCalendar | None = None,
        costs: CostSchedule = DEFAULT_SCHEDULE,
        events: Sequence[EventRule] = (),
    ) -> None:
        # Event rules (``engine.event_rules``): asked every bar after the scorer; their signals are
        # ``type = event``, de-duplicated per rule, and leave the scorer's signals and cool-downs alone.
        self.events = tuple(events)
        self._event_ids: set[str] = set()
        self._scorer_for: ScorerFor | None = None
        self._fixed: Scorer | None = None
        if hasattr(scorer, "on_bar"):
            self._fixed = scorer  # type: ignore[assignment]
        else:
            self._scorer_for = scorer
        self.earnings = earnings
        self.tick_timeframe = tick_timeframe
        self.plan = plan
        self.costs = costs
        self.stats = EngineStats()
        self.calendar = calendar
        resolve = _resolver(calendar)
        self._aggregator = BarAggregator(tick_timeframe, calendar=calendar) if tick_timeframe else None
        self.lifecycle = LifecycleTracker(costs=costs, calendar=resolve)
        self._lanes: dict[Timeframe, _Lane] = {}
        self._closed: list[Outcome] = []
        self._cooldown_until: dict[tuple[str, Direction], int] = {}
        self._open_meta: dict[str, tuple[Direction, Timeframe]] = {}
        self._learning: dict[str, tuple[float, object, Scorer]] = {}
        self._alerts: list[dict[str, object]] = []
        # ``signal:{id}:live`` in tick mode: off unless someone drains them (``EngineService`` turns
        # it on), so a backtest never keeps a list. In bar mode the caller asks (``mark``) once the
        # bar's signals are out, so marks never delay a signal.
        self.live_updates = False
        self._live: list[LiveUpdate] = []
        # False while a partition's history is replayed: outcomes replayed are not news to the
        # online model (it learns from live outcomes only, as for signals restored from the store).
        self.learning = True
        if self._fixed is not None:
            _check_plan(self._fixed, plan)

    @property
    def scorer(self) -> Scorer:
        """The scorer of the first timeframe seen (the fixed one when there is one): for logs and state."""
        if self._fixed is not None:
            return self._fixed
        if self._lanes:
            return next(iter(self._lanes.values())).scorer
        if self.tick_timeframe is not None:
            return self._lane(self.tick_timeframe).scorer
        raise LookupError("no bar has reached the engine yet, so no scorer was chosen")

    @property
    def timeframe(self) -> Timeframe | None:
        """The tick aggregation timeframe, else the first bar timeframe seen (None before any bar)."""
        if self.tick_timeframe is not None:
            return self.tick_timeframe
        return next(iter(self._lanes), None)

    def scorers(self) -> dict[Timeframe, Scorer]:
        return {tf: lane.scorer for tf, lane in self._lanes.items()}

    def _lane(self, timeframe: Timeframe) -> _Lane:
        lane = self._lanes.get(timeframe)
        if lane is None:
            if self._fixed is not None:
                scorer = self._fixed
            else:
                assert self._scorer_for is not None
                scorer = self._scorer_for(timeframe)
                _check_plan(scorer, self.plan)
            lane = self._lanes[timeframe] = _Lane(timeframe, scorer)
        return lane

    def forget(self, which: Callable[[str], bool]) -> None:
        """Drop everything kept for the symbols ``which`` selects: open signals, cool-downs, bars being
        aggregated and each scorer's per-symbol state (scorers that keep any have ``forget``).

        Called before the state of a partition taken over from another engine is rebuilt from its
        history (``EngineService``), so the rebuilt state is not added to a stale one.
        """
        for signal in self.lifecycle.open_signals():
            if which(signal.symbol):
                self.lifecycle.remove(signal.id)
                self._open_meta.pop(signal.id, None)
                self._learning.pop(signal.id, None)
                self._event_ids.discard(signal.id)
        for key in [k for k in self._cooldown_until if which(k[0])]:
            del self._cooldown_until[key]
        if self._aggregator is not None:
            self._aggregator.forget(which)
        for lane in self._lanes.values():
            forget = getattr(lane.scorer, "forget", None)
            if forget is not None:
                forget(which)
        for rule in self.events:
            rule.forget(which)

    def replace_scorer(self, timeframe: Timeframe, scorer: Scorer) -> Scorer | None:
        """A new scorer for ``timeframe``'s decisions from the next bar on; returns the one it replaces.

        What a retrained model taking over means (walk-forward backtests retrain per period): open
        signals run on under the lifecycle, their outcomes still reach the scorer that published
        them, and the new scorer must carry the engine's plan like any other. Per-symbol state the
        scorer keeps (a model's feature windows) is the caller's to hand over.
        """
        if self._fixed is not None:
            raise ValueError("this engine was built with one fixed scorer; it has no lanes to replace")
        _check_plan(scorer, self.plan)
        lane = self._lanes.get(timeframe)
        if lane is None:
            self._lanes[timeframe] = _Lane(timeframe, scorer)
            return None
        old, lane.scorer = lane.scorer, scorer
        return old

    def restore(self, signals: list[Signal]) -> None:
        """Resume after a restart: follow the signals still open in the store."""
        for signal in signals:
            if signal.status is SignalStatus.OPEN and signal.id not in self.lifecycle:
                self.lifecycle.add(signal)
                self._open_meta[signal.id] = (signal.direction, Timeframe.parse(signal.timeframe))
                if signal.type is SignalType.EVENT:
                    self._event_ids.add(signal.id)

    def _after_close(self, closed: list[Outcome]) -> None:
        for o in closed:
            meta = self._open_meta.pop(o.signal_id, None)
            if o.signal_id in self._event_ids:
                self._event_ids.discard(o.signal_id)
                continue  # an event rule's close says nothing about the scorer's next idea
            if meta is not None and self.plan.cooldown_bars > 0:
                direction, tf = meta
                wait = self.plan.cooldown_bars * tf.ns
                self._cooldown_until[(o.symbol, direction)] = to_ns(o.closed_at) + wait
        self._learn(closed)
        self._closed += closed

    def _learn(self, closed: list[Outcome]) -> None:
        for o in closed:
            p, features, scorer = self._learning.pop(o.signal_id, (None, None, None))
            if p is None or not o.filled:
                continue  # restored after a restart (features not kept), or never traded
            on_outcome = getattr(scorer, "on_outcome", None)
            if on_outcome is None:
                continue
            state = on_outcome(o, p, features)
            if state is not None and state.drift:
                self._alerts.append(state.alert_payload())

    def drain_alerts(self) -> list[dict[str, object]]:
        """``system:alerts`` payloads raised since the last call (model drift)."""
        out, self._alerts = self._alerts, []
        return out

    def drain_live(self) -> list[LiveUpdate]:
        """``LiveUpdate``s made since the last call (``mark``, or ticks with ``live_updates``), oldest first."""
        out, self._live = self._live, []
        return out

    def drain_outcomes(self) -> list[Outcome]:
        """Outcomes produced since the last call, oldest first."""
        out, self._closed = self._closed, []
        return out

    def on_tick(self, tick: Tick) -> list[Signal]:
        """Tick mode: the tick fills or closes open signals, then may close a bar that decides."""
        if self._aggregator is None:
            raise ValueError("this engine has no tick timeframe: it takes bars, not ticks")
        self.stats.ticks += 1
        closed = self.lifecycle.on_tick(tick) + self.lifecycle.expire_due(tick.ts, tick.symbol)
        if closed:
            self._after_close(closed)
        out: list[Signal] = []
        for bar in self._aggregator.update(tick):
            self.stats.bars += 1
            # Published now, at this tick: the bar was only known to be complete when it arrived.
            sig = self._decide(bar, published_ns=tick.ts)
            if sig is not None:
                out.append(sig)
            if self.events:
                out += self._decide_events(bar, published_ns=tick.ts)
            if self.live_updates and self.lifecycle.has_open(bar.symbol):
                self._mark(bar, self.lifecycle.bar_close(bar))
        return out

    def on_bar(self, bar: Bar) -> Signal | None:
        """``on_bar_signals`` for an engine without event rules (one bar, at most one signal)."""
        if self.events:
            out = self.on_bar_signals(bar)
            if len(out) > 1:
                raise RuntimeError(
                    "this engine has event rules, so a bar can make several signals: use on_bar_signals"
                )
            return out[0] if out else None
        self._advance(bar)
        return self._decide(bar, published_ns=None)

    def on_bar_signals(self, bar: Bar) -> list[Signal]:
        """Bar mode: the bar moves open signals (fills, exits, expiry on its own symbol's clock), then
        the scorer and each event rule decide; the new signals, the scorer's first."""
        self._advance(bar)
        signal = self._decide(bar, published_ns=None)
        out = [] if signal is None else [signal]
        if self.events:
            out += self._decide_events(bar, published_ns=None)
        return out

    def _advance(self, bar: Bar) -> None:
        """The bar moves open signals: fills, exits, and expiry on its own symbol's clock."""
        self.stats.bars += 1
        close_ns = self.lifecycle.bar_close(bar)
        # Outcomes first: a bar can close an older signal and then justify a new one.
        closed = self.lifecycle.on_bar(bar, close_ns) + self.lifecycle.expire_due(close_ns, bar.symbol)
        if closed:
            self._after_close(closed)

    def mark(self, bar: Bar) -> None:
        """Bar mode: the marks of ``bar``'s symbol's open signals at its close (``drain_live``).

        Called after ``on_bar_signals(bar)`` and before the next bar, once the bar's new signals
        are stored and published: the state it reads is the bar's, and a new signal never waits
        for marks. A symbol without an open signal costs one dict probe.
        """
        if self.lifecycle.has_open(bar.symbol):
            self._mark(bar, self.lifecycle.bar_close(bar))

    def _decide_events(self, bar: Bar, published_ns: int | None) -> list[Signal]:
        """Each event rule's decision on ``bar`` through the one decide path (``kind = event``)."""
        out: list[Signal] = []
        for rule in self.events:
            decision = rule.on_bar(bar)
            if decision is None:
                continue
            self.stats.decisions += 1
            if any(
                s.model_version == rule.version and s.direction is decision.direction
                for s in self.lifecycle.open_signals(bar.symbol)
            ):
                self.stats.suppressed_duplicates += 1
                continue
            signal = build_signal(
                bar,
                decision.direction,
                decision.confidence,
                decision.atr,
                rule.version,
                decision.reasons,
                self.plan,
                self.calendar,
                self.earnings,
                SignalType.EVENT,
                published_ns=published_ns,
                event_ns=decision.event_ns,
            )
            if signal is None:
                continue
            self.lifecycle.add(signal)
            self._open_meta[signal.id] = (signal.direction, bar.timeframe)
            self._event_ids.add(signal.id)
            self.stats.signals += 1
            out.append(signal)
        return out

    def _mark(self, bar: Bar, close_ns: int) -> None:
        """One ``LiveUpdate`` per signal still open on ``bar``'s symbol, at its close (issue 12).

        Runs after the lifecycle applied the bar and after the scorer saw it, so the fill state is
        the rulebook's and the features are this bar's. The probability is the scorer of the
        signal's timeframe re-scoring the signal's direction (``rescore``) when it is the model that
        made the signal; otherwise (a rule, an event rule, a model since replaced) None, and the
        signal's own model version is named.
        """
        if bar.problems():
            return
        lane = self._lanes.get(bar.timeframe)
        scorer = lane.scorer if lane is not None else None
        rescore = getattr(scorer, "rescore", None)
        tf = bar.timeframe.value

        def score(signal: Signal) -> tuple[float | None, str]:
            if (
                rescore is None
                or scorer is None
                or signal.model_version != scorer.version
                or signal.timeframe != tf
            ):
                return None, signal.model_version
            return rescore(signal.symbol, signal.direction), scorer.version

        updates = self.lifecycle.live(bar.symbol, close_ns, bar.close, score)
        self.stats.live_updates += len(updates)
        self._live += updates

    def _decide(self, bar: Bar, published_ns: int | None) -> Signal | None:
        lane = self._lane(bar.timeframe)
        scorer = lane.scorer
        t0 = time.perf_counter()
        decision = scorer.on_bar(bar)
        t1 = time.perf_counter()
        stage_metrics.INFERENCE.observe(t1 - t0)
        if decision is None:
            return None
        self.stats.decisions += 1
        if any(
            s.direction is decision.direction and s.type is not SignalType.EVENT
            for s in self.lifecycle.open_signals(bar.symbol)
        ):
            self.stats.suppressed_duplicates += 1
            return None
        if self._cooldown_until.get((bar.symbol, decision.direction), 0) > bar.ts:
            self.stats.suppressed_cooldown += 1
            return None
        flag = getattr(scorer, "drift_flag", None)
        signal = build_signal(
            bar,
            decision.direction,
            decision.confidence,
            decision.atr,
            scorer.version,
            decision.reasons
            + (decision.explain() if decision.explain is not None else ())
            + ((flag,) if flag else ()),
            self.plan,
            self.calendar,
            self.earnings,
            published_ns=published_ns,
            base_rate=getattr(scorer, "base_rate", None),
            confidence_rank=decision.confidence_rank,
        )
        stage_metrics.DECIDE.observe(time.perf_counter() - t1)
        if signal is None:
            return None
        self.lifecycle.add(signal)
        self._open_meta[signal.id] = (signal.direction, bar.timeframe)
        if self.learning and hasattr(scorer, "on_outcome"):
            self._learning[signal.id] = (signal.confidence, decision.features, scorer)
        self.stats.signals += 1
        return signal


def _resolver(
    calendar: SessionCalendar | Callable[[str], SessionCalendar] | None,
) -> Callable[[str], SessionCalendar] | None:
    if calendar is None or not isinstance(calendar, SessionCalendar):
        return calendar
    fixed = calendar
    return lambda _symbol: fixed


def _check_plan(scorer: Scorer, plan: PlanParams) -> None:
    """Refuse a scorer whose model was labelled under another plan (one line naming both)."""
    trained = getattr(scorer, "plan", None)
    if isinstance(trained, PlanParams):
        plan.require_same(trained, what=f"model {scorer.version}")


class EngineService:
    """Consumes bars and ticks from the bus, persists and publishes each new signal, then acks.

    Acks come after the signal is stored and published, so a crash replays the bar rather than
    losing a signal (at-least-once; the engine's de-duplication absorbs the replay).

    Several engine processes share the partitions (``bus.base``). The engine's state for a symbol
    (features, open signals, cool-downs) is a function of that symbol's bars, so before handling
    the first message of a partition it has just gained, the service rebuilds the partition's state
    by replaying what the partition retains before that message — exactly what earlier owners
    handled and acked — with every output discarded (ADR 0015). Signals decided before the retained
    window are followed from the store instead.
    """

    def __init__(
        self,
        engine: SignalEngine,
        bus: Bus,
        repo: SignalRepository,
        *,
        group: str = "engine",
        name: str = "engine-1",
        inputs: frozenset[str] = frozenset({"bars"}),
        on_signal: Callable[[Signal], None] | None = None,
        stop: asyncio.Event | None = None,
        lease_seconds: float = 10.0,
        store_retry_s: float = 60.0,
        bus_retry_s: float = 60.0,
        live: bool = True,
    ) -> None:
        self.engine = engine
        # Each bar's marks of its symbol's open signals go out on ``signal.live`` before the ack.
        self.live = live
        engine.live_updates = live
        self.store_retry_s = store_retry_s
        self.bus_retry_s = bus_retry_s
        self.bus = bus
        self.repo = repo
        self.group = group
        self.name = name
        self.on_signal = on_signal
        self.lease_seconds = lease_seconds
        # Score from exchange bars or from our own aggregation of ticks, never both: a feed that
        # sends both (Binance trades + klines) would otherwise count every minute twice.
        unknown = inputs - {"bars", "ticks"}
        if unknown or not inputs:
            raise ValueError(f"engine inputs must be 'bars' and/or 'ticks', got {sorted(inputs)}")
        self.inputs = inputs
        self._stop = stop if stop is not None else asyncio.Event()
        # (topic, partition) -> the consumer's epoch our state for that partition was built in.
        self._built: dict[tuple[str, int], int] = {}
        self.rebuilds: list[Rebuild] = []

    async def run(self) -> None:
        """Consume the configured inputs concurrently, so neither topic waits on the other's poll."""
        log.info(
            "engine.start",
            timeframe=None if self.engine.timeframe is None else self.engine.timeframe.value,
            inputs=sorted(self.inputs),
        )
        consumers: list[Consumer[Bar] | Consumer[Tick]] = []
        loops = []
        if "bars" in self.inputs:
            bars: Consumer[Bar] = self.bus.consumer(
                topics.MARKET_BARS, self.group, self.name, decoder(Bar), lease_seconds=self.lease_seconds
            )
            consumers.append(bars)
            loops.append(self._consume_bars(bars))
        if "ticks" in self.inputs:
            ticks: Consumer[Tick] = self.bus.consumer(
                topics.MARKET_TICKS, self.group, self.name, decoder(Tick), lease_seconds=self.lease_seconds
            )
            consumers.append(ticks)
            loops.append(self._consume_ticks(ticks))
        try:
            await asyncio.gather(*loops)
        finally:
            for c in consumers:
                await c.close()

    async def _open_in_store(self, which: Callable[[str], bool]) -> list[Signal]:
        found: list[Signal] = []
        before: str | None = None
        while True:
            page = await self._store(
                "reading open signals",
                self.repo.query,
                SignalQuery(open_only=True, before_id=before, limit=500),
            )
            found += [s for s in page if which(s.symbol)]
            if len(page) < 500:
                return found
            before = page[-1].id

    async def _store(self, what: str, write: Callable[..., R], *args: object) -> R:
        """Run a store call, retrying with capped back-off while the database is unreachable.

        Every write the engine makes is idempotent (a signal again is a ``DuplicateError``, a close
        again is ``close_once`` returning False), so retrying a write whose commit was lost with its
        connection (``pg_terminate_backend``, a failover) is safe. Nothing is acked meanwhile. After
        ``store_retry_s`` (or at shutdown) the error is raised: the role fails, and the bars come
        back to whichever engine runs next.
        """

        async def call() -> R:
            return await asyncio.to_thread(write, *args)

        return await with_backoff(
            call,
            what=what,
            component="engine",
            dependency="store",
            retry_on=(StorageError,),
            never_retry=(DuplicateError,),
            stop=self._stop,
            limit_s=self.store_retry_s,
        )

    async def _bus(self, what: str, call: Callable[[], Awaitable[R]]) -> R:
        """Run a bus call, retrying with capped back-off while Redis is unreachable (a restart).

        Safe because nothing is acked before it is stored, a fetch that failed re-reads this
        member's own pending entries, and a signal published twice is one id to its consumers.
        After ``bus_retry_s`` (or at shutdown) the error is raised and the role fails.
        """
        return await with_backoff(
            call,
            what=what,
            component="engine",
            dependency="bus",
            retry_on=(BusError,),
            stop=self._stop,
            limit_s=self.bus_retry_s,
        )

    async def _ensure_built(
        self, consumer: Consumer[Bar] | Consumer[Tick], delivery: Delivery[Bar] | Delivery[Tick]
    ) -> None:
        """Rebuild a partition's state when this is our first message there in the current epoch."""
        key = (delivery.topic, delivery.partition)
        epoch = consumer.epoch(delivery.partition)
        if self._built.get(key) == epoch:
            return
        await self._rebuild(delivery)
        self._built[key] = epoch

    async def _rebuild(self, first: Delivery[Bar] | Delivery[Tick]) -> None:
        """Forget the partition's symbols, replay its retained history before ``first``, restore older opens.

        Everything before ``first`` was handled and acked by some owner: a new owner is handed the
        oldest pending message first, else the first never delivered one.
        """
        t0 = time.perf_counter()
        partition, partitions = first.partition, self.bus.partitions

        def mine(symbol: str) -> bool:
            return partition_for(symbol, partitions) == partition

        engine = self.engine
        engine.forget(mine)
        decode: Callable[[bytes], Bar | Tick] = (
            decoder(Bar) if first.topic == topics.MARKET_BARS else decoder(Tick)
        )
        # Replayed bars are not this engine's work: count them on a scratch copy, so nothing that
        # watches the counters (between the history pages) sees bars handled twice.
        stats, engine.stats = engine.stats, replace(engine.stats)
        engine.learning = False
        replayed = 0
        first_ts: int = first.value.ts
        after: str | None = None
        try:
            while True:
                page: list[Delivery[Bar | Tick]] = await self._bus(
                    "reading partition history",
                    lambda after=after: self.bus.history(  # type: ignore[misc]
                        first.topic, partition, decode, before=first.id, after=after, count=2000
                    ),
                )
                if not page:
                    break
                if after is None:
                    first_ts = min(first_ts, page[0].value.ts)
                for h in page:
                    value = h.value
                    if isinstance(value, Bar):
                        engine.on_bar_signals(value)
                    else:
                        engine.on_tick(value)
                engine.drain_outcomes()  # already stored and announced by the owner that acked them
                engine.drain_alerts()
                engine.drain_live()  # past bars' marks: the owner that acked them sent them
                replayed += len(page)
                after = page[-1].id
        finally:
            engine.learning = True
            engine.stats = stats
        # Signals decided at or before the oldest retained message cannot come back from the replay
        # (their bars were trimmed): follow them from the store, as after a restart.
        older = [
            s
            for s in await self._open_in_store(mine)
            if s.id not in engine.lifecycle and to_ns(s.decided_at or s.created_at) <= first_ts
        ]
        engine.restore(older)
        seconds = time.perf_counter() - t0
        self.rebuilds.append(Rebuild(first.topic, partition, replayed, len(older), seconds))
        stage_metrics.REBUILDS.inc()
        stage_metrics.REBUILD_REPLAYED.inc(replayed)
        log.info(
            "engine.partition_rebuilt",
            topic=first.topic,
            partition=partition,
            replayed=replayed,
            restored=len(older),
            open_signals=sum(1 for s in engine.lifecycle.open_signals() if mine(s.symbol)),
            seconds=round(seconds, 3),
        )

    async def _consume_bars(self, consumer: Consumer[Bar]) -> None:
        while not self._stop.is_set():
            batch = await self._bus("fetching bars", lambda: consumer.fetch(500, wait=0.2))
            _count_deliveries(batch, self.group)
            traced = bool(batch) and log.bind().is_enabled_for(logging.DEBUG)  # once a batch: cheap
            for d in batch:
                await self._ensure_built(consumer, d)
                if traced:
                    bar = d.value
                    close = self.engine.lifecycle.bar_close(bar)
                    log.debug(
                        "engine.bar",
                        trace_id=trace_id(bar.symbol, bar.timeframe.value, close),
                        symbol=bar.symbol,
                        attempt=d.attempt,
                    )
                t0 = time.perf_counter()
                for signal in self.engine.on_bar_signals(d.value):
                    await self._emit(d, signal, t0)
                if self.live:
                    self.engine.mark(d.value)  # after the bar's signals are out: never on their path
                await self._close_outcomes()
            await self._publish_live()
            if batch:
                await self._bus("acking", lambda: consumer.ack(*batch))  # noqa: B023

    async def _consume_ticks(self, consumer: Consumer[Tick]) -> None:
        while not self._stop.is_set():
            batch = await self._bus("fetching ticks", lambda: consumer.fetch(2000, wait=0.2))
            _count_deliveries(batch, self.group)
            for d in batch:
                await self._ensure_built(consumer, d)
                t0 = time.perf_counter()
                for sig in self.engine.on_tick(d.value):
                    await self._emit(d, sig, t0)
                await self._close_outcomes()
            await self._publish_live()
            if batch:
                await self._bus("acking", lambda: consumer.ack(*batch))  # noqa: B023

    def stop(self) -> None:
        self._stop.set()

    async def _close_outcomes(self) -> None:
        """Store each outcome with its status change (one transaction) and announce it.

        A bar redelivered after an owner died between storing and acking closes the signal again:
        the close is announced again (consumers de-duplicate) but never written twice
        (``close_once``), or the ledger would hold two closes of one signal.
        """
        for alert in self.engine.drain_alerts():
            payload = encode(alert)
            await self._bus(
                "publishing an alert",
                lambda: self.bus.publish(topics.SYSTEM_ALERTS, "model", payload),  # noqa: B023
            )
            log.warning("model.drift", **alert)
        outcomes = self.engine.drain_outcomes()
        if outcomes:
            # A signal's marks go out before its close, so a relay never sees a mark after the end.
            await self._publish_live()
        for outcome in outcomes:
            event = outcome.to_event()
            written = await self._store(
                f"closing {outcome.signal_id}", self.repo.close_once, outcome.signal_id, outcome.status, event
            )
            if written:
                stage_metrics.OUTCOMES.labels(outcome.outcome.value).inc()
            else:
                log.info("signal.already_closed", id=outcome.signal_id, status=outcome.status.value)
            await self._bus(
                "publishing an outcome",
                lambda: self.bus.publish(topics.SIGNAL_EVENTS, outcome.symbol, encode(event)),  # noqa: B023
            )
            log.info(
                "signal.closed",
                id=outcome.signal_id,
                symbol=outcome.symbol,
                outcome=outcome.outcome.value,
                net_pnl_pct=None if outcome.net_pnl_pct is None else round(outcome.net_pnl_pct, 4),
                net_r=None if outcome.net_r is None else round(outcome.net_r, 3),
            )

    async def _publish_live(self) -> None:
        """Publish the marks made since the last call (one batch): off the signal path, before the ack.

        Batched per fetch rather than per bar, so a burst of bars costs one round trip; flushed
        early before any outcome is announced (``_close_outcomes``).
        """
        updates = self.engine.drain_live()
        if not updates:
            return
        items = [(u.symbol, encode(u)) for u in updates]
        await self._bus("publishing live updates", lambda: self.bus.publish_many(topics.SIGNAL_LIVE, items))

    async def _emit(
        self, delivery: Delivery[Bar] | Delivery[Tick], signal: Signal | None, started: float
    ) -> None:
        """Store, then publish, a new signal; ``started`` is when its bar or tick reached the engine."""
        if signal is None:
            return
        t0 = time.perf_counter()
        try:
            await self._store(f"storing {signal.id}", self.repo.add, signal)
        except DuplicateError:
            # Ids are the decision's (``signal_id_for``): a bar redelivered after a crash between
            # store and ack decides again and finds its signal stored. Publish it again (consumers
            # de-duplicate by id); never store it twice.
            log.info("signal.already_stored", id=signal.id, attempt=delivery.attempt)
        t1 = time.perf_counter()
        await self._bus(
            "publishing a signal", lambda: self.bus.publish(topics.SIGNALS, signal.symbol, encode(signal))
        )
        t2 = time.perf_counter()
        stage_metrics.STORE.observe(t1 - t0)
        stage_metrics.PUBLISH.observe(t2 - t1)
        stage_metrics.END_TO_END.observe(t2 - started)
        self.engine.stats.last_latency_ns = int((t2 - started) * 1e9)
        stage_metrics.SIGNALS.inc()
        if self.on_signal is not None:
            self.on_signal(signal)
        log.info(
            "signal",
            id=signal.id,
            trace_id=signal_trace_id(signal),
            symbol=signal.symbol,
            direction=signal.direction.value,
            entry=signal.entry,
            confidence=signal.confidence,
            attempt=delivery.attempt,
        )


def _count_deliveries(batch: Sequence[Delivery[Bar]] | Sequence[Delivery[Tick]], group: str) -> None:
    """Messages handled and, apart, those handed out again after a member died (``attempt`` > 1)."""
    if not batch:
        return
    stage_metrics.BARS.inc(len(batch))
    again = sum(1 for d in batch if d.attempt > 1)
    if again:
        bus_metrics.REDELIVERED.labels(batch[0].topic, group).inc(again)
