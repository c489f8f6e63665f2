"""The engine role: market events → bars → decision → signal → store → bus.

``SignalEngine`` is the synchronous core (pure compute, no I/O) used unchanged by live, replay and
backtests. ``EngineService`` is the async shell that feeds it from the bus and does the I/O.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from tradesignals.bus import topics
from tradesignals.bus.base import Bus, Consumer, Delivery
from tradesignals.bus.codec import decoder, encode
from tradesignals.domain.market import Bar, Tick, Timeframe, to_ns
from tradesignals.domain.signals import Direction, Signal, SignalStatus
from tradesignals.engine import stage_metrics
from tradesignals.engine.decide import DecideParams, build_signal
from tradesignals.engine.lifecycle import LifecycleTracker, Outcome
from tradesignals.engine.placeholder_rule import Decision
from tradesignals.marketdata.bars import BarAggregator
from tradesignals.marketdata.calendar import SessionCalendar
from tradesignals.news.earnings import EarningsCalendar
from tradesignals.storage.base import SignalQuery, SignalRepository

log = structlog.get_logger(__name__)


class Scorer(Protocol):
    """Anything that turns the next bar of a symbol into a directional decision (rule or model)."""

    version: str

    def on_bar(self, bar: Bar) -> Decision | None: ...


@dataclass(slots=True)
class EngineStats:
    bars: int = 0
    ticks: int = 0
    decisions: int = 0
    signals: int = 0
    suppressed_duplicates: int = 0
    suppressed_cooldown: int = 0
    last_latency_ns: int = 0


class SignalEngine:
    """Bars in, signals out. Holds one open signal per (symbol, direction) until it expires."""

    def __init__(
        self,
        scorer: Scorer,
        timeframe: Timeframe,
        params: DecideParams = DecideParams(),
        *,
        calendar: SessionCalendar | Callable[[str], SessionCalendar] | None = None,
        earnings: EarningsCalendar | None = None,
    ) -> None:
        self.scorer = scorer
        self.earnings = earnings
        self.timeframe = timeframe
        self.params = params
        self.stats = EngineStats()
        # With a calendar, ticks become session-aligned bars (09:30-based for XNYS, 24/7 for crypto).
        self._aggregator = BarAggregator(timeframe, calendar=calendar)
        self.calendar = calendar
        # Every open signal is followed to its outcome here, on the same bars that score, so
        # de-duplication ("one open signal per symbol and direction") frees a slot the moment
        # a stop or target closes a signal, not only at expiry.
        self.lifecycle = LifecycleTracker()
        self._closed: list[Outcome] = []
        self._cooldown_until: dict[tuple[str, Direction], int] = {}
        self._directions: dict[str, Direction] = {}
        self._learning: dict[str, tuple[float, object]] = {}
        self._alerts: list[dict[str, object]] = []

    def restore(self, signals: list[Signal]) -> None:
        """Resume after a restart: follow the signals still open in the store."""
        for signal in signals:
            if signal.status is SignalStatus.OPEN and signal.id not in self.lifecycle:
                self.lifecycle.add(signal)
                self._directions[signal.id] = signal.direction

    def _start_cooldowns(self, closed: list[Outcome]) -> None:
        wait = self.params.cooldown_bars * self.timeframe.ns
        if wait <= 0:
            return
        for o in closed:
            signal_dir = self._directions.pop(o.signal_id, None)
            if signal_dir is not None:
                self._cooldown_until[(o.symbol, signal_dir)] = to_ns(o.closed_at) + wait

    def _learn(self, closed: list[Outcome]) -> None:
        on_outcome = getattr(self.scorer, "on_outcome", None)
        if on_outcome is None:
            return
        for o in closed:
            p, features = self._learning.pop(o.signal_id, (None, None))
            if p is None:
                continue  # restored after a restart: its features were not kept
            state = on_outcome(o, p, features)
            if state is not None and state.drift:
                self._alerts.append(state.alert_payload())

    def drain_alerts(self) -> list[dict[str, object]]:
        """``system:alerts`` payloads raised since the last call (model drift)."""
        out, self._alerts = self._alerts, []
        return out

    def drain_outcomes(self) -> list[Outcome]:
        """Outcomes produced since the last call, oldest first."""
        out, self._closed = self._closed, []
        return out

    def on_tick(self, tick: Tick) -> list[Signal]:
        self.stats.ticks += 1
        out: list[Signal] = []
        for bar in self._aggregator.update(tick):
            sig = self.on_bar(bar)
            if sig is not None:
                out.append(sig)
        return out

    def on_bar(self, bar: Bar) -> Signal | None:
        self.stats.bars += 1
        # Outcomes first: a bar can close an older signal and then justify a new one.
        closed = self.lifecycle.on_bar(bar) + self.lifecycle.expire_due(bar.end)
        if closed:
            self._start_cooldowns(closed)
            self._learn(closed)
            self._closed += closed
        t0 = time.perf_counter()
        decision = self.scorer.on_bar(bar)
        t1 = time.perf_counter()
        stage_metrics.INFERENCE.observe(t1 - t0)
        if decision is None:
            return None
        self.stats.decisions += 1
        if any(s.direction is decision.direction for s in self.lifecycle.open_signals(bar.symbol)):
            self.stats.suppressed_duplicates += 1
            return None
        if self._cooldown_until.get((bar.symbol, decision.direction), 0) > bar.ts:
            self.stats.suppressed_cooldown += 1
            return None
        flag = getattr(self.scorer, "drift_flag", None)
        signal = build_signal(
            bar,
            decision.direction,
            decision.confidence,
            decision.atr,
            self.scorer.version,
            decision.reasons
            + (decision.explain() if decision.explain is not None else ())
            + ((flag,) if flag else ()),
            self.params,
            self.calendar,
            self.earnings,
        )
        stage_metrics.DECIDE.observe(time.perf_counter() - t1)
        if signal is None:
            return None
        self.lifecycle.add(signal)
        self._directions[signal.id] = signal.direction
        if hasattr(self.scorer, "on_outcome"):
            self._learning[signal.id] = (signal.confidence, decision.features)
        self.stats.signals += 1
        return signal


class EngineService:
    """Consumes bars and ticks from the bus, persists and publishes each new signal, then acks.

    Acks come after the signal is stored and published, so a crash replays the bar rather than
    losing a signal (at-least-once; the engine's de-duplication absorbs the replay).
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
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.repo = repo
        self.group = group
        self.name = name
        self.on_signal = on_signal
        # Score from exchange bars or from our own aggregation of ticks, never both: a feed that
        # sends both (Binance trades + klines) would otherwise count every minute twice.
        unknown = inputs - {"bars", "ticks"}
        if unknown or not inputs:
            raise ValueError(f"engine inputs must be 'bars' and/or 'ticks', got {sorted(inputs)}")
        self.inputs = inputs
        self._stop = stop if stop is not None else asyncio.Event()

    async def run(self) -> None:
        """Consume the configured inputs concurrently, so neither topic waits on the other's poll."""
        log.info(
            "engine.start",
            model=self.engine.scorer.version,
            timeframe=self.engine.timeframe.value,
            inputs=sorted(self.inputs),
        )
        await self._restore()
        consumers: list[Consumer[Bar] | Consumer[Tick]] = []
        loops = []
        if "bars" in self.inputs:
            bars: Consumer[Bar] = self.bus.consumer(topics.MARKET_BARS, self.group, self.name, decoder(Bar))
            consumers.append(bars)
            loops.append(self._consume_bars(bars))
        if "ticks" in self.inputs:
            ticks: Consumer[Tick] = self.bus.consumer(
                topics.MARKET_TICKS, self.group, self.name, decoder(Tick)
            )
            consumers.append(ticks)
            loops.append(self._consume_ticks(ticks))
        try:
            await asyncio.gather(*loops)
        finally:
            for c in consumers:
                await c.close()

    async def _restore(self) -> None:
        restored: list[Signal] = []
        before: str | None = None
        while True:
            page = await asyncio.to_thread(
                self.repo.query, SignalQuery(open_only=True, before_id=before, limit=500)
            )
            restored += page
            if len(page) < 500:
                break
            before = page[-1].id
        self.engine.restore(restored)
        if restored:
            log.info("engine.restored", open_signals=len(restored))

    async def _consume_bars(self, consumer: Consumer[Bar]) -> None:
        while not self._stop.is_set():
            batch = await consumer.fetch(500, wait=0.2)
            for d in batch:
                t0 = time.perf_counter()
                signal = self.engine.on_bar(d.value)
                await self._emit(d, signal, t0)
                await self._close_outcomes()
            if batch:
                await consumer.ack(*batch)

    async def _consume_ticks(self, consumer: Consumer[Tick]) -> None:
        while not self._stop.is_set():
            batch = await consumer.fetch(2000, wait=0.2)
            for d in batch:
                t0 = time.perf_counter()
                for sig in self.engine.on_tick(d.value):
                    await self._emit(d, sig, t0)
                await self._close_outcomes()
            if batch:
                await consumer.ack(*batch)

    def stop(self) -> None:
        self._stop.set()

    async def _close_outcomes(self) -> None:
        """Store each outcome with its status change (one transaction) and announce it."""
        for alert in self.engine.drain_alerts():
            await self.bus.publish(topics.SYSTEM_ALERTS, "model", encode(alert))
            log.warning("model.drift", **alert)
        for outcome in self.engine.drain_outcomes():
            event = outcome.to_event()
            await asyncio.to_thread(self.repo.set_status, outcome.signal_id, outcome.status, event)
            await self.bus.publish(topics.SIGNAL_EVENTS, outcome.symbol, encode(event))
            log.info(
                "signal.closed",
                id=outcome.signal_id,
                symbol=outcome.symbol,
                outcome=outcome.outcome.value,
                pnl_pct=round(outcome.pnl_pct, 4),
                r=round(outcome.r_multiple, 3),
            )

    async def _emit(
        self, delivery: Delivery[Bar] | Delivery[Tick], signal: Signal | None, started: float
    ) -> None:
        """Store, then publish, a new signal; ``started`` is when its bar or tick reached the engine."""
        if signal is None:
            return
        t0 = time.perf_counter()
        await asyncio.to_thread(self.repo.add, signal)
        t1 = time.perf_counter()
        await self.bus.publish(topics.SIGNALS, signal.symbol, encode(signal))
        t2 = time.perf_counter()
        stage_metrics.STORE.observe(t1 - t0)
        stage_metrics.PUBLISH.observe(t2 - t1)
        stage_metrics.END_TO_END.observe(t2 - started)
        self.engine.stats.last_latency_ns = int((t2 - started) * 1e9)
        if self.on_signal is not None:
            self.on_signal(signal)
        log.info(
            "signal",
            id=signal.id,
            symbol=signal.symbol,
            direction=signal.direction.value,
            entry=signal.entry,
            confidence=signal.confidence,
            attempt=delivery.attempt,
        )
