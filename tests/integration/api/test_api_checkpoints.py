"""GET /api/ledger/checkpoints[/latest], /api/ledger/public-key and the summary's checkpoint; and the
private key in no answer, log line or error."""

from __future__ import annotations

import base64
import json
import pickle
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from tradesignals.api.app import create_app
from tradesignals.domain.checkpoints import Checkpoint, verify_chain
from tradesignals.domain.signals import Direction, Signal, SignalType
from tradesignals.engine.checkpointer import Checkpointer
from tradesignals.ledger_cli import verify_command
from tradesignals.signing import check_signature
from tradesignals.wiring import Services

T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


@pytest.fixture
def api(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services, roles=frozenset({"api"}))) as c:
        yield c


def add_signal(services: Services, i: int) -> None:
    created = T0 + timedelta(minutes=i)
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
            expires_at=created + timedelta(days=3),
            model_version="t",
        )
    )


def checkpoints(services: Services, n: int) -> list[Checkpoint]:
    assert services.signer is not None
    writer = Checkpointer(services.checkpoints, services.signer)
    out = []
    for i in range(n):
        add_signal(services, i)
        out.append(writer.checkpoint())
    return out


def test_checkpoints_are_served_in_pages(api: TestClient, services: Services) -> None:
    assert api.get("/api/ledger/checkpoints").json() == {"checkpoints": [], "next_from": None}
    written = checkpoints(services, 5)
    page = api.get("/api/ledger/checkpoints", params={"limit": 2}).json()
    assert [c["number"] for c in page["checkpoints"]] == [1, 2] and page["next_from"] == 3
    served: list[dict[str, Any]] = []
    cursor: int | None = 0
    while cursor is not None:
        page = api.get("/api/ledger/checkpoints", params={"from": cursor, "limit": 2}).json()
        served += page["checkpoints"]
        cursor = page["next_from"]
    assert served == [cp.to_json() for cp in written]
    assert served[0]["at"].endswith("Z") and served[0]["next_public_key"] is None
    assert verify_chain([Checkpoint.from_json(c) for c in served], check_signature).ok
    assert api.get("/api/ledger/checkpoints", params={"from": 99}).json()["checkpoints"] == []


def test_latest_and_public_key(api: TestClient, services: Services) -> None:
    r = api.get("/api/ledger/checkpoints/latest")
    assert r.status_code == 404 and r.json()["detail"] == "no checkpoint yet"
    assert services.signer is not None
    assert api.get("/api/ledger/public-key").json() == {
        "algorithm": "ed25519",
        "public_key": services.signer.public_key,
    }
    *_, last = checkpoints(services, 3)
    assert api.get("/api/ledger/checkpoints/latest").json() == last.to_json()
    # A node without the key (an API-only server node) serves the key in force from the chain.
    services.signer = None
    assert api.get("/api/ledger/public-key").json()["public_key"] == last.key_after


def test_a_node_without_key_or_checkpoint_has_no_public_key(api: TestClient, services: Services) -> None:
    services.signer = None
    r = api.get("/api/ledger/public-key")
    assert r.status_code == 404 and "no signing key" in r.json()["detail"]


@pytest.mark.parametrize(
    "params",
    [
        {"from": -1},
        {"from": "x"},
        {"from": 2**63},
        {"from": 10**40},
        {"limit": 0},
        {"limit": 1001},
        {"limit": 10**40},
    ],
)
def test_bad_checkpoint_parameters_are_422(api: TestClient, params: dict[str, Any]) -> None:
    r = api.get("/api/ledger/checkpoints", params=params)
    assert r.status_code == 422, (params, r.text)


def test_the_largest_cursor_is_an_empty_page_not_an_error(api: TestClient, services: Services) -> None:
    checkpoints(services, 1)
    r = api.get("/api/ledger/checkpoints", params={"from": 2**63 - 1})
    assert r.status_code == 200 and r.json() == {"checkpoints": [], "next_from": None}


def test_the_summary_quotes_the_latest_checkpoint(api: TestClient, services: Services) -> None:
    assert api.get("/api/history/summary").json()["checkpoint"] is None
    *_, last = checkpoints(services, 2)
    body = api.get("/api/history/summary", params={"symbol": "AAPL"}).json()
    assert body["checkpoint"] == last.to_json()
    # The unfiltered answer was rendered before the checkpoints, with no close since: a new
    # checkpoint alone must still renew it.
    assert api.get("/api/history/summary").json()["checkpoint"] == last.to_json()


def test_the_private_key_is_in_no_answer_log_or_error(
    api: TestClient, services: Services, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pem = (tmp_path / "ledger-key.pem").read_bytes()
    key = serialization.load_pem_private_key(pem, None)
    seed = key.private_bytes(  # type: ignore[union-attr]
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    body = b"".join(line for line in pem.splitlines() if not line.startswith(b"-----"))
    secrets = {
        seed.hex(),
        seed.hex().upper(),
        base64.b64encode(seed).decode(),
        base64.urlsafe_b64encode(seed).decode().rstrip("="),
        base64.b64encode(der).decode(),
        body.decode(),
        body.decode()[16:48],  # any recognisable slice of the PEM body
        repr(seed),
    }
    checkpoints(services, 2)
    texts = [repr(services), str(services.signer), repr(services.settings)]
    for path in (
        "/api/ledger/checkpoints",
        "/api/ledger/checkpoints/latest",
        "/api/ledger/public-key",
        "/api/ledger",
        "/api/history/summary",
        "/api/health",
        "/openapi.json",
        "/api/ledger/checkpoints?from=-1",
        "/api/ledger/checkpoints?limit=abc",
        "/api/ledger/nothing",
    ):
        r = api.get(path)
        texts.append(r.text)
        texts.append(json.dumps(dict(r.headers)))
    lines: list[str] = []
    verify_command(services.settings, echo=lines.append)
    texts += lines
    with pytest.raises(TypeError, match="not picklable") as info:
        pickle.dumps(services.signer)
    texts.append(str(info.value))
    captured = capsys.readouterr()
    texts += [captured.out, captured.err]
    assert "ledger.key_created" in captured.out or "ledger.checkpoint" in captured.out  # logs were captured
    everything = "\n".join(texts)
    for secret in secrets:
        assert secret not in everything
    assert seed not in everything.encode("utf-8", "replace")
