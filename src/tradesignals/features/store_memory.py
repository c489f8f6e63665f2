"""In-process online feature store: the embedded default, one dict lookup per ``get``.

One process computes and reads the features in embedded mode, so there is nothing to share and
nothing to serialise: a row is stored as the ``FeatureRow`` readers get back, its vector a private
read-only copy. The methods are ``async`` only to meet the ``OnlineFeatureStore`` protocol that the
Redis store shares; none of them awaits anything, so each runs to completion without yielding and
needs no lock on a single event loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tradesignals.features.catalog import FeatureSet, FeatureSetRef
from tradesignals.features.store import FeatureRow, OnlineLookup, check_put


class MemoryOnlineFeatureStore:
    """``OnlineFeatureStore`` in a dict; it only ever holds rows of its own ``feature_set``."""

    def __init__(self, feature_set: FeatureSet) -> None:
        self.feature_set = feature_set
        self._rows: dict[str, FeatureRow] = {}
        self._closed = False

    async def put(
        self,
        symbol: str,
        ts_ns: int,
        vector: np.ndarray,
        feature_set_ref: FeatureSetRef,
        *,
        available_at_ns: int,
    ) -> bool:
        return self._put(FeatureRow(symbol, ts_ns, available_at_ns, vector, feature_set_ref))

    async def put_many(self, rows: Sequence[FeatureRow]) -> int:
        self._check_open()
        # Validate all first: a batch with one bad row stores nothing, as the Redis store does.
        checked = [(row, check_put(self.feature_set, row)) for row in rows]
        return sum(self._store(row, vector) for row, vector in checked)

    async def get(self, symbol: str) -> FeatureRow | None:
        self._check_open()
        return self._rows.get(symbol)

    async def get_many(self, symbols: Sequence[str]) -> OnlineLookup:
        self._check_open()
        rows: dict[str, FeatureRow] = {}
        missing: list[str] = []
        for symbol in dict.fromkeys(symbols):
            row = self._rows.get(symbol)
            if row is None:
                missing.append(symbol)
            else:
                rows[symbol] = row
        return OnlineLookup(rows, tuple(missing))

    def __len__(self) -> int:
        return len(self._rows)

    async def close(self) -> None:
        self._closed = True
        self._rows.clear()

    def _put(self, row: FeatureRow) -> bool:
        self._check_open()
        return self._store(row, check_put(self.feature_set, row))

    def _store(self, row: FeatureRow, vector: np.ndarray) -> bool:
        current = self._rows.get(row.symbol)
        if current is not None and current.ts > row.ts:
            return False
        self._rows[row.symbol] = FeatureRow(
            row.symbol, int(row.ts), int(row.available_at), vector, self.feature_set.ref
        )
        return True

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"MemoryOnlineFeatureStore({self.feature_set.ref}) is closed")

    def __repr__(self) -> str:
        return f"MemoryOnlineFeatureStore({self.feature_set.ref}, {len(self._rows)} symbols)"
