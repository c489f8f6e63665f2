"""SQL implementation of ``storage.base.IngestPositionStore`` (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tradesignals.storage.base import IngestPosition
from tradesignals.storage.db import storage_errors, writer
from tradesignals.storage.tables import IngestPositionRow


class SqlIngestPositions:
    """One row per feed, overwritten in place (an upsert: a read, then an insert or an update)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load(self, feed: str) -> IngestPosition | None:
        with (
            storage_errors(f"reading the ingest position of {feed!r}", self.engine),
            self.engine.connect() as c,
        ):
            row = c.execute(
                sa.select(IngestPositionRow.published, IngestPositionRow.ids).where(
                    IngestPositionRow.feed == feed
                )
            ).first()
        if row is None:
            return None
        raw: dict[str, dict[str, str]] = json.loads(row.ids)
        ids = {topic: {int(p): i for p, i in parts.items()} for topic, parts in raw.items()}
        published = {topic: int(n) for topic, n in json.loads(row.published).items()}
        return IngestPosition(published=published, ids=ids)

    def save(self, feed: str, position: IngestPosition) -> None:
        ids = json.dumps(
            {t: {str(p): i for p, i in sorted(parts.items())} for t, parts in position.ids.items()}
        )
        published = json.dumps(dict(sorted(position.published.items())))
        values = {"published": published, "ids": ids, "updated_at": datetime.now(UTC)}
        row = IngestPositionRow
        with (
            storage_errors(f"saving the ingest position of {feed!r}", self.engine),
            writer(self.engine).begin() as c,
        ):
            done = c.execute(sa.update(row).where(row.feed == feed).values(**values))
            if done.rowcount == 0:
                c.execute(sa.insert(row).values(feed=feed, **values))
