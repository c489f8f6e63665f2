"""News items with their sentiment and catalyst labels, and the symbol index that serves them.

Revision ID: 0006_news
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_news"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "news_items",
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("published_at", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("symbols", sa.JSON(), nullable=False),
        sa.Column("headline", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("sentiment", sa.String(8), nullable=False),
        sa.Column("sentiment_score", sa.Float(), nullable=False),
        sa.Column("catalysts", sa.JSON(), nullable=False),
        sa.Column("scored_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "sentiment IN ('negative', 'neutral', 'positive')", name=op.f("ck_news_items_sentiment")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_news_items")),
    )
    op.create_index(op.f("ix_news_items_received_at"), "news_items", ["received_at"])
    op.create_table(
        "news_symbols",
        sa.Column("news_id", sa.String(200), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["news_id"], ["news_items.id"], name=op.f("fk_news_symbols_news_id_news_items")
        ),
        sa.PrimaryKeyConstraint("news_id", "symbol", name=op.f("pk_news_symbols")),
    )
    op.create_index(op.f("ix_news_symbols_symbol_received_at"), "news_symbols", ["symbol", "received_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_news_symbols_symbol_received_at"), table_name="news_symbols")
    op.drop_table("news_symbols")
    op.drop_index(op.f("ix_news_items_received_at"), table_name="news_items")
    op.drop_table("news_items")
