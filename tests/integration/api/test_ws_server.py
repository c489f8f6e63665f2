"""What the dedicated fan-out server (``api/ws_server.py``) must do itself, below the protocol the
ASGI server did for us: the handshake's path, fragmented messages, invalid UTF-8, oversized frames,
a burst of frames in order, many sockets written in one pass, and going away with 1001 on stop.
The protocol itself runs on both servers in ``test_api_ws.py``."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import orjson
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tradesignals.config import load_settings
from tradesignals.wiring import Services, build_services


async def until(cond: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[tuple[Services, str]]:
    """An embedded API node with its fan-out server on a free port: (services, ws url)."""
    services = await build_services(load_settings(home=tmp_path, mode="embedded", ws_port=0))
    services.start_roles({"api"})
    await until(lambda: services.hub.is_ready() and services.ws_listening.is_set(), "node not ready")
    yield services, f"ws://127.0.0.1:{services.ws_port_bound}/ws"
    await services.close()


def frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """One masked client frame (RFC 6455 §5.2)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def raw_socket(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    return b0 & 0x0F, await reader.readexactly(n)


async def test_only_get_ws_is_upgraded(node: tuple[Services, str]) -> None:
    _, url = node
    with pytest.raises(InvalidStatus) as info:
        async with websockets.connect(url.replace("/ws", "/other")):
            pass
    assert info.value.response.status_code == 404


async def test_a_fragmented_message_is_reassembled(node: tuple[Services, str]) -> None:
    services, _ = node
    reader, writer = await raw_socket(services.ws_port_bound or 0)
    writer.write(frame(0x1, b'{"op": ', fin=False) + frame(0x0, b'"pi', fin=False) + frame(0x0, b'ng"}'))
    assert await asyncio.wait_for(read_frame(reader), 10) == (0x1, b'{"type":"pong"}')
    writer.close()


async def test_invalid_utf8_in_a_text_frame_closes_1007(node: tuple[Services, str]) -> None:
    services, _ = node
    reader, writer = await raw_socket(services.ws_port_bound or 0)
    writer.write(frame(0x1, b'{"op": "\xff\xfe"}'))
    opcode, payload = await asyncio.wait_for(read_frame(reader), 10)
    assert opcode == 0x8 and struct.unpack("!H", payload[:2])[0] == 1007
    await until(lambda: not services.hub.clients, "the socket was kept")
    writer.close()


async def test_frames_over_the_protocol_bound_close_the_socket_and_those_under_get_an_error(
    node: tuple[Services, str],
) -> None:
    services, url = node
    limit = services.settings.ws_max_frame_bytes
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send('{"op": "ping", "pad": "' + "x" * (2 * limit) + '"}')  # over the JSON limit
        reply = orjson.loads(await ws.recv())
        assert reply["code"] == "frame_too_large"
        await ws.send('{"op": "ping"}')
        assert orjson.loads(await ws.recv()) == {"type": "pong"}  # still open
        await ws.send("x" * (4 * limit + 1))  # over the protocol bound: not buffered, closed
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    await until(lambda: not services.hub.clients, "the socket was kept")


async def test_a_burst_of_frames_is_answered_in_order(node: tuple[Services, str]) -> None:
    _, url = node
    async with websockets.connect(url) as ws:
        for i in range(500):  # more than the inbox holds before reading pauses
            await ws.send(
                orjson.dumps({"op": "subscribe" if i % 2 else "ping", "channels": ["signals"]}).decode()
            )
        replies = [orjson.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(500)]
    assert [r["type"] for r in replies] == ["pong" if i % 2 == 0 else "subscribed" for i in range(500)]


async def test_many_sockets_get_every_message_written_in_one_pass(node: tuple[Services, str]) -> None:
    services, url = node
    sockets = [await websockets.connect(url) for _ in range(50)]
    try:
        for ws in sockets:
            await ws.send('{"op": "subscribe", "channels": ["system:alerts"]}')
            assert orjson.loads(await ws.recv())["type"] == "subscribed"
        for i in range(20):
            await services.hub.publish("system:alerts", "alert", {"i": i})
        for ws in sockets:
            got = [orjson.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(20)]
            assert [(m["seq"], m["data"]["i"]) for m in got] == [(i + 1, i) for i in range(20)]
        assert all(not c.queue for c in services.hub.clients)  # nothing waited: written at once
    finally:
        for ws in sockets:
            await ws.close()


async def test_a_stopping_server_says_going_away(tmp_path: Path) -> None:
    services = await build_services(load_settings(home=tmp_path, mode="embedded", ws_port=0))
    services.start_roles({"api"})
    await until(services.ws_listening.is_set, "never listened")
    async with websockets.connect(f"ws://127.0.0.1:{services.ws_port_bound}/ws") as ws:
        await ws.send('{"op": "ping"}')
        assert orjson.loads(await ws.recv()) == {"type": "pong"}
        await services.close()
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1001
    with socket.socket() as s:  # and the port is released
        assert s.connect_ex(("127.0.0.1", services.ws_port_bound or 0)) != 0


async def test_a_refused_upgrade_leaves_nothing_in_the_hub(node: tuple[Services, str]) -> None:
    services, _ = node
    port = services.ws_port_bound or 0
    for _ in range(20):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(  # no Sec-WebSocket-Key: picows refuses it after asking for the listener
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.read(200), 10)
        assert not head.startswith(b"HTTP/1.1 101"), head
        writer.close()
    assert not services.hub.clients
