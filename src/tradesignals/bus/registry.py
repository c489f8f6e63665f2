"""Which processes run which roles: every ``serve`` process heartbeats here; ``/api/health`` reads it.

An entry lives ``ttl_s`` after its last heartbeat (server time), so a process killed with
``kill -9`` drops out on its own; one that shuts down cleanly leaves at once.

On Redis (ADR 0030) both keys share the hash tag ``{prefix:procs}``, so on a Redis Cluster they sit in
one slot and one script reads and prunes them together (the layout of ADR 0027):

- ``{prefix:procs}`` — sorted set of process ids, scored by expiry (ms, the server's clock);
- ``{prefix:procs}:info`` — hash: process id → JSON (host, pid, roles, started at, version, ttl).

In embedded mode (one process, the memory bus) ``MemoryRegistry`` holds the one entry.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any, Protocol

from tradesignals.bus.base import BusError, GroupLag
from tradesignals.bus.redis_client import check_tag_free, connect


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """One ``serve`` process as it announces itself."""

    id: str  # unique per process start (host and pid may repeat across containers or restarts)
    host: str
    pid: int
    roles: tuple[str, ...]
    started_at: float  # Unix seconds
    version: str


@dataclass(frozen=True, slots=True)
class LiveProcess:
    info: ProcessInfo
    last_seen: float  # Unix seconds of its last heartbeat (the registry's clock)


@dataclass(frozen=True, slots=True)
class RoleLag:
    """A role's consumer group and whether it keeps up (see ``keeping_up``)."""

    role: str
    lag: GroupLag
    keeping_up: bool


def keeping_up(lag: GroupLag, max_waiting: int) -> bool:
    """True when the group's unread + pending is at most ``max_waiting`` and someone reads it.

    An unknown unread (Redis could not count it) is not keeping up: health must not claim what it
    cannot see. Messages waiting for a group with no live member are not either.
    """
    if lag.unread is None:
        return False
    waiting = lag.unread + lag.pending
    return waiting <= max_waiting and not (waiting and lag.members == 0)


class ProcessRegistry(Protocol):
    async def beat(self, info: ProcessInfo, ttl_s: float) -> None:
        """Announce (or renew) ``info`` for ``ttl_s`` seconds."""
        ...

    async def live(self) -> list[LiveProcess]:
        """The processes whose last heartbeat has not expired, by host then pid."""
        ...

    async def leave(self, process_id: str) -> None:
        """Drop the entry now (a clean shutdown)."""
        ...

    async def close(self) -> None: ...


def _sorted(found: list[LiveProcess]) -> list[LiveProcess]:
    return sorted(found, key=lambda p: (p.info.host, p.info.pid, p.info.id))


class MemoryRegistry:
    """The registry of one process (embedded mode), or of a test's several registrations."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[ProcessInfo, float, float]] = {}  # id → info, seen, expiry

    async def beat(self, info: ProcessInfo, ttl_s: float) -> None:
        now = time.time()
        self._entries[info.id] = (info, now, now + ttl_s)

    async def live(self) -> list[LiveProcess]:
        now = time.time()
        for pid in [k for k, (_, _, expiry) in self._entries.items() if expiry <= now]:
            del self._entries[pid]
        return _sorted([LiveProcess(info, seen) for info, seen, _ in self._entries.values()])

    async def leave(self, process_id: str) -> None:
        self._entries.pop(process_id, None)

    async def close(self) -> None:
        return None


# Both scripts first read the server's clock (``now``, ms) and prune the entries that lapsed.
_PRUNE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #gone > 0 then
  redis.call('HDEL', KEYS[2], unpack(gone))
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
end
"""

# KEYS[1] zset id → expiry ms, KEYS[2] hash id → JSON. ARGV[1] id, ARGV[2] ttl ms, ARGV[3] JSON.
_BEAT = (
    _PRUNE
    + """
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
for _, k in ipairs(KEYS) do
  if redis.call('PTTL', k) < ttl then redis.call('PEXPIRE', k, ttl) end
end
return now
"""
)

# The live entries: flat list id, expiry ms, JSON, ... (expired ones are pruned first).
_LIVE = (
    _PRUNE
    + """
local live = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local out = {}
for i = 1, #live, 2 do
  out[#out + 1] = live[i]
  out[#out + 1] = live[i + 1]
  out[#out + 1] = redis.call('HGET', KEYS[2], live[i]) or ''
end
return out
"""
)

_LEAVE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""


def registry_keys(prefix: str) -> tuple[str, str]:
    tag = f"{{{check_tag_free('the bus prefix', prefix)}:procs}}"
    return tag, f"{tag}:info"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisRegistry:
    """The registry of a deployment, beside its bus (same Redis, same prefix)."""

    def __init__(self, url: str, *, prefix: str = "ts", cluster: bool = False) -> None:
        self.keys = registry_keys(prefix)
        self._redis = connect(url, cluster=cluster)

    async def _eval(self, script: str, *args: Any) -> Any:
        try:
            return await asyncio.wait_for(self._redis.eval(script, 2, *self.keys, *args), timeout=5.0)
        except TimeoutError as exc:
            raise BusError("the process registry did not answer in 5 s") from exc
        except Exception as exc:  # redis errors, a cluster's own errors, OSError: one kind for callers
            raise BusError(f"the process registry: {type(exc).__name__}: {str(exc)[:200]}") from exc

    async def beat(self, info: ProcessInfo, ttl_s: float) -> None:
        ttl_ms = max(1, round(ttl_s * 1000))
        body = {
            "host": info.host,
            "pid": info.pid,
            "roles": list(info.roles),
            "started_at": info.started_at,
            "version": info.version,
            "ttl_ms": ttl_ms,
        }
        await self._eval(_BEAT, info.id, ttl_ms, json.dumps(body, separators=(",", ":")))

    async def live(self) -> list[LiveProcess]:
        flat = await self._eval(_LIVE)
        found: list[LiveProcess] = []
        for i in range(0, len(flat), 3):
            raw = _text(flat[i + 2])
            if not raw:
                continue
            body = json.loads(raw)
            info = ProcessInfo(
                id=_text(flat[i]),
                host=str(body["host"]),
                pid=int(body["pid"]),
                roles=tuple(str(r) for r in body["roles"]),
                started_at=float(body["started_at"]),
                version=str(body["version"]),
            )
            last_seen = (float(_text(flat[i + 1])) - int(body["ttl_ms"])) / 1000
            found.append(LiveProcess(info, last_seen))
        return _sorted(found)

    async def leave(self, process_id: str) -> None:
        await self._eval(_LEAVE, process_id)

    async def close(self) -> None:
        await self._redis.aclose()
