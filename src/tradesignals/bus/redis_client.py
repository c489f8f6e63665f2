"""One Redis client for the bus and the online feature store: a single server or a Redis Cluster.

The deployment chooses (``TS_REDIS_CLUSTER``, read by the wiring); the code above this module is
the same for both because every multi-key operation it sends touches one hash slot (ADR 0027):
keys that must be read or written together carry a hash tag, and batches are split by slot
(``slot_groups``) before they are sent. On a single server the split is a no-op.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeAlias, cast

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

try:  # what redis-py's hiredis parser has its Reader return while a reply is still incomplete
    from redis._parsers.hiredis import NOT_ENOUGH_DATA as _NOT_ENOUGH_DATA
except ImportError:  # pragma: no cover - another redis-py: callers fall back to their slow path
    _NOT_ENOUGH_DATA = None

AnyRedis: TypeAlias = aioredis.Redis | RedisCluster


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


def _packed(base: type[Any]) -> type[Any]:
    if not hasattr(hiredis, "pack_command") or issubclass(base, _HiredisPacking):
        return base
    return type(f"Packed{base.__name__}", (_HiredisPacking, base), {})


def reply_reader(conn: Any) -> Callable[[], Any] | None:
    """The ``gets`` of a connection's hiredis Reader, for ``read_replies``; None where redis-py
    parses otherwise (no hiredis, or a redis-py whose parser no longer holds one): the caller then
    takes its ordinary path. ``tests/integration/bus/test_redis_streams.py`` checks it is found.
    """
    reader = getattr(getattr(conn, "_parser", None), "_reader", None)
    if _NOT_ENOUGH_DATA is None or not isinstance(reader, hiredis.Reader):
        return None
    return cast("Callable[[], Any]", reader.gets)


def pack(*args: Any) -> bytes:
    """One command in the protocol, packed by hiredis (for ``pipelined``)."""
    return cast("bytes", hiredis.pack_command(cast("Any", args)))


async def pipelined(client: AnyRedis, packed: Sequence[bytes], count: int) -> list[Any] | None:
    """Send commands already packed (``count`` of them) on one connection of a single-server
    client and return their replies, errors as exception objects; None where that cannot be done
    fast (a cluster, or no hiredis reader: ``reply_reader``), for the caller's ordinary path.

    redis-py's own pipeline costs ~8 µs of Python per command and reply, which the bus's hot paths
    (a batch's XADDs, an ack's XACKs) cannot afford. A failure mid-way drops the connection: its
    replies would be out of step with the next command's.
    """
    if isinstance(client, RedisCluster):
        return None
    pool = client.connection_pool
    conn = await pool.get_connection()  # type: ignore[no-untyped-call]

    async def attempt() -> list[Any]:
        await conn.connect()  # again after a failed attempt (a no-op while connected)
        gets = reply_reader(conn)  # a new connection has a new reader
        if gets is None:
            raise RedisConnectionError("the connection lost its hiredis reader")
        await conn.send_packed_command(packed)
        return await read_replies(conn, gets, count)

    async def failed(_error: Exception) -> None:
        await conn.disconnect()

    try:
        if reply_reader(conn) is None:
            return None
        # Retried like redis-py's own commands (the client's Retry: a connection that broke, e.g.
        # after a Redis restart, is replaced); what the first attempt wrote may be written again,
        # which the bus allows (at least once).
        return cast("list[Any]", await conn.retry.call_with_retry(attempt, failed))
    except BaseException:
        await conn.disconnect()
        raise
    finally:
        await pool.release(conn)


async def read_replies(conn: Any, gets: Callable[[], Any], count: int) -> list[Any]:
    """The next ``count`` replies on ``conn``, error replies as exception objects (not raised).

    A pipeline of many small commands (XADD) has as many replies, and redis-py's
    ``read_response`` costs ~8 µs of Python each (its timeout context, checks, an await): far more
    than the command. Replies already buffered are taken straight from hiredis (~0.3 µs each);
    ``read_response`` only waits for more bytes, with the socket timeout and disconnect-on-failure
    it always has. On any exception the caller must drop the connection: replies are left unread.
    """
    replies: list[Any] = []
    append = replies.append
    for _ in range(count):
        reply = gets()
        if reply is _NOT_ENOUGH_DATA:
            try:
                reply = await conn.read_response()
            except ResponseError as err:  # an error reply: read, the connection still in step
                reply = err
        append(reply)
    return replies


def connect(
    url: str,
    *,
    cluster: bool = False,
    connect_timeout: float = 2.0,
    socket_timeout: float = 5.0,
    retries: int = 2,
) -> AnyRedis:
    """A client for ``url``: with ``cluster``, a ``RedisCluster`` that discovers the other nodes.

    Few, short retries on purpose: a dead Redis must become a clear error within seconds, and the
    callers (engine, ingest) retry with their own back-off. A cluster client also refreshes its
    slot map and retries on a moved slot or a failed node, which is how it follows a failover.
    """
    retry = Retry(ExponentialBackoff(cap=0.2, base=0.02), retries)
    if cluster:
        client = RedisCluster.from_url(
            url,
            socket_connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
            retry=retry,
        )
        # Nodes are made from these kwargs (the startup node is already made: patch it too).
        kwargs = client.nodes_manager.connection_kwargs
        kwargs["connection_class"] = _packed(kwargs.get("connection_class") or aioredis.Connection)
        for node in client.nodes_manager.startup_nodes.values():
            node.connection_class = _packed(node.connection_class)
        return client
    single: aioredis.Redis = aioredis.Redis.from_url(
        url, socket_connect_timeout=connect_timeout, socket_timeout=socket_timeout, retry=retry
    )
    pool = single.connection_pool
    pool.connection_class = _packed(pool.connection_class)
    return single


def is_cluster(client: AnyRedis) -> bool:
    return isinstance(client, RedisCluster)


def slot_groups(client: AnyRedis, keys: Sequence[str]) -> list[list[int]]:
    """Indexes of ``keys`` grouped so each group may go into one multi-key command or script.

    A single server takes any keys together (one group, in order); a cluster only keys of one
    hash slot. Order within a group follows ``keys``.
    """
    if not isinstance(client, RedisCluster):
        return [list(range(len(keys)))] if keys else []
    groups: dict[int, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key_slot(key.encode()), []).append(i)
    return list(groups.values())


def check_tag_free(what: str, value: str) -> str:
    """Braces in a name would move the hash tag our key layout relies on (ADR 0027)."""
    if "{" in value or "}" in value:
        raise ValueError(f"{what} must not contain '{{' or '}}' (Redis Cluster hash tags), not {value!r}")
    return value
