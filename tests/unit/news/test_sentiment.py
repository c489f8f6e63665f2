"""Sentiment model: the numpy scorer equals scikit-learn, persistence without pickle, labels, errors."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.sparse import hstack

from tradesignals.news.sentiment import (
    SentimentError,
    SentimentModel,
    evaluate,
    fit_sklearn,
    load_or_train,
    parse_label,
    preprocess,
    read_labelled,
    train,
)

POS = [
    "shares soar after earnings beat",
    "stock jumps on record revenue",
    "upgrade lifts shares higher",
    "profit surges, beats estimates",
    "rallies to record high",
    "raises guidance, stock climbs",
]
NEG = [
    "shares plunge after earnings miss",
    "stock falls on weak revenue",
    "downgrade sends shares lower",
    "profit drops, misses estimates",
    "slumps to record low",
    "cuts guidance, stock sinks",
]
NEU = [
    "company to present at conference",
    "annual meeting scheduled for may",
    "files quarterly report",
    "announces dividend date",
    "names new board member",
    "to report results on tuesday",
]


def write_training(tmp_path: Path, name: str = "sent_train.csv.gz") -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["text", "label"])
    for texts, label in ((NEG, 0), (POS, 1), (NEU, 2)):
        for t in texts:
            writer.writerows([[t, label], [f"$ABC {t} by 12.5%", label]])
    path = tmp_path / "twitter_financial_news_sentiment" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(buf.getvalue().encode()))
    return path


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[SentimentModel, Path]:
    path = write_training(tmp_path_factory.mktemp("sent"))
    return train(path), path


def test_preprocess_placeholders() -> None:
    assert preprocess("$AAPL up 12.5% https://t.co/x") == " ticker  up  0 %  url "


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("0", "negative"),
        ("1", "positive"),
        ("2", "neutral"),
        ("2.0", "neutral"),
        (" Positive ", "positive"),
        ("bearish", "negative"),
        ("neutral", "neutral"),
    ],
)
def test_parse_label(raw: str, want: str) -> None:
    assert parse_label(raw) == want


def test_parse_label_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="unknown label '3'"):
        parse_label("3")


def test_numpy_scorer_matches_sklearn(small: tuple[SentimentModel, Path]) -> None:
    _, path = small
    texts, labels = read_labelled(path)
    word, char, svm = fit_sklearn(texts, labels)
    model = train(path)
    probe = [*texts, "Totally unseen words here", "", "$XYZ soars 50% https://x.y/z", "a"]
    clean = [preprocess(t) for t in probe]
    expected = svm.decision_function(hstack([word.transform(clean), char.transform(clean)]).tocsr())
    got = np.array([model.decision(t) for t in probe])
    np.testing.assert_allclose(got, expected, atol=1e-5)  # float32 storage of the weights


def test_predictions_and_score_range(small: tuple[SentimentModel, Path]) -> None:
    model, _ = small
    up, down = model.predict("Shares soar after the beat"), model.predict("shares plunge on the miss")
    assert (up.label, down.label) == ("positive", "negative")
    assert 1 / 3 < up.score <= 1 and 1 / 3 < down.score <= 1
    assert set(up.as_dict()) == {"label", "score"}


def test_save_load_roundtrip_is_not_pickle(small: tuple[SentimentModel, Path], tmp_path: Path) -> None:
    model, _ = small
    out = tmp_path / "m" / "s.npz"
    model.save(out)
    loaded = SentimentModel.load(out)
    assert loaded.meta["n_train"] == 36 and len(loaded.meta["train_sha256"]) == 64
    for t in ["stock jumps", "files report", "profit drops"]:
        np.testing.assert_allclose(loaded.decision(t), model.decision(t), atol=1e-6)
    with np.load(out, allow_pickle=False) as z:  # loads with pickling disabled
        assert json.loads(str(z["header"]))["format"] == 1


def test_training_is_deterministic(small: tuple[SentimentModel, Path]) -> None:
    model, path = small
    again = train(path)
    np.testing.assert_array_equal(again.coef, model.coef)


def test_load_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(SentimentError, match=r"no sentiment model at .*--train"):
        SentimentModel.load(tmp_path / "none.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(SentimentError, match="not a sentiment model"):
        SentimentModel.load(junk)


def test_load_or_train_trains_once_from_data_dir(tmp_path: Path) -> None:
    write_training(tmp_path / "data")
    target = tmp_path / "home" / "s.npz"
    _, trained = load_or_train(target, tmp_path / "data")
    assert trained and target.is_file()
    _, trained = load_or_train(target, None)
    assert not trained
    with pytest.raises(SentimentError, match="no training data"):
        load_or_train(tmp_path / "other.npz", tmp_path / "nowhere")


def test_read_labelled_errors(tmp_path: Path) -> None:
    p = tmp_path / "e.csv"
    p.write_text("sentence,label\nx,1\n")
    with pytest.raises(SentimentError, match="needs columns text,label"):
        read_labelled(p)
    p.write_text("text,label\nx,1\ny,happy\n")
    with pytest.raises(SentimentError, match="line 3: unknown label 'happy'"):
        read_labelled(p)
    p.write_text("text,label\n")
    with pytest.raises(SentimentError, match="no rows"):
        read_labelled(p)


def test_evaluate_figures() -> None:
    report = evaluate(
        lambda t: t,
        ["positive", "negative", "neutral", "neutral"],
        ["positive", "neutral", "neutral", "neutral"],
    )
    assert report["n"] == 4 and report["accuracy"] == 0.75
    assert report["per_class"]["negative"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report["per_class"]["neutral"]["recall"] == round(2 / 3, 4)
    assert report["macro_f1"] == round((0 + 0.8 + 1.0) / 3, 4)
    assert report["latency_ms_p50"] >= 0
