"""News values: one normalised item whatever the provider, and the rules that make items comparable.

Every adapter (replay files, Polygon's REST news, SEC EDGAR) produces a ``NewsItem``; everything
downstream (sentiment, catalysts, the store, features) reads only this shape. Times follow
``domain/market.py``: integer nanoseconds since the epoch, UTC. ``published_at`` is the provider's
claim; ``received_at`` is when *we* had it, and it is the only time a point-in-time feature may use
(a story published at 09:00 that reached us at 09:05 could not have moved a 09:01 decision).

De-duplication lives here because it is a rule about the values, not about any provider: the same
story syndicated by two sources, or polled twice from one, must count once. Two items are the same
story when their provider ids match, when their normalised URLs match, or when their normalised
headlines match for an overlapping symbol within ``DEDUP_WINDOW_NS`` of each other.
"""

from __future__ import annotations

import re
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from tradesignals.domain.market import NS_PER_SECOND

# Syndicated copies of one story arrive minutes to hours apart; a day keeps distinct repeats of a
# recurring headline ("Stocks That Hit 52-Week Highs On Friday") on different days apart.
DEDUP_WINDOW_NS = 24 * 3600 * NS_PER_SECOND
_SYMBOL = re.compile(r"^[A-Z][A-Z0-9]{0,5}([.\-][A-Z0-9]{1,2})?$")
_NON_WORD = re.compile(r"[^a-z0-9]+")


# The three sentiment classes, in the order every report lists them.
SENTIMENT_LABELS: tuple[str, ...] = ("negative", "neutral", "positive")


class RejectReason(StrEnum):
    """Why an incoming item was dropped; the counters are keyed by these values."""

    NO_SYMBOL = "no symbol"
    NO_TIME = "no time"
    NO_HEADLINE = "no headline"
    BAD_TIME = "bad time"
    MALFORMED = "malformed"
    DUPLICATE = "duplicate"


class NewsError(ValueError):
    """A news source that cannot be opened or configured; one line naming it."""


@dataclass(frozen=True, slots=True)
class NewsItem:
    """One story about one or more symbols.

    ``id`` is unique per source (``source:provider-id``) so ids from two providers never collide;
    ``symbols`` are upper-case tickers in our spelling, sorted and de-duplicated, never empty.
    ``tags`` are structured facts the provider states (an 8-K's items as ``8-K:2.02``); they are
    read by ``domain.catalysts.classify_item`` and not stored.
    """

    id: str
    source: str
    published_at: int
    received_at: int
    symbols: tuple[str, ...]
    headline: str
    summary: str = ""
    url: str = ""
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.symbols:
            raise ValueError(f"news item {self.id!r} has no symbol")
        if not self.headline.strip():
            raise ValueError(f"news item {self.id!r} has no headline")


@dataclass(frozen=True, slots=True)
class ScoredNews:
    """A news item with what we read from it: sentiment of the headline and its catalyst classes.

    ``catalysts`` holds ``domain.catalysts.Catalyst`` values (``("none",)`` when none applies);
    ``scored_at`` is when the scores were computed (ns), so received -> scored latency is visible.
    """

    item: NewsItem
    sentiment: str
    sentiment_score: float
    catalysts: tuple[str, ...]
    scored_at: int


def normalise_symbols(raw: object) -> tuple[str, ...]:
    """Tickers from a provider's field (a list, or text split on commas/spaces) in our spelling.

    ``$AAPL`` and ``aapl`` become ``AAPL``; Polygon's share classes ``BRK.B`` keep their dot; text
    that cannot be a ticker is dropped, so a result can be empty (the caller counts that as a
    rejection, it never guesses).
    """
    if raw is None:
        return ()
    parts: list[str]
    if isinstance(raw, str):
        parts = re.split(r"[,\s;|]+", raw)
    elif isinstance(raw, list | tuple):
        parts = [p for p in raw if isinstance(p, str)]
    else:
        return ()
    out = {p.strip().lstrip("$").upper() for p in parts}
    return tuple(sorted(s for s in out if _SYMBOL.match(s)))


def headline_key(headline: str) -> str:
    """Headline reduced to lower-case words, so punctuation or casing differences still match."""
    return _NON_WORD.sub(" ", headline.lower()).strip()


def url_key(url: str) -> str:
    """URL without scheme, ``www.``, query, fragment or trailing slash: the same page from two feeds."""
    u = url.strip().lower()
    if not u:
        return ""
    u = re.sub(r"^[a-z]+://", "", u)
    u = u.removeprefix("www.")
    u = u.split("#", 1)[0].split("?", 1)[0]
    return u.rstrip("/")


class NewsFeed(Protocol):
    """A source of NewsItems, shaped like the market ``Feed``: an async stream plus ``close``.

    ``rejected`` counts dropped items by ``RejectReason`` value (and provider-level failures such as
    ``http 429``), so a bad item or a bad answer is visible without stopping the stream.
    """

    name: str

    @property
    def rejected(self) -> Counter[str]: ...

    def stream(self) -> AsyncIterator[NewsItem]:
        """Items in the order we received them; a replay ends, a live poller does not."""
        ...

    async def close(self) -> None: ...


@dataclass
class Deduplicator:
    """Drops repeats of a story across and within sources; bounded memory (``capacity`` recent keys).

    Returns True from ``admit`` for the first copy and False (counted) for later ones.
    """

    capacity: int = 200_000
    window_ns: int = DEDUP_WINDOW_NS
    duplicates: Counter[str] = field(default_factory=Counter)
    _ids: OrderedDict[str, None] = field(default_factory=OrderedDict)
    _urls: OrderedDict[str, None] = field(default_factory=OrderedDict)
    _headlines: OrderedDict[tuple[str, str], int] = field(default_factory=OrderedDict)

    def admit(self, item: NewsItem) -> bool:
        if item.id in self._ids:
            self.duplicates["id"] += 1
            return False
        ukey = url_key(item.url)
        if ukey and ukey in self._urls:
            self.duplicates["url"] += 1
            return False
        hkey = headline_key(item.headline)
        for symbol in item.symbols:
            seen = self._headlines.get((symbol, hkey))
            if seen is not None and abs(item.published_at - seen) <= self.window_ns:
                self.duplicates["headline"] += 1
                return False
        self._remember(self._ids, item.id, None)
        if ukey:
            self._remember(self._urls, ukey, None)
        for symbol in item.symbols:
            self._headlines[(symbol, hkey)] = item.published_at
            self._headlines.move_to_end((symbol, hkey))
            if len(self._headlines) > self.capacity:
                self._headlines.popitem(last=False)
        return True

    def _remember(self, store: OrderedDict[str, None], key: str, value: None) -> None:
        store[key] = value
        if len(store) > self.capacity:
            store.popitem(last=False)
