"""/api/health says which roles run where (the process registry) and whether each role keeps up.

Embedded mode (memory bus, the one process reports itself) and server mode (real Redis and
PostgreSQL, a second real ``serve`` process beside the API under test). Hosts and pids are shown
to operators only; everyone sees the lag per role and how many processes run each role.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tradesignals.api.app import create_app
from tradesignals.bus import topics
from tradesignals.bus.codec import decoder, encode
from tradesignals.config import load_settings
from tradesignals.domain.market import Bar, Timeframe
from tradesignals.signing import Ed25519Signer
from tradesignals.wiring import Services, build_services

TOKEN = "op-token-for-tests"
OPERATOR = {"X-Operator-Token": TOKEN}


def _until(what: str, cond: Callable[[], Any], seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while not (got := cond()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return got


def _bars(n: int) -> list[tuple[str, bytes]]:
    return [(f"S{i}", encode(Bar(f"S{i}", Timeframe.D1, 0, 1, 1, 1, 1, 1))) for i in range(n)]


def test_embedded_reports_itself_and_the_engine_lag(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, mode="embedded", operator_token=TOKEN, health_max_lag=3)
    services = asyncio.run(build_services(settings))
    with TestClient(create_app(services, roles=frozenset({"api"}))) as client:
        anon = _until("the heartbeat", lambda: (b := client.get("/api/health").json())["roles"] and b)
        mine = client.get("/api/health", headers=OPERATOR).json()
        forged = client.get("/api/health", headers={"X-Operator-Token": "wrong"}).json()
        bad_bearer = client.get("/api/health", headers={"Authorization": "Bearer nope"})

        async def engine_reads(n: int) -> None:
            reader = services.bus.consumer(topics.MARKET_BARS, "engine", "e1", decoder(Bar), lease_seconds=30)
            await reader.fetch(1, wait=0)  # joins: the group exists, nothing published yet
            await services.bus.publish_many(topics.MARKET_BARS, _bars(n))

        client.portal.call(engine_reads, 5)  # type: ignore[union-attr]
        behind = client.get("/api/health").json()
    assert anon["roles"] == {"api": 1} and anon["processes"] is None
    assert socket.gethostname() not in str(anon) and str(os.getpid()) not in str(anon)
    assert forged["processes"] is None
    assert bad_bearer.status_code == 200 and bad_bearer.json()["processes"] is None  # never a 401 here
    (me,) = mine["processes"]
    assert (me["host"], me["pid"], me["roles"]) == (socket.gethostname(), os.getpid(), ["api"])
    assert me["last_seen"] >= me["started_at"]
    (engine,) = [g for g in behind["groups"] if g["role"] == "engine"]
    assert (engine["unread"], engine["pending"], engine["members"]) == (5, 0, 1)
    assert engine["keeping_up"] is False  # 5 waiting > TS_HEALTH_MAX_LAG=3
    assert behind["status"] == "ok"  # behind is reported, not judged: the load balancer keeps the node


def test_an_admin_sees_the_processes_too(services: Services, admin: dict[str, str]) -> None:
    with TestClient(create_app(services, roles=frozenset({"api"}))) as client:
        body = _until(
            "the heartbeat", lambda: (b := client.get("/api/health", headers=admin).json())["processes"] and b
        )
    assert [p["roles"] for p in body["processes"]] == [["api"]]


def test_server_mode_lists_every_process_and_drops_a_killed_one(
    server_db_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    pg_url = server_db_url  # a fresh schema: the shared database holds other tests' checkpoints
    key = tmp_path / "ledger-key.pem"
    key.write_bytes(Ed25519Signer.generate().pem())
    key.chmod(0o600)
    env = {
        **os.environ,
        "TS_MODE": "server",
        "TS_DATABASE_URL": pg_url,
        "TS_REDIS_URL": redis_url,
        "TS_BUS_PREFIX": redis_prefix,
        "TS_HOME": str(tmp_path / "engine-home"),
        "TS_MODEL": "rule",
        "TS_LEDGER_KEY_FILE": str(key),
        "TS_CHECKPOINT_INTERVAL_S": "3600",
        "TS_REGISTRY_HEARTBEAT_S": "0.3",  # lapses 0.9 s after a kill
        "TS_BUS_LEASE_S": "2",
    }
    settings = load_settings(
        mode="server",
        database_url=pg_url,
        redis_url=redis_url,
        bus_prefix=redis_prefix,
        home=tmp_path / "api-home",
        operator_token=TOKEN,
        registry_heartbeat_s=0.3,
    )
    services = asyncio.run(build_services(settings))
    log = tmp_path / "engine.log"
    engine = subprocess.Popen(
        [sys.executable, "-m", "tradesignals.cli", "serve", "--role", "engine"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    try:
        with TestClient(create_app(services, roles=frozenset({"api"}))) as client:

            def both() -> dict[str, Any] | None:
                assert engine.poll() is None, log.read_text()[-2000:]
                body: dict[str, Any] = client.get("/api/health", headers=OPERATOR).json()
                engine_up = [g for g in body["groups"] if g["role"] == "engine" and g["members"]]
                return body if body["roles"] == {"api": 1, "engine": 1} and engine_up else None

            together = _until("the engine process's heartbeat and group", both, 60)
            anon = client.get("/api/health").json()
            engine.send_signal(signal.SIGKILL)
            engine.wait()
            alone = _until(
                "the killed engine to lapse",
                lambda: (
                    (b := client.get("/api/health", headers=OPERATOR).json())["roles"] == {"api": 1} and b
                ),
            )
            # No engine left and a bar waiting for one: the engine role is down everywhere. This
            # node still serves (history, accounts, billing): 200, degraded, the role named; a 503
            # would take every API node out of the load balancer at once.
            _until("the engine's lease to lapse", lambda: _engine_members(client) == 0)
            asyncio.run(_publish_bar(redis_url, redis_prefix))
            stranded = client.get("/api/health")
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()
    procs = {tuple(p["roles"]): p for p in together["processes"]}
    assert set(procs) == {("api",), ("engine",)}
    assert procs[("engine",)]["pid"] == engine.pid and procs[("api",)]["pid"] == os.getpid()
    assert {p["host"] for p in together["processes"]} == {socket.gethostname()}
    (group,) = [g for g in together["groups"] if g["role"] == "engine"]
    assert group["keeping_up"] is True and group["unread"] == 0
    assert anon["roles"] == {"api": 1, "engine": 1} and anon["processes"] is None
    assert [p["roles"] for p in alone["processes"]] == [["api"]]
    body = stranded.json()
    assert stranded.status_code == 200 and body["status"] == "degraded"
    assert body["services"]["lag:engine"]["ok"] is False and body["services"]["lag:engine"]["gates"] is False
    assert body["services"]["database"] == {"ok": True, "detail": "postgresql", "gates": True}
    (down,) = [g for g in body["groups"] if g["role"] == "engine"]
    assert down["members"] == 0 and down["unread"] >= 1 and down["keeping_up"] is False


def _engine_members(client: TestClient) -> int:
    groups = client.get("/api/health").json()["groups"]
    return sum(g["members"] for g in groups if g["role"] == "engine")


async def _publish_bar(redis_url: str, prefix: str) -> None:
    """From a bus of its own: the node's client belongs to the test client's event loop."""
    from tradesignals.bus.redis_streams import RedisStreamsBus

    bus = RedisStreamsBus(redis_url, prefix=prefix)
    try:
        [(key, payload)] = _bars(1)
        await bus.publish(topics.MARKET_BARS, key, payload)
    finally:
        await bus.close()
