"""Two API nodes and one engine on the real Redis and PostgreSQL: a client on each node gets the
same sequence per channel (one on the ASGI route, one on the dedicated fan-out server), each
message numbered once, and a stopped node leaves its relay group."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import uvicorn
import websockets

from tradesignals.api.app import create_app
from tradesignals.api.broadcast import RELAY_GROUP
from tradesignals.bus import topics
from tradesignals.bus.codec import encode
from tradesignals.config import load_settings
from tradesignals.domain.signals import SignalEvent, SignalEventKind, new_signal_id
from tradesignals.marketdata.feeds.simulator import SimulatorFeed
from tradesignals.wiring import Services, build_feed, build_services, build_signer

pytestmark = pytest.mark.integration

EVENTS = 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(cond: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


class Node:
    """One API node in this process: its services and a uvicorn server on its own port."""

    def __init__(self, services: Services, port: int) -> None:
        self.services = services
        self.port = port
        config = uvicorn.Config(
            create_app(services, roles=frozenset({"api"})), host="127.0.0.1", port=port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.task = asyncio.create_task(self.server.serve())

    async def ready(self) -> None:
        await until(lambda: self.server.started and self.services.hub.is_ready(), "node not ready")

    async def stop(self) -> None:
        self.server.should_exit = True
        await asyncio.wait_for(self.task, timeout=20)


class Client:
    """A WebSocket client recording every channel message it receives."""

    def __init__(self, url: str, channels: list[str]) -> None:
        self.url = url
        self.channels = channels
        self.got: dict[str, list[tuple[int, str]]] = {}
        self.subscribed = asyncio.Event()
        self.task = asyncio.create_task(self.run())

    async def run(self) -> None:
        async with websockets.connect(self.url) as ws:
            await ws.send(orjson.dumps({"op": "subscribe", "channels": self.channels}).decode())
            async for raw in ws:
                text = raw if isinstance(raw, str) else raw.decode()
                msg: dict[str, Any] = orjson.loads(text)
                if msg.get("type") == "subscribed":
                    self.subscribed.set()
                elif "seq" in msg:
                    self.got.setdefault(msg["channel"], []).append((msg["seq"], text))

    def ids(self) -> set[str]:
        return {orjson.loads(t)["data"]["signal_id"] for _, t in self.got.get("signals", [])}


def test_two_api_nodes_and_an_engine_deliver_the_same_sequence_per_channel(
    server_db_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    asyncio.run(scenario(server_db_url, redis_url, redis_prefix, tmp_path))


async def scenario(db: str, redis_url: str, prefix: str, home: Path) -> None:
    def settings(name: str, **more: object) -> Any:
        return load_settings(
            home=home / name, mode="server", database_url=db, redis_url=redis_url, bus_prefix=prefix, **more
        )

    nodes: list[Node] = []
    for name in ("a", "b"):
        # node b's clients use its dedicated fan-out server: both servers give the same seqs and bytes
        services = await build_services(settings(name, ws_port=0 if name == "b" else None))
        services.node_id = f"node-{name}"  # two nodes in one process: each its own relay member
        nodes.append(Node(services, free_port()))
    for node in nodes:
        await node.ready()
    key_home = home / "key"
    build_signer(load_settings(home=key_home, mode="embedded"))  # writes a fresh ledger key there
    engine_settings = settings(
        "engine", model="rule", sim_symbols=2, ledger_key_file=key_home / "ledger-key.pem"
    )
    engine = await build_services(engine_settings)
    engine.node_id = "engine"
    clients: list[Client] = []
    try:
        feed = build_feed(engine_settings)
        assert isinstance(feed, SimulatorFeed)
        symbol = feed.symbols()[0]
        channels = ["signals", "system:alerts", f"market:{symbol}:updates"]
        await until(nodes[1].services.ws_listening.is_set, "node b's fan-out server never listened")
        ports = [nodes[0].port, nodes[1].services.ws_port_bound]
        clients += [Client(f"ws://127.0.0.1:{port}/ws", channels) for port in ports]
        for c in clients:
            await asyncio.wait_for(c.subscribed.wait(), timeout=10)
        engine.start_roles({"ingest", "engine"}, feed)
        bus = nodes[0].services.bus
        sent = set()
        for i in range(EVENTS):
            sid = new_signal_id()
            sent.add(sid)
            event = SignalEvent(sid, SignalEventKind.CLOSED, datetime.now(UTC), {"outcome": "target", "i": i})
            await bus.publish(topics.SIGNAL_EVENTS, f"SYM{i % 7}", encode(event))
        await until(lambda: all(sent <= c.ids() for c in clients), "an outcome did not reach both nodes")
        log = nodes[0].services.hub.log
        last = await log.current("signals")
        await until(lambda: all(c.got["signals"][-1][0] >= last for c in clients), "a node fell behind")
        a, b = (c.got["signals"] for c in clients)
        assert a[: len(b)] == b[: len(a)]  # same numbers, same bytes
        assert [seq for seq, _ in a] == list(range(1, len(a) + 1))  # each numbered once, none missing
        await until(lambda: all(c.got.get(f"market:{symbol}:updates") for c in clients), "no bars")
        ma, mb = (dict(c.got[f"market:{symbol}:updates"]) for c in clients)
        common = ma.keys() & mb.keys()
        assert common and all(ma[s] == mb[s] for s in common)  # conflated, but numbered alike
        for c in clients:
            c.task.cancel()
            await asyncio.gather(c.task, return_exceptions=True)
        # Each node is one member of the shared relay group; a stopped node leaves it at once.
        relay_bus = nodes[1].services.bus
        lag = await relay_bus.lag(topics.SIGNAL_EVENTS, RELAY_GROUP)
        assert lag is not None and lag.members == 2
        await nodes[0].stop()
        lag = await relay_bus.lag(topics.SIGNAL_EVENTS, RELAY_GROUP)
        assert lag is not None and lag.members == 1
    finally:
        for c in clients:
            c.task.cancel()
            await asyncio.gather(c.task, return_exceptions=True)
        await engine.close()
        for node in nodes:
            if not node.task.done():
                await node.stop()
