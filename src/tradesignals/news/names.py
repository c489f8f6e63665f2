"""Company names → tickers, for news items that name a company but carry no symbol.

The names come from a local copy of SEC's ``company_tickers.json`` (``TS_COMPANY_TICKERS``; the
machine has no network): ``{"0": {"cik_str": 320193, "ticker": "AAPL", "title": "Apple Inc."}, …}``.

Precision over recall — a wrong symbol puts a story into another company's features and signals,
a missed one only loses a story — so the rules are conservative:

- A title is normalised to lower-case words: punctuation dropped (``Coca-Cola`` = ``coca cola``),
  legal and listing suffixes dropped from the end (Inc., Corp., Co., Ltd., plc, Class A, /DE/ …),
  and a trailing generic word (Technologies, Holdings, Group, Pharmaceuticals …) also indexed
  without it, so "Agilent" finds Agilent Technologies.
- A name matches whole words only, longest name first, and only where the headline's first word of
  it is capitalised (a proper noun, not "apple pie" in a sentence-case headline).
- A one-word name shorter than ``MIN_SINGLE_WORD`` letters, or one in ``COMMON_WORDS`` ("target" in
  "price target", "gap", "block", "visa", "news" …), is never matched on its own.
- A name followed by a rating verb (Initiates, Maintains, Upgrades, Downgrades, On …) is the broker
  of an analyst note, not its subject: not mapped.
- A name shared by two companies (two CIKs) is ambiguous and dropped.
- Share classes: the tickers of one CIK are one company; a name maps to its primary ticker, the one
  that is the others' share-class root (``domain.share_classes``: GOOGL → GOOG, FOXA → FOX), else
  the first the file lists (SEC lists the larger class first: BRK-B before BRK-A). So "Alphabet
  Class C" and "Alphabet" both give GOOG.

Only items with no symbol are mapped (``map_missing``): a provider's own tickers are kept as given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from tradesignals.domain.news import NewsError, normalise_symbols
from tradesignals.domain.share_classes import share_class_root

MIN_SINGLE_WORD = 4

_SUFFIXES = frozenset(
    {
        "inc", "incorporated", "corp", "corporation", "co", "company", "companies", "ltd", "limited",
        "plc", "llc", "lp", "l", "p", "sa", "nv", "ag", "se", "ab", "asa", "as", "oyj", "spa", "bv",
        "the", "de", "md", "ny", "oh", "pa", "va", "ma", "nj", "ca", "tx", "fl", "ga", "mn", "wi",
        "new", "holding", "com", "class", "a", "b", "c", "k", "ordinary", "shares", "common", "stock",
        "adr", "ads", "reit", "trust", "tr",
    }
)  # fmt: skip
"""Words dropped from the end of a title (legal form, state of incorporation, listing, class)."""

_GENERIC = frozenset(
    {
        "technologies", "technology", "holdings", "group", "pharmaceuticals", "pharmaceutical",
        "therapeutics", "laboratories", "labs", "platforms", "international", "enterprises",
        "industries", "systems", "worldwide", "global", "bancorp", "financial", "brands", "networks",
    }
)  # fmt: skip
"""A trailing descriptor: the title is also indexed without it ("Agilent Technologies" → "Agilent")."""

COMMON_WORDS = frozenset(
    {
        # words of finance headlines
        "target", "price", "gap", "block", "match", "visa", "progressive", "ally", "news", "general",
        "united", "american", "first", "capital", "national", "southern", "energy", "power", "growth",
        "value", "income", "trust", "equity", "market", "markets", "stock", "shares", "trade", "buy",
        "sell", "hold", "upgrade", "upgrades", "downgrade", "downgrades", "beat", "beats", "miss",
        "earnings", "revenue", "sales", "guidance", "outlook", "report", "reports", "deal", "merger",
        "offering", "dividend", "split", "rally", "surge", "jump", "jumps", "fall", "falls", "drop",
        "gain", "gains", "loss", "high", "low", "record", "peak", "live", "snap", "square",
        "dollar", "gold", "silver", "oil", "fox", "best", "box", "cars", "carvana", "chase", "coach", "compass", "core",
        "crown", "delta", "dish", "edge", "element", "fast", "five", "frontier", "future", "genesis",
        "glass", "great", "harmony", "health", "home", "hope", "ideal", "impact", "key", "life",
        "light", "main", "matrix", "mission", "motion", "natural", "nature", "north", "now", "open",
        "option", "pacific", "park", "people", "pioneer", "premier", "prime", "quest", "real",
        "regional", "royal", "safe", "sea", "select", "shift", "signal", "smart", "spirit", "star",
        "summit", "sun", "trinity", "triumph", "true", "union", "unity", "vision", "wave",
        "west", "western", "eastern", "world", "zoom", "cost", "fair", "state", "street", "bank",
        "today", "week", "year", "inc", "corp", "company", "group", "holdings", "class",
    }
)  # fmt: skip
"""One-word names that are ordinary words in headlines: never matched alone (a longer name holding
one is). Names that are words but name the company far more often ("Apple", "Amazon", "Intel")
are left out of the list on purpose."""

_RATING_VERBS = frozenset(
    {
        "initiates", "initiated", "maintains", "upgrades", "downgrades", "reiterates", "reinstates",
        "assumes", "resumes", "starts", "on",
    }
)  # fmt: skip
"""A name followed by one of these is a broker rating someone else ("Bank of America Downgrades
Boeing"): the story is about the company rated, so the broker's name is not mapped."""

_WORD = re.compile(r"[A-Za-z0-9]+")


def _words(text: str) -> list[str]:
    """Words as written (punctuation dropped, ``&`` read as "and", possessive ``'s`` dropped)."""
    return _WORD.findall(re.sub(r"['’]s\b", "", text.replace("&", " and ")))


def normalise_title(title: str) -> tuple[str, ...]:
    """SEC's title as lower-case words, legal/listing suffixes dropped: "Apple Inc." → ("apple",)."""
    words = [w.lower() for w in _words(title)]
    while len(words) > 1 and (words[-1] in _SUFFIXES or words[-1] == "and"):
        words.pop()
    return tuple(words)


def _aliases(words: tuple[str, ...]) -> list[tuple[str, ...]]:
    out = [words]
    w = words
    while len(w) > 1 and w[-1] in _GENERIC:
        w = w[:-1]
        out.append(w)
    return out


def _matchable(name: tuple[str, ...]) -> bool:
    if not name or name[-1] == "and":
        return False
    if len(name) == 1:
        word = name[0]
        return len(word) >= MIN_SINGLE_WORD and word not in COMMON_WORDS and not word.isdigit()
    return True


@dataclass(frozen=True, slots=True)
class CompanyNames:
    """Normalised company names → primary ticker; ``match`` finds them in a headline."""

    names: Mapping[tuple[str, ...], str]
    longest: int = 1
    ambiguous: frozenset[tuple[str, ...]] = field(default_factory=frozenset)

    @classmethod
    def from_sec(cls, data: object) -> CompanyNames:
        """From the parsed ``company_tickers.json``; rows that are not of its shape are skipped."""
        if not isinstance(data, dict):
            raise NewsError("company tickers: expected a JSON object of {index: {cik_str, ticker, title}}")
        by_cik: dict[int, list[str]] = {}
        titles: dict[int, str] = {}
        for row in data.values():
            if not isinstance(row, dict):
                continue
            cik, ticker, title = row.get("cik_str"), row.get("ticker"), row.get("title")
            if not isinstance(cik, int) or not isinstance(ticker, str) or not isinstance(title, str):
                continue
            symbols = normalise_symbols([ticker])
            if not symbols:
                continue
            by_cik.setdefault(cik, []).append(symbols[0])
            titles.setdefault(cik, title)
        owner: dict[tuple[str, ...], int] = {}
        ambiguous: set[tuple[str, ...]] = set()
        for cik, title in titles.items():
            for name in _aliases(normalise_title(title)):
                if not _matchable(name):
                    continue
                if name in owner and owner[name] != cik:
                    ambiguous.add(name)
                owner.setdefault(name, cik)
        names = {n: primary_ticker(by_cik[c]) for n, c in owner.items() if n not in ambiguous}
        return cls(names, max((len(n) for n in names), default=1), frozenset(ambiguous))

    @classmethod
    def load(cls, path: str | Path) -> CompanyNames:
        """Read a local ``company_tickers.json``; an unreadable file is a one-line ``NewsError``."""
        p = Path(path)
        try:
            return cls.from_sec(orjson.loads(p.read_bytes()))
        except (OSError, orjson.JSONDecodeError) as err:
            raise NewsError(f"company tickers: cannot read {p.name}: {err}") from None

    def match(self, headline: str) -> tuple[str, ...]:
        """Tickers of the companies ``headline`` names, sorted; () when none is named unambiguously."""
        words = _words(headline)
        lowered = [w.lower() for w in words]
        found: set[str] = set()
        i = 0
        while i < len(words):
            for n in range(min(self.longest, len(words) - i), 0, -1):
                ticker = self.names.get(tuple(lowered[i : i + n]))
                if ticker is not None and words[i][0].isupper():
                    if i + n >= len(words) or lowered[i + n] not in _RATING_VERBS:
                        found.add(ticker)
                    i += n
                    break
            else:
                i += 1
        return tuple(sorted(found))

    def map_missing(self, symbols: tuple[str, ...], headline: str) -> tuple[str, ...]:
        """``symbols`` as given when there are any; else the companies the headline names."""
        return symbols if symbols else self.match(headline)


def primary_ticker(tickers: Iterable[str]) -> str:
    """One company's ticker for its name: the share-class root of the others if one is, else the
    first listed (``domain.share_classes``: GOOG for GOOGL/GOOG, FOX for FOXA/FOX, BRK-B first)."""
    listed = list(dict.fromkeys(tickers))
    for t in listed:
        if all(o == t or share_class_root(o)[0] == t for o in listed):
            return t
    return listed[0]


__all__ = ["COMMON_WORDS", "MIN_SINGLE_WORD", "CompanyNames", "normalise_title", "primary_ticker"]
