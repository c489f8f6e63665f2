"""``GET /api/signals/{id}/image.png``: gated like the signal, cached by ETag, rendered once.

Runs the real app in embedded mode (SQLite, Parquet bar store, memory bus, TS_HOME/images); the
worker test publishes a signal on the bus as the engine does and waits for the stored image.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

from tradesignals.api.app import create_app
from tradesignals.bus import topics
from tradesignals.bus.codec import encode
from tradesignals.config import load_settings
from tradesignals.domain.market import Timeframe, to_ns
from tradesignals.domain.sessions import DAY_NS
from tradesignals.domain.signals import (
    Direction,
    Signal,
    SignalEvent,
    SignalEventKind,
    SignalStatus,
    SignalType,
)
from tradesignals.domain.tiers import Tier
from tradesignals.images import render
from tradesignals.images.render import render_png
from tradesignals.images.service import FILENAME, NAME
from tradesignals.wiring import Services, build_services

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def make_signal(i: int, entry: float) -> Signal:
    created = T0 + timedelta(minutes=i)
    return Signal(
        id=f"{int(created.timestamp() * 1000):012x}{i:010x}",
        symbol="CALM",
        type=SignalType.SWING,
        direction=Direction.LONG,
        entry=entry,
        stop=round(entry * 0.95, 4),
        targets=(round(entry * 1.05, 4), round(entry * 1.1, 4)),
        confidence=0.31,
        created_at=created,
        expires_at=created + timedelta(days=5),
        model_version="image-test",
        decided_at=created,
        base_rate=0.25,
        confidence_rank=0.9,
    )


def seed_bars(services: Services) -> None:
    first = to_ns(T0) - 45 * DAY_NS
    rows = []
    for i in range(46):  # the last one opens at T0: the deciding bar of every signal here
        close = 100.0 * math.exp(0.01 * math.sin(i))
        rows.append((first + i * DAY_NS, "CALM", close, close * 1.01, close * 0.99, close, 1000.0))
    frame = pd.DataFrame(rows, columns=["ts", "symbol", "open", "high", "low", "close", "volume"])
    frame["ts"] = frame["ts"].astype(np.int64)
    services.bars.upsert(Timeframe.D1, frame)


def close(services: Services, s: Signal) -> None:
    services.signals.set_status(
        s.id,
        SignalStatus.STOPPED,
        SignalEvent(s.id, SignalEventKind.CLOSED, s.created_at + timedelta(minutes=5), {"outcome": "stop"}),
    )


def test_unknown_forbidden_and_served_with_caching_headers(
    client: TestClient, services: Services, user_factory: Callable[..., dict[str, str]]
) -> None:
    seed_bars(services)
    live, closed = make_signal(1, 100.5), make_signal(2, 99.25)
    services.signals.add(live)
    services.signals.add(closed)
    close(services, closed)
    free = user_factory("free@example.com")
    premium = user_factory("premium@example.com", tier="premium")

    assert client.get("/api/signals/0123456789abcdef012345/image.png").status_code == 404
    assert client.get("/api/signals/nothex/image.png").status_code == 422
    for headers in ({}, free):
        r = client.get(f"/api/signals/{live.id}/image.png", headers=headers)
        assert r.status_code == 403 and r.headers["content-type"] == "application/json"
        assert "premium" in r.json()["detail"]
    assert services.images is not None and services.images.load(live.id) is None  # 403 renders nothing

    r = client.get(f"/api/signals/{live.id}/image.png", headers=premium)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content[:8] == b"\x89PNG\r\n\x1a\n"
    etag = r.headers["etag"]
    assert etag == f'"{hashlib.sha256(r.content).hexdigest()}"'
    assert r.headers["cache-control"] == "private, max-age=31536000, immutable"
    assert r.headers["vary"] == "Authorization"
    # the stored image is the renderer's output for this signal and its stored bars
    assert r.content == render_png(live, services.images.recent_bars(live))
    assert (services.settings.home / "images" / NAME / live.id / FILENAME).read_bytes() == r.content

    again = client.get(f"/api/signals/{live.id}/image.png", headers=premium | {"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    other = client.get(f"/api/signals/{live.id}/image.png", headers=premium | {"If-None-Match": '"x"'})
    assert other.status_code == 200 and other.content == r.content
    # the entitlement is checked before the cache: a matching tag does not open a live image to others
    assert client.get(f"/api/signals/{live.id}/image.png", headers={"If-None-Match": etag}).status_code == 403

    # a closed signal is the public track record
    pub = client.get(f"/api/signals/{closed.id}/image.png")
    assert pub.status_code == 200 and pub.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert pub.content != r.content
    assert services.images.stats.rendered == 2


def test_an_image_is_rendered_once_and_served_from_the_store(
    client: TestClient, services: Services, user_factory: Callable[..., dict[str, str]]
) -> None:
    seed_bars(services)
    s = make_signal(3, 101.0)
    services.signals.add(s)
    premium = user_factory("p@example.com", tier="premium")
    bodies = {client.get(f"/api/signals/{s.id}/image.png", headers=premium).content for _ in range(3)}
    assert len(bodies) == 1
    assert services.images is not None and services.images.stats.rendered == 1


def test_the_worker_renders_each_published_signal_off_the_engine_path(
    client: TestClient, services: Services
) -> None:
    """Published on ``signals`` as the engine does: the api role's image worker stores the image
    without any request asking for it."""
    seed_bars(services)
    s = make_signal(4, 102.0)
    services.signals.add(s)
    portal = client.portal
    assert portal is not None
    portal.call(services.bus.publish, topics.SIGNALS, s.symbol, encode(s))  # on the app's loop
    images = services.images
    assert images is not None
    deadline = time.monotonic() + 60
    while images.load(s.id) is None:
        assert time.monotonic() < deadline, "the worker did not render the published signal"
        time.sleep(0.05)
    assert images.stats.rendered == 1 and images.stats.failed == 0
    assert images.load(s.id).data == render_png(s, images.recent_bars(s))  # type: ignore[union-attr]


def test_on_demand_renders_are_bounded_and_shared(tmp_path: Path) -> None:
    """With TS_IMAGE_MAX_PENDING=1 and the render thread busy, a request for another missing image is
    a 503 with Retry-After (never a queue without end); a second request for the one being drawn
    shares its render."""
    services = asyncio.run(build_services(load_settings(home=tmp_path, mode="embedded", image_max_pending=1)))
    seed_bars(services)
    a, b = make_signal(5, 100.0), make_signal(6, 101.0)
    for s in (a, b):
        services.signals.add(s)
    user = services.accounts.register("p@example.com", "correct horse battery staple")
    services.accounts.users.set_tier(user.id, Tier.PREMIUM)
    headers = {
        "Authorization": f"Bearer {services.accounts.tokens.issue(user.id, 'user', datetime.now(UTC))}"
    }
    images = services.images
    assert images is not None
    with TestClient(create_app(services, roles=frozenset())) as client:
        portal = client.portal
        assert portal is not None
        with render._LOCK:  # the render thread is busy drawing
            first = portal.start_task_soon(images.ensure, a)
            same = portal.start_task_soon(images.ensure, a)
            deadline = time.monotonic() + 10
            while images.pending < 1:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            r = client.get(f"/api/signals/{b.id}/image.png", headers=headers)
            assert r.status_code == 503 and r.headers["retry-after"] == "2"
            assert "try again" in r.json()["detail"]
        assert first.result(timeout=60) == same.result(timeout=60)
        assert images.stats.rendered == 1
        assert client.get(f"/api/signals/{b.id}/image.png", headers=headers).status_code == 200
