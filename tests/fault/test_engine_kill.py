"""`kill -9` of one of two engine processes mid-stream loses no signal and duplicates none.

The reference is a clean single-process run of the same bars through the same engine builder the
`serve` role uses. Then two `tradesignals serve --role engine` processes share the partitions over
real Redis and PostgreSQL; one is killed with SIGKILL while bars flow, the other takes its
partitions (after the lease, ``TS_BUS_LEASE_S``), rebuilds their state from the retained stream and
carries on. Afterwards the store must hold exactly the reference's signals, each with the
reference's final status, one ``created`` and at most one ``closed`` event each, and
``tradesignals ledger verify`` must pass.

Bounded: every wait has a deadline and waits on an observable state (group membership, leases,
consumer-group lag in Redis), never on a fixed sleep.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from tradesignals.bus import topics
from tradesignals.bus.codec import encode
from tradesignals.bus.redis_streams import RedisStreamsBus
from tradesignals.config import Settings
from tradesignals.domain.market import Bar, Timeframe
from tradesignals.signing import Ed25519Signer
from tradesignals.storage.db import make_engine, migrate
from tradesignals.wiring.engine_builder import build_engine

pytestmark = [pytest.mark.fault, pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 8
GROUP = "engine"
LEASE_S = 2.0
DAY = Timeframe.D1.ns


def replay_bars(symbols: int = 24, days: int = 300, seed: int = 7) -> list[Bar]:
    """A reproducible daily replay (crypto pairs: one 24/7 clock), in (ts, symbol) order like a feed."""
    rng = random.Random(seed)
    prices = {f"F{i:02d}USDT": 100.0 + i for i in range(symbols)}
    t0 = 1_600_000_000 // 86_400 * 86_400 * 10**9
    out = []
    for k in range(days):
        for sym, o in prices.items():
            c = o * (1 + rng.gauss(0.0005, 0.02))
            h = max(o, c) * (1 + abs(rng.gauss(0, 0.01)))
            low = min(o, c) * (1 - abs(rng.gauss(0, 0.01)))
            out.append(Bar(sym, Timeframe.D1, t0 + k * DAY, o, h, low, c, 1000.0 + rng.random() * 100))
            prices[sym] = c
    return out


def reference(bars: list[Bar], home: Path) -> dict[str, str]:
    """Signal id -> final status from one clean engine in this process (the `serve` builder)."""
    engine = build_engine(Settings(model="rule", home=home))
    status: dict[str, str] = {}
    for bar in bars:
        sig = engine.on_bar(bar)
        if sig is not None:
            status[sig.id] = "open"
        for outcome in engine.drain_outcomes():
            status[outcome.signal_id] = outcome.status.value
    return status


def wait_until(
    what: str, cond: Callable[[], bool], deadline: float, procs: list[subprocess.Popen[str]]
) -> None:
    """Poll an observable state (cheap Redis/SQL reads) until true; fail with ``what`` at the deadline."""
    while not cond():
        for p in procs:
            assert p.poll() is None, f"an engine exited early (code {p.returncode}) while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_kill_9_of_one_engine_loses_and_duplicates_no_signal(
    fresh_pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    deadline = started + 90
    bars = replay_bars()
    expected = reference(bars, tmp_path / "reference")
    assert len(expected) > 300  # enough signals that a lost state shows

    db = make_engine(fresh_pg_url)
    migrate(db)  # once, before two processes start: they must not race to create the schema
    key = tmp_path / "ledger-key.pem"
    key.write_bytes(Ed25519Signer.generate().pem())
    key.chmod(0o600)
    env = {
        **os.environ,
        "TS_MODE": "server",
        "TS_DATABASE_URL": fresh_pg_url,
        "TS_REDIS_URL": redis_url,
        "TS_BUS_PREFIX": redis_prefix,
        "TS_BUS_PARTITIONS": str(PARTITIONS),
        "TS_BUS_LEASE_S": str(LEASE_S),
        "TS_HOME": str(tmp_path / "home"),
        "TS_MODEL": "rule",
        "TS_LEDGER_KEY_FILE": str(key),
        "TS_CHECKPOINT_INTERVAL_S": "3600",
    }
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    base = f"{redis_prefix}:{topics.MARKET_BARS}"
    streams = [f"{base}:{p}" for p in range(PARTITIONS)]
    leases = [f"{base}:group:{GROUP}:lease:{p}" for p in range(PARTITIONS)]
    logs: list[Path] = []

    def start(name: str) -> subprocess.Popen[str]:
        log = tmp_path / f"{name}.log"
        logs.append(log)
        return subprocess.Popen(
            [sys.executable, "-m", "tradesignals.cli", "serve", "--role", "engine"],
            env=env,
            stderr=log.open("w"),
            stdout=subprocess.DEVNULL,
            text=True,
        )

    def holders() -> Counter[str]:
        return Counter(h for h in r.mget(leases) if h)

    def drained() -> bool:
        """Every partition's group read to the end and nothing pending: all bars handled and acked."""
        for s in streams:
            groups = r.xinfo_groups(s) if r.exists(s) else []
            g = next((g for g in groups if g["name"] == GROUP), None)
            if g is None or g["pending"] or g["lag"]:
                return False
        return True

    def publish(chunk: list[Bar]) -> None:
        async def go() -> None:
            bus = RedisStreamsBus(redis_url, partitions=PARTITIONS, prefix=redis_prefix)
            for i in range(0, len(chunk), 500):
                await bus.publish_many(
                    topics.MARKET_BARS, [(b.symbol, encode(b)) for b in chunk[i : i + 500]]
                )
            await bus.close()

        asyncio.run(go())

    procs = [start("engine-a"), start("engine-b")]
    victim, survivor = procs
    figures: dict[str, object] = {}
    try:
        # Ready: both members hold their fair share (4 + 4 leases) before any bar is published.
        wait_until(
            "both engines to own half the partitions",
            lambda: sorted(holders().values()) == [4, 4],
            deadline,
            procs,
        )
        figures["ready_s"] = round(time.monotonic() - started, 2)
        first_cut, second_cut = len(bars) * 2 // 5, len(bars) * 3 // 5
        publish(bars[:first_cut])
        wait_until("the first 40% to be handled", drained, deadline, procs)
        victim_name = next(h for h in holders() if h.endswith(str(victim.pid)))
        victim_parts = [p for p, h in enumerate(r.mget(leases)) if h == victim_name]
        publish(bars[first_cut:second_cut])
        victim.send_signal(signal.SIGKILL)  # mid-stream: it is working through the next 20%
        killed_at = time.monotonic()
        victim.wait(timeout=10)
        figures["pending_at_kill"] = sum(
            r.xpending(streams[p], GROUP)["pending"] for p in victim_parts if r.exists(streams[p])
        )
        publish(bars[second_cut:])
        wait_until(
            "the survivor to take every partition",
            lambda: list(holders().values()) == [PARTITIONS],
            deadline,
            [survivor],
        )
        figures["takeover_s"] = round(time.monotonic() - killed_at, 2)
        wait_until("every bar to be handled", drained, deadline, [survivor])
        figures["recovered_and_drained_s"] = round(time.monotonic() - killed_at, 2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        r.close()
    survivor_log = logs[1].read_text()
    rebuilt = [
        {k: int(v) for k, v in re.findall(r"(partition|replayed)=(\d+)", line)}
        for line in survivor_log.splitlines()
        if "engine.partition_rebuilt" in line
    ]

    with db.connect() as conn:
        stored = dict(conn.execute(sa.text("SELECT id, status FROM signals")).all())
        events = Counter(
            (sid, kind) for sid, kind in conn.execute(sa.text("SELECT signal_id, kind FROM signal_events"))
        )
    db.dispose()
    lost = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    duplicated = sorted(k for k, n in events.items() if n > 1)
    figures |= {
        "bars": len(bars),
        "reference_signals": len(expected),
        "stored_signals": len(stored),
        "lost": len(lost),
        "extra": len(extra),
        "duplicated_events": len(duplicated),
        "rebuilt_partitions": sorted(e["partition"] for e in rebuilt if e["replayed"] > 0),
        "replayed_bars": sum(e["replayed"] for e in rebuilt),
        "wall_s": round(time.monotonic() - started, 2),
    }
    print("FAULT engine_kill", json.dumps(figures))
    assert survivor.returncode == 0, survivor_log[-3000:]
    assert "Traceback" not in survivor_log
    # The victim's partitions were rebuilt from what it had acked (leases may also have moved
    # earlier, under load, which the same rebuild covers).
    assert set(victim_parts) <= {e["partition"] for e in rebuilt if e["replayed"] > 0}
    assert lost == [] and extra == [] and duplicated == []
    assert {sid: str(st) for sid, st in stored.items()} == expected
    assert all(events[(sid, "created")] == 1 for sid in expected)

    verify = subprocess.run(
        [sys.executable, "-m", "tradesignals.cli", "ledger", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
