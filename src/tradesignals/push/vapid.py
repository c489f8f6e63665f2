"""The VAPID key pair (RFC 8292) that signs every push request this deployment sends.

Embedded mode creates ``TS_HOME/vapid-key.pem`` (PKCS#8, mode 0600) at first start and reuses it:
browsers bind a subscription to the public key, so a new key would silently orphan every
subscription. Server mode never creates one (nodes must share it): ``TS_VAPID_KEY_FILE``, else
push is off. The private key never leaves this object: no repr, no log line, no response holds it;
the API serves ``public_key`` (the uncompressed P-256 point, base64url — the browser's
``applicationServerKey``).
"""

from __future__ import annotations

import base64
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

KEY_FILE_NAME = "vapid-key.pem"


class VapidKeyError(Exception):
    """A key file that cannot be read or is not a P-256 private key; the message names the file only."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class VapidKeys:
    private: ec.EllipticCurvePrivateKey = field(repr=False)
    public_key: str
    """The uncompressed public point, base64url without padding."""

    @classmethod
    def of(cls, private: ec.EllipticCurvePrivateKey) -> VapidKeys:
        point = private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return cls(private, b64url(point))


def load_keys(path: Path) -> VapidKeys:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise VapidKeyError(f"{path}: cannot read ({exc.strerror})") from None
    except (ValueError, TypeError):
        raise VapidKeyError(f"{path}: not a PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise VapidKeyError(f"{path}: a VAPID key must be an EC P-256 private key")
    return VapidKeys.of(key)


def load_or_create_keys(path: Path) -> tuple[VapidKeys, bool]:
    """The key in ``path``, created (0600, never overwritten) when absent; True when created now."""
    if path.exists():
        return load_keys(path), False
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: theirs is the key
        return load_keys(path), False
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return VapidKeys.of(key), True


def is_private(path: Path) -> bool:
    """No group or other permission bits on the key file."""
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


__all__ = [
    "KEY_FILE_NAME",
    "VapidKeyError",
    "VapidKeys",
    "b64url",
    "is_private",
    "load_keys",
    "load_or_create_keys",
]
