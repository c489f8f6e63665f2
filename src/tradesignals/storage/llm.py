"""The explain sidecar's results in SQL (``llm_results``): its cache, and what the API serves.

Keyed by (signal, kind, prompt version, model): ``get`` is the cache probe before any provider
call, ``put`` is idempotent (the first row for a key stays: two sidecars racing on one signal
store one answer), ``latest`` is what the API serves — the newest row of a kind for a signal,
whichever model wrote it. Also the two reads the sidecar needs from other tables: the signals an
upgrade is in force for, and the news items a model cited (to check each citation exists).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from tradesignals.domain.research import Claim, SignalText, Usage
from tradesignals.storage.db import storage_errors, writer
from tradesignals.storage.tables import LlmResultRow, NewsItemRow, SignalRow, SignalUpgradeRow


def _body(text: SignalText) -> dict[str, Any]:
    return {
        "text": text.text,
        "citations": list(text.citations),
        "claims": [{"text": c.text, "citations": list(c.citations)} for c in text.claims],
        "dropped": dict(text.dropped),
    }


def _text(row: LlmResultRow) -> SignalText:
    body = row.body
    return SignalText(
        signal_id=row.signal_id,
        kind=row.kind,
        text=str(body["text"]),
        citations=tuple(body.get("citations", ())),
        model=row.model,
        prompt_version=row.prompt_version,
        created_at_ns=row.created_at_ns,
        claims=tuple(Claim(str(c["text"]), tuple(c["citations"])) for c in body.get("claims", ())),
        fallback=row.fallback,
        dropped={str(k): int(v) for k, v in body.get("dropped", {}).items()},
    )


class SqlLlmStore:
    """Explanations and research briefs per signal, with their usage, on SQLite and PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(writer(engine), expire_on_commit=False)

    def get(self, signal_id: str, kind: str, prompt_version: str, model: str) -> SignalText | None:
        with storage_errors(f"reading the {kind} of {signal_id}", self.engine), self._read() as session:
            row = session.get(LlmResultRow, (signal_id, kind, prompt_version, model))
            return _text(row) if row is not None else None

    def put(self, text: SignalText, usage: Usage) -> bool:
        """Store ``text``; False when a row for its key was there already (it is kept)."""
        key = (text.signal_id, text.kind, text.prompt_version, text.model)
        with (
            storage_errors(f"storing the {text.kind} of {text.signal_id}", self.engine),
            self._write.begin() as s,
        ):
            if s.get(LlmResultRow, key) is not None:
                return False
            s.add(
                LlmResultRow(
                    signal_id=text.signal_id,
                    kind=text.kind,
                    prompt_version=text.prompt_version,
                    model=text.model,
                    provider=usage.provider,
                    body=_body(text),
                    fallback=text.fallback,
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    cost_usd=usage.cost_usd,
                    latency_ms=usage.latency_ms,
                    created_at_ns=text.created_at_ns,
                )
            )
            return True

    def latest(self, signal_id: str, kind: str) -> SignalText | None:
        stmt = (
            sa.select(LlmResultRow)
            .where(LlmResultRow.signal_id == signal_id, LlmResultRow.kind == kind)
            .order_by(LlmResultRow.created_at_ns.desc())
            .limit(1)
        )
        with storage_errors(f"reading the {kind} of {signal_id}", self.engine), self._read() as session:
            row = session.scalars(stmt).first()
            return _text(row) if row is not None else None

    def usage(self, signal_id: str) -> list[tuple[str, str, Usage]]:
        """(kind, model, usage) of every row about ``signal_id``: what its texts cost."""
        stmt = sa.select(LlmResultRow).where(LlmResultRow.signal_id == signal_id)
        with storage_errors(f"reading LLM usage of {signal_id}", self.engine), self._read() as session:
            return [
                (
                    r.kind,
                    r.model,
                    Usage(r.provider, r.input_tokens, r.output_tokens, r.cost_usd, r.latency_ms),
                )
                for r in session.scalars(stmt)
            ]

    def upgraded_open_signals(self, now: datetime, limit: int = 1000) -> list[str]:
        """Open signals somebody holds an upgrade to at ``now`` (not revoked, not lapsed)."""
        stmt = (
            sa.select(SignalUpgradeRow.signal_id)
            .join(SignalRow, SignalRow.id == SignalUpgradeRow.signal_id)
            .where(
                SignalUpgradeRow.revoked_at.is_(None),
                SignalUpgradeRow.expires_at > now,
                SignalRow.status == "open",
            )
            .distinct()
            .order_by(SignalUpgradeRow.signal_id)
            .limit(limit)
        )
        with storage_errors("reading upgraded signals", self.engine), self._read() as session:
            return list(session.scalars(stmt))

    def news_symbols(self, ids: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """The symbols of each stored news item among ``ids`` (absent ids are not in the map)."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        stmt = sa.select(NewsItemRow.id, NewsItemRow.symbols).where(NewsItemRow.id.in_(wanted))
        with storage_errors("reading cited news", self.engine), self._read() as session:
            return {i: tuple(s) for i, s in session.execute(stmt)}
