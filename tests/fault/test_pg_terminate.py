"""PostgreSQL connections of the engine terminated (`pg_terminate_backend`) while it writes.

One `serve --role engine` process handles a replay while the test repeatedly terminates every
backend connected to the engine's database. The engine retries its (idempotent) writes with
back-off and acks nothing it has not stored, so afterwards the store holds exactly the clean run's
signals and final statuses, nothing twice, the ledger verifies, and the process is still running.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import psycopg
import pytest
from faultkit import Cluster, compare, reference, replay_bars, stored, wait_until

from tradesignals.storage.db import make_engine, migrate

pytestmark = [pytest.mark.fault, pytest.mark.integration, pytest.mark.slow]


def test_engine_survives_its_database_connections_being_terminated_mid_write(
    fresh_pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    deadline = started + 120
    bars = replay_bars(per_partition=2, days=250, seed=11)
    expected = reference(bars, tmp_path / "reference")
    db = make_engine(fresh_pg_url)
    migrate(db)
    dbname = fresh_pg_url.rsplit("/", 1)[1]
    admin = fresh_pg_url.replace("postgresql+psycopg://", "postgresql://", 1).rsplit("/", 1)[0] + "/postgres"
    cluster = Cluster(fresh_pg_url, redis_url, redis_prefix, tmp_path)
    engine = cluster.start_engine("engine")
    terminated = 0
    try:
        wait_until(
            "the engine to own every partition",
            lambda: sum(cluster.holders().values()) == 8,
            deadline,
            [engine],
        )
        cluster.publish(bars)
        with psycopg.connect(admin, autocommit=True) as conn:
            # Keep cutting the engine's connections while it works through the bars.
            while not cluster.drained():
                assert engine.poll() is None, cluster.logs[0].read_text()[-3000:]
                assert time.monotonic() < deadline, "the engine did not finish under the terminations"
                rows = conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    (dbname,),
                ).fetchall()
                terminated += sum(1 for (ok,) in rows if ok)
                time.sleep(0.15)  # the fault's own rhythm, not a wait for a state
        assert engine.poll() is None  # recovered without a restart
    finally:
        cluster.stop()
    log = cluster.logs[0].read_text()
    status, events = stored(db)
    db.dispose()
    figures = {
        "bars": len(bars),
        "connections_terminated": terminated,
        "store_retries_logged": log.count("engine.store_retry"),
        **compare(expected, status, events),
        "wall_s": round(time.monotonic() - started, 2),
    }
    print("FAULT pg_terminate", json.dumps(figures))
    assert terminated > 0 and figures["store_retries_logged"] > 0  # the fault did hit writes
    assert engine.returncode == 0, log[-3000:]
    assert figures["lost"] == figures["extra"] == figures["duplicated_events"] == 0
    assert status == expected
    verify = cluster.ledger_verify()
    assert verify.returncode == 0, verify.stdout + verify.stderr
