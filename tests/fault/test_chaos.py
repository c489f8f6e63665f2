"""A bounded chaos run: random faults for ``TS_FAULT_CHAOS_S`` seconds (120 by default), seeded.

Two `serve --role engine` processes and one `serve --role ingest` replaying a file (paced over the
run) on a test Redis (AOF, `appendfsync everysec`) and a fresh PostgreSQL database. Every 3–8 s
(seeded: ``TS_FAULT_CHAOS_SEED``) one fault, drawn at random:

- ``engine_kill``: `kill -9` of one engine, a replacement started at once (what a supervisor does;
  a replacement that starts while Redis is down refuses to start, exit 2, and is started again);
- ``pg_terminate``: every backend of the database terminated, three times 150 ms apart;
- ``redis_restart``: Redis stopped (SHUTDOWN, AOF written) and started again on the same files.

After each fault the run waits (bounded) for the first signal stored after it: its recovery time.
At the end the replay finishes, every bar is handled, and the invariants are checked: every signal
of the clean single-process run is stored once with its final status — lost 0, duplicated 0 — no
bar is twice on the bus, and `ledger verify` passes. The figures are printed as one JSON line.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
import redis
import sqlalchemy as sa
from faultkit import (
    PARTITIONS,
    Cluster,
    compare,
    free_port,
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

CHAOS_S = float(os.environ.get("TS_FAULT_CHAOS_S", "120"))
SEED = int(os.environ.get("TS_FAULT_CHAOS_SEED", "20261207"))
KINDS = ("engine_kill", "pg_terminate", "redis_restart")


@pytest.mark.timeout(CHAOS_S + 360)  # bounded by its own deadlines; the suite's 120 s default is too short
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_chaos_run_loses_and_duplicates_no_signal(fresh_pg_url: str, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    started = time.monotonic()
    days = max(200, int(CHAOS_S * 4))  # ~4 bar-days a second: bars flow for the whole run
    bars = replay_bars(per_partition=2, days=days, seed=SEED % 1000)
    expected = reference(validated(bars), tmp_path / "reference")
    replay = write_replay_csv(bars, tmp_path / "replay.csv")
    db = make_engine(fresh_pg_url)
    migrate(db)
    dbname = fresh_pg_url.rsplit("/", 1)[1]
    admin = fresh_pg_url.replace("postgresql+psycopg://", "postgresql://", 1).rsplit("/", 1)[0] + "/postgres"
    port, data = free_port(), tmp_path / "redis"
    data.mkdir()
    server = start_redis(port, data)
    cluster = Cluster(fresh_pg_url, f"redis://127.0.0.1:{port}/0", "tschaos", tmp_path)
    cluster.env["TS_BUS_RETRY_S"] = "120"
    deadline = started + CHAOS_S + 240

    def signal_count() -> int:
        with db.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM signals")).scalar_one())

    engines = [cluster.start_engine("engine-0"), cluster.start_engine("engine-1")]
    faults: list[dict[str, object]] = []
    ingest: subprocess.Popen[str] | None = None
    try:
        wait_until(
            "both engines to own half the partitions",
            lambda: sorted(cluster.holders().values()) == [PARTITIONS // 2] * 2,
            deadline,
            engines,
        )
        pace = days * 86_400 / (CHAOS_S * 0.9)
        ingest = cluster.start_role(
            "ingest", "ingest", "--feed", f"replay:{replay}", env={"TS_SPEED": str(pace)}
        )
        wait_until("the first signals", lambda: signal_count() > 0, deadline, [*engines, ingest])
        chaos_end = time.monotonic() + CHAOS_S
        spawned = 2
        refused_starts = 0

        def supervise() -> None:
            """A replacement that started while Redis was down refused to start (exit 2, one line):
            start it again, as a supervisor would. Any other exit is a failure."""
            nonlocal spawned, refused_starts
            for i, e in enumerate(engines):
                if e.poll() is not None:
                    assert e.returncode == 2, [log.read_text()[-2000:] for log in cluster.logs]
                    engines[i] = cluster.start_engine(f"engine-{spawned}")
                    spawned += 1
                    refused_starts += 1

        while time.monotonic() < chaos_end:
            time.sleep(rng.uniform(3.0, 8.0))  # the chaos's own rhythm, not a wait for a state
            supervise()
            live = [e for e in engines if e.poll() is None]
            kind = rng.choice(KINDS)
            before = signal_count()
            at = time.monotonic()
            fault: dict[str, object] = {"kind": kind, "at_s": round(at - started, 1)}
            if kind == "engine_kill":
                victim = rng.choice(live)
                victim.send_signal(signal.SIGKILL)
                victim.wait(timeout=10)
                engines.remove(victim)
                engines.append(cluster.start_engine(f"engine-{spawned}"))
                spawned += 1
            elif kind == "pg_terminate":
                with psycopg.connect(admin, autocommit=True) as conn:
                    n = 0
                    for _ in range(3):
                        rows = conn.execute(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE datname = %s AND pid <> pg_backend_pid()",
                            (dbname,),
                        ).fetchall()
                        n += sum(1 for (ok,) in rows if ok)
                        time.sleep(0.15)
                fault["terminated"] = n
            else:
                redis.Redis(port=port).shutdown(nosave=False)
                server.wait(timeout=20)
                cluster.r.close()
                server = start_redis(port, data)
                cluster.r = redis.Redis(port=port, decode_responses=True)
            # Recovery: from the fault to the first signal stored after it (bounded; the replay may
            # have no signal due for a while, so None means "none within 60 s", not a failure).
            recovered = None
            while time.monotonic() - at < 60:
                if signal_count() > before:
                    recovered = round(time.monotonic() - at, 2)
                    break
                if ingest.poll() is not None and cluster.drained():
                    break
                time.sleep(0.1)
            fault["recovery_s"] = recovered
            faults.append(fault)
        while not (ingest.poll() is not None and cluster.drained()):
            supervise()
            assert time.monotonic() < deadline, "timed out waiting for the replay to be handled"
            time.sleep(0.1)
        copies = cluster.bar_copies()
    finally:
        cluster.stop()
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=20)
    status, events = stored(db)
    db.dispose()
    result = compare(expected, status, events)
    recoveries = [f["recovery_s"] for f in faults if f["recovery_s"] is not None]
    figures = {
        "seed": SEED,
        "chaos_s": CHAOS_S,
        "bars": len(bars),
        "faults": len(faults),
        "by_kind": {k: sum(1 for f in faults if f["kind"] == k) for k in KINDS},
        "recovery_s_max": max(recoveries, default=None),
        "lost": result["lost"],
        "duplicated": result["extra"] + result["duplicated_events"],
        **result,
        "bars_twice_on_bus": sum(1 for n in copies.values() if n > 1),
        "engine_starts_refused_redis_down": refused_starts,
        "fault_log": faults,
        "wall_s": round(time.monotonic() - started, 2),
    }
    print("FAULT chaos", json.dumps(figures))
    assert ingest is not None and ingest.returncode == 0, cluster.logs[2].read_text()[-3000:]
    assert len(faults) >= 3 and len({f["kind"] for f in faults}) >= 2
    assert figures["lost"] == 0 and figures["duplicated"] == 0
    assert figures["bars_twice_on_bus"] == 0 and sum(copies.values()) == len(validated(bars))
    assert status == expected
    verify = cluster.ledger_verify()
    assert verify.returncode == 0, verify.stdout + verify.stderr
