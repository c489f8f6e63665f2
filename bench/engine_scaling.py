"""Engine processes scaling out on the S&P 500 daily replay, and recovery after each fault, as JSON.

Two parts (issue 15):

- ``scaling``: 1, 2 and 4 ``tradesignals serve --role engine`` processes (placeholder rule, server
  mode) share the 8 bar partitions over the local Redis and a fresh PostgreSQL database. Once every
  engine holds its fair share of leases, the last ``--bars`` bars of the S&P file are published at
  once; the clock runs from the first publish until the engine group has read and acked them all.
  Figures: bars/s and signals/s (signals stored), and the speed-up over one process. On a 2-core
  machine more than two processes compete for the same cores (and with Redis and PostgreSQL), so
  the figures say where it stops scaling.
- ``recovery``: a test Redis (AOF) started here, two engines and ``serve --role ingest`` replaying
  the same bars paced; then, one after the other, ``engine_kill`` (kill -9 of one engine, a
  replacement started), ``pg_terminate`` (every database backend terminated) and
  ``redis_restart`` (SHUTDOWN, start again). Each figure is the time from the fault to the first
  signal stored after it; for ``engine_kill`` also to the first signal on one of the victim's
  partitions (the take-over: lease, rebuild, first decision).

The process orchestration is the fault tests' kit (tests/fault/faultkit.py), reused as is.

    TS_DATA_DIR=../shared/data .venv/bin/python bench/engine_scaling.py [--bars 60000] [--engines 1,2,4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import redis
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fault"))
import faultkit  # the fault tests' kit (not a package)

from tradesignals.bus.base import partition_for
from tradesignals.domain.market import Bar
from tradesignals.marketdata.feeds.replay import ReplayFeed
from tradesignals.storage.db import make_engine, migrate

PG_ADMIN = os.environ.get("TS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("TS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def load_bars(path: Path, n: int) -> list[Bar]:
    async def read() -> list[Bar]:
        return [b async for b in ReplayFeed(path).bars()]

    bars = asyncio.run(read())
    return bars[-n:] if n else bars


@contextlib.contextmanager
def scratch_database() -> Any:
    name = f"ts_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}", name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def signal_ids(db: sa.Engine) -> dict[str, str]:
    with db.connect() as conn:
        return {str(i): str(s) for i, s in conn.execute(sa.text("SELECT id, symbol FROM signals"))}


def scaling(bars: list[Bar], engines: int, tmp: Path) -> dict[str, Any]:
    prefix = f"tsbench:{uuid.uuid4().hex[:8]}"
    with scratch_database() as (url, _name):
        db = make_engine(url)
        migrate(db)
        cluster = faultkit.Cluster(url, REDIS, prefix, tmp)
        procs = [cluster.start_engine(f"scale{engines}-{i}") for i in range(engines)]
        share = sorted(
            [
                faultkit.PARTITIONS // engines + (1 if i < faultkit.PARTITIONS % engines else 0)
                for i in range(engines)
            ]
        )
        try:
            faultkit.wait_until(
                f"{engines} engines to hold their share",
                lambda: sorted(cluster.holders().values()) == share,
                time.monotonic() + 180,
                procs,
            )
            t0 = time.monotonic()
            cluster.publish(bars)
            published_s = time.monotonic() - t0
            faultkit.wait_until("every bar handled", cluster.drained, time.monotonic() + 900, procs)
            seconds = time.monotonic() - t0
        finally:
            cluster.stop()
            client = redis.Redis.from_url(REDIS)
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()
        signals = len(signal_ids(db))
        db.dispose()
    return {
        "engines": engines,
        "bars": len(bars),
        "signals": signals,
        "publish_s": round(published_s, 2),
        "seconds": round(seconds, 2),
        "bars_per_s": round(len(bars) / seconds, 1),
        "signals_per_s": round(signals / seconds, 2),
    }


def recovery(bars: list[Bar], tmp: Path, pace_s: float) -> list[dict[str, Any]]:
    replay = faultkit.write_replay_csv(bars, tmp / "replay.csv")
    port, data = faultkit.free_port(), tmp / "redis"
    data.mkdir()
    server = faultkit.start_redis(port, data)
    out: list[dict[str, Any]] = []
    with scratch_database() as (url, dbname):
        db = make_engine(url)
        migrate(db)
        cluster = faultkit.Cluster(url, f"redis://127.0.0.1:{port}/0", "tsbench", tmp)
        cluster.env["TS_BUS_RETRY_S"] = "120"
        engines = [cluster.start_engine("rec-0"), cluster.start_engine("rec-1")]
        first, last = bars[0].ts, bars[-1].ts
        speed = (last - first) / 1e9 / pace_s
        ingest = None
        try:
            faultkit.wait_until(
                "two engines to hold four partitions each",
                lambda: sorted(cluster.holders().values()) == [4, 4],
                time.monotonic() + 180,
                engines,
            )
            ingest = cluster.start_role(
                "rec-ingest", "ingest", "--feed", f"replay:{replay}", env={"TS_SPEED": str(speed)}
            )
            faultkit.wait_until(
                "the first signals", lambda: bool(signal_ids(db)), time.monotonic() + 180, engines
            )
            admin = PG_ADMIN.rsplit("/", 1)[0] + "/postgres"
            for n, kind in enumerate(("engine_kill", "pg_terminate", "redis_restart")):
                time.sleep(4.0)  # the run's own rhythm between faults
                seen = set(signal_ids(db))
                at = time.monotonic()
                victim_parts: set[int] = set()
                if kind == "engine_kill":
                    victim = engines[0]
                    name = next(h for h in cluster.holders() if h.endswith(f"-{victim.pid}"))
                    victim_parts = {p for p, h in enumerate(cluster.r.mget(cluster.leases)) if h == name}
                    victim.send_signal(signal.SIGKILL)
                    victim.wait(timeout=10)
                    engines[0] = cluster.start_engine(f"rec-{2 + n}")
                elif kind == "pg_terminate":
                    with psycopg.connect(admin, autocommit=True) as conn:
                        conn.execute(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE datname = %s AND pid <> pg_backend_pid()",
                            (dbname,),
                        )
                else:
                    redis.Redis(port=port).shutdown(nosave=False)
                    server.wait(timeout=20)
                    cluster.r.close()
                    server = faultkit.start_redis(port, data)
                    cluster.r = redis.Redis(port=port, decode_responses=True)
                figure: dict[str, Any] = {"fault": kind, "first_signal_s": None}
                if victim_parts:
                    figure["victim_partitions"] = sorted(victim_parts)
                    figure["first_signal_on_victim_partitions_s"] = None
                while time.monotonic() - at < 60:
                    new = {i: s for i, s in signal_ids(db).items() if i not in seen}
                    took = round(time.monotonic() - at, 2)
                    if new and figure["first_signal_s"] is None:
                        figure["first_signal_s"] = took
                    on_victim = any(
                        partition_for(s, faultkit.PARTITIONS) in victim_parts for s in new.values()
                    )
                    if on_victim and figure["first_signal_on_victim_partitions_s"] is None:
                        figure["first_signal_on_victim_partitions_s"] = took
                    if figure["first_signal_s"] is not None and (
                        not victim_parts or figure["first_signal_on_victim_partitions_s"] is not None
                    ):
                        break
                    time.sleep(0.05)
                out.append(figure)
        finally:
            if ingest is not None and ingest.poll() is None:
                ingest.send_signal(signal.SIGINT)
            cluster.stop()
            if server.poll() is None:
                server.terminate()
                server.wait(timeout=20)
            db.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_dir = Path(os.environ.get("TS_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=data_dir / "sp500_daily_2013-2018.csv.gz")
    parser.add_argument("--bars", type=int, default=60_000, help="the last N bars of the file (0: all)")
    parser.add_argument("--engines", default="1,2,4")
    parser.add_argument(
        "--recovery-pace-s", type=float, default=60.0, help="wall seconds the paced replay lasts"
    )
    parser.add_argument("--no-recovery", action="store_true")
    args = parser.parse_args()
    t0 = time.monotonic()
    bars = load_bars(args.data, args.bars)
    load_before = os.getloadavg()[0]
    result: dict[str, Any] = {
        "bench": "engine_scaling",
        "data": args.data.name,
        "bars": len(bars),
        "symbols": len({b.symbol for b in bars}),
        "partitions": faultkit.PARTITIONS,
        "model": "rule (placeholder)",
        "cpus": os.cpu_count(),
        "load_avg_1m_at_start": round(load_before, 2),
        "python": platform.python_version(),
    }
    with tempfile.TemporaryDirectory(prefix="ts-bench-scaling-") as tmp:
        rows = []
        for n in (int(x) for x in args.engines.split(",")):
            folder = Path(tmp) / f"scale-{n}"
            folder.mkdir()
            rows.append(scaling(bars, n, folder))
        base = rows[0]["signals_per_s"]
        for row in rows:
            row["speedup"] = round(row["signals_per_s"] / base, 2) if base else None
        result["scaling"] = rows
        if not args.no_recovery:
            folder = Path(tmp) / "recovery"
            folder.mkdir()
            result["recovery"] = recovery(bars, folder, args.recovery_pace_s)
    result["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    result["wall_s"] = round(time.monotonic() - t0, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
