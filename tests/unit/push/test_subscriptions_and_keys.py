"""The rules for a push endpoint and keys, and the VAPID key file."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tradesignals.push.sender import PublicOnlyResolver
from tradesignals.push.subscriptions import b64url_decode, endpoint_problem, keys_problem
from tradesignals.push.vapid import VapidKeyError, load_keys, load_or_create_keys


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("url", "loopback", "problem"),
    [
        ("https://fcm.googleapis.com/fcm/send/abc", False, None),
        ("https://updates.push.services.mozilla.com/wpush/v2/x", False, None),
        ("https://8.8.8.8/push", False, None),
        ("http://fcm.googleapis.com/x", False, "https"),
        ("http://fcm.googleapis.com/x", True, "https"),
        ("ftp://fcm.googleapis.com/x", False, "https"),
        ("https://10.0.0.5/x", False, "private"),
        ("https://192.168.1.1/x", True, "private"),
        ("https://169.254.169.254/latest", False, "private"),
        ("https://[fd00::1]/x", False, "private"),
        ("http://127.0.0.1:9000/push/x", False, "loopback"),
        ("https://localhost/x", False, "loopback"),
        ("http://127.0.0.1:9000/push/x", True, None),
        ("http://[::1]:9000/x", True, None),
        ("https://u:p@push.example.com/x", False, "user info"),
        ("https://push.example.com:notaport/x", False, "not a URL"),
        ("https:///nohost", False, "https"),
        ("https://push.example.com/" + "x" * 2100, False, "longer"),
    ],
)
def test_endpoint_rules(url: str, loopback: bool, problem: str | None) -> None:
    got = endpoint_problem(url, allow_loopback=loopback)
    assert (got is None) if problem is None else (got is not None and problem in got), got


def test_key_rules() -> None:
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    assert keys_problem(b64(point), b64(os.urandom(16))) is None
    assert keys_problem(b64(point) + "==", b64(os.urandom(16)) + "==") is None  # padding tolerated
    assert "16 bytes" in (keys_problem(b64(point), b64(os.urandom(15))) or "")
    assert "65 bytes" in (keys_problem(b64(point[1:]), b64(os.urandom(16))) or "")
    assert "not a point" in (keys_problem(b64(b"\x04" + b"\x00" * 64), b64(os.urandom(16))) or "")
    assert "base64url" in (keys_problem(b64(point) + "+/", b64(os.urandom(16))) or "")
    with pytest.raises(ValueError, match="not base64url"):
        b64url_decode("a b")


def test_the_key_file_is_made_0600_once_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "home" / "vapid-key.pem"
    keys, created = load_or_create_keys(path)
    assert created and stat.S_IMODE(path.stat().st_mode) == 0o600
    again, created_again = load_or_create_keys(path)
    assert not created_again and again.public_key == keys.public_key == load_keys(path).public_key
    assert base64.urlsafe_b64decode(keys.public_key + "=")[0] == 4
    assert "BEGIN" not in repr(keys) and str(keys.private.private_numbers().private_value) not in repr(keys)


def test_a_bad_key_file_is_one_line_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(VapidKeyError, match=r"nope\.pem: cannot read"):
        load_keys(missing)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    with pytest.raises(VapidKeyError, match=r"garbage\.pem: not a PEM private key"):
        load_keys(garbage)
    other = tmp_path / "ed.pem"
    other.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(VapidKeyError, match="P-256"):
        load_keys(other)


async def test_the_sender_resolves_hosts_to_public_addresses_only() -> None:
    """A name that points at a private or loopback address is refused at connection time too."""
    with pytest.raises(OSError, match="no public address"):
        await PublicOnlyResolver().resolve("localhost", 443)
    allowed = await PublicOnlyResolver(allow_loopback=True).resolve("localhost", 443)
    assert allowed and all(r["host"] in ("127.0.0.1", "::1") for r in allowed)
    assert PublicOnlyResolver()._allowed("8.8.8.8") and not PublicOnlyResolver()._allowed("10.0.0.1")
    assert not PublicOnlyResolver()._allowed("169.254.169.254") and not PublicOnlyResolver()._allowed(
        "fe80::1%eth0"
    )
