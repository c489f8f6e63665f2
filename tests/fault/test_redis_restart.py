"""Redis restarted mid-stream under a running engine: nothing lost, nothing twice, no engine restart.

The test starts its own `redis-server` on a free loopback port (AOF, `appendfsync everysec`), runs
one `serve --role engine` against it, and stops Redis (SHUTDOWN: it writes its AOF) while the
engine works through bars, then starts it again on the same files. The engine backs off while
Redis is away (``engine.bus_retry``), re-reads its own pending entries, and carries on: the store
ends with exactly the clean run's signals and statuses, one event of each, and the ledger verifies.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import redis
from faultkit import (
    PARTITIONS,
    Cluster,
    compare,
    free_port,
    reference,
    replay_bars,
    start_redis,
    stored,
    wait_until,
)

from tradesignals.storage.db import make_engine, migrate

pytestmark = [pytest.mark.fault, pytest.mark.integration, pytest.mark.slow]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_engine_rides_out_a_redis_restart(fresh_pg_url: str, tmp_path: Path) -> None:
    started = time.monotonic()
    deadline = started + 150
    bars = replay_bars(per_partition=2, days=250, seed=5)
    expected = reference(bars, tmp_path / "reference")
    db = make_engine(fresh_pg_url)
    migrate(db)
    port, data = free_port(), tmp_path / "redis"
    data.mkdir()
    server = start_redis(port, data)
    cluster = Cluster(fresh_pg_url, f"redis://127.0.0.1:{port}/0", "tsfault", tmp_path)
    engine = cluster.start_engine("engine")
    figures: dict[str, object] = {}
    try:
        wait_until(
            "the engine to own every partition",
            lambda: sum(cluster.holders().values()) == PARTITIONS,
            deadline,
            [engine],
        )
        cut = len(bars) // 2
        cluster.publish(bars[:cut])
        wait_until("the first half to be handled", cluster.drained, deadline, [engine])
        cluster.publish(bars[cut:])
        redis.Redis(port=port).shutdown(nosave=False)  # mid-stream: it is working through the rest
        stopped_at = time.monotonic()
        server.wait(timeout=20)
        cluster.r.close()
        server = start_redis(port, data)
        figures["redis_down_s"] = round(time.monotonic() - stopped_at, 2)
        cluster.r = redis.Redis(port=port, decode_responses=True)
        wait_until("every bar to be handled after the restart", cluster.drained, deadline, [engine])
        figures["restart_to_drained_s"] = round(time.monotonic() - stopped_at, 2)
        assert engine.poll() is None  # rode it out: no restart
    finally:
        cluster.stop()
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=20)
    log = cluster.logs[0].read_text()
    status, events = stored(db)
    db.dispose()
    figures |= {
        "bars": len(bars),
        "bus_retries_logged": log.count("engine.bus_retry"),
        **compare(expected, status, events),
        "wall_s": round(time.monotonic() - started, 2),
    }
    print("FAULT redis_restart", json.dumps(figures))
    assert figures["bus_retries_logged"] > 0  # the engine did see Redis go away
    assert engine.returncode == 0, log[-3000:]
    assert "Traceback" not in log
    assert figures["lost"] == figures["extra"] == figures["duplicated_events"] == 0
    assert status == expected
    verify = cluster.ledger_verify()
    assert verify.returncode == 0, verify.stdout + verify.stderr
