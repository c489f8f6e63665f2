"""The API's own bounded thread pool for database work.

Routes used to run their reads with ``asyncio.to_thread``: the loop's default executor, shared with
the engine's writes (``set_status``, ``add``) and the health probe, and only ``cpu + 4`` threads
wide. A burst of slow reads (50 anonymous ``/api/history/summary`` callers) then queued the
engine's writes and the health check behind them. Reads now queue here instead — at most
``TS_API_DB_THREADS`` at a time — and the default executor stays free for the engine and health.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, ParamSpec, TypeVar, cast

from fastapi import Depends, Request

P = ParamSpec("P")
T = TypeVar("T")


class DbPool:
    """Run blocking database calls on ``threads`` dedicated threads."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="api-db")

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        """Stop taking work; running calls finish on their own (nothing waits for them)."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def get_db_pool(request: Request) -> DbPool:
    return cast(DbPool, request.app.state.db_pool)


DbPoolDep = Annotated[DbPool, Depends(get_db_pool)]
