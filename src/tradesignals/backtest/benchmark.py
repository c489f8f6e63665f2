"""Buy-and-hold benchmarks on the backtest's own bars: the universe at equal weight, or one symbol.

Bought at the close of the first bar time of the window (the first time a follower could have), held
to the end, no costs (they would be one entry of a few basis points). Equal weight splits the cash
over the symbols that have a bar at that first time; a symbol whose bars stop keeps its last value.
"""

from __future__ import annotations

from tradesignals.backtest.engine_pass import EngineRun


def buy_and_hold(run: EngineRun, cash: float, symbol: str | None = None) -> list[tuple[int, float]]:
    """(ts, value) at each step of ``run``: equal weight over the first step's symbols, or ``symbol``."""
    if not run.steps:
        return []
    shares: dict[str, float] = {}
    marks: dict[str, float] = {}
    out: list[tuple[int, float]] = []
    for k, ts in enumerate(run.steps):
        for sym, close in run.closes[k]:
            marks[sym] = close
        if not shares:
            if symbol is None and k == 0:
                names = sorted(marks)
                shares = {s: cash / len(names) / marks[s] for s in names}
            elif symbol is not None and symbol in marks:
                shares = {symbol: cash / marks[symbol]}
        value = sum(q * marks[s] for s, q in shares.items()) if shares else cash
        out.append((ts, value))
    return out


__all__ = ["buy_and_hold"]
