from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

EXE = [sys.executable, "-m", "tradesignals.cli"]


def write_csv(path: Path) -> None:
    rows = ["Date,Ticker,Open,High,Low,Close,Volume"]
    for d in range(1, 11):
        rows.append(f"2024-01-{d:02d},AAA,10,11,9,10.5,100")
        rows.append(f"2024-01-{d:02d},BBB,20,21,19,20.5,200")
    rows.append("2024-01-11,AAA,10,9,11,10,100")  # high < low
    rows.append("2024-01-12,AAA,nan,11,9,10,100")  # missing open
    with gzip.open(path, "wt") as f:
        f.write("\n".join(rows) + "\n")


def run(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TS_HOME": str(home), "TS_MODE": "embedded"}
    return subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=120, env=env)


def test_ingest_reports_counts_and_is_idempotent(tmp_path: Path) -> None:
    src = tmp_path / "prices.csv.gz"
    write_csv(src)
    first = run(["ingest", str(src), "--json"], tmp_path / "var")
    assert first.returncode == 0, first.stderr
    s1 = json.loads(first.stdout)
    assert s1["rows_read"] == 22 and s1["inserted"] == 20 and s1["symbols"] == 2
    assert s1["rejected"] == {"not_finite": 1, "high_below_low": 1}
    assert s1["timeframe"] == "1d" and s1["first_ts"] == "2024-01-01" and s1["last_ts"] == "2024-01-10"
    second = json.loads(run(["ingest", str(src), "--json"], tmp_path / "var").stdout)
    assert second["inserted"] == 0 and second["updated"] == 0 and second["unchanged"] == 20
    table = run(["ingest", str(src)], tmp_path / "var")
    assert table.returncode == 0 and "rejected: high_below_low" in table.stdout


def test_ingest_bad_input_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("when,price\n2024-01-02,10\n")
    for args, expected in (
        (["ingest", str(tmp_path / "none.csv")], "no such file"),
        (["ingest", str(bad)], "missing column"),
        (["ingest", str(bad), "--timeframe", "7m"], "unknown timeframe '7m'"),
    ):
        r = run(args, tmp_path / "var")
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert r.returncode == 2 and len(lines) == 1 and expected in lines[0], r.stderr


def test_ingest_and_features_state_the_price_basis_and_flags(tmp_path: Path) -> None:
    src = tmp_path / "yahoo.csv"
    lines = ["Date,Symbol,Open,High,Low,Close,Adj Close,Volume"]
    for d in range(1, 31):
        lines.append(f"2024-01-{d:02d},AAA,10,11,9,10,5,100")  # adjusted = half the raw price
    src.write_text("\n".join(lines) + "\n")
    adjusted = json.loads(run(["ingest", str(src), "--json"], tmp_path / "a").stdout)
    assert adjusted["prices"] == "adjusted" and adjusted["flagged"] == {} and adjusted["rows_flagged"] == 0
    raw = run(["ingest", str(src), "--prices", "raw"], tmp_path / "b")
    assert raw.returncode == 0 and "prices" in raw.stdout and "raw" in raw.stdout
    bad = run(["ingest", str(src), "--prices", "split"], tmp_path / "c")
    assert bad.returncode == 2 and "expected adjusted or raw" in bad.stderr
    feats = run(["features", str(src), "--out", str(tmp_path / "f.parquet"), "--json"], tmp_path / "d")
    assert feats.returncode == 0, feats.stderr
    assert json.loads(feats.stdout)["prices"] == "adjusted"


def test_ingest_refuses_naive_exchange_local_intraday_times_naming_tz(tmp_path: Path) -> None:
    src = tmp_path / "spx_1m.csv"
    lines = ["Date,Open,High,Low,Close,Volume"]
    for day in ("2019-11-05", "2019-11-06"):
        for minute in range(390):
            h, m = divmod(9 * 60 + 30 + minute, 60)
            lines.append(f"{day} {h:02d}:{m:02d},3000,3001,2999,3000,10")
    src.write_text("\n".join(lines) + "\n")
    r = run(["ingest", str(src)], tmp_path / "var")
    err = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2 and len(err) == 1 and "--tz America/New_York" in err[0], r.stderr
    ok = run(["ingest", str(src), "--tz", "America/New_York", "--json"], tmp_path / "var")
    assert ok.returncode == 0 and json.loads(ok.stdout)["rows_loaded"] == 780
