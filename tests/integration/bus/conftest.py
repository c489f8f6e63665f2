"""Fixtures the Redis-specific bus tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tradesignals.bus.redis_streams import RedisStreamsBus


@pytest.fixture(params=["redis", "redis-cluster"])
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., RedisStreamsBus]]:
    """Buses with the given options on one Redis or on the session's cluster, closed afterwards."""
    made: list[RedisStreamsBus] = []
    if request.param == "redis":
        url, prefix, cluster = (
            request.getfixturevalue("redis_url"),
            request.getfixturevalue("redis_prefix"),
            False,
        )
    else:
        url, prefix, cluster = (
            request.getfixturevalue("redis_cluster").url,
            request.getfixturevalue("redis_cluster_prefix"),
            True,
        )

    def make(**options: Any) -> RedisStreamsBus:
        made.append(RedisStreamsBus(url, prefix=prefix, cluster=cluster, **options))
        return made[-1]

    yield make
    for impl in made:
        await impl.close()
