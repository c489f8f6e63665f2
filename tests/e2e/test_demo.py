"""The demo as a new user runs it: health within 60 s; sign up, subscribe with the local (test-mode)
provider, then a live signal over /ws and over REST within 60 s — and none for an anonymous caller."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
import websockets

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def first_ws_signal(url: str, channels: list[str], deadline: float) -> dict[str, object]:
    async with websockets.connect(url) as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "channels": channels}).decode())
        ack = orjson.loads(await asyncio.wait_for(ws.recv(), timeout=10))
        assert ack["type"] == "subscribed", ack
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "no signal over /ws within 60 s"
            msg = orjson.loads(await asyncio.wait_for(ws.recv(), timeout=remaining))
            if msg.get("channel") == "signals":
                return msg  # type: ignore[no-any-return]


def test_demo_serves_health_signals_and_websocket(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "TS_HOME": str(tmp_path / "var")}
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradesignals.cli", "demo", "--port", str(port), "--symbols", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = start + 60
        health = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                health = httpx.get(f"{base}/api/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None and health.status_code == 200, "health did not answer 200 within 60 s"
        assert health.json()["mode"] == "embedded"
        # The web app is served by the demo itself, at `/` (built by `make`).
        home = httpx.get(f"{base}/", timeout=5)
        assert home.status_code == 200 and 'id="main"' in home.text, home.text[:200]

        # Live signals are for paying users: sign up and subscribe (the demo's provider is test mode).
        account = {"email": "demo@example.com", "password": "correct horse battery staple"}
        assert httpx.post(f"{base}/api/auth/register", json=account, timeout=10).status_code == 201
        login = {"username": account["email"], "password": account["password"]}
        token = httpx.post(f"{base}/api/auth/token", data=login, timeout=10).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        paid = httpx.post(f"{base}/api/billing/checkout", json={"plan": "premium"}, headers=auth, timeout=10)
        assert paid.json()["status"] == "paid" and paid.json()["test_mode"] is True

        # The public ``signals`` channel carries closed outcomes as they are written (premium live
        # signals come fitted to the user on ``user:{id}:signals``, which this socket may also hold).
        me = httpx.get(f"{base}/api/me", headers=auth, timeout=5).json()
        url = f"ws://127.0.0.1:{port}/ws?token={token}"
        ws_msg = asyncio.run(first_ws_signal(url, ["signals", f"user:{me['id']}:signals"], start + 60))
        data = ws_msg["data"]
        assert isinstance(data, dict) and data["symbol"] and data["outcome"]

        one = httpx.get(f"{base}/api/signals/{data['signal_id']}", timeout=5)  # public once closed
        assert one.status_code == 200, "an outcome arrived over /ws but not at /api/signals/{id}"
        assert one.json()["status"] != "open"
        public = httpx.get(f"{base}/api/signals", timeout=5).json()["items"]
        assert all(s["status"] != "open" for s in public)
        assert time.monotonic() - start < 60
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
