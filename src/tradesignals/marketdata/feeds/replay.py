"""Replay an OHLCV file as a feed of Bars, at full speed or paced by simulated time.

The engine cannot tell a replay from a live feed, which is the point: a backtest, a demo and
production run one code path. The file is read and checked in the constructor, so a bad path or a
file without prices fails at start-up with one line, never halfway through a stream.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncGenerator
from pathlib import Path

import numpy as np
import pandas as pd

from tradesignals.domain.bar_quality import QualityReason
from tradesignals.domain.market import NS_PER_SECOND, Bar, Timeframe
from tradesignals.marketdata.feeds.base import FeedError, MarketEvent
from tradesignals.marketdata.ohlcv_file import infer_timeframe, read_ohlcv

# Rows turned into Python objects at a time: bounds memory (never the whole file as objects) and is
# how often a full-speed replay hands the event loop back to other tasks.
CHUNK = 2048
# Below this lag a paced replay does not sleep; sleeping for microseconds costs more than it paces.
_MIN_SLEEP_S = 0.002


class ReplayFeed:
    """Bars from a CSV/Parquet OHLCV file, all symbols interleaved in (ts, symbol) order.

    ``speed`` is simulated seconds per wall second (``inf``: as fast as possible). Bars whose
    ``problems()`` are non-empty are skipped and counted in ``rejected`` (by ``QualityReason``, the
    validator's and ingest's names), never raised:
    real vendor files hold a few NaN or inconsistent rows and one must not stop a replay.

    ``replayable``: every run of ``stream()`` yields the same events in the same order, so a
    restarted ingest may skip the ones an earlier run published (``engine.ingest``, ADR 0025).
    While it skips, ingest holds the pace (``hold_pace``): those bars come at once, and a paced
    replay anchors its pace at the first bar it yields after the hold, not at the file's first bar.
    """

    replayable = True

    def __init__(
        self,
        path: str | Path,
        *,
        speed: float = float("inf"),
        timeframe: Timeframe | None = None,
        symbols: list[str] | None = None,
        symbol: str | None = None,
        tz: str | None = None,
    ) -> None:
        if not speed > 0:
            raise FeedError(f"replay speed must be > 0 (got {speed})")
        self.path = Path(path)
        self.name = f"replay:{self.path.name}"
        self.speed = float(speed)
        df = read_ohlcv(self.path, symbol=symbol, tz=tz)
        if df.empty:
            raise FeedError(f"{self.path}: holds no rows to replay")
        if symbols is not None:
            present = set(df["symbol"].unique())
            absent = [s for s in symbols if s not in present]
            if absent:
                raise FeedError(f"{self.path}: symbol(s) not in file: {', '.join(absent)}")
            df = df.loc[df["symbol"].isin(symbols)].reset_index(drop=True)
            if df.empty:
                raise FeedError(f"{self.path}: the symbols filter is empty")
        tf = timeframe or infer_timeframe(df)
        if tf is None:
            raise FeedError(
                f"{self.path}: cannot infer the bar timeframe from the timestamps; pass one of "
                + ", ".join(t.value for t in Timeframe)
            )
        self.timeframe: Timeframe = tf
        codes, names = pd.factorize(df["symbol"], sort=True)
        self._names: list[str] = [str(n) for n in names]
        self._codes = codes.astype(np.int64)
        self._ts = df["ts"].to_numpy(dtype=np.int64)
        self._cols = [df[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close", "volume")]
        self.rows = len(df)
        self.nan_price_rows = int(df.attrs.get("nan_price_rows", 0))
        self.rejected: Counter[QualityReason] = Counter()
        self.emitted = 0
        self.skipped = 0
        self._closed = False
        self._held = False

    def hold_pace(self, held: bool) -> None:
        """While held, bars come without waiting; once released, the pace starts from the last bar
        yielded (a restarted ingest skipping what an earlier run published, ADR 0025)."""
        self._held = held

    def symbols(self) -> list[str]:
        return list(self._names)

    async def stream(self) -> AsyncGenerator[MarketEvent, None]:
        """Every usable bar of the file once; each call replays from the start with fresh counters."""
        async for bar in self.bars():
            yield bar

    async def bars(self) -> AsyncGenerator[Bar, None]:
        """``stream()`` typed as Bars, for callers that want no Tick case to handle."""
        self.rejected = Counter()
        self.emitted = self.skipped = 0
        paced = self.speed != float("inf")
        ns_per_wall_s = self.speed * NS_PER_SECOND
        # The pace's anchor: (wall time, bar time) of the first bar yielded unheld — or, after a
        # hold, of the last bar yielded under it. None until then.
        anchor: tuple[float, int] | None = None
        last: tuple[float, int] | None = None
        names, tf = self._names, self.timeframe
        for start in range(0, self.rows, CHUNK):
            end = start + CHUNK
            rows = zip(
                self._codes[start:end].tolist(),
                self._ts[start:end].tolist(),
                *(c[start:end].tolist() for c in self._cols),
                strict=True,
            )
            for code, ts, o, h, lo, c, v in rows:
                bar = Bar(names[code], tf, ts, o, h, lo, c, v)
                problems = bar.problems()
                if problems or not bar.symbol:
                    self.skipped += 1
                    self.rejected.update(problems or [QualityReason.EMPTY_SYMBOL])
                    continue
                if paced:
                    if self._held:
                        anchor = None
                    elif anchor is None:
                        anchor = last or (time.monotonic(), ts)
                    if anchor is not None:
                        delay = anchor[0] + (ts - anchor[1]) / ns_per_wall_s - time.monotonic()
                        if delay > _MIN_SLEEP_S:
                            await asyncio.sleep(delay)
                if self._closed:
                    return
                self.emitted += 1
                if paced:
                    last = (time.monotonic(), ts)
                yield bar
            await asyncio.sleep(0)

    async def close(self) -> None:
        """Stop a running stream at its next bar; safe to call more than once."""
        self._closed = True
