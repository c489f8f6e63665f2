"""Ed25519 for ledger checkpoints: the ``Signer`` and ``SignatureCheck`` of ``domain/checkpoints.py``.

The private key is the one secret the track record rests on: whoever holds it can vouch for a
rewritten ledger. So it lives only inside ``Ed25519Signer``, whose ``repr`` shows the public key,
and every error here is one line that names the file or setting, never its content. The key file
is PEM PKCS#8 (what ``openssl genpkey -algorithm ed25519`` writes); the raw 32-byte seed as 64 hex
digits is accepted too, for a secret passed in a variable.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")

KEY_FILE_NAME = "ledger-key.pem"


class SigningKeyError(Exception):
    """The signing key cannot be used; one line naming where it came from, never what it holds."""


class Ed25519Signer:
    """Signs checkpoint messages (``domain.checkpoints.Signer``)."""

    __slots__ = ("_key", "_public")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self._public = (
            key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
        )

    @classmethod
    def generate(cls) -> Ed25519Signer:
        return cls(Ed25519PrivateKey.generate())

    @property
    def public_key(self) -> str:
        return self._public

    def sign(self, message: bytes) -> str:
        return self._key.sign(message).hex()

    def pem(self) -> bytes:
        """The private key as PEM PKCS#8, for writing the key file: the only way it leaves."""
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def __repr__(self) -> str:
        return f"Ed25519Signer(public_key={self._public})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would copy the private key into whatever gets the pickle (a cache, a queue).
        raise TypeError("an Ed25519Signer is not picklable: the private key stays in this process")


def check_signature(public_key: str, message: bytes, signature: str) -> bool:
    """True only when ``signature`` (128 hex) is ``public_key``'s (64 hex) over ``message``; never raises."""
    if not isinstance(public_key, str) or not _HEX64.fullmatch(public_key):
        return False
    if not isinstance(signature, str) or not _HEX128.fullmatch(signature):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key)).verify(
            bytes.fromhex(signature), message
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def signer_from_text(text: str, where: str) -> Ed25519Signer:
    """A signer from PEM PKCS#8 or a 64-hex-digit seed; ``where`` names the source in errors."""
    expected = "expected an Ed25519 private key as PEM PKCS#8 or 64 hex digits"
    stripped = text.strip()
    if _HEX64.fullmatch(stripped.lower()):
        return Ed25519Signer(Ed25519PrivateKey.from_private_bytes(bytes.fromhex(stripped)))
    if "-----BEGIN" not in stripped:
        raise SigningKeyError(f"{where}: not a key ({expected})")
    try:
        key = serialization.load_pem_private_key(stripped.encode("ascii", "replace"), password=None)
    except TypeError:
        raise SigningKeyError(f"{where}: the key is encrypted; give it unencrypted ({expected})") from None
    except (ValueError, UnsupportedAlgorithm):
        raise SigningKeyError(f"{where}: unreadable key ({expected})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(
            f"{where}: a {type(key).__name__.removeprefix('_')} key, not Ed25519 ({expected})"
        )
    return Ed25519Signer(key)


def load_signer(path: Path) -> Ed25519Signer:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise SigningKeyError(f"key file {path}: {err.strerror or type(err).__name__}") from None
    return signer_from_text(text, f"key file {path}")


def is_private(path: Path) -> bool:
    """Whether only the owner can read ``path`` (what ssh insists on for its keys)."""
    return not stat.S_IMODE(path.stat().st_mode) & 0o077


def load_or_create_signer(path: Path) -> tuple[Ed25519Signer, bool]:
    """The key at ``path``, created (mode 0600) when absent; ``(signer, created)``.

    Written to a private temporary file and linked into place, so that two processes starting at
    once never both create a key, and a crash never leaves a half-written one: the loser of the race
    reads the winner's.
    """
    if path.exists():
        return load_signer(path), False
    signer = Ed25519Signer.generate()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".ledger-key-")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(signer.pem())
                f.flush()
                os.fsync(f.fileno())
            os.link(tmp, path)
        finally:
            os.unlink(tmp)
    except FileExistsError:
        return load_signer(path), False
    except OSError as err:
        raise SigningKeyError(
            f"cannot create key file {path}: {err.strerror or type(err).__name__}"
        ) from None
    return signer, True


__all__ = [
    "KEY_FILE_NAME",
    "Ed25519Signer",
    "SigningKeyError",
    "check_signature",
    "is_private",
    "load_or_create_signer",
    "load_signer",
    "signer_from_text",
]
