"""``/api/history/summary`` figures, printed as one JSON object.

For each size (10,000 and 100,000 closed signals, SQLite, the embedded default):

* ``before`` — the code before the running summaries: every close read and every figure recomputed
  per request (``history.summary_from_scratch``), timed in process, p50/p99 per request; with the
  0007 index (its query no longer quadratic) and, at the smaller size, once without it (the plan
  the old code had: ``before_without_index_s``, one request).
* ``after`` — ``SummaryCache.summary`` in process (``cold_s``: the first call, which reads every
  close once; then p50/p99 per request, unfiltered and with a symbol filter), and over HTTP through
  a real server (the API role under uvicorn in its own process): p50/p99 per request, one caller.
* ``under_load`` — 50 parallel summary callers for a few seconds while ``/api/health`` is polled:
  the health statuses seen (all must be 200), health p50/p99, and the summary requests served.

The closes are built fast: entries hashed with the repository's recipe (``domain.ledger.Chain``) and
bulk-inserted; 50 symbols, both types, two models, outcomes of every kind over two years.

    .venv/bin/python bench/history_summary.py [--sizes 10000,100000] [--callers 50] [--load-s 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa


def build_closes(db_url: str, closes: int, seed: int = 7) -> None:
    from tradesignals.domain.ledger import Chain
    from tradesignals.domain.outcomes import Outcome, OutcomeKind
    from tradesignals.domain.signals import Direction, Signal, SignalType, new_signal_id
    from tradesignals.storage.db import make_engine, migrate
    from tradesignals.storage.repositories import json_safe, signal_data
    from tradesignals.storage.tables import SignalEventRow, SignalRow

    rng = random.Random(seed)
    engine = make_engine(db_url)
    migrate(engine)
    chain = Chain()
    t0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    step = timedelta(days=730) / closes
    signals: list[dict[str, object]] = []
    events: list[dict[str, object]] = []

    def flush() -> None:
        with engine.begin() as conn:
            if signals:
                conn.execute(sa.insert(SignalRow), signals)
            conn.execute(sa.insert(SignalEventRow), events)
        signals.clear()
        events.clear()

    for i in range(closes):
        created = t0 + step * i
        s = Signal(
            id=new_signal_id(int(created.timestamp() * 1e9) + i),
            symbol=f"S{i % 50:02d}",
            type=SignalType.SWING if i % 3 else SignalType.DAY,
            direction=Direction.LONG,
            entry=100.0,
            stop=95.0,
            targets=(105.0, 110.0),
            confidence=rng.uniform(0.15, 0.6),
            created_at=created,
            expires_at=created + timedelta(days=5),
            model_version="bench-1" if i % 4 else "bench-2",
            decided_at=created,
        )
        net_r = None if rng.random() < 0.1 else rng.uniform(-1.3, 2.5)
        kind = (
            OutcomeKind.NOT_FILLED
            if net_r is None
            else OutcomeKind.TARGET
            if net_r > 0.8
            else OutcomeKind.STOP
            if net_r < -0.8
            else OutcomeKind.EXPIRED
        )
        gross = None if net_r is None else net_r + 0.1
        closed_at = created + timedelta(hours=rng.randint(1, 100))
        out = Outcome(
            signal_id=s.id,
            symbol=s.symbol,
            outcome=kind,
            target_index=0 if kind is OutcomeKind.TARGET else None,
            decided_at=created,
            filled_at=None if net_r is None else created,
            fill_price=None if net_r is None else 100.0,
            first_price=94.0 if net_r is None else None,
            exit_price=None if gross is None else 100.0 + 5 * gross,
            gross_pnl_pct=None if gross is None else 5 * gross,
            costs_pct=None if net_r is None else 0.5,
            net_pnl_pct=None if net_r is None else 5 * net_r,
            gross_r=gross,
            net_r=net_r,
            mfe_pct=None if gross is None else max(0.0, 5 * gross),
            mae_pct=None if gross is None else min(0.0, 5 * gross),
            holding_seconds=(closed_at - created).total_seconds(),
            closed_at=closed_at,
        )
        row = {**signal_data(s), "created_at": s.created_at, "expires_at": s.expires_at}
        row["decided_at"] = s.decided_at
        row["status"] = out.status.value
        signals.append(row)
        for ev_kind, at, data in (
            ("created", created, signal_data(s)),
            ("closed", closed_at, json_safe(out.to_event_data())),
        ):
            e = chain.append(s.id, ev_kind, at, data)
            events.append(
                {"seq": e.seq, "signal_id": s.id, "kind": ev_kind, "at": at, "data": data,
                 "prev_hash": e.prev_hash, "hash": e.hash}
            )  # fmt: skip
        if len(events) >= 10_000:
            flush()
    if events:
        flush()
    engine.dispose()


def pct(times: list[float]) -> dict[str, float]:
    """p50/p99 (and n) of ``times`` in seconds, printed in milliseconds."""
    times = sorted(times)
    return {
        "p50_ms": round(statistics.median(times) * 1000, 3),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))] * 1000, 3),
        "n": len(times),
    }


def timed(fn: Any, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def serve(home: str, port: int) -> None:
    """The API role alone over the bench database (run in a child process)."""
    import uvicorn

    from tradesignals.api.app import create_app
    from tradesignals.config import load_settings
    from tradesignals.wiring import build_services

    services = asyncio.run(build_services(load_settings(home=Path(home), log_level="warning")))
    uvicorn.run(
        create_app(services, roles=frozenset({"api"})), host="127.0.0.1", port=port, log_level="warning"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def load(url: str, callers: int, seconds: float) -> dict[str, Any]:
    """``callers`` loops on the summary while health is polled every 50 ms."""
    import httpx

    stop = time.monotonic() + seconds
    served: list[float] = []
    summary_status: dict[int, int] = {}
    health_times: list[float] = []
    health_status: dict[str, int] = {}
    limits = httpx.Limits(max_connections=callers + 5, max_keepalive_connections=callers + 5)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def caller() -> None:
            while time.monotonic() < stop:
                t = time.perf_counter()
                r = await client.get("/api/history/summary")
                served.append(time.perf_counter() - t)
                summary_status[r.status_code] = summary_status.get(r.status_code, 0) + 1

        async def health() -> None:
            while time.monotonic() < stop:
                t = time.perf_counter()
                try:
                    r = await client.get("/api/health", timeout=10)
                    key = str(r.status_code)
                except httpx.HTTPError as err:
                    key = type(err).__name__
                health_times.append(time.perf_counter() - t)
                health_status[key] = health_status.get(key, 0) + 1
                await asyncio.sleep(0.05)

        await asyncio.gather(health(), *(caller() for _ in range(callers)))
    return {
        "callers": callers,
        "seconds": seconds,
        "health_status": health_status,
        "health": pct(health_times),
        "summary_status": {str(k): v for k, v in summary_status.items()},
        "summary": pct(served),
        "summary_per_s": round(len(served) / seconds, 1),
    }


def run_size(closes: int, callers: int, load_s: float, old_reps: int) -> dict[str, Any]:
    import httpx

    from tradesignals.api.routes.history import summary_from_scratch
    from tradesignals.engine.summary_cache import SummaryCache, SummaryFilter
    from tradesignals.storage.db import make_engine
    from tradesignals.storage.repositories import SqlSignalRepository

    out: dict[str, Any] = {"closes": closes}
    with tempfile.TemporaryDirectory(prefix="ts-bench-summary-") as tmp:
        home = Path(tmp)
        db_url = f"sqlite:///{home / 'tradesignals.db'}"
        t = time.perf_counter()
        build_closes(db_url, closes)
        out["build_s"] = round(time.perf_counter() - t, 1)
        engine = make_engine(db_url)
        repo = SqlSignalRepository(engine)

        reference = summary_from_scratch(repo)
        out["before"] = pct(timed(lambda: summary_from_scratch(repo), old_reps))
        cache = SummaryCache(repo)
        t = time.perf_counter()
        first = cache.summary()
        out["after_cold_s"] = round(time.perf_counter() - t, 3)
        assert first == reference, "running summary differs from the one from scratch"
        out["after"] = pct(timed(cache.summary, 200))
        aapl = SummaryFilter(symbol="S07")
        cache.summary(aapl)
        out["after_symbol_filter"] = pct(timed(lambda: cache.summary(aapl), 200))
        if closes <= 10_000:
            with engine.begin() as conn:
                conn.exec_driver_sql("DROP INDEX ix_signal_events_signal_id_kind_seq")
            t = time.perf_counter()
            summary_from_scratch(repo)
            out["before_without_index_s"] = round(time.perf_counter() - t, 2)
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    "CREATE INDEX ix_signal_events_signal_id_kind_seq ON signal_events (signal_id, kind, seq)"
                )
        engine.dispose()

        port = free_port()
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(home), str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                try:
                    httpx.get(f"{url}/api/health", timeout=2)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or child.poll() is not None:
                        raise SystemExit("the bench server did not start") from None
                    time.sleep(0.2)
            with httpx.Client(base_url=url, timeout=600) as client:
                t = time.perf_counter()
                assert client.get("/api/history/summary").status_code == 200
                out["http_cold_s"] = round(time.perf_counter() - t, 3)
                out["http"] = pct(timed(lambda: client.get("/api/history/summary").raise_for_status(), 200))
            out["under_load"] = asyncio.run(load(url, callers, load_s))
        finally:
            child.terminate()
            child.wait(10)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--callers", type=int, default=50)
    parser.add_argument("--load-s", type=float, default=5.0)
    parser.add_argument("--old-reps", type=int, default=5, help="Requests timed on the old path.")
    parser.add_argument("--serve", nargs=2, metavar=("HOME", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return

    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    out: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "database": "sqlite",
        "sizes": [run_size(int(n), args.callers, args.load_s, args.old_reps) for n in args.sizes.split(",")],
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
