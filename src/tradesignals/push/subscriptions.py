"""What a browser's ``PushSubscription`` must look like before we store it (and later POST to it).

The endpoint is a URL the server will POST to, so it is checked like any outbound address given by
a user: https with a host name or a public address, no user info, at most 2048 characters. Plain
http to a loopback address is allowed only when ``allow_loopback`` (TS_PUSH_ALLOW_LOOPBACK: tests
and local development against a push service on 127.0.0.1); private, link-local and loopback
addresses are otherwise refused. The keys must be what RFC 8291 needs: ``p256dh`` a P-256 public
point (65 bytes, uncompressed, on the curve), ``auth`` 16 bytes, both base64url.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec

MAX_ENDPOINT = 2048
_LOOPBACK_NAMES = {"localhost"}


_B64URL = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")


def b64url_decode(text: str) -> bytes:
    """Strict base64url (padding optional): any other character is an error, not skipped."""
    if not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))


def endpoint_problem(endpoint: str, *, allow_loopback: bool) -> str | None:
    """Why ``endpoint`` is refused, or None."""
    if len(endpoint) > MAX_ENDPOINT:
        return f"endpoint longer than {MAX_ENDPOINT} characters"
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        return "endpoint is not a URL"
    if not host or parts.scheme not in ("https", "http"):
        return "endpoint must be an https URL"
    if parts.username is not None or parts.password is not None:
        return "endpoint must not carry user info"
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    loopback = host.lower() in _LOOPBACK_NAMES or (address is not None and address.is_loopback)
    if loopback:
        if allow_loopback:
            return None
        return "endpoint must be a public push service, not a loopback address"
    if parts.scheme != "https":
        return "endpoint must be an https URL"
    if address is not None and not address.is_global:
        return "endpoint must be a public push service, not a private address"
    return None


def keys_problem(p256dh: str, auth: str) -> str | None:
    """Why the subscription's keys are unusable, or None."""
    try:
        point, secret = b64url_decode(p256dh), b64url_decode(auth)
    except (binascii.Error, ValueError):
        return "keys must be base64url"
    if len(secret) != 16:
        return "keys.auth must be 16 bytes"
    if len(point) != 65 or point[0] != 4:
        return "keys.p256dh must be an uncompressed P-256 point (65 bytes)"
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        return "keys.p256dh is not a point on P-256"
    return None


__all__ = ["MAX_ENDPOINT", "b64url_decode", "endpoint_problem", "keys_problem"]
