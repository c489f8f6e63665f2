"""Ingest positions: where each feed's next run starts, so a restarted ingest publishes no bar twice.

Revision ID: 0012_ops
Revises: 0010_llm
Create Date: 2026-12-07

One row per feed name (ADR 0025). A plain table: it is overwritten as ingest goes, never audited.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_ops"
down_revision: str | Sequence[str] | None = "0010_llm"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ingest_positions",
        sa.Column("feed", sa.String(255), nullable=False),
        sa.Column("published", sa.Text(), nullable=False),
        sa.Column("ids", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("feed", name=op.f("pk_ingest_positions")),
    )


def downgrade() -> None:
    op.drop_table("ingest_positions")
