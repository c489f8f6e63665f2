"""One signal's chart as PNG bytes: the recent bars up to its decision, its entry, stop and targets.

Deterministic: the same signal and the same bars give the same bytes, on any machine with the same
library versions. Nothing in the output depends on the clock or the environment: the Agg backend
(no display), DejaVu Sans (shipped inside matplotlib, so no system font is looked up), fixed size and
dpi, and PNG metadata emptied (matplotlib writes its version as ``Software`` otherwise; PNG has no
date unless asked). Rendering touches matplotlib and mplfinance state that is not thread-safe, so
renders are serialised by a lock; callers run them in a worker thread (``images.service``), never
on the event loop and never in the engine's bar → signal path.
"""

from __future__ import annotations

import io
import threading
from datetime import UTC
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before mplfinance imports pyplot: never a GUI backend in a server

import mplfinance as mpf
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tradesignals.domain.signals import Direction, Signal

RECENT_BARS = 60
"""Bars shown: up to and including the deciding bar."""

WIDTH_IN, HEIGHT_IN, DPI = 8.0, 4.5, 100

_RC: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "text.hinting": "force_autohint",
    "text.antialiased": True,
    "lines.antialiased": True,
    "patch.antialiased": True,
    "path.simplify": True,
    "agg.path.chunksize": 0,
}
"""Every setting the picture depends on, fixed here so a matplotlibrc elsewhere cannot change it."""

_STYLE = mpf.make_mpf_style(
    base_mpf_style="charles",
    marketcolors=mpf.make_marketcolors(up="#26a69a", down="#ef5350", inherit=True),
    gridstyle=":",
    y_on_right=False,
)
ENTRY, STOP, TARGET = "#1f5fbf", "#d62728", "#2ca02c"
_LOCK = threading.Lock()


def bars_frame(bars: pd.DataFrame) -> pd.DataFrame:
    """A bar-store frame (ts in UTC ns, open…volume) → mplfinance's OHLCV frame on a UTC index."""
    frame = bars.sort_values("ts").drop_duplicates("ts", keep="last").tail(RECENT_BARS)
    out = pd.DataFrame(
        {
            "Open": frame["open"].to_numpy(dtype=float),
            "High": frame["high"].to_numpy(dtype=float),
            "Low": frame["low"].to_numpy(dtype=float),
            "Close": frame["close"].to_numpy(dtype=float),
            "Volume": frame["volume"].to_numpy(dtype=float),
        },
        index=pd.DatetimeIndex(pd.to_datetime(frame["ts"].to_numpy(), unit="ns", utc=True), name="Date"),
    )
    return out


def title_lines(signal: Signal) -> tuple[str, str]:
    """What the image says in words: symbol, direction and type; confidence and expiry (UTC)."""
    arrow = "▲" if signal.direction is Direction.LONG else "▼"
    head = f"{signal.symbol}  {arrow} {signal.direction.value.upper()}  ·  {signal.type.value}  ·  {signal.timeframe}"
    expires = signal.expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sub = f"confidence {signal.confidence:.1%}  ·  expires {expires}  ·  {signal.id}"
    return head, sub


def render_png(signal: Signal, bars: pd.DataFrame) -> bytes:
    """The chart of ``signal`` over ``bars`` (a bar-store frame; only the last RECENT_BARS are drawn).

    Without any bar (history not recorded) the plan's levels are drawn alone, with a note.
    """
    ohlc = bars_frame(bars) if len(bars) else None
    levels = [("entry", signal.entry, ENTRY), ("stop", signal.stop, STOP)] + [
        (f"T{i}", t, TARGET) for i, t in enumerate(signal.targets, start=1)
    ]
    with _LOCK, matplotlib.rc_context(_RC):  # type: ignore[arg-type]
        fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, facecolor="white")
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0.07, 0.1, 0.82, 0.76))
        if ohlc is not None and len(ohlc) > 0:
            mpf.plot(
                ohlc,
                type="candle",
                ax=ax,
                style=_STYLE,
                hlines={
                    "hlines": [p for _, p, _ in levels],
                    "colors": [c for _, _, c in levels],
                    "linestyle": "--",
                    "linewidths": 1.0,
                },
                warn_too_much_data=10_000,
                datetime_format="%m-%d %H:%M" if _intraday(ohlc) else "%Y-%m-%d",
                xrotation=0,
                ylabel="",
            )
        else:
            for _, price, color in levels:
                ax.axhline(price, color=color, linestyle="--", linewidth=1.0)
            lo, hi = min(p for _, p, _ in levels), max(p for _, p, _ in levels)
            pad = (hi - lo) * 0.1 or abs(hi) * 0.01 or 1.0
            ax.set_ylim(lo - pad, hi + pad)
            ax.set_xticks([])
            ax.text(0.5, 0.5, "no bar history recorded", transform=ax.transAxes, ha="center", color="#666")
        for name, price, color in levels:
            ax.annotate(
                f"{name} {price:g}",
                xy=(1.0, price),
                xycoords=("axes fraction", "data"),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
                color=color,
                annotation_clip=False,
            )
        head, sub = title_lines(signal)
        fig.text(0.07, 0.95, head, fontsize=11, fontweight="bold", va="center")
        fig.text(0.07, 0.90, sub, fontsize=8.5, color="#444", va="center")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _intraday(ohlc: pd.DataFrame) -> bool:
    if len(ohlc) < 2:
        return False
    step = ohlc.index[1:] - ohlc.index[:-1]
    return bool(step.min() < pd.Timedelta(days=1))


__all__ = ["RECENT_BARS", "bars_frame", "render_png", "title_lines"]
