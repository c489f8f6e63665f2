"""Refuse intraday files whose naive times only make sense as exchange-local wall time.

Vendors often write intraday equity bars as ``2019-11-05 09:30`` with no offset, meaning New York
time. Read as UTC (the default) those bars land before the open: the session features restart
every bar, nothing warms up, bars are aggregated into the wrong sessions — silently. When the
file's times carried no offset and no ``--tz`` was given, this check places a sample of the equity
bars in their exchange's sessions twice, as UTC and as the exchange's local time, and stops with a
one-line error naming ``--tz`` when the local reading fits and the UTC one does not.

"Fits" is stated loosely on purpose, because real files hold pre/post-market bars and a UTC
reading of 09:30–16:00 New York bars still overlaps the session for an hour or two: the UTC
reading fails when at most half of the bars fall in a session, the local reading fits when at
least 95 % do. Daily bars (stamped at midnight) and 24/7 symbols are never judged.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from tradesignals.domain.market import Timeframe
from tradesignals.marketdata.calendar import DAY_NS, calendar_for, is_crypto_symbol
from tradesignals.marketdata.feeds.base import FeedError

SAMPLE = 2_000
UTC_FAILS_AT_MOST = 0.5
LOCAL_FITS_AT_LEAST = 0.95


def check_session_fit(frame: pd.DataFrame, timeframe: Timeframe, *, source: str) -> None:
    """Raise ``FeedError`` (one line naming ``--tz``) when naive times fit only as exchange-local time.

    ``frame`` is ``read_ohlcv``'s frame; only acts when ``frame.attrs["naive_times"]`` says the
    times were read as UTC for want of an offset or a ``tz``.
    """
    if not frame.attrs.get("naive_times") or timeframe is Timeframe.D1 or frame.empty:
        return
    ts = frame["ts"].to_numpy(dtype=np.int64)
    symbols = frame["symbol"].astype(str).to_numpy()
    saturday = (ts // DAY_NS + 3) % 7 == 5
    weekend = set(np.unique(symbols[saturday]).tolist())
    by_calendar: dict[str, list[int]] = {}
    calendars = {}
    for sym in np.unique(symbols).tolist():
        if sym in weekend or is_crypto_symbol(sym):
            continue
        cal = calendar_for(sym)
        if cal.always_open:
            continue
        calendars[cal.name] = cal
        by_calendar.setdefault(cal.name, []).extend(np.flatnonzero(symbols == sym).tolist())
    for name, rows in by_calendar.items():
        cal = calendars[name]
        zone = _zone(name)
        if zone is None:
            continue
        pick = np.asarray(rows)[np.linspace(0, len(rows) - 1, min(SAMPLE, len(rows))).astype(np.int64)]
        as_utc = ts[pick]
        as_local = (
            pd.DatetimeIndex(as_utc.astype("datetime64[ns]"))
            .tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
            .tz_convert("UTC")
            .tz_localize(None)
        )
        local_ok = ~np.isnat(as_local.to_numpy())
        local = as_local.to_numpy()[local_ok].astype(np.int64)
        utc_fit = float(np.mean([cal.segment(int(t)) is not None for t in as_utc.tolist()]))
        local_fit = (
            float(np.mean([cal.segment(int(t)) is not None for t in local.tolist()])) if len(local) else 0.0
        )
        if utc_fit <= UTC_FAILS_AT_MOST and local_fit >= LOCAL_FITS_AT_LEAST:
            raise FeedError(
                f"{source}: times have no UTC offset; read as UTC {1 - utc_fit:.0%} of the bars fall "
                f"outside every {name} session, read as {zone} time they fit: pass --tz {zone}"
            )


@lru_cache(maxsize=8)
def _zone(exchange: str) -> str | None:
    """The exchange's time zone name (``XNYS`` → ``America/New_York``), None if it cannot be told."""
    try:
        import exchange_calendars as xcals

        return str(xcals.get_calendar(exchange).tz)
    except Exception:  # an exotic calendar name: no advice beats a wrong one
        return None
