"""In-process bus: the embedded default, and the one on the tick path of ``demo`` and backtests.

Each topic partition is an append-only list with a moving base offset; each consumer group keeps,
per partition, the next offset to hand out and the offsets handed out but not yet acked. That is
the whole state: ownership, redelivery and trimming are derived from it, so there is nothing to
reconcile. Waiting fetchers park on futures that ``publish`` resolves — no polling — and a waiter
also wakes when a group member's lease runs out, so a crashed member's work moves on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Generic, TypeVar

from tradesignals.bus._consume import (
    DEAD_LETTER_MAXLEN,
    check_lease,
    check_start,
    decode_or_park,
    fair_share,
    iterate,
    reason_for,
)
from tradesignals.bus.base import BusError, DeadLetter, Delivery, GroupLag
from tradesignals.bus.metrics import DEAD_LETTERS

T = TypeVar("T")

#: Appends between two trim checks of a partition, at least; keeps the check off the per-message cost.
_TRIM_EVERY = 1024


class _Partition:
    __slots__ = ("base", "check_at", "log", "waiters")

    def __init__(self) -> None:
        self.base = 0  # offset of log[0]; offsets below it were trimmed
        self.log: list[tuple[str, bytes]] = []
        self.check_at = _TRIM_EVERY
        # Fetchers of members owning this partition, waiting: a publish wakes only them, so
        # members waiting on other partitions do not spin on every message.
        self.waiters: list[asyncio.Future[None]] = []


class _GroupPartition:
    __slots__ = ("next", "pending", "recover")

    def __init__(self, next_offset: int) -> None:
        self.next = next_offset
        # offset -> times delivered. Insertion order is offset order (new deliveries have higher
        # offsets; a redelivery updates in place), so the first key is the group's commit point.
        self.pending: dict[int, int] = {}
        # offsets to hand out again before anything new: the pending set when ownership changed.
        self.recover: deque[int] = deque()


class _Member:
    __slots__ = ("draining", "fetching", "last_seen", "lease", "name", "owned")

    def __init__(self, name: str, lease: float, now: float) -> None:
        self.name = name
        self.lease = lease
        self.last_seen = now
        self.fetching = 0  # a member waiting inside fetch is alive however long it waits
        self.owned: set[int] = set()
        self.draining: set[int] = set()  # owned beyond its share; no new reads until handed over

    def expired(self, now: float) -> bool:
        return self.fetching == 0 and now - self.last_seen > self.lease


class _Group:
    __slots__ = ("members", "owner", "parts")

    def __init__(self, parts: list[_GroupPartition]) -> None:
        self.members: dict[str, _Member] = {}
        self.owner: list[_Member | None] = [None] * len(parts)
        self.parts = parts


def _wake(waiters: list[asyncio.Future[None]]) -> None:
    for fut in waiters:
        if not fut.done():
            fut.set_result(None)


class _Topic:
    __slots__ = ("dead", "groups", "name", "parts", "waiters")

    def __init__(self, name: str, partitions: int) -> None:
        self.name = name
        self.parts = [_Partition() for _ in range(partitions)]
        self.groups: dict[str, _Group] = {}
        self.dead: deque[DeadLetter] = deque(maxlen=DEAD_LETTER_MAXLEN)
        self.waiters: list[asyncio.Future[None]] = []  # every waiting fetcher of the topic

    def wake(self) -> None:
        """Membership or ownership changed: every waiter re-checks, which is rare enough to be cheap."""
        waiters, self.waiters = self.waiters, []
        _wake(waiters)


def _offset(message_id: str) -> int:
    return int(message_id[message_id.index("-") + 1 :])


class MemoryBus:
    """Asyncio bus inside one process; same contract as the Redis bus, minus surviving a restart.

    ``maxlen`` caps each partition like Redis's approximate MAXLEN: the log is trimmed once every
    group has acked past a prefix, and beyond ``maxlen`` even unread messages go (a consumer that
    far behind has lost them, as it would on Redis).
    """

    def __init__(self, partitions: int = 8, *, maxlen: int | None = 1_000_000) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, not {partitions}")
        if maxlen is not None and maxlen < 1:
            raise ValueError(f"maxlen must be >= 1 or None, not {maxlen}")
        self.partitions = partitions
        self.maxlen = maxlen
        self._topics: dict[str, _Topic] = {}
        self._closed = False

    def _topic(self, name: str) -> _Topic:
        topic = self._topics.get(name)
        if topic is None:
            topic = self._topics[name] = _Topic(name, self.partitions)
        return topic

    def _append(self, topic: _Topic, key: str, payload: bytes) -> str:
        p = zlib.crc32(key.encode()) % self.partitions  # partition_for, inlined on the hot path
        part = topic.parts[p]
        log = part.log
        offset = part.base + len(log)
        log.append((key, payload))
        if len(log) >= part.check_at:
            self._trim(topic, p)
        if part.waiters:
            waiters, part.waiters = part.waiters, []
            _wake(waiters)
        return f"{p}-{offset}"

    async def publish(self, topic: str, key: str, payload: bytes) -> str:
        if self._closed:
            raise BusError("bus: the in-process bus is closed")
        return self._append(self._topics.get(topic) or self._topic(topic), key, payload)

    async def publish_many(self, topic: str, items: Sequence[tuple[str, bytes]]) -> list[str]:
        if self._closed:
            raise BusError("bus: the in-process bus is closed")
        t = self._topic(topic)
        return [self._append(t, key, payload) for key, payload in items]

    def _trim(self, topic: _Topic, p: int) -> None:
        """Drop the prefix every group has acked (and anything beyond ``maxlen``).

        With no group yet, history is kept for the first one (``start="earliest"``), up to maxlen.
        """
        part = topic.parts[p]
        end = part.base + len(part.log)
        floor = end if topic.groups else part.base
        for group in topic.groups.values():
            gp = group.parts[p]
            committed = next(iter(gp.pending)) if gp.pending else gp.next
            floor = min(floor, max(committed, part.base))
        if self.maxlen is not None:
            floor = max(floor, end - self.maxlen)
        if floor > part.base:
            del part.log[: floor - part.base]
            part.base = floor
        part.check_at = len(part.log) + max(_TRIM_EVERY, len(part.log) // 4)

    def consumer(
        self,
        topic: str,
        group: str,
        name: str,
        decode: Callable[[bytes], T],
        *,
        lease_seconds: float = 10.0,
        start: str = "earliest",
    ) -> MemoryConsumer[T]:
        if self._closed:
            raise BusError("bus: the in-process bus is closed")
        return MemoryConsumer(
            self, self._topic(topic), group, name, decode, check_lease(lease_seconds), check_start(start)
        )

    async def dead_letters(self, topic: str, limit: int = 100) -> list[DeadLetter]:
        t = self._topics.get(topic)
        if t is None or limit <= 0:
            return []
        return list(t.dead)[-limit:]

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
        """What the partition still holds between the two ids. This bus trims the prefix every group
        has acked, so in practice that is only unacked history: enough for one process, which never
        hands a partition to another process (the Redis bus keeps up to ``maxlen``)."""
        t = self._topics.get(topic)
        if t is None or count <= 0:
            return []
        part = t.parts[partition]
        lo = part.base if after is None else max(part.base, _offset(after) + 1)
        hi = min(_offset(before), part.base + len(part.log))
        out: list[Delivery[T]] = []
        for off in range(lo, hi):
            key, payload = part.log[off - part.base]
            item = decode_or_park(decode, topic, partition, key, f"{partition}-{off}", payload, 0)
            if isinstance(item, Delivery):
                out.append(item)
                if len(out) >= count:
                    break
        return out

    async def lag(self, topic: str, group: str) -> GroupLag | None:
        t = self._topics.get(topic)
        g = t.groups.get(group) if t is not None else None
        if t is None or g is None:
            return None
        unread = sum(
            max(0, part.base + len(part.log) - gp.next) for part, gp in zip(t.parts, g.parts, strict=True)
        )
        pending = sum(len(gp.pending) for gp in g.parts)
        now = asyncio.get_running_loop().time()
        members = sum(1 for m in g.members.values() if not m.expired(now))
        return GroupLag(topic, group, unread, pending, members)

    def retained(self, topic: str) -> int:
        """Messages held for ``topic`` across partitions: the figure to watch for memory use."""
        t = self._topics.get(topic)
        return sum(len(part.log) for part in t.parts) if t else 0

    async def ping(self) -> bool:
        return not self._closed

    async def close(self) -> None:
        """Wake every waiting fetch so consumer loops see the shutdown instead of sleeping through it."""
        self._closed = True
        for topic in self._topics.values():
            topic.wake()

    # -- used by consumers -------------------------------------------------------------------

    def _join_group(self, topic: _Topic, group: str, start: str) -> _Group:
        g = topic.groups.get(group)
        if g is None:
            parts = [
                _GroupPartition(part.base if start == "earliest" else part.base + len(part.log))
                for part in topic.parts
            ]
            g = topic.groups[group] = _Group(parts)
        return g

    @staticmethod
    def _leave(group: _Group, member: _Member) -> None:
        if group.members.get(member.name) is member:
            del group.members[member.name]
        for p in member.owned:
            if group.owner[p] is member:
                group.owner[p] = None
        member.owned.clear()
        member.draining.clear()


class MemoryConsumer(Generic[T]):
    """One member of a group on one topic; see ``tradesignals.bus.base`` for the contract."""

    def __init__(
        self,
        bus: MemoryBus,
        topic: _Topic,
        group: str,
        name: str,
        decode: Callable[[bytes], T],
        lease_seconds: float,
        start: str,
    ) -> None:
        self.name = name
        self.group = group
        self._bus = bus
        self._topic = topic
        self._decode = decode
        self._lease = lease_seconds
        self._start = start
        self._group: _Group | None = None
        self._member: _Member | None = None
        self._rotate = 0
        self._seen: set[int] = set()  # partitions this object knows it owns
        self._epochs: dict[int, int] = {}  # partition -> claim number (see ``epoch``)
        self._claims = 0
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed or self._bus._closed

    def _register(self, now: float) -> tuple[_Group, _Member]:
        """Join on first fetch, and again if others declared us dead while we were away."""
        group = self._group
        if group is None:
            group = self._group = self._bus._join_group(self._topic, self.group, self._start)
        member = group.members.get(self.name)
        if member is None:
            member = group.members[self.name] = _Member(self.name, self._lease, now)
            self._topic.wake()  # owners over their new share should hand partitions over
        if member is not self._member:
            self._seen = set()
            self._epochs.clear()
            self._member = member
        return group, member

    def _rebalance(self, group: _Group, me: _Member, now: float) -> None:
        changed = False
        for other in list(group.members.values()):
            if other is not me and other.expired(now):
                self._bus._leave(group, other)
                changed = True
        share = fair_share(self._bus.partitions, list(group.members), me.name)
        owned = me.owned
        if len(owned) > share:
            extra = len(owned) - share
            for p in sorted(owned, reverse=True):
                if extra == 0:
                    break
                if not group.parts[p].pending:  # hand over only what is fully acked: no dup, no reorder
                    owned.discard(p)
                    group.owner[p] = None
                    extra -= 1
                    changed = True
            me.draining = set(sorted(owned, reverse=True)[:extra])
        elif me.draining:
            me.draining = set()
        if len(owned) < share:
            for p in range(self._bus.partitions):
                if len(owned) >= share:
                    break
                if group.owner[p] is None:
                    group.owner[p] = me
                    owned.add(p)
        if owned != self._seen:
            # Newly ours (claimed, or held under our name by a previous incarnation that crashed):
            # whatever is pending there was handed out before and comes again, first, in order.
            for p in owned - self._seen:
                gp = group.parts[p]
                if gp.pending:
                    gp.recover = deque(gp.pending)
                self._claims += 1
                self._epochs[p] = self._claims
            for p in self._seen - owned:
                self._epochs.pop(p, None)
            self._seen = set(owned)
        if changed:
            self._topic.wake()

    def _collect(self, group: _Group, me: _Member, max_count: int) -> list[Delivery[T]]:
        out: list[Delivery[T]] = []
        if not me.owned:
            return out
        topic = self._topic
        name = topic.name
        decode = self._decode
        order = sorted(me.owned)
        # Start at a different partition each time, so a small max_count cannot starve the others.
        self._rotate = (self._rotate + 1) % len(order)
        order = order[self._rotate :] + order[: self._rotate]
        for p in order:
            part = topic.parts[p]
            gp = group.parts[p]
            pending = gp.pending
            while gp.recover and len(out) < max_count:
                offset = gp.recover.popleft()
                times = pending.get(offset)
                if times is None:
                    continue  # acked after all
                if offset < part.base:
                    del pending[offset]  # trimmed by maxlen; gone, as on Redis
                    continue
                key, payload = part.log[offset - part.base]
                pending[offset] = times + 1
                item = decode_or_park(decode, name, p, key, f"{p}-{offset}", payload, times + 1)
                if isinstance(item, DeadLetter):
                    del pending[offset]
                    topic.dead.append(item)
                    DEAD_LETTERS.labels(name, self.group).inc()
                else:
                    out.append(item)
            if gp.recover or p in me.draining or len(out) >= max_count:
                if len(out) >= max_count:
                    break
                continue
            base = part.base
            if gp.next < base:
                gp.next = base
            start = gp.next - base
            batch = part.log[start : start + max_count - len(out)]
            if not batch:
                continue
            offset = gp.next
            gp.next += len(batch)
            for key, payload in batch:
                try:
                    value = decode(payload)
                except Exception as exc:
                    topic.dead.append(DeadLetter(name, p, key, f"{p}-{offset}", payload, reason_for(exc)))
                    DEAD_LETTERS.labels(name, self.group).inc()
                else:
                    pending[offset] = 1
                    out.append(Delivery(name, p, key, f"{p}-{offset}", value, 1))
                offset += 1
            if len(out) >= max_count:
                break
        return out

    def _seconds_to_next_expiry(self, group: _Group, me: _Member, now: float) -> float:
        soonest = math.inf
        for other in group.members.values():
            if other is not me and other.fetching == 0:
                soonest = min(soonest, other.last_seen + other.lease - now)
        return max(soonest, 0.0) + 0.001

    async def fetch(self, max_count: int = 100, wait: float = 1.0) -> list[Delivery[T]]:
        if self.closed:
            raise BusError(f"bus: consumer {self.name!r} of {self.group!r} on {self._topic.name!r} is closed")
        max_count = max(1, max_count)
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = now + max(wait, 0.0)
        group, me = self._register(now)
        me.fetching += 1
        try:
            while True:
                if self.closed:
                    return []
                if group.members.get(self.name) is not me:  # declared dead while we were slow
                    me.fetching -= 1
                    group, me = self._register(now)
                    me.fetching += 1
                me.last_seen = now
                self._rebalance(group, me, now)
                out = self._collect(group, me, max_count)
                remaining = deadline - now
                if out or remaining <= 0:
                    return out
                # Wait for a publish on a partition we may read, or any change in the group.
                fut: asyncio.Future[None] = loop.create_future()
                lists = [self._topic.waiters]
                lists.extend(self._topic.parts[p].waiters for p in me.owned if p not in me.draining)
                for waiters in lists:
                    waiters.append(fut)
                try:
                    async with asyncio.timeout(min(remaining, self._seconds_to_next_expiry(group, me, now))):
                        await fut
                except TimeoutError:
                    pass
                finally:
                    fut.cancel()
                    for waiters in lists:  # the lists that did not wake us still hold it
                        with contextlib.suppress(ValueError):
                            waiters.remove(fut)
                now = loop.time()
        finally:
            me.fetching -= 1
            me.last_seen = loop.time()

    async def ack(self, *deliveries: Delivery[Any]) -> None:
        group = self._group
        if group is None:
            return
        for d in deliveries:
            if d.topic != self._topic.name:
                raise ValueError(
                    f"delivery from topic {d.topic!r} acked on a consumer of {self._topic.name!r}"
                )
            group.parts[d.partition].pending.pop(int(d.id[d.id.index("-") + 1 :]), None)

    def epoch(self, partition: int) -> int:
        return self._epochs.get(partition, 0)

    async def close(self) -> None:
        """Leave at once: our partitions (and their unacked messages) go to whoever fetches next."""
        if self._closed:
            return
        self._closed = True
        if self._group is not None and self._member is not None:
            self._bus._leave(self._group, self._member)
            self._topic.wake()

    def __aiter__(self) -> AsyncIterator[Delivery[T]]:
        return iterate(self)
