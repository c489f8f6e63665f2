"""Session-aligned resampling of real S&P 500 minute bars (2019-11-05 to 11-08, New York time)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from tradesignals.domain.market import Bar, Timeframe, to_ns
from tradesignals.marketdata.bars import resample
from tradesignals.marketdata.calendar import ExchangeCalendar, exchange_calendar, utc_date_ns
from tradesignals.marketdata.ohlcv_file import read_ohlcv
from tradesignals.marketdata.validate import Validator

pytestmark = pytest.mark.realdata

FILE = "intraday/SP500_NOV2019_IDayRVol.csv"
NY = ZoneInfo("America/New_York")
DAYS = [date(2019, 11, d) for d in (5, 6, 7, 8)]


@pytest.fixture(scope="module")
def minutes(data_dir: Path) -> pd.DataFrame:
    path = data_dir / FILE
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    df = read_ohlcv(path, symbol="SPX", tz="America/New_York")
    df["day"] = pd.to_datetime(df["ts"], utc=True).dt.tz_convert(NY).dt.date
    return df


@pytest.fixture(scope="module")
def m1(minutes: pd.DataFrame) -> list[Bar]:
    cols = [minutes[c].tolist() for c in ("ts", "open", "high", "low", "close", "volume")]
    return [Bar("SPX", Timeframe.M1, int(t), o, h, lo, c, v) for t, o, h, lo, c, v in zip(*cols, strict=True)]


@pytest.fixture(scope="module")
def xnys() -> ExchangeCalendar:
    return exchange_calendar("XNYS")


def ny(d: date, hh: int, mm: int) -> int:
    return to_ns(datetime(d.year, d.month, d.day, hh, mm, tzinfo=NY))


def test_every_minute_passes_validation(m1: list[Bar]) -> None:
    v = Validator()
    assert [b for b in m1 if not v.check(b)] == []
    assert v.accepted == len(m1) == 1563
    assert v.rejected == {}


def test_daily_bars_are_one_per_session_with_that_days_ohlc(
    minutes: pd.DataFrame, m1: list[Bar], xnys: ExchangeCalendar
) -> None:
    daily = resample(m1, Timeframe.D1, calendar=xnys)
    assert [b.ts for b in daily] == [utc_date_ns(d.year, d.month, d.day) for d in DAYS]
    for d, bar, (day, g) in zip(DAYS, daily, minutes.groupby("day"), strict=True):
        assert day == d
        assert bar.open == g["open"].iloc[0]
        assert bar.high == g["high"].max()
        assert bar.low == g["low"].min()
        # The file's 16:00 minute (on three of the days) is the closing print: the official close.
        assert bar.close == g["close"].iloc[-1]
        assert bar.volume == pytest.approx(g["volume"].sum(), rel=1e-12)


def test_hourly_bars_open_at_half_past_and_the_last_is_the_half_hour_to_the_close(
    m1: list[Bar], xnys: ExchangeCalendar
) -> None:
    hourly = resample(m1, Timeframe.H1, calendar=xnys)
    for d in DAYS:
        day = [b for b in hourly if ny(d, 9, 30) <= b.ts < ny(d, 16, 0)]
        assert [b.ts for b in day] == [ny(d, h, 30) for h in range(9, 16)]  # 7 bars: 09:30 … 15:30
    assert len(hourly) == 4 * 7
    # The cut-short last bar holds the minutes 15:30-15:59 and the closing print at 16:00, if any.
    last = hourly[6]
    src = [b for b in m1 if ny(DAYS[0], 15, 30) <= b.ts <= ny(DAYS[0], 16, 0)]
    assert len(src) == 31
    assert (last.open, last.close) == (src[0].open, src[-1].close)
    assert last.high == max(b.high for b in src) and last.low == min(b.low for b in src)


def test_five_minute_and_chained_resampling_agree(m1: list[Bar], xnys: ExchangeCalendar) -> None:
    m5 = resample(m1, Timeframe.M5, calendar=xnys)
    assert len(m5) == 4 * 78  # 390 minutes a day; the 16:00 print joins the 15:55 bar
    assert all((b.ts - ny(DAYS[0], 9, 30)) % Timeframe.M5.ns == 0 for b in m5)
    h1 = resample(m5, Timeframe.H1, calendar=xnys)
    direct = resample(m1, Timeframe.H1, calendar=xnys)
    assert [(b.ts, b.open, b.high, b.low, b.close) for b in h1] == [
        (b.ts, b.open, b.high, b.low, b.close) for b in direct
    ]
    assert [b.volume for b in h1] == pytest.approx([b.volume for b in direct], rel=1e-12)
    daily = resample(h1, Timeframe.D1, calendar=xnys)
    assert [(b.ts, b.open, b.close) for b in daily] == [
        (b.ts, b.open, b.close) for b in resample(m1, Timeframe.D1, calendar=xnys)
    ]
