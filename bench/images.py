"""Signal image figures, printed as one JSON object.

* ``render_ms`` — ``SignalImages.render_and_store`` for N distinct signals (60 daily bars each, from
  the Parquet bar store, stored under a temporary TS_HOME/images): p50/p99 per image, and the bytes.
* ``cached_serve_ms`` — ``GET /api/signals/{id}/image.png`` through the real app (TestClient,
  embedded mode, a premium caller) for images already stored: p50/p99 per request, the entitlement
  check and the signal read included; and with ``If-None-Match`` (a 304).

    .venv/bin/python bench/images.py [--signals 40] [--requests 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import platform
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

from tradesignals.api.app import create_app
from tradesignals.config import load_settings
from tradesignals.domain.market import Timeframe, to_ns
from tradesignals.domain.sessions import DAY_NS
from tradesignals.domain.signals import Direction, Signal, SignalType
from tradesignals.domain.tiers import Tier
from tradesignals.wiring import build_services


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(q * len(s)))], 2)


def signals(n: int, t0: datetime) -> list[Signal]:
    out = []
    for i in range(n):
        created = t0 + timedelta(minutes=i)
        entry = 100.0 + i
        out.append(
            Signal(
                id=f"{int(created.timestamp() * 1000):012x}{i:010x}",
                symbol=f"B{i % 10:03d}",
                type=SignalType.SWING,
                direction=Direction.LONG if i % 2 else Direction.SHORT,
                entry=entry,
                stop=entry * (0.97 if i % 2 else 1.03),
                targets=tuple(entry * (1 + k * (0.03 if i % 2 else -0.03)) for k in (1, 2, 3)),
                confidence=0.3 + i / 1000,
                created_at=created,
                expires_at=created + timedelta(days=5),
                model_version="bench",
                decided_at=created,
            )
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--signals", type=int, default=40)
    ap.add_argument("--requests", type=int, default=300)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-images-"))
    services = asyncio.run(build_services(load_settings(home=home, mode="embedded")))
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    rng = np.random.default_rng(1)
    rows = []
    first = to_ns(t0) - 80 * DAY_NS
    for k in range(10):
        close = 100.0
        for i in range(80):
            close *= math.exp(rng.normal(0, 0.01))
            o = close * math.exp(rng.normal(0, 0.003))
            rows.append(
                (first + i * DAY_NS, f"B{k:03d}", o, max(o, close) * 1.004, min(o, close) * 0.996, close, 1e4)
            )
    frame = pd.DataFrame(rows, columns=["ts", "symbol", "open", "high", "low", "close", "volume"])
    frame["ts"] = frame["ts"].astype(np.int64)
    services.bars.upsert(Timeframe.D1, frame)
    sigs = signals(args.signals, t0)
    for s in sigs:
        services.signals.add(s)
    images = services.images
    assert images is not None
    render_ms: list[float] = []
    sizes: list[int] = []
    for s in sigs:
        t = time.perf_counter()
        img = images.render_and_store(s)
        render_ms.append((time.perf_counter() - t) * 1000)
        sizes.append(len(img.data))
    user = services.accounts.register("bench@example.com", "correct horse battery staple")
    services.accounts.users.set_tier(user.id, Tier.PREMIUM)
    token = services.accounts.tokens.issue(user.id, "user", datetime.now(UTC))
    headers = {"Authorization": f"Bearer {token}"}
    serve_ms: list[float] = []
    not_modified_ms: list[float] = []
    with TestClient(create_app(services, roles=frozenset())) as client:
        etags = {}
        for s in sigs:  # warm: every image once (they are stored; this fills nothing new)
            r = client.get(f"/api/signals/{s.id}/image.png", headers=headers)
            assert r.status_code == 200
            etags[s.id] = r.headers["etag"]
        for i in range(args.requests):
            s = sigs[i % len(sigs)]
            t = time.perf_counter()
            r = client.get(f"/api/signals/{s.id}/image.png", headers=headers)
            serve_ms.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200
            t = time.perf_counter()
            r = client.get(f"/api/signals/{s.id}/image.png", headers=headers | {"If-None-Match": etags[s.id]})
            not_modified_ms.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 304
    out: dict[str, Any] = {
        "bench": "images",
        "machine": f"{platform.machine()} {platform.python_version()}",
        "signals": len(sigs),
        "bars_per_image": 60,
        "render_ms": {
            "p50": pct(render_ms, 0.5),
            "p99": pct(render_ms, 0.99),
            "mean": round(statistics.fmean(render_ms), 2),
        },
        "png_bytes": {"min": min(sizes), "max": max(sizes)},
        "cached_serve_ms": {"p50": pct(serve_ms, 0.5), "p99": pct(serve_ms, 0.99), "requests": len(serve_ms)},
        "not_modified_ms": {"p50": pct(not_modified_ms, 0.5), "p99": pct(not_modified_ms, 0.99)},
    }
    shutil.rmtree(home, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
