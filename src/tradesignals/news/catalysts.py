"""Measuring the catalyst rules against hand-labelled headlines (tests/fixtures/catalysts).

The rules themselves live in ``domain/catalysts.py``; this module reads a labelled file and reports
precision and recall per class, so the bench and the tests compute the figures one way.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tradesignals.domain.catalysts import CATALYSTS, Catalyst, classify, parse_labels


def read_labelled(path: Path) -> list[tuple[str, frozenset[Catalyst]]]:
    """``(headline, labels)`` pairs from a ``headline,labels`` CSV (labels ``|``-separated)."""
    with path.open(newline="", encoding="utf-8") as fh:
        return [(row["headline"], parse_labels(row["labels"])) for row in csv.DictReader(fh)]


def score(
    rows: Iterable[tuple[str, frozenset[Catalyst]]],
    predict: Callable[[str], Iterable[Catalyst]] = classify,
) -> dict[str, Any]:
    """Per-class precision/recall/support (multi-label, one-vs-rest) and exact-match rate."""
    tp = dict.fromkeys(CATALYSTS, 0)
    fp = dict.fromkeys(CATALYSTS, 0)
    fn = dict.fromkeys(CATALYSTS, 0)
    n = exact = 0
    errors: list[dict[str, Any]] = []
    for headline, truth in rows:
        n += 1
        got = frozenset(predict(headline))
        if got == truth:
            exact += 1
        else:
            errors.append({"headline": headline, "labelled": sorted(truth), "predicted": sorted(got)})
        for cls in CATALYSTS:
            if cls in got and cls in truth:
                tp[cls] += 1
            elif cls in got:
                fp[cls] += 1
            elif cls in truth:
                fn[cls] += 1
    per_class = {}
    for cls in CATALYSTS:
        p_den, r_den = tp[cls] + fp[cls], tp[cls] + fn[cls]
        per_class[cls.value] = {
            "precision": round(tp[cls] / p_den, 3) if p_den else None,
            "recall": round(tp[cls] / r_den, 3) if r_den else None,
            "support": r_den,
            "predicted": p_den,
        }
    all_tp, all_fp, all_fn = sum(tp.values()), sum(fp.values()), sum(fn.values())
    return {
        "n": n,
        "exact_match": round(exact / n, 3) if n else None,
        "micro_precision": round(all_tp / (all_tp + all_fp), 3) if all_tp + all_fp else None,
        "micro_recall": round(all_tp / (all_tp + all_fn), 3) if all_tp + all_fn else None,
        "per_class": per_class,
        "errors": errors,
    }
