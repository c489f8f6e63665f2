"""The one engine builder: Settings → a ready `SignalEngine` with its scorers, plan, costs and clocks.

`demo`, every `serve` role, the benchmarks and the backtest build their engine here and nowhere
else, so a setting means the same thing in each of them. The builder is a pure function of the
settings: it starts no task and does no I/O of its own; the only I/O is loading (or, for a fresh
demo, training) a model, and that happens when a scorer is first needed.

The engine learns its timeframe from the data: every `Bar` carries one, and the engine asks
``scorer_for(bar.timeframe)`` the first time it sees it. A process that runs only the engine role
therefore needs no knowledge of the feed — daily bars get the swing model and plan, minute bars the
day model — and no default can disagree with the bars. The one timeframe that is a setting is the one
ticks are aggregated to (``TS_TICK_TIMEFRAME``), because ticks carry none.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from tradesignals.config import ConfigError, Settings
from tradesignals.domain.costs import DEFAULT_COSTS, CostSchedule
from tradesignals.domain.market import Timeframe
from tradesignals.domain.sessions import SessionCalendar
from tradesignals.domain.trade_plan import PlanParams
from tradesignals.engine.event_rules import CatalystBook, CatalystReaction, EarningsPlay, EventRule
from tradesignals.engine.pipeline import Scorer, SignalEngine
from tradesignals.marketdata.calendar import calendar_resolver
from tradesignals.news.earnings import EarningsCalendar

if TYPE_CHECKING:
    from tradesignals.models.registry import ModelRegistry

log = structlog.get_logger(__name__)

COST_FIELDS = ("commission_bp", "half_spread_bp", "slippage_bp", "borrow_bp_per_day")


def plan_params(settings: Settings) -> PlanParams:
    """The trade plan the engine publishes (``TS_PLAN_*``); each field is checked where it is read."""
    try:
        return PlanParams(
            stop_atr=settings.plan_stop_atr,
            target_r=settings.plan_target_r,
            swing_sessions=settings.plan_swing_sessions,
            cooldown_bars=settings.plan_cooldown_bars,
        )
    except ValueError as exc:  # settings validate each field; this guards combinations
        raise ConfigError(f"TS_PLAN_*: {exc}") from None


def cost_schedule(settings: Settings) -> CostSchedule:
    """The documented defaults (``domain.costs``), with each ``TS_COSTS_<CLASS>_<FIELD>`` that is set."""
    by_class = {}
    for asset, default in DEFAULT_COSTS.items():
        changes = {
            name: value
            for name in COST_FIELDS
            if (value := getattr(settings, f"costs_{asset.value}_{name}")) is not None
        }
        by_class[asset] = default.replace(**changes)
    return CostSchedule(by_class)


def symbol_calendars(settings: Settings) -> Callable[[str], SessionCalendar]:
    """Symbol → its calendar, by the one rule (``domain.sessions.asset_class_of``).

    ``TS_ASSET_CLASS`` declares the class of every symbol where the feed knows it (a crypto file whose
    symbol column is its file name); unset, each symbol's spelling decides.
    """
    return calendar_resolver(settings.asset_class)


def tick_timeframe(settings: Settings) -> Timeframe:
    return Timeframe.parse(settings.tick_timeframe)


@dataclass(slots=True)
class ScorerCache:
    """``scorer_for``: one scorer per timeframe, built the first time the engine asks, then kept.

    ``on_new`` sees each scorer once, right after it is built (the wiring resumes and saves the
    online model's state there).
    """

    settings: Settings
    calendar: Callable[[str], SessionCalendar]
    on_new: Callable[[Scorer], None] | None = None
    built: dict[Timeframe, Scorer] = field(default_factory=dict)

    def __call__(self, timeframe: Timeframe) -> Scorer:
        scorer = self.built.get(timeframe)
        if scorer is None:
            scorer = self.built[timeframe] = build_scorer(self.settings, timeframe, calendar=self.calendar)
            if self.on_new is not None:
                self.on_new(scorer)
        return scorer


def build_engine(
    settings: Settings,
    *,
    earnings: EarningsCalendar | None = None,
    warm: Iterable[Timeframe] = (),
    on_scorer: Callable[[Scorer], None] | None = None,
    scorer_for: Callable[[Timeframe], Scorer] | None = None,
    catalysts: CatalystBook | None = None,
) -> SignalEngine:
    """The engine every entry point runs, from ``settings`` alone.

    ``warm``: timeframes known before the first bar (the feed's, when this process has one; the tick
    timeframe for tick input), whose scorers are built now so that a missing or unusable model fails
    at start with one line rather than on the first bar. ``scorer_for`` replaces the registry's
    scorers (benchmarks and tests that bring their own); ``on_scorer`` sees each scorer built.
    ``catalysts``: the news this process receives, for the catalyst rule (``event_rules``).
    """
    calendar = symbol_calendars(settings)
    plan = plan_params(settings)
    costs = cost_schedule(settings)
    ticks_to = tick_timeframe(settings)
    if scorer_for is None:
        scorer_for = ScorerCache(settings, calendar, on_scorer)
    wanted = set(warm)
    if settings.engine_input == "ticks":
        wanted.add(ticks_to)
    for timeframe in sorted(wanted, key=lambda tf: tf.ns):
        scorer_for(timeframe)
    return _signal_engine(
        scorer_for,
        plan=plan,
        costs=costs,
        calendar=calendar,
        earnings=earnings,
        events=event_rules(settings, earnings=earnings, calendar=calendar, catalysts=catalysts),
        # Ticks carry no timeframe: the setting says what they are aggregated to. Bars carry theirs.
        tick_timeframe=ticks_to if settings.engine_input == "ticks" else None,
    )


def event_rules(
    settings: Settings,
    *,
    earnings: EarningsCalendar | None,
    calendar: Callable[[str], SessionCalendar],
    catalysts: CatalystBook | None,
) -> tuple[EventRule, ...]:
    """The event rules ``TS_EVENT_RULES`` names (none by default: they claim no edge).

    Each needs its input in this process, or the start fails with one line: ``earnings`` the
    earnings calendar (``TS_EARNINGS_FILE``), ``catalyst`` the news received here (``TS_NEWS_FEED``).
    """
    wanted = [p for p in settings.event_rules.split(",") if p]
    rules: list[EventRule] = []
    for name in wanted:
        if name == "earnings":
            if earnings is None:
                raise ConfigError("TS_EVENT_RULES=earnings needs an earnings calendar (TS_EARNINGS_FILE)")
            rules.append(EarningsPlay(earnings, calendar))
        elif name == "catalyst":
            if catalysts is None:
                raise ConfigError(
                    "TS_EVENT_RULES=catalyst needs news in the engine's process (TS_NEWS_FEED, ingest role)"
                )
            rules.append(CatalystReaction(catalysts, calendar))
    if rules:
        log.info("engine.event_rules", rules=[r.version for r in rules])
    return tuple(rules)


def build_scorer(
    settings: Settings,
    timeframe: Timeframe,
    *,
    calendar: Callable[[str], SessionCalendar] | None = None,
) -> Scorer:
    """The registered model for this timeframe when there is one, else the placeholder rule.

    A model that exists but cannot be used (corrupt, trained on other features) is an error, not
    a silent fall-back: signals would otherwise change meaning without anyone noticing.
    """
    from tradesignals.engine.placeholder_rule import PlaceholderRule

    name = model_name_for(settings, timeframe)
    if name is None:
        return PlaceholderRule()
    from tradesignals.models.registry import ModelRegistryError

    registry = model_registry(settings)
    if registry.latest_version(name) is None and settings.train_demo_model and settings.feed_kind == "sim":
        from tradesignals.demo_model import ensure_demo_model

        ensure_demo_model(settings, timeframe, name)
    if registry.latest_version(name) is None:
        if settings.model != "auto":
            raise ConfigError(f"TS_MODEL: no model named {name!r} under {settings.home / 'models'}")
        log.info(
            "engine.model", model=None, reason=f"no {name!r} model registered; using the placeholder rule"
        )
        return PlaceholderRule()
    from tradesignals.engine.model_scorer import ModelScorer
    from tradesignals.features.catalog import FeatureSetMismatch

    try:
        loaded = registry.load(name)
        scorer = ModelScorer(
            loaded,
            timeframe,
            calendar=calendar if calendar is not None else symbol_calendars(settings),
            min_edge=settings.min_edge,
        )
        # A model labelled under another plan speaks of another promise: refuse it at load.
        plan_params(settings).require_same(scorer.plan, what=f"model {scorer.version}")
    except (ModelRegistryError, FeatureSetMismatch, ValueError) as exc:
        raise ConfigError(f"model {name!r}: {str(exc).splitlines()[0]}") from None
    log.info(
        "engine.model",
        model=scorer.version,
        timeframe=timeframe.value,
        min_edge=settings.min_edge,
    )
    return scorer


def demo_models_missing(settings: Settings, timeframes: Iterable[Timeframe]) -> list[Timeframe]:
    """The timeframes among ``timeframes`` whose demo model must still be trained before scoring.

    Training takes tens of seconds on a busy laptop: the wiring runs it in a child process
    (``train_demo_models_apart``) so the API answers (health, history) while the first model is made.
    """
    if not (settings.train_demo_model and settings.feed_kind == "sim"):
        return []
    registry = model_registry(settings)
    return [
        tf
        for tf in timeframes
        if (name := model_name_for(settings, tf)) is not None and registry.latest_version(name) is None
    ]


async def train_demo_models_apart(settings: Settings, timeframes: Iterable[Timeframe]) -> None:
    """Train the demo model of each of ``timeframes`` that has none, in a child process, awaited
    without blocking the event loop (``demo_models_missing`` says which need it).

    Why not a thread: most of the training is Python holding the GIL (the simulator's history, the
    dataset), so in a thread it took turns with the demo's own loop (feed, engine, API) — 28–35 s
    on two cores against 10 s alone, and the demo's first signal came after its 60 s promise. A
    spawned child has a GIL of its own. Cancelled (the demo stopping), it terminates the child.
    """
    from tradesignals.demo_training import train_in_child  # light: the child imports the models

    ctx = multiprocessing.get_context("spawn")  # never fork a process with running threads and loop
    receive, send = ctx.Pipe(duplex=False)
    jobs = tuple((tf, name) for tf in timeframes if (name := model_name_for(settings, tf)) is not None)
    child = ctx.Process(
        target=train_in_child, args=(settings, jobs, send), name="ts-demo-training", daemon=True
    )
    child.start()
    send.close()  # the child holds its own end; ours would keep the pipe open after it exits
    try:
        await asyncio.to_thread(child.join)
        error = receive.recv() if receive.poll() else f"the training process ended with code {child.exitcode}"
    finally:
        if child.is_alive():
            child.terminate()
            await asyncio.to_thread(child.join, 5)
        receive.close()
    if error is not None:
        raise RuntimeError(f"training the demo model failed: {error}")


def model_name_for(settings: Settings, timeframe: Timeframe) -> str | None:
    """The registry name the engine scores bars of ``timeframe`` with, or None for the placeholder rule."""
    if settings.model == "rule":
        return None
    if settings.model != "auto":
        return settings.model
    return "swing" if timeframe is Timeframe.D1 else "day"


def model_registry(settings: Settings) -> ModelRegistry:
    """Model artifacts: the object store named by TS_MODEL_STORE, else TS_HOME/models."""
    from tradesignals.models.registry import ModelRegistry

    if settings.model_store:
        from tradesignals.models.artifacts_s3 import S3ArtifactStore

        bucket, _, prefix = settings.model_store.removeprefix("s3://").partition("/")
        return ModelRegistry(
            S3ArtifactStore(bucket, prefix or "models", endpoint_url=settings.s3_endpoint_url)
        )
    return ModelRegistry.at_home(settings.home)


def _signal_engine(
    scorer_for: Callable[[Timeframe], Scorer],
    *,
    plan: PlanParams,
    costs: CostSchedule,
    calendar: Callable[[str], SessionCalendar],
    earnings: EarningsCalendar | None,
    events: tuple[EventRule, ...],
    tick_timeframe: Timeframe | None,
) -> SignalEngine:
    """The one call of the `SignalEngine` constructor."""
    return SignalEngine(
        scorer_for, tick_timeframe, plan, calendar=calendar, earnings=earnings, costs=costs, events=events
    )


__all__ = [
    "ScorerCache",
    "build_engine",
    "build_scorer",
    "cost_schedule",
    "demo_models_missing",
    "event_rules",
    "model_name_for",
    "model_registry",
    "plan_params",
    "symbol_calendars",
    "tick_timeframe",
    "train_demo_models_apart",
]
