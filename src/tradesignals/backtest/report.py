"""``report.html``: one self-contained page a trader can open offline — inline SVG, no script, no CDN.

Charts are drawn here as SVG paths (a few helpers, no plotting library): equity against the
benchmark, drawdown, rolling Sharpe (63 days), the distribution of net R, the reliability chart
(confidence bucket → realised rate of the rulebook's win, with the diagonal), a monthly-returns heat
map and the trades table. Deterministic: the same result gives the same bytes.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tradesignals.backtest.metrics import PERIODS_PER_YEAR, daily_equity, returns_of
from tradesignals.backtest.run import BacktestResult
from tradesignals.domain.market import to_datetime

W, H, PAD = 860, 240, 40
ROLLING = 63


def _fmt(x: object, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.2%}" if pct else f"{x:,.3f}"
    return html.escape(str(x))


def _scale(lo: float, hi: float, a: float, b: float) -> tuple[float, float]:
    span = (hi - lo) or 1.0
    return (b - a) / span, a - lo * (b - a) / span


def _line_chart(series: Sequence[tuple[str, Sequence[float], str]], title: str, *, zero: bool = False) -> str:
    """Lines over a shared x (index), each (label, values, colour); NaN breaks a line."""
    finite = [v for _, vs, _ in series for v in vs if math.isfinite(v)]
    if not finite:
        return f"<h3>{html.escape(title)}</h3><p>no data</p>"
    lo, hi = min(finite), max(finite)
    if zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    n = max(len(vs) for _, vs, _ in series)
    sx, ox = _scale(0, max(n - 1, 1), PAD, W - 10)
    sy, oy = _scale(lo, hi, H - 25, 10)
    parts = [f'<svg viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="{html.escape(title)}">']
    for v in (lo, (lo + hi) / 2, hi):
        y = v * sy + oy
        parts.append(f'<line x1="{PAD}" x2="{W - 10}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="2" y="{y + 4:.1f}" class="tick">{v:,.3g}</text>')
    for label, vs, colour in series:
        d, pen = [], "M"
        for i, v in enumerate(vs):
            if not math.isfinite(v):
                pen = "M"
                continue
            d.append(f"{pen}{i * sx + ox:.1f},{v * sy + oy:.1f}")
            pen = "L"
        parts.append(
            f'<path d="{" ".join(d)}" fill="none" stroke="{colour}" stroke-width="1.5"><title>{html.escape(label)}</title></path>'
        )
    legend = " ".join(f'<span style="color:{c}">■ {html.escape(lbl)}</span>' for lbl, _, c in series)
    return f"<h3>{html.escape(title)}</h3><div class=legend>{legend}</div>" + "".join(parts) + "</svg>"


def _bars_chart(
    labels: Sequence[str], values: Sequence[float], title: str, diagonal: Sequence[float] | None = None
) -> str:
    if not values:
        return f"<h3>{html.escape(title)}</h3><p>no data</p>"
    hi = max([*values, *(diagonal or []), 0.0]) or 1.0
    lo = min([*values, 0.0])
    sy, oy = _scale(lo, hi, H - 25, 10)
    bw = (W - PAD - 10) / len(values)
    parts = [f'<svg viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="{html.escape(title)}">']
    for i, (lab, v) in enumerate(zip(labels, values, strict=True)):
        y0, y1 = 0 * sy + oy, v * sy + oy
        x = PAD + i * bw
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{min(y0, y1):.1f}" width="{max(bw - 2, 1):.1f}" height="{abs(y1 - y0):.1f}" '
            f'fill="#4a78c2"><title>{html.escape(lab)}: {v:.4g}</title></rect>'
        )
        if len(values) <= 30:
            parts.append(
                f'<text x="{x + bw / 2:.1f}" y="{H - 8}" class="tick" text-anchor="middle">{html.escape(lab)}</text>'
            )
        if diagonal is not None:
            parts.append(
                f'<circle cx="{x + bw / 2:.1f}" cy="{diagonal[i] * sy + oy:.1f}" r="3" fill="#d2553f"/>'
            )
    parts.append(
        f'<text x="2" y="14" class="tick">{hi:.3g}</text><text x="2" y="{H - 25}" class="tick">{lo:.3g}</text>'
    )
    return f"<h3>{html.escape(title)}</h3>" + "".join(parts) + "</svg>"


def _heatmap(dates: Sequence[str], values: np.ndarray, start: float) -> str:
    """Monthly returns: a row per year, a column per month, cells coloured by sign and size."""
    month_end: dict[str, float] = {}
    for d, v in zip(dates, values, strict=True):
        month_end[d[:7]] = float(v)
    prev, rets = start, {}
    for m, v in month_end.items():
        rets[m] = v / prev - 1.0
        prev = v
    years = sorted({m[:4] for m in rets})
    rows = ["<tr><th></th>" + "".join(f"<th>{i:02d}</th>" for i in range(1, 13)) + "</tr>"]
    for y in years:
        cells = []
        for mo in range(1, 13):
            r = rets.get(f"{y}-{mo:02d}")
            if r is None:
                cells.append("<td></td>")
                continue
            a = min(abs(r) / 0.05, 1.0)
            colour = f"rgba(46,139,87,{a:.2f})" if r >= 0 else f"rgba(210,85,63,{a:.2f})"
            cells.append(f'<td style="background:{colour}">{r:+.1%}</td>')
        rows.append(f"<tr><th>{y}</th>{''.join(cells)}</tr>")
    return "<h3>Monthly returns</h3><table class=heat>" + "".join(rows) + "</table>"


def _d(x: object) -> dict[str, Any]:
    """A summary section as a dict (absent or not a dict: empty)."""
    return x if isinstance(x, dict) else {}


def render(result: BacktestResult) -> str:
    """The report page for ``result``."""
    s = result.summary
    cash = result.spec.cash
    eq = result.portfolio.equity
    dates, values = daily_equity([(p.ts, p.equity) for p in eq])
    _, bench = daily_equity(result.benchmark)
    curve = np.concatenate([[cash], values]) if len(values) else np.array([cash])
    drawdown = (curve / np.maximum.accumulate(curve) - 1.0)[1:]
    r = returns_of(cash, values) if len(values) else np.array([])
    rolling = [math.nan] * len(r)
    for i in range(ROLLING - 1, len(r)):
        w = r[i - ROLLING + 1 : i + 1]
        sd = float(np.std(w, ddof=1))
        rolling[i] = float(np.mean(w)) / sd * math.sqrt(PERIODS_PER_YEAR) if sd > 0 else math.nan
    trades = result.portfolio.trades
    rs = [t.r for t in trades]
    edges = np.arange(-3.0, 3.5, 0.5)
    hist: list[int] = (
        [int(c) for c in np.histogram(np.clip(rs, -2.99, 3.49), bins=np.append(edges, 3.5))[0]] if rs else []
    )
    rel: list[dict[str, Any]] = list(s.get("reliability") or [])  # type: ignore[call-overload]
    first = (
        "<p class=warn>IN-SAMPLE: the backtest window overlaps the model's training range.</p>"
        if result.in_sample
        else ""
    )
    keys = [
        ("total_return", True), ("annualised_return", True), ("volatility", True), ("sharpe", False),
        ("sortino", False), ("calmar", False), ("max_drawdown", True), ("max_drawdown_days", False),
        ("exposure", True), ("turnover", False), ("trades", False), ("hit_rate", True),
        ("avg_net_r", False), ("expectancy", False), ("profit_factor", False), ("final_equity", False),
    ]  # fmt: skip
    bench_figs = _d(s.get("benchmark"))
    head = "".join(f"<th>{html.escape(name)}</th>" for name in bench_figs)
    figure_rows = "".join(
        f"<tr><td>{k}</td><td>{_fmt(s.get(k), pct)}</td>"
        + "".join(f"<td>{_fmt(b.get(k), pct)}</td>" for b in bench_figs.values())
        + "</tr>"
        for k, pct in keys
    )
    trade_rows = "".join(
        f"<tr><td>{html.escape(t.symbol)}</td><td>{t.direction}</td><td>{to_datetime(t.entry_time):%Y-%m-%d}</td>"
        f"<td>{t.entry_price:.2f}</td><td>{to_datetime(t.exit_time):%Y-%m-%d}</td><td>{t.exit_price:.2f}</td>"
        f"<td>{t.quantity:g}</td><td>{t.pnl:,.2f}</td><td>{t.r:+.2f}</td><td>{t.exit_reason}</td></tr>"
        for t in trades
    )
    not_taken = _d(s.get("signals")).get("not_taken", {})
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Backtest — {html.escape(str(_d(s.get("data")).get("file", "")))}</title>
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:900px;color:#222}}
table{{border-collapse:collapse;margin:8px 0}}td,th{{padding:2px 8px;border-bottom:1px solid #eee;text-align:right}}
td:first-child,th:first-child{{text-align:left}}.grid{{stroke:#eee}}.tick{{font-size:10px;fill:#666}}
.warn{{background:#fde2dc;padding:8px;font-weight:bold}}.heat td{{font-size:11px;min-width:44px}}
.legend{{font-size:12px}}.trades{{max-height:400px;overflow:auto;display:block}}
</style></head><body>
{first}<h1>Backtest</h1>
<p>{html.escape(str(_d(s.get("settings")).get("from")))} → {html.escape(str(_d(s.get("settings")).get("to")))},
profile {html.escape(result.spec.profile)}, starting cash {cash:,.0f}. Signals not taken: {html.escape(str(not_taken))}.</p>
<h3>Figures</h3><table><tr><th></th><th>strategy</th>{head}</tr>{figure_rows}</table>
{_line_chart([("strategy", list(values), "#4a78c2"), ("benchmark", list(bench), "#888")], "Equity against the benchmark")}
{_line_chart([("drawdown", list(drawdown), "#d2553f")], "Drawdown", zero=True)}
{_line_chart([("rolling Sharpe", rolling, "#2e8b57")], f"Rolling Sharpe ({ROLLING} days)", zero=True)}
{_heatmap(dates, values, cash)}
{_bars_chart([f"{e:+.1f}" for e in edges], [float(x) for x in hist], "Net R per trade (count)")}
{_bars_chart([f"{b['lo']:.2f}" for b in rel], [float(b["hit_rate"]) for b in rel], "Reliability: realised win rate by confidence bucket (dot: mean confidence)", [float(b["mean_confidence"]) for b in rel])}
<h3>Trades ({len(trades)})</h3><table class=trades><tr><th>symbol</th><th>dir</th><th>entry</th><th>price</th><th>exit</th><th>price</th><th>qty</th><th>pnl</th><th>R</th><th>reason</th></tr>{trade_rows}</table>
</body></html>
"""


__all__ = ["render"]
