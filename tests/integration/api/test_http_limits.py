"""HTTP limits on a real server (uvicorn, as ``tradesignals serve`` configures it) on 127.0.0.1,
spoken to over raw sockets the way a hostile or broken client would.

Each test waits on the server's answer or on the connection closing — never on a sleep.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

SERVER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    import uvicorn
    from tradesignals.api.app import create_app
    from tradesignals.api.http_limits import uvicorn_config
    from tradesignals.config import load_settings
    from tradesignals.wiring import build_services

    home, port, timeout_s, concurrency = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    settings = load_settings(
        home=Path(home), port=port, log_level="warning",
        http_request_timeout_s=timeout_s, http_max_concurrency=concurrency,
    )
    services = asyncio.run(build_services(settings))
    uvicorn.Server(uvicorn_config(create_app(services), settings)).run()
    """
)
MIB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=20)
        return sock


def start(tmp_path: Path, timeout_s: float, concurrency: int) -> Iterator[Server]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(tmp_path), str(port), str(timeout_s), str(concurrency)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    server = Server(process, port)
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{server.url}/api/health", timeout=2)
            break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(
                    process.stderr.read().decode() if process.stderr else "no server"
                ) from None
            time.sleep(0.1)
    try:
        yield server
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module (starting one costs seconds); each test leaves it as it found it."""
    yield from start(tmp_path_factory.mktemp("http"), timeout_s=1.0, concurrency=1000)


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return out
        if not chunk:
            return out
        out += chunk


def test_a_half_sent_request_is_answered_408_and_closed(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # the head never ends
        reply = read_all(sock)
    assert reply.startswith(b"HTTP/1.1 408 ") and b"request not received within 1 s" in reply


def test_a_connection_that_sends_nothing_is_closed(server: Server) -> None:
    with server.connect() as sock:
        assert read_all(sock).startswith(b"HTTP/1.1 408 ")


def test_a_body_that_stops_halfway_is_closed(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(
            b"POST /api/risk/assess HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"answers": '
        )
        assert read_all(sock).startswith(b"HTTP/1.1 408 ")


def test_a_200_mb_body_is_refused_from_its_length_without_being_read(server: Server) -> None:
    before = server.rss_mib()
    with server.connect() as sock:
        sock.sendall(
            b"POST /api/risk/assess HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (200 * MIB)
        )
        sent = 0
        try:  # keep sending, as a client that does not wait for an answer would
            while sent < 200 * MIB:
                sock.sendall(b"x" * MIB)
                sent += MIB
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = read_all(sock)
    assert reply.startswith(b"HTTP/1.1 413 ") and b"larger than 1048576 bytes" in reply
    assert sent < 200 * MIB  # the server closed the connection: the upload was cut short
    assert server.rss_mib() - before < 50
    assert httpx.get(f"{server.url}/api/health").status_code == 200


def test_a_chunked_body_is_cut_off_past_the_limit(server: Server) -> None:
    before = server.rss_mib()
    with server.connect() as sock:
        sock.sendall(
            b"POST /api/risk/assess HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"%x\r\n%s\r\n" % (64 * 1024, b" " * 64 * 1024)
        sent = 0
        try:
            while sent < 200 * MIB:
                sock.sendall(chunk)
                sent += 64 * 1024
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = read_all(sock)
    assert reply.startswith(b"HTTP/1.1 413 "), reply[:200]
    assert sent < 200 * MIB
    assert server.rss_mib() - before < 50


def test_oversized_headers_are_431(server: Server) -> None:
    with server.connect() as sock:
        headers = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(100))
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        reply = read_all(sock)
    assert reply.startswith(b"HTTP/1.1 431 ")


def test_ordinary_requests_are_unaffected(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:  # one keep-alive connection, several requests
        assert client.get("/api/health").status_code == 200
        r = client.post("/api/risk/assess", json={"answers": {"horizon": "3_10y"}})
        assert r.status_code == 422 and r.json()["detail"]  # judged on its content, not refused for size
        assert client.get("/api/history/summary").status_code == 200


def test_past_the_concurrency_limit_requests_get_503_at_once(tmp_path: Path) -> None:
    for server in start(tmp_path, timeout_s=30.0, concurrency=4):
        idle = [server.connect() for _ in range(4)]
        try:
            with server.connect() as sock:
                sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert read_all(sock).startswith(b"HTTP/1.1 503 ")
        finally:
            for s in idle:
                s.close()


def test_a_websocket_outlives_the_request_timeout(server: Server) -> None:
    """The read timer covers receiving a request, not what follows an upgrade: a WebSocket idle
    past it (the time passing is what is tested) still answers."""
    import asyncio
    import json

    import websockets

    async def scenario() -> str:
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
            await asyncio.sleep(2.5)  # the server's request timeout is 1 s
            await ws.send(json.dumps({"op": "ping"}))
            return str(await asyncio.wait_for(ws.recv(), 10))

    assert json.loads(asyncio.run(scenario())) == {"type": "pong"}
