"""First load of the web app's track record page, measured in the browser, printed as one JSON object.

* ``transferred_bytes`` — bytes over the wire for a cold first load of ``/`` (navigation, bundle,
  styles, manifest, icons, the two API calls), from the browser's Resource Timing ``transferSize``
  (headers included). ``decoded_bytes``: the same, uncompressed bodies. ``static_*``: the same two
  for the app's own files (page, bundle, styles, manifest, icons), without the API calls.
* ``table_ms`` — from navigation start to the history table drawn (the page's
  ``performance.mark("table-rendered")``), p50 / max over ``--runs`` cold loads, each in a fresh
  browser context (empty cache, no service worker). ``warm_table_ms``: a reload in the same context
  (cached shell via the service worker; the API calls still go to the network). ``api_ms_p50``: each
  API call's duration as the browser saw it (the table waits for both).

* ``live_ms`` — from a signal published on the bus (stored first, as the engine does) to its row
  drawn on a premium user's live page, p50 / p99 / max over ``--live`` signals published one at a
  time: bus → the node's broadcaster → WebSocket → the page refetches its fitted, sized list over
  REST → row drawn (the page's ``window.tsDrawn[id]``, wall clock, same machine).

Static assets are served pre-compressed (brotli) when the browser accepts it; ``transferred_bytes``
counts what crossed the wire.

The server is the app's API role (embedded mode, SQLite) under uvicorn on a loopback port, seeded
with ``--signals`` closed signals; the browser is Debian's Chromium driven by Playwright.

    .venv/bin/python bench/webapp.py [--signals 500] [--runs 5] [--live 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import socket
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import uvicorn

from tradesignals.api.app import create_app
from tradesignals.bus import topics
from tradesignals.bus.codec import encode
from tradesignals.config import load_settings
from tradesignals.domain.market import Timeframe, to_ns
from tradesignals.domain.outcomes import Outcome, OutcomeKind
from tradesignals.domain.signals import Direction, Signal, SignalType
from tradesignals.wiring import Services, build_services

T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
SYMBOLS = ["AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "BTC-USD", "ETH-USD", "SPY"]


def seed(services: Services, n: int) -> None:
    """``n`` closed swing/day signals across symbols and months, wins and losses mixed."""
    for i in range(n):
        created = T0 + timedelta(hours=6 * i)
        s = Signal(
            id=f"{int(created.timestamp() * 1000):012x}{i:010x}",
            symbol=SYMBOLS[i % len(SYMBOLS)],
            type=SignalType.SWING if i % 3 else SignalType.DAY,
            direction=Direction.LONG,
            entry=100.0,
            stop=95.0,
            targets=(105.0, 110.0, 115.0),
            confidence=0.45 + (i % 30) / 100,
            created_at=created,
            expires_at=created + timedelta(days=3),
            model_version="bench-1",
            decided_at=created - timedelta(seconds=30),
        )
        services.signals.add(s)
        net_r = (1.9, -1.1, 0.4, -1.1, 0.9)[i % 5]
        out = Outcome(
            signal_id=s.id,
            symbol=s.symbol,
            outcome=OutcomeKind.TARGET
            if net_r > 0.5
            else OutcomeKind.STOP
            if net_r < -0.5
            else OutcomeKind.EXPIRED,
            target_index=0 if net_r > 0.5 else None,
            decided_at=created,
            filled_at=created + timedelta(minutes=1),
            fill_price=100.0,
            first_price=None,
            exit_price=100.0 + 5 * (net_r + 0.1),
            gross_pnl_pct=5 * (net_r + 0.1),
            costs_pct=0.5,
            net_pnl_pct=5 * net_r,
            gross_r=net_r + 0.1,
            net_r=net_r,
            mfe_pct=max(0.0, 5 * net_r),
            mae_pct=min(0.0, 5 * net_r),
            holding_seconds=3600.0,
            closed_at=created + timedelta(days=1),
        )
        services.signals.set_status(s.id, out.status, out.to_event())


def calm_bars(symbol: str, days: int, until: datetime) -> pd.DataFrame:
    """Daily bars before ``until`` with small moves: every profile accepts the symbol's volatility."""
    rows = []
    for i in range(days):
        close = 100.0 * (1.01 if i % 2 else 1.0)
        ts = to_ns(until - timedelta(days=days - i))
        rows.append((ts, symbol, close, close + 0.4, close - 0.4, close, 1e4))
    frame = pd.DataFrame(rows, columns=["ts", "symbol", "open", "high", "low", "close", "volume"])
    frame["ts"] = frame["ts"].astype(np.int64)
    return frame


def live_signal(i: int, decided: datetime) -> Signal:
    now = datetime.now(UTC)
    return Signal(
        id=f"{int(now.timestamp() * 1000):012x}{i:010x}",
        symbol="CALM",
        type=SignalType.SWING,
        direction=Direction.LONG,
        entry=100.0,
        stop=95.0,
        targets=(105.0, 110.0, 115.0),
        confidence=0.6,
        created_at=now,
        expires_at=now + timedelta(days=3),
        model_version="bench-live-1",
        decided_at=decided,
        base_rate=0.5,
        confidence_rank=0.95,
    )


def live_latency(
    browser: Any, services: Services, loop: asyncio.AbstractEventLoop, base: str, n: int
) -> list[float]:
    """Milliseconds from each of ``n`` signals published to its row drawn on the live page."""
    decided = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    services.bars.upsert(Timeframe.D1, calm_bars("CALM", 60, decided))
    email, password = "bench@example.com", "a long and unusual passphrase 42"
    httpx.post(f"{base}/api/auth/register", json={"email": email, "password": password}).raise_for_status()
    pair = httpx.post(f"{base}/api/auth/token", data={"username": email, "password": password}).json()
    auth = {"Authorization": f"Bearer {pair['access_token']}"}
    httpx.post(f"{base}/api/billing/checkout", json={"plan": "premium"}, headers=auth).raise_for_status()
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(f"localStorage.setItem('ts.refresh.v1', {json.dumps(pair['refresh_token'])})")
    page = context.new_page()
    page.goto(base + "/live")
    page.wait_for_selector("#live-table[data-rendered]")
    page.wait_for_function(
        "() => (document.querySelector('#ws-state').dataset.channels || '').split(' ').includes('signals')"
    )
    out = []
    for i in range(n):
        signal = live_signal(i, decided)
        services.signals.add(signal)
        published = time.time() * 1000
        asyncio.run_coroutine_threadsafe(
            services.bus.publish(topics.SIGNALS, signal.symbol, encode(signal)), loop
        ).result(timeout=10)
        page.wait_for_selector(f"tr[data-id='{signal.id}']", timeout=20_000)
        out.append(page.evaluate("(id) => window.tsDrawn[id]", signal.id) - published)
    context.close()
    return out


def pct(xs: list[float], q: float) -> float:
    return round(float(np.percentile(xs, q)), 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--signals", type=int, default=500)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--live", type=int, default=100, help="signals timed from publish to drawn (0: skip)")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as home:
        settings = load_settings(home=Path(home), mode="embedded")
        with ThreadPoolExecutor(1) as pool:  # sync Playwright runs an event loop on this thread
            services = pool.submit(asyncio.run, build_services(settings)).result()
        seed(services, args.signals)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(create_app(services, roles=frozenset({"api"})), port=port, log_level="warning")
        )
        loop = asyncio.new_event_loop()  # ours, so the bench can publish on the bus it serves
        thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),), daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        url = f"http://127.0.0.1:{port}/"
        cold_ms: list[float] = []
        warm_ms: list[float] = []
        transferred = decoded = requests = static_transferred = static_decoded = 0
        api_ms: dict[str, list[float]] = {}
        api_js = """() => performance.getEntriesByType('resource')
            .filter((e) => e.name.includes('/api/'))
            .map((e) => [new URL(e.name).pathname, e.duration, e.transferSize])"""
        table_js = "() => performance.getEntriesByName('table-rendered')[0].startTime"
        bytes_js = """() => {
            const all = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
            const own = all.filter((e) => !new URL(e.name).pathname.startsWith('/api/'));
            return [all.reduce((n, e) => n + e.transferSize, 0), all.reduce((n, e) => n + e.decodedBodySize, 0), all.length,
                    own.reduce((n, e) => n + e.transferSize, 0), own.reduce((n, e) => n + e.decodedBodySize, 0)];
        }"""
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=["--disable-gpu"])
            for _ in range(args.runs):
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                page = context.new_page()
                page.goto(url)
                page.wait_for_selector("#history-table[data-rendered]")
                cold_ms.append(page.evaluate(table_js))
                page.wait_for_load_state("networkidle")
                transferred, decoded, requests, static_transferred, static_decoded = page.evaluate(bytes_js)
                for path, duration, _size in page.evaluate(api_js):
                    api_ms.setdefault(path, []).append(duration)
                page.wait_for_function("() => navigator.serviceWorker.controller !== null")
                page.reload()
                page.wait_for_selector("#history-table[data-rendered]")
                warm_ms.append(page.evaluate(table_js))
                context.close()
            live_ms = live_latency(browser, services, loop, url.rstrip("/"), args.live) if args.live else []
            browser.close()
        server.should_exit = True
        thread.join(timeout=10)
    print(
        json.dumps(
            {
                "bench": "webapp_first_load",
                "signals": args.signals,
                "runs": args.runs,
                "transferred_bytes": transferred,
                "decoded_bytes": decoded,
                "requests": requests,
                "static_transferred_bytes": static_transferred,
                "static_decoded_bytes": static_decoded,
                "table_ms_p50": round(statistics.median(cold_ms), 1),
                "table_ms_max": round(max(cold_ms), 1),
                "warm_table_ms_p50": round(statistics.median(warm_ms), 1),
                "api_ms_p50": {k: round(statistics.median(v), 1) for k, v in sorted(api_ms.items())},
                "live_signals": len(live_ms),
                "live_ms_p50": pct(live_ms, 50) if live_ms else None,
                "live_ms_p99": pct(live_ms, 99) if live_ms else None,
                "live_ms_max": round(max(live_ms), 1) if live_ms else None,
                "machine": f"{platform.machine()}, {platform.python_version()}",
            }
        )
    )


if __name__ == "__main__":
    main()
