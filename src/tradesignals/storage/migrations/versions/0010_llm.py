"""LLM results: explanations and research briefs per (signal, kind, prompt version, model), with cost.

Revision ID: 0010_llm
Revises: 0009_push
Create Date: 2026-12-07

The explain sidecar's cache and the texts the API serves (``storage/llm.py``). One row per
(signal, kind, prompt version, model), so a restart finds what it already paid for.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_llm"
down_revision: str | Sequence[str] | None = "0009_push"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "llm_results",
        sa.Column("signal_id", sa.String(22), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("prompt_version", sa.String(32), nullable=False),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("fallback", sa.String(32), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("signal_id", "kind", "prompt_version", "model", name=op.f("pk_llm_results")),
    )
    op.create_index(
        op.f("ix_llm_results_signal_id_kind_created_at_ns"),
        "llm_results",
        ["signal_id", "kind", "created_at_ns"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_llm_results_signal_id_kind_created_at_ns"), table_name="llm_results")
    op.drop_table("llm_results")
