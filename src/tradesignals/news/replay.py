"""``replay:PATH`` news feed: a file of past news replayed as if received when published.

Three layouts are recognised by their columns, so the shared files work unchanged:

* **Benzinga** (the Kaggle analyst-ratings sample): ``<index>,title,date,stock`` with ``date`` an
  ISO timestamp carrying its US/Eastern offset;
* **StockNet tweets**: ``ticker,file_date,tweet_id,created_at,text,lang`` with Twitter's
  ``Wed Jan 01 03:59:03 +0000 2014`` time; a tweet naming several tickers appears once per ticker
  in the file and is merged back into one item with all of them;
* **native**: ``published_at,symbols,headline`` (+ optional ``id,source,received_at,summary,url``),
  as CSV or JSON lines (``.jsonl``/``.ndjson``), times ISO-8601 with an offset or integer ns.

Files may be gzipped. A row without a symbol or a time is dropped and counted by reason in
``rejected`` (never guessed: a headline with no ticker cannot feed a per-symbol feature). In a
replay ``received_at`` equals ``published_at`` unless the file gives it: the replay pretends we
were listening when the story came out. Items come out in ``received_at`` order, de-duplicated.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

from tradesignals.domain.market import to_ns
from tradesignals.domain.news import (
    Deduplicator,
    NewsError,
    NewsItem,
    RejectReason,
    normalise_symbols,
)
from tradesignals.news.names import CompanyNames

_TWITTER_TIME = "%a %b %d %H:%M:%S %z %Y"


def parse_time(value: object) -> int | None:
    """Nanoseconds UTC from integer ns, ISO-8601 with an offset, or Twitter's format; None if absent.

    A time without a timezone raises ``ValueError``: guessing the zone would shift every feature.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not text or text.lower() == "nan":
        return None
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        when = datetime.strptime(text, _TWITTER_TIME)
    return to_ns(when)


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def _is_jsonl(path: Path) -> bool:
    suffixes = [s.lower() for s in path.suffixes]
    return any(s in (".jsonl", ".ndjson") for s in suffixes)


class ReplayNewsFeed:
    """All items of one file, sorted by ``received_at``; ``stream()`` ends at the end of the file."""

    def __init__(self, path: str | Path, *, speed: float = 0.0, names: CompanyNames | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise NewsError(f"news replay: no such file {self.path}")
        self.name = f"replay:{self.path.name}"
        self.rejected: Counter[str] = Counter()
        self.dedup = Deduplicator()
        self.names = names
        self.mapped_by_name = 0  # items that had no symbol and got one from a company name
        self._speed = speed
        self._closed = False
        self._items: list[NewsItem] | None = None

    def load(self) -> list[NewsItem]:
        """Read, validate, merge and de-duplicate the whole file (once)."""
        if self._items is None:
            raw = list(self._read())
            raw.sort(key=lambda i: (i.received_at, i.id))
            kept = []
            for item in raw:
                if self.dedup.admit(item):
                    kept.append(item)
                else:
                    self.rejected[RejectReason.DUPLICATE] += 1
            self._items = kept
        return self._items

    async def stream(self) -> AsyncIterator[NewsItem]:
        """Items in received order; with ``speed`` > 0, paced at that multiple of real time."""
        items = self.load()
        prev: int | None = None
        for item in items:
            if self._closed:
                return
            if self._speed > 0 and prev is not None and item.received_at > prev:
                await asyncio.sleep((item.received_at - prev) / 1e9 / self._speed)
            prev = item.received_at
            yield item

    async def close(self) -> None:
        self._closed = True

    # -- layouts -------------------------------------------------------------------------------

    def _read(self) -> Iterator[NewsItem]:
        try:
            with _open_text(self.path) as fh:
                if _is_jsonl(self.path):
                    yield from self._native(self._json_lines(fh))
                    return
                reader = csv.DictReader(fh)
                cols = set(reader.fieldnames or ())
                if {"title", "date", "stock"} <= cols:
                    yield from self._benzinga(reader)
                elif {"ticker", "tweet_id", "created_at", "text"} <= cols:
                    yield from self._stocknet(reader)
                elif {"published_at", "symbols", "headline"} <= cols:
                    yield from self._native(reader)
                else:
                    raise NewsError(
                        f"news replay: {self.path.name} has columns {sorted(cols)}; expected Benzinga "
                        "(title,date,stock), StockNet (ticker,tweet_id,created_at,text) or "
                        "native (published_at,symbols,headline)"
                    )
        except (OSError, UnicodeDecodeError, csv.Error, EOFError) as err:
            raise NewsError(f"news replay: cannot read {self.path.name}: {err}") from None

    def _json_lines(self, fh: IO[str]) -> Iterator[dict[str, Any]]:
        for line in fh:
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                self.rejected[RejectReason.MALFORMED] += 1
                continue
            if isinstance(row, dict):
                yield row
            else:
                self.rejected[RejectReason.MALFORMED] += 1

    def _make(
        self,
        *,
        ident: str,
        source: str,
        when: object,
        received: object,
        symbols: tuple[str, ...],
        headline: object,
        summary: object = "",
        url: object = "",
    ) -> NewsItem | None:
        if not symbols and self.names is not None:
            symbols = self.names.match(str(headline or ""))
            self.mapped_by_name += bool(symbols)
        if not symbols:
            self.rejected[RejectReason.NO_SYMBOL] += 1
            return None
        try:
            published = parse_time(when)
            received_at = parse_time(received)
        except (ValueError, TypeError):
            self.rejected[RejectReason.BAD_TIME] += 1
            return None
        if published is None:
            self.rejected[RejectReason.NO_TIME] += 1
            return None
        text = str(headline or "").strip()
        if not text:
            self.rejected[RejectReason.NO_HEADLINE] += 1
            return None
        return NewsItem(
            id=ident,
            source=source,
            published_at=published,
            received_at=received_at if received_at is not None else published,
            symbols=symbols,
            headline=text,
            summary=str(summary or "").strip(),
            url=str(url or "").strip(),
        )

    def _benzinga(self, reader: csv.DictReader[str]) -> Iterator[NewsItem]:
        for n, row in enumerate(reader):
            index = (row.get("") or "").strip() or str(n)
            item = self._make(
                ident=f"benzinga:{index}",
                source="benzinga",
                when=row.get("date"),
                received=None,
                symbols=normalise_symbols(row.get("stock")),
                headline=row.get("title"),
            )
            if item is not None:
                yield item

    def _stocknet(self, reader: csv.DictReader[str]) -> Iterator[NewsItem]:
        # The file repeats a tweet once per ticker it mentions: merge them back into one item.
        merged: dict[str, dict[str, Any]] = {}
        for row in reader:
            tweet = (row.get("tweet_id") or "").strip()
            if not tweet:
                self.rejected[RejectReason.MALFORMED] += 1
                continue
            entry = merged.setdefault(tweet, {"row": row, "symbols": set()})
            entry["symbols"].update(normalise_symbols(row.get("ticker")))
        for tweet, entry in merged.items():
            row = entry["row"]
            item = self._make(
                ident=f"twitter:{tweet}",
                source="stocknet",
                when=row.get("created_at"),
                received=None,
                symbols=tuple(sorted(entry["symbols"])),
                headline=row.get("text"),
            )
            if item is not None:
                yield item

    def _native(self, rows: Iterator[dict[str, Any]] | csv.DictReader[str]) -> Iterator[NewsItem]:
        for n, row in enumerate(rows):
            source = str(row.get("source") or "replay").strip() or "replay"
            ident = str(row.get("id") or "").strip() or f"{self.path.name}#{n}"
            item = self._make(
                ident=ident if ":" in ident else f"{source}:{ident}",
                source=source,
                when=row.get("published_at"),
                received=row.get("received_at"),
                symbols=normalise_symbols(row.get("symbols")),
                headline=row.get("headline"),
                summary=row.get("summary"),
                url=row.get("url"),
            )
            if item is not None:
                yield item
