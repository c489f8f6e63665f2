from datetime import UTC, datetime, timedelta

import pytest

from tradesignals.domain.signals import (
    Direction,
    InvalidSignal,
    Signal,
    SignalStatus,
    SignalType,
    new_signal_id,
)

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def make(**kw: object) -> Signal:
    base: dict[str, object] = dict(
        id=new_signal_id(),
        symbol="AAPL",
        type=SignalType.SWING,
        direction=Direction.LONG,
        entry=100.0,
        stop=95.0,
        targets=(105.0, 110.0),
        confidence=0.6,
        created_at=NOW,
        expires_at=NOW + timedelta(days=5),
        model_version="m1",
    )
    base.update(kw)
    return Signal(**base)  # type: ignore[arg-type]


def test_valid_long_and_short() -> None:
    assert make().risk_per_unit == 5.0
    short = make(direction=Direction.SHORT, stop=105.0, targets=(95.0, 90.0))
    assert short.direction.sign == -1


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"stop": 101.0}, "stop 101.0 is on the wrong side of entry 100.0 for a long"),
        ({"targets": (99.0,)}, "must be beyond entry"),
        ({"targets": (110.0, 105.0)}, "targets must move away from entry in order"),
        ({"targets": ()}, "at least one target"),
        ({"confidence": 1.2}, "outside [0, 1]"),
        ({"expires_at": NOW}, "expires_at must be after created_at"),
        ({"expires_at": NOW + timedelta(days=120)}, "at most 3 months"),
        ({"created_at": datetime(2026, 1, 5)}, "timezone-aware"),
        ({"entry": float("nan")}, "not finite"),
        ({"direction": Direction.SHORT}, "wrong side"),
    ],
)
def test_contradictions_are_refused_with_a_reason(kw: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidSignal, match=message.replace("[", r"\[").replace("]", r"\]")):
        make(**kw)


def test_ids_sort_by_creation_time_and_are_unique() -> None:
    a = new_signal_id(1_000_000_000_000_000_000)
    b = new_signal_id(1_000_000_000_001_000_000)
    assert len(a) == len(b) == 22
    assert a < b
    assert len({new_signal_id() for _ in range(1000)}) == 1000


def test_status_change_returns_a_new_value() -> None:
    s = make()
    closed = s.with_status(SignalStatus.STOPPED)
    assert s.status is SignalStatus.OPEN
    assert closed.status.is_closed and closed.id == s.id
