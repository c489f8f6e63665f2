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
