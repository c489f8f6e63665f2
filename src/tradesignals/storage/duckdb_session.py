"""One in-memory DuckDB connection shared by a store's threads, each query on its own cursor.

DuckDB connection objects must not be used by two threads at once; cursors are cheap and
independent. The Parquet stores (bars, features) query through this, and refuse work once closed.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import duckdb


class DuckDBSession:
    def __init__(self, owner: str) -> None:
        self.owner = owner  # named in the error when the store is used after close()
        self._db = duckdb.connect(":memory:")
        self._lock = threading.Lock()
        self._closed = False

    @contextlib.contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock:
            self.check_open()
            cur = self._db.cursor()
        try:
            yield cur
        finally:
            cur.close()

    def check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self.owner} is closed")

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()
