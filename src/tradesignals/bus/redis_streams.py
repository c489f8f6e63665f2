"""Redis Streams bus: the server-mode bus shared by every process of a deployment.

Layout, all under ``{prefix}:{topic}``:

- ``:{p}`` — one stream per partition; entries ``k`` (key) and ``v`` (payload), XADD with
  approximate MAXLEN so the server bounds memory.
- ``:dead`` — parked poison: payload, reason, key, partition, id (and the group that parked it).
- ``:group:{g}:members`` — sorted set of live members, scored by lease expiry (server time).
- ``:group:{g}:lease:{p}`` — the member owning partition ``p`` for group ``g``, with a PX expiry.

Redis consumer groups alone would spread one partition's entries over every reader and lose
per-key order, so ownership is ours: each fetch runs one Lua script that renews our membership
and leases, drops dead members, releases partitions over our fair share (only fully acked ones)
and claims free ones. A new owner first takes over the partition's pending entries (XPENDING +
XCLAIM, in id order, ``attempt`` = delivery count) before reading anything new. Doing it in one
script makes "at most one live owner per partition" hold without locks held across round trips.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
import zlib
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Generic, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tradesignals.bus._consume import (
    DEAD_LETTER_MAXLEN,
    check_lease,
    check_start,
    decode_or_park,
    iterate,
    reason_for,
)
from tradesignals.bus.base import BusError, DeadLetter, Delivery, GroupLag, partition_for
from tradesignals.bus.metrics import DEAD_LETTERS

T = TypeVar("T")

#: Messages per XADD script call: big enough to amortise the round trip, small enough that one call
#: holds the (single-threaded) server for about a millisecond.
_XADD_SLICE = 1_000

#: Longest single XREADGROUP block. Between blocks a waiting member re-runs the ownership script,
#: so this bounds how late it notices a partition freed by a member that closed or died.
_MAX_BLOCK = 0.25

#: Longest gap between two runs of the ownership script while a member is busy fetching: how
#: late it notices a member that joined (and so hands partitions over).
_REBALANCE_EVERY = 0.05

# Renew our membership and leases, forget dead members, hand over what exceeds our fair share
# (only partitions with nothing unacked, so a rebalance among live members keeps order) and claim
# free partitions up to it. Server time for every expiry: members on different hosts agree.
# KEYS[1] members zset, KEYS[2..n+1] lease key of partition 0..n-1.
# ARGV[1] member, ARGV[2] lease ms, ARGV[3..] partitions we still have unacked work on.
# Returns {owned, newly claimed, draining (over share but busy)}.
_REBALANCE = """
local me = ARGV[1]
local lease = tonumber(ARGV[2])
local n = #KEYS - 1
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + lease, me)
if redis.call('PTTL', KEYS[1]) < lease then redis.call('PEXPIRE', KEYS[1], lease) end
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
table.sort(members)
local rank = 0
for i, m in ipairs(members) do if m == me then rank = i - 1 end end
local share = math.floor(n / #members)
if rank < n % #members then share = share + 1 end
local busy = {}
for i = 3, #ARGV do busy[tonumber(ARGV[i])] = true end
local owned, free = {}, {}
for p = 0, n - 1 do
  local holder = redis.call('GET', KEYS[p + 2])
  if holder == me then owned[#owned + 1] = p elseif not holder then free[#free + 1] = p end
end
local excess = #owned - share
local keep, draining, claimed = {}, {}, {}
for i = #owned, 1, -1 do
  local p = owned[i]
  if excess > 0 and not busy[p] then
    redis.call('DEL', KEYS[p + 2])
    excess = excess - 1
  else
    keep[#keep + 1] = p
  end
end
for i = 1, #keep do
  redis.call('PEXPIRE', KEYS[keep[i] + 2], lease)
  if i <= excess then draining[#draining + 1] = keep[i] end
end
local i = 1
while #keep < share and i <= #free do
  redis.call('SET', KEYS[free[i] + 2], me, 'PX', lease)
  keep[#keep + 1] = free[i]
  claimed[#claimed + 1] = free[i]
  i = i + 1
end
return {keep, claimed, draining}
"""

# Append a batch in one command: KEYS are the partition streams touched, ARGV[1] the MAXLEN ('' for
# none), then (key index, k, v) per message. One EVALSHA with 3n arguments costs the client far less
# than n pipelined XADDs (each its own command object and reply), which is what bounded publish_many.
_XADD_MANY = """
local maxlen = ARGV[1]
local out = {}
local j = 1
for i = 2, #ARGV, 3 do
  local s = KEYS[tonumber(ARGV[i])]
  if maxlen == '' then
    out[j] = redis.call('XADD', s, '*', 'k', ARGV[i + 1], 'v', ARGV[i + 2])
  else
    out[j] = redis.call('XADD', s, 'MAXLEN', '~', maxlen, '*', 'k', ARGV[i + 1], 'v', ARGV[i + 2])
  end
  j = j + 1
end
return out
"""

# Read new entries only from partitions whose lease we hold *now*, in one atomic step. A plain
# XREADGROUP from a member whose lease lapsed unnoticed (a paused process: GC, CPU starvation)
# would take ">" entries away from the partition's new owner, which would then decide on a
# partition with bars missing from its state. KEYS: n lease keys, then the n streams; ARGV: member,
# group, count. Returns {XREADGROUP reply or {}, last entry id of each held stream when nothing was
# read} — the ids let the caller block (XREAD, outside the script) until something newer arrives.
_READ_HELD = """
local n = #KEYS / 2
local held = {}
for i = 1, n do
  if redis.call('GET', KEYS[i]) == ARGV[1] then held[#held + 1] = KEYS[n + i] end
end
if #held == 0 then return {{}, {}} end
local args = {'XREADGROUP', 'GROUP', ARGV[2], ARGV[1], 'COUNT', ARGV[3], 'STREAMS'}
for i = 1, #held do args[#args + 1] = held[i] end
for i = 1, #held do args[#args + 1] = '>' end
local reply = redis.call(unpack(args))
if reply then return {reply, {}} end
local tails = {}
for i = 1, #held do
  local last = redis.call('XREVRANGE', held[i], '+', '-', 'COUNT', 1)
  tails[#tails + 1] = held[i]
  tails[#tails + 1] = last[1] and last[1][1] or '0-0'
end
return {{}, tails}
"""

# Leave: drop our leases (only where we still hold them) and our membership, in one step.
_LEAVE = """
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""


class _HiredisPacking:
    """Pack commands with hiredis's C packer (redis-py's asyncio connection packs in Python).

    Packing the arguments was most of the client's time for a batched publish (3 arguments per
    message) and for XACK (one per message): measured with ``bench/bus_throughput.py``.
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0]
        if isinstance(first, str) and " " in first:  # "CONFIG GET": the server wants two words
            args = (*first.split(), *args[1:])
        return [hiredis.pack_command(args)]


def _with_hiredis_packing(client: aioredis.Redis) -> None:
    pool = client.connection_pool
    base = pool.connection_class
    if hasattr(hiredis, "pack_command") and not issubclass(base, _HiredisPacking):
        pool.connection_class = type(f"Packed{base.__name__}", (_HiredisPacking, base), {})


def safe_url(url: str) -> str:
    """The URL for messages, without a password: errors end up in logs (and start-up errors on
    screens). A URL too malformed to split shows only its scheme, since it may still hold one."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    except ValueError:  # a bad port, an unclosed IPv6 bracket
        return f"{url.split(':', 1)[0]}://<unreadable URL>"
    return urlunsplit(parts._replace(netloc=netloc))


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisStreamsBus:
    """Bus over Redis Streams; see the module docstring for the key layout.

    Short socket timeouts and few retries are deliberate: a dead Redis must turn into a clear
    ``BusError`` (or ``ping() == False``) within seconds, not a hang.
    """

    def __init__(
        self,
        url: str,
        *,
        partitions: int = 8,
        prefix: str = "ts",
        maxlen: int | None = 1_000_000,
        connect_timeout: float = 2.0,
        socket_timeout: float = 5.0,
    ) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, not {partitions}")
        self.url = url
        self.partitions = partitions
        self.prefix = prefix
        self.maxlen = maxlen
        self._where = f"Redis at {safe_url(url)}"
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=connect_timeout,
            socket_timeout=max(socket_timeout, _MAX_BLOCK + 1.0),
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
        )
        _with_hiredis_packing(self._redis)
        self._rebalance_script = self._redis.register_script(_REBALANCE)
        self._leave_script = self._redis.register_script(_LEAVE)
        self._xadd_many_script = self._redis.register_script(_XADD_MANY)
        self._read_script = self._redis.register_script(_READ_HELD)
        self._consumers: weakref.WeakSet[RedisConsumer[Any]] = weakref.WeakSet()
        self._closed = False

    def stream_key(self, topic: str, partition: int) -> str:
        return f"{self.prefix}:{topic}:{partition}"

    def dead_key(self, topic: str) -> str:
        return f"{self.prefix}:{topic}:dead"

    def _error(self, err: BaseException, doing: str) -> BusError:
        if isinstance(err, RedisConnectionError | RedisTimeoutError | OSError):
            return BusError(f"bus: {self._where} is unreachable while {doing} ({_one_line(err)})")
        return BusError(f"bus: {self._where} failed while {doing} ({_one_line(err)})")

    def _check_open(self) -> None:
        if self._closed:
            raise BusError(f"bus: the bus on {self._where} is closed")

    async def publish(self, topic: str, key: str, payload: bytes) -> str:
        self._check_open()
        p = partition_for(key, self.partitions)
        try:
            msg_id = await self._redis.xadd(
                self.stream_key(topic, p), {"k": key, "v": payload}, maxlen=self.maxlen, approximate=True
            )
        except (RedisError, OSError) as err:
            raise self._error(err, f"publishing to {topic!r}") from err
        return _text(msg_id)

    async def publish_many(self, topic: str, items: Sequence[tuple[str, bytes]]) -> list[str]:
        """One round trip and one command for the batch (a Lua XADD loop, atomic on the server).

        Large batches go in slices so one script never holds the server for long.
        """
        self._check_open()
        ids: list[str] = []
        for start in range(0, len(items), _XADD_SLICE):
            ids += await self._xadd_many(topic, items[start : start + _XADD_SLICE])
        return ids

    async def _xadd_many(self, topic: str, items: Sequence[tuple[str, bytes]]) -> list[str]:
        keys: list[str] = []
        slot: dict[int, int] = {}
        args: list[Any] = ["" if self.maxlen is None else self.maxlen]
        n = self.partitions
        for key, payload in items:
            p = zlib.crc32(key.encode()) % n  # partition_for, inlined on the hot path
            index = slot.get(p)
            if index is None:
                keys.append(self.stream_key(topic, p))
                index = slot[p] = len(keys)
            args += (index, key, payload)
        try:
            ids = await self._xadd_many_script(keys=keys, args=args)
        except (RedisError, OSError) as err:
            raise self._error(err, f"publishing to {topic!r}") from err
        return [_text(i) for i in ids]

    def consumer(
        self,
        topic: str,
        group: str,
        name: str,
        decode: Callable[[bytes], T],
        *,
        lease_seconds: float = 10.0,
        start: str = "earliest",
    ) -> RedisConsumer[T]:
        self._check_open()
        consumer = RedisConsumer(
            self, topic, group, name, decode, check_lease(lease_seconds), check_start(start)
        )
        self._consumers.add(consumer)
        return consumer

    async def dead_letters(self, topic: str, limit: int = 100) -> list[DeadLetter]:
        if limit <= 0:
            return []
        try:
            entries: Any = await self._redis.xrevrange(self.dead_key(topic), count=limit)
        except (RedisError, OSError) as err:
            raise self._error(err, f"reading dead letters of {topic!r}") from err
        out = []
        for _entry_id, fields in reversed(entries or []):
            out.append(
                DeadLetter(
                    topic=topic,
                    partition=int(fields.get(b"partition", b"-1")),
                    key=_text(fields.get(b"key", b"")),
                    id=_text(fields.get(b"id", b"")),
                    payload=fields.get(b"payload", b""),
                    reason=_text(fields.get(b"reason", b"")),
                )
            )
        return out

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
        """XRANGE with exclusive bounds; retained up to ``maxlen`` (approximate) per partition."""
        self._check_open()
        out: list[Delivery[T]] = []
        low = "-" if after is None else f"({after}"
        stream = self.stream_key(topic, partition)
        while len(out) < count:
            try:
                entries: Any = await self._redis.xrange(stream, min=low, max=f"({before}", count=count)
            except (RedisError, OSError) as err:
                raise self._error(err, f"reading the history of {topic!r}") from err
            for entry_id, fields in entries or []:
                key, payload = fields.get(b"k"), fields.get(b"v")
                if key is None or payload is None:
                    continue
                item = decode_or_park(decode, topic, partition, key.decode(), _text(entry_id), payload, 0)
                if isinstance(item, Delivery):
                    out.append(item)
            if len(entries or []) < count:
                break
            low = f"({_text(entries[-1][0])}"
        return out[:count]

    async def lag(self, topic: str, group: str) -> GroupLag | None:
        """XINFO GROUPS per partition (Redis 7 reports ``lag``) and the live members, one round trip."""
        self._check_open()
        pipe = self._redis.pipeline(transaction=False)
        for p in range(self.partitions):
            pipe.xinfo_groups(self.stream_key(topic, p))
        pipe.time()
        try:
            *infos, (seconds, micros) = await pipe.execute(raise_on_error=False)
            now_ms = int(seconds) * 1000 + int(micros) // 1000
            members = await self._redis.zcount(f"{self.prefix}:{topic}:group:{group}:members", now_ms, "+inf")
        except (RedisError, OSError) as err:
            raise self._error(err, f"reading the lag of {group!r} on {topic!r}") from err
        unread = pending = 0
        found = False
        for info in infos:
            if isinstance(info, Exception):  # no such stream yet
                continue
            for g in info:
                if _text(g.get("name", b"")) == group:
                    found = True
                    unread += int(g.get("lag") or 0)
                    pending += int(g.get("pending") or 0)
        return GroupLag(topic, group, unread, pending, int(members)) if found else None

    async def ping(self) -> bool:
        if self._closed:
            return False
        try:
            return bool(await asyncio.wait_for(self._redis.ping(), timeout=3.0))
        except Exception:  # any failure means "not usable now"; health checks want a bool
            return False

    async def close(self) -> None:
        """Hand our consumers' partitions over first, so other nodes need not wait out the leases."""
        if self._closed:
            return
        consumers = [c.close() for c in list(self._consumers)]
        if consumers:
            # Bounded: with Redis gone, leaving would wait out connect timeouts for nothing.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*consumers), timeout=2.0)
        self._closed = True
        await self._redis.aclose()


class RedisConsumer(Generic[T]):
    """One member of a group on one topic; see ``tradesignals.bus.base`` for the contract."""

    def __init__(
        self,
        bus: RedisStreamsBus,
        topic: str,
        group: str,
        name: str,
        decode: Callable[[bytes], T],
        lease_seconds: float,
        start: str,
    ) -> None:
        self.name = name
        self.group = group
        self.topic = topic
        self._bus = bus
        self._redis = bus._redis
        self._decode = decode
        self._lease_ms = max(1, round(lease_seconds * 1000))
        self._max_block = min(_MAX_BLOCK, lease_seconds / 3)
        # A busy consumer fetches far more often than leases need renewing; running the ownership
        # script on every fetch would add a round trip to each batch for nothing.
        self._rebalance_every = min(_REBALANCE_EVERY, lease_seconds / 5)
        self._rebalance_due = 0.0
        self._start = start
        self._streams = [bus.stream_key(topic, p) for p in range(bus.partitions)]
        self._partition_of = {s.encode(): p for p, s in enumerate(self._streams)}
        base = f"{bus.prefix}:{topic}:group:{group}"
        self._keys = [f"{base}:members"] + [f"{base}:lease:{p}" for p in range(bus.partitions)]
        self._owned: set[int] = set()
        self._draining: set[int] = set()
        self._recovering: dict[int, str] = {}  # partition -> last pending id handed out again
        self._epochs: dict[int, int] = {}  # partition -> claim number (see ``epoch``)
        self._claims = 0
        self._outstanding: dict[int, set[str]] = defaultdict(set)  # handed out, not acked
        self._buffer: deque[Delivery[T]] = deque()  # read beyond max_count; pending in Redis
        self._joined = False
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed or self._bus._closed

    async def _join(self) -> None:
        """Create the group on every partition (MKSTREAM); an existing group keeps its position."""
        pipe = self._redis.pipeline(transaction=False)
        first = "0" if self._start == "earliest" else "$"
        for stream in self._streams:
            pipe.xgroup_create(stream, self.group, id=first, mkstream=True)
        for result in await pipe.execute(raise_on_error=False):
            if isinstance(result, Exception) and "BUSYGROUP" not in str(result):
                raise result
        self._joined = True

    async def _rebalance(self) -> None:
        busy = {p for p, ids in self._outstanding.items() if ids} | {d.partition for d in self._buffer}
        owned, claimed, draining = await self._bus._rebalance_script(
            keys=self._keys, args=[self.name, self._lease_ms, *sorted(busy)]
        )
        now_owned = {int(p) for p in owned}
        for p in self._owned - now_owned:  # released, or lost when our lease ran out
            self._outstanding.pop(p, None)
            self._recovering.pop(p, None)
            self._epochs.pop(p, None)
        if self._buffer and self._owned - now_owned:
            self._buffer = deque(d for d in self._buffer if d.partition in now_owned)
        # Newly ours — claimed, or held under our name by a previous incarnation that crashed:
        # the partition's pending entries were handed out before and come again, first, in order.
        for p in sorted({int(p) for p in claimed} | (now_owned - self._owned)):
            self._recovering[p] = "-"
            self._outstanding.pop(p, None)
            self._claims += 1
            self._epochs[p] = self._claims
        self._owned = now_owned
        self._draining = {int(p) for p in draining}

    async def _recover(self, max_count: int) -> tuple[list[Delivery[T]], list[DeadLetter]]:
        """Hand out a newly owned partition's pending entries again, oldest first, before new ones."""
        out: list[Delivery[T]] = []
        dead: list[DeadLetter] = []
        for p in sorted(self._recovering):
            if len(out) >= max_count:
                break
            stream = self._streams[p]
            after = self._recovering[p]
            pending: Any = await self._redis.xpending_range(
                stream,
                self.group,
                min=after if after == "-" else f"({after}",
                max="+",
                count=max_count - len(out),
            )
            if not pending:
                del self._recovering[p]
                continue
            ids = [_text(e["message_id"]) for e in pending]
            claimed: Any = await self._redis.xclaim(
                stream, self.group, self.name, min_idle_time=0, message_ids=cast("list[Any]", ids)
            )
            entries = {_text(i): f for i, f in claimed if f}
            gone = [i for i in ids if i not in entries]  # trimmed by MAXLEN while pending
            if gone:
                await self._redis.xack(stream, self.group, *gone)
            # After a failed fetch we re-read our own pending entries: those still in the caller's
            # hands (handed out, or buffered) are not handed out twice.
            in_flight = self._outstanding.get(p, set()) | {d.id for d in self._buffer if d.partition == p}
            for e in pending:
                msg_id = _text(e["message_id"])
                fields = entries.get(msg_id)
                if fields is not None and msg_id not in in_flight:
                    self._take(p, msg_id, fields, int(e["times_delivered"]) + 1, out, dead)
            self._recovering[p] = ids[-1]
        return out, dead

    def _take(
        self,
        p: int,
        msg_id: str,
        fields: dict[bytes, bytes],
        attempt: int,
        out: list[Delivery[T]],
        dead: list[DeadLetter],
    ) -> None:
        key = fields.get(b"k")
        payload = fields.get(b"v")
        if key is None or payload is None:
            dead.append(
                DeadLetter(self.topic, p, _text(key or b""), msg_id, payload or b"", "missing k or v field")
            )
            return
        item = decode_or_park(self._decode, self.topic, p, key.decode(), msg_id, payload, attempt)
        if isinstance(item, DeadLetter):
            dead.append(item)
        else:
            out.append(item)

    async def _read_new(
        self, partitions: list[int], max_count: int, block: float
    ) -> tuple[list[Delivery[T]], list[DeadLetter]]:
        keys = [self._keys[1 + p] for p in partitions] + [self._streams[p] for p in partitions]
        args: list[str | int] = [self.name, self.group, max_count]
        response, tails = await self._bus._read_script(keys=keys, args=args)
        block_ms = int(block * 1000)
        if not response and tails and block_ms >= 1:  # BLOCK 0 would mean forever
            # Nothing new: wait (outside the script, which cannot block) until a held stream grows
            # past the ids seen, then read again under the lease check.
            waits = dict(zip(tails[::2], tails[1::2], strict=True))
            if await self._redis.xread(waits, count=1, block=block_ms):
                response, _ = await self._bus._read_script(keys=keys, args=args)
        out: list[Delivery[T]] = []
        dead: list[DeadLetter] = []
        # The script speaks RESP2 inside: [[stream, entries], ...] whatever the connection's protocol.
        streams = response.items() if isinstance(response, dict) else response or []
        decode, topic, append = self._decode, self.topic, out.append
        for stream, entries in streams:
            p = self._partition_of[stream if isinstance(stream, bytes) else stream.encode()]
            for msg_id, fields in entries:
                mid = _text(msg_id)
                if fields and len(fields) == 4 and fields[0] == b"k" and fields[2] == b"v":
                    key = _text(fields[1])
                    try:
                        value = decode(fields[3])
                    except Exception as exc:  # poison: parked with the decoder's reason
                        dead.append(DeadLetter(topic, p, key, mid, fields[3], reason_for(exc)))
                        continue
                    append(Delivery(topic, p, key, mid, value, 1))
                else:
                    pairs = dict(zip(fields[::2], fields[1::2], strict=False)) if fields else {}
                    self._take(p, mid, pairs, 1, out, dead)
        return out, dead

    async def _park(self, dead: list[DeadLetter]) -> None:
        """Dead letter and ack in one round trip, so poison never blocks its partition."""
        pipe = self._redis.pipeline(transaction=False)
        for d in dead:
            pipe.xadd(
                self._bus.dead_key(self.topic),
                {
                    "payload": d.payload,
                    "reason": d.reason,
                    "key": d.key,
                    "partition": d.partition,
                    "id": d.id,
                    "group": self.group,
                },
                maxlen=DEAD_LETTER_MAXLEN,
                approximate=True,
            )
            pipe.xack(self._streams[d.partition], self.group, d.id)
        await pipe.execute()
        DEAD_LETTERS.labels(self.topic, self.group).inc(len(dead))

    def _hand_out(self, out: list[Delivery[T]], max_count: int) -> list[Delivery[T]]:
        if len(out) > max_count:
            self._buffer.extend(out[max_count:])
            out = out[:max_count]
        outstanding = self._outstanding
        for d in out:
            outstanding[d.partition].add(d.id)
        return out

    async def fetch(self, max_count: int = 100, wait: float = 1.0) -> list[Delivery[T]]:
        if self.closed:
            raise BusError(f"bus: consumer {self.name!r} of {self.group!r} on {self.topic!r} is closed")
        max_count = max(1, max_count)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(wait, 0.0)
        try:
            while True:
                if self.closed:
                    return []
                if not self._joined:
                    await self._join()
                try:
                    now = loop.time()
                    if now >= self._rebalance_due or self._draining or not self._owned:
                        await self._rebalance()
                        self._rebalance_due = now + self._rebalance_every
                    if self._buffer:
                        take = min(max_count, len(self._buffer))
                        return self._hand_out([self._buffer.popleft() for _ in range(take)], max_count)
                    out, dead = await self._recover(max_count)
                    if not out and not dead:
                        remaining = deadline - loop.time()
                        readable = [
                            p
                            for p in sorted(self._owned)
                            if p not in self._draining and p not in self._recovering
                        ]
                        block = min(remaining, self._max_block)
                        if readable:
                            out, dead = await self._read_new(readable, max_count, block)
                        elif block > 0:
                            await asyncio.sleep(block)
                except ResponseError as err:
                    if "NOGROUP" not in str(err):
                        raise
                    self._joined = False  # streams deleted under us: recreate the group and go on
                    continue
                if dead:
                    await self._park(dead)
                if out:
                    return self._hand_out(out, max_count)
                if self.closed or loop.time() >= deadline:
                    return []
        except (RedisError, OSError) as err:
            # The server may have delivered entries whose reply was lost with the connection: they
            # are pending under our name, so the next fetch re-reads our pending entries first.
            for p in self._owned:
                self._recovering.setdefault(p, "-")
            raise self._bus._error(err, f"fetching from {self.topic!r} as {self.group}/{self.name}") from err
        finally:
            if self._closed and self._joined:
                await self._leave()  # closed mid-fetch: undo the renewal this fetch may have made

    async def ack(self, *deliveries: Delivery[Any]) -> None:
        by_partition: dict[int, list[str]] = defaultdict(list)
        for d in deliveries:
            if d.topic != self.topic:
                raise ValueError(f"delivery from topic {d.topic!r} acked on a consumer of {self.topic!r}")
            by_partition[d.partition].append(d.id)
            outstanding = self._outstanding.get(d.partition)
            if outstanding:
                outstanding.discard(d.id)
        if not by_partition:
            return
        try:
            if len(by_partition) == 1:
                [(p, ids)] = by_partition.items()
                await self._redis.xack(self._streams[p], self.group, *ids)
            else:
                pipe = self._redis.pipeline(transaction=False)
                for p, ids in by_partition.items():
                    pipe.xack(self._streams[p], self.group, *ids)
                await pipe.execute()
        except (RedisError, OSError) as err:
            raise self._bus._error(err, f"acking on {self.topic!r} as {self.group}/{self.name}") from err

    def epoch(self, partition: int) -> int:
        return self._epochs.get(partition, 0)

    async def close(self) -> None:
        """Release our leases now; the next member to fetch takes our unacked entries over."""
        if self._closed:
            return
        self._closed = True
        self._buffer.clear()
        if self._joined:
            await self._leave()

    async def _leave(self) -> None:
        if self._bus._closed:
            return
        # Unreachable Redis: our leases expire on their own, which is the crash path anyway.
        with contextlib.suppress(RedisError, OSError):
            await self._bus._leave_script(keys=self._keys, args=[self.name])

    def __aiter__(self) -> AsyncIterator[Delivery[T]]:
        return iterate(self)
