"""Server mode started while PostgreSQL or Redis is down: one line on stderr, exit 2, for every role.

"Down" is tried two ways: nothing listening (connection refused at once) and a listener that accepts
and never answers (a hung server or a black-holed port), which only a connect/read timeout ends.
Each role reaches both services before it writes anything, so a failed start leaves nothing behind.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

EXE = [sys.executable, "-m", "tradesignals.cli", "serve"]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never says a word."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield int(srv.getsockname()[1])
    stop.set()
    t.join(timeout=5)
    for c in held:
        c.close()
    srv.close()


def serve(role: str, env: dict[str, str], tmp: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    full = {**os.environ, "TS_MODE": "server", "TS_HOME": str(tmp / "home"), **env}
    args = [*EXE, "--role", role, "--port", "0", "--feed", "sim"]
    t0 = time.monotonic()
    r = subprocess.run(args, capture_output=True, text=True, timeout=90, env=full, cwd=tmp)
    return r, time.monotonic() - t0


def assert_one_line(r: subprocess.CompletedProcess[str], expected: str) -> None:
    assert r.returncode == 2, r.stderr[-2000:]
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr[-2000:]
    assert lines[0].startswith("error:") and expected in lines[0], lines[0]
    assert "Traceback" not in r.stderr and "s3cr3t" not in r.stderr + r.stdout


@pytest.mark.integration
@pytest.mark.parametrize("role", ["api", "engine", "ingest"])
def test_postgres_refusing_at_start_is_one_line_and_exit_2(role: str, redis_url: str, tmp_path: Path) -> None:
    r, _ = serve(
        role,
        {"TS_DATABASE_URL": "postgresql+psycopg://ops:s3cr3t@127.0.0.1:1/x", "TS_REDIS_URL": redis_url},
        tmp_path,
    )
    assert_one_line(r, "database: cannot reach PostgreSQL")
    assert not (tmp_path / "home").exists() or not any((tmp_path / "home").iterdir())


@pytest.mark.integration
@pytest.mark.parametrize("role", ["api", "engine", "ingest"])
def test_redis_refusing_at_start_is_one_line_and_exit_2(role: str, pg_url: str, tmp_path: Path) -> None:
    r, _ = serve(role, {"TS_DATABASE_URL": pg_url, "TS_REDIS_URL": "redis://:s3cr3t@127.0.0.1:1/0"}, tmp_path)
    assert_one_line(r, "bus: Redis at redis://:***@127.0.0.1:1/0 does not answer")


@pytest.mark.integration
def test_hung_redis_at_start_is_one_line_within_seconds(
    pg_url: str, silent_port: int, tmp_path: Path
) -> None:
    r, took = serve(
        "engine", {"TS_DATABASE_URL": pg_url, "TS_REDIS_URL": f"redis://127.0.0.1:{silent_port}/0"}, tmp_path
    )
    assert_one_line(r, f"redis://127.0.0.1:{silent_port}/0 does not answer")
    assert took < 45, f"a silent Redis held the start for {took:.0f} s"


@pytest.mark.integration
def test_hung_postgres_at_start_is_one_line_within_seconds(
    redis_url: str, silent_port: int, tmp_path: Path
) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{silent_port}/x"
    r, took = serve("engine", {"TS_DATABASE_URL": url, "TS_REDIS_URL": redis_url}, tmp_path)
    assert_one_line(r, "database: cannot reach PostgreSQL")
    assert took < 45, f"a silent PostgreSQL held the start for {took:.0f} s"
