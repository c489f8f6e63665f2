"""The ``explain`` role: texts about signals, written beside the engine, never in its path.

For every new signal on the bus (topic ``signals``, consumer group ``explain``) it writes an
explanation; for every open signal somebody holds an upgrade to (polled from the store) it writes a
research brief. Each text is

1. looked up in the cache first (``llm_results``, keyed by signal, kind, prompt version and model),
   so a restart or a redelivery never pays twice;
2. otherwise asked of the provider (``llm.providers``) with the prompt of ``llm.prompt`` — or made
   by the template when no provider is configured;
3. validated (``llm.answers``: Pydantic), and every citation checked against the news store: it
   must exist and concern the signal's symbol (``domain.research.check_claims``); bad claims are
   dropped and counted, and an answer with nothing valid left — or that fails validation, times
   out or is refused — is replaced by the template, the reason counted;
4. stored with its tokens and cost, and published on bus topic ``signal.research`` (a
   ``domain.research.SignalText``), which the API relays to ``signal:{id}:live``.

Counters go to Prometheus (``ts_llm_*``) and to ``Explainer.stats`` (tests, the bench).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

import structlog
from prometheus_client import Counter as PromCounter

from tradesignals.bus import topics
from tradesignals.bus.base import Bus, BusError
from tradesignals.bus.codec import decoder, encode
from tradesignals.domain.explain import PROMPT_VERSION as TEMPLATE_VERSION
from tradesignals.domain.news import ScoredNews
from tradesignals.domain.research import (
    EXPLANATION,
    RESEARCH,
    TEMPLATE_MODEL,
    Claim,
    Fallback,
    SignalText,
    Usage,
    check_claims,
    render_claims,
    template_explanation,
    template_research,
)
from tradesignals.domain.signals import Signal
from tradesignals.llm.answers import AnswerError, ExplanationAnswer, parse_answer
from tradesignals.llm.prompt import PROMPT_VERSION, build_prompt
from tradesignals.llm.providers import Provider, ProviderError, usage_of
from tradesignals.storage.base import NewsQuery, StorageError

log = structlog.get_logger(__name__)

FALLBACK_TOTAL = PromCounter(
    "ts_llm_fallback_total", "LLM texts replaced by the template, by kind and reason.", ["kind", "reason"]
)
DROPPED_TOTAL = PromCounter(
    "ts_llm_claims_dropped_total", "Claims of LLM answers dropped by the citation rule.", ["reason"]
)
TOKENS_TOTAL = PromCounter(
    "ts_llm_tokens_total", "Tokens billed by LLM providers.", ["provider", "model", "direction"]
)
COST_TOTAL = PromCounter(
    "ts_llm_cost_usd_total", "USD spent on LLM calls (priced models).", ["provider", "model"]
)
CACHE_HITS_TOTAL = PromCounter("ts_llm_cache_hits_total", "Texts served from the cache.", ["kind"])

_CITED = re.compile(r"\[([A-Za-z0-9_.\-]+:[^\]\s]+)\]")
NEWS_PER_SIGNAL = 200


class TextStore(Protocol):
    """What the sidecar needs of ``storage.llm.SqlLlmStore``."""

    def get(self, signal_id: str, kind: str, prompt_version: str, model: str) -> SignalText | None: ...

    def put(self, text: SignalText, usage: Usage) -> bool: ...

    def latest(self, signal_id: str, kind: str) -> SignalText | None: ...

    def upgraded_open_signals(self, now: datetime, limit: int = 1000) -> list[str]: ...

    def news_symbols(self, ids: Iterable[str]) -> dict[str, tuple[str, ...]]: ...


class NewsReader(Protocol):
    def query(self, query: NewsQuery) -> list[ScoredNews]: ...


class SignalReader(Protocol):
    def get(self, signal_id: str) -> Signal | None: ...


@dataclass(slots=True)
class Explainer:
    """Writes (or finds) one text about one signal; see the module docstring for the steps."""

    store: TextStore
    news: NewsReader
    provider: Provider | None = None
    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    bus: Bus | None = None
    clock: Callable[[], int] = time.time_ns
    stats: Counter[str] = field(default_factory=Counter)

    @property
    def model(self) -> str:
        return self.provider.model if self.provider is not None else TEMPLATE_MODEL

    @property
    def prompt_version(self) -> str:
        return PROMPT_VERSION if self.provider is not None else TEMPLATE_VERSION

    async def text_for(self, signal: Signal, kind: str) -> SignalText:
        """The cached text, else a new one (stored and published)."""
        cached = await asyncio.to_thread(self.store.get, signal.id, kind, self.prompt_version, self.model)
        if cached is not None:
            self.stats[f"cache_hit:{kind}"] += 1
            CACHE_HITS_TOTAL.labels(kind).inc()
            return cached
        text, usage = await self.write(signal, kind)
        await asyncio.to_thread(self.store.put, text, usage)
        await self.publish(text)
        return text

    async def write(self, signal: Signal, kind: str) -> tuple[SignalText, Usage]:
        """A new text and what it cost; never raises for a provider's failure (template instead)."""
        news = await asyncio.to_thread(
            self.news.query, NewsQuery(symbol=signal.symbol, limit=NEWS_PER_SIGNAL)
        )
        now = self.clock()
        template = (template_explanation if kind == EXPLANATION else template_research)(signal, news, now)
        provider = self.provider
        if provider is None:
            self.stats[f"template:{kind}"] += 1
            return template, Usage(provider=TEMPLATE_MODEL)
        prompt = build_prompt(kind, signal, news)
        started = time.perf_counter()
        try:
            reply = await provider.complete(prompt)
        except ProviderError as exc:
            log.warning(
                "llm.fallback", kind=kind, signal=signal.id, reason=exc.reason.value, detail=str(exc)[:200]
            )
            usage = Usage(provider=provider.name, latency_ms=(time.perf_counter() - started) * 1000)
            return self._fallback(template, kind, exc.reason), usage
        usage = usage_of(provider, reply, self.prices, started)
        self.stats["calls"] += 1
        self.stats["input_tokens"] += usage.input_tokens
        self.stats["output_tokens"] += usage.output_tokens
        TOKENS_TOTAL.labels(provider.name, provider.model, "input").inc(usage.input_tokens)
        TOKENS_TOTAL.labels(provider.name, provider.model, "output").inc(usage.output_tokens)
        if usage.cost_usd is not None:
            COST_TOTAL.labels(provider.name, provider.model).inc(usage.cost_usd)
        else:
            self.stats["unpriced"] += 1
        try:
            answer = parse_answer(kind, reply.text)
        except AnswerError as exc:
            log.warning("llm.invalid_answer", kind=kind, signal=signal.id, error=str(exc))
            return self._fallback(template, kind, Fallback.INVALID), usage
        base = SignalText(
            signal_id=signal.id,
            kind=kind,
            text="",
            citations=(),
            model=provider.model,
            prompt_version=PROMPT_VERSION,
            created_at_ns=now,
        )
        if isinstance(answer, ExplanationAnswer):
            cited = tuple(dict.fromkeys(answer.citations))
            in_text = set(_CITED.findall(answer.text))
            stored = await asyncio.to_thread(self.store.news_symbols, set(cited) | in_text)
            claim = Claim(answer.text, cited)
            kept, dropped = check_claims([claim], stored, signal.symbol) if cited else ([claim], Counter())
            if not kept or not in_text <= set(cited) or any(f"[{c}]" not in answer.text for c in cited):
                self._count_dropped(dropped)
                return self._fallback(template, kind, Fallback.BAD_CITATION), usage
            return replace(base, text=answer.text, citations=cited), usage
        claims = answer.to_claims()
        ids = {i for c in claims for i in c.citations}
        stored = await asyncio.to_thread(self.store.news_symbols, ids)
        kept, dropped = check_claims(claims, stored, signal.symbol)
        self._count_dropped(dropped)
        if not kept:
            return replace(
                self._fallback(template, kind, Fallback.NO_VALID_CLAIM), dropped=dict(dropped)
            ), usage
        return (
            replace(
                base,
                text=render_claims(kept),
                claims=tuple(kept),
                citations=tuple(dict.fromkeys(i for c in kept for i in c.citations)),
                dropped=dict(dropped),
            ),
            usage,
        )

    def _fallback(self, template: SignalText, kind: str, reason: Fallback) -> SignalText:
        self.stats[f"fallback:{reason.value}"] += 1
        FALLBACK_TOTAL.labels(kind, reason.value).inc()
        return replace(template, fallback=reason.value)

    def _count_dropped(self, dropped: Counter[str]) -> None:
        for reason, n in dropped.items():
            self.stats[f"dropped:{reason}"] += n
            DROPPED_TOTAL.labels(reason).inc(n)

    async def publish(self, text: SignalText) -> None:
        """Out on ``signal.research`` for the API to relay to ``signal:{id}:live``; a bus error is
        logged, not raised: the text is stored and served by REST either way."""
        if self.bus is None:
            return
        try:
            await self.bus.publish(topics.SIGNAL_RESEARCH, text.signal_id, encode(text))
        except BusError as exc:
            self.stats["publish_error"] += 1
            log.warning("llm.publish_failed", signal=text.signal_id, error=str(exc)[:200])


async def run_explain(
    explainer: Explainer,
    bus: Bus,
    signals: SignalReader,
    stop: asyncio.Event,
    *,
    name: str,
    upgrade_poll_s: float = 5.0,
    concurrency: int = 4,
) -> None:
    """Run the role until ``stop``: explanations for new signals, research for upgraded ones."""
    consumer = bus.consumer(topics.SIGNALS, "explain", name, decoder(Signal))
    gate = asyncio.Semaphore(concurrency)
    researched: set[str] = set()

    async def one(signal: Signal, kind: str) -> None:
        async with gate:
            try:
                await explainer.text_for(signal, kind)
            except StorageError as exc:  # the API serves the template meanwhile
                explainer.stats["store_error"] += 1
                log.warning("llm.store_failed", kind=kind, signal=signal.id, error=str(exc)[:200])
                return
            if kind == RESEARCH:
                researched.add(signal.id)  # only once written: a failed write is tried at the next poll

    async def poll_upgrades() -> None:
        while not stop.is_set():
            try:
                ids = await asyncio.to_thread(explainer.store.upgraded_open_signals, datetime.now(UTC))
                todo = []
                for signal_id in ids:
                    if signal_id in researched:
                        continue
                    if await asyncio.to_thread(explainer.store.latest, signal_id, RESEARCH) is not None:
                        researched.add(signal_id)  # written before a restart, or by another sidecar
                        continue
                    signal = await asyncio.to_thread(signals.get, signal_id)
                    if signal is not None:
                        todo.append(one(signal, RESEARCH))
                await asyncio.gather(*todo)
            except StorageError as exc:
                log.warning("llm.upgrade_poll_failed", error=str(exc)[:200])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=upgrade_poll_s)

    poller = asyncio.create_task(poll_upgrades(), name="explain-upgrades")
    try:
        while not stop.is_set():
            try:
                batch = await consumer.fetch(50, wait=0.5)
                if batch:
                    await asyncio.gather(*(one(d.value, EXPLANATION) for d in batch))
                    await consumer.ack(*batch)  # unacked after a bus error: redelivered, then a cache hit
            except BusError as exc:  # a bus outage pauses the sidecar; it never ends the role
                explainer.stats["bus_error"] += 1
                log.warning("llm.bus_error", error=str(exc)[:200])
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1.0)
    finally:
        poller.cancel()
        await asyncio.gather(poller, return_exceptions=True)
        await consumer.close()
        if explainer.provider is not None:
            await explainer.provider.close()
