"""Explanation latency, as JSON: the template, the LLM path through a local fake, the cache.

    .venv/bin/python bench/explain.py [--n 300] [--n-llm 100] [--database-url URL]

- ``template_ms``: ``domain.explain.explain`` over 50 news items in memory (the pure template);
  ``template_sidecar_ms``: ``Explainer.write`` without a provider — the news read from the store
  plus the template (what the ``explain`` role pays per signal by default). Aim: ≤ 5 ms.
- ``llm_fake_ms``: ``Explainer.write`` with the OpenAI provider (streamed) against the test suite's
  local OpenAI-format server on 127.0.0.1 (``tests/integration/llm/fake_llm.py``, which answers at
  once); ``provider_call_ms``: the provider call inside each of those writes (the SDK, the local
  socket and the fake's answer); ``overhead_ms``: the difference, write by write — our code around
  the model (news read, prompt, validation, citation check against the store). A real model adds
  its own seconds to the call.
- ``cache_hit_ms``: ``Explainer.text_for`` on a signal already written (the SQL probe).

SQLite in a temporary folder unless ``--database-url``. p50/p99 over the runs, in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration" / "llm"))
from fake_llm import FakeLlm
from llm_samples import make_news, make_signal

from tradesignals.domain.explain import explain
from tradesignals.domain.news import ScoredNews
from tradesignals.domain.research import EXPLANATION
from tradesignals.domain.signals import Signal
from tradesignals.llm.prompt import Prompt
from tradesignals.llm.providers import Provider, Reply, build_provider
from tradesignals.llm.sidecar import Explainer
from tradesignals.storage.db import make_engine, migrate
from tradesignals.storage.llm import SqlLlmStore
from tradesignals.storage.news import SqlNewsRepository


class Timed:
    """The provider with each ``complete`` timed: what the SDK and the fake took inside a write."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.name = inner.name
        self.model = inner.model
        self.calls_ms: list[float] = []

    async def complete(self, prompt: Prompt) -> Reply:
        t0 = time.perf_counter()
        try:
            return await self.inner.complete(prompt)
        finally:
            self.calls_ms.append((time.perf_counter() - t0) * 1000)

    async def close(self) -> None:
        await self.inner.close()


def pct(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {
        "p50": round(statistics.median(xs), 3),
        "p99": round(xs[min(len(xs) - 1, int(len(xs) * 0.99))], 3),
        "n": len(xs),
    }


def signal(n: int) -> Signal:
    return make_signal(n)


def news(n: int) -> ScoredNews:
    return make_news(
        n, f"Acme headline number {n} about contracts", sentiment=("positive", "neutral", "negative")[n % 3]
    )


async def run(n: int, n_llm: int, url: str) -> dict[str, object]:
    engine = make_engine(url)
    migrate(engine)
    items = [news(i) for i in range(50)]
    repo = SqlNewsRepository(engine)
    repo.add(items)
    store = SqlLlmStore(engine)

    pure: list[float] = []
    for i in range(n):
        t0 = time.perf_counter()
        explain(signal(i), items)
        pure.append((time.perf_counter() - t0) * 1000)

    template = Explainer(store=store, news=repo)
    sidecar: list[float] = []
    for i in range(n):
        t0 = time.perf_counter()
        text, usage = await template.write(signal(10_000 + i), EXPLANATION)
        sidecar.append((time.perf_counter() - t0) * 1000)
        store.put(text, usage)
    hits: list[float] = []
    for i in range(n):
        t0 = time.perf_counter()
        await template.text_for(signal(10_000 + i), EXPLANATION)
        hits.append((time.perf_counter() - t0) * 1000)
    assert template.stats["cache_hit:explanation"] == n

    fake = FakeLlm()
    provider = Timed(build_provider("openai", api_key=SecretStr("sk-bench"), base_url=fake.openai_url))
    llm = Explainer(store=store, news=repo, provider=provider, prices={"gpt-4o-mini": (0.15, 0.60)})
    await llm.write(signal(0), EXPLANATION)  # connection and SDK warm-up
    total: list[float] = []
    provider.calls_ms.clear()
    for i in range(n_llm):
        t0 = time.perf_counter()
        text, _ = await llm.write(signal(20_000 + i), EXPLANATION)
        total.append((time.perf_counter() - t0) * 1000)
        assert text.fallback is None, text.fallback
    calls = provider.calls_ms
    await provider.close()
    fake.close()
    engine.dispose()
    overhead = [a - b for a, b in zip(total, calls, strict=True)]
    return {
        "template_ms": pct(pure),
        "template_sidecar_ms": pct(sidecar),
        "cache_hit_ms": pct(hits),
        "llm_fake_ms": pct(total),
        "provider_call_ms": pct(calls),
        "overhead_ms": pct(overhead),
        "news_items": len(items),
        "database": engine.dialect.name,
        "python": platform.python_version(),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--n-llm", type=int, default=100)
    ap.add_argument("--database-url")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        print(json.dumps(asyncio.run(run(args.n, args.n_llm, url))))


if __name__ == "__main__":
    main()
