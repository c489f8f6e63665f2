"""What the explain sidecar writes about a signal, and the one rule of what a claim may cite.

A text about a signal comes in two kinds: the **explanation** (every signal: plan, confidence,
reasons) and the **research** brief (upgraded signals: claims about the symbol's news). Either may
be written by an LLM or by the template (``domain/explain.py``), and both obey one rule, stated
here once and used by the template, the LLM path and its tests alike:

* **A claim cites only items of our news store that concern the signal's symbol.** A claim
  without a citation, or citing an id the store does not hold, or an item about another symbol,
  is dropped and counted by reason (``check_claims``). Nothing outside our store is ever a source.

``SignalText`` is also the payload of bus topic ``signal.research`` (``bus.topics.SIGNAL_RESEARCH``),
which the API relays to ``signal:{id}:live``: it carries no costs or tokens (those are ``Usage``,
kept in the store for operators).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from tradesignals.domain.explain import MAX_QUOTE, PROMPT_VERSION, explain, quote
from tradesignals.domain.news import ScoredNews
from tradesignals.domain.signals import Signal

EXPLANATION = "explanation"
RESEARCH = "research"
KINDS = (EXPLANATION, RESEARCH)
TEMPLATE_MODEL = "template"
MAX_RESEARCH_ITEMS = 5


class DropReason(StrEnum):
    """Why a claim of a model's answer was dropped (counter label values)."""

    UNCITED = "uncited"
    UNKNOWN_SOURCE = "unknown_source"
    OTHER_SYMBOL = "other_symbol"


class Fallback(StrEnum):
    """Why the template stands in for a model's answer (counter label values)."""

    NO_PROVIDER = "no_provider"
    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    PROVIDER_ERROR = "provider_error"
    INVALID = "invalid"
    BAD_CITATION = "bad_citation"
    NO_VALID_CLAIM = "no_valid_claim"


@dataclass(frozen=True, slots=True)
class Claim:
    """One sentence of a research brief and the news ids it rests on (never empty once checked)."""

    text: str
    citations: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SignalText:
    """An explanation or research brief as users see it (REST and ``signal:{id}:live``).

    ``fallback`` says why the template was used where a model was asked (None: the model's own
    answer, or the template by configuration). ``dropped`` counts the model's claims left out,
    by ``DropReason``.
    """

    signal_id: str
    kind: str
    text: str
    citations: tuple[str, ...]
    model: str
    prompt_version: str
    created_at_ns: int
    claims: tuple[Claim, ...] = ()
    fallback: str | None = None
    dropped: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown text kind {self.kind!r}")


@dataclass(frozen=True, slots=True)
class Usage:
    """What one provider call cost: tokens from the answer's usage fields, price from settings."""

    provider: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None  # None: the model has no price in the table
    latency_ms: float = 0.0


def check_claims(
    claims: Sequence[Claim], stored: Mapping[str, tuple[str, ...]], symbol: str
) -> tuple[list[Claim], Counter[str]]:
    """Keep the claims whose every citation is a stored item about ``symbol``; count the rest.

    ``stored`` maps the ids the store holds (among those cited) to their symbols. A claim with one
    bad citation is dropped whole: a sentence half-backed by a source is not backed.
    """
    kept: list[Claim] = []
    dropped: Counter[str] = Counter()
    for claim in claims:
        if not claim.citations:
            dropped[DropReason.UNCITED] += 1
        elif any(c not in stored for c in claim.citations):
            dropped[DropReason.UNKNOWN_SOURCE] += 1
        elif any(symbol not in stored[c] for c in claim.citations):
            dropped[DropReason.OTHER_SYMBOL] += 1
        else:
            kept.append(claim)
    return kept, dropped


def render_claims(claims: Sequence[Claim]) -> str:
    """Claims as one text, each followed by its citations in brackets."""
    return " ".join(f"{c.text.rstrip()} " + " ".join(f"[{i}]" for i in c.citations) for c in claims)


def template_explanation(signal: Signal, news: Sequence[ScoredNews], now_ns: int) -> SignalText:
    """The template explainer's text as a ``SignalText`` (the default, and every fallback)."""
    e = explain(signal, news)
    return SignalText(
        signal_id=signal.id,
        kind=EXPLANATION,
        text=e.text,
        citations=e.citations,
        model=TEMPLATE_MODEL,
        prompt_version=PROMPT_VERSION,
        created_at_ns=now_ns,
    )


def template_research(signal: Signal, news: Sequence[ScoredNews], now_ns: int) -> SignalText:
    """A research brief without a model: the symbol's newest stored items, one cited claim each.

    Research is bought while the signal lives, so it may use news received after the decision
    (unlike the explanation, which says why the signal was made).
    """
    items = sorted(
        (n for n in news if signal.symbol in n.item.symbols),
        key=lambda n: (n.item.received_at, n.item.id),
        reverse=True,
    )[:MAX_RESEARCH_ITEMS]
    claims = tuple(
        Claim(
            text=f"{quote(n.item.headline)[: MAX_QUOTE + 2]} reads {n.sentiment}"
            + (
                f" ({', '.join(c for c in n.catalysts if c != 'none')})"
                if any(c != "none" for c in n.catalysts)
                else ""
            )
            + ".",
            citations=(n.item.id,),
        )
        for n in items
    )
    text = (
        f"Stored news about {signal.symbol}, newest first: " + render_claims(claims)
        if claims
        else f"No news about {signal.symbol} is in our store yet."
    )
    return SignalText(
        signal_id=signal.id,
        kind=RESEARCH,
        text=text,
        citations=tuple(i for c in claims for i in c.citations),
        model=TEMPLATE_MODEL,
        prompt_version=PROMPT_VERSION,
        created_at_ns=now_ns,
        claims=claims,
    )
