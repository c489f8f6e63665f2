"""A local stand-in for api.stripe.com, for the official SDK (its ``api_base`` pointed here), and
webhook payloads signed exactly as Stripe signs them.

It speaks Stripe's documented wire format for the two calls the app makes: form-encoded requests
with bracketed keys (``line_items[0][price]``), ``Authorization: Bearer sk_...``, JSON objects back
(``checkout.session``, ``billing_portal.session``), and Stripe's error shape
``{"error": {"type", "code", "message", "param"}}`` with a 4xx status. Every request is kept so a test
can read what the SDK actually sent.

Signing (https://docs.stripe.com/webhooks#verify-manually): the header is ``t=TIMESTAMP,v1=SIG``
where ``SIG`` is the hex HMAC-SHA256, keyed with the endpoint secret (``whsec_...``, used as UTF-8
bytes), of ``f"{TIMESTAMP}.{raw body}"``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

API_KEY = "sk_test_tradesignals_fake_key"
WEBHOOK_SECRET = "whsec_tradesignals_fake_endpoint_secret"
PREMIUM_PRICE = "price_premium_monthly"


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe would send with ``payload``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def event(
    type_: str, obj: dict[str, Any], *, event_id: str | None = None, created: int | None = None
) -> bytes:
    """A webhook body in Stripe's event shape."""
    body = {
        "id": event_id or f"evt_{secrets.token_hex(12)}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()) if created is None else created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type_,
    }
    return json.dumps(body).encode()


def nested(form: list[tuple[str, str]]) -> dict[str, Any]:
    """``a[b][0][c]=v`` pairs as nested dicts (list indices kept as string keys)."""
    out: dict[str, Any] = {}
    for key, value in form:
        parts = key.replace("]", "").split("[")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


@dataclass
class FakeStripe:
    """The server's state: requests seen, and the customers it knows."""

    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    customers: set[str] = field(default_factory=set)
    url: str = ""

    def handle(
        self, method: str, path: str, auth: str | None, form: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        self.requests.append((method, path, form))
        if auth != f"Bearer {API_KEY}":
            return 401, _error("invalid_request_error", None, "Invalid API Key provided", None)
        now = int(time.time())
        if method == "POST" and path == "/v1/checkout/sessions":
            mode = form.get("mode")
            if mode not in ("payment", "subscription", "setup"):
                return 400, _error(
                    "invalid_request_error", "parameter_missing", "Missing required param: mode.", "mode"
                )
            items = form.get("line_items", {})
            first = items.get("0", {})
            if not first:
                return 400, _error(
                    "invalid_request_error",
                    "parameter_missing",
                    "Missing required param: line_items.",
                    "line_items",
                )
            if "price" in first and first["price"] != PREMIUM_PRICE:
                return 400, _error(
                    "invalid_request_error",
                    "resource_missing",
                    f"No such price: '{first['price']}'",
                    "line_items[0][price]",
                )
            amount = int(first.get("price_data", {}).get("unit_amount", 1999))
            sid = f"cs_test_{secrets.token_hex(16)}"
            return 200, {
                "id": sid,
                "object": "checkout.session",
                "amount_subtotal": amount,
                "amount_total": amount,
                "cancel_url": form.get("cancel_url"),
                "client_reference_id": form.get("client_reference_id"),
                "created": now,
                "currency": first.get("price_data", {}).get("currency", "usd"),
                "customer": form.get("customer"),
                "customer_email": form.get("customer_email"),
                "expires_at": now + 86400,
                "livemode": False,
                "metadata": form.get("metadata", {}),
                "mode": mode,
                "payment_intent": None,
                "payment_status": "unpaid",
                "status": "open",
                "subscription": None,
                "success_url": form.get("success_url"),
                "url": f"https://checkout.stripe.com/c/pay/{sid}",
            }
        if method == "POST" and path == "/v1/billing_portal/sessions":
            customer = form.get("customer")
            if not customer:
                return 400, _error(
                    "invalid_request_error",
                    "parameter_missing",
                    "Missing required param: customer.",
                    "customer",
                )
            if customer not in self.customers:
                return 400, _error(
                    "invalid_request_error", "resource_missing", f"No such customer: '{customer}'", "customer"
                )
            sid = f"bps_{secrets.token_hex(12)}"
            return 200, {
                "id": sid,
                "object": "billing_portal.session",
                "created": now,
                "customer": customer,
                "livemode": False,
                "return_url": form.get("return_url"),
                "url": f"https://billing.stripe.com/p/session/test_{sid}",
            }
        return 404, _error(
            "invalid_request_error", None, f"Unrecognized request URL ({method}: {path}).", None
        )


def _error(type_: str, code: str | None, message: str, param: str | None) -> dict[str, Any]:
    err: dict[str, Any] = {"type": type_, "message": message}
    if code:
        err["code"] = code
    if param:
        err["param"] = param
    return {"error": err}


def serve() -> tuple[FakeStripe, ThreadingHTTPServer]:
    """Start the fake on 127.0.0.1 (a free port); ``server.shutdown()`` stops it."""
    state = FakeStripe()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            form = nested(parse_qsl(raw, keep_blank_values=True))
            status, body = state.handle(
                self.command, self.path.split("?")[0], self.headers.get("authorization"), form
            )
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", f"req_{secrets.token_hex(7)}")
            self.end_headers()
            self.wfile.write(data)

        do_POST = _answer
        do_GET = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return state, server
