from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tradesignals.domain.signals import Direction, Signal, SignalType, new_signal_id
from tradesignals.storage.db import make_engine, migrate
from tradesignals.storage.repositories import SqlSignalRepository


def run(home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TS_HOME": str(home), "TS_MODE": "embedded"}
    return subprocess.run(
        [sys.executable, "-m", "tradesignals.cli", "ledger", "verify"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_ledger_verify_passes_then_names_the_tampered_entry(tmp_path: Path) -> None:
    db = tmp_path / "tradesignals.db"
    engine = make_engine(f"sqlite:///{db}")
    migrate(engine)
    repo = SqlSignalRepository(engine)
    now = datetime(2026, 1, 5, 15, tzinfo=UTC)
    for i in range(5):
        repo.add(
            Signal(
                id=new_signal_id(),
                symbol="AAPL",
                type=SignalType.SWING,
                direction=Direction.LONG,
                entry=100.0 + i,
                stop=95.0,
                targets=(110.0 + i,),
                confidence=0.6,
                created_at=now + timedelta(minutes=i),
                expires_at=now + timedelta(days=3),
                model_version="m",
            )
        )
    engine.dispose()
    ok = run(tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "ledger ok: 5 entries" in ok.stdout

    con = sqlite3.connect(db)
    triggers = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='trigger'")]
    for name in triggers:
        con.execute(f'DROP TRIGGER "{name}"')
    con.execute("UPDATE signal_events SET data = replace(data, '103.0', '93.0') WHERE seq = 4")
    con.commit()
    con.close()
    bad = run(tmp_path)
    assert bad.returncode == 1
    assert "ledger broken at seq 4" in bad.stdout + bad.stderr


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TS_HOME": str(home), "TS_MODE": "embedded"}
    return subprocess.run(
        [sys.executable, "-m", "tradesignals.cli", "ledger", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_checkpoint_save_then_verify_known_then_a_dropped_tail(tmp_path: Path) -> None:
    import asyncio

    from tradesignals.config import load_settings
    from tradesignals.engine.checkpointer import Checkpointer
    from tradesignals.ledger_cli import checkpoint_command
    from tradesignals.wiring import build_services

    services = asyncio.run(build_services(load_settings(home=tmp_path)))
    assert services.signer is not None
    now = datetime(2026, 1, 5, 15, tzinfo=UTC)
    for i in range(4):
        services.signals.add(
            Signal(
                id=new_signal_id(),
                symbol="AAPL",
                type=SignalType.SWING,
                direction=Direction.LONG,
                entry=100.0,
                stop=95.0,
                targets=(110.0,),
                confidence=0.6,
                created_at=now + timedelta(minutes=i),
                expires_at=now + timedelta(days=3),
                model_version="m",
            )
        )
        if i == 2:
            Checkpointer(services.checkpoints, services.signer).checkpoint()
    asyncio.run(services.close())

    known = tmp_path / "seen.jsonl"
    saved = cli(tmp_path, "checkpoint", "--save", str(known))
    assert saved.returncode == 0 and saved.stdout.startswith("saved checkpoint 1 (seq 3, head ")
    lines: list[str] = []
    assert checkpoint_command(known, load_settings(home=tmp_path), echo=lines.append) == 0
    assert lines[0].startswith("already saved checkpoint 1") and len(known.read_text().splitlines()) == 1

    ok = cli(tmp_path, "verify", "--known", str(known))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ledger ok: 4 entries" in ok.stdout and "extends all 1 saved checkpoints" in ok.stdout

    con = sqlite3.connect(tmp_path / "tradesignals.db")
    for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall():
        con.execute(f'DROP TRIGGER "{name}"')
    con.execute("DELETE FROM signal_events WHERE seq >= 3")
    con.execute("DELETE FROM ledger_checkpoints")
    con.commit()
    con.close()
    bad = cli(tmp_path, "verify", "--known", str(known))
    assert bad.returncode == 1
    assert bad.stdout.count("\n") == 1 and bad.stdout.startswith("ledger contradicts checkpoint 1: ")
    assert "Traceback" not in bad.stderr


def test_verify_failures_to_read_are_one_line(tmp_path: Path) -> None:
    """In-process (the CLI's exit code and line are these functions'), one case through the CLI."""
    from tradesignals.config import load_settings
    from tradesignals.ledger_cli import checkpoint_command, verify_command

    def run_verify(**kw: object) -> tuple[int, list[str]]:
        lines: list[str] = []
        return verify_command(echo=lines.append, **kw), lines  # type: ignore[arg-type]

    code, lines = run_verify(remote="http://127.0.0.1:1", known=tmp_path / "none")
    assert code == 2 and lines[0].startswith("ledger verify failed: cannot read ")
    code, lines = run_verify(remote="ftp://x")
    assert code == 2 and "is not an http:// or https:// address" in lines[0]
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text('{"number": 1}\n')
    code, lines = run_verify(settings=load_settings(home=tmp_path), known=garbage)
    assert code == 2 and f"{garbage} line 1: not a saved checkpoint" in lines[0]
    out: list[str] = []
    assert checkpoint_command(tmp_path / "x.jsonl", load_settings(home=tmp_path), echo=out.append) == 2
    assert out[0].startswith("ledger checkpoint failed: no database at")

    unreachable = cli(tmp_path, "verify", "--remote", "http://127.0.0.1:1")
    assert unreachable.returncode == 2 and unreachable.stdout.count("\n") == 1
    assert unreachable.stdout.startswith("ledger verify failed: cannot reach http://127.0.0.1:1/api/ledger/")
    assert "Traceback" not in unreachable.stderr
