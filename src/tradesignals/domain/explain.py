"""The template explainer: a signal's plan, confidence and recent news in plain words, no LLM.

It is the default explainer (no key, no network, microseconds) and the fallback any LLM explainer
must drop to. Two rules matter more than the wording:

* **Only our own sources are cited.** News appears only as items from our store, each cited by
  its id (``[benzinga:123]``), and only items *received* before the decision: a story the model
  could not have seen is not offered as a reason.
* **News text is untrusted data.** A headline is quoted, stripped of control characters and
  truncated; it is never read as an instruction and never changes any other part of the text (a
  test feeds "ignore previous instructions" and checks the rest is byte-identical).

``PROMPT_VERSION`` names the template, so cached explanations can be told apart when it changes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tradesignals.domain.market import to_ns
from tradesignals.domain.news import ScoredNews
from tradesignals.domain.signals import Direction, Signal

PROMPT_VERSION = "template-v1"
MAX_NEWS = 3
MAX_QUOTE = 160
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


class ExplanationError(ValueError):
    """An explanation that breaks the citation rule (a cited id not among the offered sources)."""


@dataclass(frozen=True, slots=True)
class Explanation:
    """Structured output: text plus the ids it cites; ``citations`` must be a subset of ``sources``."""

    signal_id: str
    text: str
    citations: tuple[str, ...]
    sources: tuple[str, ...]
    model: str = "template"
    prompt_version: str = PROMPT_VERSION

    def __post_init__(self) -> None:
        unknown = [c for c in self.citations if c not in self.sources]
        if unknown:
            raise ExplanationError(f"explanation of {self.signal_id} cites unknown sources {unknown}")
        for c in self.citations:
            if f"[{c}]" not in self.text:
                raise ExplanationError(f"explanation of {self.signal_id} lists {c} but never cites it")


def quote(text: str) -> str:
    """Untrusted text made inert: control characters out, one line, bounded, in quotes."""
    clean = _CONTROL.sub(" ", text)
    clean = " ".join(clean.split()).replace('"', "'")
    if len(clean) > MAX_QUOTE:
        clean = clean[: MAX_QUOTE - 1].rstrip() + "…"
    return f'"{clean}"'


def _pct(x: float) -> str:
    return f"{x * 100:.0f}%"


def _price(x: float) -> str:
    return f"{x:,.4f}".rstrip("0").rstrip(".") if x < 1 else f"{x:,.2f}"


def explain(signal: Signal, news: Sequence[ScoredNews] = ()) -> Explanation:
    """Explain ``signal`` from its own fields and the news received before its decision."""
    decided = signal.decided_at or signal.created_at
    risk = abs(signal.entry - signal.stop)
    side = "Long" if signal.direction is Direction.LONG else "Short"
    multiples = "/".join(f"{abs(t - signal.entry) / risk:.1f}R" for t in signal.targets) if risk else "-"
    parts = [
        f"{side} {signal.symbol} at {_price(signal.entry)} ({signal.type.value}, {signal.timeframe} bars): "
        f"stop {_price(signal.stop)} ({_pct(risk / signal.entry)} away), targets "
        f"{' / '.join(_price(t) for t in signal.targets)} ({multiples}); expires "
        f"{_iso(signal.expires_at)} unless stopped or filled first."
    ]
    if signal.base_rate is not None:
        edge = signal.confidence - signal.base_rate
        rank = (
            f", rank {_pct(signal.confidence_rank)} of its own confidences"
            if signal.confidence_rank is not None
            else ""
        )
        parts.append(
            f"Model {signal.model_version} gives {_pct(signal.confidence)} for the first target before the "
            f"stop, {edge * 100:+.0f} points over its base rate of {_pct(signal.base_rate)}{rank}."
        )
    else:
        parts.append(f"Rule-based signal ({signal.model_version}); it has no base rate to compare with.")
    if signal.reasons:
        parts.append("Why: " + "; ".join(quote(r)[1:-1] for r in signal.reasons[:5]) + ".")
    cutoff = to_ns(decided)
    usable = sorted(
        (n for n in news if signal.symbol in n.item.symbols and n.item.received_at <= cutoff),
        key=lambda n: (n.item.received_at, n.item.id),
        reverse=True,
    )[:MAX_NEWS]
    if usable:
        lines = [
            f"[{n.item.id}] {quote(n.item.headline)} ({n.sentiment}"
            + (
                f"; {', '.join(c for c in n.catalysts if c != 'none')}"
                if any(c != "none" for c in n.catalysts)
                else ""
            )
            + ")"
            for n in usable
        ]
        parts.append("News received before the decision: " + " ".join(lines))
    else:
        parts.append("No news about the symbol was received before the decision.")
    ids = tuple(n.item.id for n in usable)
    return Explanation(signal_id=signal.id, text=" ".join(parts), citations=ids, sources=ids)


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC")
