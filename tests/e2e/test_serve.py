"""Server mode as an operator runs it: three roles in three processes over real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets

from tradesignals.signing import Ed25519Signer, load_signer

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ingest_engine_and_api_roles_in_separate_processes(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    key = tmp_path / "ledger-key.pem"  # server mode never creates the checkpoint key: an operator's secret
    key.write_bytes(Ed25519Signer.generate().pem())
    key.chmod(0o600)
    env = {
        **os.environ,
        "TS_MODE": "server",
        "TS_DATABASE_URL": pg_url,
        "TS_REDIS_URL": redis_url,
        "TS_BUS_PREFIX": f"tse2e{uuid.uuid4().hex[:6]}",
        "TS_HOME": str(tmp_path),
        "TS_SPEED": "600",
        "TS_LEDGER_KEY_FILE": str(key),
    }
    exe = [sys.executable, "-m", "tradesignals.cli", "serve"]
    logs: list[Path] = []

    def start(*args: str) -> subprocess.Popen[str]:
        # Logs go to files, not pipes: a chatty role must never block on a full pipe.
        log = tmp_path / f"{args[1]}.log"
        logs.append(log)
        return subprocess.Popen(
            [*exe, *args], env=env, stderr=log.open("w"), stdout=subprocess.DEVNULL, text=True
        )

    procs = [start("--role", "api", "--port", str(port)), start("--role", "engine")]
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, "api role never became healthy"
            try:
                health = httpx.get(f"{base}/api/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health.status_code == 200
        assert health.json()["services"]["database"]["detail"] == "postgresql"
        assert health.json()["services"]["bus"]["detail"] == "RedisStreamsBus"
        # Live signals are for premium accounts: one, through the local (test-mode) provider.
        account = {"email": "ops@example.com", "password": "correct horse battery staple"}
        assert httpx.post(f"{base}/api/auth/register", json=account, timeout=10).status_code == 201
        login = {"username": account["email"], "password": account["password"]}
        token = httpx.post(f"{base}/api/auth/token", data=login, timeout=10).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        paid = httpx.post(f"{base}/api/billing/checkout", json={"plan": "premium"}, headers=auth, timeout=10)
        assert paid.json()["status"] == "paid"
        user_id = httpx.get(f"{base}/api/me", headers=auth, timeout=5).json()["id"]

        async def first_signal() -> dict[str, Any]:
            async with websockets.connect(f"ws://127.0.0.1:{port}/ws?token={token}") as ws:
                # The user's fitted signals, and the public outcomes (the track record as written).
                channels = ["signals", f"user:{user_id}:signals"]
                await ws.send(orjson.dumps({"op": "subscribe", "channels": channels}).decode())
                assert orjson.loads(await ws.recv())["type"] == "subscribed"
                # Start ingest last: the engine group reads from the earliest entry, so nothing is missed.
                procs.append(start("--role", "ingest", "--feed", "sim"))
                while True:
                    remaining = deadline - time.monotonic()
                    assert remaining > 0, "no signal reached the API through Redis within 60 s"
                    msg = orjson.loads(await asyncio.wait_for(ws.recv(), timeout=remaining))
                    if msg.get("channel") in channels:
                        return dict(msg["data"])

        data = asyncio.run(first_signal())
        for p in procs:
            assert p.poll() is None, [log.read_text()[-2000:] for log in logs]
        sid = data.get("id") or data["signal_id"]  # a fitted signal, or a closed outcome
        one = httpx.get(f"{base}/api/signals/{sid}", headers=auth, timeout=5)
        assert one.status_code == 200 and one.json()["id"] == sid
        assert one.json()["model_version"] == "rule-sma-cross-v0"
        hidden = httpx.get(f"{base}/api/signals/{sid}", timeout=5)
        assert hidden.status_code == 403 or hidden.json()["status"] != "open"  # anonymous
        # The engine signed a checkpoint at start, with the operator's key.
        latest = httpx.get(f"{base}/api/ledger/checkpoints/latest", timeout=5)
        assert latest.status_code == 200 and latest.json()["public_key"] == load_signer(key).public_key
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    codes = [p.returncode for p in procs]
    assert codes == [0, 0, 0], [log.read_text()[-2000:] for log in logs]
    assert all("Traceback" not in log.read_text() for log in logs)
