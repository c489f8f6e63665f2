"""`tradesignals backtest`: the files and their columns, byte-identical reruns, one-line refusals."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tradesignals.cli import app
from tradesignals.config import load_settings
from tradesignals.demo_model import ensure_demo_model
from tradesignals.domain.market import Timeframe

runner = CliRunner()


@pytest.fixture(scope="module")
def data(
    tmp_path_factory: pytest.TempPathFactory, sim_daily_csv: Callable[[Path, int, int, int], Path]
) -> Path:
    return sim_daily_csv(tmp_path_factory.mktemp("data") / "sim.csv", 6, 7, 400)


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TS_MODEL", "rule")


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["backtest", *args])
    return result.exit_code, result.output


def test_files_columns_and_byte_identical_reruns(data: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        code, output = _run("--data", str(data), "--profile", "aggressive", "--out", str(out))
        assert code == 0, output
    for name in ("trades.csv", "equity.csv", "summary.json", "report.html"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    page = (a / "report.html").read_text()
    assert page.count("<svg") == 5 and "Monthly returns" in page
    assert "http" not in page and "<script" not in page and "<link" not in page  # opens offline
    with (a / "trades.csv").open() as f:
        trades = list(csv.DictReader(f))
    assert list(trades[0]) == [
        "symbol", "direction", "signal_id", "decided_at", "entry_time", "entry_price", "exit_time",
        "exit_price", "quantity", "fees", "pnl", "return_pct", "r", "exit_reason",
    ]  # fmt: skip
    assert len(trades) > 20
    with (a / "equity.csv").open() as f:
        equity = list(csv.DictReader(f))
    assert list(equity[0]) == ["timestamp", "equity", "cash", "exposure", "benchmark"]
    summary = json.loads((a / "summary.json").read_text())
    # final equity = starting cash + the sum of the trades' net P/L (end of data closed the rest)
    assert float(equity[-1]["equity"]) == pytest.approx(
        100_000 + sum(float(t["pnl"]) for t in trades), abs=1e-6
    )
    assert summary["trades"] == len(trades)
    assert 0 <= summary["max_drawdown"] < 1
    assert summary["signals"]["taken"] == len(trades) + summary["signals"]["not_filled"]
    for t in trades:  # pnl is net: direction × quantity × (exit − entry) − fees, prices with slippage
        sign = 1 if t["direction"] == "long" else -1
        gross = sign * float(t["quantity"]) * (float(t["exit_price"]) - float(t["entry_price"]))
        assert float(t["pnl"]) == pytest.approx(gross - float(t["fees"]), abs=1e-6)
        assert t["entry_time"] > t["decided_at"]  # filled after the decision, never at its close


def test_fees_and_slippage_replace_the_defaults(data: Path, tmp_path: Path) -> None:
    code, output = _run("--data", str(data), "--profile", "aggressive", "--fees-bps", "0", "--slippage-bps", "0",
                        "--out", str(tmp_path / "free"))  # fmt: skip
    assert code == 0, output
    summary = json.loads((tmp_path / "free" / "summary.json").read_text())
    assert summary["settings"]["costs"]["equity"] | {"borrow_bp_per_day": 0} == {
        "commission_bp": 0.0, "half_spread_bp": 0.0, "slippage_bp": 0.0, "borrow_bp_per_day": 0,
    }  # fmt: skip
    with (tmp_path / "free" / "trades.csv").open() as f:
        longs = [t for t in csv.DictReader(f) if t["direction"] == "long"]
    assert longs and all(float(t["fees"]) == pytest.approx(0.0, abs=1e-9) for t in longs)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--profile", "bold"], "unknown profile"),
        (["--from", "2030-01-01"], "empty date range"),
        (["--from", "2024-06-01", "--to", "2024-01-01"], "empty date range"),
        (["--from", "yesterday"], "YYYY-MM-DD"),
        (["--benchmark", "NOPE"], "--benchmark"),
        (["--cash", "-5"], "cash"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    data: Path, tmp_path: Path, args: list[str], words: str
) -> None:
    out = tmp_path / "out"
    code, output = _run("--data", str(data), *args, "--out", str(out))
    assert code == 2
    assert words in output and len(output.strip().splitlines()) == 1, output
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_a_model_is_refused_inside_its_training_range_unless_allowed(data: Path, tmp_path: Path) -> None:
    trainer = load_settings(home=tmp_path / "trained", sim_symbols=6)
    assert ensure_demo_model(trainer, Timeframe.D1, "swing", bars_per_symbol=300)
    models = tmp_path / "trained" / "models"
    code, output = _run("--data", str(data), "--model", str(models), "--out", str(tmp_path / "o"))
    assert code == 2 and "--allow-in-sample" in output and len(output.strip().splitlines()) == 1, output
    code, output = _run(
        "--data", str(data), "--model", str(models), "--allow-in-sample", "--out", str(tmp_path / "o")
    )
    assert code == 0, output
    assert output.splitlines()[0].startswith("IN-SAMPLE")
    assert "<p class=warn>IN-SAMPLE" in (tmp_path / "o" / "report.html").read_text()
    summary_text = (tmp_path / "o" / "summary.json").read_text()
    assert summary_text.splitlines()[1].lstrip().startswith('"warning": "IN-SAMPLE')
    assert json.loads(summary_text)["model"]["version"].startswith("swing/")
