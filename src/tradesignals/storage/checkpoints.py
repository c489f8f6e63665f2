"""SQL implementation of ``storage.base.CheckpointRepository`` (SQLite and PostgreSQL).

Kept beside, not inside, ``repositories.py``: checkpoints are their own table with their own rules,
and share with the ledger only its write lock (``lock_ledger``).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from tradesignals.domain.checkpoints import Checkpoint
from tradesignals.domain.ledger import GENESIS
from tradesignals.storage.base import MakeCheckpoint
from tradesignals.storage.db import storage_errors, writer
from tradesignals.storage.repositories import lock_ledger
from tradesignals.storage.tables import LedgerCheckpointRow, SignalEventRow

MAX_CHECKPOINTS_LIMIT = 10_000


def _to_checkpoint(row: LedgerCheckpointRow) -> Checkpoint:
    return Checkpoint(
        number=row.number,
        seq=row.seq,
        head_hash=row.head_hash,
        at=row.at,
        previous_checkpoint_hash=row.previous_checkpoint_hash,
        public_key=row.public_key,
        signature=row.signature,
        next_public_key=row.next_public_key,
    )


class SqlCheckpointRepository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(writer(engine), expire_on_commit=False)

    def append(self, make: MakeCheckpoint) -> Checkpoint:
        """Store ``make(head_seq, head_hash, previous)``, all read and written in one transaction.

        Under the ledger's write lock: the head read is the current one and the checkpoint number
        is last + 1, even with several nodes writing. ``make`` must number its checkpoint after
        ``previous`` (``ValueError`` otherwise), so the stored chain has no gaps.
        """
        with storage_errors("writing a ledger checkpoint", self.engine), self._write.begin() as session:
            lock_ledger(session)
            head = session.execute(
                sa.select(SignalEventRow.seq, SignalEventRow.hash)
                .order_by(SignalEventRow.seq.desc())
                .limit(1)
            ).first()
            last = session.scalars(
                sa.select(LedgerCheckpointRow).order_by(LedgerCheckpointRow.number.desc()).limit(1)
            ).first()
            previous = _to_checkpoint(last) if last is not None else None
            seq, head_hash = (head.seq, head.hash) if head is not None else (0, GENESIS)
            checkpoint = make(seq, head_hash, previous)
            expected = previous.number + 1 if previous is not None else 1
            if checkpoint.number != expected:
                raise ValueError(f"checkpoint numbered {checkpoint.number}, expected {expected}")
            session.add(
                LedgerCheckpointRow(
                    number=checkpoint.number,
                    seq=checkpoint.seq,
                    head_hash=checkpoint.head_hash,
                    at=checkpoint.at,
                    previous_checkpoint_hash=checkpoint.previous_checkpoint_hash,
                    next_public_key=checkpoint.next_public_key,
                    public_key=checkpoint.public_key,
                    signature=checkpoint.signature,
                    hash=checkpoint.hash,
                )
            )
            session.flush()
            return checkpoint

    def latest(self) -> Checkpoint | None:
        stmt = sa.select(LedgerCheckpointRow).order_by(LedgerCheckpointRow.number.desc()).limit(1)
        with storage_errors("reading the latest ledger checkpoint", self.engine), self._read() as session:
            row = session.scalars(stmt).first()
            return _to_checkpoint(row) if row is not None else None

    def page(self, from_number: int = 0, limit: int = 1000) -> list[Checkpoint]:
        """Checkpoints with ``number >= from_number``, ascending; limit clamped to [1, 10000]."""
        stmt = (
            sa.select(LedgerCheckpointRow)
            .where(LedgerCheckpointRow.number >= from_number)
            .order_by(LedgerCheckpointRow.number)
            .limit(max(1, min(int(limit), MAX_CHECKPOINTS_LIMIT)))
        )
        with storage_errors("reading ledger checkpoints", self.engine), self._read() as session:
            return [_to_checkpoint(row) for row in session.scalars(stmt)]


__all__ = ["MAX_CHECKPOINTS_LIMIT", "SqlCheckpointRepository"]
