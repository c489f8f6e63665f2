"""SEC EDGAR filings as news: polls each company's submissions JSON for new 8-K and Form 4 filings.

Wire format, from the SEC's "EDGAR Application Programming Interfaces" page
(``https://data.sec.gov/submissions/CIK##########.json``, ten-digit zero-padded CIK):

* ``{"cik", "name", "tickers": [...], "exchanges": [...], "filings": {"recent": {...}, "files": [...]}}``;
* ``filings.recent`` holds *parallel arrays*, one entry per filing, newest first:
  ``accessionNumber``, ``filingDate``, ``reportDate``, ``acceptanceDateTime``
  (``2024-11-01T06:01:36.000Z``), ``form`` (``8-K``, ``4``, ``10-Q``...), ``items`` (8-K item
  numbers, ``"2.02,9.01"``), ``primaryDocument``, ``primaryDocDescription``...;
* the SEC asks every client to send a ``User-Agent`` naming the company and a contact address, and
  to stay under 10 requests a second; a client without one is refused with 403.

A filing becomes a ``NewsItem`` with id ``sec:<accession>``, the company's tickers as symbols,
``published_at`` = ``received_at`` of the acceptance time as EDGAR states it (the time the market
could know), a headline naming the form and, for an 8-K, its items in words, and the URL of the
primary document. Arrays of unequal length, a filing without acceptance time, a company without
tickers are counted and skipped. The HTTP behaviour (429 Retry-After, 5xx, garbage) is the shared
``JsonPoller``'s; a 403 (no or refused User-Agent) ends the stream with one line.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime
from typing import Any

import httpx

from tradesignals.domain.market import to_ns
from tradesignals.domain.news import Deduplicator, NewsError, NewsItem, RejectReason, normalise_symbols
from tradesignals.news._http import JsonPoller

DEFAULT_BASE_URL = "https://data.sec.gov"
ARCHIVES = "https://www.sec.gov/Archives/edgar/data"
DEFAULT_FORMS = frozenset({"8-K", "8-K/A", "4"})

# Form 8-K items (SEC Form 8-K General Instructions), the words put in the headline.
ITEMS_8K = {
    "1.01": "Entry into a Material Definitive Agreement",
    "1.02": "Termination of a Material Definitive Agreement",
    "1.03": "Bankruptcy or Receivership",
    "2.01": "Completion of Acquisition or Disposition of Assets",
    "2.02": "Results of Operations and Financial Condition",
    "2.03": "Creation of a Direct Financial Obligation",
    "2.05": "Costs Associated with Exit or Disposal Activities",
    "2.06": "Material Impairments",
    "3.01": "Notice of Delisting or Failure to Satisfy a Continued Listing Rule",
    "3.02": "Unregistered Sales of Equity Securities",
    "4.01": "Changes in Registrant's Certifying Accountant",
    "4.02": "Non-Reliance on Previously Issued Financial Statements",
    "5.02": "Departure or Appointment of Directors or Officers",
    "5.03": "Amendments to Articles of Incorporation or Bylaws",
    "5.07": "Submission of Matters to a Vote of Security Holders",
    "7.01": "Regulation FD Disclosure",
    "8.01": "Other Events",
    "9.01": "Financial Statements and Exhibits",
}
_ARRAYS = ("accessionNumber", "acceptanceDateTime", "form", "items", "primaryDocument")


class EdgarFilingsFeed(JsonPoller):
    """Polls ``submissions/CIK##########.json`` for each CIK every ``interval_s``; never ends until closed."""

    name = "sec-edgar"

    def __init__(
        self,
        ciks: Iterable[int | str],
        *,
        user_agent: str,
        forms: Iterable[str] = DEFAULT_FORMS,
        base_url: str = DEFAULT_BASE_URL,
        interval_s: float = 60.0,
        max_retries: int = 3,
        retry_after_cap_s: float = 600.0,
        backoff_s: float = 1.0,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if "@" not in user_agent:
            raise NewsError(
                "sec-edgar: the SEC requires a User-Agent with a contact e-mail, e.g. 'Acme ops@acme.com'"
            )
        try:
            self._ciks = [int(str(c).upper().removeprefix("CIK")) for c in ciks]
        except ValueError:
            raise NewsError(f"sec-edgar: CIKs must be numbers, got {list(ciks)!r}") from None
        if not self._ciks:
            raise NewsError("sec-edgar: give at least one CIK")
        super().__init__(
            client=client,
            max_retries=max_retries,
            backoff_s=backoff_s,
            retry_after_cap_s=retry_after_cap_s,
            fatal={403: f"{base_url} refused the client (User-Agent {user_agent!r})"},
        )
        self._headers = {"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"}
        self._forms = frozenset(f.upper() for f in forms)
        self._base = base_url.rstrip("/")
        self._interval = interval_s
        self._clock = clock
        self.dedup = Deduplicator()

    def url(self, cik: int) -> str:
        return f"{self._base}/submissions/CIK{cik:010d}.json"

    async def poll_once(self) -> list[NewsItem]:
        """One request per CIK; new filings of the chosen forms, oldest first."""
        out: list[NewsItem] = []
        for cik in self._ciks:
            if self._closed.is_set():
                break
            body = await self._get_json(self.url(cik), self._headers)
            if body is not None:
                out.extend(self._filings(cik, body))
        out.sort(key=lambda i: (i.published_at, i.id))
        return out

    def _filings(self, cik: int, body: dict[str, Any]) -> list[NewsItem]:
        recent = (body.get("filings") or {}).get("recent") if isinstance(body.get("filings"), dict) else None
        if not isinstance(recent, dict):
            self.rejected["unexpected shape"] += 1
            return []
        columns = [recent.get(k) for k in _ARRAYS]
        if not all(isinstance(c, list) for c in columns) or len({len(c) for c in columns}) != 1:  # type: ignore[arg-type]
            self.rejected["unequal arrays"] += 1
            return []
        symbols = normalise_symbols(body.get("tickers"))
        name = str(body.get("name") or f"CIK {cik}").strip()
        out = []
        for accession, accepted, form, items, document in zip(*columns, strict=True):
            if not isinstance(form, str) or form.upper() not in self._forms:
                continue
            if not isinstance(accession, str) or not accession:
                self.rejected[RejectReason.MALFORMED] += 1
                continue
            if not symbols:
                self.rejected[RejectReason.NO_SYMBOL] += 1
                continue
            if not isinstance(accepted, str) or not accepted:
                self.rejected[RejectReason.NO_TIME] += 1
                continue
            try:
                published = to_ns(datetime.fromisoformat(accepted.replace("Z", "+00:00")))
            except ValueError:
                self.rejected[RejectReason.BAD_TIME] += 1
                continue
            item = NewsItem(
                id=f"sec:{accession}",
                source="sec",
                published_at=published,
                received_at=self._clock(),
                symbols=symbols,
                headline=headline(name, form, items if isinstance(items, str) else ""),
                tags=tuple(
                    f"{form.upper()}:{code.strip()}"
                    for code in (items.split(",") if isinstance(items, str) else [])
                    if code.strip()
                ),
                url=(
                    f"{ARCHIVES}/{cik}/{accession.replace('-', '')}/{document}"
                    if isinstance(document, str) and document
                    else ""
                ),
            )
            if self.dedup.admit(item):
                out.append(item)
            else:
                self.rejected[RejectReason.DUPLICATE] += 1
        return out

    async def stream(self) -> AsyncIterator[NewsItem]:
        while not self._closed.is_set():
            for item in await self.poll_once():
                yield item
            await self._sleep(self._interval)


def headline(company: str, form: str, items: str) -> str:
    """``Apple Inc. files 8-K: Results of Operations and Financial Condition (2.02)``; Form 4 named."""
    if form.upper() == "4":
        return f"{company}: Form 4, insider transaction (statement of changes in beneficial ownership)"
    codes = [c.strip() for c in items.split(",") if c.strip() and c.strip() != "9.01"]
    words = "; ".join(f"{ITEMS_8K.get(c, 'Item')} ({c})" for c in codes)
    return f"{company} files {form}" + (f": {words}" if words else "")
