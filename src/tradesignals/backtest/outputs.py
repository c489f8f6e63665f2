"""A backtest's files: ``trades.csv``, ``equity.csv``, ``summary.json``, ``report.html`` — written whole or not at all.

Everything is written into a temporary folder beside ``out`` and renamed to ``out`` at the end, so a
failure never leaves half a result. The same inputs give byte-identical files: no wall-clock time,
no hostname, floats as Python's shortest round-trip ``repr``, keys in a fixed order.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

from tradesignals.backtest.run import BacktestResult
from tradesignals.domain.market import to_datetime

TRADE_COLUMNS = (
    "symbol",
    "direction",
    "signal_id",
    "decided_at",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "quantity",
    "fees",
    "pnl",
    "return_pct",
    "r",
    "exit_reason",
)
EQUITY_COLUMNS = ("timestamp", "equity", "cash", "exposure", "benchmark")


class OutputExists(Exception):
    """``--out`` names a folder that already holds files."""


def _iso(ns: int) -> str:
    return to_datetime(ns).isoformat()


def _json_safe(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_outputs(result: BacktestResult, out: Path) -> Path:
    """Write the files into ``out`` (created; must not already hold files); returns ``out``."""
    out = out.resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputExists(f"--out {out} already exists and is not an empty folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _trades(result, tmp / "trades.csv")
        _equity(result, tmp / "equity.csv")
        summary = dict(result.summary)
        if result.in_sample:
            summary = {
                "warning": "IN-SAMPLE: the backtest window overlaps the model's training range"
            } | summary
        (tmp / "summary.json").write_text(json.dumps(_json_safe(summary), indent=2) + "\n", encoding="utf-8")
        from tradesignals.backtest.report import render

        (tmp / "report.html").write_text(render(result), encoding="utf-8")
        if result.walk_forward is not None:  # the models each period used, as the registry saved them
            shutil.copytree(result.walk_forward.registry, tmp / "models", symlinks=False)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _trades(result: BacktestResult, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(TRADE_COLUMNS)
        for t in result.portfolio.trades:
            w.writerow(
                (
                    t.symbol,
                    t.direction,
                    t.signal_id,
                    _iso(t.decided_at),
                    _iso(t.entry_time),
                    repr(t.entry_price),
                    _iso(t.exit_time),
                    repr(t.exit_price),
                    repr(t.quantity),
                    repr(t.fees),
                    repr(t.pnl),
                    repr(t.return_pct),
                    repr(t.r),
                    t.exit_reason,
                )
            )


def _equity(result: BacktestResult, path: Path) -> None:
    bench = dict(result.benchmark)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(EQUITY_COLUMNS)
        for p in result.portfolio.equity:
            w.writerow(
                (_iso(p.ts), repr(p.equity), repr(p.cash), repr(p.exposure), repr(bench.get(p.ts, math.nan)))
            )


__all__ = ["EQUITY_COLUMNS", "TRADE_COLUMNS", "OutputExists", "write_outputs"]
