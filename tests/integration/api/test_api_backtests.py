"""`/api/backtests`: the results the CLI wrote under TS_HOME, served read-only; no id escapes the folder."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tradesignals.api.app import create_app
from tradesignals.cli import app as cli
from tradesignals.domain.market import Timeframe
from tradesignals.marketdata.feeds.simulator import SimulatorFeed
from tradesignals.wiring import Services


@pytest.fixture
def result_id(services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """One backtest written by the CLI with no --out: it lands in TS_HOME/backtests/<id>."""
    feed = SimulatorFeed(4, seed=3, speed=float("inf"), timeframe=Timeframe.D1, emit="bars")
    rows = [
        (
            pd.Timestamp(b.ts, tz="UTC").strftime("%Y-%m-%d"),
            b.symbol,
            b.open,
            b.high,
            b.low,
            b.close,
            b.volume,
        )
        for b in feed.history(300)
    ]
    data = tmp_path / "sim bars.csv"
    pd.DataFrame(rows, columns=["date", "symbol", "open", "high", "low", "close", "volume"]).to_csv(
        data, index=False
    )
    monkeypatch.setenv("TS_HOME", str(services.settings.home))
    monkeypatch.setenv("TS_MODEL", "rule")
    res = CliRunner().invoke(cli, ["backtest", "--data", str(data), "--profile", "aggressive"])
    assert res.exit_code == 0, res.output
    (folder,) = (services.settings.home / "backtests").iterdir()
    assert folder.name.endswith("-sim-bars") and str(folder) in res.output
    return folder.name


@pytest.fixture
def api(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services, roles=frozenset({"api"}))) as c:
        yield c


def test_list_summary_report_equity_trades(api: TestClient, result_id: str, services: Services) -> None:
    folder = services.settings.backtests_dir / result_id
    summary = json.loads((folder / "summary.json").read_text())
    listed = api.get("/api/backtests").json()
    assert [i["id"] for i in listed] == [result_id]
    assert listed[0]["trades"] == summary["trades"] and listed[0]["profile"] == "aggressive"
    assert listed[0]["max_drawdown"] == summary["max_drawdown"] and listed[0]["data"] == "sim bars.csv"

    r = api.get(f"/api/backtests/{result_id}")
    assert r.status_code == 200 and r.content == (folder / "summary.json").read_bytes()

    r = api.get(f"/api/backtests/{result_id}/report")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert (
        r.text == (folder / "report.html").read_text()
        and "default-src 'none'" in r.headers["content-security-policy"]
    )

    points = api.get(f"/api/backtests/{result_id}/equity").json()
    with (folder / "equity.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(points) == len(rows) and points[-1]["equity"] == float(rows[-1]["equity"])
    assert points[-1]["equity"] == pytest.approx(summary["final_equity"])

    r = api.get(f"/api/backtests/{result_id}/trades.csv")
    assert r.status_code == 200 and r.content == (folder / "trades.csv").read_bytes()


def test_unknown_and_hostile_ids_never_reach_a_file(
    api: TestClient, services: Services, tmp_path: Path
) -> None:
    home = services.settings.home
    secret = home / "secret"
    secret.mkdir()
    (secret / "summary.json").write_text('{"token": "SECRET"}')
    (secret / "report.html").write_text("SECRET")
    root = services.settings.backtests_dir
    assert api.get("/api/backtests").json() == []  # no folder yet: an empty list, not an error
    root.mkdir()
    (root / "escape").symlink_to(secret, target_is_directory=True)  # resolves outside: refused
    (root / ".hidden-tmp").mkdir()  # a half-written CLI folder is hidden
    (root / ".hidden-tmp" / "summary.json").write_text("{}")

    assert api.get("/api/backtests/nope").status_code == 404
    assert api.get("/api/backtests/nope").json() == {"detail": "no backtest 'nope'"}
    assert api.get("/api/backtests/nope/report").status_code == 404
    assert api.get("/api/backtests/nope/equity").status_code == 404
    for path in (
        "/api/backtests/escape",
        "/api/backtests/escape/report",
        "/api/backtests/..%2Fsecret",
        "/api/backtests/..%2Fsecret/report",
        "/api/backtests/%2E%2E",
        "/api/backtests/.hidden-tmp",
        "/api/backtests/..",
        "/api/backtests/a%00b",
    ):
        r = api.get(path)
        assert r.status_code in (404, 422), (path, r.status_code)
        assert "SECRET" not in r.text
    assert api.get("/api/backtests").json() == []
