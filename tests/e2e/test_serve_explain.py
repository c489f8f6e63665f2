"""``serve --role explain`` as an operator runs it: its own process on real PostgreSQL and Redis,
an OpenAI-format model on 127.0.0.1, a signal on the bus → its explanation stored and published."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tradesignals.bus import topics
from tradesignals.bus.codec import decoder, encode
from tradesignals.bus.redis_streams import RedisStreamsBus
from tradesignals.domain.research import EXPLANATION, SignalText
from tradesignals.domain.signals import Direction, Signal, SignalType
from tradesignals.storage.db import make_engine, migrate
from tradesignals.storage.llm import SqlLlmStore
from tradesignals.storage.repositories import SqlSignalRepository

pytestmark = pytest.mark.slow

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "llm"))
from fake_llm import FakeLlm  # noqa: E402

KEY = "sk-e2e-NEVER-IN-LOGS-77"


@pytest.fixture
def database(pg_admin_url: str) -> Iterator[str]:
    import psycopg

    name = f"ts_explain_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_url, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = pg_admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    yield f"{base}/{name}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_explain_role_in_its_own_process(database: str, redis_url: str, tmp_path: Path) -> None:
    fake = FakeLlm()
    prefix = f"tsllm{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "TS_MODE": "server",
        "TS_DATABASE_URL": database,
        "TS_REDIS_URL": redis_url,
        "TS_BUS_PREFIX": prefix,
        "TS_HOME": str(tmp_path),
        "TS_LLM_PROVIDER": "openai",
        "TS_OPENAI_API_KEY": KEY,
        "TS_LLM_BASE_URL": fake.openai_url,
        "TS_LOG_LEVEL": "debug",
    }
    engine = make_engine(database)
    migrate(engine)
    now = datetime.now(UTC)
    sig = Signal(
        id=f"{int(now.timestamp() * 1000):012x}00000000aa",
        symbol="ACME",
        type=SignalType.SWING,
        direction=Direction.LONG,
        entry=100.0,
        stop=95.0,
        targets=(105.0,),
        confidence=0.6,
        created_at=now,
        expires_at=now + timedelta(days=3),
        model_version="t-1",
    )
    SqlSignalRepository(engine).add(sig)
    log = tmp_path / "explain.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradesignals.cli", "serve", "--role", "explain"],
        env=env,
        stderr=log.open("w"),
        stdout=subprocess.DEVNULL,
    )

    async def drive() -> SignalText | None:
        bus = RedisStreamsBus(redis_url, partitions=8, prefix=prefix)
        watcher = bus.consumer(topics.SIGNAL_RESEARCH, "e2e", "w", decoder(SignalText))
        await bus.publish(topics.SIGNALS, sig.symbol, encode(sig))
        got: SignalText | None = None
        deadline = time.monotonic() + 60
        while got is None and time.monotonic() < deadline and proc.poll() is None:
            batch = await watcher.fetch(10, wait=0.5)
            got = batch[0].value if batch else None
        await watcher.close()
        await bus.close()
        return got

    try:
        pushed = asyncio.run(drive())
        assert pushed is not None, log.read_text()[-2000:]
        assert pushed.kind == EXPLANATION and pushed.model == "gpt-4o-mini" and pushed.signal_id == sig.id
        assert SqlLlmStore(engine).latest(sig.id, EXPLANATION) == pushed
        assert len(fake.requests) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        fake.close()
        engine.dispose()
        import redis

        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
    text = log.read_text()
    assert code == 0, text[-2000:]
    assert "explain.start" in text and KEY not in text
