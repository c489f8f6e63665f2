"""The risk questionnaire over HTTP: what a client renders and what it gets back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response

from tradesignals.api.app import create_app
from tradesignals.api.routes import risk
from tradesignals.domain.risk import PRESETS, QUESTIONNAIRE, QUESTIONNAIRE_VERSION, ProfileName
from tradesignals.wiring import Services


@pytest.fixture
def risk_client(services: Services) -> Iterator[TestClient]:
    app: FastAPI = create_app(services, roles=frozenset({"api"}))
    if not any(getattr(r, "path", "").startswith("/api/risk") for r in app.routes):
        app.include_router(risk.router)  # until the app registers it itself
    with TestClient(app) as c:
        yield c


def boldest() -> dict[str, str]:
    return {q.id: q.options[-1].id for q in QUESTIONNAIRE}


def test_questionnaire_lists_questions_and_options_without_scores(risk_client: TestClient) -> None:
    r = risk_client.get("/api/risk/questionnaire")
    assert r.status_code == 200
    body = r.json()
    assert body["version"] == QUESTIONNAIRE_VERSION
    assert [q["id"] for q in body["questions"]] == [q.id for q in QUESTIONNAIRE]
    assert 1 <= len(body["questions"]) <= 10
    first = body["questions"][0]
    assert set(first) == {"id", "text", "options"} and first["text"].endswith("?")
    assert all(set(o) == {"id", "text"} for q in body["questions"] for o in q["options"])
    assert first["options"][0] == {
        "id": QUESTIONNAIRE[0].options[0].id,
        "text": QUESTIONNAIRE[0].options[0].text,
    }


def test_assess_returns_the_profile_and_its_parameters(risk_client: TestClient) -> None:
    r = risk_client.post("/api/risk/assess", json={"answers": boldest()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["risk_tolerance"] == 1.0 and body["capped_by"] == []
    assert body["questionnaire_version"] == QUESTIONNAIRE_VERSION
    p, preset = body["profile"], PRESETS[ProfileName.AGGRESSIVE]
    assert p["name"] == "aggressive"
    assert p["max_position_pct"] == preset.max_position_pct
    assert p["risk_per_trade_pct"] == preset.risk_per_trade_pct
    assert p["min_edge"] == preset.min_edge == 0.0 and p["max_volatility"] == preset.max_volatility
    assert p["allowed_types"] == ["swing", "day", "event", "options"]
    assert p["sector_caps_pct"] == {"technology": 50.0, "crypto": 30.0}
    assert p["default_sector_cap_pct"] == 50.0


def test_assess_reports_a_cap(risk_client: TestClient) -> None:
    answers = boldest() | {"drawdown_reaction": "sell_all"}
    body = risk_client.post("/api/risk/assess", json={"answers": answers}).json()
    assert body["profile"]["name"] == "conservative" and body["capped_by"] == ["drawdown_reaction"]
    assert body["profile"]["allowed_types"] == ["swing"]


def _problems(r: Response) -> dict[str, str]:
    """Question id → message, from a 422 in FastAPI's validation-error shape."""
    assert r.status_code == 422, r.text
    items = r.json()["detail"]
    assert all(i["loc"][:2] == ["body", "answers"] and i["type"] == "invalid_answer" for i in items)
    return {i["loc"][2]: i["msg"] for i in items}


def test_unknown_question_is_a_422_naming_it(risk_client: TestClient) -> None:
    r = risk_client.post("/api/risk/assess", json={"answers": boldest() | {"shoe_size": "44"}})
    assert _problems(r) == {"shoe_size": "unknown question"}


def test_missing_answer_is_a_422_naming_the_question(risk_client: TestClient) -> None:
    answers = boldest()
    del answers["income_stability"]
    assert _problems(risk_client.post("/api/risk/assess", json={"answers": answers})) == {
        "income_stability": "missing answer"
    }


def test_option_not_offered_is_a_422_naming_the_question(risk_client: TestClient) -> None:
    r = risk_client.post("/api/risk/assess", json={"answers": boldest() | {"goal": "yacht"}})
    problems = _problems(r)
    assert list(problems) == ["goal"] and "'yacht' is not offered" in problems["goal"]


def test_malformed_body_is_a_standard_validation_error(risk_client: TestClient) -> None:
    r = risk_client.post("/api/risk/assess", json={"answers": ["horizon"]})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][:2] == ["body", "answers"]


def test_routes_are_in_the_openapi_document(risk_client: TestClient) -> None:
    paths = risk_client.get("/openapi.json").json()["paths"]
    assert "get" in paths["/api/risk/questionnaire"] and "post" in paths["/api/risk/assess"]
    assert "422" in paths["/api/risk/assess"]["post"]["responses"]
