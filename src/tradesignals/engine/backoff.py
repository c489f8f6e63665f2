"""Retry a call to Redis or PostgreSQL with capped back-off while it is unreachable.

The one rule every role follows when a dependency goes away after start (a Redis restart, a
PostgreSQL failover, ``pg_terminate_backend``): log the reason once per try (``{component}.{dependency}_retry``),
count it (``ts_retries_total``), wait 50 ms doubling to 2 s, and give up after ``limit_s`` — or at
once when the role is stopping — by raising the last error, so the process fails and its supervisor
restarts it. Callers only retry what is safe to retry: idempotent writes, reads, and publishes
whose landing they check first (``engine.ingest``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from tradesignals.engine import stage_metrics

log = structlog.get_logger(__name__)

R = TypeVar("R")

FIRST_DELAY_S = 0.05
MAX_DELAY_S = 2.0


async def with_backoff(
    call: Callable[[], Awaitable[R]],
    *,
    what: str,
    component: str,
    dependency: str,
    retry_on: tuple[type[BaseException], ...],
    stop: asyncio.Event,
    limit_s: float,
    never_retry: tuple[type[BaseException], ...] = (),
    before_retry: Callable[[], Awaitable[None]] | None = None,
) -> R:
    """``await call()`` until it succeeds; see the module docstring for the rule.

    ``before_retry`` runs after each wait and before the next try (e.g. to find out whether the
    failed try landed after all); its own ``retry_on`` errors count as one more failed try.
    """
    loop = asyncio.get_running_loop()
    give_up = loop.time() + limit_s
    delay = FIRST_DELAY_S
    counter = stage_metrics.RETRIES.labels(component, dependency)
    pending_check = False
    while True:
        try:
            if pending_check and before_retry is not None:
                await before_retry()
            pending_check = False
            return await call()
        except never_retry:
            raise
        except retry_on as exc:
            if stop.is_set() or loop.time() + delay > give_up:
                raise
            counter.inc()
            log.warning(f"{component}.{dependency}_retry", what=what, error=str(exc)[:300], retry_in_s=delay)
            with contextlib.suppress(TimeoutError):  # woken early by a shutdown
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, MAX_DELAY_S)
            pending_check = True


BUS_RETRY_S = 300.0
"""How long a background bus reader (API relay, image and push workers) rides out an unreachable
Redis before its task fails (the default of ``TS_BUS_RETRY_S``)."""


async def bus_call(
    call: Callable[[], Awaitable[R]],
    *,
    what: str,
    component: str,
    stop: asyncio.Event,
    limit_s: float = BUS_RETRY_S,
) -> R:
    """``with_backoff`` for a bus fetch or ack: a ``BusError`` (Redis away) is retried, anything else
    is a bug and raised at once."""
    from tradesignals.bus.base import BusError

    return await with_backoff(
        call,
        what=what,
        component=component,
        dependency="bus",
        retry_on=(BusError,),
        stop=stop,
        limit_s=limit_s,
    )
