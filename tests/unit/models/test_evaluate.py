"""Evaluation scores only what the model never trained on, beside the baselines; and the train /
evaluate commands refuse bad input in one line."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tradesignals.features.catalog import FeatureSetMismatch
from tradesignals.marketdata.calendar import calendar_for, utc_date_ns
from tradesignals.models.commands import (
    EXIT_BAD_INPUT,
    EXIT_NOTHING,
    EXIT_OK,
    evaluate_command,
    train_command,
)
from tradesignals.models.dataset import build_dataset, load_bars
from tradesignals.models.evaluate import EvaluationError, InsideTrainingPeriod, evaluate, training_cut_ns
from tradesignals.models.registry import ModelRegistry
from tradesignals.models.train import TrainConfig, TrainProgress, train_dataset


def planted_csv(path: Path, n_symbols: int, end: tuple[int, int, int], seed: int, prefix: str = "P") -> Path:
    """Daily bars (the S&P file's columns) whose drift follows the sign of the last week's return."""
    cal = calendar_for("SYN")
    ts = np.array([s.label for s in cal.sessions_between(utc_date_ns(2015, 1, 1), utc_date_ns(*end))])
    n = len(ts)
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n_symbols):
        sigma = 0.01 + 0.01 * rng.random()
        eps = rng.standard_normal(n)
        r = np.zeros(n)
        for t in range(n):
            r[t] = 0.3 * sigma * np.sign(r[max(0, t - 5) : t].sum()) + sigma * eps[t]
        close = 50.0 * np.exp(np.cumsum(r))
        prev = np.r_[close[0], close[:-1]]
        open_ = prev * np.exp(0.2 * sigma * rng.standard_normal(n))
        frames.append(
            pd.DataFrame(
                {
                    "date": pd.to_datetime(ts, utc=True).strftime("%Y-%m-%d"),
                    "open": open_,
                    "high": np.maximum(open_, close) * np.exp(0.5 * sigma * np.abs(rng.standard_normal(n))),
                    "low": np.minimum(open_, close) * np.exp(-0.5 * sigma * np.abs(rng.standard_normal(n))),
                    "close": close,
                    "volume": rng.lognormal(13, 0.3, n).round(),
                    "Name": f"{prefix}{k:02d}",
                }
            )
        )
    pd.concat(frames, ignore_index=True).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return planted_csv(tmp_path_factory.mktemp("data") / "planted.csv", 12, (2017, 9, 30), seed=8)


@pytest.fixture(scope="module")
def model_dir(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models")
    lines: list[str] = []
    steps: list[TrainProgress] = []
    code = train_command(
        data,
        out,
        until="2017-01-01",
        echo=lines.append,
        progress=steps.append,
        config=TrainConfig(num_threads=1),
    )
    assert code == EXIT_OK, lines
    assert lines[0].startswith("saved swing/") and "5 folds, raw prices" in lines[0]  # no Adj Close
    assert len(steps) == 6
    return out


@pytest.fixture(scope="module")
def report(model_dir: Path, data: Path) -> dict[str, Any]:
    return evaluate(model_dir, data)


def test_only_rows_after_the_training_range_are_scored(
    model_dir: Path, data: Path, report: dict[str, Any]
) -> None:
    meta = ModelRegistry(model_dir).metadata("swing")
    last = int(meta.metrics["training"]["last_t_end_ns"])
    ds = build_dataset(load_bars(data))
    inside = int((ds.ts <= last).sum())
    assert report["skipped"]["inside_training_range"] == inside > 0
    assert report["n"] == len(ds) - inside > 1000
    assert report["rows_built"] == len(ds)
    assert report["scored"]["after_training_end"] == report["n"]
    assert pd.Timestamp(report["scored"]["first"]).value > last
    assert report["model"]["version"] == meta.version


def test_the_planted_signal_beats_both_baselines_on_the_same_rows(report: dict[str, Any]) -> None:
    assert report["auc"] > 0.6
    iv = report["intervals"]
    assert iv["auc"]["lo"] > 0.55 and iv["auc"]["lo"] <= report["auc"] <= iv["auc"]["hi"]
    for key in ("always_long", "momentum_20"):
        diff = iv["baselines"][key]["log_loss_diff"]
        assert diff["estimate"] == pytest.approx(report["log_loss"] - report["baselines"][key]["log_loss"])
        assert diff["hi"] < 0  # better than the baseline, beyond the noise of the dates drawn
    base = report["baselines"]
    assert set(base) == {"always_long", "momentum_20"}
    for b in base.values():
        assert b["n"] == report["n"] and b["base_rate"] == report["base_rate"]
        assert b["log_loss"] > report["log_loss"]
    assert base["always_long"]["auc"] == pytest.approx(0.5)  # one constant: no ranking at all
    for key in ("n", "base_rate", "auc", "log_loss", "brier", "ece", "precision_at_threshold"):
        assert key in report
    assert len(report["hit_rate_by_decile"]) == 10
    assert set(report["by_year"]) == {"2017"}
    json.dumps(report, allow_nan=False)  # JSON-ready as it stands


def test_baselines_use_training_statistics_not_the_evaluated_rows(
    model_dir: Path, report: dict[str, Any]
) -> None:
    stats = ModelRegistry(model_dir).metadata("swing").metrics["training"]["baselines"]
    assert report["baselines"]["always_long"]["mean_p"] == pytest.approx(stats["base_rate"]["long"])
    momentum_values = {stats["with_trend"]["long"], stats["against_trend"]["long"]}
    deciles = {v for v in report["baselines"]["momentum_20"]["mean_p_by_decile"] if v is not None}
    assert min(deciles) >= min(momentum_values) - 1e-12 and max(deciles) <= max(momentum_values) + 1e-12


def test_in_period_rows_of_unseen_symbols_are_not_scored_by_default(model_dir: Path, tmp_path: Path) -> None:
    # New symbols over 2015-2017: their 2015-2016 rows lie in the training period (other symbols,
    # same dates): not scored by default, whatever the symbol.
    other = planted_csv(tmp_path / "other.csv", 3, (2017, 9, 30), seed=21, prefix="Q")
    ds = build_dataset(load_bars(other))
    last = int(ModelRegistry(model_dir).metadata("swing").metrics["training"]["last_t_end_ns"])
    out = evaluate(model_dir, other)
    assert out["n"] == int((ds.ts > last).sum()) > 0
    assert out["skipped"]["inside_training_range"] == int((ds.ts <= last).sum()) > 0
    assert out["scored"]["of_symbols_not_trained_on"] == out["n"]  # after the cut they count
    assert "in_period_unseen_symbols" not in out


def test_the_flag_scores_unseen_symbols_in_period_separately_with_a_warning(
    model_dir: Path, data: Path, tmp_path: Path
) -> None:
    frame = pd.read_csv(data)
    other = pd.read_csv(planted_csv(tmp_path / "q.csv", 3, (2017, 9, 30), seed=21, prefix="Q"))
    # A share-class twin of a trained symbol: P00's prices under the ticker P00A (name rule and
    # identical returns), and an explicit-suffix twin under P01.B.
    twin = frame[frame["Name"] == "P00"].assign(Name="P00A")
    explicit = frame[frame["Name"] == "P01"].assign(Name="P01.B")
    mixed = tmp_path / "mixed.csv"
    pd.concat([frame, other, twin, explicit], ignore_index=True).to_csv(mixed, index=False)
    plain = evaluate(model_dir, mixed)
    flagged = evaluate(model_dir, mixed, include_unseen_symbols_in_period=True)
    extra = flagged["in_period_unseen_symbols"]
    # The honest section is the same rows with or without the flag.
    assert flagged["n"] == plain["n"] and flagged["log_loss"] == plain["log_loss"]
    assert "training period" in extra["warning"]
    assert extra["symbols"] == ["Q00", "Q01", "Q02"]
    assert {(t["symbol"], t["twin_of"]) for t in extra["twins"]} == {("P00A", "P00"), ("P01.B", "P01")}
    ds = build_dataset(load_bars(mixed))
    last = int(ModelRegistry(model_dir).metadata("swing").metrics["training"]["last_t_end_ns"])
    symbol = ds.frame["symbol"].astype(str).to_numpy()
    inside = ds.ts <= last
    assert extra["n"] == int((inside & np.char.startswith(symbol.astype(str), "Q")).sum()) > 0
    assert extra["rows_of_twins"] == int((inside & np.isin(symbol, ["P00A", "P01.B"])).sum()) > 0
    assert flagged["skipped"]["share_class_twins_in_period"] == extra["rows_of_twins"]
    assert set(extra["baselines"]) == {"always_long", "momentum_20"} and "intervals" in extra
    json.dumps(flagged, allow_nan=False)

    lines: list[str] = []
    errors: list[str] = []
    args = {"echo": lines.append, "err": errors.append, "include_unseen_symbols_in_period": True}
    assert evaluate_command(model_dir, mixed, **args) == EXIT_OK  # type: ignore[arg-type]
    assert len(errors) == 1 and errors[0].startswith("warning: ") and "reported separately" in errors[0]
    assert any(line.startswith("WARNING, reported apart") for line in lines)


def test_a_two_direction_model_is_rebuilt_and_reported_per_direction(data: Path, tmp_path: Path) -> None:
    both = build_dataset(load_bars(data), directions=("long", "short"))
    result = train_dataset(
        both, tmp_path, until="2017-01-01", config=TrainConfig(num_threads=1, max_rounds=100)
    )
    assert result.scorer.feature_names[-1] == "direction"
    out = evaluate(tmp_path, data)
    assert out["model"]["directions"] == ["long", "short"]
    longs, shorts = out["by_direction"]["long"], out["by_direction"]["short"]
    # Not equal counts: a long and a short decided on one bar are refused a fill on opposite gaps.
    assert longs["n"] + shorts["n"] == out["n"] and min(longs["n"], shorts["n"]) > 500
    # Each direction's constant baseline is its own training base rate.
    stats = result.metrics["training"]["baselines"]["base_rate"]
    assert stats["long"] != stats["short"]
    assert longs["always_long"]["auc"] == pytest.approx(0.5) and shorts["always_long"][
        "auc"
    ] == pytest.approx(0.5)
    assert out["auc"] > 0.6


def test_a_feature_set_mismatch_is_refused_in_one_line(model_dir: Path, data: Path, tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    good = ModelRegistry(model_dir)
    loaded = good.load("swing")
    meta = loaded.metadata
    bogus = {**meta.feature_set, "fingerprint": "0" * 64}
    registry.save(
        "swing",
        loaded.scorer,
        feature_set=bogus,
        training_range=meta.training_range,
        symbols=meta.symbols,
        signal_type=meta.signal_type,
        metrics=meta.metrics,
    )
    with pytest.raises(FeatureSetMismatch, match="feature set mismatch"):
        evaluate(tmp_path / "models", data)
    lines: list[str] = []
    assert evaluate_command(tmp_path / "models", data, echo=lines.append) == EXIT_BAD_INPUT
    assert len(lines) == 1 and lines[0].startswith("error: feature set mismatch")


def test_evaluate_command_prints_json_and_accepts_a_models_own_directory(model_dir: Path, data: Path) -> None:
    lines: list[str] = []
    assert evaluate_command(model_dir / "swing", data, as_json=True, echo=lines.append) == EXIT_OK
    out = json.loads(lines[0])
    assert out["n"] > 1000 and out["baselines"]["momentum_20"]["n"] == out["n"]
    assert out["prices"] == "raw"
    text: list[str] = []
    assert evaluate_command(model_dir, data, echo=text.append) == EXIT_OK
    assert any(line.startswith("always long") for line in text)


def test_evaluate_on_data_wholly_inside_the_training_range_says_so(
    model_dir: Path, data: Path, tmp_path: Path
) -> None:
    frame = pd.read_csv(data)
    early = tmp_path / "early.csv"
    frame[frame["date"] < "2016-06-30"].to_csv(early, index=False)
    with pytest.raises(InsideTrainingPeriod, match="inside the model's training period"):
        evaluate(model_dir, early)
    # Even with the flag and symbols the model never saw: nothing after the cut, nothing to judge.
    other = planted_csv(tmp_path / "other.csv", 2, (2016, 6, 30), seed=3, prefix="Q")
    for path, flag in ((early, False), (other, True)):
        lines: list[str] = []
        code = evaluate_command(model_dir, path, echo=lines.append, include_unseen_symbols_in_period=flag)
        assert code == EXIT_NOTHING
        assert len(lines) == 1 and lines[0].startswith("error: all ") and "training period" in lines[0]


def test_evaluate_refuses_a_missing_or_ambiguous_model(model_dir: Path, data: Path, tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match="no such model directory"):
        evaluate(tmp_path / "nowhere", data)
    with pytest.raises(EvaluationError, match="no trained model here"):
        evaluate(tmp_path, data)
    with pytest.raises(EvaluationError, match="no model named 'day'"):
        evaluate(model_dir, data, name="day")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"data": "missing.csv"}, "missing.csv: no such file"),
        ({"signal_type": "weekly"}, "unknown signal type 'weekly'"),
        ({"until": "2017-13-45"}, "bad date '2017-13-45'"),
        ({"until": "2014-01-01"}, "no row's label window ends before 2014-01-01"),
        ({"data": "tiny.csv"}, "no warm, labelled rows"),
        ({"signal_type": "day"}, "day models are trained on intraday bars; these are 1d"),
        ({"prices": "adjusted"}, "no adjusted close column (Adj Close); use --prices raw"),
        ({"prices": "split"}, "unknown --prices 'split'; expected adjusted or raw"),
    ],
)
def test_train_command_refuses_bad_input_in_one_line(
    data: Path, tmp_path: Path, kwargs: dict[str, str], message: str
) -> None:
    pd.read_csv(data).head(30).to_csv(tmp_path / "tiny.csv", index=False)
    args = {"data": str(data), "signal_type": "swing", "until": None, **kwargs}
    if args["data"] in ("missing.csv", "tiny.csv"):
        args["data"] = str(tmp_path / str(args["data"]))
    lines: list[str] = []
    code = train_command(
        args["data"],
        tmp_path / "out",
        signal_type=str(args["signal_type"]),
        until=args["until"],
        echo=lines.append,
        prices=args.get("prices"),
    )
    assert code == EXIT_BAD_INPUT
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert message in lines[0]
    assert not (tmp_path / "out" / "swing").exists()


def test_online_recalibration_is_reported_beside_the_batch_model(model_dir: Path, data: Path) -> None:
    out = evaluate(model_dir, data, online=True)
    online = out["online"]
    assert online["without"]["ece_equal_mass"] == pytest.approx(out["ece_equal_mass"])
    assert online["without"]["log_loss"] == pytest.approx(out["log_loss"])
    assert 0 < online["learned"] < out["n"]  # the last week's outcomes resolve after the data ends
    assert 0.0 <= online["mean_weight"] <= 0.2
    assert online["with"]["ece_equal_mass"] is not None
    lines: list[str] = []
    assert evaluate_command(model_dir, data, echo=lines.append, online=True) == EXIT_OK
    assert any(line.startswith("online recalibration (prequential") for line in lines)


def test_a_model_saved_without_last_t_end_falls_back_to_its_training_range(model_dir: Path) -> None:
    meta = ModelRegistry(model_dir).metadata("swing")
    training = {k: v for k, v in meta.metrics["training"].items() if k != "last_t_end_ns"}
    older = dataclasses.replace(meta, metrics={**meta.metrics, "training": training})
    assert training_cut_ns(older) == int(meta.metrics["training"]["last_t_end_ns"])
