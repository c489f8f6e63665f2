"""Risk profiles: which signals a user sees and how large a position each gets.

Three parts, all plain values so that accounts, fan-out, the API and the backtester share them:

* the **questionnaire** (`QUESTIONNAIRE`, `assess`): at most ten scored questions give a
  ``risk_tolerance`` in [0, 1] and from it a profile;
* the **profiles** (`RiskProfile`, `PRESETS`): conservative, moderate, aggressive, each with its
  position and risk limits and the filters it applies;
* **fitting** a signal to a profile (`fit`): accept or refuse it, and size the position.

Confidence on its real scale. A calibrated model's confidence is a probability of the rulebook's
win (``domain.exits.is_win``), and a calibrated swing model spreads it over a narrow band around its
own base rate (about 0.19–0.35 on the S&P file): a fixed minimum confidence such as 0.65 would sit
above the whole band and block everything, and one inside the band would mean different things for
models with different base rates. So a profile filters on the model's own scale, twice:

* its **edge** — confidence minus the model's realised base rate (``Signal.edge``, `edge_of`) — must
  not be negative for any profile (`min_edge` 0): nobody is shown a signal the model expects to do
  worse than its average one;
* its **rank** — where the confidence falls among the model's own out-of-fold confidences
  (``Signal.confidence_rank``, recorded at training) — must reach the profile's `min_rank`: the top
  half of the model's confidences for aggressive (0.50), the top quarter for moderate (0.75), the
  top tenth for conservative (0.90). A rank means the same thing for a model whose confidences span
  two points or twenty, so the thresholds need no refitting when a model is retrained — and they
  are round fractions chosen from what they mean, never fitted to a data file. A fixed edge in
  points (an earlier draft had +4 / +2 / 0) cannot: the S&P swing model's whole range above its base
  rate is about two points, so conservative would never receive a signal.

A signal without a base rate or a rank (the rule-based placeholder, whose "confidence" is not a
calibrated probability) is judged against a coin flip (``NO_BASE_RATE`` = 0.5) and given the median
rank (``NO_RANK`` = 0.5): it is no evidence of being in the model's top quarter, so only the
aggressive profile takes it.

Scoring. Every option scores in [0, 1] (0 = the most cautious answer); ``risk_tolerance`` is the
weighted mean of the chosen scores, rounded to 6 decimals so that a boundary value lands in the same
band on every platform. Bands (`TOLERANCE_BANDS`): below 0.35 conservative, below 0.65 moderate,
otherwise aggressive. The middle band is the widest on purpose: someone who picks the middle
answers throughout (scores between 1/3 and 2/3) is moderate, and reaching aggressive takes mostly
upper answers. A few answers also *cap* the profile whatever the score (`Option.caps`): they speak
to the capacity to bear a loss (the money is needed within a year, it is most of the savings) or to
a behaviour a bolder profile would punish (selling everything after a 20 % fall) — a high score
on the other questions must not talk someone out of those.

Monotone by construction. The presets are ordered so that, for the same signal and the same
context (volatility, sector, open exposure), everything a more conservative profile accepts a bolder
one accepts too, with a position at least as large: bolder means a lower minimum edge and rank, a
higher maximum volatility, a superset of signal types, higher sector caps for every sector, a higher
risk per trade and a higher maximum position. `RiskProfile.is_at_most_as_bold_as` states the
ordering and the tests check it for the presets.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from tradesignals.domain.market import AssetClass, Timeframe
from tradesignals.domain.signals import Signal, SignalType


class ProfileName(StrEnum):
    CONSERVATIVE = "conservative"
    MODERATE = "moderate"
    AGGRESSIVE = "aggressive"

    @property
    def rank(self) -> int:
        """0 for the most cautious profile; a larger rank is bolder."""
        return _PROFILE_ORDER.index(self)


_PROFILE_ORDER = (ProfileName.CONSERVATIVE, ProfileName.MODERATE, ProfileName.AGGRESSIVE)

NO_BASE_RATE = 0.5
"""What the confidence of a signal without a base rate is measured against: a coin flip."""

NO_RANK = 0.5
"""The rank of a signal whose model recorded no confidence scale: the median, no evidence either way."""


def rank_of(signal: Signal) -> float:
    """``Signal.confidence_rank``, or `NO_RANK` without one."""
    return NO_RANK if signal.confidence_rank is None else signal.confidence_rank


def edge_of(signal: Signal) -> float:
    """The signal's edge in probability points: ``Signal.edge``, or confidence − 0.5 without a base rate.

    Rounded to 1e-9 so that 0.29 over a 0.25 base rate is the 4 points a person reads (the float
    difference is 0.03999…), and a threshold means the same on every platform.
    """
    edge = signal.edge
    return round(signal.confidence - NO_BASE_RATE if edge is None else edge, 9)


UNCLASSIFIED_SECTOR = "unclassified"
"""The sector bucket of a signal without one (crypto, an unmapped ticker).

Such signals still count against a cap — the default one — rather than escaping sector limits.
"""


def _sector_key(sector: str | None) -> str:
    key = sector.strip().lower() if sector else ""
    return key or UNCLASSIFIED_SECTOR


@dataclass(frozen=True, slots=True)
class RiskProfile:
    """Limits and filters of one profile.

    Percentages are of account equity (5.0 = 5 %). ``min_edge`` is the least edge over the model's
    base rate a signal must have, in probability points as a fraction (0.04 = 4 points; see
    `edge_of`). ``max_volatility`` is annualised volatility as a fraction (0.30 = 30 %,
    `annualised_volatility`). ``sector_caps_pct`` names sectors (lower case) with their own cap of
    total exposure; every other sector, including `UNCLASSIFIED_SECTOR`, gets
    ``default_sector_cap_pct``. ``risk_tolerance`` is the profile's representative score, inside
    its band; a user's own score is on their `Assessment`.
    """

    name: ProfileName
    risk_tolerance: float
    max_position_pct: float
    risk_per_trade_pct: float
    min_edge: float
    min_rank: float
    max_volatility: float
    allowed_types: frozenset[SignalType]
    sector_caps_pct: tuple[tuple[str, float], ...] = ()
    default_sector_cap_pct: float = 100.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.risk_tolerance <= 1.0:
            raise ValueError(f"risk_tolerance {self.risk_tolerance} is outside [0, 1]")
        if not 0.0 < self.risk_per_trade_pct <= self.max_position_pct <= 100.0:
            raise ValueError("need 0 < risk_per_trade_pct <= max_position_pct <= 100")
        if not -1.0 <= self.min_edge <= 1.0:
            raise ValueError(f"min_edge {self.min_edge} is outside [-1, 1]")
        if not 0.0 <= self.min_rank <= 1.0:
            raise ValueError(f"min_rank {self.min_rank} is outside [0, 1]")
        if not (self.max_volatility > 0 and math.isfinite(self.max_volatility)):
            raise ValueError(f"max_volatility {self.max_volatility} must be positive and finite")
        caps = [*(c for _, c in self.sector_caps_pct), self.default_sector_cap_pct]
        if not all(0.0 < c <= 100.0 for c in caps):
            raise ValueError("sector caps must be in (0, 100]")
        names = [s for s, _ in self.sector_caps_pct]
        if any(s != _sector_key(s) for s in names) or len(set(names)) != len(names):
            raise ValueError("sector cap names must be distinct, lower case and trimmed")

    def sector_cap_pct(self, sector: str | None) -> float:
        """The cap on total exposure to ``sector`` (case-insensitive; None is unclassified)."""
        key = _sector_key(sector)
        for name, cap in self.sector_caps_pct:
            if name == key:
                return cap
        return self.default_sector_cap_pct

    def position_pct(self, entry: float, stop: float) -> float:
        """Percent of equity to commit: risk per trade / distance to stop, capped by max position.

        Sized so that being stopped out loses ``risk_per_trade_pct`` of equity, whatever the stop
        distance; the cap keeps a very tight stop from asking for a huge position.
        """
        distance = abs(entry - stop) / entry
        if distance <= 0:
            return 0.0
        return min(self.max_position_pct, self.risk_per_trade_pct / distance)

    def is_at_most_as_bold_as(self, other: RiskProfile) -> bool:
        """True when ``other`` accepts everything this profile accepts, with a position as large.

        The sufficient conditions `fit` relies on; sectors are compared over both profiles' named
        sectors plus the default.
        """
        sectors = {s for s, _ in self.sector_caps_pct} | {s for s, _ in other.sector_caps_pct}
        sectors.add(UNCLASSIFIED_SECTOR)
        return (
            self.min_edge >= other.min_edge
            and self.min_rank >= other.min_rank
            and self.max_volatility <= other.max_volatility
            and self.allowed_types <= other.allowed_types
            and self.risk_per_trade_pct <= other.risk_per_trade_pct
            and self.max_position_pct <= other.max_position_pct
            and self.default_sector_cap_pct <= other.default_sector_cap_pct
            and all(self.sector_cap_pct(s) <= other.sector_cap_pct(s) for s in sectors)
        )


PRESETS: dict[ProfileName, RiskProfile] = {
    ProfileName.CONSERVATIVE: RiskProfile(
        ProfileName.CONSERVATIVE,
        risk_tolerance=0.2,
        max_position_pct=5.0,
        risk_per_trade_pct=0.5,
        min_edge=0.0,
        min_rank=0.90,
        max_volatility=0.30,
        allowed_types=frozenset({SignalType.SWING}),
        sector_caps_pct=(("technology", 15.0), ("crypto", 5.0)),
        default_sector_cap_pct=20.0,
    ),
    ProfileName.MODERATE: RiskProfile(
        ProfileName.MODERATE,
        risk_tolerance=0.5,
        max_position_pct=10.0,
        risk_per_trade_pct=1.0,
        min_edge=0.0,
        min_rank=0.75,
        max_volatility=0.60,
        allowed_types=frozenset({SignalType.SWING, SignalType.EVENT}),
        sector_caps_pct=(("technology", 25.0), ("crypto", 10.0)),
        default_sector_cap_pct=30.0,
    ),
    ProfileName.AGGRESSIVE: RiskProfile(
        ProfileName.AGGRESSIVE,
        risk_tolerance=0.85,
        max_position_pct=25.0,
        risk_per_trade_pct=2.0,
        min_edge=0.0,
        min_rank=0.50,
        max_volatility=2.0,
        allowed_types=frozenset(SignalType),
        sector_caps_pct=(("technology", 50.0), ("crypto", 30.0)),
        default_sector_cap_pct=50.0,
    ),
}


# --- questionnaire -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Option:
    """One answer. ``score`` in [0, 1], 0 the most cautious; ``caps`` bounds the profile."""

    id: str
    text: str
    score: float
    caps: ProfileName | None = None


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    text: str
    options: tuple[Option, ...]
    weight: float = 1.0

    def option(self, option_id: str) -> Option | None:
        for o in self.options:
            if o.id == option_id:
                return o
        return None


QUESTIONNAIRE_VERSION = 1
"""Bump when a question, option, score, weight or band changes, so stored answers stay readable."""

TOLERANCE_BANDS: tuple[tuple[float, ProfileName], ...] = (
    (0.35, ProfileName.CONSERVATIVE),
    (0.65, ProfileName.MODERATE),
    (math.inf, ProfileName.AGGRESSIVE),
)
"""(upper bound, exclusive; profile): the first band whose bound exceeds the tolerance wins."""

QUESTIONNAIRE: tuple[Question, ...] = (
    Question(
        "horizon",
        "When will you need most of the money you trade with?",
        (
            Option("under_1y", "Within a year", 0.0, caps=ProfileName.MODERATE),
            Option("1_3y", "In 1 to 3 years", 0.35),
            Option("3_10y", "In 3 to 10 years", 0.7),
            Option("over_10y", "Not for more than 10 years", 1.0),
        ),
        weight=1.5,
    ),
    Question(
        "experience",
        "How much trading experience do you have?",
        (
            Option("none", "None", 0.0),
            Option("funds", "I hold funds or ETFs", 0.33),
            Option("stocks", "I trade individual stocks", 0.67),
            Option("derivatives", "I trade options, futures or on margin", 1.0),
        ),
    ),
    Question(
        "loss_tolerance",
        "What is the largest loss over a year you could accept on this money?",
        (
            Option("5pct", "5 %", 0.0),
            Option("10pct", "10 %", 0.33),
            Option("20pct", "20 %", 0.67),
            Option("30pct_plus", "30 % or more", 1.0),
        ),
        weight=2.0,
    ),
    Question(
        "income_stability",
        "How stable is your income?",
        (
            Option("unstable", "Irregular or at risk", 0.0),
            Option("somewhat", "Mostly steady", 0.5),
            Option("stable", "Steady, with savings for six months or more", 1.0),
        ),
    ),
    Question(
        "drawdown_reaction",
        "Your account falls 20 % in a month. What do you do?",
        (
            Option("sell_all", "Sell everything", 0.0, caps=ProfileName.CONSERVATIVE),
            Option("sell_some", "Sell some to limit the damage", 0.33),
            Option("hold", "Hold and wait", 0.67),
            Option("buy_more", "Buy more", 1.0),
        ),
        weight=2.0,
    ),
    Question(
        "goal",
        "What is your main goal?",
        (
            Option("preserve", "Keep what I have", 0.0),
            Option("income", "Steady income", 0.33),
            Option("growth", "Growth, accepting swings", 0.67),
            Option("max_growth", "The highest return, whatever the swings", 1.0),
        ),
    ),
    Question(
        "savings_share",
        "What share of your savings is this money?",
        (
            Option("over_75", "More than 75 %", 0.0, caps=ProfileName.MODERATE),
            Option("50_75", "50 to 75 %", 0.33),
            Option("25_50", "25 to 50 %", 0.67),
            Option("under_25", "Less than 25 %", 1.0),
        ),
        weight=1.5,
    ),
    Question(
        "leverage",
        "Would you trade with leverage or options?",
        (
            Option("never", "Never", 0.0),
            Option("maybe", "Sometimes, with small amounts", 0.5),
            Option("yes", "Yes, I am comfortable with it", 1.0),
        ),
        weight=0.5,
    ),
)

_QUESTIONS_BY_ID: dict[str, Question] = {q.id: q for q in QUESTIONNAIRE}


class InvalidAnswers(ValueError):
    """Answers that cannot be scored; ``problems`` maps each offending question id to why.

    Every problem is reported at once, so a form can mark all the bad fields in one round trip.
    """

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems: dict[str, str] = dict(problems)
        super().__init__("; ".join(f"{qid}: {why}" for qid, why in self.problems.items()))

    @property
    def question_ids(self) -> list[str]:
        return list(self.problems)


@dataclass(frozen=True, slots=True)
class Assessment:
    """The result of a questionnaire: the user's own score and the profile it leads to.

    ``capped_by`` lists the questions whose answer lowered the profile below the score's band.
    """

    risk_tolerance: float
    profile: RiskProfile
    capped_by: tuple[str, ...] = ()
    questionnaire_version: int = QUESTIONNAIRE_VERSION


def profile_for_tolerance(risk_tolerance: float) -> ProfileName:
    """The band ``risk_tolerance`` falls in (see `TOLERANCE_BANDS`)."""
    if not 0.0 <= risk_tolerance <= 1.0:
        raise ValueError(f"risk_tolerance {risk_tolerance} is outside [0, 1]")
    for bound, name in TOLERANCE_BANDS:
        if risk_tolerance < bound:
            return name
    raise AssertionError("the last band is unbounded")  # pragma: no cover


def assess(answers: Mapping[str, str]) -> Assessment:
    """Score ``answers`` (question id → option id) and pick the profile.

    Every question must be answered with one of its options; anything else raises
    `InvalidAnswers` naming each offending question, rather than scoring a partial form.
    """
    problems: dict[str, str] = {}
    for qid in answers:
        if qid not in _QUESTIONS_BY_ID:
            problems[qid] = "unknown question"
    chosen: list[tuple[Question, Option]] = []
    for q in QUESTIONNAIRE:
        if q.id not in answers:
            problems[q.id] = "missing answer"
            continue
        opt = q.option(answers[q.id])
        if opt is None:
            offered = ", ".join(o.id for o in q.options)
            problems[q.id] = f"option {answers[q.id]!r} is not offered; expected one of {offered}"
            continue
        chosen.append((q, opt))
    if problems:
        raise InvalidAnswers(problems)
    total_weight = sum(q.weight for q in QUESTIONNAIRE)
    raw = sum(q.weight * o.score for q, o in chosen) / total_weight
    tolerance = min(1.0, max(0.0, round(raw, 6)))
    name = profile_for_tolerance(tolerance)
    capped_by: list[str] = []
    for q, o in chosen:
        if o.caps is not None and o.caps.rank < name.rank:
            capped_by.append(q.id)
    caps = [o.caps for _, o in chosen if o.caps is not None]
    if caps:
        name = min([name, *caps], key=lambda n: n.rank)
    return Assessment(risk_tolerance=tolerance, profile=PRESETS[name], capped_by=tuple(capped_by))


# --- fitting a signal to a profile ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fit:
    """Whether a profile takes a signal, why, and how large a position (0 when refused).

    ``reasons`` lists every filter that refused the signal, or, when accepted, what limited the
    size (nothing when the size is the plain risk / distance).
    """

    accepted: bool
    reasons: list[str] = field(default_factory=list)
    position_pct: float = 0.0


def fit(
    signal: Signal,
    profile: RiskProfile,
    *,
    volatility: float | None,
    sector: str | None,
    open_exposure_by_sector: Mapping[str, float],
) -> Fit:
    """Filter ``signal`` through ``profile`` and size the position as a percent of equity.

    Filters: edge (`edge_of`) at least the profile's ``min_edge``; the confidence's rank on the
    model's own scale (`rank_of`) at least ``min_rank``; annualised ``volatility`` at most the maximum (an
    unknown or non-finite volatility is refused — a limit that cannot be checked is not met); the
    type allowed; room left under the sector cap given ``open_exposure_by_sector`` (percent of
    equity already open per sector; keys are matched case-insensitively, a missing sector is 0).

    Size: ``risk_per_trade_pct`` / (|entry − stop| / entry), capped by ``max_position_pct`` and by
    the room left in the sector. Each term grows (or each bar lowers) from a conservative preset to
    a bolder one, which is what makes acceptance and size monotone in the profile.
    """
    reasons: list[str] = []
    edge = edge_of(signal)
    if edge < profile.min_edge:
        reasons.append(
            f"edge {edge * 100:+.1f} points over the base rate is below the minimum {profile.min_edge * 100:+.1f}"
        )
    rank = rank_of(signal)
    if rank < profile.min_rank:
        reasons.append(
            f"confidence ranks at {rank:.0%} of the model's own confidences, below this profile's {profile.min_rank:.0%}"
        )
    if volatility is None or not math.isfinite(volatility):
        reasons.append("volatility is unknown, so the maximum volatility cannot be checked")
    elif volatility > profile.max_volatility:
        reasons.append(f"volatility {volatility:g} is above the maximum {profile.max_volatility:g}")
    if signal.type not in profile.allowed_types:
        reasons.append(f"signal type {signal.type} is not allowed for a {profile.name} profile")
    key = _sector_key(sector)
    cap = profile.sector_cap_pct(key)
    used = sum(v for k, v in open_exposure_by_sector.items() if _sector_key(k) == key)
    room = cap - used
    if room <= 0:
        reasons.append(f"sector {key} is at its cap: {used:g} % open of {cap:g} %")
    if reasons:
        return Fit(accepted=False, reasons=reasons, position_pct=0.0)

    distance = signal.risk_per_unit / signal.entry
    uncapped = profile.risk_per_trade_pct / distance
    size = uncapped
    if profile.max_position_pct < size:
        size = profile.max_position_pct
        reasons.append(f"size capped by the maximum position {profile.max_position_pct:g} %")
    if room < size:
        size = room
        reasons.append(f"size capped by the room left in sector {key}: {room:g} % of {cap:g} %")
    return Fit(accepted=True, reasons=reasons, position_pct=size)


# --- volatility ----------------------------------------------------------------------------------

VOLATILITY_BARS = 20
"""One-bar log returns in a volatility estimate: the same window as the ``rvol_20`` feature."""

SESSIONS_PER_YEAR: dict[AssetClass, int] = {AssetClass.EQUITY: 252, AssetClass.CRYPTO: 365}
SESSION_SECONDS: dict[AssetClass, int] = {AssetClass.EQUITY: 23_400, AssetClass.CRYPTO: 86_400}
"""Trading seconds in a regular session (09:30–16:00 for US equities, a UTC day for crypto)."""


def bars_per_year(timeframe: Timeframe, asset: AssetClass) -> float:
    """Bars of ``timeframe`` in a trading year: sessions per year × bars per session."""
    per_session = 1.0 if timeframe is Timeframe.D1 else SESSION_SECONDS[asset] / timeframe.seconds
    return SESSIONS_PER_YEAR[asset] * per_session


def annualised_volatility(closes: Sequence[float], timeframe: Timeframe, asset: AssetClass) -> float | None:
    """Annualised volatility (0.30 = 30 %) from the last ``VOLATILITY_BARS`` + 1 closes, oldest first.

    The root mean square of the one-bar log returns (as the ``rvol_20`` feature: no mean is taken
    out, a drift is risk too) × √(bars per year), so it reads on the scale of ``max_volatility``
    whatever the bar length. None with fewer closes than that or a close that is not a positive
    number: a volatility that cannot be measured is unknown, and `fit` refuses on it.
    """
    window = list(closes)[-(VOLATILITY_BARS + 1) :]
    if len(window) < VOLATILITY_BARS + 1 or not all(math.isfinite(c) and c > 0 for c in window):
        return None
    squares = math.fsum(math.log(b / a) ** 2 for a, b in itertools.pairwise(window))
    return math.sqrt(squares / VOLATILITY_BARS * bars_per_year(timeframe, asset))
