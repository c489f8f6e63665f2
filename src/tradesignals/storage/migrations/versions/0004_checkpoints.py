"""Ledger checkpoints: signed heads of the ledger, stored append-only like the ledger itself.

Revision ID: 0004
Revises: 0003
Create Date: 2026-01-20

One row per checkpoint (``domain/checkpoints.py``), numbered 1, 2, 3… by the repository. The same
protection as ``signal_events`` (0002): on PostgreSQL a trigger refuses UPDATE, DELETE and
TRUNCATE; on SQLite triggers refuse UPDATE and DELETE and an INSERT that is not past the end or
repeats a hash (``INSERT OR REPLACE`` would otherwise delete silently). As for the ledger, the
table owner can still drop the triggers: what catches that is the checkpoints people saved.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REFUSED = "ledger_checkpoints is append-only (a checkpoint is never rewritten)"

_SQLITE_TRIGGERS = {
    "ledger_checkpoints_no_update": f"""
        CREATE TRIGGER ledger_checkpoints_no_update BEFORE UPDATE ON ledger_checkpoints
        BEGIN SELECT RAISE(ABORT, '{_REFUSED}: UPDATE refused'); END
    """,
    "ledger_checkpoints_no_delete": f"""
        CREATE TRIGGER ledger_checkpoints_no_delete BEFORE DELETE ON ledger_checkpoints
        BEGIN SELECT RAISE(ABORT, '{_REFUSED}: DELETE refused'); END
    """,
    "ledger_checkpoints_append_at_end": f"""
        CREATE TRIGGER ledger_checkpoints_append_at_end BEFORE INSERT ON ledger_checkpoints
        WHEN NEW.number IS NULL OR NEW.number < 1
          OR NEW.number <= (SELECT coalesce(max(number), 0) FROM ledger_checkpoints)
          OR EXISTS (SELECT 1 FROM ledger_checkpoints WHERE hash = NEW.hash)
        BEGIN SELECT RAISE(ABORT, '{_REFUSED}: INSERT that is not past the end refused'); END
    """,
}

_PG_FUNCTION = f"""
    CREATE FUNCTION ledger_checkpoints_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{_REFUSED}: % refused', TG_OP USING ERRCODE = 'restrict_violation';
    END;
    $$
"""
_PG_TRIGGERS = {
    "ledger_checkpoints_no_update_delete": """
        CREATE TRIGGER ledger_checkpoints_no_update_delete BEFORE UPDATE OR DELETE ON ledger_checkpoints
        FOR EACH ROW EXECUTE FUNCTION ledger_checkpoints_append_only()
    """,
    "ledger_checkpoints_no_truncate": """
        CREATE TRIGGER ledger_checkpoints_no_truncate BEFORE TRUNCATE ON ledger_checkpoints
        FOR EACH STATEMENT EXECUTE FUNCTION ledger_checkpoints_append_only()
    """,
}


def upgrade() -> None:
    op.create_table(
        "ledger_checkpoints",
        sa.Column(
            "number",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("previous_checkpoint_hash", sa.String(64), nullable=False),
        sa.Column("next_public_key", sa.String(64), nullable=True),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_ledger_checkpoints")),
    )
    op.create_index(op.f("ix_ledger_checkpoints_hash"), "ledger_checkpoints", ["hash"], unique=True)
    if op.get_bind().dialect.name == "sqlite":
        for ddl in _SQLITE_TRIGGERS.values():
            op.execute(ddl)
    else:
        op.execute(_PG_FUNCTION)
        for ddl in _PG_TRIGGERS.values():
            op.execute(ddl)


def downgrade() -> None:
    """Back to 0002: the checkpoints go (with their triggers). Destroys what was published."""
    if op.get_bind().dialect.name != "sqlite":
        for name in _PG_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON ledger_checkpoints")
        op.execute("DROP FUNCTION IF EXISTS ledger_checkpoints_append_only()")
    op.drop_index(op.f("ix_ledger_checkpoints_hash"), table_name="ledger_checkpoints")
    op.drop_table("ledger_checkpoints")  # SQLite drops a table's triggers with it
