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
