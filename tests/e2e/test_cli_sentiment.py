"""The `tradesignals sentiment` contract: one JSON line per text, --eval figures, one-line errors."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXE = [sys.executable, "-m", "tradesignals.cli", "sentiment"]
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


def run(args: list[str], home: Path, data: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TS_DATA_DIR"}
    env["TS_HOME"] = str(home)
    if data is not None:
        env["TS_DATA_DIR"] = str(data)
    return subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=120, env=env)


def write_csv(path: Path, rows: list[tuple[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["text", "label"])
    w.writerows(rows * 2)
    data = buf.getvalue().encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    write_csv(root / "data" / "twitter_financial_news_sentiment" / "sent_train.csv.gz", TRAIN)
    r = run(["--train", "--data", str(root / "data"), "--json"], root / "home")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n_train"] == 18
    return root / "home"


def test_text_prints_one_json_line(home: Path) -> None:
    r = run(["Shares soar after the beat"], home)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert out["label"] == "positive" and set(out) == {"label", "score"}
    assert 0 < out["score"] <= 1


def test_eval_json_contract_with_words_and_integers(home: Path, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "e.csv", [("stock plunges", "negative"), ("shares soar", 1), ("files report", "2")]
    )
    r = run(["--eval", str(path), "--json"], home)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert {"n", "accuracy", "macro_f1", "per_class", "latency_ms_p50"} <= set(report)
    assert report["n"] == 6
    assert set(report["per_class"]) == {"negative", "neutral", "positive"}
    assert report["per_class"]["negative"]["support"] == 2


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "give exactly one of TEXT or --eval"),
        (["   "], "TEXT is empty"),
        (["--eval", "/no/such.csv"], "/no/such.csv: no such file"),
        (["x", "--eval", "/no/such.csv"], "give exactly one"),
    ],
)
def test_errors_are_one_line(home: Path, args: list[str], expected: str) -> None:
    r = run(args, home)
    assert r.returncode == 2
    assert expected in r.stderr and "Traceback" not in r.stderr
    assert r.stdout == ""


def test_bad_eval_file_is_one_line(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "b.csv"
    bad.write_text("text,label\nhello,maybe\n")
    r = run(["--eval", str(bad)], home)
    assert r.returncode == 2 and "b.csv line 2: unknown label 'maybe'" in r.stderr


def test_no_model_and_no_data_says_how(tmp_path: Path) -> None:
    r = run(["anything"], tmp_path / "empty")
    assert r.returncode == 2
    assert "no sentiment model at" in r.stderr and "--train" in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 3  # one message (rich may wrap long lines)
