"""One bad bar is named the same by Bar.problems (lifecycle), the live validator, file ingest and the replay."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tradesignals.domain.bar_quality import QualityReason as R
from tradesignals.domain.market import Bar, Timeframe
from tradesignals.marketdata.feeds.replay import ReplayFeed
from tradesignals.marketdata.ingest_files import check_rows
from tradesignals.marketdata.ohlcv_file import read_ohlcv
from tradesignals.marketdata.validate import Validator

BAD = [
    ((float("nan"), 11.0, 9.0, 10.0, 1.0), R.NOT_FINITE),
    ((10.0, 11.0, 0.0, 10.0, 1.0), R.NON_POSITIVE_PRICE),
    ((10.0, 9.0, 11.0, 10.0, 1.0), R.HIGH_BELOW_LOW),
    ((12.0, 11.0, 9.0, 10.0, 1.0), R.OPEN_CLOSE_OUTSIDE_RANGE),
    ((10.0, 11.0, 9.0, 10.0, -5.0), R.NEGATIVE_VOLUME),
    ((10.0, 11.0, 9.0, 10.0, float("inf")), R.NOT_FINITE),
]


@pytest.mark.parametrize(("ohlcv", "reason"), BAD)
def test_every_judge_names_a_bad_bar_alike(tmp_path: Path, ohlcv: tuple[float, ...], reason: R) -> None:
    bar = Bar("AAPL", Timeframe.D1, 0, *ohlcv)
    assert bar.problems() == [reason]
    assert Validator().inspect(bar).reasons == (reason.value,)
    path = tmp_path / "one.csv"
    o, h, lo, c, v = ohlcv
    path.write_text(f"date,symbol,open,high,low,close,volume\n2024-01-02,AAPL,{o},{h},{lo},{c},{v}\n")
    _, counts = check_rows(read_ohlcv(path))
    assert counts == {reason: 1}
    feed = ReplayFeed(path, timeframe=Timeframe.D1)

    async def drain() -> None:
        async for _ in feed.stream():
            pass

    asyncio.run(drain())
    assert dict(feed.rejected) == {reason: 1}


def test_a_good_bar_has_no_problem_so_the_lifecycle_uses_it() -> None:
    assert Bar("AAPL", Timeframe.D1, 0, 10.0, 11.0, 9.0, 10.5, 100.0).problems() == []
