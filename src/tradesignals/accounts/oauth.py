"""OAuth sign-in (Google, GitHub) with Authlib: the authorization-code flow, for confidential clients.

``authorize_url`` gives the provider's consent page with a ``state`` that is a short-lived signed
token (HS256 with the access-token key: provider, nonce, 10 minutes) — stateless, so any API node
can finish a flow another started, and a forged or replayed-elsewhere ``state`` is refused.
``sign_in`` exchanges the code (Authlib's ``OAuth2Client``, client secret in the Basic header),
reads the account's **verified** email (Google's OpenID userinfo ``email_verified``; GitHub's
``/user/emails`` ``verified`` + ``primary``) and signs that email's account in, creating it on first
use. An account created this way has no usable password (its hash is a marker argon2 refuses).

A provider is enabled when its client id and secret are configured. ``base`` replaces the
providers' hosts (tests point it at a local server speaking their documented format).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import structlog
from authlib.integrations.httpx_client import OAuth2Client

from tradesignals.accounts.service import AccountService, TokenPair
from tradesignals.accounts.tokens import ALGORITHM, ISSUER
from tradesignals.storage.base import DuplicateError
from tradesignals.storage.repositories import normalize_email

log = structlog.get_logger(__name__)

STATE_TTL = timedelta(minutes=10)
NO_PASSWORD = "!oauth-only"  # not an argon2 hash: every password check against it fails


class OAuthError(Exception):
    """A sign-in that cannot complete; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    client_id: str
    client_secret: str
    authorize_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    scope: str


def google(client_id: str, client_secret: str, base: str | None = None) -> Provider:
    b = base.rstrip("/") + "/google" if base else None
    return Provider(
        "google",
        client_id,
        client_secret,
        f"{b}/authorize" if b else "https://accounts.google.com/o/oauth2/v2/auth",
        f"{b}/token" if b else "https://oauth2.googleapis.com/token",
        f"{b}/userinfo" if b else "https://openidconnect.googleapis.com/v1/userinfo",
        "openid email profile",
    )


def github(client_id: str, client_secret: str, base: str | None = None) -> Provider:
    b = base.rstrip("/") + "/github" if base else None
    return Provider(
        "github",
        client_id,
        client_secret,
        f"{b}/login/oauth/authorize" if b else "https://github.com/login/oauth/authorize",
        f"{b}/login/oauth/access_token" if b else "https://github.com/login/oauth/access_token",
        f"{b}/user/emails" if b else "https://api.github.com/user/emails",
        "read:user user:email",
    )


def _verified_email(provider: str, info: Any) -> str | None:
    if provider == "google":
        if (
            isinstance(info, dict)
            and info.get("email_verified") is True
            and isinstance(info.get("email"), str)
        ):
            return str(info["email"])
        return None
    if isinstance(info, list):
        for item in info:
            if isinstance(item, dict) and item.get("primary") and item.get("verified"):
                email = item.get("email")
                return email if isinstance(email, str) else None
    return None


class OAuthSignIn:
    def __init__(
        self, accounts: AccountService, providers: dict[str, Provider], *, secret: str, redirect_base: str
    ) -> None:
        self.accounts = accounts
        self.providers = providers
        self._secret = secret
        self.redirect_base = redirect_base.rstrip("/")

    def _provider(self, name: str) -> Provider:
        p = self.providers.get(name)
        if p is None:
            raise OAuthError(f"sign-in with {name!r} is not configured here", 404)
        return p

    def redirect_uri(self, name: str) -> str:
        return f"{self.redirect_base}/api/auth/oauth/{name}/callback"

    def authorize_url(self, name: str, now: datetime | None = None) -> str:
        p = self._provider(name)
        now = now or datetime.now(UTC)
        state = jwt.encode(
            {
                "typ": "oauth_state",
                "iss": ISSUER,
                "prv": p.name,
                "nonce": secrets.token_urlsafe(12),
                "iat": int(now.timestamp()),
                "exp": int((now + STATE_TTL).timestamp()),
            },
            self._secret,
            algorithm=ALGORITHM,
        )
        client = OAuth2Client(
            p.client_id, p.client_secret, scope=p.scope, redirect_uri=self.redirect_uri(name)
        )
        url, _ = client.create_authorization_url(p.authorize_endpoint, state=state)
        return str(url)

    def _check_state(self, name: str, state: str) -> None:
        try:
            claims = jwt.decode(state, self._secret, algorithms=[ALGORITHM], issuer=ISSUER)
        except jwt.PyJWTError:
            raise OAuthError("sign-in state invalid or expired: start again") from None
        if claims.get("typ") != "oauth_state" or claims.get("prv") != name:
            raise OAuthError("sign-in state was issued for another provider")

    def sign_in(self, name: str, code: str, state: str) -> TokenPair:
        """Finish the flow: the verified email's account (created on first use), signed in."""
        p = self._provider(name)
        self._check_state(name, state)
        client = OAuth2Client(
            p.client_id, p.client_secret, scope=p.scope, redirect_uri=self.redirect_uri(name), timeout=10
        )
        try:
            client.fetch_token(p.token_endpoint, code=code, headers={"Accept": "application/json"})
            response = client.get(p.userinfo_endpoint, headers={"Accept": "application/json"})
            response.raise_for_status()
            info = response.json()
        except Exception as exc:  # Authlib's OAuthError, httpx errors, a non-JSON answer
            log.warning("oauth.provider_failed", provider=name, error=type(exc).__name__)
            raise OAuthError(f"{name} refused the sign-in ({type(exc).__name__}): start again", 502) from None
        finally:
            client.close()
        email = _verified_email(name, info)
        if email is None:
            raise OAuthError(f"{name} gave no verified email address", 403)
        return self._sign_in_email(email, name)

    def _sign_in_email(self, email: str, provider: str) -> TokenPair:
        users = self.accounts.users
        user = users.by_email(normalize_email(email))
        if user is None:
            try:
                user = users.create(email, NO_PASSWORD)
                log.info("account.registered", user_id=user.id, via=provider)
            except DuplicateError:  # created by a concurrent sign-in a moment ago
                user = users.by_email(normalize_email(email))
                if user is None:
                    raise OAuthError("account could not be created: try again", 409) from None
        log.info("account.login", user_id=user.id, via=provider)
        return self.accounts.issue(user)
