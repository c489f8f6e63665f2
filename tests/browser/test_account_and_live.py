"""The signed-in product in a real browser, one user's whole path on one live site (module scope: the
browser and the server start once): register → questionnaire → local (test-mode) checkout → a signal
published on the bus appears on the live page over the WebSocket without a reload → its detail page
draws the chart with entry, stop and target lines and the decision marker → one signal upgraded → its
live panel renders the updates of ``signal:{id}:live``. Screenshots at 390×844 and 1280×800 of each
page, axe-core on each, and the API's errors shown in words."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tradesignals.domain.entitlements import SIGNALS_CHANNEL, live_channel

from .conftest import LiveSite, critical_axe_violations, live_signal, live_site, save_shots

pytestmark = pytest.mark.browser

EMAIL = "trader@example.com"
PASSWORD = "a long and unusual passphrase 42"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSite]:
    with live_site(tmp_path_factory.mktemp("live-home")) as s:
        yield s


@pytest.fixture(scope="module")
def screens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screens")


@pytest.fixture(scope="module")
def user(browser: Any, site: LiveSite) -> Iterator[Any]:
    """One browser context (one person's browser) for the module's tests, in order."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    yield context
    context.close()


def check_page(page: Any, screens: Path, name: str) -> None:
    assert critical_axe_violations(page) == [], name
    save_shots(page, screens, name)


def test_register_answer_and_pay_in_test_mode(user: Any, site: LiveSite, screens: Path) -> None:
    page = user.new_page()
    page.goto(site.url + "/register")
    # A weak password: the API's reason, in words.
    page.fill("#register-form-email", EMAIL)
    page.fill("#register-form-password", "password")
    page.click("#register-form button[type=submit]")
    error = page.locator("#register-form .error")
    error.wait_for()
    assert "password" in error.inner_text().lower() and "422" not in error.inner_text()
    check_page(page, screens, "register")

    page.fill("#register-form-password", PASSWORD)
    page.click("#register-form button[type=submit]")
    page.wait_for_url("**/questionnaire")
    page.wait_for_selector("#questionnaire fieldset")
    questions = httpx.get(site.url + "/api/risk/questionnaire").json()["questions"]
    assert page.locator("#questionnaire fieldset").count() == len(questions)
    # Unanswered: the server's reason, per question, in words.
    page.click("#questionnaire button[type=submit]")
    page.locator("#questionnaire .error").wait_for()
    assert questions[0]["id"] in page.locator("#questionnaire .error").inner_text()
    answers = {q["id"]: q["options"][min(2, len(q["options"]) - 1)]["id"] for q in questions}
    for qid, option in answers.items():
        page.check(f"input[name='{qid}'][value='{option}']")
    check_page(page, screens, "questionnaire")
    page.click("#questionnaire button[type=submit]")
    expected = httpx.post(site.url + "/api/risk/assess", json={"answers": answers}).json()["profile"]["name"]
    saved = page.locator("[data-profile]")
    saved.wait_for()
    assert saved.get_attribute("data-profile") == expected

    page.click("text=Go premium to see live signals fitted to it")
    page.wait_for_url("**/checkout?plan=premium")
    page.click("#pay")
    page.wait_for_selector("[data-paid]")
    assert "TEST MODE" in page.locator("[data-test-mode]").inner_text()
    expect(page.locator("#nav-account")).to_have_text("Account (premium)")
    check_page(page, screens, "checkout-paid")
    page.close()


def test_a_published_signal_appears_live_without_a_reload(user: Any, site: LiveSite, screens: Path) -> None:
    page = user.pages[0] if user.pages else user.new_page()
    sent: list[str] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(str(payload))))
    page.goto(site.url + "/live")  # a new page: the session comes back from the refresh token
    page.wait_for_selector("#live-table[data-rendered]")
    state = page.locator("#ws-state[data-state=open]")
    state.wait_for()
    deadline_ok = page.wait_for_function(
        "(c) => (document.querySelector('#ws-state').dataset.channels || '').split(' ').includes(c)",
        arg=SIGNALS_CHANNEL,
    )
    assert deadline_ok
    assert page.locator("#live-table tbody tr[data-id]").count() == 0
    page.evaluate("() => { window.sameDocument = true; }")

    signal = live_signal(1, "CALM", site.decided)
    site.publish_signal(signal)
    row = page.locator(f"#live-table tr[data-id='{signal.id}']")
    row.wait_for(timeout=10_000)
    assert page.evaluate("() => window.sameDocument") is True  # no reload
    assert "fresh" in (row.get_attribute("class") or "")  # the visual cue
    assert "New signal: CALM long" in page.locator("#live-announce").inner_text()
    cells = row.locator("td").all_inner_texts()
    assert cells[0] == "CALM" and cells[2] == "100.00" and cells[3] == "95.00"
    assert "%" in cells[6] and cells[6] != "–"  # sized for the capital
    # The size is the server's: a new capital refetches and re-sizes.
    before = cells[6]
    page.fill("#capital", "50000")
    page.dispatch_event("#capital", "change")
    page.wait_for_function(
        "([id, before]) => document.querySelector(`tr[data-id='${id}'] td:nth-child(7)`).innerText !== before",
        arg=[signal.id, before],
    )
    assert page.locator("#sound").is_checked() is False  # sound is off unless asked for

    # The connection drops and a signal is published meanwhile: the client reconnects (back-off),
    # resumes each channel with `since` and refetches, so the signal shows without a reload.
    page.evaluate("() => [...window.tsSockets][0].kick()")
    page.locator("#ws-state[data-state=closed]").wait_for()
    missed = live_signal(3, "CALM", site.decided)
    site.publish_signal(missed)
    page.locator(f"#live-table tr[data-id='{missed.id}']").wait_for(timeout=15_000)
    page.locator("#ws-state[data-state=open]").wait_for()
    resumed = [json.loads(f) for f in sent if '"subscribe"' in f and '"since"' in f]
    assert {c for f in resumed for c in f["channels"]} >= {SIGNALS_CHANNEL}, sent
    assert page.evaluate("() => window.sameDocument") is True

    # The user's own channel carries signals already fitted and sized (the ws work): merged at once,
    # no REST call; an outcome on the shared feed takes its row away, no REST call either ...
    pair = httpx.post(f"{site.url}/api/auth/token", data={"username": EMAIL, "password": PASSWORD}).json()
    auth = {"Authorization": f"Bearer {pair['access_token']}"}
    me = httpx.get(f"{site.url}/api/me", headers=auth).json()
    sized = live_signal(4, "CALM", site.decided)
    site.services.signals.add(sized)
    fitted = httpx.get(
        f"{site.url}/api/signals",
        params={"profile": me["risk_profile"], "capital": 50000, "status": "open"},
        headers=auth,
    ).json()["items"]
    (payload,) = [i for i in fitted if i["id"] == sized.id]
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/signals" in r.url else None)
    site.publish_hub(f"user:{me['id']}:signals", "signal", payload)
    page.locator(f"#live-table tr[data-id='{sized.id}']").wait_for()
    site.publish_hub(SIGNALS_CHANNEL, "outcome", {"signal_id": sized.id, "kind": "closed", "outcome": "stop"})
    page.locator(f"#live-table tr[data-id='{sized.id}']").wait_for(state="detached")
    # An ``update`` on the user's own channel: a fill is merged into the row, a close (the row,
    # closed, with its outcome) takes it away; no REST call either.
    closing = {**payload, "id": live_signal(5, "CALM", site.decided).id}
    site.publish_hub(f"user:{me['id']}:signals", "signal", closing)
    page.locator(f"#live-table tr[data-id='{closing['id']}']").wait_for()
    filled = {**closing, "filled_at": "2026-01-02T15:00:00Z", "fill_price": 100.5}  # its fill: merged
    site.publish_hub(f"user:{me['id']}:signals", "update", filled)
    page.locator(f"#live-table tr[data-id='{closing['id']}'][data-filled='true']").wait_for()
    closed = {**closing, "status": "target_hit", "outcome": "target", "net_r": 0.99}
    site.publish_hub(f"user:{me['id']}:signals", "update", closed)
    page.locator(f"#live-table tr[data-id='{closing['id']}']").wait_for(state="detached")
    assert asked == []
    check_page(page, screens, "live")


def test_the_detail_page_draws_the_plan_on_the_chart(user: Any, site: LiveSite, screens: Path) -> None:
    page = user.pages[0]
    signal_id = page.locator("#live-table tr[data-id]").first.get_attribute("data-id")
    page.click(f"tr[data-id='{signal_id}'] a")
    page.wait_for_url(f"**/signals/{signal_id}")
    page.wait_for_selector("#signal-chart[data-drawn]")
    lines = page.evaluate(
        "(id) => window.tsCharts[id].series.priceLines().map((l) => l.options()).map((o) => [o.title, o.price])",
        signal_id,
    )
    assert sorted(lines) == sorted(
        [["entry", 100.0], ["stop", 95.0], ["target 1", 105.0], ["target 2", 110.0], ["target 3", 115.0]]
    )
    # Every level is inside the drawn pane, though the bars never came near the stop or the targets.
    inside = page.evaluate(
        """(id) => { const c = window.tsCharts[id]; const h = c.chart.paneSize().height;
            return c.series.priceLines().map((l) => {
                const y = c.series.priceToCoordinate(l.options().price); return y !== null && y >= 0 && y <= h; }); }""",
        signal_id,
    )
    assert inside == [True] * 5
    markers = page.evaluate("(id) => window.tsCharts[id].markers.markers()", signal_id)
    assert [(m["id"], m["shape"]) for m in markers] == [("decision", "arrowUp")]
    bars = httpx.get(f"{site.url}/api/market/CALM/bars", params={"limit": 150}).json()
    assert page.evaluate("(id) => window.tsCharts[id].series.data().length", signal_id) == len(bars)
    # The decision sits on the last bar before it.
    assert markers[0]["time"] * 1000 == max(
        int(pd_ts(b["ts"])) for b in bars if pd_ts(b["ts"]) <= site.decided.timestamp() * 1000
    )
    page.wait_for_selector("main >> text=Explained by")
    # The static image (GET /api/signals/{id}/image.png, fetched with the session's token): it loads.
    page.wait_for_selector("img.signal-image", timeout=30_000)
    page.wait_for_function("() => document.querySelector('img.signal-image').naturalWidth > 0")
    assert page.evaluate("() => document.querySelector('img.signal-image').naturalHeight") > 0
    check_page(page, screens, "signal")


def test_an_upgraded_signal_shows_its_live_panel(user: Any, site: LiveSite, screens: Path) -> None:
    page = user.pages[0]
    signal_id = page.url.rsplit("/", 1)[1]
    assert page.locator("#live-panel").count() == 0  # premium sees the signal, not its live stream
    page.click("#upgrade-link")
    page.wait_for_url(f"**/checkout?signal={signal_id}")
    page.click("#pay")
    page.wait_for_selector("[data-paid]")
    assert "TEST MODE" in page.locator("[data-test-mode]").inner_text()
    page.click("text=Open the signal's live panel")
    page.wait_for_selector("#live-state[data-state=open]")
    assert site.subscribers(live_channel(signal_id)) == 1
    update = {
        "signal_id": signal_id,
        "symbol": "CALM",
        "ts_ns": int(site.decided.timestamp() * 1e9),
        "price": 102.5,
        "filled": True,
        "unrealised_net_pct": 2.38,
        "unrealised_net_r": 0.476,
        "distance_to_stop_pct": 7.32,
        "distance_to_targets_pct": [2.44, 7.32, 12.2],
        "probability": 0.57,
        "model_version": "browser-live-1",
    }
    site.publish_live(signal_id, update)
    page.wait_for_selector("#live-panel[data-updates='1']")
    assert page.locator("[data-field=price]").inner_text() == "102.50"
    assert page.locator("[data-field=pnl]").inner_text() == "+2.38 % · +0.48 R"
    assert page.locator("[data-field=probability]").inner_text() == "57.0 %"
    assert page.locator("[data-field=targets]").inner_text() == "2.44 % / 7.32 % / 12.20 %"
    site.publish_live(signal_id, {**update, "price": 96.0, "filled": True, "unrealised_net_pct": -4.1})
    page.wait_for_selector("#live-panel[data-updates='2']")
    assert page.locator("[data-field=price]").inner_text() == "96.00"
    check_page(page, screens, "signal-live")

    # The account lists the upgrade with its expiry; signing out revokes the session on the server.
    page.click("#nav-account")
    page.wait_for_selector("#account-facts")
    assert signal_id in page.locator("#upgrades").inner_text()
    assert page.locator("[data-tier]").get_attribute("data-tier") == "premium"
    check_page(page, screens, "account")
    page.click("text=Manage billing")
    page.wait_for_url("**/billing/local/portal")
    assert "TEST MODE" in page.locator("[data-test-mode]").inner_text()
    check_page(page, screens, "billing-portal")
    page.click("text=Back to your account")
    page.wait_for_selector("#account-facts")
    refresh_token = page.evaluate("() => localStorage.getItem('ts.refresh.v1')")
    page.click("#sign-out")
    page.wait_for_url(site.url + "/")
    expect(page.locator("#nav-account")).to_have_text("Sign in")
    assert page.evaluate("() => localStorage.getItem('ts.refresh.v1')") is None
    assert (
        httpx.post(site.url + "/api/auth/refresh", json={"refresh_token": refresh_token}).status_code == 401
    )


def test_two_tabs_refresh_at_once_and_the_session_survives(browser: Any, site: LiveSite) -> None:
    """Refresh tokens are single-use and a reuse revokes the family: two tabs opening together must
    take turns (the Web Lock), or the second would sign both out."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(site.url + "/signin?next=/account")
    page.fill("#signin-form-email", EMAIL)
    page.fill("#signin-form-password", PASSWORD)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#account-facts")
    tabs = [context.new_page() for _ in range(2)]
    for tab in tabs:
        tab.goto(site.url + "/account", wait_until="commit")
    for tab in tabs:
        tab.wait_for_selector("#account-facts, .error")
        assert EMAIL in tab.locator("main").inner_text(), tab.locator("main").inner_text()
    context.close()


def test_errors_are_words_for_anonymous_visitors(browser: Any, site: LiveSite, screens: Path) -> None:
    context = browser.new_context()
    page = context.new_page()
    signal = live_signal(2, "CALM", site.decided)
    site.publish_signal(signal)
    page.goto(f"{site.url}/signals/{signal.id}")
    error = page.locator("main .error")
    error.wait_for()
    assert error.inner_text() == "this signal is live: premium or an upgrade to it"
    check_page(page, screens, "signal-forbidden")
    page.goto(f"{site.url}/signals/{'0' * 22}")
    page.locator("main .error").wait_for()
    assert page.locator("main .error").inner_text() == f"no signal with id {'0' * 22}"
    page.goto(f"{site.url}/live")
    page.locator("main >> text=Live signals are for premium members").wait_for()
    check_page(page, screens, "live-anonymous")
    page.goto(f"{site.url}/signin")
    page.fill("#signin-form-email", EMAIL)
    page.fill("#signin-form-password", "not the password at all")
    page.click("#signin-form button[type=submit]")
    page.locator("#signin-form .error").wait_for()
    assert page.locator("#signin-form .error").inner_text().strip() != ""
    check_page(page, screens, "signin")
    context.close()


def pd_ts(iso: str) -> float:
    """Milliseconds since the epoch of an ISO time."""
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


def test_lagged_and_resync_frames_on_the_user_channel_make_the_page_refetch(
    browser: Any, site: LiveSite, screens: Path
) -> None:
    """Through a proxy on the page's socket (Playwright's WebSocket routing): a new signal arrives on
    ``user:{id}:signals``; ``lagged`` and ``resync`` frames for that channel (api/hub.py's shape)
    make the page ask REST; the next message after them is taken as is."""
    context = browser.new_context()
    from_server: list[dict[str, Any]] = []
    sockets: list[Any] = []

    def proxy(ws: Any) -> None:
        server = ws.connect_to_server()
        sockets.append(ws)

        def down(message: str | bytes) -> None:
            from_server.append(json.loads(message))
            ws.send(message)

        ws.on_message(lambda message: server.send(message))
        server.on_message(down)

    context.route_web_socket("**/ws", proxy)
    page = context.new_page()
    page.goto(site.url + "/signin?next=/live")
    page.fill("#signin-form-email", EMAIL)
    page.fill("#signin-form-password", PASSWORD)
    page.click("#signin-form button[type=submit]")
    page.locator("#ws-state[data-state=open]").wait_for()
    page.wait_for_selector("#live-table[data-rendered]")
    signal = live_signal(5, "CALM", site.decided)
    site.publish_signal(signal)
    page.locator(f"#live-table tr[data-id='{signal.id}']").wait_for()

    (mine,) = {
        c
        for f in from_server
        if f.get("type") == "subscribed"
        for c in f["channels"]
        if c.startswith("user:")
    }
    seq = max(f["seq"] for f in from_server if f.get("channel") == mine and "seq" in f)
    assert seq >= 1
    for frame in (
        {"type": "lagged", "channel": mine, "from_seq": seq},
        {"type": "resync", "channel": mine, "from_seq": seq},
    ):
        with page.expect_request(lambda r: "/api/signals?" in r.url):
            sockets[-1].send(json.dumps(frame))
    # After the resync, the next message (seq + 1) is taken as is: no gap, no extra refetch needed.
    later = live_signal(6, "CALM", site.decided)
    site.publish_signal(later)
    page.locator(f"#live-table tr[data-id='{later.id}']").wait_for()
    context.close()


def test_deleting_the_account_asks_first_then_erases_it(browser: Any, site: LiveSite) -> None:
    """Last in the module: the user is gone afterwards."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(site.url + "/signin?next=/account")
    page.fill("#signin-form-email", EMAIL)
    page.fill("#signin-form-password", PASSWORD)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#account-facts")
    asked: list[str] = []

    def answer(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.dismiss() if len(asked) == 1 else dialog.accept()

    page.on("dialog", answer)
    page.click("#delete-account")  # dismissed: nothing happens
    assert (
        httpx.post(site.url + "/api/auth/token", data={"username": EMAIL, "password": PASSWORD}).status_code
        == 200
    )
    page.click("#delete-account")
    page.wait_for_url(site.url + "/")
    expect(page.locator("#nav-account")).to_have_text("Sign in")
    assert "does not stop billing" in asked[0]  # a premium account is told to cancel first
    assert (
        httpx.post(site.url + "/api/auth/token", data={"username": EMAIL, "password": PASSWORD}).status_code
        == 401
    )
    context.close()
