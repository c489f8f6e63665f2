"""The process registry's memory form and the keeping-up rule /api/health applies to each group."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tradesignals.bus import registry
from tradesignals.bus.base import GroupLag
from tradesignals.bus.registry import MemoryRegistry, ProcessInfo, keeping_up


def _info(pid: int, *roles: str) -> ProcessInfo:
    return ProcessInfo(id=f"p{pid}", host="h", pid=pid, roles=roles, started_at=0.0, version="1")


@pytest.mark.parametrize(
    ("unread", "pending", "members", "expected"),
    [
        (0, 0, 1, True),
        (60, 40, 1, True),  # exactly at the bound
        (61, 40, 1, False),
        (0, 0, 0, True),  # nothing waits: no member needed
        (1, 0, 0, False),  # waits, nobody reads: the role is down
        (None, 0, 3, False),  # unknown is never keeping up
    ],
)
def test_keeping_up(unread: int | None, pending: int, members: int, expected: bool) -> None:
    assert keeping_up(GroupLag("t", "g", unread, pending, members), max_waiting=100) is expected


async def test_two_registrations_both_listed_until_one_lapses_or_leaves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1_000.0]
    monkeypatch.setattr(registry, "time", SimpleNamespace(time=lambda: now[0]))
    reg = MemoryRegistry()
    await reg.beat(_info(2, "engine"), ttl_s=15)
    await reg.beat(_info(1, "api", "ingest"), ttl_s=15)
    both = await reg.live()
    now[0] += 10
    await reg.beat(_info(1, "api", "ingest"), ttl_s=15)  # only p1 keeps beating
    now[0] += 10
    lapsed = await reg.live()
    await reg.leave("p1")
    assert [(p.info.pid, p.info.roles) for p in both] == [(1, ("api", "ingest")), (2, ("engine",))]
    assert [(p.info.pid, p.last_seen) for p in lapsed] == [(1, 1_010.0)]
    assert await reg.live() == []
