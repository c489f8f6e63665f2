"""Redis down for 30 s mid-stream under running ingest, engine and API processes: no restart needed.

The test starts its own `redis-server` (AOF, `appendfsync everysec`) and three roles in three
processes: `serve --role ingest` replaying a file (paced, so Redis dies mid-replay), `serve --role
engine` and `serve --role api`. It stops Redis (SHUTDOWN: it writes its AOF) for
``TS_FAULT_REDIS_DOWN_S`` seconds (30 by default), then starts it again on the same files. While it
is down: the producers back off with a logged reason (``ingest.bus_retry``, ``engine.bus_retry``),
the API node's readiness (``/api/health``) is 503 with the bus named, and every process stays up.
After: readiness is 200 again, the replay finishes, every bar is on the bus exactly once, the store
holds exactly the clean run's signals and statuses (so nothing was acked that was not stored), one
event of each, and the ledger verifies.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import httpx
import pytest
import redis
from faultkit import (
    PARTITIONS,
    Cluster,
    compare,
    free_port,
    health,
    reference,
    replay_bars,
    start_redis,
    stored,
    validated,
    wait_until,
    write_replay_csv,
)

from tradesignals.storage.db import make_engine, migrate

pytestmark = [pytest.mark.fault, pytest.mark.integration, pytest.mark.slow]

DOWN_S = float(os.environ.get("TS_FAULT_REDIS_DOWN_S", "30"))


@pytest.mark.timeout(DOWN_S + 240)  # the outage itself plus the run; bounded by its own deadlines too
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_roles_ride_out_redis_down_for_30_s(fresh_pg_url: str, tmp_path: Path) -> None:
    started = time.monotonic()
    deadline = started + 150 + DOWN_S
    bars = replay_bars(per_partition=2, days=250, seed=13)
    expected = reference(validated(bars), tmp_path / "reference")
    replay = write_replay_csv(bars, tmp_path / "replay.csv")
    db = make_engine(fresh_pg_url)
    migrate(db)
    port, data = free_port(), tmp_path / "redis"
    data.mkdir()
    server = start_redis(port, data)
    cluster = Cluster(fresh_pg_url, f"redis://127.0.0.1:{port}/0", "tsoutage", tmp_path)
    cluster.env["TS_BUS_RETRY_S"] = str(DOWN_S + 90)
    api_port = free_port()
    engine = cluster.start_engine("engine")
    api = cluster.start_role("api", "api", "--port", str(api_port))
    figures: dict[str, object] = {"redis_down_s": DOWN_S}
    try:
        wait_until(
            "the engine to own every partition and the API to be ready",
            lambda: sum(cluster.holders().values()) == PARTITIONS and health(api_port) == 200,
            deadline,
            [engine, api],
        )
        # Paced: the 250 days take ~20 s, so Redis goes down while ingest is still publishing.
        ingest = cluster.start_role(
            "ingest", "ingest", "--feed", f"replay:{replay}", env={"TS_SPEED": str(250 * 86_400 / 20)}
        )
        roles = [engine, api, ingest]
        wait_until(
            "a quarter of the bars on the bus", lambda: cluster.published() >= len(bars) // 4, deadline, roles
        )
        figures["published_before_outage"] = cluster.published()
        redis.Redis(port=port).shutdown(nosave=False)
        stopped_at = time.monotonic()
        server.wait(timeout=20)
        cluster.r.close()
        # Readiness says so while Redis is away, and no role gives up: the outage lasts DOWN_S.
        wait_until("the API to report the bus down", lambda: health(api_port) == 503, deadline, roles)
        body = httpx.get(f"http://127.0.0.1:{api_port}/api/health", timeout=5).json()
        assert body["services"]["bus"]["ok"] is False, body
        figures["readiness_false_after_s"] = round(time.monotonic() - stopped_at, 2)
        while time.monotonic() - stopped_at < DOWN_S:
            for p in roles:
                assert p.poll() is None, (
                    f"a role exited while Redis was down: {[log.read_text()[-1500:] for log in cluster.logs]}"
                )
            assert health(api_port) == 503
            time.sleep(0.5)  # the outage's own length, not a wait for a state
        server = start_redis(port, data)
        restarted_at = time.monotonic()
        cluster.r = redis.Redis(port=port, decode_responses=True)
        wait_until("the API to be ready again", lambda: health(api_port) == 200, deadline, [engine, api])
        figures["ready_again_after_restart_s"] = round(time.monotonic() - restarted_at, 2)
        wait_until("ingest to finish the replay", lambda: ingest.poll() is not None, deadline, [engine, api])
        wait_until("every bar to be handled", cluster.drained, deadline, [engine, api])
        figures["restart_to_drained_s"] = round(time.monotonic() - restarted_at, 2)
        copies = cluster.bar_copies()
        assert engine.poll() is None and api.poll() is None  # rode it out: no restart
    finally:
        cluster.stop()
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=20)
    logs = {log.stem: log.read_text() for log in cluster.logs}
    status, events = stored(db)
    db.dispose()
    figures |= {
        "bars": len(bars),
        "bars_on_bus": sum(copies.values()),
        "bars_twice_on_bus": sum(1 for n in copies.values() if n > 1),
        "ingest_retries_logged": logs["ingest"].count("ingest.bus_retry"),
        "engine_retries_logged": logs["engine"].count("engine.bus_retry"),
        **compare(expected, status, events),
        "wall_s": round(time.monotonic() - started, 2),
    }
    print("FAULT redis_outage", json.dumps(figures))
    assert ingest.returncode == 0, logs["ingest"][-3000:]
    assert engine.returncode == 0, logs["engine"][-3000:]
    assert all("Traceback" not in text for text in logs.values()), logs
    assert figures["ingest_retries_logged"] > 0 and figures["engine_retries_logged"] > 0  # they backed off
    assert "ingest.bus_retry" in logs["ingest"] and "unreachable" in logs["ingest"]  # with the reason
    # The API node's broadcaster backed off too, and was still running at the clean stop.
    assert "api.bus_retry" in logs["api"] and "task.failed" not in logs["api"], logs["api"][-3000:]
    assert api.returncode == 0, logs["api"][-3000:]
    assert figures["bars_on_bus"] == len(validated(bars)) and figures["bars_twice_on_bus"] == 0
    assert figures["lost"] == figures["extra"] == figures["duplicated_events"] == 0
    assert status == expected
    verify = cluster.ledger_verify()
    assert verify.returncode == 0, verify.stdout + verify.stderr
