"""Fitting stored signals to a risk profile: the volatility each profile filters on, read from the bar
store, and ``domain.risk.fit`` on it.

One place for "does this profile take this signal, and how large": ``GET /api/signals?profile=``
sizes a page with it, and the push sender (``push.worker``) notifies a premium user of a new signal
only when it accepts it for their profile. The volatility is measured from the stored bars of the
signal's own timeframe up to its decision (``domain.risk.annualised_volatility``); a signal whose
volatility cannot be measured is refused, as ``fit`` refuses any limit it cannot check. Each signal
is fitted on its own, as if nothing else were open.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import numpy as np

from tradesignals.domain.market import Timeframe, to_ns
from tradesignals.domain.risk import PRESETS, VOLATILITY_BARS, Fit, ProfileName, annualised_volatility, fit
from tradesignals.domain.sessions import DAY_NS, asset_class_of
from tradesignals.domain.signals import Signal
from tradesignals.storage.timeseries import BarStore


def volatility_window_ns(timeframe: Timeframe) -> int:
    """How far back to read for VOLATILITY_BARS + 1 closes: 4× the bars' span, and 10 days at least,
    which covers nights, weekends and holidays between bars."""
    return max(4 * (VOLATILITY_BARS + 1) * timeframe.ns, 10 * DAY_NS)


def volatilities(store: BarStore, signals: Sequence[Signal]) -> dict[str, float | None]:
    """Annualised volatility of each signal's symbol at its decision, from the stored bars.

    One read per (symbol, timeframe); the bars counted are those opened before the decision (the
    deciding bar included), never a later one.
    """
    out: dict[str, float | None] = {}
    groups: dict[tuple[str, Timeframe], list[tuple[Signal, int]]] = {}
    for s in signals:
        try:
            timeframe = Timeframe.parse(s.timeframe)
        except ValueError:
            out[s.id] = None
            continue
        groups.setdefault((s.symbol, timeframe), []).append((s, to_ns(s.decided_at or s.created_at)))
    for (symbol, timeframe), members in groups.items():
        decisions = [ns for _, ns in members]
        start = min(decisions) - volatility_window_ns(timeframe)
        frame = store.read(timeframe, [symbol], start, max(decisions) + 1)
        ts = frame["ts"].to_numpy(dtype=np.int64)
        closes = frame["close"].to_numpy(dtype=np.float64)
        asset = asset_class_of(symbol)
        for s, decided in members:
            upto = int(np.searchsorted(ts, decided, side="left"))  # bars with ts < decided
            window = closes[max(0, upto - VOLATILITY_BARS - 1) : upto].tolist()
            out[s.id] = annualised_volatility(window, timeframe, asset)
    return out


def accepted(
    store: BarStore, signals: Sequence[Signal], profile: ProfileName
) -> dict[str, tuple[Fit, float]]:
    """The signals ``profile`` accepts, each with its ``Fit`` and the volatility it was judged on."""
    preset = PRESETS[profile]
    vols = volatilities(store, signals)
    out: dict[str, tuple[Fit, float]] = {}
    for s in signals:
        vol = vols[s.id]
        f = fit(s, preset, volatility=vol, sector=None, open_exposure_by_sector={})
        if f.accepted and vol is not None:
            out[s.id] = (f, vol)
    return out


def deciding_bar_stored(store: BarStore, signal: Signal) -> bool:
    """Whether the bar store holds the bar ``signal`` was decided on (the recorder stores bars beside
    the engine, so it may lag a moment behind a new signal). Unknown timeframe: nothing to wait for."""
    try:
        timeframe = Timeframe.parse(signal.timeframe)
    except ValueError:
        return True
    decided = to_ns(signal.decided_at or signal.created_at)
    return len(store.read(timeframe, [signal.symbol], decided - timeframe.ns, decided)) > 0


async def wait_for_deciding_bar(
    store: BarStore, signal: Signal, wait_s: float, stop: asyncio.Event | None = None
) -> bool:
    """Give the recorder up to ``wait_s`` to store the deciding bar, so what is read of the bars
    (the volatility a profile judges, the chart) ends on it; False when it did not come in time."""
    deadline = time.monotonic() + wait_s
    while not await asyncio.to_thread(deciding_bar_stored, store, signal):
        if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
            return False
        await asyncio.sleep(0.2)
    return True


__all__ = ["accepted", "deciding_bar_stored", "volatilities", "volatility_window_ns", "wait_for_deciding_bar"]
