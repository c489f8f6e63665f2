"""A Web Push service on 127.0.0.1 that checks what it receives as a real one and a browser would.

The test plays the browser: ``Browser.subscribe()`` makes a P-256 key pair and a 16-byte auth
secret, as ``pushManager.subscribe`` does, and registers an endpoint path here. On each POST the
service:

* checks the VAPID header (RFC 8292): ``Authorization: vapid t=JWT, k=KEY``, the JWT verified as
  ES256 with ``k`` (which must be the server's published key), ``aud`` = this origin, ``exp`` in
  the future and at most 24 h ahead, ``sub`` a mailto:/https: contact;
* decrypts the body as the browser would (RFC 8291 / RFC 8188 ``aes128gcm``): the header's salt,
  record size and the sender's ephemeral key, ECDH with the subscription's private key, the
  "WebPush: info" HKDF with the auth secret, the content key and nonce, AES-128-GCM, padding off;
* answers 201 (delivered), or what the path's mode says: ``gone`` → 410, ``fail`` → 500,
  ``redirect:TOKEN`` → 307 to another subscription's path.

Only the ``cryptography`` package and PyJWT: nothing of pywebpush's own code checks its output.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


@dataclass
class Browser:
    """One browser subscription: the keys only the browser holds."""

    token: str
    mode: str
    private: ec.EllipticCurvePrivateKey
    auth: bytes

    @property
    def p256dh(self) -> str:
        return b64url(
            self.private.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )

    def decrypt(self, body: bytes) -> bytes:
        """RFC 8291 §3.4 / RFC 8188: one aes128gcm record, as a user agent decrypts it."""
        salt, rs, idlen = body[:16], struct.unpack(">I", body[16:20])[0], body[20]
        as_public_bytes = body[21 : 21 + idlen]
        ciphertext = body[21 + idlen :]
        assert idlen == 65 and rs >= 18 and len(ciphertext) <= rs, (idlen, rs, len(ciphertext))
        as_public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), as_public_bytes)
        ecdh_secret = self.private.exchange(ec.ECDH(), as_public)
        ua_public = unb64url(self.p256dh)
        ikm = _hkdf(self.auth, ecdh_secret, b"WebPush: info\x00" + ua_public + as_public_bytes, 32)
        cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
        nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
        padded = AESGCM(cek).decrypt(nonce, ciphertext, None)
        stripped = padded.rstrip(b"\x00")
        assert stripped[-1:] == b"\x02", "the last record ends with the 0x02 delimiter"
        return stripped[:-1]


@dataclass
class Delivery:
    token: str
    payload: dict[str, Any]
    claims: dict[str, Any]
    headers: dict[str, str]


@dataclass
class LocalPushService:
    server_key: str = ""
    """The VAPID public key the app publishes: every request must be signed by it."""
    browsers: dict[str, Browser] = field(default_factory=dict)
    delivered: list[Delivery] = field(default_factory=list)
    refused: list[tuple[str, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    port: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def subscribe(self, mode: str = "ok") -> Browser:
        token = b64url(os.urandom(12))
        b = Browser(token, mode, ec.generate_private_key(ec.SECP256R1()), os.urandom(16))
        self.browsers[token] = b
        return b

    def endpoint(self, b: Browser) -> str:
        return f"{self.origin}/push/{b.token}"

    def subscription_json(self, b: Browser) -> dict[str, Any]:
        """What ``PushSubscription.toJSON()`` gives the web app to post."""
        return {"endpoint": self.endpoint(b), "keys": {"p256dh": b.p256dh, "auth": b64url(b.auth)}}

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                assert left > 0, (
                    f"timed out: delivered={len(self.delivered)} refused={self.refused} errors={self.errors}"
                )
                self._cond.wait(left)

    def _check_vapid(self, request: web.Request) -> dict[str, Any]:
        header = request.headers.get("Authorization", "")
        scheme, _, params = header.partition(" ")
        assert scheme == "vapid", f"Authorization scheme {scheme!r}"
        fields = dict(p.strip().split("=", 1) for p in params.split(","))
        assert fields["k"] == self.server_key, "the request is not signed by the app's published key"
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(fields["k"]))
        claims: dict[str, Any] = jwt.decode(
            fields["t"],
            key=public,
            algorithms=["ES256"],
            audience=self.origin,
            options={"require": ["exp", "sub", "aud"]},
        )
        assert time.time() < claims["exp"] <= time.time() + 24 * 3600 + 60
        assert str(claims["sub"]).startswith(("mailto:", "https://"))
        return claims

    async def handle(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        body = await request.read()
        try:
            browser = self.browsers[token]
            claims = self._check_vapid(request)
            assert request.headers.get("Content-Encoding") == "aes128gcm"
            assert int(request.headers["TTL"]) > 0
            payload = json.loads(browser.decrypt(body))
        except Exception as exc:  # anything wrong is the app's bug: recorded, refused
            with self._cond:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                self._cond.notify_all()
            return web.Response(status=400, text="bad push request")
        if browser.mode.startswith("redirect:"):  # send the POST on to another subscription's path
            with self._cond:
                self.refused.append((token, 307))
                self._cond.notify_all()
            raise web.HTTPTemporaryRedirect(f"/push/{browser.mode.removeprefix('redirect:')}")
        status = {"ok": 201, "gone": 410, "fail": 500}[browser.mode]
        with self._cond:
            if status == 201:
                self.delivered.append(Delivery(token, payload, claims, dict(request.headers)))
            else:
                self.refused.append((token, status))
            self._cond.notify_all()
        return web.Response(status=status)


def serve() -> tuple[LocalPushService, Any]:
    """Start the service on 127.0.0.1 (a free port) in a thread; returns it and a stop function."""
    service = LocalPushService()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def start() -> None:
        app = web.Application()
        app.router.add_post("/push/{token}", service.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        service.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        holder["runner"] = runner
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, name="local-push", daemon=True)
    thread.start()
    assert ready.wait(10), "the local push service did not start"

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()

    return service, stop
