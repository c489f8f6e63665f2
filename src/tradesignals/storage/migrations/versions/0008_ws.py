"""WebSocket delivery: the watchlist behind ``user:{id}:watchlist`` and the capital users state.

Revision ID: 0008_ws
Revises: 0007_summary_index
Create Date: 2026-12-07

``watchlist`` (user, symbol) is read by symbol for every bar (who watches AAPL?), hence the index on
``symbol``; ``users.capital`` sizes the live signals of ``user:{id}:signals`` (None: the default).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_ws"
down_revision: str | Sequence[str] | None = "0007_summary_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "watchlist",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_watchlist_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "symbol", name=op.f("pk_watchlist")),
    )
    op.create_index(op.f("ix_watchlist_symbol"), "watchlist", ["symbol"])
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("capital", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("capital")
    op.drop_index(op.f("ix_watchlist_symbol"), table_name="watchlist")
    op.drop_table("watchlist")
