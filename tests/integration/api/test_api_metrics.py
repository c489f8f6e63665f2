from fastapi.testclient import TestClient

from tradesignals.domain.market import Tick
from tradesignals.marketdata.validate import Validator


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
