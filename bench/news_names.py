"""Company-name symbol mapping (``news/names.py``) on the Benzinga sample, as one JSON object.

    TS_DATA_DIR=/path/to/shared/data .venv/bin/python bench/news_names.py [--tickers FILE] [--show 40]

Each headline is mapped with its ``stock`` column hidden, against the company file (default: the
48-company test fixture, tests/fixtures/company_tickers.json). ``agrees_with_file_ticker`` is a
floor on precision, not precision: the file's ticker is the story's filing symbol, and a headline
often names another company too (a customer, a competitor, "Apple" in a supplier story). Precision
proper comes from reading the ``--show`` sample of matches by hand (seeded, reproducible).
``recall_on_fixture_tickers``: of the rows filed under a ticker the company file knows, the share
whose headline maps to it (headlines often give no name: "Q2 EPS Beats", or a nickname).
"""

from __future__ import annotations

import argparse
import collections
import csv
import gzip
import json
import os
import random
import sys
from pathlib import Path

from tradesignals.news.names import CompanyNames

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tickers", default=str(ROOT / "tests" / "fixtures" / "company_tickers.json"))
    ap.add_argument("--show", type=int, default=40, help="print this many matches to check by hand")
    args = ap.parse_args()
    data = os.environ.get("TS_DATA_DIR")
    if not data:
        sys.exit("set TS_DATA_DIR to the shared data folder")
    names = CompanyNames.load(args.tickers)
    path = Path(data) / "news_headlines_benzinga_sample.csv.gz"
    with gzip.open(path, "rt") as fh:
        rows = list(csv.DictReader(fh))
    known = set(names.names.values())
    filed = collections.Counter(r["stock"] for r in rows)
    matched: list[tuple[str, tuple[str, ...], str]] = []
    hits = 0
    for r in rows:
        m = names.match(r["title"])
        if m:
            matched.append((r["stock"], m, r["title"]))
        if r["stock"] in known and r["stock"] in m:
            hits += 1
    covered = sum(n for t, n in filed.items() if t in known)
    sample = random.Random(7).sample(matched, min(args.show, len(matched)))
    print(
        json.dumps(
            {
                "rows": len(rows),
                "companies_in_file": len(set(names.names.values())),
                "rows_mapped": len(matched),
                "agrees_with_file_ticker": sum(s in m for s, m, _ in matched),
                "recall_on_fixture_tickers": round(hits / covered, 3) if covered else None,
                "sample": [{"filed": s, "mapped": list(m), "headline": h} for s, m, h in sample],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
