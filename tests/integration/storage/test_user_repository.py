"""SqlUserRepository against a real SQLite file and a real PostgreSQL schema, same tests on both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tradesignals.domain.risk import ProfileName
from tradesignals.domain.tiers import Tier
from tradesignals.storage.base import DuplicateError, StorageError
from tradesignals.storage.repositories import SqlUserRepository

pytestmark = pytest.mark.integration


@pytest.fixture
def users(engine: Engine) -> SqlUserRepository:
    return SqlUserRepository(engine)


def test_create_stores_a_lowercased_email_and_the_defaults(users: SqlUserRepository) -> None:
    before = datetime.now(UTC)
    user = users.create("  Ada.Lovelace@Example.COM ", "argon2$hash")
    after = datetime.now(UTC)
    assert user.id > 0
    assert user.email == "ada.lovelace@example.com"
    assert user.password_hash == "argon2$hash"
    assert user.tier is Tier.FREE
    assert user.risk_profile is ProfileName.MODERATE
    assert user.created_at.tzinfo is UTC
    assert before - timedelta(seconds=1) <= user.created_at <= after
    assert users.get(user.id) == user


def test_create_with_a_tier_and_profile(users: SqlUserRepository) -> None:
    user = users.create("yolo@example.com", "h", tier=Tier.PREMIUM, risk_profile=ProfileName.AGGRESSIVE)
    got = users.get(user.id)
    assert got is not None
    assert got.tier is Tier.PREMIUM
    assert got.risk_profile is ProfileName.AGGRESSIVE


def test_by_email_ignores_case_and_spaces(users: SqlUserRepository) -> None:
    user = users.create("bob@example.com", "h")
    assert users.by_email("BOB@Example.com") == user
    assert users.by_email(" bob@example.com\n") == user
    assert users.by_email("rob@example.com") is None


def test_an_email_in_use_in_any_case_is_a_duplicate(users: SqlUserRepository) -> None:
    first = users.create("carol@example.com", "first")
    with pytest.raises(DuplicateError) as info:
        users.create("Carol@EXAMPLE.com", "second")
    assert "carol@example.com" in str(info.value)
    assert "\n" not in str(info.value)
    assert users.by_email("carol@example.com") == first
    # The failed insert left the repository usable, and ids keep coming.
    other = users.create("dave@example.com", "h")
    assert other.id != first.id


def test_empty_email_is_refused(users: SqlUserRepository) -> None:
    with pytest.raises(ValueError, match="empty"):
        users.create("   ", "h")


def test_get_unknown_is_none(users: SqlUserRepository) -> None:
    assert users.get(424242) is None


def test_set_tier_returns_and_persists_the_change(users: SqlUserRepository) -> None:
    user = users.create("erin@example.com", "h")
    updated = users.set_tier(user.id, Tier.PREMIUM)
    assert updated.tier is Tier.PREMIUM
    assert updated.email == user.email
    assert updated.created_at == user.created_at
    assert users.get(user.id) == updated


def test_set_risk_profile_returns_and_persists_the_change(users: SqlUserRepository) -> None:
    user = users.create("frank@example.com", "h")
    other = users.create("grace@example.com", "h")
    updated = users.set_risk_profile(user.id, ProfileName.CONSERVATIVE)
    assert updated.risk_profile is ProfileName.CONSERVATIVE
    assert users.get(user.id) == updated
    assert users.get(other.id) == other  # only that user changed


def test_changing_an_unknown_user_raises(users: SqlUserRepository) -> None:
    with pytest.raises(StorageError, match="no user with id 99"):
        users.set_tier(99, Tier.PREMIUM)
    with pytest.raises(StorageError, match="no user with id 99"):
        users.set_risk_profile(99, ProfileName.AGGRESSIVE)


def test_the_database_refuses_an_unknown_tier(users: SqlUserRepository, engine: Engine) -> None:
    """The CHECK constraints guard rows written by anything else than this repository."""
    user = users.create("heidi@example.com", "h")
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.text("UPDATE users SET tier = 'platinum' WHERE id = :id"), {"id": user.id})
    assert users.get(user.id) == user
