"""The ledger: hash-chain signal_events and make the table append-only in the database itself.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-10

Adds ``prev_hash`` and ``hash`` (sha256 hex, NOT NULL), fills them for the rows already there by
walking them in ``seq`` order with the recipe of ``tradesignals.domain.ledger``, and adds a unique
index on ``hash`` and an index on ``(kind, seq)`` for the history pages.

The recipe is imported rather than copied: it is frozen by definition (changing it would break
every hash ever published), and a copy that drifted would write a chain ``ledger verify`` rejects.

Append-only in the database, so that a stray ``UPDATE`` in a console or a buggy job cannot rewrite
the track record: on PostgreSQL a trigger refuses UPDATE, DELETE and TRUNCATE; on SQLite triggers
refuse UPDATE and DELETE, and also an INSERT that is not past the end or repeats a hash, because
``INSERT OR REPLACE`` deletes the conflicting row without firing delete triggers. (Neither database
lets a trigger stop ``DROP TABLE`` or the table owner disabling triggers; the chain is what catches
those, and only a published head catches a rewrite of the whole chain.)

Seqs must already run 1, 2, 3… without gaps: from now on the repository assigns last + 1, and
``verify`` reads a gap as a deleted entry. A PostgreSQL sequence can skip a number when an insert
rolls back, so a database with such a gap is refused here (with the gap named) rather than given
a chain that can never verify.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from tradesignals.domain.ledger import GENESIS, entry_body, entry_hash
from tradesignals.storage.base import StorageError

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BACKFILL_PAGE = 5_000

_REFUSED = "signal_events is append-only (the ledger is never rewritten)"

_SQLITE_TRIGGERS = {
    "signal_events_no_update": f"""
        CREATE TRIGGER signal_events_no_update BEFORE UPDATE ON signal_events
        BEGIN SELECT RAISE(ABORT, '{_REFUSED}: UPDATE refused'); END
    """,
    "signal_events_no_delete": f"""
        CREATE TRIGGER signal_events_no_delete BEFORE DELETE ON signal_events
        BEGIN SELECT RAISE(ABORT, '{_REFUSED}: DELETE refused'); END
    """,
    # NEW.seq is NULL or -1 when the insert leaves it to SQLite: refused too, seq is ours to assign.
    "signal_events_append_at_end": f"""
        CREATE TRIGGER signal_events_append_at_end BEFORE INSERT ON signal_events
        WHEN NEW.seq IS NULL OR NEW.seq < 1
          OR NEW.seq <= (SELECT coalesce(max(seq), 0) FROM signal_events)
          OR EXISTS (SELECT 1 FROM signal_events WHERE hash = NEW.hash)
        BEGIN SELECT RAISE(ABORT, '{_REFUSED}: INSERT that is not past the end refused'); END
    """,
}

_PG_FUNCTION = f"""
    CREATE FUNCTION signal_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{_REFUSED}: % refused', TG_OP USING ERRCODE = 'restrict_violation';
    END;
    $$
"""
_PG_TRIGGERS = {
    "signal_events_no_update_delete": """
        CREATE TRIGGER signal_events_no_update_delete BEFORE UPDATE OR DELETE ON signal_events
        FOR EACH ROW EXECUTE FUNCTION signal_events_append_only()
    """,
    "signal_events_no_truncate": """
        CREATE TRIGGER signal_events_no_truncate BEFORE TRUNCATE ON signal_events
        FOR EACH STATEMENT EXECUTE FUNCTION signal_events_append_only()
    """,
}


def _events_table(*, hashed: bool, hashes_nullable: bool) -> sa.Table:
    """signal_events as it stands at this point of the migration (SQLite rebuilds copy from it).

    Spelled out rather than reflected so that the rebuild keeps the CHECK constraint, the foreign
    key and AUTOINCREMENT exactly as 0001 created them.
    """
    columns: list[Any] = [
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("signal_id", sa.String(22), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
    ]
    if hashed:
        columns += [
            sa.Column("prev_hash", sa.String(64), nullable=hashes_nullable),
            sa.Column("hash", sa.String(64), nullable=hashes_nullable),
        ]
    meta = sa.MetaData()
    sa.Table("signals", meta, sa.Column("id", sa.String(22), primary_key=True))
    return sa.Table(
        "signal_events",
        meta,
        *columns,
        sa.PrimaryKeyConstraint("seq", name="pk_signal_events"),
        sa.ForeignKeyConstraint(["signal_id"], ["signals.id"], name="fk_signal_events_signal_id_signals"),
        sa.CheckConstraint("kind IN ('created', 'updated', 'closed')", name="ck_signal_events_kind"),
        sa.Index("ix_signal_events_signal_id_seq", "signal_id", "seq"),
        sqlite_autoincrement=True,
    )


_rows = sa.table(
    "signal_events",
    sa.column("seq", sa.BigInteger()),
    sa.column("signal_id", sa.String()),
    sa.column("kind", sa.String()),
    sa.column("at", sa.DateTime(timezone=True)),
    sa.column("data", sa.JSON()),
    sa.column("prev_hash", sa.String()),
    sa.column("hash", sa.String()),
)


def _utc(value: datetime) -> datetime:
    # SQLite hands back the naive UTC text the app stored; PostgreSQL an aware timestamptz.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _backfill(bind: sa.Connection) -> None:
    """Chain the existing rows in seq order, a page at a time (memory stays flat on big tables)."""
    prev, expected = GENESIS, 1
    while True:
        page = bind.execute(
            sa.select(_rows.c.seq, _rows.c.signal_id, _rows.c.kind, _rows.c.at, _rows.c.data)
            .where(_rows.c.seq >= expected)
            .order_by(_rows.c.seq)
            .limit(_BACKFILL_PAGE)
        ).all()
        if not page:
            return
        updates: list[dict[str, Any]] = []
        for seq, signal_id, kind, at, data in page:
            if seq != expected:
                raise StorageError(
                    f"signal_events seq {expected} is missing (next is {seq}): the ledger needs seqs"
                    " without gaps; this database cannot be chained as it is"
                )
            digest = entry_hash(prev, entry_body(seq, signal_id, kind, _utc(at), data))
            updates.append({"b_seq": seq, "b_prev": prev, "b_hash": digest})
            prev, expected = digest, seq + 1
        bind.execute(
            _rows.update()
            .where(_rows.c.seq == sa.bindparam("b_seq"))
            .values(prev_hash=sa.bindparam("b_prev"), hash=sa.bindparam("b_hash")),
            updates,
        )


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    with op.batch_alter_table("signal_events") as batch:
        batch.add_column(sa.Column("prev_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("hash", sa.String(64), nullable=True))
    _backfill(bind)
    with op.batch_alter_table(
        "signal_events",
        copy_from=_events_table(hashed=True, hashes_nullable=True) if sqlite else None,
    ) as batch:
        batch.alter_column("prev_hash", existing_type=sa.String(64), nullable=False)
        batch.alter_column("hash", existing_type=sa.String(64), nullable=False)
    op.create_index(op.f("ix_signal_events_kind_seq"), "signal_events", ["kind", "seq"])
    op.create_index(op.f("ix_signal_events_hash"), "signal_events", ["hash"], unique=True)
    if sqlite:
        for ddl in _SQLITE_TRIGGERS.values():
            op.execute(ddl)
    else:
        op.execute(_PG_FUNCTION)
        for ddl in _PG_TRIGGERS.values():
            op.execute(ddl)


def downgrade() -> None:
    """Back to 0001: triggers and hash columns go (upgrading again recomputes the same hashes)."""
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    if sqlite:
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        for name in _PG_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON signal_events")
        op.execute("DROP FUNCTION IF EXISTS signal_events_append_only()")
        # 0002 assigns seqs itself; 0001's code takes them from the sequence again, which must not
        # hand out one already used.
        op.execute(
            "SELECT setval(pg_get_serial_sequence('signal_events', 'seq'),"
            " coalesce(max(seq), 1), max(seq) IS NOT NULL) FROM signal_events"
        )
    op.drop_index(op.f("ix_signal_events_hash"), table_name="signal_events")
    op.drop_index(op.f("ix_signal_events_kind_seq"), table_name="signal_events")
    with op.batch_alter_table(
        "signal_events",
        copy_from=_events_table(hashed=True, hashes_nullable=False) if sqlite else None,
    ) as batch:
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
