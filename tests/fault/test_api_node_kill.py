"""`kill -9` of an API node mid-stream: its WebSocket clients resume on another node with no gap.

Four processes over real PostgreSQL and Redis: `serve --role ingest` replaying a file (paced),
`serve --role engine`, and two `serve --role api` nodes on their own ports. WebSocket clients (the
``websockets`` library) on node A subscribe to the public ``signals`` channel (closed outcomes) and
to one symbol's ``market:{SYMBOL}:updates`` (bars); a control client sits on node B from the start.
Part-way through the replay node A is killed with SIGKILL. Its clients reconnect to node B and
subscribe again with ``since`` = the last seq they saw, per channel, as the README tells a client to.

Then, per client: the ``signals`` seqs received are exactly 1..N, each once (the numbers are the
channel log's in Redis, not a process's), their bytes equal the control client's, and the outcomes
are exactly the closed signals the database holds (each once) — the clean single-process run's. The
bars channel is conflated, so only strictly rising seqs and the last one are asserted. Node A's
share of the relay group (its pending messages included) is taken over by node B after the lease
(``TS_BUS_LEASE_S``); the ledger verifies afterwards.

Bounded: every wait has a deadline and waits on an observable state (relay leases, group lag,
health, what a client received), never on a fixed sleep.
"""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
import websockets
from faultkit import (
    PARTITIONS,
    Cluster,
    channel_seq_key,
    compare,
    free_port,
    health,
    reference,
    replay_bars,
    stored,
    validated,
    write_replay_csv,
)

from tradesignals.api.broadcast import RELAY_GROUP
from tradesignals.bus import topics
from tradesignals.bus.redis_streams import lease_key, stream_key
from tradesignals.storage.db import make_engine, migrate

pytestmark = [pytest.mark.fault, pytest.mark.integration, pytest.mark.slow]

CLIENTS_ON_A = 4
RELAYED = (topics.SIGNAL_EVENTS, topics.MARKET_BARS)  # the topics this test's channels come from


class Client:
    """A WebSocket client that, when its node goes away, resumes on the next one from its last seq."""

    def __init__(self, name: str, urls: list[str], channels: list[str]) -> None:
        self.name = name
        self.urls = urls
        self.channels = channels
        self.got: dict[str, list[tuple[int, str]]] = {c: [] for c in channels}  # (seq, frame) in order
        self.notices: list[dict[str, Any]] = []  # lagged, resync, error: none is expected
        self.subscribed = asyncio.Event()
        self.node = 0  # index in ``urls`` of the node it is on
        self.dropped_at: float | None = None
        self.first_after_resume: float | None = None  # when the first channel message came on the next node
        self.task = asyncio.create_task(self.run())

    def last(self, channel: str) -> int:
        got = self.got[channel]
        return got[-1][0] if got else 0

    async def run(self) -> None:
        for node, url in enumerate(self.urls):
            self.node = node
            try:
                async with websockets.connect(url, open_timeout=10) as ws:
                    for channel in self.channels:  # one ``since`` per subscribe: one channel each
                        msg: dict[str, Any] = {"op": "subscribe", "channels": [channel]}
                        if node > 0:
                            msg["since"] = self.last(channel)
                        await ws.send(orjson.dumps(msg).decode())
                    async for raw in ws:
                        self.on_frame(raw if isinstance(raw, str) else raw.decode())
            except (websockets.ConnectionClosed, OSError):
                self.dropped_at = time.monotonic()
                continue
        raise AssertionError(f"{self.name}: no node left to resume on")

    def on_frame(self, text: str) -> None:
        msg: dict[str, Any] = orjson.loads(text)
        if msg.get("type") == "subscribed":  # the reply names each channel's seq now
            if self.node == 0 and msg["channels"] == self.channels[-1:]:
                self.subscribed.set()
        elif "seq" in msg and "channel" in msg:
            if self.node > 0 and self.first_after_resume is None:
                self.first_after_resume = time.monotonic()
            self.got[msg["channel"]].append((msg["seq"], text))
        else:
            self.notices.append(msg)

    def outcome_ids(self) -> list[str]:
        return [orjson.loads(frame)["data"]["signal_id"] for _, frame in self.got["signals"]]


async def until(
    what: str,
    cond: Callable[[], bool],
    deadline: float,
    procs: list[subprocess.Popen[str]],
    clients: Sequence[Client] = (),
) -> None:
    """Poll ``cond`` (off the loop: it may read Redis or HTTP) until true; fail with ``what`` at the deadline."""
    while not await asyncio.to_thread(cond):
        for c in clients:  # a client that gave up fails the wait at once
            assert not c.task.done(), (
                f"client {c.name} stopped while waiting for {what}: {c.task.exception()!r}"
            )
        for p in procs:
            assert p.poll() is None, f"a role exited early (code {p.returncode}) while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.mark.timeout(240)
def test_kill_9_of_an_api_node_clients_resume_on_another_without_gap(
    fresh_pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    bars = replay_bars(per_partition=2, days=250, seed=13)
    expected = reference(validated(bars), tmp_path / "reference")
    closed = {sid for sid, st in expected.items() if st != "open"}
    assert len(closed) > 100  # enough outcomes that a gap shows
    replay = write_replay_csv(bars, tmp_path / "replay.csv")
    db = make_engine(fresh_pg_url)
    migrate(db)  # once, before the processes start: they must not race to create the schema
    cluster = Cluster(fresh_pg_url, redis_url, redis_prefix, tmp_path)
    figures: dict[str, Any] = {}
    clients: list[Client] = []
    try:
        clients = asyncio.run(scenario(cluster, bars, replay, closed, figures, started + 180))
    finally:
        cluster.stop()
    logs = {log.stem: log.read_text() for log in cluster.logs}
    status, events = stored(db)
    with db.connect() as conn:
        closed_in_db = {
            sid
            for (sid,) in conn.execute(sa.text("SELECT signal_id FROM signal_events WHERE kind = 'closed'"))
        }
    db.dispose()
    figures |= {"bars": len(bars), **compare(expected, status, events)}
    figures["wall_s"] = round(time.monotonic() - started, 2)
    print("FAULT api_node_kill", json.dumps(figures))
    for name in ("ingest", "engine", "api-b"):
        assert "Traceback" not in logs[name], logs[name][-3000:]
    assert figures["lost"] == figures["extra"] == figures["duplicated_events"] == 0
    assert status == expected
    assert closed_in_db == closed
    for c in clients:
        seqs = [seq for seq, _ in c.got["signals"]]
        assert seqs == list(range(1, len(closed) + 1)), c.name  # no gap, none twice, none missing
        ids = c.outcome_ids()
        assert len(ids) == len(set(ids)) and set(ids) == closed_in_db, c.name  # each closed signal once
        assert c.got["signals"] == clients[-1].got["signals"], c.name  # same numbers, same bytes everywhere
        assert not c.notices, (c.name, c.notices[:3])
    verify = cluster.ledger_verify()
    assert verify.returncode == 0, verify.stdout + verify.stderr


async def scenario(
    cluster: Cluster,
    bars: list[Any],
    replay: Path,
    closed: set[str],
    figures: dict[str, Any],
    deadline: float,
) -> list[Client]:
    port_a, port_b = free_port(), free_port()
    engine = cluster.start_engine("engine")
    # Each node its own home: nothing on disk is shared between them, only Redis and PostgreSQL.
    node_a = cluster.start_role(
        "api-a", "api", "--port", str(port_a), env={"TS_HOME": str(cluster.tmp / "a")}
    )
    node_b = cluster.start_role(
        "api-b", "api", "--port", str(port_b), env={"TS_HOME": str(cluster.tmp / "b")}
    )
    relay_leases = [lease_key(cluster.prefix, t, RELAY_GROUP, p) for t in RELAYED for p in range(PARTITIONS)]

    def relay_holders() -> Counter[str]:
        return Counter(h for h in cluster.r.mget(relay_leases) if h)

    await until(
        "the engine to own every partition, both nodes to hold half the relay group and answer",
        lambda: (
            sum(cluster.holders().values()) == PARTITIONS
            and sorted(relay_holders().values()) == [PARTITIONS] * 2
            and health(port_a) == 200
            and health(port_b) == 200
        ),
        deadline,
        [engine, node_a, node_b],
    )
    symbol = bars[0].symbol
    channels = ["signals", f"market:{symbol}:updates"]
    url_a, url_b = f"ws://127.0.0.1:{port_a}/ws", f"ws://127.0.0.1:{port_b}/ws"
    clients = [Client(f"a{i}", [url_a, url_b], channels) for i in range(CLIENTS_ON_A)]
    clients.append(Client("control-b", [url_b], channels))
    await until(
        "every client to subscribe",
        lambda: all(c.subscribed.is_set() for c in clients),
        deadline,
        [],
        clients,
    )
    # Paced: the 250 days take ~20 s, so node A dies while outcomes are still being made.
    ingest = cluster.start_role(
        "ingest", "ingest", "--feed", f"replay:{replay}", env={"TS_SPEED": str(250 * 86_400 / 20)}
    )
    roles = [engine, node_a, node_b]
    on_a = clients[:CLIENTS_ON_A]
    await until(
        "a third of the outcomes on node A's clients",
        lambda: all(len(c.got["signals"]) >= len(closed) // 3 for c in on_a),
        deadline,
        roles,  # ingest may be done by now on a loaded machine: the engine still works through its bars
        clients,
    )
    victim = next(h for h in relay_holders() if h.endswith(f"-{node_a.pid}"))
    # The relay's leases are TS_BUS_LEASE_S long (they were a fixed 10 s: a dead node's share waited that).
    assert 0 < max(cluster.r.pttl(k) for k in relay_leases) <= cluster.lease_s * 1000
    figures["relay_partitions_of_a"] = relay_holders()[victim]
    figures["outcomes_before_kill"] = min(len(c.got["signals"]) for c in on_a)
    node_a.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    node_a.wait(timeout=10)
    # What node A had been handed by the relay group and not acked: node B must claim it, or it waits forever.
    figures["relay_unacked_of_a_at_kill"] = sum(
        c["pending"]
        for t in RELAYED
        for p in range(PARTITIONS)
        for c in cluster.r.xpending(stream_key(cluster.prefix, t, p), RELAY_GROUP)["consumers"]
        if c["name"] == victim
    )
    figures["published_at_kill"] = cluster.published()
    # Mid-stream: outcomes are still to be made, relayed and numbered after the kill.
    assert figures["outcomes_before_kill"] < len(closed)
    roles = [engine, node_b]
    await until(
        "node A's clients to resume on node B",
        lambda: all(c.first_after_resume is not None for c in on_a),
        deadline,
        roles,
        clients,
    )
    resume_ms = [round(((c.first_after_resume or 0) - killed_at) * 1000, 1) for c in on_a]
    await until(
        "node B to take node A's share of the relay group",
        lambda: list(relay_holders().values()) == [len(relay_leases)],
        deadline,
        roles,
        clients,
    )
    figures["relay_takeover_s"] = round(time.monotonic() - killed_at, 2)
    await until("ingest to finish the replay", lambda: ingest.poll() is not None, deadline, roles, clients)
    await until("every bar to be handled", cluster.drained, deadline, roles, clients)
    await until(
        "the relay group to hand on every outcome and bar",
        lambda: all(cluster.group_drained(t, RELAY_GROUP) for t in RELAYED),
        deadline,
        roles,
        clients,
    )

    last_signals = int(cluster.r.get(channel_seq_key(cluster.prefix, "signals")) or 0)
    last_bar = int(cluster.r.get(channel_seq_key(cluster.prefix, channels[1])) or 0)
    assert last_signals == len(closed)  # the key read is the one the nodes numbered with
    await until(
        "every client to reach the channels' last seq",
        lambda: all(c.last("signals") == last_signals and c.last(channels[1]) == last_bar for c in clients),
        deadline,
        roles,
        clients,
    )
    for c in clients:
        assert not c.task.done(), (c.name, c.task.exception())  # still connected: it never gave up
        c.task.cancel()
    await asyncio.gather(*(c.task for c in clients), return_exceptions=True)
    assert ingest.returncode == 0
    received = sum(len(c.got["signals"]) for c in clients)
    gaps = sum(
        1
        for c in clients
        for (a, _), (b, _) in zip(c.got["signals"], c.got["signals"][1:], strict=False)
        if b != a + 1
    )
    duplicates = sum(len(c.got["signals"]) - len({s for s, _ in c.got["signals"]}) for c in clients)
    for c in clients:  # conflated: the latest of each moment, numbered in order, the last one included
        bar_seqs = [s for s, _ in c.got[channels[1]]]
        assert bar_seqs == sorted(set(bar_seqs)) and bar_seqs[-1] == last_bar, c.name
    # They left node A because it was killed, not before.
    assert all(c.dropped_at is not None and c.dropped_at >= killed_at for c in on_a)
    figures |= {
        "clients_resumed": len(on_a),
        "kill_to_first_message_on_b_ms": {
            "min": min(resume_ms),
            "median": round(statistics.median(resume_ms), 1),
            "max": max(resume_ms),
        },
        "outcomes": last_signals,
        "outcome_messages_received": received,
        "bar_messages_received": sum(len(c.got[channels[1]]) for c in clients),
        "gaps": gaps,
        "duplicates": duplicates,
        "kill_to_drained_s": round(time.monotonic() - killed_at, 2),
    }
    return clients
