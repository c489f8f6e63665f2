"""What the fault tests share: a reproducible replay, its clean single-process reference, engine
processes in server mode, and waits on observable state (Redis group lag, leases) with deadlines.

Imported by the tests of this folder by module name (pytest puts the folder on ``sys.path``).
"""

from __future__ import annotations

import asyncio
import csv
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pandas as pd
import redis
import sqlalchemy as sa

from tradesignals.bus import topics
from tradesignals.bus.base import partition_for
from tradesignals.bus.codec import encode
from tradesignals.bus.redis_streams import RedisStreamsBus, lease_key, stream_key
from tradesignals.config import Settings
from tradesignals.domain.market import Bar, Timeframe
from tradesignals.marketdata.validate import Validator
from tradesignals.signing import Ed25519Signer
from tradesignals.wiring.engine_builder import build_engine

PARTITIONS = 8
GROUP = "engine"
DAY = Timeframe.D1.ns


def symbols_on_every_partition(per_partition: int) -> list[str]:
    """Pair names chosen so every partition carries ``per_partition`` of them: no partition is idle,
    so whichever partitions an engine holds, killing it matters."""
    chosen: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    i = 0
    while any(len(v) < per_partition for v in chosen.values()):
        name = f"F{i:03d}USDT"
        p = partition_for(name, PARTITIONS)
        if len(chosen[p]) < per_partition:
            chosen[p].append(name)
        i += 1
    return sorted(n for v in chosen.values() for n in v)


def replay_bars(per_partition: int = 3, days: int = 300, seed: int = 7) -> list[Bar]:
    """A reproducible daily replay (crypto pairs: one 24/7 clock), in (ts, symbol) order like a feed."""
    rng = random.Random(seed)
    prices = {name: 100.0 + i for i, name in enumerate(symbols_on_every_partition(per_partition))}
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


def write_replay_csv(bars: list[Bar], path: Path) -> Path:
    """The bars as a replay file ``serve --role ingest --feed replay:PATH`` reads back bit for bit
    (ISO UTC times, floats by ``repr``)."""
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["timestamp", "symbol", "open", "high", "low", "close", "volume"])
        for b in bars:
            iso = pd.Timestamp(b.ts, tz="UTC").isoformat()
            out.writerow(
                [iso, b.symbol, repr(b.open), repr(b.high), repr(b.low), repr(b.close), repr(b.volume)]
            )
    return path


def validated(bars: list[Bar]) -> list[Bar]:
    """What the ingest role lets through (its validator), so a reference sees the bars the engine sees."""
    v = Validator()
    return [b for b in bars if v.check(b)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(port: int, data: Path) -> subprocess.Popen[str]:
    """A test Redis on loopback with AOF (``appendfsync everysec``) in ``data``; returns once it answers."""
    args = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), "--save", ""]
    args += ["--appendonly", "yes", "--appendfsync", "everysec"]
    proc = subprocess.Popen(
        ["redis-server", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
    )
    client = redis.Redis(port=port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + 20
    while True:
        assert proc.poll() is None, "redis-server exited at start"
        try:
            if client.ping():
                break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not answer within 20 s"
            time.sleep(0.05)
    client.close()
    return proc


def health(port: int) -> int:
    """The API node's /api/health status code (0 when it does not answer)."""
    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5).status_code
    except httpx.TransportError:
        return 0


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


@dataclass
class Cluster:
    """Engine processes of one test: their own database, Redis prefix, home and ledger key."""

    pg_url: str
    redis_url: str
    prefix: str
    tmp: Path
    lease_s: float = 2.0
    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        key = self.tmp / "ledger-key.pem"
        key.write_bytes(Ed25519Signer.generate().pem())
        key.chmod(0o600)
        self.env = {
            **os.environ,
            "TS_MODE": "server",
            "TS_DATABASE_URL": self.pg_url,
            "TS_REDIS_URL": self.redis_url,
            "TS_BUS_PREFIX": self.prefix,
            "TS_BUS_PARTITIONS": str(PARTITIONS),
            "TS_BUS_LEASE_S": str(self.lease_s),
            "TS_HOME": str(self.tmp / "home"),
            "TS_MODEL": "rule",
            "TS_LEDGER_KEY_FILE": str(key),
            "TS_CHECKPOINT_INTERVAL_S": "3600",
        }
        self.r = redis.Redis.from_url(self.redis_url, decode_responses=True)
        self.streams = [stream_key(self.prefix, topics.MARKET_BARS, p) for p in range(PARTITIONS)]
        self.leases = [lease_key(self.prefix, topics.MARKET_BARS, GROUP, p) for p in range(PARTITIONS)]

    def start_engine(self, name: str) -> subprocess.Popen[str]:
        return self.start_role(name, "engine")

    def start_role(
        self, name: str, role: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[str]:
        """``tradesignals serve --role ROLE ARGS…`` with this cluster's settings (plus ``env``)."""
        # Logs go to files, not pipes: a chatty role must never block on a full pipe.
        log = self.tmp / f"{name}.log"
        self.logs.append(log)
        proc = subprocess.Popen(
            [sys.executable, "-m", "tradesignals.cli", "serve", "--role", role, *args],
            env={**self.env, **(env or {})},
            stderr=log.open("w"),
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def published(self) -> int:
        """Bars on the bars topic, over every partition: messages, not entries (an entry of a batch
        publish holds several, ADR 0031)."""
        from tradesignals.bus.redis_streams import entry_messages

        raw = redis.Redis.from_url(self.redis_url)  # payloads are bytes, not text
        try:
            return sum(len(entry_messages(fields)) for s in self.streams for _id, fields in raw.xrange(s))
        finally:
            raw.close()

    def bar_copies(self) -> Counter[tuple[str, int]]:
        """How many times each (symbol, bar time) is on the bars topic: a restarted ingest must not
        have published any twice."""
        from tradesignals.bus.codec import decoder
        from tradesignals.bus.redis_streams import entry_messages

        decode = decoder(Bar)
        seen: Counter[tuple[str, int]] = Counter()
        raw = redis.Redis.from_url(self.redis_url)  # payloads are bytes, not text
        for s in self.streams:
            for _id, fields in raw.xrange(s):
                for _key, payload in entry_messages(fields):  # one message, or a batch (ADR 0031)
                    bar = decode(payload)
                    seen[(bar.symbol, bar.ts)] += 1
        raw.close()
        return seen

    def holders(self) -> Counter[str]:
        return Counter(h for h in self.r.mget(self.leases) if h)

    def drained(self) -> bool:
        """Every partition's group read to the end and nothing pending: all bars handled and acked."""
        return self.group_drained(topics.MARKET_BARS, GROUP)

    def group_drained(self, topic: str, group: str) -> bool:
        """``group`` has read every partition of ``topic`` to the end and acked all it was given."""
        for s in (stream_key(self.prefix, topic, p) for p in range(PARTITIONS)):
            groups = self.r.xinfo_groups(s) if self.r.exists(s) else []
            g = next((g for g in groups if g["name"] == group), None)
            if g is None or g["pending"] or g["lag"]:
                return False
            # Redis reports lag as nil when it cannot count it (after a restart from the AOF, for
            # one): then compare the group's last delivered id with the stream's last entry.
            if g["lag"] is None:
                raw = redis.Redis.from_url(self.redis_url)  # entries are MessagePack, not text
                try:
                    last = raw.xrevrange(s, count=1)
                finally:
                    raw.close()
                if last and _id(last[0][0].decode()) > _id(g["last-delivered-id"]):
                    return False
        return True

    def publish(self, chunk: list[Bar]) -> None:
        async def go() -> None:
            bus = RedisStreamsBus(self.redis_url, partitions=PARTITIONS, prefix=self.prefix)
            for i in range(0, len(chunk), 500):
                await bus.publish_many(
                    topics.MARKET_BARS, [(b.symbol, encode(b)) for b in chunk[i : i + 500]]
                )
            await bus.close()

        asyncio.run(go())

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(2)  # SIGINT: a clean stop
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.r.close()

    def ledger_verify(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tradesignals.cli", "ledger", "verify"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )


def _id(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def stored(db: sa.Engine) -> tuple[dict[str, str], Counter[tuple[str, str]]]:
    """Signal id -> status, and how many events of each (signal, kind) the ledger holds."""
    with db.connect() as conn:
        status = {sid: str(st) for sid, st in conn.execute(sa.text("SELECT id, status FROM signals"))}
        events = Counter(
            (sid, kind) for sid, kind in conn.execute(sa.text("SELECT signal_id, kind FROM signal_events"))
        )
    return status, events


def compare(
    expected: dict[str, str], status: dict[str, str], events: Counter[tuple[str, str]]
) -> dict[str, int]:
    """Lost / extra signals against the reference, and (signal, kind) events stored more than once."""
    return {
        "reference_signals": len(expected),
        "stored_signals": len(status),
        "lost": len(set(expected) - set(status)),
        "extra": len(set(status) - set(expected)),
        "duplicated_events": sum(1 for n in events.values() if n > 1),
        "status_mismatches": sum(1 for sid, st in expected.items() if sid in status and status[sid] != st),
    }


class ResumingClients:
    """WebSocket clients on a changing set of API nodes, on their own event loop in a thread.

    Each client subscribes to ``channels`` (one subscribe per channel, as a ``since`` is per
    channel) on a node from ``nodes()`` (``ws://`` URLs, read again at every reconnect). When its
    node goes away (killed, or closed with 1011) it connects to another live node and subscribes
    again with ``since`` = the last seq it saw on each channel, retrying until one accepts it —
    what the README tells a client to do. Every (seq, frame) is kept per channel, in order.
    """

    def __init__(self, n: int, channels: list[str], nodes: Callable[[], list[str]]) -> None:
        self.channels = channels
        self.nodes = nodes
        self.got: list[dict[str, list[tuple[int, str]]]] = [{c: [] for c in channels} for _ in range(n)]
        self.notices: list[list[dict[str, object]]] = [[] for _ in range(n)]
        self.subscribed = [False] * n
        self.resumes = [0] * n
        self.on: list[str | None] = [None] * n  # the node each client is subscribed on now
        self.errors: list[str] = []
        self._stop = False
        self._loop = asyncio.new_event_loop()
        self._main = self._loop.create_task(self._all())  # runs once the thread runs the loop
        self._thread = threading.Thread(target=self._run, name="ws-clients", daemon=True)
        self._thread.start()

    def last(self, i: int, channel: str) -> int:
        got = self.got[i][channel]
        return got[-1][0] if got else 0

    def seqs(self, i: int, channel: str) -> list[int]:
        return [seq for seq, _ in self.got[i][channel]]

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # reported by ``alive``: the test fails on it
            self.errors.append(repr(exc))
        finally:  # the sockets' own tasks (keepalive) too, so none is destroyed pending
            left = asyncio.all_tasks(self._loop)
            for task in left:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            self._loop.close()

    async def _all(self) -> None:
        await asyncio.gather(*(self._client(i) for i in range(len(self.got))))

    async def _client(self, i: int) -> None:
        import orjson
        import websockets

        previous: str | None = None
        while not self._stop:
            urls = self.nodes()
            others = [u for u in urls if u != previous] or urls
            if not others:
                await asyncio.sleep(0.05)
                continue
            url = others[i % len(others)]
            try:
                async with websockets.connect(url, open_timeout=5) as ws:
                    for channel in self.channels:
                        msg: dict[str, object] = {"op": "subscribe", "channels": [channel]}
                        if self.subscribed[i]:
                            msg["since"] = self.last(i, channel)
                        await ws.send(orjson.dumps(msg).decode())
                    if self.subscribed[i]:
                        self.resumes[i] += 1
                    self.on[i] = url
                    async for raw in ws:
                        if self._stop:
                            return
                        text = raw if isinstance(raw, str) else raw.decode()
                        frame: dict[str, object] = orjson.loads(text)
                        if frame.get("type") == "subscribed":
                            if frame.get("channels") == self.channels[-1:]:
                                self.subscribed[i] = True
                        elif "seq" in frame and "channel" in frame:
                            seq = frame["seq"]
                            assert isinstance(seq, int)
                            self.got[i][str(frame["channel"])].append((seq, text))
                        else:
                            self.notices[i].append(frame)
            except (websockets.ConnectionClosed, websockets.InvalidHandshake, OSError, TimeoutError):
                pass
            self.on[i] = None
            previous = url
            await asyncio.sleep(0.05)  # before the next node: a refused connect is not a busy loop

    def alive(self) -> bool:
        """True; fails the test when the clients' thread stopped on an error."""
        assert self._thread.is_alive() and not self.errors, self.errors
        return True

    def close(self) -> None:
        self._stop = True
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._main.cancel)
        self._thread.join(timeout=10)


def channel_seq_key(prefix: str, channel: str) -> str:
    """The Redis key of a WebSocket channel's current seq (api/channel_seq.py, ADR 0017's layout)."""
    return "{" + f"{prefix}:ws:{channel}" + "}:seq"
