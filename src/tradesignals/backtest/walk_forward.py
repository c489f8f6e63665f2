"""Walk-forward: a model per period, trained only on data from before it, used only inside it.

``--retrain-every 3M --train-window 3Y`` cuts the backtest window into periods (3 months each, from
its start) and, for each, trains a model with the one training code (`models.train.train_dataset`,
the function behind ``tradesignals train``) on the dataset's rows that start within the 3 years
before the period and whose label window closed before it (``until`` = the period's start, so no
label saw a price from the period). Each model is saved in a registry of the backtest's own and
loaded back through the engine builder's `build_scorer` — the checks a live model gets (feature
set, plan) — then takes over the engine's decisions at the first bar of its period
(`SignalEngine.replace_scorer`), inheriting the feature windows: the bars seen so far are the same
whichever model reads them. Signals a model published keep running after its period ends, as they
would live when a new version is promoted.

Deterministic by content: the summary records each period's training range, row count and the
SHA-256 of the model's files, not the registry's time-stamped version ids.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tradesignals.config import ConfigError, Settings
from tradesignals.domain.market import Bar, Timeframe, to_datetime
from tradesignals.domain.signals import SignalType
from tradesignals.engine.model_scorer import ModelScorer
from tradesignals.engine.pipeline import Scorer, SignalEngine
from tradesignals.models.dataset import DatasetError, build_dataset, load_bars
from tradesignals.models.registry import ModelRegistry
from tradesignals.models.train import TrainConfig, TrainError, train_dataset
from tradesignals.wiring.engine_builder import build_scorer

_PERIOD = re.compile(r"^(\d{1,3})([DWMY])$")


class PeriodError(ValueError):
    """A period string that is not a count and a unit; the message is one line."""


def parse_period(text: str, option: str) -> pd.DateOffset:
    """``3M`` → three calendar months (units D, W, M, Y; case-insensitive); one-line error otherwise."""
    m = _PERIOD.match(text.strip().upper())
    if m is None or int(m.group(1)) == 0:
        raise PeriodError(
            f"{option} {text!r}: expected a whole number of days, weeks, months or years, such as 3M or 1Y"
        )
    n, unit = int(m.group(1)), m.group(2)
    if unit == "D":
        return pd.DateOffset(days=n)
    if unit == "W":
        return pd.DateOffset(weeks=n)
    return pd.DateOffset(months=n) if unit == "M" else pd.DateOffset(years=n)


def shift(ns: int, offset: pd.DateOffset, sign: int = 1) -> int:
    """``ns`` moved by ``offset`` (calendar arithmetic in UTC)."""
    t = pd.Timestamp(ns, tz="UTC")
    return int((t + offset if sign > 0 else t - offset).value)


def period_starts(lo_ns: int, hi_ns: int, every: pd.DateOffset) -> list[int]:
    """``lo``, ``lo`` + every, … while before or at ``hi``."""
    starts = [lo_ns]
    while (nxt := shift(starts[-1], every)) <= hi_ns:
        starts.append(nxt)
    return starts


def _iso(ns: int) -> str:
    return pd.Timestamp(ns, tz="UTC").isoformat()


@dataclass(frozen=True, slots=True)
class Period:
    """One period's model: when it decides, what it learned from, and its identity."""

    start_ns: int
    end_ns: int  # last instant (inclusive)
    version: str  # "swing:<registry version>", as on the signals it publishes
    training_first_ns: int  # first row's decision time
    training_label_end_ns: int  # last label window's end: strictly before start_ns
    rows: int
    symbols: int
    sha256: str  # over the model's files (metadata excluded): equal models, equal digests

    def as_dict(self) -> dict[str, object]:
        return {
            "start": _iso(self.start_ns),
            "end": _iso(self.end_ns),
            "training_first": _iso(self.training_first_ns),
            "training_label_end": _iso(self.training_label_end_ns),
            "rows": self.rows,
            "symbols": self.symbols,
            "model_sha256": self.sha256,
        }


@dataclass(slots=True)
class WalkForward:
    """The periods' models, ready to drive one engine pass."""

    periods: list[Period]
    scorers: list[Scorer]
    registry: Path  # the registry directory the models were saved in (copied into the results)

    def first(self, _timeframe: Timeframe) -> Scorer:
        """``scorer_for`` of the engine: the first period's model (also scores the warm-up bars)."""
        return self.scorers[0]

    def drive(self, engine: SignalEngine, timeframe: Timeframe, bars: Iterator[Bar]) -> Iterator[Bar]:
        """``bars`` unchanged, with each period's model put in charge before its first bar."""
        starts = [p.start_ns for p in self.periods]
        k = 0
        for bar in bars:
            while k + 1 < len(starts) and bar.ts >= starts[k + 1]:
                k += 1
                new = self.scorers[k]
                old = engine.replace_scorer(timeframe, new)
                if isinstance(old, ModelScorer) and isinstance(new, ModelScorer):
                    new.features = old.features
            yield bar


def train_periods(
    settings: Settings,
    data: Path,
    timeframe: Timeframe,
    starts: Sequence[int],
    end_ns: int,
    window: pd.DateOffset,
    *,
    config: TrainConfig = TrainConfig(),
    note: Callable[[str], None] | None = None,
) -> WalkForward:
    """Train one model per period start (see the module docstring); ValueError with one line on failure."""
    kind = SignalType.SWING if timeframe is Timeframe.D1 else SignalType.DAY
    name = kind.value
    try:
        ds = build_dataset(load_bars(data), signal_type=kind)
    except DatasetError as exc:
        raise ValueError(f"walk-forward: {exc}") from None
    home = Path(tempfile.mkdtemp(prefix="ts-walk-forward-"))
    registry = ModelRegistry.at_home(home)
    scoring = settings.model_copy(update={"home": home, "model": name, "model_store": None})
    ts = ds.ts
    periods: list[Period] = []
    scorers: list[Scorer] = []
    for k, start in enumerate(starts):
        day = to_datetime(start).date()
        idx = np.flatnonzero(ts >= shift(start, window, -1))
        try:
            result = train_dataset(ds.subset(idx), registry, until=start, name=name, config=config)
            scorer = build_scorer(scoring, timeframe)
        except (TrainError, ConfigError) as exc:
            raise ValueError(f"walk-forward period from {day}: {exc}") from None
        meta = result.metadata
        training = result.metrics["training"]
        label_end = int(training["last_t_end_ns"])
        if not label_end < start:  # the promise of this module, checked each time
            raise AssertionError(f"model for {day} saw a label ending at {to_datetime(label_end)}")
        digest = hashlib.sha256(
            "".join(f"{fn}:{h};" for fn, h in sorted(meta.files.items())).encode()
        ).hexdigest()
        end = starts[k + 1] - 1 if k + 1 < len(starts) else end_ns
        periods.append(
            Period(
                start, end, scorer.version, int(training["first_ts_ns"]), label_end,
                int(training["rows"]), int(training["symbols"]), digest,
            )
        )  # fmt: skip
        scorers.append(scorer)
        if note is not None:
            note(f"walk-forward: model {k + 1}/{len(starts)} for {day} trained on {training['rows']:,} rows")
    return WalkForward(periods, scorers, home / "models")


__all__ = ["Period", "PeriodError", "WalkForward", "parse_period", "period_starts", "shift", "train_periods"]
