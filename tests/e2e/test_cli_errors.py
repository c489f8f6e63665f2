"""What a person sees when they get something wrong: one line, a non-zero exit, nothing written."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tradesignals import __version__

EXE = [sys.executable, "-m", "tradesignals.cli"]


def run(
    args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=60, env=full_env, cwd=cwd)


def test_version() -> None:
    r = run(["--version"])
    assert r.returncode == 0 and r.stdout.strip() == f"tradesignals {__version__}"


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["demo", "--feed", "replay:/no/such/file.csv"], {}, "/no/such/file.csv"),
        (["demo", "--feed", "kraken"], {}, "unknown feed 'kraken'"),
        (["demo"], {"TS_BUS_PARTITIONS": "zero"}, "TS_BUS_PARTITIONS"),
        (["serve"], {"TS_LOG_LEVEL": "loud"}, "TS_LOG_LEVEL"),
        (["demo"], {"TS_EARNINGS_FILE": "/no/earnings.csv"}, "TS_EARNINGS_FILE"),
        (["demo", "--speed", "-1"], {}, "TS_SPEED"),
        (["serve", "--role", "gateway"], {}, "unknown role 'gateway'"),
        (["demo"], {"TS_LLM_PROVIDER": "anthropic"}, "TS_LLM_PROVIDER=anthropic needs TS_ANTHROPIC_API_KEY"),
        (
            ["demo"],
            {"TS_LLM_PROVIDER": "openai", "TS_OPENAI_API_KEY": "s3cr3t", "TS_LLM_TIMEOUT_S": "-1"},
            "TS_LLM_TIMEOUT_S",
        ),
        (
            ["serve", "--role", "api", "--port", "0"],
            {"TS_REDIS_URL": "redis://127.0.0.1:1/0", "TS_DATABASE_URL": "sqlite:///{tmp}/x.db"},
            "redis://127.0.0.1:1/0",
        ),
        (
            ["serve", "--role", "api", "--port", "0"],
            {"TS_DATABASE_URL": ""},
            "server mode needs TS_DATABASE_URL",
        ),
        (
            ["serve", "--role", "api", "--port", "0"],
            {"TS_REDIS_URL": "redis://ops:s3cr3t@127.0.0.1:1/0", "TS_DATABASE_URL": "sqlite:///{tmp}/x.db"},
            "redis://ops:***@127.0.0.1:1/0",
        ),
    ],
)
def test_bad_input_is_one_line_and_nonzero(
    args: list[str], env: dict[str, str], expected: str, tmp_path: Path
) -> None:
    env = {k: v.replace("{tmp}", str(tmp_path)) for k, v in env.items()}
    r = run(args, {"TS_HOME": str(tmp_path / "home"), **env}, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error:") and expected in lines[0]
    assert "Traceback" not in r.stderr and "s3cr3t" not in r.stderr + r.stdout


def test_busy_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run(["demo", "--port", str(port)], {"TS_HOME": str(tmp_path)})
    assert r.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in r.stderr
    assert not (tmp_path / "tradesignals.db").exists(), "a failed start must not leave state behind"


def test_replay_file_with_missing_columns(tmp_path: Path) -> None:
    bad = tmp_path / "prices.csv"
    bad.write_text("when,price\n2024-01-02,10\n")
    r = run(["demo", "--feed", f"replay:{bad}"], {"TS_HOME": str(tmp_path / "home")})
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "prices.csv" in lines[0] and "missing" in lines[0]
    assert not (tmp_path / "home").exists()
