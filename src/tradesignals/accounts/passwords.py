"""Password rules and argon2id hashing.

Parameters: argon2id, 19 MiB, 2 passes, 1 lane — OWASP's minimum recommendation, chosen because a
login must stay affordable on a small host (the bench prints what one costs here); the hash string
records its parameters, so raising them later re-hashes each user at their next login.
"""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 10
MAX_LENGTH = 128

HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)

# The most common leaked passwords and their stems: a password built on one is refused whatever is
# appended (people add "1!" to satisfy rules; crackers try that first).
_BREACHED_STEMS = (
    "password",
    "passw0rd",
    "123456",
    "qwerty",
    "azerty",
    "letmein",
    "iloveyou",
    "welcome",
    "admin",
    "abc123",
    "monkey",
    "dragon",
    "football",
    "baseball",
    "sunshine",
    "trustno1",
    "tradesignals",
)


def password_problem(password: str, email: str = "") -> str | None:
    """Why ``password`` is refused (one line for a person), or None when it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"password must be at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"password must be at most {MAX_LENGTH} characters"
    lowered = password.lower()
    if len(set(lowered)) < 5:
        return "password repeats too few different characters"
    for stem in _BREACHED_STEMS:
        if stem in lowered:
            return f"password is built on {stem!r}, one of the most common leaked passwords"
    if re.fullmatch(r"(0123456789|1234567890|abcdefghij|qwertyuiop)+\d*", lowered):
        return "password is a keyboard or number sequence"
    local = email.split("@", 1)[0].lower()
    if len(local) >= 4 and local in lowered:
        return "password must not contain your email address"
    return None


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """True when ``password`` matches; a malformed stored hash is a mismatch, never an exception."""
    try:
        return HASHER.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    try:
        return HASHER.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


DUMMY_HASH = HASHER.hash("not a password of anyone: timing equaliser")
"""Verified against when the email is unknown, so a login answers as slowly as for a real user."""
