"""OAuth sign-in (Authlib) against a local Google and GitHub on 127.0.0.1 speaking their documented
formats: the token endpoint (form-encoded authorization_code grant, client credentials in the Basic
header, JSON answer) and the account's emails (Google's OpenID userinfo, GitHub's /user/emails)."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlparse

import pytest
from fastapi.testclient import TestClient

from tradesignals.api.app import create_app
from tradesignals.config import load_settings
from tradesignals.wiring import build_services

CLIENTS = {"google": ("g-client", "g-secret"), "github": ("gh-client", "gh-secret")}


class FakeProviders:
    """Codes it issued (code -> the account's emails), the tokens it gave, what it received."""

    def __init__(self) -> None:
        self.codes: dict[str, tuple[str, Any]] = {}
        self.tokens: dict[str, Any] = {}
        self.requests: list[tuple[str, str, dict[str, str], dict[str, str]]] = []
        self.url = ""

    def code_for(self, provider: str, userinfo: Any) -> str:
        code = secrets.token_urlsafe(8)
        self.codes[code] = (provider, userinfo)
        return code


@pytest.fixture
def providers() -> Iterator[FakeProviders]:
    state = FakeProviders()

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
            form = dict(parse_qsl(raw))
            state.requests.append(("POST", self.path, dict(self.headers), form))
            provider = self.path.split("/")[1]
            scheme, _, cred = (self.headers.get("authorization") or "").partition(" ")
            user, _, password = base64.b64decode(cred or "Og==").decode().partition(":")
            if scheme != "Basic" or (user, password) != CLIENTS.get(provider):
                return self._send(401, {"error": "invalid_client"})
            found = state.codes.pop(form.get("code", ""), None)
            if form.get("grant_type") != "authorization_code" or found is None or found[0] != provider:
                return self._send(400, {"error": "invalid_grant", "error_description": "Bad code"})
            token = secrets.token_urlsafe(12)
            state.tokens[token] = found[1]
            return self._send(
                200, {"access_token": token, "token_type": "Bearer", "expires_in": 3599, "scope": "email"}
            )

        def do_GET(self) -> None:
            state.requests.append(("GET", self.path, dict(self.headers), {}))
            token = (self.headers.get("authorization") or "").removeprefix("Bearer ")
            if token not in state.tokens:
                return self._send(401, {"error": "invalid_token"})
            return self._send(200, state.tokens[token])

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def api(tmp_path: Path, providers: FakeProviders) -> Iterator[TestClient]:
    settings = load_settings(
        home=tmp_path, mode="embedded", oauth_api_base=providers.url,
        oauth_google_client_id="g-client", oauth_google_client_secret="g-secret",
        oauth_github_client_id="gh-client", oauth_github_client_secret="gh-secret",
    )  # fmt: skip
    with TestClient(create_app(asyncio.run(build_services(settings)))) as c:
        yield c


def start(api: TestClient, provider: str) -> dict[str, str]:
    r = api.get(f"/api/auth/oauth/{provider}/login")
    assert r.status_code == 200, r.text
    query = {k: v[0] for k, v in parse_qs(urlparse(r.json()["url"]).query).items()}
    return query


GOOGLE_USER = {"sub": "1234", "email": "ada@example.com", "email_verified": True, "name": "Ada"}
GITHUB_EMAILS = [
    {"email": "old@example.com", "primary": False, "verified": True, "visibility": None},
    {"email": "Ada@Example.com", "primary": True, "verified": True, "visibility": "private"},
]


def test_google_sign_in_creates_then_finds_the_account(api: TestClient, providers: FakeProviders) -> None:
    q = start(api, "google")
    assert q["client_id"] == "g-client" and q["response_type"] == "code" and "email" in q["scope"]
    assert q["redirect_uri"].endswith("/api/auth/oauth/google/callback")
    code = providers.code_for("google", GOOGLE_USER)
    r = api.get("/api/auth/oauth/google/callback", params={"code": code, "state": q["state"]})
    assert r.status_code == 200, r.text
    me = api.get("/api/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"}).json()
    assert me["email"] == "ada@example.com" and me["tier"] == "free"
    token_call = next(req for req in providers.requests if req[0] == "POST")
    assert (
        token_call[3]["grant_type"] == "authorization_code"
        and token_call[3]["redirect_uri"] == q["redirect_uri"]
    )
    # GitHub with the same verified primary address: the same account
    q2 = start(api, "github")
    r2 = api.get(
        "/api/auth/oauth/github/callback",
        params={"code": providers.code_for("github", GITHUB_EMAILS), "state": q2["state"]},
    )
    me2 = api.get("/api/me", headers={"Authorization": f"Bearer {r2.json()['access_token']}"}).json()
    assert me2["id"] == me["id"]
    # no password was set: the password form cannot sign this account in
    wrong = api.post("/api/auth/token", data={"username": "ada@example.com", "password": "!oauth-only"})
    assert wrong.status_code == 401


def test_an_unverified_email_is_refused(api: TestClient, providers: FakeProviders) -> None:
    q = start(api, "google")
    code = providers.code_for("google", GOOGLE_USER | {"email_verified": False})
    r = api.get("/api/auth/oauth/google/callback", params={"code": code, "state": q["state"]})
    assert r.status_code == 403 and "verified" in r.json()["detail"]
    q = start(api, "github")
    unverified = [{"email": "x@example.com", "primary": True, "verified": False}]
    r = api.get(
        "/api/auth/oauth/github/callback",
        params={"code": providers.code_for("github", unverified), "state": q["state"]},
    )
    assert r.status_code == 403


def test_bad_state_code_or_provider_fail_cleanly(api: TestClient, providers: FakeProviders) -> None:
    q = start(api, "google")
    code = providers.code_for("google", GOOGLE_USER)
    forged = api.get("/api/auth/oauth/google/callback", params={"code": code, "state": "forged"})
    assert forged.status_code == 400 and "state" in forged.json()["detail"]
    github_state = start(api, "github")["state"]
    crossed = api.get("/api/auth/oauth/google/callback", params={"code": code, "state": github_state})
    assert crossed.status_code == 400 and "another provider" in crossed.json()["detail"]
    spent = api.get("/api/auth/oauth/google/callback", params={"code": "never-issued", "state": q["state"]})
    assert spent.status_code == 502 and "refused" in spent.json()["detail"]
    assert api.get("/api/auth/oauth/facebook/login").status_code == 422
    assert api.get("/api/auth/oauth/google/callback", params={"state": q["state"]}).status_code == 422


def test_a_provider_without_credentials_is_404(tmp_path: Path) -> None:
    services = asyncio.run(build_services(load_settings(home=tmp_path, mode="embedded")))
    with TestClient(create_app(services)) as api:
        r = api.get("/api/auth/oauth/github/login")
        assert r.status_code == 404 and "not configured" in r.json()["detail"]
