"""The rulebook: a signal's decision time and its model's base rate, and the ``not_filled`` status.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05

``signals.decided_at`` is the close of the bar a signal was decided on; ``created_at`` stays the
publication time (later in tick mode, when a tick closes the bar). Nullable: signals stored before
the rulebook had one time for both. ``base_rate`` is the model's realised win rate, against which
``confidence`` is an edge, and ``confidence_rank`` where the confidence ranks among the model's own
out-of-fold confidences (both null for rule-based signals). ``not_filled`` is the status of a signal whose first tradable
price was already beyond its stop or first target (``domain.exits``).

SQLite cannot alter a CHECK constraint in place, so the signals table is rebuilt there (Alembic's
batch mode); ``signal_events`` — the append-only ledger — is not touched.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = ("open", "target_hit", "stopped", "expired", "cancelled")
_NEW = ("open", "target_hit", "stopped", "expired", "not_filled", "cancelled")


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    with op.batch_alter_table("signals") as batch:
        batch.add_column(sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("base_rate", sa.Double(), nullable=True))
        batch.add_column(sa.Column("confidence_rank", sa.Double(), nullable=True))
        batch.drop_constraint(op.f("ck_signals_status"), type_="check")
        batch.create_check_constraint(op.f("ck_signals_status"), _in("status", _NEW))


def downgrade() -> None:
    with op.batch_alter_table("signals") as batch:
        batch.drop_constraint(op.f("ck_signals_status"), type_="check")
        batch.create_check_constraint(op.f("ck_signals_status"), _in("status", _OLD))
        batch.drop_column("confidence_rank")
        batch.drop_column("base_rate")
        batch.drop_column("decided_at")
