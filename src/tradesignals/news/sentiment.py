"""Headline sentiment: a small CPU model (TF-IDF word + character n-grams, linear SVM).

Why this model: it trains in seconds on one core from the Twitter financial news train split
(MIT per the upstream dataset card), scores a headline in well under a millisecond with the
hand-written scorer below, and needs no weights from a hub. Its measured figures are in the
README and ``bench/news.py``; ADR 0013 says how it ships.

Training uses scikit-learn (``TfidfVectorizer`` x2 + ``LinearSVC``); the artefact is *not* a pickle:
it is an ``.npz`` of the two vocabularies, their idf weights and the SVM's coefficients, plus a JSON
header with the training file's hash and the library versions. Loading never executes code from
the file, and the scorer re-implements exactly the two vectorizers' analyzers (a test checks the
decision values against scikit-learn's to 1e-9 on the validation split), which is what makes one
headline cost microseconds instead of the ~5 ms of a scikit-learn pipeline call.

Labels: ``negative``, ``neutral``, ``positive``. The Twitter set's integers map 0 = Bearish ->
negative, 1 = Bullish -> positive, 2 = Neutral -> neutral. ``score`` is the softmax of the three
SVM margins for the chosen label: a confidence in (1/3, 1], *not* a calibrated probability
(calibrating with ``CalibratedClassifierCV`` lowered macro-F1 on cross-validation).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
import re
import statistics
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from tradesignals.domain.news import SENTIMENT_LABELS

FORMAT_VERSION = 1
TWITTER_TRAIN = Path("twitter_financial_news_sentiment") / "sent_train.csv.gz"
TWITTER_VALID = Path("twitter_financial_news_sentiment") / "sent_valid.csv.gz"
MODEL_FILE = "sentiment-v1.npz"

# Hyper-parameters, chosen among a handful by 5-fold cross-validation on the train split
# (docs/decisions/0013). Changing one changes the artefact: bump FORMAT_VERSION's file name.
WORD_NGRAMS = (1, 3)
CHAR_NGRAMS = (2, 5)
CHAR_MIN_DF = 2
SVM_C = 1.0
TOKEN_PATTERN = r"(?u)\b\w+\b|[%!?+-]"

_URL = re.compile(r"https?://\S+")
_CASHTAG = re.compile(r"\$[A-Za-z][A-Za-z.]{0,6}\b")
_NUMBER = re.compile(r"\d+(\.\d+)?")
_TOKEN = re.compile(TOKEN_PATTERN)
_SPACES = re.compile(r"\s\s+")
# Twitter set integers -> our words; words are accepted as they are (and bullish/bearish).
_LABEL_ALIASES = {
    "0": "negative",
    "1": "positive",
    "2": "neutral",
    "bearish": "negative",
    "bullish": "positive",
    "negative": "negative",
    "positive": "positive",
    "neutral": "neutral",
}


class SentimentError(ValueError):
    """A model or evaluation file that cannot be used; one line naming it."""


def preprocess(text: str) -> str:
    """Lower-case, with URLs, cashtags and numbers replaced by placeholders.

    A cashtag names the company, not the mood; numbers vary endlessly but "beats by 0.12" and
    "beats by 0.30" say the same thing. Both generalise better as one token each.
    """
    text = _URL.sub(" URL ", text)
    text = _CASHTAG.sub(" TICKER ", text)
    text = _NUMBER.sub(" 0 ", text)
    return text.lower()


def parse_label(raw: object) -> str:
    """Our label word for a file's label (word or the Twitter set's 0/1/2); ValueError if unknown."""
    key = str(raw).strip().lower()
    if key.endswith(".0"):
        key = key[:-2]
    try:
        return _LABEL_ALIASES[key]
    except KeyError:
        raise ValueError(f"unknown label {raw!r}; expected positive|negative|neutral or 0|1|2") from None


def _word_ngrams(text: str) -> list[str]:
    tokens = _TOKEN.findall(text)
    out = list(tokens)
    for n in range(max(2, WORD_NGRAMS[0]), WORD_NGRAMS[1] + 1):
        out.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return out


def _char_wb_ngrams(text: str) -> list[str]:
    """scikit-learn's ``char_wb`` analyzer: n-grams inside each space-padded word."""
    out: list[str] = []
    lo, hi = CHAR_NGRAMS
    for word in _SPACES.sub(" ", text).split():
        w = f" {word} "
        w_len = len(w)
        for n in range(lo, hi + 1):
            offset = 0
            out.append(w[offset : offset + n])
            while offset + n < w_len:
                offset += 1
                out.append(w[offset : offset + n])
            if offset == 0:  # a short word counts once
                break
    return out


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "score": round(self.score, 4)}


class SentimentModel:
    """The trained weights and a scorer that needs only numpy."""

    def __init__(
        self,
        *,
        word_vocab: dict[str, int],
        char_vocab: dict[str, int],
        word_idf: np.ndarray,
        char_idf: np.ndarray,
        coef: np.ndarray,
        intercept: np.ndarray,
        classes: Sequence[str],
        meta: dict[str, Any],
    ) -> None:
        self.word_vocab = word_vocab
        self.char_vocab = char_vocab
        self.word_idf = word_idf.astype(np.float64)
        self.char_idf = char_idf.astype(np.float64)
        # Columns for the word block first, then the char block, as FeatureUnion stacks them.
        self.coef = np.ascontiguousarray(coef.astype(np.float64).T)
        self.intercept = intercept.astype(np.float64)
        self.classes = list(classes)
        self.meta = meta
        self._n_word = len(word_vocab)

    def _block(self, grams: Iterable[str], vocab: dict[str, int], idf: np.ndarray, offset: int) -> np.ndarray:
        counts: Counter[int] = Counter()
        for g in grams:
            j = vocab.get(g)
            if j is not None:
                counts[j] += 1
        if not counts:
            return np.zeros(len(self.classes))
        idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
        weights = (1.0 + np.log(tf)) * idf[idx]
        weights /= math.sqrt(float(weights @ weights))
        result: np.ndarray = weights @ self.coef[idx + offset]
        return result

    def decision(self, text: str) -> np.ndarray:
        """The three SVM margins for one text (same numbers as scikit-learn's decision_function)."""
        clean = preprocess(text)
        margins: np.ndarray = (
            self._block(_word_ngrams(clean), self.word_vocab, self.word_idf, 0)
            + self._block(_char_wb_ngrams(clean), self.char_vocab, self.char_idf, self._n_word)
            + self.intercept
        )
        return margins

    def predict(self, text: str) -> Prediction:
        margins = self.decision(text)
        best = int(np.argmax(margins))
        exp = np.exp(margins - margins[best])
        return Prediction(self.classes[best], float(1.0 / exp.sum()))

    # -- persistence ------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        words = sorted(self.word_vocab, key=self.word_vocab.__getitem__)
        chars = sorted(self.char_vocab, key=self.char_vocab.__getitem__)
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as fh:
            np.savez_compressed(
                fh,
                header=np.array(json.dumps(self.meta | {"classes": self.classes})),
                word_vocab=np.array(words),
                char_vocab=np.array(chars),
                word_idf=self.word_idf.astype(np.float32),
                char_idf=self.char_idf.astype(np.float32),
                coef=self.coef.T.astype(np.float32),
                intercept=self.intercept.astype(np.float32),
            )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> SentimentModel:
        if not path.is_file():
            raise SentimentError(
                f"no sentiment model at {path}; train one with `tradesignals sentiment --train`"
            )
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(str(z["header"]))
                if header.get("format") != FORMAT_VERSION:
                    raise SentimentError(
                        f"{path}: sentiment model format {header.get('format')!r}, this version reads "
                        f"{FORMAT_VERSION}; retrain with `tradesignals sentiment --train`"
                    )
                return cls(
                    word_vocab={w: i for i, w in enumerate(z["word_vocab"].tolist())},
                    char_vocab={c: i for i, c in enumerate(z["char_vocab"].tolist())},
                    word_idf=z["word_idf"],
                    char_idf=z["char_idf"],
                    coef=z["coef"],
                    intercept=z["intercept"],
                    classes=header["classes"],
                    meta=header,
                )
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
            if isinstance(err, SentimentError):
                raise
            raise SentimentError(f"{path}: not a sentiment model ({type(err).__name__})") from None


# -- data ---------------------------------------------------------------------------------------


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def read_labelled(path: Path) -> tuple[list[str], list[str]]:
    """``text,label`` rows of a CSV (gzip ok); a missing column or unknown label is one-line error."""
    if not path.is_file():
        raise SentimentError(f"{path}: no such file")
    texts: list[str] = []
    labels: list[str] = []
    try:
        with _open_text(path) as fh:
            reader = csv.DictReader(fh)
            cols = set(reader.fieldnames or ())
            if not {"text", "label"} <= cols:
                raise SentimentError(f"{path.name}: needs columns text,label; has {sorted(cols)}")
            for line, row in enumerate(reader, start=2):
                try:
                    labels.append(parse_label(row["label"]))
                except ValueError as err:
                    raise SentimentError(f"{path.name} line {line}: {err}") from None
                texts.append(row["text"] or "")
    except (OSError, UnicodeDecodeError, csv.Error, EOFError) as err:
        raise SentimentError(f"{path.name}: cannot read ({err})") from None
    if not texts:
        raise SentimentError(f"{path.name}: no rows")
    return texts, labels


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fit_sklearn(texts: Sequence[str], labels: Sequence[str]) -> tuple[Any, Any, Any]:
    """The scikit-learn objects (word vectorizer, char vectorizer, SVM) fitted on ``texts``.

    Kept separate so a test can check the numpy scorer against scikit-learn's own numbers.
    """
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    clean = [preprocess(t) for t in texts]
    word = TfidfVectorizer(
        ngram_range=WORD_NGRAMS, sublinear_tf=True, token_pattern=TOKEN_PATTERN, lowercase=False
    )
    char = TfidfVectorizer(
        analyzer="char_wb", ngram_range=CHAR_NGRAMS, sublinear_tf=True, min_df=CHAR_MIN_DF, lowercase=False
    )
    x = hstack([word.fit_transform(clean), char.fit_transform(clean)]).tocsr()
    svm = LinearSVC(C=SVM_C, class_weight="balanced", random_state=0, max_iter=5000)
    svm.fit(x, list(labels))
    return word, char, svm


def from_sklearn(word: Any, char: Any, svm: Any, meta: dict[str, Any]) -> SentimentModel:
    classes = [str(c) for c in svm.classes_]
    if sorted(classes) != sorted(SENTIMENT_LABELS):
        raise SentimentError(f"training labels {classes} are not {list(SENTIMENT_LABELS)}")
    return SentimentModel(
        word_vocab={k: int(v) for k, v in word.vocabulary_.items()},
        char_vocab={k: int(v) for k, v in char.vocabulary_.items()},
        word_idf=word.idf_,
        char_idf=char.idf_,
        coef=svm.coef_,
        intercept=svm.intercept_,
        classes=classes,
        meta=meta,
    )


def train(train_csv: Path) -> SentimentModel:
    """Fit on ``train_csv`` (deterministic: sorted-vocabulary vectorizers, fixed SVM seed)."""
    import sklearn

    texts, labels = read_labelled(train_csv)
    word, char, svm = fit_sklearn(texts, labels)
    meta = {
        "format": FORMAT_VERSION,
        "trained_on": train_csv.name,
        "train_sha256": _sha256(train_csv),
        "n_train": len(texts),
        "sklearn": sklearn.__version__,
    }
    return from_sklearn(word, char, svm, meta)


def evaluate(predict: Any, texts: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class P/R/F1 and per-text latency of ``predict(text) -> label``.

    ``predict`` is any callable returning a label word, so the lexicon baseline is measured the
    same way as the model.
    """
    latencies: list[float] = []
    predicted: list[str] = []
    for text in texts:
        t0 = time.perf_counter_ns()
        predicted.append(predict(text))
        latencies.append((time.perf_counter_ns() - t0) / 1e6)
    per_class: dict[str, dict[str, float | int]] = {}
    f1s = []
    for cls in SENTIMENT_LABELS:
        tp = sum(1 for p, y in zip(predicted, labels, strict=True) if p == cls and y == cls)
        n_pred = sum(1 for p in predicted if p == cls)
        support = sum(1 for y in labels if y == cls)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        f1s.append(f1)
        per_class[cls] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": support,
        }
    correct = sum(1 for p, y in zip(predicted, labels, strict=True) if p == y)
    return {
        "n": len(texts),
        "accuracy": round(correct / len(texts), 4),
        "macro_f1": round(sum(f1s) / len(f1s), 4),
        "per_class": per_class,
        "latency_ms_p50": round(statistics.median(latencies), 4),
        "latency_ms_p99": round(float(np.percentile(latencies, 99)), 4),
    }


def find_training_file(data_dir: Path | None) -> Path | None:
    if data_dir is None:
        return None
    candidate = data_dir / TWITTER_TRAIN
    return candidate if candidate.is_file() else None


def load_or_train(model_path: Path, data_dir: Path | None) -> tuple[SentimentModel, bool]:
    """The saved model, or one trained now from ``data_dir`` and saved (True when trained)."""
    if model_path.is_file():
        return SentimentModel.load(model_path), False
    source = find_training_file(data_dir)
    if source is None:
        raise SentimentError(
            f"no sentiment model at {model_path} and no training data "
            f"({TWITTER_TRAIN} under TS_DATA_DIR or --data); run `tradesignals sentiment --train --data DIR`"
        )
    model = train(source)
    model.save(model_path)
    return model, True
