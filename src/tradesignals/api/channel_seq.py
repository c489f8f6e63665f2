"""Durable per-channel sequence numbers for WebSocket delivery, the same on every API node.

A ``ChannelLog`` gives each message of a channel its sequence number once, keeps the last
``retention`` messages of each channel (for ``since`` and for catching a lagged client up), and
hands every message to every node's ``tail`` (each node then delivers it to its own sockets). The
frame is encoded once, with its ``seq``, and those bytes go to every client on every node.

Two implementations meet one contract (tests/integration/api/test_channel_log_contract.py):

- ``RedisChannelLog`` (server mode, one Redis or a Redis Cluster): a channel's keys share one hash
  tag, so one Lua script on that slot does the ``once`` check, ``INCR`` on the channel's sequence
  key and ``XADD`` of the frame to the channel's capped stream under the id ``{seq}-0`` (so a replay
  is an ``XRANGE`` by sequence number), and the frame goes onto one capped fan-out stream that
  every node reads with ``XREAD`` from its own cursor: no group, no per-node state left in Redis
  when a node stops. On one server the same script does the fan-out append; on a cluster it is a
  second step (``RedisChannelLog``'s docstring: how a step lost with a dead node is repaired).
  ``once`` (the bus message id of the source) makes a redelivered source message a no-op for
  numbering, so at-least-once delivery on the bus never numbers one message twice.
- ``MemoryChannelLog`` (embedded mode): the same in one process.

A channel that has never had a message is at sequence 0 and costs nothing (reading it creates no
key); sequence keys are never trimmed, so a number never goes back.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson


@dataclass(frozen=True, slots=True)
class Entry:
    """One message of one channel: its number and the exact bytes every subscriber is sent."""

    channel: str
    seq: int
    frame: str  # text: WebSocket text frames carry str, so it is decoded once here, not per client


def frame_body(channel: str, type_: str, data: Any) -> bytes:
    """The frame without its ``seq``: ``{"channel", "type", "data"}``; the log puts ``seq`` first."""
    return orjson.dumps({"channel": channel, "type": type_, "data": data})


def with_seq(body: bytes, seq: int) -> str:
    """``{"seq": N, ...body}``: the number put in front of the encoded body, so data is encoded once."""
    return '{"seq":' + str(seq) + "," + body[1:].decode()


Item = tuple[str, str, Any, str | None]
"""(channel, type, data, once) for ``append_many``."""


class ChannelLog(Protocol):
    async def append(self, channel: str, type_: str, data: Any, *, once: str | None = None) -> int | None:
        """Number, store and fan out one message; returns its seq (None: ``once`` was seen before on
        this channel — the same ``once`` on another channel is another message)."""
        ...

    async def append_many(self, items: Sequence[Item]) -> list[int | None]:
        """``append`` for each (channel, type, data, once), in order; one round trip where possible."""
        ...

    async def current(self, channel: str) -> int:
        """The last seq given on ``channel`` (0: none yet)."""
        ...

    async def read(self, channel: str, after: int, count: int) -> list[Entry]:
        """Up to ``count`` retained messages with seq > ``after``, oldest first.

        Retention is bounded: when the first entry returned is not ``after + 1`` (or nothing is
        returned while ``current`` is past ``after``), the messages between were trimmed.
        """
        ...

    async def tail_start(self) -> str:
        """A cursor at the end of the fan-out now: ``tail`` from it returns only later messages."""
        ...

    async def tail(self, cursor: str, *, count: int = 1000, wait: float = 0.5) -> tuple[str, list[Entry]]:
        """Messages of every channel appended after ``cursor`` (oldest first) and the next cursor."""
        ...

    async def close(self) -> None: ...


class MemoryChannelLog:
    """The in-process log (embedded mode): one node, so the fan-out is a list every reader walks."""

    def __init__(self, *, retention: int = 10_000, fanout: int = 100_000, once_keys: int = 100_000) -> None:
        self.retention = retention
        self._seq: dict[str, int] = {}
        self._rings: dict[str, deque[Entry]] = {}
        self._fanout: deque[Entry] = deque(maxlen=fanout)
        self._fanout_end = 0  # how many entries were ever put on the fan-out
        self._once: OrderedDict[str, None] = OrderedDict()
        self._once_keys = once_keys
        self._changed = asyncio.Event()

    async def append(self, channel: str, type_: str, data: Any, *, once: str | None = None) -> int | None:
        if once is not None:
            once = f"{channel}\0{once}"  # per channel, as the Redis log's once keys are
            if once in self._once:
                return None
            self._once[once] = None
            if len(self._once) > self._once_keys:
                self._once.popitem(last=False)
        seq = self._seq.get(channel, 0) + 1
        self._seq[channel] = seq
        entry = Entry(channel, seq, with_seq(frame_body(channel, type_, data), seq))
        ring = self._rings.get(channel)
        if ring is None:
            ring = self._rings[channel] = deque(maxlen=self.retention)
        ring.append(entry)
        self._fanout.append(entry)
        self._fanout_end += 1
        self._changed.set()
        return seq

    async def append_many(self, items: Sequence[Item]) -> list[int | None]:
        return [await self.append(c, t, d, once=o) for c, t, d, o in items]

    async def current(self, channel: str) -> int:
        return self._seq.get(channel, 0)

    async def read(self, channel: str, after: int, count: int) -> list[Entry]:
        ring = self._rings.get(channel)
        if not ring or ring[-1].seq <= after:
            return []
        start = max(0, (after + 1) - ring[0].seq)  # seqs in a ring are consecutive
        return [ring[i] for i in range(start, min(len(ring), start + count))]

    async def tail_start(self) -> str:
        return str(self._fanout_end)

    async def tail(self, cursor: str, *, count: int = 1000, wait: float = 0.5) -> tuple[str, list[Entry]]:
        at = int(cursor)
        if at >= self._fanout_end:
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=wait)
            except TimeoutError:
                return cursor, []
        first_kept = self._fanout_end - len(self._fanout)
        at = max(at, first_kept)  # a reader that fell past the cap skips what was trimmed
        n = min(count, self._fanout_end - at)
        base = at - first_kept
        out = [self._fanout[base + i] for i in range(n)]
        return str(at + n), out

    async def close(self) -> None:
        return None


# One channel's keys, one hash slot (``{prefix:ws:<channel>}``): KEYS = seq, log[, once]
# ARGV: frame body (starts with '{'), log maxlen, once ttl (s)
# Returns the new seq; for a ``once`` seen before, {its seq, its frame} (0 once the frame is trimmed).
_NUMBER = """
if #KEYS == 3 then
  local seen = redis.call('GET', KEYS[3])
  if seen then
    local rows = redis.call('XRANGE', KEYS[2], seen .. '-0', seen .. '-0')
    if rows[1] then return {tonumber(seen), rows[1][2][2]} end
    return 0
  end
end
local seq = redis.call('INCR', KEYS[1])
local frame = '{"seq":' .. seq .. ',' .. string.sub(ARGV[1], 2)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], seq .. '-0', 'f', frame)
if #KEYS == 3 then redis.call('SET', KEYS[3], seq, 'EX', ARGV[3]) end
return seq
"""


# A single server (no slots): number, log and fan out in one script, atomically.
# KEYS = seq, log, fan-out[, once]; ARGV: frame body, log maxlen, once ttl, channel, fan-out maxlen
_APPEND = """
if #KEYS == 4 and redis.call('GET', KEYS[4]) then return 0 end
local seq = redis.call('INCR', KEYS[1])
local frame = '{"seq":' .. seq .. ',' .. string.sub(ARGV[1], 2)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], seq .. '-0', 'f', frame)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'c', ARGV[4], 's', seq, 'f', frame)
if #KEYS == 4 then redis.call('SET', KEYS[4], seq, 'EX', ARGV[3]) end
return seq
"""

# Step 2 of a split append: KEYS = fan-out; ARGV: maxlen, then (channel, seq, frame) per message.
_FAN_OUT = """
for i = 2, #ARGV, 3 do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'c', ARGV[i], 's', ARGV[i + 1], 'f', ARGV[i + 2])
end
return (#ARGV - 1) / 3
"""


class RedisChannelLog:
    """The log on Redis (server mode), shared by every API node; see the module docstring.

    One key layout for one Redis server and a Redis Cluster (ADR 0017 amendment): a channel's keys
    share the hash tag ``{prefix:ws:<channel>}``; the fan-out stream is one key of its own. On a
    single server an append is one script, atomic (``_APPEND``: the old guarantee, one round trip).
    On a cluster (``cluster=True``; or ``split=True`` on one server, which the tests use to prove
    the cluster's path there too) an append is two steps, because the fan-out stream and a
    channel's keys are in different slots. Step 1 is one script on the channel's slot (sequence
    key, capped log, ``once`` key): the ``once`` check, ``INCR``, the frame into the log, the
    ``once`` key set to the seq, atomically. Step 2 appends the batch's frames to the fan-out
    stream (one script on its one key). A node that dies
    between the two leaves the message numbered and logged but not fanned out; its bus message was
    not acked, so the bus redelivers it (to this node or another, within ``TS_BUS_LEASE_S``), step 1
    finds the ``once`` key and hands back the logged frame, and step 2 fans it out then. A ``once``
    seen before is therefore fanned out again on every redelivery: the tail may carry one
    (channel, seq) twice, always with the same bytes, and subscribers skip a seq they have
    (``seq <= last``). A message appended without ``once`` (bars, ``Hub.publish``) whose step 2 is
    lost reaches its subscribers with the channel's next message (the gap is read from the log)
    or on a resume with ``since``.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        retention: int = 10_000,
        fanout: int = 100_000,
        once_ttl_s: int = 86_400,
        cluster: bool = False,
        split: bool | None = None,
        client: Callable[[], Any] | None = None,
    ) -> None:
        import redis.asyncio as aioredis

        from tradesignals.bus.redis_client import check_tag_free, connect

        self.prefix = check_tag_free("the channel log's prefix", prefix)
        self.retention = retention
        self.fanout = fanout
        self.once_ttl_s = once_ttl_s
        self.cluster = cluster
        self.split = cluster if split is None else split
        if cluster and not self.split:
            raise ValueError("a Redis Cluster needs the split append (the fan-out is another slot)")
        self._pool: Any = None
        if client is not None:
            self._redis: Any = client()
        elif cluster:
            self._redis = connect(url, cluster=True)
        else:
            # A bounded pool that waits for a free connection: a burst of subscribes (each reads
            # the channel's seq) queues for up to 5 s rather than failing with "too many connections".
            self._pool = aioredis.BlockingConnectionPool.from_url(
                url, max_connections=64, timeout=5, socket_connect_timeout=2.0
            )
            self._redis = aioredis.Redis(connection_pool=self._pool)
        self._number = self._redis.register_script(_NUMBER)
        self._append_atomic = self._redis.register_script(_APPEND)
        self._fan = self._redis.register_script(_FAN_OUT)

    def _tag(self, channel: str) -> str:
        """The hash tag of one channel's keys: they share a slot, so one script may touch them all."""
        return "{" + f"{self.prefix}:ws:{channel}" + "}"

    def _seq_key(self, channel: str) -> str:
        return self._tag(channel) + ":seq"

    def _stream_key(self, channel: str) -> str:
        return self._tag(channel) + ":log"

    def _once_key(self, channel: str, once: str) -> str:
        return self._tag(channel) + ":once:" + once

    @property
    def fanout_key(self) -> str:
        return f"{self.prefix}:wsfanout"

    def _call(self, channel: str, type_: str, data: Any, once: str | None) -> tuple[list[str], list[Any]]:
        keys = [self._seq_key(channel), self._stream_key(channel)]
        if once is not None:
            keys.append(self._once_key(channel, once))
        return keys, [frame_body(channel, type_, data), self.retention, self.once_ttl_s]

    async def append(self, channel: str, type_: str, data: Any, *, once: str | None = None) -> int | None:
        return (await self.append_many([(channel, type_, data, once)]))[0]

    async def append_many(self, items: Sequence[Item]) -> list[int | None]:
        if not items:
            return []
        if not self.split:
            return await self._append_many_atomic(items)
        calls = [self._call(channel, type_, data, once) for channel, type_, data, once in items]
        # Step 1: number and log each message on its channel's slot (one pipeline; on a cluster
        # redis-py sends each node its share).
        if len(calls) == 1 and not self.cluster:  # (split on one server: the tests)
            replies = [await self._number(keys=calls[0][0], args=calls[0][1])]
        else:
            async with self._redis.pipeline(transaction=False) as pipe:
                for keys, args in calls:
                    if self.cluster:  # EVAL: a cluster pipeline does not load scripts on NOSCRIPT
                        pipe.execute_command("EVAL", _NUMBER, len(keys), *keys, *args)
                    else:
                        await self._number(keys=keys, args=args, client=pipe)
                replies = await pipe.execute()
        out: list[int | None] = []
        fan: list[tuple[str, int, str]] = []
        for (channel, _t, _d, _o), (_keys, args), reply in zip(items, calls, replies, strict=True):
            if isinstance(reply, list):  # seen before: fan the logged frame out again (repair)
                seq = int(reply[0])
                fan.append((channel, seq, reply[1].decode() if isinstance(reply[1], bytes) else reply[1]))
                out.append(None)
            elif int(reply) == 0:  # seen before and no longer retained: long since fanned out
                out.append(None)
            else:
                seq = int(reply)
                fan.append((channel, seq, with_seq(args[0], seq)))
                out.append(seq)
        if fan:
            await self._fan_out(fan)
        return out

    async def _fan_out(self, fan: Sequence[tuple[str, int, str]]) -> None:
        """Step 2: (channel, seq, frame) onto the one fan-out stream, in order: one script (one key)."""
        args: list[Any] = [self.fanout]
        for channel, seq, frame in fan:
            args += (channel, seq, frame)
        await self._fan(keys=[self.fanout_key], args=args)

    async def _append_many_atomic(self, items: Sequence[Item]) -> list[int | None]:
        """A single server: each message numbered, logged and fanned out by one script."""
        calls = []
        for channel, type_, data, once in items:
            keys = [self._seq_key(channel), self._stream_key(channel), self.fanout_key]
            if once is not None:
                keys.append(self._once_key(channel, once))
            args = [frame_body(channel, type_, data), self.retention, self.once_ttl_s, channel, self.fanout]
            calls.append((keys, args))
        if len(calls) == 1:
            return [int(await self._append_atomic(keys=calls[0][0], args=calls[0][1])) or None]
        async with self._redis.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                await self._append_atomic(keys=keys, args=args, client=pipe)
            replies = await pipe.execute()
        return [int(r) or None for r in replies]

    async def current(self, channel: str) -> int:
        value = await self._redis.get(self._seq_key(channel))
        return int(value) if value is not None else 0

    async def read(self, channel: str, after: int, count: int) -> list[Entry]:
        rows = await self._redis.xrange(self._stream_key(channel), min=f"({after}-0", max="+", count=count)
        return [Entry(channel, int(rid.split(b"-", 1)[0]), fields[b"f"].decode()) for rid, fields in rows]

    async def tail_start(self) -> str:
        rows = await self._redis.xrevrange(self.fanout_key, count=1)
        return rows[0][0].decode() if rows else "0-0"

    async def tail(self, cursor: str, *, count: int = 1000, wait: float = 0.5) -> tuple[str, list[Entry]]:
        reply = await self._redis.xread(
            {self.fanout_key: cursor}, count=count, block=max(1, int(wait * 1000))
        )
        if not reply:
            return cursor, []
        rows = reply[0][1]
        out = [Entry(f[b"c"].decode(), int(f[b"s"]), f[b"f"].decode()) for _, f in rows]
        return rows[-1][0].decode(), out

    async def close(self) -> None:
        await self._redis.aclose()
        if self._pool is not None:
            await self._pool.disconnect()


__all__ = ["ChannelLog", "Entry", "Item", "MemoryChannelLog", "RedisChannelLog", "frame_body", "with_seq"]
