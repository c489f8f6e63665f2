from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tradesignals.api.app import create_app
from tradesignals.config import load_settings
from tradesignals.domain.tiers import Role, Tier
from tradesignals.wiring import Services, build_services

PASSWORD = "correct horse battery staple"

MakeUser = Callable[..., dict[str, str]]


@pytest.fixture
def services(tmp_path: Path) -> Services:
    settings = load_settings(home=tmp_path, mode="embedded")
    return asyncio.run(build_services(settings))


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services, roles=frozenset({"api"}))) as c:
        yield c


def make_user(services: Services, email: str, *, tier: str = "free", role: str = "user") -> dict[str, str]:
    """A user with ``tier`` and ``role`` (set in storage, as billing or an admin would), and the
    Authorization header of a fresh access token for them."""
    user = services.accounts.register(email, PASSWORD)
    if tier != "free":
        services.accounts.users.set_tier(user.id, Tier(tier))
    if role != "user":
        services.accounts.set_role(user.id, Role(role))
    token = services.accounts.tokens.issue(user.id, role, datetime.now(UTC))
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def user_factory(services: Services) -> MakeUser:
    """``user_factory(email, tier=..., role=...)`` → Authorization headers (see ``make_user``)."""

    def make(email: str, *, tier: str = "free", role: str = "user") -> dict[str, str]:
        return make_user(services, email, tier=tier, role=role)

    return make


@pytest.fixture
def premium(user_factory: MakeUser) -> dict[str, str]:
    """Headers of a premium user who has not answered the questionnaire (moderate profile)."""
    return user_factory("premium@example.com", tier="premium")


@pytest.fixture
def admin(user_factory: MakeUser) -> dict[str, str]:
    return user_factory("admin@example.com", role="admin")
