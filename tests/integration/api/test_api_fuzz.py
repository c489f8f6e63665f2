"""schemathesis against the app's own /openapi.json, once per kind of caller: whatever the
generated input, no route answers 5xx (bad input is a 4xx with a reason, never a traceback).

Examples per operation are kept small (``EXAMPLES``) so the whole run stays well under a minute on
a shared two-core machine; CI may raise it with TS_FUZZ_EXAMPLES.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradesignals.domain.signals import Direction, Signal, SignalType
from tradesignals.wiring import Services

EXAMPLES = int(os.environ.get("TS_FUZZ_EXAMPLES", "8"))
CALLERS = ("anonymous", "free", "premium", "admin")


def seed(services: Services) -> None:
    now = datetime.now(UTC)
    for i in range(3):
        created = now - timedelta(minutes=i)
        services.signals.add(
            Signal(
                id=f"{int(created.timestamp() * 1000):012x}{i:010x}",
                symbol="AAPL",
                type=SignalType.SWING,
                direction=Direction.LONG,
                entry=100.0,
                stop=95.0,
                targets=(105.0,),
                confidence=0.6,
                created_at=created,
                expires_at=created + timedelta(days=2),
                model_version="fuzz",
            )
        )


@pytest.mark.slow
@pytest.mark.parametrize("caller", CALLERS)
def test_no_generated_request_gets_a_5xx(
    caller: str, client: TestClient, services: Services, user_factory: object
) -> None:
    seed(services)
    headers: dict[str, str] = {}
    if caller != "anonymous":
        make = user_factory  # type: ignore[assignment]
        headers = make(f"{caller}@example.com", tier="premium" if caller == "premium" else "free",
                       role="admin" if caller == "admin" else "user")  # type: ignore[operator]  # fmt: skip
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    failures: list[str] = []
    operations = 0
    statuses: list[int] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) == ("DELETE", "/api/me"):
            continue  # it would end the caller's account mid-run; the matrix covers it

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(case=operation.as_strategy(), extra=st.just(headers))
        def run(case: schemathesis.Case, extra: dict[str, str]) -> None:
            response = case.call(headers={**(case.headers or {}), **extra})
            statuses.append(response.status_code)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}"
                )

        run()
        operations += 1
    assert operations >= 20 and len(statuses) >= operations * 2
    assert any(200 <= s < 300 for s in statuses) and any(400 <= s < 500 for s in statuses)
    assert failures == [], "\n".join(failures[:10])
