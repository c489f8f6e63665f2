"""Consumer logic both bus implementations share, so they cannot drift apart on the contract's details.

The partition split (``fair_share``) is also written in Lua inside the Redis bus, where it must run
atomically; the two are kept to the same rule: members sorted by name, the first ``partitions %
members`` of them take one extra.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol, TypeVar

from tradesignals.bus.base import DeadLetter, Delivery

T = TypeVar("T")

#: How many parked messages a topic keeps; dead letters are for inspection, not a second queue.
DEAD_LETTER_MAXLEN = 10_000


def fair_share(partitions: int, members: Sequence[str], me: str) -> int:
    """How many partitions ``me`` should own; every member computes the same split without talking."""
    ranked = sorted(members)
    count = len(ranked)
    if count == 0 or me not in ranked:
        return 0
    base, extra = divmod(partitions, count)
    return base + (1 if ranked.index(me) < extra else 0)


def reason_for(exc: BaseException) -> str:
    """One line with the decoder's own message, which is what someone fixing the producer needs."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def decode_or_park(
    decode: Callable[[bytes], T],
    topic: str,
    partition: int,
    key: str,
    id: str,
    payload: bytes,
    attempt: int,
) -> Delivery[T] | DeadLetter:
    """Any exception from the decoder makes the message poison: retrying cannot make it decodable."""
    try:
        value = decode(payload)
    except Exception as exc:
        return DeadLetter(topic, partition, key, id, payload, reason_for(exc))
    return Delivery(topic, partition, key, id, value, attempt)


class _Fetching(Protocol[T]):
    @property
    def closed(self) -> bool: ...

    async def fetch(self, max_count: int = 100, wait: float = 1.0) -> list[Delivery[T]]: ...


async def iterate(
    consumer: _Fetching[T], max_count: int = 100, wait: float = 1.0
) -> AsyncIterator[Delivery[T]]:
    """``async for`` over a consumer: ends when it is closed, so a shutdown ends the loop cleanly."""
    while not consumer.closed:
        batch = await consumer.fetch(max_count, wait)
        for delivery in batch:
            yield delivery


def check_start(start: str) -> str:
    """Refuse a typo at construction: a wrong ``start`` silently replaying history would be costly."""
    if start not in ("earliest", "latest"):
        raise ValueError(f"start must be 'earliest' or 'latest', not {start!r}")
    return start


def check_lease(lease_seconds: float) -> float:
    if not lease_seconds > 0:
        raise ValueError(f"lease_seconds must be > 0, not {lease_seconds!r}")
    return float(lease_seconds)
