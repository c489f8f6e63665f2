"""One backtest: a file of bars through the engine `build_engine` makes, then the portfolio, then figures.

Bad input is refused before any bar is read, each with one line (`BacktestError`): an unknown
profile, an empty or inverted date range, a file whose bars fall outside it, a model that is missing
or trained on other features (the engine builder's own check), and a window that starts inside the
model's training range (``allow_in_sample`` lets it run; the report's first line then says so).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradesignals.backtest.benchmark import buy_and_hold
from tradesignals.backtest.engine_pass import EngineRun, run_engine
from tradesignals.backtest.metrics import curve_figures, summarize
from tradesignals.backtest.portfolio import PortfolioConfig, PortfolioResult, simulate
from tradesignals.config import ConfigError, Settings
from tradesignals.domain.market import Bar, Timeframe, to_datetime
from tradesignals.domain.risk import PRESETS, ProfileName
from tradesignals.engine.pipeline import Scorer
from tradesignals.marketdata.feeds.base import FeedError
from tradesignals.marketdata.feeds.replay import ReplayFeed
from tradesignals.models.train import TrainConfig
from tradesignals.wiring.engine_builder import build_engine, model_name_for, model_registry

if TYPE_CHECKING:
    from tradesignals.backtest.walk_forward import WalkForward


class BacktestError(Exception):
    """A backtest that cannot run as asked; the message is one line for a person."""


@dataclass(frozen=True, slots=True)
class BacktestSpec:
    data: Path
    profile: str = "moderate"
    cash: float = 100_000.0
    start_ns: int | None = None
    end_ns: int | None = None
    benchmark: str | None = None
    allow_in_sample: bool = False
    model_dir: Path | None = None  # a model registry directory (what `tradesignals train --out` writes)
    max_open: int = 10
    max_per_symbol: int = 1
    retrain_every: str | None = None  # walk-forward: "3M", "1Y"… (with train_window)
    train_window: str | None = None
    train_config: TrainConfig | None = None  # walk-forward training settings (default: TrainConfig())


@dataclass(slots=True)
class BacktestResult:
    spec: BacktestSpec
    run: EngineRun
    portfolio: PortfolioResult
    benchmark: list[tuple[int, float]]
    summary: dict[str, object] = field(default_factory=dict)
    in_sample: bool = False
    walk_forward: WalkForward | None = None


def _profile(name: str) -> PortfolioConfig | None:
    try:
        return PortfolioConfig(cash=1.0, profile=PRESETS[ProfileName(name)])
    except ValueError:
        return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _iso(ns: int | None) -> str | None:
    return None if ns is None else to_datetime(ns).isoformat()


def run_backtest(
    settings: Settings,
    spec: BacktestSpec,
    *,
    scorer_for: Callable[[Timeframe], Scorer] | None = None,
    progress: Callable[[int], None] | None = None,
    note: Callable[[str], None] | None = None,
) -> BacktestResult:
    """Run ``spec`` with the engine ``settings`` describe; raises `BacktestError` on bad input."""
    if _profile(spec.profile) is None:
        names = ", ".join(p.value for p in ProfileName)
        raise BacktestError(f"unknown profile {spec.profile!r}; choose one of {names}")
    try:
        config = PortfolioConfig(
            cash=spec.cash,
            profile=PRESETS[ProfileName(spec.profile)],
            max_open=spec.max_open,
            max_per_symbol=spec.max_per_symbol,
        )
    except ValueError as exc:
        raise BacktestError(str(exc)) from None
    if spec.start_ns is not None and spec.end_ns is not None and spec.start_ns > spec.end_ns:
        raise BacktestError(
            f"empty date range: --from {_iso(spec.start_ns)} is after --to {_iso(spec.end_ns)}"
        )
    try:
        feed = ReplayFeed(spec.data, timeframe=None)
    except FeedError as exc:
        raise BacktestError(str(exc)) from None
    first, last = int(feed._ts[0]), int(feed._ts[-1])
    lo = first if spec.start_ns is None else max(first, spec.start_ns)
    hi = last if spec.end_ns is None else min(last, spec.end_ns)
    if lo > hi:
        raise BacktestError(
            f"empty date range: {spec.data.name} holds bars from {_iso(first)[:10]} to {_iso(last)[:10]}, "  # type: ignore[index]
            f"none between {_iso(spec.start_ns)} and {_iso(spec.end_ns)}"
        )
    wf: WalkForward | None = None
    if spec.retrain_every is not None or spec.train_window is not None:
        if scorer_for is not None:
            raise BacktestError("walk-forward trains its own models; it takes no scorer")
        wf, lo = _walk_forward(settings, spec, feed.timeframe, first, lo, hi, note)
        scorer_for = wf.first
    if spec.benchmark is not None and spec.benchmark not in feed.symbols():
        raise BacktestError(f"--benchmark {spec.benchmark}: no such symbol in {spec.data.name}")
    if spec.model_dir is not None and wf is None:
        settings = _with_registry(settings, spec.model_dir, feed.timeframe)
    try:
        engine = build_engine(settings, warm=(feed.timeframe,), scorer_for=scorer_for)
    except ConfigError as exc:
        raise BacktestError(str(exc)) from None
    in_sample = False
    model = None
    if scorer_for is None:
        model = _model_info(settings, feed.timeframe)
        if model is not None and model.training_cut_ns is not None and lo <= model.training_cut_ns:
            if not spec.allow_in_sample:
                raise BacktestError(
                    f"model {model.version} was trained on data up to {_iso(model.training_cut_ns)}; "
                    f"the backtest starts {_iso(lo)}: pass --from after the training cut, "
                    "or --allow-in-sample to run anyway"
                )
            in_sample = True

    async def bars() -> AsyncIterator[Bar]:
        async for bar in feed.bars():
            yield bar

    stream = _sync(bars())
    if wf is not None:
        stream = wf.drive(engine, feed.timeframe, stream)
    run = run_engine(
        engine, stream, start_ns=lo, end_ns=hi, asset_class=settings.asset_class, progress=progress
    )
    portfolio = simulate(run, config, engine.costs, asset_class=settings.asset_class)
    bench_eq = buy_and_hold(run, spec.cash)
    bench_sym = buy_and_hold(run, spec.cash, spec.benchmark) if spec.benchmark else None
    summary = summarize(spec.cash, portfolio.equity, portfolio.trades)
    summary["signals"] = {
        "published": len(run.signals),
        "taken": portfolio.taken,
        "not_filled": portfolio.not_filled,
        "not_taken": dict(sorted(portfolio.not_taken.items())),
        "decided_before_start": run.before_start,
    }
    summary["reliability"] = _reliability(run)
    summary["benchmark"] = {"equal_weight": curve_figures(spec.cash, bench_eq)}
    if bench_sym is not None:
        summary["benchmark"][spec.benchmark] = curve_figures(spec.cash, bench_sym)  # type: ignore[index]
    summary["in_sample"] = in_sample
    summary["settings"] = {
        "profile": spec.profile,
        "cash": spec.cash,
        "from": _iso(lo),
        "to": _iso(hi),
        "max_open": spec.max_open,
        "max_per_symbol": spec.max_per_symbol,
        "benchmark": spec.benchmark,
        "plan": {
            "stop_atr": engine.plan.stop_atr,
            "target_r": list(engine.plan.target_r),
            "swing_sessions": engine.plan.swing_sessions,
            "cooldown_bars": engine.plan.cooldown_bars,
        },
        "costs": engine.costs.as_dict(),
        "min_edge": settings.min_edge,
    }
    summary["data"] = {
        "file": spec.data.name,
        "sha256": _sha256(spec.data),
        "timeframe": feed.timeframe.value,
        "bars": run.bars,
        "symbols": len(run.symbols),
        "skipped_bars": feed.skipped,
    }
    if wf is not None:
        summary["model"] = {
            "walk_forward": {"retrain_every": spec.retrain_every, "train_window": spec.train_window},
            "periods": [p.as_dict() for p in wf.periods],
        }
    elif model is not None:
        summary["model"] = {
            "name": model.name,
            "version": model.version,
            "training_cut": _iso(model.training_cut_ns),
        }
    else:
        summary["model"] = {
            "version": sorted({str(getattr(s, "version", "?")) for s in engine.scorers().values()})
        }
    return BacktestResult(spec, run, portfolio, bench_sym or bench_eq, summary, in_sample, wf)


def _walk_forward(
    settings: Settings,
    spec: BacktestSpec,
    timeframe: Timeframe,
    first: int,
    lo: int,
    hi: int,
    note: Callable[[str], None] | None,
) -> tuple[WalkForward, int]:
    """The periods' models and the window's start (without --from: one training window after the data's start)."""
    from tradesignals.backtest.walk_forward import (
        PeriodError,
        parse_period,
        period_starts,
        shift,
        train_periods,
    )

    if spec.retrain_every is None or spec.train_window is None:
        raise BacktestError("walk-forward needs both --retrain-every and --train-window (e.g. 3M and 3Y)")
    if spec.model_dir is not None:
        raise BacktestError(
            "--model and --retrain-every: walk-forward trains its own models; give one or the other"
        )
    try:
        every = parse_period(spec.retrain_every, "--retrain-every")
        window = parse_period(spec.train_window, "--train-window")
    except PeriodError as exc:
        raise BacktestError(str(exc)) from None
    if spec.start_ns is None:
        lo = max(lo, shift(first, window))
        if lo > hi:
            raise BacktestError(
                f"walk-forward: {spec.data.name} ends {_iso(hi)[:10]}, before one --train-window "  # type: ignore[index]
                f"{spec.train_window} of data has passed; nothing is left to trade"
            )
    starts = period_starts(lo, hi, every)
    try:
        wf = train_periods(
            settings,
            spec.data,
            timeframe,
            starts,
            hi,
            window,
            config=spec.train_config or TrainConfig(),
            note=note,
        )
    except ValueError as exc:
        raise BacktestError(str(exc)) from None
    return wf, lo


def _with_registry(settings: Settings, model_dir: Path, timeframe: Timeframe) -> Settings:
    """Settings whose registry is ``model_dir`` and whose model is the one for these bars.

    The engine builder reads models from ``TS_HOME/models``; a registry elsewhere is reached through
    a private home whose ``models`` links to it, so the builder's own loading and checks apply.
    """
    if not (model_dir / "swing").is_dir() and not (model_dir / "day").is_dir():
        raise BacktestError(f"--model {model_dir}: not a model registry (no swing/ or day/ model in it)")
    name = "swing" if timeframe is Timeframe.D1 else "day"
    if not (model_dir / name).is_dir():
        raise BacktestError(
            f"--model {model_dir}: holds no {name!r} model for the data's {timeframe.value} bars"
        )
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="ts-backtest-home-"))
    (home / "models").symlink_to(model_dir.resolve(), target_is_directory=True)
    return settings.model_copy(update={"home": home, "model": name, "model_store": None})


@dataclass(frozen=True, slots=True)
class ModelInfo:
    name: str
    version: str
    training_cut_ns: int | None


def _model_info(settings: Settings, timeframe: Timeframe) -> ModelInfo | None:
    """The registered model the engine scores these bars with (None for the placeholder rule)."""
    from tradesignals.models.evaluate import EvaluationError, training_cut_ns

    name = model_name_for(settings, timeframe)
    if name is None:
        return None
    registry = model_registry(settings)
    if registry.latest_version(name) is None:
        return None
    meta = registry.metadata(name)
    try:
        cut: int | None = training_cut_ns(meta)
    except EvaluationError:
        cut = None
    return ModelInfo(name, f"{meta.name}/{meta.version}", cut)


def _reliability(run: EngineRun) -> list[dict[str, float | int]]:
    """The track record's reliability table over every signal the engine published in the window.

    End-of-data closes are left out: the plan never exited them, so they are no evidence of its win.
    """
    from dataclasses import asdict

    from tradesignals.engine.track_record import HistoryRow, reliability

    rows = [
        HistoryRow.of(p.signal, i, run.outcomes[p.signal.id].to_event())
        for i, p in enumerate(run.signals)
        if p.signal.id not in run.end_of_data
    ]
    return [asdict(b) for b in reliability(rows)]


def _sync(agen: AsyncIterator[Bar]) -> Iterator[Bar]:
    """Iterate the replay feed's async generator from synchronous code, without an event loop.

    At full speed the feed only ever awaits ``asyncio.sleep(0)`` (a bare yield), so each step can be
    driven by ``send(None)``; this is ~10x cheaper per bar than a loop round trip.
    """
    while True:
        step: Any = agen.__anext__()
        try:
            while True:
                step.send(None)
        except StopIteration as stop:
            yield stop.value
        except StopAsyncIteration:
            return


__all__ = ["BacktestError", "BacktestResult", "BacktestSpec", "run_backtest"]
