"""Share-class twins: by name and returns, ambiguous bare letters settled by the returns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tradesignals.models.share_classes import (
    NAME_MATCH_MIN_CORR,
    daily_returns,
    find_twins,
    name_candidates,
    share_class_root,
)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("GOOG", "GOOGL"),
        ("DISCA", "DISCK"),
        ("FOX", "FOXA"),
        ("NWS", "NWSA"),
        ("UA", "UAA"),
        ("BRK.A", "BRK.B"),
        ("BF-B", "BF.A"),
    ],
)
def test_known_share_class_pairs_are_name_candidates(a: str, b: str) -> None:
    assert name_candidates(a, b)[0] and name_candidates(b, a)[0]


@pytest.mark.parametrize(("a", "b"), [("C", "CA"), ("M", "MA"), ("AAPL", "MSFT"), ("GOOG", "GOOG")])
def test_unrelated_tickers_are_not(a: str, b: str) -> None:
    assert not name_candidates(a, b)[0]


def test_roots() -> None:
    assert share_class_root("BRK.B") == ("BRK", True)
    assert share_class_root("googl") == ("GOOG", False)
    assert share_class_root("UA") == ("UA", False)  # a two-letter ticker is its own root


def bars(paths: dict[str, np.ndarray]) -> pd.DataFrame:
    days = pd.bdate_range("2016-01-01", periods=len(next(iter(paths.values()))), tz="UTC").as_unit("ns").asi8
    return pd.concat(
        [
            pd.DataFrame({"ts": days, "symbol": s, "close": 50 * np.exp(np.cumsum(r))})
            for s, r in paths.items()
        ],
        ignore_index=True,
    )


def test_bare_letter_matches_are_settled_by_the_returns() -> None:
    rng = np.random.default_rng(0)
    boeing, bank, goog = (rng.normal(0, 0.01, 200) for _ in range(3))
    glitch = goog + rng.normal(0, 0.001, 200)
    glitch[50] = -0.7  # one bad print in the other class must not break the match
    data = bars({"BA": boeing, "BAC": bank, "GOOG": goog, "GOOGL": glitch})
    twins = find_twins(["BAC", "GOOGL"], ["BA", "GOOG"], daily_returns(data))
    assert set(twins) == {"GOOGL"}
    assert twins["GOOGL"].twin_of == "GOOG" and twins["GOOGL"].reason == "name and returns"
    assert twins["GOOGL"].correlation is not None and twins["GOOGL"].correlation > NAME_MATCH_MIN_CORR


def test_name_candidates_count_as_twins_when_returns_cannot_be_compared() -> None:
    twins = find_twins(["BAC", "BRK.B", "XOM"], ["BA", "BRK.A"])
    assert twins["BAC"].reason == "name (returns not comparable)"  # in doubt: seen
    assert twins["BRK.B"].reason == "explicit class suffix"
    assert "XOM" not in twins


def test_near_identical_returns_make_twins_whatever_the_names() -> None:
    rng = np.random.default_rng(1)
    r = rng.normal(0, 0.01, 120)
    data = bars({"OLDNAME": r, "NEWCO": r + rng.normal(0, 0.0005, 120), "OTHER": rng.normal(0, 0.01, 120)})
    twins = find_twins(["NEWCO", "OTHER"], ["OLDNAME"], daily_returns(data))
    assert set(twins) == {"NEWCO"} and twins["NEWCO"].reason == "returns"
