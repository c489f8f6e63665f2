"""A seeded market simulator: realistic enough to exercise the engine, fast enough to load-test it.

Prices follow geometric Brownian motion per symbol (own drift and volatility, a shared market factor
per asset class), switched between a calm and a stressed regime by a 2-state Markov chain, with
Poisson jumps of fat-tailed (Student-t) size and, for equities, overnight gaps. Trades arrive
``ticks_per_bar`` per symbol per bar with sizes following an intraday U-shaped volume curve. Bars are
built from those very ticks, so high/low always bracket every trade and a ``BarAggregator`` fed the
ticks reproduces the bars exactly.

Everything is drawn from one ``numpy`` generator seeded by ``seed``, a whole bar step across all
symbols at a time: same seed and parameters → byte-identical events; the draws do not depend on
``emit``, so the bars of an ``emit="bars"`` feed equal those of an ``emit="both"`` feed.

Equities trade the NYSE's real sessions (``equity_session``: the exchange calendar the engine and
the features use, so holidays are closed and half days end at 13:00 New York); crypto trades around
the clock. Which class a symbol is follows the one rule, ``domain.sessions.asset_class_of``: the
``asset_class`` the feed is given declares it, and in a ``"mix"`` the symbol's spelling decides. When
nothing trades (a weekend or holiday for an equity-only feed) the clock jumps to the next open
instead of pacing through it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Literal

import numpy as np

from tradesignals.domain.market import NS_PER_SECOND, AssetClass, Bar, Tick, Timeframe, to_ns
from tradesignals.domain.sessions import DAY_NS, asset_class_of
from tradesignals.marketdata.calendar import calendar_for
from tradesignals.marketdata.feeds.base import FeedError, MarketEvent

# Tuesday 2 January 2024, 09:30 New York: a fixed default start keeps a seed's sequence reproducible.
DEFAULT_START_NS = to_ns(datetime(2024, 1, 2, 14, 30, tzinfo=UTC))

EQUITY_YEAR_S = 252 * 6.5 * 3600  # trading seconds per year: volatility is per unit of trading time
CRYPTO_YEAR_S = 365 * 86_400.0
STRESS_VOL = 2.5  # volatility multiplier in the stressed regime
STRESS_DRIFT = -0.6  # annual drift added in the stressed regime (sell-offs)
STRESS_VOLUME = 1.8  # volume multiplier in the stressed regime
STRESS_JUMPS = 3.0  # jump intensity multiplier in the stressed regime
CALM_YEARS, STRESSED_YEARS = 0.5, 0.05  # mean regime durations, in trading years
OVERNIGHT_VAR = 0.25  # overnight variance as a fraction of one session's
JUMP_CLIP = 0.4  # largest jump, in log return
_MIN_SLEEP_S = 0.002
_CHUNK = 4096  # events between hand-backs to the event loop at full speed

Emit = Literal["ticks", "bars", "both"]


@lru_cache(maxsize=8192)
def equity_session(epoch_day: int) -> tuple[int, int] | None:
    """(open, close) in ns UTC of the NYSE session opening on a UTC calendar day; None when closed.

    From the equity calendar everything else uses (``calendar_for``): weekends and holidays are
    closed, half days close at 13:00 New York.
    """
    start = epoch_day * DAY_NS
    sessions = calendar_for(AssetClass.EQUITY).sessions_between(start, start + DAY_NS)
    if not sessions:
        return None
    return sessions[0].open, sessions[0].close


def symbol_names(n: int, asset_class: AssetClass | Literal["mix"] = AssetClass.EQUITY) -> list[str]:
    """``SIM001`` … for equities, ``SIM005-USD`` … for crypto: plainly simulated, never a real ticker.

    In a mix every fifth symbol is crypto. Names sort in generation order, so bars of one step come
    out sorted by (ts, symbol).
    """
    width = max(3, len(str(n)))
    out = []
    for i in range(1, n + 1):
        crypto = asset_class is AssetClass.CRYPTO or (asset_class == "mix" and i % 5 == 0)
        out.append(f"SIM{i:0{width}d}" + ("-USD" if crypto else ""))
    return out


@dataclass(slots=True)
class _Step:
    """One bar step across the symbols that traded in it (numpy arrays, rows = symbols)."""

    ts: int
    idx: np.ndarray  # symbol indices that traded
    times: np.ndarray  # (m, k) int64 tick times, sorted per row
    prices: np.ndarray  # (m, k) float64
    sizes: np.ndarray  # (m, k) float64
    volume: np.ndarray  # (m,) sequential sums of sizes (equal to a tick-by-tick running sum)


class SimulatorFeed:
    """Seeded synthetic ticks and/or bars for any number of symbols; see the module docstring.

    ``speed`` is simulated seconds per wall second (``inf``: as fast as possible). The first
    ``warmup_bars`` bars of every symbol are emitted without pacing so indicators are warm at once;
    ``history(n)`` does the same synchronously. The simulation state lives on the feed: ``history``
    and ``stream`` continue from wherever the last call stopped. ``end_ns`` ends the stream (a live
    simulator runs forever otherwise).
    """

    def __init__(
        self,
        symbols: int | list[str] = 20,
        *,
        seed: int = 7,
        speed: float = 60.0,
        start_ns: int | None = None,
        end_ns: int | None = None,
        timeframe: Timeframe = Timeframe.M1,
        emit: Emit = "bars",
        ticks_per_bar: int = 20,
        asset_class: AssetClass | Literal["mix"] = AssetClass.EQUITY,
        warmup_bars: int = 0,
    ) -> None:
        if isinstance(symbols, int):
            if symbols < 1:
                raise FeedError(f"simulator needs at least one symbol (got {symbols})")
            names = symbol_names(symbols, asset_class)
        else:
            names = [str(s) for s in symbols]
            if not names or any(not s for s in names) or len(set(names)) != len(names):
                raise FeedError("simulator symbols must be a non-empty list of distinct, non-empty names")
        if not speed > 0:
            raise FeedError(f"simulator speed must be > 0 (got {speed})")
        if emit not in ("ticks", "bars", "both"):
            raise FeedError(f"simulator emit must be ticks, bars or both (got {emit!r})")
        if ticks_per_bar < 1:
            raise FeedError(f"simulator ticks_per_bar must be >= 1 (got {ticks_per_bar})")
        if warmup_bars < 0:
            raise FeedError(f"simulator warmup_bars must be >= 0 (got {warmup_bars})")
        if asset_class not in (AssetClass.EQUITY, AssetClass.CRYPTO, "mix"):
            raise FeedError(f"simulator asset_class must be equity, crypto or mix (got {asset_class!r})")

        self.name = "sim"
        self.seed = seed
        self.speed = float(speed)
        self.timeframe = timeframe
        self.emit: Emit = emit
        self.ticks_per_bar = ticks_per_bar
        self.warmup_bars = warmup_bars
        self.end_ns = end_ns
        self._names = names
        self._names_arr = np.array(names, dtype=object)
        self._closed = False
        self._tf_ns = timeframe.ns
        start = DEFAULT_START_NS if start_ns is None else int(start_ns)
        self._t = start - start % self._tf_ns
        self._skipped_ns = 0  # closed time jumped over, left out of pacing

        n = len(names)
        if asset_class == "mix":
            crypto = np.array([asset_class_of(s) is AssetClass.CRYPTO for s in names], dtype=bool)
        else:
            crypto = np.full(n, asset_class is AssetClass.CRYPTO, dtype=bool)
        self._crypto = crypto
        self._cls = crypto.astype(np.int64)  # 0 equity, 1 crypto: index into per-class arrays
        self._eq_idx = np.flatnonzero(~crypto)
        self._has_equity = self._eq_idx.size > 0
        self._has_crypto = bool(crypto.any())
        self._init_params(np.random.default_rng(seed))
        self.bars_built = np.zeros(n, dtype=np.int64)
        self.ticks_emitted = 0

    def _init_params(self, rng: np.random.Generator) -> None:
        """Per-symbol character, drawn once; the same generator then drives the steps."""
        n, crypto = len(self._names), self._crypto
        self._rng = rng
        p0 = np.where(
            crypto,
            np.exp(rng.uniform(math.log(0.2), math.log(60_000), n)),
            np.clip(np.exp(rng.normal(math.log(60.0), 0.8, n)), 5.0, 800.0),
        )
        self._logp = np.log(p0)
        self._mu = np.where(crypto, rng.normal(0.10, 0.30, n), rng.normal(0.07, 0.10, n))
        self._sigma = np.where(crypto, rng.uniform(0.45, 1.10, n), rng.uniform(0.12, 0.45, n))
        self._load = np.where(crypto, rng.uniform(0.5, 0.85, n), rng.uniform(0.3, 0.7, n))
        self._jump_rate = np.where(crypto, 12.0, 6.0)  # jumps per trading year
        self._jump_scale = np.where(crypto, 0.035, 0.02)
        self._decimals = np.where(crypto, np.maximum(2, 5 - np.floor(np.log10(p0))), 2).astype(np.int64)
        self._decimal_groups = [
            (int(d), np.flatnonzero(self._decimals == d)) for d in np.unique(self._decimals)
        ]
        bars_per_day = np.where(
            crypto, DAY_NS / self._tf_ns, max(1.0, math.ceil(6.5 * 3600 * NS_PER_SECOND / self._tf_ns))
        )
        daily_units = np.where(
            crypto,
            np.exp(rng.normal(math.log(5e7), 1.2, n)) / p0,
            np.exp(rng.normal(math.log(1.5e6), 1.0, n)),
        )
        self._tick_size = daily_units / (bars_per_day * self.ticks_per_bar)
        self._stressed = np.zeros(2, dtype=bool)  # market-wide regime, per asset class
        self._last_day = np.full(n, -1, dtype=np.int64)

    # -- public API ---------------------------------------------------------------------------

    def symbols(self) -> list[str]:
        return list(self._names)

    @property
    def now_ns(self) -> int:
        """Open time of the next bar step to simulate."""
        return self._t

    def history(self, n_bars: int) -> list[Bar]:
        """Simulate, unpaced, until every symbol has ``n_bars`` more bars; return them in time order.

        For warming indicators before real-time pacing: the stream continues after these bars.
        """
        target = self.bars_built + n_bars
        out: list[Bar] = []
        while bool((self.bars_built < target).any()):
            step = self._step()
            if step is None:
                break
            out.extend(self._bars(step))
        return out

    def steps(self) -> Iterator[list[MarketEvent]]:
        """Synchronous, unpaced events one bar step at a time (backtests and benchmarks)."""
        while not self._closed:
            step = self._step()
            if step is None:
                return
            yield self._events(step)

    async def stream(self) -> AsyncGenerator[MarketEvent, None]:
        """Events in time order: a step's ticks, then the bars they built (bars at their close time)."""
        paced = self.speed != float("inf")
        rate = self.speed * NS_PER_SECOND
        anchor: tuple[float, int] | None = None  # (wall time, paced sim time) when pacing began
        while not self._closed:
            warming = bool((self.bars_built < self.warmup_bars).any())
            step = self._step()
            if step is None:
                return
            events = self._events(step)
            if not paced or warming:
                for i in range(0, len(events), _CHUNK):
                    for ev in events[i : i + _CHUNK]:
                        if self._closed:
                            return
                        yield ev
                    await asyncio.sleep(0)
                continue
            if anchor is None:
                anchor = (time.monotonic(), step.ts - self._skipped_ns)
            wall0, sim0 = anchor
            skipped = self._skipped_ns
            for j, ev in enumerate(events):
                at = ev.end if isinstance(ev, Bar) else ev.ts
                delay = wall0 + (at - skipped - sim0) / rate - time.monotonic()
                if delay > _MIN_SLEEP_S:
                    await asyncio.sleep(delay)
                elif j % _CHUNK == _CHUNK - 1:
                    await asyncio.sleep(0)
                if self._closed:
                    return
                yield ev
            await asyncio.sleep(0)

    async def close(self) -> None:
        """Stop a running stream before its next event; safe to call more than once."""
        self._closed = True

    # -- simulation ---------------------------------------------------------------------------

    def _events(self, step: _Step) -> list[MarketEvent]:
        events: list[MarketEvent] = []
        if self.emit != "bars":
            events.extend(self._ticks(step))
        bars = self._bars(step)
        if self.emit != "ticks":
            events.extend(bars)
        return events

    def _bars(self, step: _Step) -> list[Bar]:
        p = step.prices
        names = self._names_arr[step.idx].tolist()
        tf, ts = self.timeframe, step.ts
        return [
            Bar(s, tf, ts, o, h, lo, c, v)
            for s, o, h, lo, c, v in zip(
                names,
                p[:, 0].tolist(),
                p.max(axis=1).tolist(),
                p.min(axis=1).tolist(),
                p[:, -1].tolist(),
                step.volume.tolist(),
                strict=True,
            )
        ]

    def _ticks(self, step: _Step) -> list[Tick]:
        k = step.times.shape[1]
        flat_t = step.times.ravel()
        order = np.argsort(flat_t, kind="stable")
        names = self._names_arr[np.repeat(step.idx, k)[order]].tolist()
        self.ticks_emitted += flat_t.size
        return [
            Tick(s, t, p, z)
            for s, t, p, z in zip(
                names,
                flat_t[order].tolist(),
                step.prices.ravel()[order].tolist(),
                step.sizes.ravel()[order].tolist(),
                strict=True,
            )
        ]

    def _windows(self, t: int) -> tuple[int, int, tuple[int, int] | None]:
        """Equity trading window [a, b) inside bucket t (a == b when closed) and that day's session."""
        if not self._has_equity:
            return t, t, None
        sess = equity_session(t // DAY_NS)
        if sess is None:
            return t, t, None
        a, b = max(t, sess[0]), min(t + self._tf_ns, sess[1])
        return (a, b, sess) if a < b else (t, t, sess)

    def _next_equity_bucket(self, t: int) -> int:
        day = t // DAY_NS
        while True:
            sess = equity_session(day)
            if sess is not None and sess[1] > t:
                return max(t + self._tf_ns, sess[0] - sess[0] % self._tf_ns)
            day += 1

    def _step(self) -> _Step | None:
        """Advance one bar step; None once ``end_ns`` is reached."""
        tf = self._tf_ns
        while True:
            t = self._t
            if self.end_ns is not None and t >= self.end_ns:
                return None
            a, b, sess = self._windows(t)
            if a < b or self._has_crypto:
                break
            nxt = self._next_equity_bucket(t)
            self._skipped_ns += nxt - t
            self._t = nxt
        self._t = t + tf
        eq_open = a < b
        rng, n, k = self._rng, len(self._names), self.ticks_per_bar
        crypto, cls = self._crypto, self._cls

        # Regime: one Markov switch per asset class, stepping in that class's trading time.
        dt_years = np.array([(b - a) / NS_PER_SECOND / EQUITY_YEAR_S, tf / NS_PER_SECOND / CRYPTO_YEAR_S])
        u_regime = rng.random(2)
        p_switch = 1.0 - np.exp(-dt_years / np.where(self._stressed, STRESSED_YEARS, CALM_YEARS))
        active_cls = np.array([eq_open, True])
        self._stressed ^= (u_regime < p_switch) & active_cls
        stressed = self._stressed[cls]

        dt = dt_years[cls]
        sigma = self._sigma * np.where(stressed, STRESS_VOL, 1.0)
        mu = self._mu + np.where(stressed, STRESS_DRIFT, 0.0)
        dt_tick = dt / k
        z_market = rng.standard_normal((2, k))
        z = rng.standard_normal((n, k))
        load = self._load[:, None]
        shock = load * z_market[cls] + np.sqrt(1.0 - load * load) * z
        r = ((mu - 0.5 * sigma * sigma) * dt_tick)[:, None] + (sigma * np.sqrt(dt_tick))[:, None] * shock

        jumps = rng.poisson(self._jump_rate * np.where(stressed, STRESS_JUMPS, 1.0) * dt)
        jump_size = rng.standard_t(3, n) * self._jump_scale
        jump_at = rng.integers(0, k, n)
        r[np.arange(n), jump_at] += np.clip(jumps * jump_size, -JUMP_CLIP, JUMP_CLIP)

        today = t // DAY_NS
        gap = rng.standard_t(4, n) / math.sqrt(2.0) * sigma * math.sqrt(OVERNIGHT_VAR / 252)
        if eq_open:
            new_session = (~crypto) & (self._last_day >= 0) & (self._last_day != today)
            r[:, 0] += np.where(new_session, gap, 0.0)

        offsets = rng.random((n, k))
        offsets.sort(axis=1)
        noise = rng.lognormal(0.0, 0.7, (n, k))

        active = crypto | eq_open
        idx = np.flatnonzero(active)
        if eq_open:
            self._last_day[~crypto] = today
        path = self._logp[idx, None] + np.cumsum(r[idx], axis=1)
        self._logp[idx] = path[:, -1]

        start = np.where(crypto[idx], t, a)
        length = np.where(crypto[idx], tf, b - a)
        times = start[:, None] + (offsets[idx] * length[:, None]).astype(np.int64)

        prices = np.exp(path)
        if len(self._decimal_groups) == 1:
            np.round(prices, self._decimal_groups[0][0], out=prices)
        else:
            dec = self._decimals[idx]
            for d, _ in self._decimal_groups:
                rows = np.flatnonzero(dec == d)
                prices[rows] = np.round(prices[rows], d)
        np.maximum(prices, 10.0 ** -self._decimals[idx][:, None].astype(np.float64), out=prices)

        curve = self._volume_curve(times, crypto[idx], sess)
        raw = (
            self._tick_size[idx, None]
            * curve
            * noise[idx]
            * np.where(stressed[idx], STRESS_VOLUME, 1.0)[:, None]
        )
        sizes = np.where(
            crypto[idx, None], np.maximum(np.round(raw, 4), 1e-4), np.maximum(np.round(raw), 1.0)
        )
        volume = np.cumsum(sizes, axis=1)[:, -1]  # sequential, so it equals a running tick-by-tick sum

        self.bars_built[idx] += 1
        return _Step(t, idx, times, prices, sizes, volume)

    @staticmethod
    def _volume_curve(times: np.ndarray, crypto: np.ndarray, sess: tuple[int, int] | None) -> np.ndarray:
        """U-shape over the equity session (busy open and close); a mild daily cycle for crypto."""
        hour = (times % DAY_NS) / (3600 * NS_PER_SECOND)
        cycle = 1.0 + 0.35 * np.cos(2 * np.pi * (hour - 15.0) / 24.0)
        if sess is None:
            return cycle
        x = np.clip((times - sess[0]) / (sess[1] - sess[0]), 0.0, 1.0)
        u_shape = (0.5 + 2.0 * (2.0 * x - 1.0) ** 2) / (0.5 + 2.0 / 3.0)
        return np.where(crypto[:, None], cycle, u_shape)
