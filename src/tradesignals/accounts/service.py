"""The account service: register, log in, rotate, log out, delete, and who a token belongs to.

Storage is handed in (``SqlUserRepository`` + ``SqlAccountStore``); the API calls this from worker
threads (argon2 is deliberately slow). Failures are the exceptions below, each with a one-line
message fit for a client.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from tradesignals.accounts.passwords import (
    DUMMY_HASH,
    hash_password,
    needs_rehash,
    password_problem,
    verify_password,
)
from tradesignals.accounts.tokens import (
    InvalidToken,
    TokenCodec,
    fingerprint,
    new_family,
    new_refresh_token,
    token_hash,
)
from tradesignals.domain.entitlements import ANONYMOUS, Caller, Upgrade
from tradesignals.domain.risk import ProfileName
from tradesignals.domain.tiers import Role
from tradesignals.storage.accounts import SqlAccountStore
from tradesignals.storage.base import DuplicateError, User
from tradesignals.storage.repositories import SqlUserRepository, normalize_email

log = structlog.get_logger(__name__)


class WeakPassword(ValueError):
    pass


class EmailTaken(ValueError):
    pass


class BadCredentials(Exception):
    pass


class AccountLocked(Exception):
    def __init__(self, until: datetime) -> None:
        super().__init__(f"account locked after repeated failed logins until {until.isoformat()}")
        self.until = until


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    token_type: str = "bearer"


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    refresh_ttl: timedelta = timedelta(days=30)
    max_failures: int = 5
    lockout: timedelta = timedelta(minutes=15)


class RateLimiter:
    """At most ``limit`` calls per ``window_s`` per key (a client address and a route), per process.

    In-process on purpose: it bounds guessing from one address cheaply; the per-account lock-out
    (in the database) is what holds across nodes.
    """

    def __init__(self, limit: int, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, now: float | None = None) -> bool:
        t = time.monotonic() if now is None else now
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= t - self.window_s:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(t)
            if len(self._hits) > 100_000:  # bounded memory under a spray of addresses
                self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > t - self.window_s}
            return True


class AccountService:
    def __init__(
        self,
        users: SqlUserRepository,
        store: SqlAccountStore,
        tokens: TokenCodec,
        policy: AuthPolicy | None = None,
    ) -> None:
        self.users = users
        self.store = store
        self.tokens = tokens
        self.policy = policy or AuthPolicy()

    def register(self, email: str, password: str) -> User:
        problem = password_problem(password, email)
        if problem is not None:
            raise WeakPassword(problem)
        try:
            user = self.users.create(email, hash_password(password))
        except DuplicateError:
            raise EmailTaken("an account with this email exists") from None
        log.info("account.registered", user_id=user.id)
        return user

    def _issue(self, user: User, now: datetime, family: str | None = None) -> TokenPair:
        refresh = new_refresh_token()
        self.store.add_refresh(
            token_hash(refresh), user.id, family or new_family(), now, now + self.policy.refresh_ttl
        )
        return TokenPair(self.tokens.issue(user.id, user.role.value, now), refresh)

    def issue(self, user: User, now: datetime | None = None) -> TokenPair:
        """A new login (a new refresh-token family) for ``user``, already authenticated elsewhere (OAuth)."""
        return self._issue(user, now or datetime.now(UTC))

    def login(self, email: str, password: str, now: datetime | None = None) -> TokenPair:
        now = now or datetime.now(UTC)
        user = self.users.by_email(normalize_email(email))
        if user is None:
            verify_password(DUMMY_HASH, password)  # same time as a real check: no account oracle
            raise BadCredentials("wrong email or password")
        if user.locked_until is not None and user.locked_until > now:
            raise AccountLocked(user.locked_until)
        if not verify_password(user.password_hash, password):
            after = self.store.login_failed(
                user.id, now, max_failures=self.policy.max_failures, lockout=self.policy.lockout
            )
            log.info("account.login_failed", user_id=user.id, locked=after.locked_until is not None)
            if after.locked_until is not None and after.locked_until > now:
                raise AccountLocked(after.locked_until)
            raise BadCredentials("wrong email or password")
        if user.failed_logins or user.locked_until is not None:
            self.store.login_succeeded(user.id)
        if needs_rehash(user.password_hash):
            self.users._update(user.id, "re-hashing a password", password_hash=hash_password(password))
        log.info("account.login", user_id=user.id)
        return self._issue(user, now)

    def refresh(self, refresh_token: str, now: datetime | None = None) -> TokenPair:
        now = now or datetime.now(UTC)
        new = new_refresh_token()
        outcome, user_id = self.store.rotate_refresh(
            token_hash(refresh_token), token_hash(new), now, now + self.policy.refresh_ttl
        )
        if outcome == "reused":
            log.warning("account.refresh_reused", user_id=user_id, token=fingerprint(refresh_token))
        if outcome != "ok" or user_id is None:
            raise InvalidToken(f"refresh token {outcome}")
        user = self.users.get(user_id)
        if user is None:
            raise InvalidToken("refresh token unknown")
        return TokenPair(self.tokens.issue(user.id, user.role.value, now), new)

    def logout(self, refresh_token: str, now: datetime | None = None) -> bool:
        user_id = self.store.revoke_family_of(token_hash(refresh_token), now or datetime.now(UTC))
        if user_id is not None:
            log.info("account.logout", user_id=user_id)
        return user_id is not None

    def user_for(self, access_token: str) -> User:
        """The user an access token names; ``InvalidToken`` when it does not (deleted user included)."""
        claims = self.tokens.verify(access_token)
        user = self.users.get(claims.user_id)
        if user is None:
            raise InvalidToken("access token names no account")
        return user

    def caller(self, user: User | None, now: datetime | None = None) -> Caller:
        if user is None:
            return ANONYMOUS
        ups = self.store.upgrades_of(user.id, now or datetime.now(UTC))
        return Caller(user.id, user.tier, user.role, frozenset(u.signal_id for u in ups))

    def upgrades(self, user_id: int, now: datetime | None = None) -> list[Upgrade]:
        return self.store.upgrades_of(user_id, now or datetime.now(UTC))

    def answer_profile(self, user_id: int, profile: ProfileName) -> User:
        return self.store.answer_profile(user_id, profile)

    def set_role(self, user_id: int, role: Role) -> User:
        return self.store.set_role(user_id, role)

    def delete(self, user_id: int) -> bool:
        deleted = self.store.delete_user(user_id)
        log.info("account.deleted", user_id=user_id)
        return deleted
