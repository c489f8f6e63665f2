"""News features in the model: hold-out figures with and without them, as one JSON object.

    TS_DATA_DIR=/path/to/shared/data .venv/bin/python bench/news_features.py [--study NAME]

Runs ``models.news_study.run_study`` for each study of ``STUDIES`` (StockNet tweets over 14 large
caps, 2014 – Mar 2016; the Benzinga sample's four S&P tickers, 2013 – Feb 2018): same rows, same
rulebook labels, same model settings and the same time-based hold-out, with the ``core_news``
columns and without them. The sentiment model is trained on the Twitter financial news train split
in this process. Deterministic: a rerun on the same library versions prints the same figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import structlog

from tradesignals.models.news_study import STUDIES, run_study
from tradesignals.news.sentiment import TWITTER_TRAIN, train

DATA_DIR = Path(os.environ.get("TS_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")


def main() -> None:
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    parser.add_argument("--study", choices=[s.name for s in STUDIES], action="append")
    args = parser.parse_args()
    if not (args.data / TWITTER_TRAIN).is_file():
        print(json.dumps({"bench": "news_features", "error": f"no data at {args.data} (set TS_DATA_DIR)"}))
        sys.exit(1)
    t0 = time.perf_counter()
    sentiment = train(args.data / TWITTER_TRAIN)
    result: dict[str, Any] = {
        "bench": "news_features",
        "machine": {"python": sys.version.split()[0], "cpu": platform.processor() or platform.machine()},
        "studies": [],
    }
    for study in STUDIES:
        if args.study and study.name not in args.study:
            continue
        result["studies"].append(run_study(study, args.data, sentiment))
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
