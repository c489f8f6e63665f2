import asyncio
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

from tradesignals.api.app import create_app
from tradesignals.config import load_settings
from tradesignals.domain.market import Tick
from tradesignals.marketdata.validate import Validator
from tradesignals.wiring import build_services


def test_metrics_expose_rejections_by_reason(client: TestClient, admin: dict[str, str]) -> None:
    assert client.get("/metrics").status_code == 401  # operators only (see test_api_entitlements)
    before = client.get("/metrics", headers=admin).text
    v = Validator()
    assert not v.check(Tick("AAPL", 1, float("nan"), 1.0))
    r = client.get("/metrics", headers=admin)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    line = next(
        x for x in r.text.splitlines() if x.startswith("ts_marketdata_rejected_total{") and "finite" in x
    )
    value = float(line.rsplit(" ", 1)[1])
    old = next((x for x in before.splitlines() if x.startswith(line.rsplit(" ", 1)[0] + " ")), None)
    assert value == (float(old.rsplit(" ", 1)[1]) if old else 0.0) + 1


def test_metrics_need_the_operator_token_or_an_admin(tmp_path: Path) -> None:
    """``/metrics`` counts signals as they are issued: operators only (docs/architecture.md)."""
    token = "operator-" + "x" * 40
    services = asyncio.run(
        build_services(load_settings(home=tmp_path, mode="embedded", operator_token=token))
    )
    with TestClient(create_app(services)) as api:
        assert api.get("/metrics", headers={"X-Operator-Token": token}).status_code == 200
        assert api.get("/metrics", headers={"X-Operator-Token": token[:-1] + "y"}).status_code == 401
        assert api.get("/metrics").status_code == 401
        user = services.accounts.register("free@example.com", "correct horse battery staple")
        free = {
            "Authorization": f"Bearer {services.accounts.tokens.issue(user.id, 'user', datetime.now(UTC))}"
        }
        assert api.get("/metrics", headers=free).status_code == 403
        assert api.get("/metrics", headers=free | {"X-Operator-Token": token}).status_code == 200
