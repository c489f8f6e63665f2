"""Accounts over HTTP, on SQLite and the real PostgreSQL: register, log in, rotate, reuse, log out,
lock-out, rate limit, bad tokens, the questionnaire and deleting an account."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

from tradesignals.api.app import create_app
from tradesignals.config import load_settings
from tradesignals.domain.risk import QUESTIONNAIRE
from tradesignals.wiring import Services, build_services

EMAIL = "ada@example.com"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def services(db_url: str, tmp_path: Path) -> Services:
    """The embedded app on SQLite and on PostgreSQL; a lock-out after 3 wrong passwords."""
    settings = load_settings(home=tmp_path, mode="embedded", database_url=db_url, login_max_failures=3)
    return asyncio.run(build_services(settings))


@pytest.fixture
def api(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services, roles=frozenset({"api"}))) as c:
        yield c


def register(api: TestClient, email: str = EMAIL, password: str = PASSWORD) -> dict[str, Any]:
    r = api.post("/api/auth/register", json={"email": email, "password": password})
    assert r.status_code == 201, r.text
    return dict(r.json())


def login(api: TestClient, email: str = EMAIL, password: str = PASSWORD) -> dict[str, str]:
    r = api.post("/api/auth/token", data={"username": email, "password": password})
    assert r.status_code == 200, r.text
    return dict(r.json())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_register_log_in_and_read_me(api: TestClient) -> None:
    created = register(api, "Ada@Example.com")
    assert created["email"] == "ada@example.com" and isinstance(created["id"], int)
    tokens = login(api, "ADA@example.com")
    assert set(tokens) == {"access_token", "refresh_token", "token_type"} and tokens["token_type"] == "bearer"
    me = api.get("/api/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    assert me.json() == {
        "id": created["id"],
        "email": "ada@example.com",
        "tier": "free",
        "role": "user",
        "risk_profile": "moderate",
        "profile_answered": False,
        "upgrades": [],
    }
    assert api.post("/api/auth/register", json={"email": EMAIL, "password": PASSWORD}).status_code == 409


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short1!", "at least 10 characters"),
        ("Password2024!", "common leaked"),
        ("aaaaaaaaaaaaaa", "too few different characters"),
        ("1234567890123", "common leaked"),  # built on 123456
        ("ada-lovelace-ada@x", "must not contain your email"),
        ("x" * 129, "at most 128"),
    ],
)
def test_a_weak_password_is_422_with_the_reason(api: TestClient, password: str, reason: str) -> None:
    r = api.post("/api/auth/register", json={"email": "ada-lovelace-ada@example.com", "password": password})
    assert r.status_code == 422 and reason in r.json()["detail"], r.text


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "@example.com", "a b@example.com", ""])
def test_a_malformed_email_is_422(api: TestClient, email: str) -> None:
    assert api.post("/api/auth/register", json={"email": email, "password": PASSWORD}).status_code == 422


def test_wrong_password_and_unknown_email_answer_alike(api: TestClient) -> None:
    register(api)
    wrong = api.post("/api/auth/token", data={"username": EMAIL, "password": "not the password at all"})
    nobody = api.post("/api/auth/token", data={"username": "bob@example.com", "password": PASSWORD})
    assert wrong.status_code == nobody.status_code == 401
    assert wrong.json() == nobody.json() == {"detail": "wrong email or password"}


def test_refresh_rotates_and_reuse_revokes_the_family(api: TestClient) -> None:
    register(api)
    first = login(api)
    second = api.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert api.get("/api/me", headers=bearer(rotated["access_token"])).status_code == 200
    # The first refresh token again: a copy in someone else's hands. 401, and the family is revoked,
    # so the rotated token (which the thief may have obtained instead) is dead as well.
    reused = api.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401 and "reused" in reused.json()["detail"]
    dead = api.post("/api/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert dead.status_code == 401 and "revoked" in dead.json()["detail"]
    # A separate login is its own family and still works.
    other = login(api)
    assert api.post("/api/auth/refresh", json={"refresh_token": other["refresh_token"]}).status_code == 200


def test_logout_revokes_the_refresh_token(api: TestClient, services: Services) -> None:
    register(api)
    tokens = login(api)
    assert api.post("/api/auth/logout", json={"refresh_token": tokens["refresh_token"]}).status_code == 204
    r = api.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert api.post("/api/auth/logout", json={"refresh_token": "never-issued"}).status_code == 401
    user = services.accounts.users.by_email(EMAIL)
    assert user is not None and services.accounts.store.live_refresh_count(user.id, datetime.now(UTC)) == 0


def test_an_expired_refresh_token_is_401(api: TestClient, services: Services) -> None:
    register(api)
    long_ago = datetime.now(UTC) - timedelta(days=60)
    pair = services.accounts.login(EMAIL, PASSWORD, now=long_ago)
    r = api.post("/api/auth/refresh", json={"refresh_token": pair.refresh_token})
    assert r.status_code == 401 and "expired" in r.json()["detail"]


def test_expired_malformed_forged_and_orphan_access_tokens_are_401(
    api: TestClient, services: Services
) -> None:
    user_id = register(api)["id"]
    expired = services.accounts.tokens.issue(user_id, "user", datetime.now(UTC) - timedelta(hours=2))
    now = int(datetime.now(UTC).timestamp())
    claims = {
        "sub": str(user_id),
        "role": "admin",
        "typ": "access",
        "iss": "tradesignals",
        "iat": now,
        "exp": now + 600,
    }
    forged = jwt.encode(claims, "a" * 48, algorithm="HS256")
    unsigned = jwt.encode(claims, None, algorithm="none")
    refresh_as_access = login(api)["refresh_token"]
    cases = {
        "expired": bearer(expired),
        "forged": bearer(forged),
        "alg none": bearer(unsigned),
        "garbage": bearer("not.a.jwt"),
        "refresh token": bearer(refresh_as_access),
        "basic scheme": {"Authorization": "Basic YWRhOnB3"},
        "empty bearer": {"Authorization": "Bearer "},
    }
    for name, headers in cases.items():
        for path in ("/api/me", "/api/signals"):
            r = api.get(path, headers=headers)
            assert r.status_code == 401, (name, path, r.text)
            assert r.headers["www-authenticate"] == "Bearer" and r.json()["detail"], name
    assert "expired" in api.get("/api/me", headers=cases["expired"]).json()["detail"]
    live = login(api)["access_token"]
    assert api.delete("/api/me", headers=bearer(live)).status_code == 204
    gone = api.get("/api/me", headers=bearer(live))  # a valid signature naming a deleted account
    assert gone.status_code == 401 and "no account" in gone.json()["detail"]


def test_repeated_wrong_passwords_lock_the_account(api: TestClient, services: Services) -> None:
    register(api)
    for _ in range(2):
        r = api.post("/api/auth/token", data={"username": EMAIL, "password": "wrong wrong wrong"})
        assert r.status_code == 401
    third = api.post("/api/auth/token", data={"username": EMAIL, "password": "wrong wrong wrong"})
    assert third.status_code == 423 and "locked" in third.json()["detail"]
    right = api.post("/api/auth/token", data={"username": EMAIL, "password": PASSWORD})
    assert right.status_code == 423  # even the right password, until the lock lapses
    later = datetime.now(UTC) + timedelta(seconds=services.settings.login_lockout_s + 1)
    assert services.accounts.login(EMAIL, PASSWORD, now=later).access_token
    user = services.accounts.users.by_email(EMAIL)
    assert user is not None and user.failed_logins == 0 and user.locked_until is None


def test_auth_routes_are_rate_limited_per_address(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, mode="embedded", auth_rate_per_min=3)
    services = asyncio.run(build_services(settings))
    with TestClient(create_app(services, roles=frozenset({"api"}))) as api:
        codes = [
            api.post("/api/auth/token", data={"username": EMAIL, "password": PASSWORD}).status_code
            for _ in range(4)
        ]
        assert codes == [401, 401, 401, 429]
        limited = api.post("/api/auth/token", data={"username": EMAIL, "password": PASSWORD})
        assert limited.headers["retry-after"] == "60" and "too many" in limited.json()["detail"]
        # the limit is per route: registering is still possible
        assert api.post("/api/auth/register", json={"email": EMAIL, "password": PASSWORD}).status_code == 201


def test_the_questionnaire_sets_the_profile(api: TestClient) -> None:
    register(api)
    headers = bearer(login(api)["access_token"])
    boldest = {q.id: q.options[-1].id for q in QUESTIONNAIRE}
    r = api.put("/api/me/risk-profile", json={"answers": boldest}, headers=headers)
    assert r.status_code == 200 and r.json()["profile_answered"] is True
    assert (
        r.json()["risk_profile"]
        == api.post("/api/risk/assess", json={"answers": boldest}).json()["profile"]["name"]
    )
    assert api.get("/api/me", headers=headers).json()["risk_profile"] == r.json()["risk_profile"]
    bad = api.put("/api/me/risk-profile", json={"answers": {"goal": "yacht"}}, headers=headers)
    assert bad.status_code == 422 and bad.json()["detail"]
    assert api.put("/api/me/risk-profile", json={"answers": boldest}).status_code == 401


def test_deleting_an_account_removes_its_tokens(api: TestClient, services: Services) -> None:
    user_id = register(api)["id"]
    tokens = login(api)
    assert api.delete("/api/me", headers=bearer(tokens["access_token"])).status_code == 204
    assert services.accounts.users.get(user_id) is None
    assert api.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    assert api.post("/api/auth/token", data={"username": EMAIL, "password": PASSWORD}).status_code == 401
    register(api)  # the address is free again
