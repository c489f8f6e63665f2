"""The web app in a real browser: track record, verify-it-yourself, checkpoints kept across visits,
offline shell, the canonical encoding against Python's, screenshots at both sizes, axe-core."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tradesignals.domain.ledger import GENESIS, Chain

from .conftest import CHROMIUM, PLAN, Site, critical_axe_violations

pytestmark = pytest.mark.browser

Serve = Callable[..., Site]
Shots = Callable[[Any, str], list[Any]]


def ledger_size(site: Site) -> int:
    return len(httpx.get(f"{site.url}/api/ledger", params={"limit": 5000}).json()["entries"])


def test_root_serves_the_app_and_never_shadows_the_api(serve: Serve) -> None:
    site = serve()
    for path in ("/", "/verify", "/backtests/some-id"):
        r = httpx.get(site.url + path)
        assert r.status_code == 200 and 'id="main"' in r.text, path
    assert httpx.get(site.url + "/api/nope").json() == {"detail": "Not Found"}
    assert httpx.get(site.url + "/api/health").json()["mode"] == "embedded"
    assert httpx.get(site.url + "/openapi.json").json()["info"]["title"] == "tradesignals"
    metrics = httpx.get(site.url + "/metrics")  # the operators' page, never the app's shell
    assert metrics.status_code == 401 and metrics.headers["content-type"].startswith("application/json")
    sw = httpx.get(site.url + "/sw.js")
    assert sw.status_code == 200 and "javascript" in sw.headers["content-type"]
    manifest = httpx.get(site.url + "/manifest.webmanifest").json()
    assert {i["sizes"] for i in manifest["icons"]} >= {"192x192", "512x512"}
    assert httpx.get(site.url + "/nothing.js").status_code == 404


def test_anonymous_track_record_shows_closed_signals_and_no_open_one(
    browser: Any, serve: Serve, shots: Shots
) -> None:
    site = serve()
    page = browser.new_page()
    page.goto(site.url + "/")
    page.wait_for_selector("#history-table[data-rendered]")
    rows = page.locator("#history-table tbody tr")
    closed = [p for p in PLAN if p[3] != "open"]
    assert rows.count() == len(closed)
    text = page.locator("#history-table").inner_text()
    assert "NVDA" not in text  # the open signal
    for symbol in {p[0] for p in closed}:
        assert symbol in text
    assert "not filled" in text and "+1.90 R" in text
    page.wait_for_selector("form.filters[data-ready]")
    summary = httpx.get(site.url + "/api/history/summary").json()["overall"]
    tiles = page.locator(".tiles").inner_text()
    assert f"{summary['hit_rate'] * 100:.1f} %" in tiles
    assert f"{summary['net_profit_factor']:.2f}" in tiles
    assert page.locator("svg.chart circle").count() == len(summary["reliability"])
    # Filters: the type filter reloads both the table and the figures.
    page.select_option("#f-type", "day")
    page.wait_for_url(re.compile(r"\?type=day"))
    page.wait_for_selector("#history-table[data-rendered] caption:has-text('filtered')")
    page.wait_for_selector("form.filters[data-ready]")
    assert page.locator("#history-table tbody tr").count() == sum(1 for p in closed if p[1] == "day")
    assert critical_axe_violations(page) == []
    shots(page, "track-record")


def test_verify_page_reports_the_chain_verified(browser: Any, serve: Serve, shots: Shots) -> None:
    site = serve()
    n = ledger_size(site)
    page = browser.new_page()
    page.goto(site.url + "/verify")
    page.wait_for_selector("#verify-result [data-state]", timeout=20_000)
    result = page.locator("#verify-result").inner_text()
    assert f"Verified {n} entries" in result, result
    checks = page.locator(".checks").inner_text()
    assert "1 signed checkpoints chain together, each signature checked (Ed25519)" in checks, checks
    assert "now kept in this browser" in checks
    assert critical_axe_violations(page) == []
    shots(page, "verify")


def test_a_changed_row_is_named_and_a_rewrite_contradicts_the_kept_checkpoint(
    browser: Any, serve: Serve, shots: Shots
) -> None:
    site = serve()
    context = browser.new_context()
    page = context.new_page()
    page.goto(site.url + "/verify")
    page.wait_for_selector("#verify-result [data-state=verified]")
    kept = page.evaluate("() => JSON.parse(localStorage.getItem('ts.kept-checkpoints.v1'))")
    assert [c["number"] for c in kept] == [1]

    # A loss turned into a win in the database, hashes left alone: the chain breaks at that entry.
    closed = [e for e in site.services.signals.ledger(0, None, 1000) if e.kind == "closed"]
    target = closed[1]
    site.tamper(target.seq, {**dict(target.data or {}), "net_r": 2.0})
    page.goto(site.url + "/verify")
    page.wait_for_selector("#verify-result [data-state=broken]")
    result = page.locator("#verify-result").inner_text()
    assert result.startswith(f"✘ Entry {target.seq} does not match"), result
    assert page.locator("[data-first-bad]").get_attribute("data-first-bad") == str(target.seq)
    shots(page, "verify-broken")

    # The same edit with every later hash recomputed: a valid chain, which only the checkpoint kept
    # in this browser on the first visit contradicts.
    site.tamper(target.seq, {**dict(target.data or {}), "net_r": 2.0}, rehash=True)
    page.goto(site.url + "/verify")
    page.wait_for_selector("#verify-result [data-state=contradicted]")
    text = page.locator("#verify-result").inner_text()
    assert "this ledger rewrote history after checkpoint 1" in text, text
    # Every other page says so too, from the per-visit check of the kept checkpoints.
    page.goto(site.url + "/")
    banner = page.locator(".contradiction-banner")
    banner.wait_for()
    assert "this ledger rewrote history after checkpoint 1" in banner.inner_text()
    context.close()


def chain_page(entries: list[Any], ensure_ascii: bool) -> str:
    """A ledger page as the API writes it (Python's json: floats in repr form)."""
    body = {
        "genesis": GENESIS,
        "entries": [
            {
                "seq": e.seq,
                "signal_id": e.signal_id,
                "kind": e.kind,
                "at": e.at.isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "data": dict(e.data),
                "sealed": False,
                "prev_hash": e.prev_hash,
                "hash": e.hash,
            }
            for e in entries
        ],
        "next_from": None,
    }
    return json.dumps(body, ensure_ascii=ensure_ascii, indent=1 if ensure_ascii else None)


TRICKY: list[dict[str, Any]] = [
    {"a": 5.0, "b": 5, "c": 0.1, "d": 1e22, "e": 1e-7, "f": 1e16, "g": 1e15, "h": 0.0001, "i": 0.00001},
    {
        "neg": -0.0,
        "big": 2**63 - 1,
        "huge": 12345678901234567890,
        "x": 123456789.125,
        "y": -2.5e-300,
        "z": 1.7976931348623157e308,
    },
    {"text": '→ é 🚀 "q" \\ \n\t\u0001\u007f\u2028', "é": 1, "z": 2, "ä": [True, False, None, [], {}]},
    {"\uffff": "bmp", "\U0001f600": "astral", "nested": {"b": [1.5, {"y": 2.0, "x": 3}], "a": "A"}},
]


@pytest.mark.parametrize("ensure_ascii", [False, True])
def test_the_browser_hashes_byte_for_byte_as_python(browser: Any, serve: Serve, ensure_ascii: bool) -> None:
    """Floats in repr form (5.0 vs 5, 1e+22, 1e-07), big integers, escapes, non-ASCII and key order by
    code point: the page verifies a chain Python built, and names the entry whose 5.0 became 5."""
    site = serve()
    chain = Chain()
    at = datetime(2026, 1, 5, 15, 0, 0, 123456, tzinfo=UTC)
    entries = [chain.append(f"sig{i}", "closed", at, data) for i, data in enumerate(TRICKY)]
    good = chain_page(entries, ensure_ascii)
    context = browser.new_context()
    served = {"body": good}
    context.route(
        "**/api/ledger?*", lambda route: route.fulfill(body=served["body"], content_type="application/json")
    )
    context.route(
        "**/api/ledger/checkpoints?*",
        lambda route: route.fulfill(json={"checkpoints": [], "next_from": None}),
    )
    page = context.new_page()
    page.goto(site.url + "/verify")
    page.wait_for_selector("#verify-result [data-state]")
    assert f"Verified {len(TRICKY)} entries" in page.locator("#verify-result").inner_text()

    served["body"] = good.replace('"a": 5.0', '"a": 5').replace('"a":5.0', '"a":5')
    assert served["body"] != good
    page.goto(site.url + "/verify")
    page.wait_for_selector("#verify-result [data-state=broken]")
    assert "Entry 1 does not match" in page.locator("#verify-result").inner_text()
    context.close()


def test_offline_the_shell_and_the_last_track_record_render(browser: Any, serve: Serve, shots: Shots) -> None:
    site = serve()
    context = browser.new_context()
    page = context.new_page()
    page.goto(site.url + "/")
    page.wait_for_selector("#history-table[data-rendered]")
    page.evaluate("() => navigator.serviceWorker.ready.then(() => true)")
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    online_rows = page.locator("#history-table tbody tr").count()

    context.set_offline(True)
    page.reload()
    page.wait_for_selector("#history-table[data-rendered]")
    assert page.locator("#history-table tbody tr").count() == online_rows
    assert "Offline: showing the track record saved on" in page.locator(".offline-note").inner_text()
    assert page.locator("#offline").is_visible()
    # A page with live data says it is offline, in words.
    page.click("nav >> text=Verify")
    page.wait_for_selector("#verify-result .error")
    assert "offline" in page.locator("#verify-result").inner_text().lower()
    shots(page, "offline")
    context.close()


def test_the_backtest_page_renders_the_contract(browser: Any, serve: Serve, shots: Shots) -> None:
    """The page against the API's documented shapes, served by the browser's router (edge cases:
    an unknown id); ``test_the_backtest_page_renders_a_real_backtest`` runs it on the real routes."""
    site = serve()
    context = browser.new_context()
    item = {
        "id": "20260105T150000Z-demo",
        "start": "2025-01-02T00:00:00Z",
        "end": "2025-12-31T00:00:00Z",
        "profile": "moderate",
        "data": "demo.csv.gz",
        "model": "m-1",
        "in_sample": False,
        "trades": 42,
        "total_return": 0.123,
        "sharpe": 1.1,
        "max_drawdown": 0.08,
    }
    summary = {
        "trades": 42,
        "total_return": 0.123,
        "sharpe": 1.1,
        "max_drawdown": 0.08,
        "in_sample": False,
        "settings": {"from": "2025-01-02", "to": "2025-12-31", "profile": "moderate"},
    }
    equity = [
        {
            "timestamp": f"2025-01-{d:02d}T00:00:00Z",
            "equity": 100000 + 500 * d,
            "cash": 0.0,
            "exposure": 0.5,
            "benchmark": None,
        }
        for d in range(1, 20)
    ]

    def backtests(route: Any) -> None:
        path = route.request.url.split("/api/backtests", 1)[1]
        body = {"": [item], f"/{item['id']}": summary, f"/{item['id']}/equity": equity}.get(path)
        if body is None:
            route.fulfill(status=404, json={"detail": f"no backtest {path!r}"})
        else:
            route.fulfill(json=body)

    context.route("**/api/backtests**", backtests)
    page = context.new_page()
    page.goto(site.url + "/backtests")
    page.click(f"text={item['id']}")
    page.wait_for_selector("svg.chart path.equity")
    assert "total return" in page.locator("dl.facts").first.inner_text()
    assert critical_axe_violations(page) == []
    shots(page, "backtest")
    page.goto(site.url + "/backtests/nope")
    assert "no backtest" in page.locator(".error").inner_text()
    context.close()


def test_the_app_is_installable(playwright: Any, serve: Serve, tmp_path: Path) -> None:
    """Chromium's own installability check (manifest, icons, service worker) finds nothing missing,
    in a persistent profile (Playwright's usual contexts are off the record, never installable)."""
    site = serve()
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=str(CHROMIUM), args=["--disable-gpu"]
    )
    page = context.new_page()
    page.goto(site.url + "/")
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    cdp = context.new_cdp_session(page)
    manifest = cdp.send("Page.getAppManifest")
    assert manifest["url"].endswith("/manifest.webmanifest") and not manifest["errors"], manifest
    errors = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
    assert errors == [], errors
    context.close()


def test_a_forged_checkpoint_and_dropped_entries_are_named(browser: Any, serve: Serve) -> None:
    """The page really checks Ed25519 (one altered signature digit is refused) and, with a checkpoint
    kept, a ledger served without its newest entries (still a valid chain) is called out."""
    site = serve()
    context = browser.new_context()
    page = context.new_page()
    page.goto(site.url + "/verify")
    page.wait_for_selector("#verify-result [data-state=verified]")

    def forged(route: Any) -> None:
        body = route.fetch().json()
        sig = body["checkpoints"][0]["signature"]
        body["checkpoints"][0]["signature"] = ("0" if sig[0] != "0" else "1") + sig[1:]
        route.fulfill(json=body)

    context.route("**/api/ledger/checkpoints?*", forged)
    page.goto(site.url + "/verify")
    page.wait_for_selector("#verify-result [data-state=contradicted]")
    assert "checkpoint 1: bad signature (forged or altered)" in page.locator("#verify-result").inner_text()
    context.unroute("**/api/ledger/checkpoints?*")

    n = ledger_size(site)

    def truncated(route: Any) -> None:
        body = route.fetch().json()
        body["entries"] = [e for e in body["entries"] if e["seq"] <= n - 2]
        route.fulfill(json=body)

    context.route("**/api/ledger?*", truncated)
    page.goto(site.url + "/verify")
    page.wait_for_selector("#verify-result [data-state=contradicted]")
    text = page.locator("#verify-result").inner_text()
    assert f"this ledger dropped its newest entries after checkpoint 1: it ends at seq {n - 2}" in text, text
    context.close()


def test_the_backtest_page_renders_a_real_backtest(
    browser: Any, serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page against the real routes: a placeholder-rule backtest written by the CLI under TS_HOME."""
    import pandas as pd
    from typer.testing import CliRunner

    from tradesignals.cli import app
    from tradesignals.domain.market import Timeframe
    from tradesignals.marketdata.feeds.simulator import SimulatorFeed

    site = serve()
    feed = SimulatorFeed(4, seed=11, speed=float("inf"), timeframe=Timeframe.D1, emit="bars")
    rows = [
        (
            pd.Timestamp(b.ts, tz="UTC").strftime("%Y-%m-%d"),
            b.symbol,
            b.open,
            b.high,
            b.low,
            b.close,
            b.volume,
        )
        for b in feed.history(300)
    ]
    data = tmp_path / "sim.csv"
    pd.DataFrame(rows, columns=["date", "symbol", "open", "high", "low", "close", "volume"]).to_csv(
        data, index=False
    )
    monkeypatch.setenv("TS_HOME", str(site.services.settings.home))
    monkeypatch.setenv("TS_MODEL", "rule")
    result = CliRunner().invoke(app, ["backtest", "--data", str(data), "--profile", "aggressive"])
    assert result.exit_code == 0, result.output
    (backtest_id,) = [p.name for p in (site.services.settings.home / "backtests").iterdir()]
    summary = httpx.get(f"{site.url}/api/backtests/{backtest_id}", timeout=10).json()

    page = browser.new_context().new_page()
    page.goto(site.url + "/backtests")
    page.click(f"text={backtest_id}")
    page.wait_for_selector("svg.chart path.equity")
    facts = page.locator("dl.facts").first.inner_text()
    assert "total return" in facts
    assert f"{summary['trades']}" in page.locator("main").inner_text()
    page.context.close()
