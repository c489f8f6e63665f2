"""Walk-forward: every signal comes from the model of its period, and no model saw its period's prices."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tradesignals.backtest.outputs import write_outputs
from tradesignals.backtest.run import BacktestError, BacktestSpec, run_backtest
from tradesignals.backtest.walk_forward import PeriodError, parse_period, period_starts
from tradesignals.cli import app
from tradesignals.config import load_settings
from tradesignals.domain.market import to_ns
from tradesignals.models.registry import ModelRegistry
from tradesignals.models.train import TrainConfig

SMALL = TrainConfig(n_splits=3, max_rounds=40, early_stopping_rounds=10, fallback_rounds=20)


@pytest.fixture(scope="module")
def data(
    tmp_path_factory: pytest.TempPathFactory, sim_daily_csv: Callable[[Path, int, int, int], Path]
) -> Path:
    return sim_daily_csv(tmp_path_factory.mktemp("wf") / "sim.csv", 5, 11, 400)


def test_each_signal_is_decided_by_its_periods_model_which_never_saw_the_period(
    data: Path, tmp_path: Path
) -> None:
    settings = load_settings(home=tmp_path / "home", model="auto")
    spec = BacktestSpec(
        data=data, profile="aggressive", retrain_every="6M", train_window="1Y", train_config=SMALL
    )
    result = run_backtest(settings, spec)
    wf = result.walk_forward
    assert wf is not None and len(wf.periods) == 2
    first_bar = pd.Timestamp(pd.read_csv(data)["date"].min(), tz="UTC")
    start = wf.periods[0].start_ns
    assert start == (first_bar + pd.DateOffset(years=1)).value  # no --from: one train window in
    assert wf.periods[1].start_ns == (pd.Timestamp(start, tz="UTC") + pd.DateOffset(months=6)).value
    by_version = {p.version: p for p in wf.periods}
    assert len(by_version) == 2
    for p in wf.periods:
        # Trained on the train window before the period, on labels that closed before it.
        assert p.training_label_end_ns < p.start_ns
        assert p.training_first_ns >= (pd.Timestamp(p.start_ns, tz="UTC") - pd.DateOffset(years=1)).value
    used: set[str] = set()
    for pub in result.run.signals:
        s = pub.signal
        p = by_version[s.model_version]  # no other model decided anything in the window
        decided = to_ns(s.decided_at or s.created_at)
        assert p.start_ns <= decided <= p.end_ns, (s.id, s.model_version)
        assert p.training_label_end_ns < decided
        used.add(s.model_version)
    assert used == set(by_version)  # the second model did take over
    summary = result.summary["model"]
    assert isinstance(summary, dict) and [q["model_sha256"] for q in summary["periods"]] == [
        p.sha256 for p in wf.periods
    ]

    out = write_outputs(result, tmp_path / "out")
    registry = ModelRegistry(out / "models")
    assert sorted(f"swing:{v}" for v in registry.list_versions("swing")) == sorted(by_version)
    assert json.loads((out / "summary.json").read_text())["model"]["walk_forward"] == {
        "retrain_every": "6M",
        "train_window": "1Y",
    }


def test_period_strings() -> None:
    assert parse_period("3M", "--retrain-every") == pd.DateOffset(months=3)
    assert parse_period("1y", "--train-window") == pd.DateOffset(years=1)
    assert parse_period("2W", "x") == pd.DateOffset(weeks=2)
    for bad in ("3", "M", "0M", "3 months", "-1Y", "1.5Y", "3X", ""):
        with pytest.raises(PeriodError, match="expected a whole number of days, weeks, months or years"):
            parse_period(bad, "--retrain-every")
    day = 86_400 * 10**9
    assert period_starts(0, 10 * day, pd.DateOffset(days=4)) == [0, 4 * day, 8 * day]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--retrain-every", "3X", "--train-window", "3Y"], "--retrain-every '3X': expected a whole number"),
        (
            ["--retrain-every", "3M", "--train-window", "three years"],
            "--train-window 'three years': expected",
        ),
        (["--retrain-every", "3M"], "walk-forward needs both --retrain-every and --train-window"),
        (["--retrain-every", "3M", "--train-window", "9Y"], "nothing is left to trade"),
    ],
)
def test_bad_walk_forward_options_are_one_line_refusals(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.setenv("TS_HOME", str(tmp_path / "home"))
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["backtest", "--data", str(data), "--out", str(out), *args])
    assert res.exit_code != 0 and message in res.output
    assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output
    assert not out.exists()


def test_walk_forward_and_a_given_model_exclude_each_other(data: Path, tmp_path: Path) -> None:
    spec = BacktestSpec(data=data, retrain_every="3M", train_window="1Y", model_dir=tmp_path)
    with pytest.raises(BacktestError, match="give one or the other"):
        run_backtest(load_settings(home=tmp_path / "home"), spec)
