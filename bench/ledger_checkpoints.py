"""Ledger checkpoint figures, printed as one JSON object.

* ``checkpoint_ms`` — p50 (and mean, p90) of writing one checkpoint on an embedded SQLite ledger:
  take the ledger's write lock, read the head and the last checkpoint, sign (Ed25519), insert —
  what the engine pays every interval. ``sign_us``: the signature alone.
* ``remote_verify_s`` — a full ``ledger verify --remote`` of a 100,000-entry ledger (every entry
  unsealed, so every one is hashed) with its checkpoints: the server (the app's API role, uvicorn)
  runs in its own process on a loopback port, the verifier reads only the public API.
  ``local_verify_s``: the same audit reading the database directly.

The ledger is built fast: entries hashed with the repository's recipe (``domain.ledger.Chain``)
and bulk-inserted, 50,000 signals each created and closed.

    .venv/bin/python bench/ledger_checkpoints.py [--entries 100000] [--checkpoints 200]
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa


def build_ledger(db_url: str, entries: int) -> None:
    from tradesignals.domain.ledger import Chain
    from tradesignals.domain.signals import Direction, Signal, SignalStatus, SignalType, new_signal_id
    from tradesignals.storage.db import make_engine, migrate
    from tradesignals.storage.repositories import signal_data
    from tradesignals.storage.tables import SignalEventRow, SignalRow

    engine = make_engine(db_url)
    migrate(engine)
    chain = Chain()
    t0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    batch_signals: list[dict[str, object]] = []
    batch_events: list[dict[str, object]] = []

    def flush() -> None:
        with engine.begin() as conn:
            if batch_signals:
                conn.execute(sa.insert(SignalRow), batch_signals)
            conn.execute(sa.insert(SignalEventRow), batch_events)
        batch_signals.clear()
        batch_events.clear()

    for i in range(entries // 2):
        created = t0 + timedelta(minutes=i)
        s = Signal(
            id=new_signal_id(int(created.timestamp() * 1e9) + i),
            symbol=f"S{i % 500:03d}",
            type=SignalType.DAY,
            direction=Direction.LONG if i % 2 else Direction.SHORT,
            entry=100.0,
            stop=95.0 if i % 2 else 105.0,
            targets=(105.0, 110.0) if i % 2 else (95.0, 90.0),
            confidence=0.61,
            created_at=created,
            expires_at=created + timedelta(hours=6),
            model_version="bench-1",
            reasons=("trend", "volume"),
        )
        row = {**signal_data(s), "created_at": s.created_at, "expires_at": s.expires_at}
        row["status"] = SignalStatus.TARGET_HIT.value
        batch_signals.append(row)
        closed = {
            "outcome": "target",
            "target_index": 0,
            "exit_price": 105.0,
            "pnl_pct": 5.0,
            "r_multiple": 1.0,
        }
        for kind, at, data in (
            ("created", created, signal_data(s)),
            ("closed", created + timedelta(hours=1), closed),
        ):
            e = chain.append(s.id, kind, at, data)
            batch_events.append(
                {"seq": e.seq, "signal_id": s.id, "kind": kind, "at": at, "data": data,
                 "prev_hash": e.prev_hash, "hash": e.hash}
            )  # fmt: skip
        if len(batch_events) >= 10_000:
            flush()
    if batch_events:
        flush()
    engine.dispose()


def serve(home: str, port: int) -> None:
    """The API role alone over the bench database (run in a child process)."""
    import asyncio

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--checkpoints", type=int, default=200)
    parser.add_argument("--serve", nargs=2, metavar=("HOME", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return

    import logging

    import httpx
    import structlog

    # Only the JSON on stdout: the checkpointer logs every checkpoint at info.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    from tradesignals.config import load_settings
    from tradesignals.engine.checkpointer import Checkpointer
    from tradesignals.ledger_cli import audit_ledger, audit_remote
    from tradesignals.signing import load_or_create_signer
    from tradesignals.storage.checkpoints import SqlCheckpointRepository
    from tradesignals.storage.db import make_engine

    out: dict[str, object] = {"python": platform.python_version(), "machine": platform.machine()}
    with tempfile.TemporaryDirectory(prefix="ts-bench-cp-") as tmp:
        home = Path(tmp)
        db_url = f"sqlite:///{home / 'tradesignals.db'}"
        t = time.perf_counter()
        build_ledger(db_url, args.entries)
        out["build_ledger_s"] = round(time.perf_counter() - t, 2)

        signer, _ = load_or_create_signer(home / "ledger-key.pem")
        t = time.perf_counter()
        for _ in range(1000):
            signer.sign(b'{"at":"2026-01-05T15:00:00.000000Z","head_hash":"' + b"a" * 64 + b'"}')
        out["sign_us"] = round((time.perf_counter() - t) / 1000 * 1e6, 1)

        engine = make_engine(db_url)
        writer = Checkpointer(SqlCheckpointRepository(engine), signer)
        times = []
        for _ in range(args.checkpoints):
            t = time.perf_counter()
            writer.checkpoint()
            times.append((time.perf_counter() - t) * 1000)
        engine.dispose()
        times.sort()
        out["checkpoint_ms"] = {
            "p50": round(statistics.median(times), 3),
            "mean": round(statistics.fmean(times), 3),
            "p90": round(times[int(len(times) * 0.9)], 3),
            "n": len(times),
        }

        t = time.perf_counter()
        local = audit_ledger(load_settings(home=home))
        out["local_verify_s"] = round(time.perf_counter() - t, 2)
        assert local.ok and local.ledger.checked == args.entries, local.reason

        port = free_port()
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(home), str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(f"{url}/api/health", timeout=2)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or child.poll() is not None:
                        raise SystemExit("the bench server did not start") from None
                    time.sleep(0.2)
            t = time.perf_counter()
            remote = audit_remote(url)
            out["remote_verify_s"] = round(time.perf_counter() - t, 2)
            assert remote.ok and remote.ledger.checked == args.entries, remote.reason
            assert remote.ledger.sealed == 0 and remote.checkpoints == args.checkpoints
        finally:
            child.terminate()
            child.wait(30)
        out["entries"] = args.entries
        out["checkpoints_verified"] = args.checkpoints
    print(json.dumps(out))


if __name__ == "__main__":
    main()
