"""The bus contract every implementation meets (tests/integration/bus/test_bus_contract.py proves it
against each implementation with the same tests).

- A topic is split into ``partitions``; a message goes to ``partition_for(key, n)`` so all
  messages of one key (a symbol) stay in order.
- A consumer group shares the work: each partition is owned by at most one live member at a time,
  so order per partition holds with many members. Members take a fair share each (partitions /
  live members); a member over its share hands a partition over only once everything it fetched
  from it is acked, so a rebalance among live members neither duplicates nor reorders.
- Member names are unique within a group: the name is the identity (a process that restarts under
  the same name gets its own unacked messages back).
- A consumer joins its group on its first ``fetch``; a group that does not exist yet is created
  then, at ``start`` (earliest: all retained history; latest: only messages published after).
- Delivery is at least once: a message is pending until acked. A member is alive while it keeps
  calling ``fetch`` within ``lease_seconds``; when it stops (crash, hang, close), its partitions
  and its pending messages pass to another member, which gets them again, in order, first, with
  ``attempt`` > 1. ``close`` hands over at once instead of waiting for the lease.
- A message that cannot be decoded is parked on the topic's dead-letter list with the reason and
  acked, so it never blocks its partition.
- ``epoch(p)`` changes each time a member (re)gains partition ``p``; ``history`` reads back what a
  partition still retains before a given id. Together they let a stateful consumer (the engine)
  rebuild a partition's state from the messages earlier owners already acked before it handles the
  first message it is given there (ADR 0015).
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import msgspec

T = TypeVar("T")

Decoder = Callable[[bytes], T]


def partition_for(key: str, partitions: int) -> int:
    """Stable across processes and restarts (unlike ``hash``), so every node routes alike."""
    return zlib.crc32(key.encode()) % partitions


class Delivery(msgspec.Struct, Generic[T], frozen=True, gc=False):
    """One message handed to a consumer.

    A frozen ``msgspec.Struct`` rather than a frozen dataclass: one is built per message on the
    consumer's hot path, and a frozen dataclass's ``__init__`` (an ``object.__setattr__`` per field)
    cost 3.1 µs against 0.6 µs — measured with ``bench/bus_throughput.py``'s fetch + ack figure.
    Not tracked by the garbage collector (``gc=False``): thousands are alive between a fetch and
    its ack, and each tracked one makes the collector's passes dearer. A delivery holds strings and
    a decoded message, which never points back at it, so it cannot be part of a reference cycle.
    """

    topic: str
    partition: int
    key: str
    id: str  # opaque; unique within (topic, partition), e.g. a Redis stream id, or <entry id>/<index> (ADR 0031)
    value: T
    attempt: int  # 1 on first delivery; more when redelivered after a member died


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    key: str
    id: str  # opaque; unique within (topic, partition), e.g. a Redis stream id
    payload: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class GroupLag:
    """How far a consumer group is behind on a topic: the figure that says whether a role keeps up.

    Counted in the bus's own units: messages on the memory bus, stream entries on Redis, where a
    ``publish_many`` packs up to 64 messages of a partition into one entry (ADR 0031).
    """

    topic: str
    group: str
    unread: int | None  # published, never delivered to the group (None: Redis cannot count it)
    pending: int  # delivered, not acked (Redis: an entry until every message in it is acked)
    members: int  # live members (lease not lapsed)


class BusError(Exception):
    """The bus cannot do what was asked (unreachable server, closed bus)."""


class Consumer(Protocol[T]):
    name: str
    group: str

    async def fetch(self, max_count: int = 100, wait: float = 1.0) -> list[Delivery[T]]:
        """Up to ``max_count`` deliveries, waiting at most ``wait`` seconds for the first."""
        ...

    async def ack(self, *deliveries: Delivery[Any]) -> None:
        """Done with these; acking twice, or after the message was handed over, is harmless."""
        ...

    async def close(self) -> None:
        """Leave the group now; unacked messages go to other members without waiting for the lease."""
        ...

    def epoch(self, partition: int) -> int:
        """0 unless this member owns ``partition``; otherwise a number that changes each time it (re)gains it.

        A consumer that keeps state per partition compares it with the epoch its state was built in:
        a change means others handled the partition meanwhile, so the state must be rebuilt.
        """
        ...

    def __aiter__(self) -> AsyncIterator[Delivery[T]]:
        """Deliveries one by one until the consumer is closed; the caller still acks each."""
        ...


class Bus(Protocol):
    partitions: int

    async def publish(self, topic: str, key: str, payload: bytes) -> str:
        """Append and return the message id; durable once this returns."""
        ...

    async def publish_many(self, topic: str, items: Sequence[tuple[str, bytes]]) -> list[str]:
        """``publish`` for a batch of (key, payload), in order; one round trip where the server allows.

        Each message keeps its own id, delivery, ack and redelivery, however the bus stores the
        batch (Redis packs a partition's messages into shared stream entries, ADR 0031).
        """
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

    async def dead_letters(self, topic: str, limit: int = 100) -> list[DeadLetter]:
        """The most recent ``limit`` parked messages of ``topic``, oldest first."""
        ...

    async def history(
        self,
        topic: str,
        partition: int,
        decode: Callable[[bytes], T],
        *,
        before: str,
        after: str | None = None,
        count: int = 1000,
    ) -> list[Delivery[T]]:
        """Up to ``count`` retained messages of one partition with ``after`` < id < ``before``, oldest first.

        Read-only (no group, nothing pending, ``attempt`` 0); undecodable ones are left out (they
        were parked). What is retained depends on trimming (``maxlen``), so callers must cope with a
        history that starts later than the first message ever published.
        """
        ...

    async def lag(self, topic: str, group: str) -> GroupLag | None:
        """Unread and pending messages (Redis: entries) of ``group`` on ``topic`` over all partitions (None: no such group)."""
        ...

    async def ping(self) -> bool:
        """True when the bus can take messages; never raises, so health checks stay simple."""
        ...

    async def close(self) -> None: ...
