"""Access tokens (short-lived JWT, HS256) and refresh tokens (opaque, stored as sha256).

An access token carries only who (``sub``) and its role; what they may see is read from storage at
each request (a refund must take effect at once, not when the token expires). Tokens are secrets:
never logged — ``fingerprint`` gives a log-safe name for one.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

ALGORITHM = "HS256"
ISSUER = "tradesignals"


class InvalidToken(Exception):
    """Expired, revoked, malformed or forged; the message is safe to show (it holds no token)."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    role: str
    expires_at: int


class TokenCodec:
    def __init__(self, secret: str, *, ttl: timedelta) -> None:
        if len(secret) < 32:
            raise ValueError("the token secret must be at least 32 characters")
        self._secret = secret
        self.ttl = ttl

    def issue(self, user_id: int, role: str, now: datetime) -> str:
        claims = {
            "sub": str(user_id),
            "role": role,
            "typ": "access",
            "iss": ISSUER,
            "iat": int(now.timestamp()),
            "exp": int((now + self.ttl).timestamp()),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> AccessClaims:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["sub", "exp", "iat", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("access token expired") from None
        except jwt.PyJWTError:
            raise InvalidToken("access token invalid") from None
        if claims.get("typ") != "access" or not str(claims["sub"]).isdigit():
            raise InvalidToken("access token invalid")
        return AccessClaims(int(claims["sub"]), str(claims.get("role", "user")), int(claims["exp"]))


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_family() -> str:
    return secrets.token_hex(16)


def fingerprint(token: str) -> str:
    """A log-safe name for a token: 8 hex digits of its sha256 (not reversible, not usable)."""
    return token_hash(token)[:8]
