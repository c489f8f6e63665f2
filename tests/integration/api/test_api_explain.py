"""GET /api/signals/{id}/explanation serves the sidecar's texts; research only to upgrade holders."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from tradesignals.domain.research import EXPLANATION, RESEARCH, Claim, SignalText, Usage
from tradesignals.domain.signals import Direction, Signal, SignalStatus, SignalType
from tradesignals.wiring import Services

MakeUser = Callable[..., dict[str, str]]
NOW = datetime.now(UTC)


def signal(n: int) -> Signal:
    return Signal(
        id=f"{n:022x}",
        symbol="ACME",
        type=SignalType.SWING,
        direction=Direction.LONG,
        entry=100.0,
        stop=95.0,
        targets=(105.0,),
        confidence=0.6,
        created_at=NOW - timedelta(hours=1),
        expires_at=NOW + timedelta(days=3),
        model_version="test-1",
    )


def texts(s: Signal) -> tuple[SignalText, SignalText]:
    e = SignalText(s.id, EXPLANATION, "Long ACME, written by a model.", (), "gpt-4o-mini", "llm-v1", 1)
    r = SignalText(
        s.id,
        RESEARCH,
        "Acme won. [t:1]",
        ("t:1",),
        "gpt-4o-mini",
        "llm-v1",
        2,
        claims=(Claim("Acme won.", ("t:1",)),),
        dropped={"uncited": 1},
    )
    return e, r


def test_research_is_for_upgrade_holders_only(
    client: TestClient, services: Services, user_factory: MakeUser
) -> None:
    s = signal(1)
    services.signals.add(s)
    premium = user_factory("p@example.com", tier="premium")
    holder = user_factory("u@example.com")
    assert (
        client.post("/api/billing/checkout", json={"signal_id": s.id}, headers=holder).json()["status"]
        == "paid"
    )
    url = f"/api/signals/{s.id}/explanation"
    # before the sidecar wrote anything: the template, made on the fly; research pending for the holder
    body = client.get(url, headers=holder).json()
    assert body["model"] == "template" and body["research_status"] == "pending" and body["research"] is None
    assert services.llm_texts is not None
    e, r = texts(s)
    services.llm_texts.put(e, Usage("openai", 10, 5, 0.0001))
    services.llm_texts.put(r, Usage("openai", 20, 8, 0.0002))
    body = client.get(url, headers=premium).json()
    assert body["text"] == e.text and body["explanation"]["model"] == "gpt-4o-mini"
    assert body["research"] is None and body["research_status"] == "not_entitled"
    body = client.get(url, headers=holder).json()
    assert body["research_status"] == "ready"
    assert body["research"]["claims"] == [{"text": "Acme won.", "citations": ["t:1"]}]
    assert body["research"]["text"] == r.text and "cost" not in str(body)
    assert client.get(url).status_code == 403  # live: gated like the signal
    assert client.get(url, headers=user_factory("free@example.com")).status_code == 403


def test_a_closed_signal_explains_to_all_but_research_stays_the_upgrades(
    client: TestClient, services: Services, user_factory: MakeUser
) -> None:
    s = signal(2)
    services.signals.add(s)
    assert services.llm_texts is not None
    e, r = texts(s)
    services.llm_texts.put(e, Usage("openai"))
    services.llm_texts.put(r, Usage("openai"))
    from tradesignals.domain.signals import SignalEvent, SignalEventKind

    services.signals.set_status(
        s.id, SignalStatus.EXPIRED, SignalEvent(s.id, SignalEventKind.CLOSED, NOW, {"status": "expired"})
    )
    body = client.get(f"/api/signals/{s.id}/explanation").json()
    assert body["text"] == e.text and body["research"] is None and body["research_status"] == "not_entitled"
