"""Web Push in the browser: the account page's opt-in, and the service worker turning a push message
into a notification that names the signal (a click opens its page).

Chromium delivers real pushes through its vendor's push service, which this machine cannot reach:
subscribing fails here, and the page must say so in words and register nothing. The push message is
then handed to our service worker as the browser would hand it after decryption (DevTools'
``ServiceWorker.deliverPushMessage``). The encryption and VAPID half — our sender against a local
push service that decrypts as a browser does — is tested in tests/integration/push.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from .conftest import Site, critical_axe_violations

pytestmark = pytest.mark.browser

EMAIL = "pusher@example.com"
PASSWORD = "a long and unusual passphrase 42"


def premium(site: Site) -> str:
    """A premium account made through the API (local test-mode provider); its access token."""
    with httpx.Client(base_url=site.url) as c:
        assert c.post("/api/auth/register", json={"email": EMAIL, "password": PASSWORD}).status_code == 201
        token = c.post("/api/auth/token", data={"username": EMAIL, "password": PASSWORD}).json()[
            "access_token"
        ]
        paid = c.post(
            "/api/billing/checkout", json={"plan": "premium"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert paid.json()["status"] == "paid", paid.text
    return str(token)


def until(page: Any, what: str, get: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll ``get`` through Playwright's own wait, so its events (DevTools ones too) are dispatched."""
    deadline = time.monotonic() + timeout
    while True:
        value = get()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        page.wait_for_timeout(50)


def test_opt_in_says_why_it_failed_and_a_push_becomes_a_notification(
    browser: Any, serve: Callable[..., Site]
) -> None:
    site = serve()
    token = premium(site)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.grant_permissions(["notifications"], origin=site.url)
    page = context.new_page()
    page.goto(site.url + "/signin?next=/account")
    page.fill("#signin-form-email", EMAIL)
    page.fill("#signin-form-password", PASSWORD)
    page.click("#signin-form button[type=submit]")
    page.wait_for_url("**/account")
    toggle = page.locator("#push-toggle[data-state]")
    toggle.wait_for()
    assert toggle.get_attribute("data-state") == "off"
    assert critical_axe_violations(page) == []

    # Subscribing needs the browser vendor's push service: unreachable here, so the page says so,
    # in words, and nothing is registered with the API.
    toggle.click()
    error = page.locator("#push-status .error")
    error.wait_for(timeout=20_000)
    assert "push service" in error.inner_text() and "Error" not in error.inner_text().split(":")[0]
    listed = httpx.get(site.url + "/api/me/push-subscriptions", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200 and listed.json() == []

    # What the push sender sends (README, Web Push) reaches the service worker as a notification.
    cdp = context.new_cdp_session(page)
    registrations: list[dict[str, Any]] = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda e: registrations.extend(e["registrations"]))
    cdp.send("ServiceWorker.enable")
    reg = until(
        page,
        "the app's service worker registration",
        lambda: next(
            (r for r in registrations if r["scopeURL"].startswith(site.url) and not r["isDeleted"]), None
        ),
    )
    sid = site.signals[0].id
    payload = {
        "type": "signal",
        "id": sid,
        "symbol": "AAPL",
        "direction": "long",
        "signal_type": "swing",
        "confidence": 0.61,
        "entry": 101.5,
        "stop": 98.0,
        "targets": [105.0, 108.5, 112.0],
        "expires_at": "2026-01-12T21:00:00Z",
        "url": f"/signals/{sid}",
    }
    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": site.url, "registrationId": reg["registrationId"], "data": json.dumps(payload)},
    )
    shown = until(
        page,
        "the notification",
        lambda: page.evaluate(
            """() => navigator.serviceWorker.ready
                .then((r) => r.getNotifications())
                .then((ns) => ns.map((n) => ({title: n.title, body: n.body, tag: n.tag, url: n.data && n.data.url})))"""
        ),
    )
    assert shown == [
        {
            "title": "AAPL: new long swing signal",
            "body": "Entry 101.5, stop 98, confidence 61 %; expires 2026-01-12T21:00:00Z",
            "tag": f"signal:{sid}",
            "url": f"/signals/{sid}",
        }
    ]
    context.close()
