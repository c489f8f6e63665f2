"""The bus contract every implementation meets (tests/contract/test_bus_contract.py proves it).

- A topic is split into ``partitions``; a message goes to ``partition_for(key, n)`` so all
  messages of one key (a symbol) stay in order.
- A consumer group shares the work: each partition is owned by at most one live member at a time,
  so order per partition holds with many members.
- Delivery is at least once: a message is pending until acked. A member is alive while it keeps
  calling ``fetch`` within ``lease_seconds``; when it stops (crash, hang, close), its partitions
  and its pending messages pass to another member, which gets them again, in order, first.
- A message that cannot be decoded is parked on the topic's dead-letter list with the reason and
  acked, so it never blocks its partition.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")

Decoder = Callable[[bytes], T]


def partition_for(key: str, partitions: int) -> int:
    """Stable across processes and restarts (unlike ``hash``), so every node routes alike."""
    return zlib.crc32(key.encode()) % partitions


@dataclass(frozen=True, slots=True)
class Delivery(Generic[T]):
    topic: str
    partition: int
    key: str
    id: str
    value: T
    attempt: int  # 1 on first delivery; more when redelivered after a member died


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    key: str
    id: str
    payload: bytes
    reason: str


class BusError(Exception):
    """The bus cannot do what was asked (unreachable server, closed bus)."""


class Consumer(Protocol[T]):
    name: str
    group: str

    async def fetch(self, max_count: int = 100, wait: float = 1.0) -> list[Delivery[T]]:
        """Up to ``max_count`` deliveries, waiting at most ``wait`` seconds for the first."""
        ...

    async def ack(self, *deliveries: Delivery[object]) -> None: ...

    async def close(self) -> None:
        """Leave the group now; unacked messages go to other members without waiting for the lease."""
        ...

    def __aiter__(self) -> AsyncIterator[Delivery[T]]: ...


class Bus(Protocol):
    partitions: int

    async def publish(self, topic: str, key: str, payload: bytes) -> str:
        """Append and return the message id; durable once this returns."""
        ...

    def consumer(
        self,
        topic: str,
        group: str,
        name: str,
        decode: Callable[[bytes], T],
        *,
        lease_seconds: float = 10.0,
        start: str = "earliest",
    ) -> Consumer[T]:
        """A member ``name`` of ``group`` on ``topic``; ``start`` is earliest|latest for a new group."""
        ...

    async def dead_letters(self, topic: str, limit: int = 100) -> list[DeadLetter]: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...
