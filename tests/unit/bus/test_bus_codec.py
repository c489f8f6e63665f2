"""Bus payloads: domain values survive the trip, and bad input fails at the edge with a reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import orjson
import pytest

from tradesignals.bus.codec import decoder, encode, to_json
from tradesignals.domain.market import Bar, Tick, Timeframe
from tradesignals.domain.signals import Direction, Signal, SignalType, new_signal_id


def a_signal() -> Signal:
    now = datetime(2024, 5, 1, 14, 30, tzinfo=UTC)
    return Signal(
        id=new_signal_id(),
        symbol="AAPL",
        type=SignalType.SWING,
        direction=Direction.LONG,
        entry=190.0,
        stop=185.0,
        targets=(195.0, 200.0),
        confidence=0.64,
        created_at=now,
        expires_at=now + timedelta(days=5),
        model_version="m-1",
        reasons=("breakout",),
    )


@pytest.mark.parametrize(
    "value",
    [
        Tick("BTCUSDT", 1_700_000_000_123_456_789, 37_000.5, 0.25),
        Bar("AAPL", Timeframe.D1, 1_700_000_000_000_000_000, 190.0, 192.5, 189.0, 191.0, 1e6),
        a_signal(),
    ],
    ids=["tick", "bar", "signal"],
)
def test_domain_values_round_trip(value: object) -> None:
    assert decoder(type(value))(encode(value)) == value


def test_a_wrong_field_type_names_the_field() -> None:
    payload = encode({"symbol": "AAPL", "ts": "yesterday", "price": 1.0, "size": 1.0})
    with pytest.raises(msgspec.ValidationError, match=r"\$\.ts"):
        decoder(Tick)(payload)


def test_bytes_that_are_not_msgpack_fail_to_decode() -> None:
    with pytest.raises(msgspec.DecodeError):
        decoder(Tick)(b"\xc1")


def test_domain_rules_are_enforced_on_decode() -> None:
    """A long signal with its stop above entry must not get past the bus into the engine."""
    fields = msgspec.to_builtins(a_signal())
    fields["stop"] = 195.0
    with pytest.raises(msgspec.ValidationError, match="stop"):
        decoder(Signal)(encode(fields))


def test_to_json_is_plain_json() -> None:
    tick = Tick("ETHUSDT", 1, 3000.0, 2.0)
    assert orjson.loads(to_json(tick)) == {"symbol": "ETHUSDT", "ts": 1, "price": 3000.0, "size": 2.0}
