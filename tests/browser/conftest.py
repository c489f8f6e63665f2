"""Browser tests: Playwright (Python) driving Debian's Chromium against the real app on a loopback port.

The app is the API (embedded mode, SQLite in the test's tmp folder) served by uvicorn in a thread,
with the built web app at ``/`` and a seeded track record: faster than ``tradesignals demo`` and
deterministic. Chromium is ``/usr/bin/chromium`` (``apt-get install chromium``; Playwright's own
browser downloads do not work here): missing, these tests skip — or fail under
``TS_REQUIRE_SERVICES=1`` (CI, whose ``.ci/run`` installs it), so CI never passes without them.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import uvicorn

from tradesignals.api.app import create_app
from tradesignals.config import load_settings
from tradesignals.domain.ledger import entry_body, entry_hash
from tradesignals.domain.outcomes import Outcome, OutcomeKind
from tradesignals.domain.signals import Direction, Signal, SignalEvent, SignalEventKind, SignalType
from tradesignals.engine.checkpointer import Checkpointer
from tradesignals.wiring import Services, build_services

CHROMIUM = Path(os.environ.get("TS_CHROMIUM", "/usr/bin/chromium"))
REPO = Path(__file__).resolve().parents[2]
AXE = REPO / "web" / "node_modules" / "axe-core" / "axe.min.js"
WEB_BUILD = REPO / "src" / "tradesignals" / "web" / "index.html"
T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
SIZES = {"phone": (390, 844), "desktop": (1280, 800)}

pytestmark = pytest.mark.browser


def _missing(what: str) -> None:
    if os.environ.get("TS_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{what} and TS_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(what)


# Module scope, not session: sync Playwright keeps an event loop running on the main thread while it
# is open, which would break every later test that calls asyncio.run.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        _missing(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    if not WEB_BUILD.is_file() or not AXE.is_file():
        _missing("the web app is not built (run make)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Any) -> Iterator[Any]:
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--disable-gpu"])
    yield b
    b.close()


# --- the seeded app ----------------------------------------------------------------------------


def make_signal(i: int, symbol: str, type: SignalType = SignalType.SWING, confidence: float = 0.6) -> Signal:
    created = T0 + timedelta(hours=i)
    return Signal(
        id=f"{int(created.timestamp() * 1000):012x}{i:010x}",
        symbol=symbol,
        type=type,
        direction=Direction.LONG if i % 3 else Direction.SHORT,
        entry=100.0,
        stop=95.0 if i % 3 else 105.0,
        targets=(105.0, 110.0, 115.0) if i % 3 else (95.0, 90.0, 85.0),
        confidence=confidence,
        created_at=created,
        expires_at=created + timedelta(days=3),
        model_version="browser-1",
        reasons=("trend → up", "volume"),
        decided_at=created - timedelta(seconds=30),
        base_rate=0.5,
    )


def outcome_of(s: Signal, at: datetime, net_r: float | None) -> Outcome:
    """``s`` closed at ``at`` with ``net_r`` (filled at 100, 1R = 5 %, costs 0.1 R); None: not filled."""
    kind = (
        OutcomeKind.NOT_FILLED
        if net_r is None
        else OutcomeKind.TARGET
        if net_r > 0.5
        else OutcomeKind.STOP
        if net_r < -0.5
        else OutcomeKind.EXPIRED
    )
    gross_r = None if net_r is None else net_r + 0.1
    sign = 1 if s.direction is Direction.LONG else -1
    return Outcome(
        signal_id=s.id,
        symbol=s.symbol,
        outcome=kind,
        target_index=0 if kind is OutcomeKind.TARGET else None,
        decided_at=s.decided_at or s.created_at,
        filled_at=None if net_r is None else s.created_at + timedelta(minutes=1),
        fill_price=None if net_r is None else 100.0,
        first_price=94.0 if net_r is None else None,
        exit_price=None if gross_r is None else 100.0 + sign * 5 * gross_r,
        gross_pnl_pct=None if gross_r is None else 5 * gross_r,
        costs_pct=None if net_r is None else 0.5,
        net_pnl_pct=None if net_r is None else 5 * net_r,
        gross_r=gross_r,
        net_r=net_r,
        mfe_pct=None if gross_r is None else max(0.0, 5 * gross_r),
        mae_pct=None if gross_r is None else min(0.0, 5 * gross_r),
        holding_seconds=0.0 if net_r is None else (at - s.created_at).total_seconds(),
        closed_at=at,
    )


# (symbol, type, confidence, net R; None: not filled; "open": stays open)
Plan = list[tuple[str, SignalType, float, float | str | None]]
PLAN: Plan = [
    ("AAPL", SignalType.SWING, 0.62, 1.9),
    ("MSFT", SignalType.DAY, 0.55, -1.1),
    ("AAPL", SignalType.SWING, 0.58, 0.3),
    ("TSLA", SignalType.SWING, 0.66, None),
    ("BTC-USD", SignalType.DAY, 0.52, -1.1),
    ("NVDA", SignalType.SWING, 0.71, "open"),
]


def seed(services: Services, plan: Plan = PLAN) -> list[Signal]:
    """The plan's signals, closed over two months (one never filled, one left open), then a checkpoint."""
    signals = [make_signal(i, sym, typ, conf) for i, (sym, typ, conf, _) in enumerate(plan)]
    for s in signals:
        services.signals.add(s)
    for i, (s, (_, _, _, net)) in enumerate(zip(signals, plan, strict=True)):
        if net == "open":
            services.signals.add_event(
                SignalEvent(s.id, SignalEventKind.UPDATED, s.created_at, {"stop": 96.0})
            )
            continue
        assert not isinstance(net, str)
        out = outcome_of(s, datetime(2026, 1, 20, tzinfo=UTC) + timedelta(days=7 * i), net)
        services.signals.set_status(s.id, out.status, out.to_event())
    assert services.signer is not None
    Checkpointer(services.checkpoints, services.signer).checkpoint()
    return signals


@dataclass
class Site:
    url: str
    services: Services
    signals: list[Signal]

    def tamper(self, seq: int, data: dict[str, Any], *, rehash: bool = False) -> None:
        """Change entry ``seq``'s data in the database, as someone with the table owner's rights
        would (triggers dropped); ``rehash``: recompute every hash from there on, so the chain is
        valid again and only a kept checkpoint can tell."""
        engine = self.services.db
        with engine.begin() as conn:
            for name in (
                conn.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type='trigger' AND tbl_name='signal_events'"
                )
                .scalars()
                .all()
            ):
                conn.exec_driver_sql(f"DROP TRIGGER {name}")
            events = sa.table(
                "signal_events",
                sa.column("seq"),
                sa.column("signal_id"),
                sa.column("kind"),
                sa.column("at"),
                sa.column("data", sa.JSON),
                sa.column("prev_hash"),
                sa.column("hash"),
            )
            conn.execute(sa.update(events).where(events.c.seq == seq).values(data=data))
            if not rehash:
                return
            prev_hash = ""
            for e in self.services.signals.ledger(seq, None, 100_000):
                prev = e.prev_hash if e.seq == seq else prev_hash
                body = entry_body(e.seq, e.signal_id, e.kind, e.at, data if e.seq == seq else (e.data or {}))
                prev_hash = entry_hash(prev, body)
                conn.execute(
                    sa.update(events).where(events.c.seq == e.seq).values(prev_hash=prev, hash=prev_hash)
                )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_api(
    services: Services,
) -> tuple[str, uvicorn.Server, threading.Thread, asyncio.AbstractEventLoop]:
    """The API role over ``services`` under uvicorn on a free loopback port, on an event loop of its
    own thread (returned, so a test can publish on the bus or the hub it serves); waits until it
    listens. Stop it with ``server.should_exit = True`` and join the thread."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(services, roles=frozenset({"api"})), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", server, thread, loop


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Site]]:
    """``serve()`` starts the seeded app on a free loopback port; stopped after the test."""
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(plan: Plan = PLAN) -> Site:
        settings = load_settings(home=tmp_path / f"home{len(running)}", mode="embedded")
        # Off this thread: sync Playwright keeps an event loop running on it.
        with ThreadPoolExecutor(1) as pool:
            services = pool.submit(asyncio.run, build_services(settings)).result()
        signals = seed(services, plan)
        url, server, thread, _loop = start_api(services)
        running.append((server, thread))
        return Site(url, services, signals)

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def shots(tmp_path: Path) -> Callable[[Any, str], list[Path]]:
    """``shots(page, name)`` saves full-page screenshots at 390×844 and 1280×800 under tmp_path."""

    def take(page: Any, name: str) -> list[Path]:
        return save_shots(page, tmp_path / "screens", name)

    return take


def save_shots(page: Any, folder: Path, name: str) -> list[Path]:
    """Full-page screenshots of ``page`` at 390×844 and 1280×800 in ``folder`` (the viewport is left
    at the desktop size); a page wider than the phone's screen fails (nothing may need sideways
    scrolling but the tables, which scroll inside their own box)."""
    out = []
    for label, (w, h) in SIZES.items():
        page.set_viewport_size({"width": w, "height": h})
        path = folder / f"{name}-{label}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 1000
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} at {label}: {overflow}px wider than the screen"
        out.append(path)
    return out


def critical_axe_violations(page: Any) -> list[str]:
    """axe-core (the npm package, read from web/node_modules) run in the page: critical violations."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']}: {v['help']} ({len(v['nodes'])} nodes)"
        for v in result["violations"]
        if v["impact"] == "critical"
    ]


# --- a live site: the API role with a loop the test can publish on ---------------------------------


def calm_bars(symbol: str, days: int, last: datetime) -> Any:
    """``days`` daily bars of ``symbol`` ending the day before ``last``: small alternating moves
    (annualised volatility ~16 %, inside every profile's cap), real candles for the chart."""
    import numpy as np
    import pandas as pd

    from tradesignals.domain.market import to_ns

    rows = []
    close = 100.0
    first = (last - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    for i in range(days):
        open_ = close
        close = 100.0 * (1.01 if i % 2 else 1.0)
        rows.append(
            (
                to_ns(first + timedelta(days=i)),
                symbol,
                open_,
                max(open_, close) + 0.4,
                min(open_, close) - 0.4,
                close,
                1e4,
            )
        )
    frame = pd.DataFrame(rows, columns=["ts", "symbol", "open", "high", "low", "close", "volume"])
    frame["ts"] = frame["ts"].astype(np.int64)
    return frame


def live_signal(i: int, symbol: str, decided: datetime) -> Signal:
    """An open swing signal every profile accepts (rank 0.95, edge 10 points, stop 5 % away)."""
    now = datetime.now(UTC)
    return Signal(
        id=f"{int(now.timestamp() * 1000):012x}{i:010x}",
        symbol=symbol,
        type=SignalType.SWING,
        direction=Direction.LONG,
        entry=100.0,
        stop=95.0,
        targets=(105.0, 110.0, 115.0),
        confidence=0.6,
        created_at=now,
        expires_at=now + timedelta(days=3),
        model_version="browser-live-1",
        reasons=("trend → up",),
        decided_at=decided,
        base_rate=0.5,
        confidence_rank=0.95,
    )


@dataclass
class LiveSite:
    url: str
    services: Services
    loop: asyncio.AbstractEventLoop
    decided: datetime

    def publish_signal(self, signal: Signal) -> None:
        """Store ``signal`` and publish it on the bus, as the engine does (``EngineService._emit``)."""
        from tradesignals.bus import topics
        from tradesignals.bus.codec import encode

        self.services.signals.add(signal)
        asyncio.run_coroutine_threadsafe(
            self.services.bus.publish(topics.SIGNALS, signal.symbol, encode(signal)), self.loop
        ).result(timeout=10)

    def publish_live(self, signal_id: str, data: dict[str, Any]) -> None:
        """One mark on ``signal:{id}:live`` as the engine writes it (``domain.live.LiveUpdate`` on
        the bus topic ``signal.live``), relayed by the node to the channel."""
        from tradesignals.bus import topics
        from tradesignals.bus.codec import encode
        from tradesignals.domain.live import LiveUpdate

        update = LiveUpdate(
            signal_id=signal_id,
            symbol=str(data.get("symbol", "CALM")),
            ts_ns=int(data.get("ts_ns", 0)),
            price=float(data["price"]),
            filled=bool(data["filled"]),
            unrealised_net_pct=data.get("unrealised_net_pct"),
            unrealised_net_r=data.get("unrealised_net_r"),
            distance_to_stop_pct=float(data["distance_to_stop_pct"]),
            distance_to_targets_pct=tuple(data["distance_to_targets_pct"]),
            probability=data.get("probability"),
            model_version=str(data.get("model_version", "test")),
        )
        asyncio.run_coroutine_threadsafe(
            self.services.bus.publish(topics.SIGNAL_LIVE, update.symbol, encode(update)), self.loop
        ).result(timeout=10)

    def publish_hub(self, channel: str, type_: str, data: dict[str, Any]) -> None:
        """A message straight onto one of this node's WebSocket channels."""
        asyncio.run_coroutine_threadsafe(self.services.hub.publish(channel, type_, data), self.loop).result(
            timeout=10
        )

    def subscribers(self, channel: str) -> int:
        return int(self.services.hub.subscriber_count(channel))


@contextmanager
def live_site(home: Path, symbols: tuple[str, ...] = ("CALM",), days: int = 90) -> Iterator[LiveSite]:
    """The API role under uvicorn on a loop of its own thread, with ``symbols``' daily bars stored."""
    from tradesignals.domain.market import Timeframe

    settings = load_settings(home=home, mode="embedded")
    with ThreadPoolExecutor(1) as pool:
        services = pool.submit(asyncio.run, build_services(settings)).result()
    decided = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for symbol in symbols:
        services.bars.upsert(Timeframe.D1, calm_bars(symbol, days, decided))
    url, server, thread, loop = start_api(services)
    try:
        yield LiveSite(url, services, loop, decided)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        if not thread.is_alive():
            loop.close()
