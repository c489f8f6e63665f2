"""`tradesignals demo --news replay:PATH`: the news file is scored and served by GET /api/news."""

from __future__ import annotations

import csv
import gzip
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

TRAIN = [
    ("shares soar after earnings beat", 1),
    ("stock jumps on record revenue", 1),
    ("upgrade lifts shares", 1),
    ("shares plunge after earnings miss", 0),
    ("stock falls on weak revenue", 0),
    ("downgrade sinks shares", 0),
    ("company to present at conference", 2),
    ("annual meeting scheduled", 2),
    ("files quarterly report", 2),
]
NEWS = """,title,date,stock
0,Agilent Shares Soar After Q2 EPS Beat,2020-05-21 16:30:00-04:00,A
1,Credit Suisse Downgrades Advance Auto Parts to Neutral,2020-05-22 09:00:00-04:00,AAP
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def data_dir(root: Path) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["text", "label"])
    w.writerows(TRAIN * 2)
    path = root / "data" / "twitter_financial_news_sentiment" / "sent_train.csv.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(gzip.compress(buf.getvalue().encode()))
    return root / "data"


@pytest.mark.timeout(300)
def test_demo_serves_replayed_news_with_labels(tmp_path: Path) -> None:
    """Start-up trains the demo model (and here a tiny sentiment model): allow for a loaded machine."""
    news = tmp_path / "news.csv"
    news.write_text(NEWS)
    port = free_port()
    env = {**os.environ, "TS_HOME": str(tmp_path / "var"), "TS_DATA_DIR": str(data_dir(tmp_path))}
    proc = subprocess.Popen(
        [
            *[sys.executable, "-m", "tradesignals.cli", "demo"],
            "--port",
            str(port),
            "--symbols",
            "3",
            "--news",
            f"replay:{news}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 240
        items: list[dict[str, object]] = []
        while time.monotonic() < deadline and len(items) < 1:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/news", params={"symbol": "AAP"}, timeout=2)
                items = r.json()["items"]
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        assert len(items) == 1, "no news served within 240 s"
        assert items[0]["catalysts"] == ["analyst"]
        assert items[0]["sentiment"]["label"] in {"negative", "neutral", "positive"}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.timeout(300)
def test_demo_news_errors_are_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "TS_HOME": str(tmp_path / "var")}
    env.pop("TS_DATA_DIR", None)
    for arg, expected in (
        ("kafka:x", "unknown news feed 'kafka:x'"),
        ("replay:/no/news.csv", "does not exist"),
    ):
        r = subprocess.run(
            [sys.executable, "-m", "tradesignals.cli", "demo", "--port", str(free_port()), "--news", arg],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert r.returncode != 0 and expected in r.stderr and "Traceback" not in r.stderr
    news = tmp_path / "n.csv"
    news.write_text(NEWS)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "tradesignals.cli",
            "demo",
            "--port",
            str(free_port()),
            "--news",
            f"replay:{news}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert r.returncode != 0 and "no sentiment model" in r.stderr and "Traceback" not in r.stderr
