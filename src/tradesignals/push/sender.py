"""Sends Web Push notifications: VAPID-signed (RFC 8292), payload encrypted aes128gcm (RFC 8291),
through pywebpush's async client.

Only public addresses are reached (``PublicOnlyResolver``; loopback too with TS_PUSH_ALLOW_LOOPBACK)
and redirects are not followed, since the endpoint is a URL a user gave us. A push service's 404 or 410 means the subscription is gone: it is deleted, so nobody is notified
there again. Any other failure (a 5xx, a timeout, a refused connection) is counted and logged with
the endpoint's host and the status only — never the endpoint's path (a capability), the payload or
a key — and never raised: a notification is best effort and must not stop the pipeline.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import structlog
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver
from prometheus_client import Counter
from py_vapid import Vapid
from pywebpush import WebPushException, webpush_async

from tradesignals.push.vapid import VapidKeys
from tradesignals.storage.push import PushSubscription, SqlPushStore

log = structlog.get_logger(__name__)

GONE = frozenset({404, 410})

NOTIFICATIONS = Counter(
    "ts_push_notifications_total",
    "Web Push notifications by result: sent, failed (counted, not retried), removed (404/410: deleted).",
    ["result"],
)


class PublicOnlyResolver(ThreadedResolver):
    """Resolves a push endpoint's host only to public addresses (loopback too when allowed): a host
    name that points inside the network cannot turn our POST into a request to an internal service."""

    def __init__(self, *, allow_loopback: bool = False) -> None:
        super().__init__()
        self.allow_loopback = allow_loopback

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await super().resolve(host, port, family)
        ok = [r for r in found if self._allowed(r["host"])]
        if not ok:
            raise OSError(f"{host} resolves to no public address")
        return ok

    def _allowed(self, address: str) -> bool:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        return ip.is_global or (self.allow_loopback and ip.is_loopback)


class _NoRedirects:
    """The session pywebpush posts through, with redirects off (a 3xx is a failure, not followed)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    def post(self, url: str, **kwargs: Any) -> Any:
        return self._session.post(url, allow_redirects=False, **kwargs)


@dataclass(slots=True)
class PushStats:
    """This sender's counts (the process-wide ones are ``ts_push_notifications_total``)."""

    sent: int = 0
    failed: int = 0
    removed: int = 0

    def count(self, result: str) -> None:
        setattr(self, result, getattr(self, result) + 1)
        NOTIFICATIONS.labels(result).inc()


class PushSender:
    def __init__(
        self,
        keys: VapidKeys,
        subject: str,
        store: SqlPushStore,
        *,
        ttl_s: int = 3600,
        timeout_s: float = 10.0,
        concurrency: int = 16,
        allow_loopback: bool = False,
    ) -> None:
        self.keys = keys
        self.subject = subject
        self.store = store
        self.ttl_s = ttl_s
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.concurrency = concurrency
        self.allow_loopback = allow_loopback
        self.stats = PushStats()
        self._vapid = Vapid(private_key=keys.private)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> _NoRedirects:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(resolver=PublicOnlyResolver(allow_loopback=self.allow_loopback))
            self._session = aiohttp.ClientSession(connector=connector)
        return _NoRedirects(self._session)

    async def send(self, sub: PushSubscription, payload: Mapping[str, Any]) -> str:
        """Deliver one notification: ``sent``, ``gone`` (subscription deleted) or ``failed``."""
        host = urlsplit(sub.endpoint).hostname or "?"
        info: dict[str, Any] = {"endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}}
        try:
            await webpush_async(
                info,
                json.dumps(payload, separators=(",", ":")),
                vapid_private_key=self._vapid,
                vapid_claims={"sub": self.subject},  # a fresh dict: pywebpush fills in aud and exp
                ttl=self.ttl_s,
                timeout=self.timeout,
                aiohttp_session=self._http(),
            )
        except WebPushException as exc:
            status = exc.status_code
            if status in GONE:
                await asyncio.to_thread(self.store.forget, sub.endpoint)
                self.stats.count("removed")
                log.info("push.subscription_gone", host=host, status=status, user_id=sub.user_id)
                return "gone"
            self.stats.count("failed")
            log.warning("push.failed", host=host, status=status, user_id=sub.user_id)
            return "failed"
        except Exception as exc:  # connection refused, timeout, a broken store: counted, not raised
            self.stats.count("failed")
            log.warning("push.failed", host=host, error=type(exc).__name__, user_id=sub.user_id)
            return "failed"
        self.stats.count("sent")
        return "sent"

    async def send_all(self, subs: Iterable[PushSubscription], payload: Mapping[str, Any]) -> list[str]:
        """One notification to each subscription, ``concurrency`` at a time."""
        gate = asyncio.Semaphore(self.concurrency)

        async def one(sub: PushSubscription) -> str:
            async with gate:
                return await self.send(sub, payload)

        return list(await asyncio.gather(*(one(s) for s in subs)))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


__all__ = ["GONE", "PushSender", "PushStats"]
