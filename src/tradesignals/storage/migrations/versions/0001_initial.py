"""Initial schema: users, signals, signal_events.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written by hand and checked against ``tables.py`` on SQLite and PostgreSQL by
``tests/integration/storage/test_migrations.py``. Enum value lists are frozen here as literals: a
migration must describe the schema as it was, not as the code is today.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _in(column: str, *values: str) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("risk_profile", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
        sa.CheckConstraint(_in("tier", "free", "premium", "dynamic"), name=op.f("ck_users_tier")),
        sa.CheckConstraint(
            _in("risk_profile", "conservative", "moderate", "aggressive"),
            name=op.f("ck_users_risk_profile"),
        ),
    )

    op.create_table(
        "signals",
        sa.Column("id", sa.String(22), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("entry", sa.Double(), nullable=False),
        sa.Column("stop", sa.Double(), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("confidence", sa.Double(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("timeframe", sa.String(16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signals")),
        sa.CheckConstraint(_in("type", "swing", "day", "event", "options"), name=op.f("ck_signals_type")),
        sa.CheckConstraint(_in("direction", "long", "short"), name=op.f("ck_signals_direction")),
        sa.CheckConstraint(
            _in("status", "open", "target_hit", "stopped", "expired", "cancelled"),
            name=op.f("ck_signals_status"),
        ),
    )
    op.create_index(op.f("ix_signals_symbol_created_at"), "signals", ["symbol", "created_at"])
    op.create_index(op.f("ix_signals_symbol_id"), "signals", ["symbol", "id"])
    op.create_index(op.f("ix_signals_status"), "signals", ["status"])

    op.create_table(
        "signal_events",
        # INTEGER on SQLite so that the column is the rowid (required for AUTOINCREMENT).
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
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_signal_events")),
        sa.ForeignKeyConstraint(
            ["signal_id"], ["signals.id"], name=op.f("fk_signal_events_signal_id_signals")
        ),
        sa.CheckConstraint(_in("kind", "created", "updated", "closed"), name=op.f("ck_signal_events_kind")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_signal_events_signal_id_seq"), "signal_events", ["signal_id", "seq"])


def downgrade() -> None:
    op.drop_index(op.f("ix_signal_events_signal_id_seq"), table_name="signal_events")
    op.drop_table("signal_events")
    op.drop_index(op.f("ix_signals_status"), table_name="signals")
    op.drop_index(op.f("ix_signals_symbol_id"), table_name="signals")
    op.drop_index(op.f("ix_signals_symbol_created_at"), table_name="signals")
    op.drop_table("signals")
    op.drop_table("users")
