"""A reader that stops reading, on a real server (TCP backpressure, which the in-memory test client
cannot show): it lags, then is closed with 4008 when a send makes no progress, and the others on
the same channel get every message."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import uvicorn
import websockets

from tradesignals.api.app import create_app
from tradesignals.config import load_settings
from tradesignals.wiring import build_services


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(cond: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


async def stalled_subscriber(port: int) -> socket.socket:
    """A WebSocket client that subscribes to ``signals`` and then never reads: a raw socket with a
    small receive buffer, so the server's sends stop making progress (a library client would keep
    reading into its own buffers)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += await asyncio.to_thread(sock.recv, 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    payload = orjson.dumps({"op": "subscribe", "channels": ["signals"]})
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)  # one masked text frame (< 126 bytes)
    return sock


async def scenario(home: Path, transport: str) -> None:
    services = await build_services(
        load_settings(
            home=home,
            mode="embedded",
            ws_send_timeout_s=0.5,
            ws_client_queue=20,
            ws_port=0 if transport == "fanout" else None,
        )
    )
    port = free_port()
    config = uvicorn.Config(create_app(services, roles=frozenset({"api"})), host="127.0.0.1", port=port)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    hub = services.hub
    await until(lambda: server.started and hub.is_ready(), "server not ready")
    if transport == "fanout":  # the dedicated server: sockets written at once until they cannot be
        await until(services.ws_listening.is_set, "the fan-out server never listened")
        assert services.ws_port_bound is not None
        port = services.ws_port_bound
    url = f"ws://127.0.0.1:{port}/ws"
    n, pad = 2000, "x" * 20_000
    try:
        stalled = await stalled_subscriber(port)
        async with websockets.connect(url, max_size=2**20) as reader:
            await reader.send(orjson.dumps({"op": "subscribe", "channels": ["signals"]}).decode())
            assert orjson.loads(await reader.recv())["type"] == "subscribed"
            await until(lambda: hub.subscriber_count("signals") == 2, "the stalled one never subscribed")

            got: list[int] = []

            async def read() -> None:
                while len(got) < n:
                    msg = orjson.loads(await reader.recv())
                    if "seq" in msg:
                        got.append(int(msg["seq"]))

            reading = asyncio.create_task(read())
            for i in range(n):
                await hub.publish("signals", "outcome", {"i": i, "pad": pad})
                if i % 50 == 0:
                    await asyncio.sleep(0)  # let the fan-out run, as a live feed would
            await until(lambda: len(hub.clients) == 1, "the stalled reader was never closed")
            await asyncio.wait_for(reading, timeout=60)
        assert got == list(range(1, n + 1))  # the reading client lost nothing and saw no duplicate
        assert hub.lagged_total >= 1
        assert hub.closes == {4008: 1}  # the stalled one, as a slow consumer
        stalled.close()
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=20)
        await services.close()


@pytest.mark.parametrize("transport", ["asgi", "fanout"])
def test_a_reader_that_stops_reading_lags_then_is_closed_and_others_lose_nothing(
    tmp_path: Path, transport: str
) -> None:
    asyncio.run(scenario(tmp_path, transport))
