"""Accounts, entitlements and billing: roles, lock-out, refresh tokens, upgrades, subscriptions, payments.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05

``Tier.DYNAMIC`` is gone (a dynamic upgrade is an entitlement to one signal, ``signal_upgrades``):
a ``dynamic`` account was "premium plus upgrades", so it becomes ``premium``. SQLite cannot alter a
CHECK constraint in place; batch mode rebuilds the table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.execute("UPDATE users SET tier = 'premium' WHERE tier = 'dynamic'")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint(op.f("ck_users_tier"), type_="check")
        batch.create_check_constraint(op.f("ck_users_tier"), "tier IN ('free', 'premium')")
        batch.add_column(sa.Column("role", sa.String(16), server_default="user", nullable=False))
        batch.add_column(
            sa.Column("profile_answered", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column("failed_logins", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(_ts("locked_until", nullable=True))
        batch.add_column(sa.Column("customer_ref", sa.String(255), nullable=True))
        batch.create_check_constraint(op.f("ck_users_role"), "role IN ('user', 'admin')")

    op.create_table(
        "refresh_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("family", sa.String(32), nullable=False),
        _ts("issued_at"),
        _ts("expires_at"),
        _ts("used_at", nullable=True),
        _ts("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_refresh_tokens")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_refresh_tokens_user_id_users"), ondelete="CASCADE"
        ),
    )
    op.create_index(op.f("ix_refresh_tokens_family"), "refresh_tokens", ["family"])
    op.create_index(op.f("ix_refresh_tokens_user_id"), "refresh_tokens", ["user_id"])

    op.create_table(
        "signal_upgrades",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("signal_id", sa.String(22), nullable=False),
        _ts("granted_at"),
        _ts("expires_at"),
        _ts("revoked_at", nullable=True),
        sa.Column("reference", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signal_upgrades")),
        sa.UniqueConstraint("reference", name=op.f("uq_signal_upgrades_reference")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_signal_upgrades_user_id_users"), ondelete="CASCADE"
        ),
    )
    op.create_index(
        op.f("ix_signal_upgrades_user_id_expires_at"), "signal_upgrades", ["user_id", "expires_at"]
    )

    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.CheckConstraint(
            "status IN ('active', 'past_due', 'canceled')", name=op.f("ck_subscriptions_status")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_subscriptions_user_id_users"), ondelete="CASCADE"
        ),
    )

    op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reference", sa.String(255), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("what", sa.String(64), nullable=False),
        _ts("at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.CheckConstraint("kind IN ('charge', 'refund', 'grant', 'revoke')", name=op.f("ck_payments_kind")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_payments_user_id_users"), ondelete="SET NULL"
        ),
    )
    op.create_index(op.f("ix_payments_user_id"), "payments", ["user_id"])

    op.create_table(
        "webhook_events",
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        _ts("received_at"),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_webhook_events")),
    )


def downgrade() -> None:
    """Back to 0004: accounts lose roles and lock-out; tokens, upgrades and the payments ledger go."""
    op.drop_table("webhook_events")
    op.drop_index(op.f("ix_payments_user_id"), table_name="payments")
    op.drop_table("payments")
    op.drop_table("subscriptions")
    op.drop_index(op.f("ix_signal_upgrades_user_id_expires_at"), table_name="signal_upgrades")
    op.drop_table("signal_upgrades")
    op.drop_index(op.f("ix_refresh_tokens_user_id"), table_name="refresh_tokens")
    op.drop_index(op.f("ix_refresh_tokens_family"), table_name="refresh_tokens")
    op.drop_table("refresh_tokens")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint(op.f("ck_users_role"), type_="check")
        for name in ("customer_ref", "locked_until", "failed_logins", "profile_answered", "role"):
            batch.drop_column(name)
        batch.drop_constraint(op.f("ck_users_tier"), type_="check")
        batch.create_check_constraint(op.f("ck_users_tier"), "tier IN ('free', 'premium', 'dynamic')")
