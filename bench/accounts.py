"""Accounts and billing figures, as JSON: the upgrade flow, token verification, argon2 login.

    .venv/bin/python bench/accounts.py [--n 200] [--database-url URL]

- ``upgrade_flow_ms``: a Stripe ``checkout.session.completed`` webhook for one signal, signed as
  Stripe signs it, POSTed to ``/api/billing/webhook`` → the buyer's already-open WebSocket asks for
  ``signal:{id}:live`` and gets ``subscribed``. One new signal per round; p50/p99 over ``--n``
  rounds (budget: 200 ms). In-process ASGI (TestClient), so HTTP parsing is counted, the network not.
- ``token_verify_us``: the JWT check alone (``TokenCodec.verify``), and what each request pays
  to know its caller (verify + user row + upgrades in force, ``api.auth.identity``'s work), for an
  account without upgrades and for the bench's buyer holding ``--n`` of them.
- ``login_ms``: ``AccountService.login`` (argon2id verify + the database), with the parameters.

Embedded app on SQLite in a temporary folder unless ``--database-url`` (e.g. the real PostgreSQL).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tradesignals.accounts.passwords import HASHER
from tradesignals.api.app import create_app
from tradesignals.config import load_settings
from tradesignals.domain.entitlements import live_channel
from tradesignals.domain.signals import Direction, Signal, SignalType, new_signal_id
from tradesignals.wiring import build_services

SECRET = "whsec_bench_endpoint_secret"
PASSWORD = "correct horse battery staple"


def stripe_signature(payload: bytes, secret: str = SECRET) -> str:
    """Stripe's scheme: ``t=TS,v1=hex(HMAC-SHA256(secret, f"{TS}." + body))``."""
    t = int(time.time())
    return f"t={t},v1={hmac.new(secret.encode(), f'{t}.'.encode() + payload, hashlib.sha256).hexdigest()}"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(pct(values, 0.50), 3),
        "p99": round(pct(values, 0.99), 3),
        "mean": round(statistics.fmean(values), 3),
        "n": len(values),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="upgrade rounds (and logins / 10)")
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="tsbench-accounts-"))
    overrides: dict[str, Any] = {
        "payment_provider": "stripe",
        "stripe_api_key": "sk_test_bench",
        "stripe_webhook_secret": SECRET,
        "stripe_premium_price_id": "price_bench",
        "stripe_api_base": "http://127.0.0.1:9",  # never called: webhooks only
        "auth_rate_per_min": 1_000_000,
    }
    if args.database_url:
        overrides["database_url"] = args.database_url
    services = asyncio.run(build_services(load_settings(home=home, mode="embedded", **overrides)))
    accounts = services.accounts
    email = f"bench-{int(time.time())}@example.com"
    user = accounts.register(email, PASSWORD)
    pair = accounts.login(email, PASSWORD)

    # --- upgrade flow ---------------------------------------------------------------------------
    flow_ms: list[float] = []
    with (
        TestClient(create_app(services, roles=frozenset({"api"}))) as api,
        api.websocket_connect(f"/ws?token={pair.access_token}") as ws,
    ):
        now = datetime.now(UTC)
        for i in range(args.n):
            signal = Signal(
                id=new_signal_id(), symbol="BENCH", type=SignalType.SWING, direction=Direction.LONG,
                entry=100.0, stop=95.0, targets=(110.0,), confidence=0.6, created_at=now,
                expires_at=now + timedelta(days=3), model_version="bench",
            )  # fmt: skip
            services.signals.add(signal)
            obj = {
                "id": f"cs_test_bench_{i}", "object": "checkout.session", "mode": "payment",
                "payment_status": "paid", "client_reference_id": str(user.id), "customer": "cus_bench",
                "payment_intent": f"pi_bench_{i}_{signal.id}", "amount_total": 499, "currency": "usd",
                "metadata": {"user_id": str(user.id), "kind": "signal", "signal_id": signal.id},
            }  # fmt: skip
            body = json.dumps(
                {
                    "id": f"evt_bench_{i}_{signal.id}",
                    "object": "event",
                    "type": "checkout.session.completed",
                    "created": int(time.time()),
                    "data": {"object": obj},
                    "livemode": False,
                }
            ).encode()
            t0 = time.perf_counter()
            r = api.post(
                "/api/billing/webhook", content=body, headers={"Stripe-Signature": stripe_signature(body)}
            )
            ws.send_json({"op": "subscribe", "channels": [live_channel(signal.id)]})
            reply = ws.receive_json()
            flow_ms.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200 or reply.get("type") != "subscribed":
                sys.exit(f"upgrade round {i} failed: webhook {r.status_code} {r.text[:120]}, ws {reply}")

    # --- token verification -----------------------------------------------------------------------
    rounds = 5000
    t0 = time.perf_counter()
    for _ in range(rounds):
        accounts.tokens.verify(pair.access_token)
    jwt_us = (time.perf_counter() - t0) / rounds * 1e6

    def per_request_us(token: str, rounds: int = 500) -> float:
        t0 = time.perf_counter()
        for _ in range(rounds):
            accounts.caller(accounts.user_for(token))
        return (time.perf_counter() - t0) / rounds * 1e6

    plain = accounts.register(f"plain-{email}", PASSWORD)
    caller_us = per_request_us(accounts.login(plain.email, PASSWORD).access_token)
    caller_upgraded_us = per_request_us(pair.access_token)  # holds --n upgrades in force

    # --- login -------------------------------------------------------------------------------------
    logins: list[float] = []
    for _ in range(max(10, args.n // 10)):
        t0 = time.perf_counter()
        accounts.login(email, PASSWORD)
        logins.append((time.perf_counter() - t0) * 1000)

    result = {
        "bench": "accounts",
        "database": services.settings.database_url.split(":", 1)[0] if args.database_url else "sqlite",
        "upgrade_flow_ms": summary(flow_ms) | {"budget_ms": 200},
        "token_verify_us": {
            "jwt_only": round(jwt_us, 1),
            "per_request_caller": round(caller_us, 1),
            f"per_request_caller_with_{args.n}_upgrades": round(caller_upgraded_us, 1),
        },
        "login_ms": summary(logins)
        | {
            "argon2": {
                "type": "argon2id",
                "memory_kib": HASHER.memory_cost,
                "time_cost": HASHER.time_cost,
                "parallelism": HASHER.parallelism,
            }
        },
        "loadavg_1m": round(os.getloadavg()[0], 2),  # a shared machine: read the figures with it
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(json.dumps(result))
    asyncio.run(services.close())
    return result


if __name__ == "__main__":
    main()
