"""Redis Streams bus: the server-mode bus shared by every process of a deployment.

Layout (ADR 0027): a partition's keys share one hash tag, ``{prefix:topic:p}``, so on a Redis
Cluster they live in one slot and a script may touch them together:

- ``{prefix:topic:p}`` — one stream per partition, XADD with approximate MAXLEN so the server
  bounds memory. Consumer groups live inside the stream. An entry holds one message, fields ``k``
  (key) and ``v`` (payload), or (``publish_many``) a batch of them, field ``b``: a msgpack array of
  [key, payload] of one partition, in order (ADR 0031). A batched message's id is
  ``<entry id>/<index>``.
- ``{prefix:topic:p}:group:{g}:acked`` — per batch entry that a member acked only in part, the
  indexes acked so far, so the next owner is not given them again.
- ``{prefix:topic:p}:group:{g}:lease`` — the member owning partition ``p`` for group ``g``, with a
  PX expiry (server time).
- ``prefix:topic:group:{g}:members`` — sorted set of live members, scored by lease expiry.
- ``prefix:topic:dead`` — parked poison: payload, reason, key, partition, id (and the group).

Redis consumer groups alone would spread one partition's entries over every reader and lose
per-key order, so ownership is ours (ADR 0003). Each rebalance renews our membership and reads
the members and the lease holders (one pipeline), computes our fair share (``fair_share``, the
same rule as ``MemoryBus``), then renews, releases (only fully acked partitions) and claims leases
with one compare-and-set script per partition (a second pipeline). "At most one live owner per
partition" rests on each lease key alone: claim is SET NX, renew and release act only where the
holder is us. A new owner first takes over the partition's pending entries (XPENDING + XCLAIM, in
id order, ``attempt`` = delivery count) before reading anything new, and reads new entries only
under its lease, checked atomically with the XREADGROUP: in the same script, or (one server, with
a backlog) by WATCH on the leases and the XREADGROUP in MULTI/EXEC (ADR 0027).

On a single server the per-slot batches collapse into one command (``slot_groups``); on a
cluster they go out as one pipeline, which redis-py splits per node and sends concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import weakref
import zlib
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Generic, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import msgspec
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MovedError, RedisClusterException, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tradesignals.bus._consume import (
    DEAD_LETTER_MAXLEN,
    check_lease,
    check_start,
    decode_or_park,
    fair_share,
    iterate,
    reason_for,
)
from tradesignals.bus.base import BusError, DeadLetter, Delivery, GroupLag, partition_for
from tradesignals.bus.metrics import DEAD_LETTERS
from tradesignals.bus.redis_client import (
    AnyRedis,
    check_tag_free,
    connect,
    pack,
    pipelined,
    read_replies,
    reply_reader,
    slot_groups,
)

T = TypeVar("T")

#: What a failed call to Redis raises; a cluster client's own errors (no node for a slot, a
#: command over several) are not ``RedisError``s.
_REDIS_ERRORS = (RedisError, RedisClusterException, OSError)

#: Attempts at a publish that must be replicated (``wait_replicas``) when the slot moved under it.
_MOVED_ATTEMPTS = 3

#: Messages per XADD script call: big enough to amortise the round trip, small enough that one call
#: holds the (single-threaded) server for about a millisecond.
_XADD_SLICE = 1_000

#: Most keys whose packed XADD head a topic caches (``_xadd_pipelined``) before starting afresh.
_XADD_HEADS_MAX = 100_000

#: Longest single XREADGROUP block. Between blocks a waiting member re-runs the ownership script,
#: so this bounds how late it notices a partition freed by a member that closed or died.
_MAX_BLOCK = 0.25

#: A read that got fewer entries than this makes the next one the Lua read (one round trip) rather
#: than WATCH + MULTI/EXEC (two, but a quarter of the server time per entry): see ``_read_held``.
_WATCH_READ_MIN = 256

#: Longest gap between two rebalances while a member is busy fetching: how late it notices a
#: member that joined (and so hands partitions over).
_REBALANCE_EVERY = 0.05

#: Most messages ``publish_many`` packs into one stream entry (field ``b``) of a partition, and the
#: most payload bytes such an entry holds (one bigger message still gets an entry of its own). The
#: server's work is per entry: with one entry per message, XADD + XREADGROUP + XACK cost one Redis
#: ~6 µs of CPU a message here, a ceiling near 170,000 msgs/s whatever the client did (ADR 0031).
ENTRY_MESSAGES = 64
_ENTRY_BYTES = 256 * 1024

_pack = msgspec.msgpack.Encoder().encode  # a batch entry's [key, payload]s; a partial ack's indexes
_unpack_batch = msgspec.msgpack.Decoder(list[tuple[str, bytes]]).decode
_unpack_indexes = msgspec.msgpack.Decoder(list[int]).decode


def split_id(msg_id: str) -> tuple[str, int | None]:
    """(stream entry id, index in the entry's batch or None for a one-message entry)."""
    entry, sep, index = msg_id.partition("/")
    if not sep:
        return msg_id, None
    if not index.isdigit():
        raise ValueError(f"not a bus message id: {msg_id!r}")
    return entry, int(index)


def entry_messages(fields: dict[bytes, bytes]) -> list[tuple[str, bytes]]:
    """The (key, payload) messages a stream entry holds, in order: one (``k``, ``v``) or a batch
    (``b``). For tools that read the streams directly; raises ValueError on an entry of neither kind."""
    if b"b" in fields:
        try:
            return _unpack_batch(fields[b"b"])
        except msgspec.DecodeError as err:
            raise ValueError(f"unreadable batch entry: {err}") from err
    if b"k" in fields and b"v" in fields:
        return [(fields[b"k"].decode(), fields[b"v"])]
    raise ValueError("an entry without k and v or b fields")


class _Open:
    """A batch entry handed to this member: its size and the indexes not yet acked (or parked).
    The entry is XACKed once none is left; until then the acked ones are recorded (``acked_key``)
    whenever the member acks part of it, so a crash hands only the rest to the next owner."""

    __slots__ = ("left", "recorded", "size")

    def __init__(self, size: int, left: set[int] | None = None, recorded: bool = False) -> None:
        self.size = size
        self.left = set(range(size)) if left is None else left
        self.recorded = recorded


def _pause_collector() -> bool:
    """No cyclic garbage collection while a read's reply arrives and becomes deliveries; True if
    this paused it (``_resume_collector`` then resumes it). Plain calls, no object: an allocation
    here could itself start the collection that the pause is meant to keep off the reply.

    The reply is two lists per entry, alive only until they are deliveries, but a collection
    meanwhile (one every 700 new lists) moves the whole reply to an older generation, and those
    collections, over everything the process holds, cost the consumer more than its own loop:
    measured with ``bench/bus_throughput.py``, full collections per 200,000 messages 9 → 1 and the
    collector's time 2.7 → 0.6 µs a message. Nothing is skipped: allocations still count, and the
    next one after the pause collects. Paused over a read's round trips (bounded by the socket
    timeout) and its parsing, never over a blocking wait; left alone where the process disabled it.
    """
    if gc.isenabled():
        gc.disable()
        return True
    return False


def _resume_collector(paused: bool) -> None:
    if paused:
        gc.enable()


def stream_key(prefix: str, topic: str, partition: int) -> str:
    """The partition's stream; its hash tag is the whole name, shared by the partition's leases."""
    return f"{{{prefix}:{topic}:{partition}}}"


def lease_key(prefix: str, topic: str, group: str, partition: int) -> str:
    return f"{stream_key(prefix, topic, partition)}:group:{group}:lease"


def acked_key(prefix: str, topic: str, group: str, partition: int) -> str:
    """Hash: batch entry id -> msgpack list of the indexes ``group`` acked in it (an entry acked in part)."""
    return f"{stream_key(prefix, topic, partition)}:group:{group}:acked"


def members_key(prefix: str, topic: str, group: str) -> str:
    return f"{prefix}:{topic}:group:{group}:members"


# Renew our membership and list the live members. Server time for every expiry: members on
# different hosts agree. KEYS[1] members zset; ARGV[1] member, ARGV[2] lease ms.
_MEMBERS = """
local lease = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
if redis.call('PTTL', KEYS[1]) < lease then redis.call('PEXPIRE', KEYS[1], lease) end
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

# Live members of a group now (server time of the members key's node). KEYS[1] members zset.
_LIVE_MEMBERS = """
local t = redis.call('TIME')
return redis.call('ZCOUNT', KEYS[1], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), '+inf')
"""

# Entries of a stream after an id (exclusive), at most ARGV[2]: a group's unread where Redis reports
# a nil lag. Counted on the server, so only a number crosses the wire. KEYS[1] stream; ARGV[1] id.
_COUNT_AFTER = """
return #redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', tonumber(ARGV[2]))
"""

#: Most entries counted per partition when Redis cannot report a group's lag: the count holds the
#: server for about a millisecond per 10,000 entries; more unread than this is reported unknown.
_LAG_COUNT_MAX = 10_000

# Compare-and-set on one partition's lease. KEYS[1] the lease; ARGV[1] member, ARGV[2] lease ms,
# ARGV[3] keep | claim | release. keep renews only a lease still ours; claim also takes a free one;
# release drops it only if ours. Returns 1 when we hold the lease afterwards.
_LEASE = """
local holder = redis.call('GET', KEYS[1])
if ARGV[3] == 'release' then
  if holder == ARGV[1] then redis.call('DEL', KEYS[1]) end
  return 0
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if ARGV[3] == 'claim' and not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# Append a batch in one command (a cluster's per-slot batch, or a publish waiting for replicas):
# KEYS are the partition streams touched (one slot on a cluster), ARGV[1] the MAXLEN ('' for
# none), then (key index, kind, a, b) per entry: kind 'm' one message (k = a, v = b), kind 'b' a
# packed batch (b = a). Trimmed once per stream at the end, not per XADD: MAXLEN ~ on every XADD
# cost the server 0.6 µs an entry (INFO commandstats: 1.44 µs against 0.85), and approximate
# trimming once per batch bounds memory as well.
_XADD_MANY = """
local out = {}
local j = 1
for i = 2, #ARGV, 4 do
  local stream = KEYS[tonumber(ARGV[i])]
  if ARGV[i + 1] == 'b' then
    out[j] = redis.call('XADD', stream, '*', 'b', ARGV[i + 2])
  else
    out[j] = redis.call('XADD', stream, '*', 'k', ARGV[i + 2], 'v', ARGV[i + 3])
  end
  j = j + 1
end
if ARGV[1] ~= '' then
  for i = 1, #KEYS do redis.call('XTRIM', KEYS[i], 'MAXLEN', '~', ARGV[1]) end
end
return out
"""

# Read new entries only from partitions whose lease we hold *now*, in one atomic step. A plain
# XREADGROUP from a member whose lease lapsed unnoticed (a paused process: GC, CPU starvation)
# would take ">" entries away from the partition's new owner, which would then decide on a
# partition with bars missing from its state. KEYS: n lease keys, then the n streams (one slot on a
# cluster: one partition); ARGV: member, group, count. Returns {XREADGROUP reply or {}, last entry
# id of each held stream when nothing was read} — the ids let the caller block (XREAD, outside the
# script) until something newer arrives.
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
    """Bus over Redis Streams (a single server or a Redis Cluster); see the module docstring.

    Short socket timeouts and few retries are deliberate: a dead Redis must turn into a clear
    ``BusError`` (or ``ping() == False``) within seconds, not a hang.

    ``wait_replicas``: a publish returns only once that many replicas have the entries (WAIT),
    so what a publish acknowledged survives a failover (a replica promoted); fewer within
    ``wait_timeout`` is a ``BusError`` and the caller publishes again (at least once). 0 (the
    default) acknowledges what the master has, which a failover may lose.

    ``entry_messages``: most messages ``publish_many`` packs into one stream entry per partition
    (ADR 0031); 1 writes one entry per message, as releases before batch entries did, which is how
    a rolling upgrade keeps older consumers reading (operations.md).
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
        cluster: bool = False,
        wait_replicas: int = 0,
        wait_timeout: float = 1.0,
        entry_messages: int = ENTRY_MESSAGES,
    ) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, not {partitions}")
        if wait_replicas < 0:
            raise ValueError(f"wait_replicas must be >= 0, not {wait_replicas}")
        if entry_messages < 1:
            raise ValueError(f"entry_messages must be >= 1, not {entry_messages}")
        self.url = url
        self.entry_messages = entry_messages
        self.partitions = partitions
        self.prefix = check_tag_free("the bus prefix", prefix)
        self.maxlen = maxlen
        self.cluster = cluster
        self.wait_replicas = wait_replicas
        self._wait_ms = max(1, round(wait_timeout * 1000))
        self._where = f"Redis {'Cluster ' if cluster else ''}at {safe_url(url)}"
        self._redis: AnyRedis = connect(
            url,
            cluster=cluster,
            connect_timeout=connect_timeout,
            socket_timeout=max(socket_timeout, _MAX_BLOCK + 1.0),
        )
        self._read_script = self._redis.register_script(_READ_HELD)
        self._xadd_many_script = self._redis.register_script(_XADD_MANY)
        self._streams: dict[str, list[str]] = {}
        self._xadd_heads: dict[str, dict[str, bytes]] = {}  # topic -> key -> packed XADD head
        self._consumers: weakref.WeakSet[RedisConsumer[Any]] = weakref.WeakSet()
        self._closed = False

    def streams(self, topic: str) -> list[str]:
        """The partition streams of ``topic``, computed (and the name checked) once per topic."""
        keys = self._streams.get(topic)
        if keys is None:
            check_tag_free("a topic", topic)
            keys = self._streams[topic] = [stream_key(self.prefix, topic, p) for p in range(self.partitions)]
        return keys

    def stream_key(self, topic: str, partition: int) -> str:
        return self.streams(topic)[partition]

    def dead_key(self, topic: str) -> str:
        return f"{self.prefix}:{topic}:dead"

    def _error(self, err: BaseException, doing: str) -> BusError:
        if isinstance(err, RedisConnectionError | RedisTimeoutError | OSError):
            return BusError(f"bus: {self._where} is unreachable while {doing} ({_one_line(err)})")
        return BusError(f"bus: {self._where} failed while {doing} ({_one_line(err)})")

    def _check_open(self) -> None:
        if self._closed:
            raise BusError(f"bus: the bus on {self._where} is closed")

    async def _replicated(self, writes: Sequence[tuple[str, tuple[Any, ...]]], topic: str) -> list[Any]:
        """Run ``writes`` (key, command) in one pipeline followed by a WAIT on each node written to;
        their replies once ``wait_replicas`` replicas have them all, else ``BusError``.

        WAIT counts the replicas that have every write made *on its connection*, so it must ride
        in the same pipeline (redis-py sends one node's share of a pipeline on one connection) and
        redirections must not be followed: a write re-sent elsewhere would not be covered. A moved
        slot (nothing was written) refreshes the slot map and tries again.
        """
        for attempt in range(_MOVED_ATTEMPTS):
            pipe = self._redis.pipeline(transaction=False)
            for _key, command in writes:
                pipe.execute_command(*command)
            if isinstance(self._redis, RedisCluster):
                await self._redis.initialize()  # the slot map, on first use (a no-op after)
                nodes = {}
                for key, _command in writes:
                    node = self._redis.get_node_from_key(key)
                    if node is None:
                        raise BusError(f"bus: {self._where} has no node for {key!r} now")
                    nodes[node.name] = node
                for node in nodes.values():
                    pipe.execute_command("WAIT", self.wait_replicas, self._wait_ms, target_nodes=node)
                results = await pipe.execute(raise_on_error=False, allow_redirections=False)  # type: ignore[call-arg]
            else:
                pipe.execute_command("WAIT", self.wait_replicas, self._wait_ms)
                results = await pipe.execute(raise_on_error=False)
            replies, acked = results[: len(writes)], results[len(writes) :]
            moved = [r for r in replies if isinstance(r, MovedError)]
            if moved and isinstance(self._redis, RedisCluster) and attempt + 1 < _MOVED_ATTEMPTS:
                await self._redis.nodes_manager.initialize()
                continue
            for reply in [*replies, *acked]:
                if isinstance(reply, Exception):
                    raise reply
            for count in acked:
                if int(count) < self.wait_replicas:
                    raise BusError(
                        f"bus: {self._where}: a publish to {topic!r} reached {count} of "
                        f"{self.wait_replicas} replicas within {self._wait_ms} ms; it may be lost on a "
                        "failover, publish it again"
                    )
            return replies
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def publish(self, topic: str, key: str, payload: bytes) -> str:
        self._check_open()
        stream = self.streams(topic)[partition_for(key, self.partitions)]
        try:
            if not self.wait_replicas:
                msg_id = await self._redis.xadd(
                    stream, {"k": key, "v": payload}, maxlen=self.maxlen, approximate=True
                )
            else:
                cap: tuple[Any, ...] = () if self.maxlen is None else ("MAXLEN", "~", self.maxlen)
                command = ("XADD", stream, *cap, "*", "k", key, "v", payload)
                [msg_id] = await self._replicated([(stream, command)], topic)
        except _REDIS_ERRORS as err:
            raise self._error(err, f"publishing to {topic!r}") from err
        return _text(msg_id)

    async def publish_many(self, topic: str, items: Sequence[tuple[str, bytes]]) -> list[str]:
        """One round trip for the batch: each partition's messages packed into entries of up to
        ``entry_messages`` (ADR 0031), appended by pipelined XADDs on a single server, by a Lua XADD
        loop per hash slot on a cluster (or when the publish waits for replicas).

        Neither is atomic as a whole (a pipeline is not; on a cluster the scripts run per node): a
        failure may leave part of the batch appended, and the caller publishes it again, at least
        once. Large batches go in slices so one call never holds the server for long.
        """
        self._check_open()
        ids: list[str] = []
        for start in range(0, len(items), _XADD_SLICE):
            ids += await self._xadd_many(topic, items[start : start + _XADD_SLICE])
        return ids

    def _entries(self, items: Sequence[tuple[str, bytes]]) -> list[tuple[int, list[int]]]:
        """The stream entries to append for ``items``: (partition, item indexes), each partition's
        items in order, at most ``entry_messages`` and ``_ENTRY_BYTES`` of payload an entry."""
        n = self.partitions
        by_partition: dict[int, list[int]] = {}
        for i, (key, _payload) in enumerate(items):
            p = zlib.crc32(key.encode()) % n  # partition_for
            indexes = by_partition.get(p)
            if indexes is None:
                by_partition[p] = [i]
            else:
                indexes.append(i)
        step = self.entry_messages
        entries: list[tuple[int, list[int]]] = []
        if step == 1:
            return [(p, [i]) for p, indexes in by_partition.items() for i in indexes]
        small = max(len(v) for _, v in items) * step <= _ENTRY_BYTES
        for p, indexes in by_partition.items():
            if small:  # the usual case (bars, ticks): cut by count alone
                entries += [(p, indexes[at : at + step]) for at in range(0, len(indexes), step)]
                continue
            run: list[int] = []
            size = 0
            for i in indexes:
                length = len(items[i][1])
                if run and (len(run) == step or size + length > _ENTRY_BYTES):
                    entries.append((p, run))
                    run, size = [], 0
                run.append(i)
                size += length
            entries.append((p, run))
        return entries

    @staticmethod
    def _message_ids(entries: list[tuple[int, list[int]]], entry_ids: list[str], count: int) -> list[str]:
        """Each item's id from its entry's: the entry id itself, or ``<entry id>/<index>`` in a batch."""
        ids: list[str] = [""] * count
        for (_, indexes), entry_id in zip(entries, entry_ids, strict=True):
            if len(indexes) == 1:
                ids[indexes[0]] = entry_id
            else:
                for j, i in enumerate(indexes):
                    ids[i] = f"{entry_id}/{j}"
        return ids

    def _xadd_head(self, topic: str, key: str) -> bytes:
        """The packed XADD of a one-message entry of ``key`` up to its payload's length."""
        k = key.encode()
        s = self.streams(topic)[zlib.crc32(k) % self.partitions].encode()  # partition_for
        return b"*7\r\n$4\r\nXADD\r\n$%d\r\n%b\r\n$1\r\n*\r\n$1\r\nk\r\n$%d\r\n%b\r\n$1\r\nv\r\n$" % (
            len(s),
            s,
            len(k),
            k,
        )

    async def _xadd_pipelined(
        self, topic: str, items: Sequence[tuple[str, bytes]], entries: list[tuple[int, list[int]]]
    ) -> list[str] | None:
        """A single server's batch: plain XADDs in one pipeline, then XTRIM MAXLEN ~ once per stream
        touched; the entry ids, or None where the connection's replies cannot be read fast
        (``reply_reader``).

        The server's hot path (profiled with ``bench/bus_throughput.py`` and INFO commandstats): an
        XADD costs it 0.85 µs, against 2.7 µs an entry for the Lua loop (each ``redis.call``
        converts its arguments and reply) with MAXLEN on each XADD. The client packs the protocol
        itself (a one-message entry from a cached head per key: command, stream, key) and reads the
        replies straight from hiredis (``read_replies``).
        """
        cache = self._xadd_heads.get(topic)
        if cache is None or len(cache) > _XADD_HEADS_MAX:  # keys are symbols: bounded, but be safe
            cache = self._xadd_heads[topic] = {}
        streams = self.streams(topic)
        parts: list[bytes] = []
        for p, indexes in entries:
            if len(indexes) == 1:
                key, v = items[indexes[0]]
                head = cache.get(key)
                if head is None:
                    head = cache[key] = self._xadd_head(topic, key)
                parts.append(b"%b%d\r\n%b\r\n" % (head, len(v), v))
            else:
                parts.append(pack("XADD", streams[p], "*", "b", _pack([items[i] for i in indexes])))
        data = [b"".join(parts)]
        count = len(entries)
        if self.maxlen is not None:
            touched = sorted({p for p, _ in entries})
            data += [pack("XTRIM", streams[p], "MAXLEN", "~", self.maxlen) for p in touched]
            count += len(touched)
        replies = await pipelined(self._redis, data, count)
        if replies is None:
            return None
        errors = [r for r in replies if isinstance(r, Exception)]
        if errors:
            raise errors[0]
        return list(map(bytes.decode, replies[: len(entries)]))

    async def _xadd_many(self, topic: str, items: Sequence[tuple[str, bytes]]) -> list[str]:
        if not items:
            return []
        entries = self._entries(items)
        if not isinstance(self._redis, RedisCluster) and not self.wait_replicas:
            try:
                fast = await self._xadd_pipelined(topic, items, entries)
            except _REDIS_ERRORS as err:
                raise self._error(err, f"publishing to {topic!r}") from err
            if fast is not None:
                return self._message_ids(entries, fast, len(items))
        streams = self.streams(topic)
        maxlen = "" if self.maxlen is None else self.maxlen
        by_partition: dict[int, list[int]] = defaultdict(list)  # partition -> entry indexes
        for e, (p, _) in enumerate(entries):
            by_partition[p].append(e)
        parts = list(by_partition)
        calls: list[tuple[list[str], list[Any], list[int]]] = []  # keys, args, entry indexes
        for group in slot_groups(self._redis, [streams[p] for p in parts]):
            keys: list[str] = []
            args: list[Any] = [maxlen]
            order: list[int] = []
            for g in group:
                p = parts[g]
                keys.append(streams[p])
                index = len(keys)
                for e in by_partition[p]:
                    indexes = entries[e][1]
                    if len(indexes) == 1:
                        key, payload = items[indexes[0]]
                        args += (index, "m", key, payload)
                    else:
                        args += (index, "b", _pack([items[i] for i in indexes]), "")
                order += by_partition[p]
            calls.append((keys, args, order))
        try:
            if len(calls) == 1 and not self.wait_replicas:
                keys, args, _ = calls[0]
                replies = [await self._xadd_many_script(keys=keys, args=args)]
            elif self.wait_replicas:
                writes = [(keys[0], ("EVAL", _XADD_MANY, len(keys), *keys, *args)) for keys, args, _ in calls]
                replies = await self._replicated(writes, topic)
            else:
                pipe = self._redis.pipeline(transaction=False)
                for keys, args, _ in calls:
                    pipe.execute_command("EVAL", _XADD_MANY, len(keys), *keys, *args)
                replies = await pipe.execute()
        except _REDIS_ERRORS as err:
            raise self._error(err, f"publishing to {topic!r}") from err
        # Each script appended its entries partition by partition: put the ids back in order.
        entry_ids: list[str] = [""] * len(entries)
        for (_, _, positions), reply in zip(calls, replies, strict=True):
            for e, entry_id in zip(positions, reply, strict=True):
                entry_ids[e] = entry_id.decode()  # bytes: scripts reply in RESP2
        return self._message_ids(entries, entry_ids, len(items))

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
        except _REDIS_ERRORS as err:
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
        """XRANGE with exclusive bounds; retained up to ``maxlen`` (approximate) entries per partition.

        A bound inside a batch entry (``<entry id>/<index>``) reads that entry too and keeps only its
        messages past ``after`` or before ``before``; ``count`` counts messages, not entries.
        """
        self._check_open()
        out: list[Delivery[T]] = []
        before_entry, before_index = split_id(before)
        after_entry, after_index = (None, None) if after is None else split_id(after)
        low = "-"  # from the start, else from after ``after``: its batch entry, or the entry after it
        if after_entry is not None:
            low = after_entry if after_index is not None else f"({after_entry}"
        high = before_entry if before_index is not None else f"({before_entry}"
        stream = self.stream_key(topic, partition)
        while len(out) < count:
            try:
                entries: Any = await self._redis.xrange(stream, min=low, max=high, count=count)
            except _REDIS_ERRORS as err:
                raise self._error(err, f"reading the history of {topic!r}") from err
            for raw_id, fields in entries or []:
                entry_id = _text(raw_id)
                if b"b" in fields:
                    try:
                        messages = _unpack_batch(fields[b"b"])
                    except msgspec.DecodeError:
                        continue  # parked when it was consumed
                    first = after_index + 1 if entry_id == after_entry and after_index is not None else 0
                    stop = before_index if entry_id == before_entry and before_index is not None else None
                    for index, (key, payload) in enumerate(messages[first:stop], start=first):
                        item = decode_or_park(
                            decode, topic, partition, key, f"{entry_id}/{index}", payload, 0
                        )
                        if isinstance(item, Delivery):
                            out.append(item)
                    continue
                key, payload = fields.get(b"k"), fields.get(b"v")
                if key is None or payload is None:
                    continue
                if entry_id in (after_entry, before_entry):
                    continue  # named as ``<id>/<n>`` (no id the bus hands out): the bound stays exclusive
                item = decode_or_park(decode, topic, partition, key.decode(), entry_id, payload, 0)
                if isinstance(item, Delivery):
                    out.append(item)
            if len(entries or []) < count:
                break
            low = f"({_text(entries[-1][0])}"
        return out[:count]

    async def lag(self, topic: str, group: str) -> GroupLag | None:
        """XINFO GROUPS per partition (Redis 7 reports ``lag``) and the live members, one round trip.

        Redis reports a nil ``lag`` when it cannot derive it from its counters (an entry deleted
        after the group's last-delivered id, a group moved by XGROUP SETID, counters rebuilt from an
        AOF): those partitions are counted by a second round trip, entries after the last-delivered
        id, at most ``_LAG_COUNT_MAX`` each; past that the total is ``None`` (unknown), never 0.
        """
        self._check_open()
        streams = self.streams(topic)
        pipe = self._redis.pipeline(transaction=False)
        for stream in streams:
            pipe.xinfo_groups(stream)
        key = members_key(self.prefix, topic, group)
        pipe.execute_command("EVAL", _LIVE_MEMBERS, 1, key)
        try:
            *infos, members = await pipe.execute(raise_on_error=False)
            if isinstance(members, Exception):
                raise members
        except _REDIS_ERRORS as err:
            raise self._error(err, f"reading the lag of {group!r} on {topic!r}") from err
        unread = pending = 0
        found = False
        uncounted: list[tuple[str, str]] = []  # (stream, last-delivered id) where lag is nil
        for stream, info in zip(streams, infos, strict=True):
            if isinstance(info, Exception):  # no such stream yet
                continue
            for g in info:
                if _text(g.get("name", b"")) == group:
                    found = True
                    pending += int(g.get("pending") or 0)
                    if g.get("lag") is None:
                        uncounted.append((stream, _text(g.get("last-delivered-id", b"0-0"))))
                    else:
                        unread += int(g["lag"])
        if not found:
            return None
        counted = await self._count_after(uncounted, topic, group)
        total = None if counted is None else unread + counted
        return GroupLag(topic, group, total, pending, int(members))

    async def _count_after(self, where: list[tuple[str, str]], topic: str, group: str) -> int | None:
        """Entries after each (stream, id), summed; None when one holds more than ``_LAG_COUNT_MAX``."""
        if not where:
            return 0
        pipe = self._redis.pipeline(transaction=False)
        for stream, last in where:
            pipe.execute_command("EVAL", _COUNT_AFTER, 1, stream, last, _LAG_COUNT_MAX + 1)
        try:
            counts = await pipe.execute()
        except _REDIS_ERRORS as err:
            raise self._error(err, f"counting the unread of {group!r} on {topic!r}") from err
        if any(int(c) > _LAG_COUNT_MAX for c in counts):
            return None
        return sum(int(c) for c in counts)

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
        self._streams = bus.streams(topic)
        self._partition_of = {s.encode(): p for p, s in enumerate(self._streams)}
        self._members = members_key(bus.prefix, topic, group)
        self._me = name.encode()
        self._last_read = _WATCH_READ_MIN  # entries the last read got: picks the read (``_read_held``)
        self._last_streams = 0  # streams the last read got entries from: spreads its COUNT
        self._leases = [lease_key(bus.prefix, topic, group, p) for p in range(bus.partitions)]
        self._acked = [acked_key(bus.prefix, topic, group, p) for p in range(bus.partitions)]
        # Messages an entry held in the last read: turns max_count into XREADGROUP's COUNT (of
        # entries). Before any read, the most a batch entry holds: a first read too small costs one
        # more round trip; one too big would pull up to that many times what was asked.
        self._per_entry = float(bus.entry_messages)
        self._owned: set[int] = set()
        self._draining: set[int] = set()
        self._recovering: dict[int, str] = {}  # partition -> last pending id handed out again
        self._epochs: dict[int, int] = {}  # partition -> claim number (see ``epoch``)
        self._claims = 0
        self._outstanding: dict[int, set[str]] = defaultdict(set)  # handed out, not acked
        self._open: dict[int, dict[str, _Open]] = {}  # partition -> batch entry id -> what is left of it
        self._buffer: deque[Delivery[T]] = deque()  # read beyond max_count; pending in Redis
        self._waits: dict[tuple[Any, ...], asyncio.Future[Any]] = {}  # cluster: XREADs still blocking
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
        """Renew membership, take our fair share of partitions and renew the leases we keep.

        Two round trips: read (members, lease holders), then one compare-and-set per partition
        we touch. Decisions made on a snapshot that changed meanwhile only fail their CAS (a claim
        someone else won, a lease that lapsed); the next rebalance, 50 ms later, converges.
        """
        busy = {p for p, ids in self._outstanding.items() if ids} | {d.partition for d in self._buffer}
        pipe = self._redis.pipeline(transaction=False)
        pipe.execute_command("EVAL", _MEMBERS, 1, self._members, self.name, self._lease_ms)
        for lease in self._leases:
            pipe.get(lease)
        members, *holders = await pipe.execute()
        me = self.name.encode()
        share = fair_share(len(self._leases), [_text(m) for m in members], self.name)
        mine = [p for p, h in enumerate(holders) if h == me]
        free = [p for p, h in enumerate(holders) if h is None]
        excess = len(mine) - share
        actions: dict[int, str] = {}
        for p in reversed(mine):  # release the highest first, only partitions with nothing unacked
            if excess > 0 and p not in busy:
                actions[p] = "release"
                excess -= 1
            else:
                actions[p] = "keep"
        kept = [p for p in reversed(mine) if actions[p] == "keep"]
        draining = kept[: max(excess, 0)]  # over our share but busy: keep, read nothing new there
        for p in free[: max(share - len(kept), 0)]:
            actions[p] = "claim"
        pipe = self._redis.pipeline(transaction=False)
        for p, action in actions.items():
            pipe.execute_command("EVAL", _LEASE, 1, self._leases[p], self.name, self._lease_ms, action)
        held = await pipe.execute() if actions else []
        owned = [p for (p, action), ok in zip(actions.items(), held, strict=True) if ok and action == "keep"]
        claimed = [
            p for (p, action), ok in zip(actions.items(), held, strict=True) if ok and action == "claim"
        ]
        owned += claimed
        now_owned = {int(p) for p in owned}
        for p in self._owned - now_owned:  # released, or lost when our lease ran out
            self._outstanding.pop(p, None)
            self._open.pop(p, None)
            self._recovering.pop(p, None)
            self._epochs.pop(p, None)
        if self._buffer and self._owned - now_owned:
            self._buffer = deque(d for d in self._buffer if d.partition in now_owned)
        # Newly ours — claimed, or held under our name by a previous incarnation that crashed:
        # the partition's pending entries were handed out before and come again, first, in order.
        for p in sorted({int(p) for p in claimed} | (now_owned - self._owned)):
            self._recovering[p] = "-"
            self._outstanding.pop(p, None)
            self._open.pop(p, None)
            self._claims += 1
            self._epochs[p] = self._claims
        self._owned = now_owned
        self._draining = {p for p in draining if p in now_owned}

    async def _recover(self, max_count: int) -> tuple[list[Delivery[T]], list[DeadLetter]]:
        """Hand out a newly owned partition's pending entries again, oldest first, before new ones."""
        out: list[Delivery[T]] = []
        dead: list[DeadLetter] = []
        for p in sorted(self._recovering):
            if len(out) >= max_count:
                break
            stream = self._streams[p]
            after = self._recovering[p]
            asked = max_count - len(out)
            pending: Any = await self._redis.xpending_range(
                stream, self.group, min=after if after == "-" else f"({after}", max="+", count=asked
            )
            if not pending:
                del self._recovering[p]
                continue
            ids = [_text(e["message_id"]) for e in pending]
            claimed: Any = await self._redis.xclaim(
                stream, self.group, self.name, min_idle_time=0, message_ids=cast("list[Any]", ids)
            )
            entries = {_text(i): f for i, f in claimed if f}
            opens = self._open.setdefault(p, {})
            # Trimmed by MAXLEN while pending, or batch entries with nothing left to hand out.
            settled = [i for i in ids if i not in entries]
            unknown = [i for i, f in entries.items() if b"b" in f and i not in opens]
            acked: dict[str, set[int]] = {}
            if unknown:  # batch entries another member (or our previous life) acked in part
                recorded: Any = await self._redis.hmget(self._acked[p], unknown)
                for entry_id, indexes in zip(unknown, recorded, strict=True):
                    if indexes is not None:
                        with contextlib.suppress(msgspec.DecodeError):
                            acked[entry_id] = set(_unpack_indexes(indexes))
            # After a failed fetch we re-read our own pending entries: those still in the caller's
            # hands (handed out, or buffered) are not handed out twice.
            in_flight = self._outstanding.get(p, set()) | {d.id for d in self._buffer if d.partition == p}
            for e in pending:
                msg_id = _text(e["message_id"])
                fields = entries.get(msg_id)
                attempt = int(e["times_delivered"]) + 1
                if fields is None:
                    continue
                if b"b" in fields:
                    if not self._take_batch(
                        p, msg_id, fields[b"b"], attempt, out, dead, in_flight, acked.get(msg_id)
                    ):
                        settled.append(msg_id)
                elif msg_id not in in_flight:
                    self._take(p, msg_id, fields, attempt, out, dead)
            if settled:
                pipe = self._redis.pipeline(transaction=False)
                pipe.xack(stream, self.group, *settled)
                pipe.hdel(self._acked[p], *settled)
                await pipe.execute()
                for entry_id in settled:
                    opens.pop(entry_id, None)
            if len(pending) < asked:  # the last page: read new entries there from the next read on
                del self._recovering[p]
            else:
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

    def _take_batch(
        self,
        p: int,
        entry_id: str,
        blob: bytes,
        attempt: int,
        out: list[Delivery[T]],
        dead: list[DeadLetter],
        in_flight: set[str] | frozenset[str] = frozenset(),
        acked: set[int] | None = None,
    ) -> bool:
        """The messages of a batch entry still to hand out (not acked, not in the caller's hands),
        in order; an unreadable batch is parked whole. False when nothing of it is left to settle."""
        try:
            messages = _unpack_batch(blob)
        except msgspec.DecodeError as exc:
            dead.append(
                DeadLetter(self.topic, p, "", entry_id, blob, f"unreadable batch entry: {reason_for(exc)}")
            )
            return True
        opens = self._open.setdefault(p, {})
        entry = opens.get(entry_id)
        if entry is None:
            left = set(range(len(messages))) - (acked or set())
            entry = opens[entry_id] = _Open(len(messages), left, recorded=acked is not None)
        if not entry.left:
            return False
        for index in sorted(entry.left):
            msg_id = f"{entry_id}/{index}"
            if msg_id in in_flight:
                continue
            key, payload = messages[index]
            item = decode_or_park(self._decode, self.topic, p, key, msg_id, payload, attempt)
            if isinstance(item, DeadLetter):
                dead.append(item)
            else:
                out.append(item)
        return True

    async def _read_new(
        self, partitions: list[int], max_count: int, block: float
    ) -> tuple[list[Delivery[T]], list[DeadLetter]]:
        response = await self._read_held(partitions, max_count, block)
        paused = _pause_collector()
        try:
            return self._parse(response)
        finally:
            _resume_collector(paused)

    def _parse(self, response: Any) -> tuple[list[Delivery[T]], list[DeadLetter]]:
        out: list[Delivery[T]] = []
        dead: list[DeadLetter] = []
        # The script speaks RESP2 inside: [[stream, entries], ...] whatever the connection's protocol.
        streams = [
            item for reply in response for item in (reply.items() if isinstance(reply, dict) else reply or [])
        ]
        self._last_read = sum(len(entries) for _, entries in streams)
        self._last_streams = sum(1 for _, entries in streams if entries)
        # The hot loop of the consumer (profiled with bench/bus_throughput.py): a stream's entries in
        # one comprehension, ids and keys decoded without type checks (they come as bytes). An entry
        # it cannot take (other fields, a decoder that raises) sends the stream to the careful loop.
        decode, topic, make, unpack = self._decode, self.topic, Delivery, _unpack_batch
        for stream, entries in streams:
            p = self._partition_of[stream if isinstance(stream, bytes) else stream.encode()]
            if entries and len(entries[0][1]) == 2:  # batch entries (publish_many, ADR 0031)
                opens = self._open.get(p)
                if opens is None:
                    opens = self._open[p] = {}
                for raw_id, fields in entries:
                    entry_id = raw_id.decode()
                    if len(fields) == 2 and fields[0] == b"b":
                        try:
                            messages = unpack(fields[1])
                            out += [
                                make(topic, p, k, f"{entry_id}/{j}", decode(v), 1)
                                for j, (k, v) in enumerate(messages)
                            ]
                        except Exception:  # poison inside, or an unreadable batch: one by one
                            self._take_batch(p, entry_id, fields[1], 1, out, dead)
                            continue
                        opens[entry_id] = _Open(len(messages))
                    else:
                        self._take_entry(p, entry_id, fields, out, dead)
                continue
            try:
                fast = [
                    make(topic, p, k.decode(), i.decode(), decode(v), 1)
                    for i, (kf, k, vf, v) in entries
                    if kf == b"k" and vf == b"v"
                ]
            except Exception:
                fast = []
            if len(fast) == len(entries):
                out += fast
                continue
            for msg_id, fields in entries:
                self._take_entry(p, msg_id.decode(), fields, out, dead)
        if self._last_read:
            self._per_entry = max(1.0, len(out) / self._last_read)
        return out, dead

    def _take_entry(
        self, p: int, mid: str, fields: list[bytes], out: list[Delivery[T]], dead: list[DeadLetter]
    ) -> None:
        """One newly read entry of any kind, the careful way (the fast loops could not take it)."""
        if fields and len(fields) == 2 and fields[0] == b"b":
            self._take_batch(p, mid, fields[1], 1, out, dead)
        elif fields and len(fields) == 4 and fields[0] == b"k" and fields[2] == b"v":
            key = fields[1].decode()
            try:
                value = self._decode(fields[3])
            except Exception as exc:  # poison: parked with the decoder's reason
                dead.append(DeadLetter(self.topic, p, key, mid, fields[3], reason_for(exc)))
                return
            out.append(Delivery(self.topic, p, key, mid, value, 1))
        else:
            pairs = dict(zip(fields[::2], fields[1::2], strict=False)) if fields else {}
            self._take(p, mid, pairs, 1, out, dead)

    async def _read_held(
        self, partitions: list[int], max_count: int, block: float, *, script: bool | None = None
    ) -> list[Any]:
        """XREADGROUP replies (one per hash slot group) from the partitions we hold, blocking up to
        ``block`` seconds for the first entry when there is none yet.

        On a single server the read is WATCH + MULTI/EXEC (two round trips, cheap per entry), or
        with ``script`` the Lua read (one round trip, dear per entry). The script serves a consumer
        that keeps up (its last read was small, or it just woke up for the few entries that
        arrived): there one round trip is the bus's publish → delivery latency, and the per-entry
        cost is nothing. A consumer with a backlog reads with WATCH. ``script`` None: choose so.
        """
        if script is None:
            script = self._last_read < _WATCH_READ_MIN
        # COUNT is per stream: spread ``max_count`` over the streams that had entries last time, so
        # a read brings about what the caller asked for, not up to ``max_count`` per stream (what
        # exceeds it waits in the buffer, which only makes garbage collection dearer); one busy
        # stream still gets it all, from the next read on.
        busy = min(len(partitions), self._last_streams) or len(partitions)
        count = max(1, math.ceil(max_count / (busy * self._per_entry)))  # entries, not messages
        groups = [
            [partitions[i] for i in g]
            for g in slot_groups(self._redis, [self._streams[p] for p in partitions])
        ]
        calls: list[tuple[list[str], list[str | int]]] = [
            ([self._leases[p] for p in g] + [self._streams[p] for p in g], [self.name, self.group, count])
            for g in groups
        ]
        paused = _pause_collector()  # over the round trips of the read, not the blocking wait below
        try:
            if not isinstance(self._redis, RedisCluster) and not script:
                replies = [await self._read_watched(partitions, count)]
            elif len(calls) == 1:
                replies = [await self._bus._read_script(keys=calls[0][0], args=calls[0][1])]
            else:
                pipe = self._redis.pipeline(transaction=False)
                for keys, args in calls:
                    pipe.execute_command("EVAL", _READ_HELD, len(keys), *keys, *args)
                replies = await pipe.execute()
            responses = [response for response, _ in replies if response]
            waits = [dict(zip(tails[::2], tails[1::2], strict=True)) for _, tails in replies if tails]
        finally:
            _resume_collector(paused)
        block_ms = int(block * 1000)
        if responses or not waits or block_ms < 1:  # BLOCK 0 would mean forever
            return responses
        # Nothing new: wait (outside the script, which cannot block) until a held stream grows
        # past the ids seen, then read again under the lease check.
        # Then read only the partitions that woke it: on a cluster that is one script on one node
        # instead of a pipeline over all (the others are read by the next fetch, before it blocks).
        if len(waits) == 1:
            wakers: list[Any] = [await self._redis.xread(waits[0], count=1, block=block_ms)]
        else:
            wakers = await self._wait_any(waits, block, block_ms)
        woken = sorted(
            {
                self._partition_of[stream if isinstance(stream, bytes) else stream.encode()]
                for reply in wakers
                for stream, _ in (reply.items() if isinstance(reply, dict) else reply or [])
            }
        )
        if not woken:
            return []
        return await self._read_held(woken, max_count, 0, script=True)

    async def _read_watched(self, partitions: list[int], count: int) -> tuple[Any, list[Any]]:
        """The read script's job on a single server, without Lua: WATCH the leases, check they are
        ours, then XREADGROUP in MULTI/EXEC, which Redis aborts if a lease changed or expired since
        the WATCH. Same guarantee (no read from a partition taken over), a quarter of the server's
        time: inside Lua the reply is converted twice (3.5 µs an entry against 0.9 µs, measured
        with INFO commandstats), which bounded the bus at ~150,000 msgs/s. One connection, two round
        trips; returns (XREADGROUP reply or None, [stream, last id, ...] of the held streams).
        """
        leases = [self._leases[p] for p in partitions]
        me = self._me
        if isinstance(self._redis, RedisCluster):  # a cluster reads with the script, per slot
            raise TypeError("_read_watched needs a single-server client")
        pool = self._redis.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        gets = reply_reader(conn)

        async def replies(n: int) -> list[Any]:
            """The next ``n`` replies, raising the first error only once all are read."""
            if gets is not None:
                got = await read_replies(conn, gets, n)
            else:
                got = []
                for _ in range(n):
                    try:
                        got.append(await conn.read_response())
                    except ResponseError as err:
                        got.append(err)
            for reply in got:
                if isinstance(reply, Exception):
                    raise reply
            return got

        try:
            await conn.send_packed_command(conn.pack_commands([("WATCH", *leases), ("MGET", *leases)]))
            _, holders = await replies(2)
            held = [self._streams[p] for p, h in zip(partitions, holders, strict=True) if h == me]
            if not held:
                await conn.send_command("UNWATCH")
                await conn.read_response()
                return None, []
            commands: list[tuple[Any, ...]] = [
                ("MULTI",),
                ("XREADGROUP", "GROUP", self.group, self.name, "COUNT", count, "STREAMS", *held)
                + (">",) * len(held),
                *(("XREVRANGE", s, "+", "-", "COUNT", 1) for s in held),
                ("EXEC",),
            ]
            await conn.send_packed_command(conn.pack_commands(commands))
            *_, result = await replies(len(commands))  # OK, QUEUED…, then EXEC's
        except BaseException:
            await conn.disconnect()  # mid-transaction: the connection's state is unknown
            raise
        finally:
            await pool.release(conn)
        if result is None:  # a lease changed hands or lapsed since the WATCH: nothing was read
            return None, []
        reply, *lasts = result
        if isinstance(reply, Exception):
            raise reply
        if reply:
            return reply, []
        tails: list[Any] = []
        for stream, last in zip(held, lasts, strict=True):
            tails += (stream, last[0][0] if last else b"0-0")
        return None, tails

    async def _wait_any(self, waits: list[dict[Any, Any]], block: float, block_ms: int) -> list[Any]:
        """A cluster takes one XREAD per slot: they block side by side and the first to return ends
        the wait. The others are left running, not cancelled (a cancelled read costs its connection),
        and a later wait on the same streams joins the one still running: nothing newer than the
        ids it waits on has arrived, so it is as good as a new one.
        """
        tasks = []
        for w in waits:
            streams = tuple(sorted(w))
            task = self._waits.get(streams)
            if task is None or task.done():
                task = self._waits[streams] = asyncio.ensure_future(
                    self._redis.xread(w, count=1, block=block_ms)
                )
            tasks.append(task)
        done, _ = await asyncio.wait(tasks, timeout=block, return_when=asyncio.FIRST_COMPLETED)
        for key in [k for k, t in self._waits.items() if t.done()]:
            finished = self._waits.pop(key)
            if finished not in done and not finished.cancelled():
                finished.exception()  # an older wait's failure: the next read reports the cause
        return [t.result() for t in done]  # raises a failed read's error

    async def _park(self, dead: list[DeadLetter]) -> None:
        """Dead letter and ack in one round trip, so poison never blocks its partition."""
        pipe = self._redis.pipeline(transaction=False)
        by_partition: dict[int, list[str]] = defaultdict(list)
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
            by_partition[d.partition].append(d.id)
        commands, undo = self._settle(by_partition)
        for command in commands:
            pipe.execute_command(*command)
        try:
            await pipe.execute()
        except BaseException:
            undo()
            raise
        DEAD_LETTERS.labels(self.topic, self.group).inc(len(dead))

    def _settle(self, by_partition: dict[int, list[str]]) -> tuple[list[tuple[Any, ...]], Callable[[], None]]:
        """The commands that ack these message ids, and how to undo the bookkeeping if they fail.

        A one-message entry is XACKed. A message of a batch entry is struck off the entry's
        ``_Open``: the entry is XACKed once nothing of it is left (and its record of partial acks
        dropped), else the indexes acked so far are recorded (HSET) for whoever takes it over. A
        message not handed out by this member (acked twice, or after a handover) changes nothing.
        The bookkeeping changes before the commands go out, so concurrent acks of one entry see
        each other; ``undo`` puts it back when they fail, so the caller's retry acks again.
        """
        commands: list[tuple[Any, ...]] = []
        struck: list[tuple[dict[str, _Open], str, _Open, int]] = []
        for p, ids in by_partition.items():
            xack: list[str] = []
            opens = self._open.get(p)
            touched: dict[str, _Open] = {}
            for msg_id in ids:
                entry_id, sep, index = msg_id.partition("/")
                if not sep:
                    xack.append(msg_id)
                    continue
                entry = None if opens is None else opens.get(entry_id)
                if entry is None or opens is None:
                    continue
                i = int(index)
                if i in entry.left:
                    entry.left.discard(i)
                    struck.append((opens, entry_id, entry, i))
                    touched[entry_id] = entry
            record: list[Any] = []
            forget: list[str] = []
            for entry_id, entry in touched.items():
                if entry.left:
                    done = [i for i in range(entry.size) if i not in entry.left]
                    record += (entry_id, _pack(done))
                    entry.recorded = True
                else:
                    xack.append(entry_id)
                    if opens is not None:
                        opens.pop(entry_id, None)
                    if entry.recorded:
                        forget.append(entry_id)
            if xack:
                commands.append(("XACK", self._streams[p], self.group, *xack))
            if record:
                commands.append(("HSET", self._acked[p], *record))
            if forget:
                commands.append(("HDEL", self._acked[p], *forget))

        def undo() -> None:
            for opens, entry_id, entry, i in struck:
                entry.left.add(i)
                opens.setdefault(entry_id, entry)

        return commands, undo

    def _hand_out(self, out: list[Delivery[T]], max_count: int) -> list[Delivery[T]]:
        if len(out) > max_count:
            self._buffer.extend(out[max_count:])
            out = out[:max_count]
        outstanding = self._outstanding
        for d in out:
            outstanding[d.partition].add(d.id)
        return out

    def _readable(self) -> list[int]:
        """Partitions to read new entries from: ours, not being handed over, their pending re-handed."""
        return [p for p in sorted(self._owned) if p not in self._draining and p not in self._recovering]

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
                        # What an earlier read brought beyond its max_count, topped up from what is
                        # there now (no wait): entries of many messages leave a few in the buffer.
                        take = min(max_count, len(self._buffer))
                        out = [self._buffer.popleft() for _ in range(take)]
                        readable = self._readable()
                        if take < max_count and readable:
                            try:
                                more, dead = await self._read_new(readable, max_count - take, 0)
                                if dead:
                                    await self._park(dead)
                            except BaseException:
                                self._buffer.extendleft(reversed(out))  # still to hand out, in order
                                raise
                            out += more
                        return self._hand_out(out, max_count)
                    out, dead = await self._recover(max_count)
                    if not out and not dead:
                        remaining = deadline - loop.time()
                        block = min(remaining, self._max_block)
                        readable = self._readable()
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
        except _REDIS_ERRORS as err:
            # The server may have delivered entries whose reply was lost with the connection: they
            # are pending under our name, so the next fetch re-reads our pending entries first —
            # from the start, not from a recovery's cursor: what a recovery handed out may have
            # been lost with this fetch. What is in the caller's hands or buffered is skipped.
            for p in self._owned:
                self._recovering[p] = "-"
            raise self._bus._error(err, f"fetching from {self.topic!r} as {self.group}/{self.name}") from err
        finally:
            if self._closed and self._joined:
                await self._leave()  # closed mid-fetch: undo the renewal this fetch may have made

    async def ack(self, *deliveries: Delivery[Any]) -> None:
        # Once per message on the hot path: group first, then settle the bookkeeping per partition.
        topic = self.topic
        by_partition: dict[int, list[str]] = {}
        for d in deliveries:
            if d.topic != topic:
                raise ValueError(f"delivery from topic {d.topic!r} acked on a consumer of {topic!r}")
            ids = by_partition.get(d.partition)
            if ids is None:
                ids = by_partition[d.partition] = []
            ids.append(d.id)
        if not by_partition:
            return
        for p, ids in by_partition.items():
            outstanding = self._outstanding.get(p)
            if outstanding:
                outstanding.difference_update(ids)
        commands, undo = self._settle(by_partition)
        if not commands:
            return
        try:
            # Sent and read without redis-py's pipeline where the connection allows.
            replies = None
            if not self._bus.cluster:
                packed = [pack(*command) for command in commands]
                replies = await pipelined(self._redis, packed, len(packed))
            if replies is None:
                pipe = self._redis.pipeline(transaction=False)
                for command in commands:
                    pipe.execute_command(*command)
                replies = await pipe.execute(raise_on_error=False)
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
        except _REDIS_ERRORS as err:
            undo()
            raise self._bus._error(err, f"acking on {self.topic!r} as {self.group}/{self.name}") from err

    def epoch(self, partition: int) -> int:
        return self._epochs.get(partition, 0)

    async def close(self) -> None:
        """Release our leases now; the next member to fetch takes our unacked entries over."""
        if self._closed:
            return
        self._closed = True
        self._buffer.clear()
        self._open.clear()
        for task in self._waits.values():
            task.cancel()
        await asyncio.gather(*self._waits.values(), return_exceptions=True)
        self._waits.clear()
        if self._joined:
            await self._leave()

    async def _leave(self) -> None:
        if self._bus._closed:
            return
        # Unreachable Redis: our leases expire on their own, which is the crash path anyway.
        with contextlib.suppress(*_REDIS_ERRORS):
            pipe = self._redis.pipeline(transaction=False)
            for lease in self._leases:
                pipe.execute_command("EVAL", _LEASE, 1, lease, self.name, self._lease_ms, "release")
            pipe.zrem(self._members, self.name)
            await pipe.execute()

    def __aiter__(self) -> AsyncIterator[Delivery[T]]:
        return iterate(self)
