"""The hand-labelled catalyst headlines are real rows of the shared Benzinga file, unchanged."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tradesignals.news.replay import ReplayNewsFeed

pytestmark = pytest.mark.realdata
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "catalysts"


def test_fixture_rows_match_the_shared_file(data_dir: Path) -> None:
    items = {i.id: i for i in ReplayNewsFeed(data_dir / "news_headlines_benzinga_sample.csv.gz").load()}
    for name in ("headlines.csv", "headlines_heldout.csv"):
        with (FIXTURES / name).open(newline="") as fh:
            for row in csv.DictReader(fh):
                item = items[row["id"]]
                assert item.headline == row["headline"]
                assert row["symbol"] in item.symbols
