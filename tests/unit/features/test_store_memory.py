"""The in-process online store: latest vector per symbol, newer bars win, foreign sets refused."""

from __future__ import annotations

import numpy as np
import pytest

from tradesignals.features.catalog import CORE_V1, FeatureSet, FeatureSetMismatch
from tradesignals.features.store import FeatureRow
from tradesignals.features.store_memory import MemoryOnlineFeatureStore

SMALL = FeatureSet("small", 1, ("a", "b", "c"), {"p": 1})
OTHER = FeatureSet("small", 1, ("a", "b", "c"), {"p": 2})  # same name and version, edited params


def row(
    symbol: str, ts: int, values: list[float], *, at: int | None = None, fs: FeatureSet = SMALL
) -> FeatureRow:
    return FeatureRow(symbol, ts, ts + 10 if at is None else at, np.array(values), fs.ref)


async def test_put_then_get_returns_the_row_with_both_times() -> None:
    store = MemoryOnlineFeatureStore(SMALL)
    assert await store.get("AAPL") is None
    assert await store.put("AAPL", 100, np.array([1.0, np.nan, 3.0]), SMALL.ref, available_at_ns=160)
    got = await store.get("AAPL")
    assert got is not None
    assert (got.symbol, got.ts, got.available_at, got.ref) == ("AAPL", 100, 160, SMALL.ref)
    np.testing.assert_array_equal(got.vector, [1.0, np.nan, 3.0])
    assert got.vector.dtype == np.float64
    assert got.named(SMALL) == pytest.approx({"a": 1.0, "b": np.nan, "c": 3.0}, nan_ok=True)


async def test_vector_is_copied_on_put_and_read_only_on_get() -> None:
    store = MemoryOnlineFeatureStore(SMALL)
    buffer = np.array([1.0, 2.0, 3.0])
    await store.put("AAPL", 1, buffer, SMALL.ref, available_at_ns=2)
    buffer[:] = -1.0  # an engine reusing its output buffer must not rewrite what was stored
    got = await store.get("AAPL")
    assert got is not None
    np.testing.assert_array_equal(got.vector, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="read-only"):
        got.vector[0] = 9.0


async def test_integer_vectors_are_stored_as_float64() -> None:
    store = MemoryOnlineFeatureStore(SMALL)
    await store.put("X", 1, np.array([1, 2, 3]), SMALL.ref, available_at_ns=1)
    got = await store.get("X")
    assert got is not None and got.vector.dtype == np.float64


async def test_an_older_bar_never_replaces_a_newer_one_but_the_same_bar_is_corrected() -> None:
    store = MemoryOnlineFeatureStore(SMALL)
    assert await store.put("AAPL", 200, np.array([2.0, 2, 2]), SMALL.ref, available_at_ns=210)
    assert not await store.put("AAPL", 100, np.array([1.0, 1, 1]), SMALL.ref, available_at_ns=110)
    got = await store.get("AAPL")
    assert got is not None and got.ts == 200 and got.vector[0] == 2.0
    assert await store.put("AAPL", 200, np.array([5.0, 5, 5]), SMALL.ref, available_at_ns=210)
    got = await store.get("AAPL")
    assert got is not None and got.vector[0] == 5.0
    assert await store.put("AAPL", 300, np.array([3.0, 3, 3]), SMALL.ref, available_at_ns=310)
    got = await store.get("AAPL")
    assert got is not None and got.ts == 300


async def test_rows_of_another_definition_are_refused() -> None:
    store = MemoryOnlineFeatureStore(SMALL)
    with pytest.raises(FeatureSetMismatch, match=r"computed with small v1 \(.*\) in a store of small v1"):
        await store.put("AAPL", 1, np.zeros(3), OTHER.ref, available_at_ns=1)
    with pytest.raises(FeatureSetMismatch):
        await store.put("AAPL", 1, np.zeros(15), CORE_V1.ref, available_at_ns=1)
    assert len(store) == 0


@pytest.mark.parametrize(
    ("symbol", "ts", "at", "vector", "message"),
    [
        ("AAPL", 1, 2, [1.0, 2.0], "vector has 2 values, feature set small v1 has 3 columns"),
        ("AAPL", 10, 5, [1.0, 2.0, 3.0], "available_at 5 is before ts 10"),
        ("", 1, 2, [1.0, 2.0, 3.0], "invalid symbol"),
        (" AAPL", 1, 2, [1.0, 2.0, 3.0], "invalid symbol"),
        ("AAPL", 1.5, 2, [1.0, 2.0, 3.0], "ts_ns must be integer nanoseconds"),
    ],
)
async def test_bad_puts_are_refused(symbol: str, ts: int, at: int, vector: list[float], message: str) -> None:
    store = MemoryOnlineFeatureStore(SMALL)
    with pytest.raises(ValueError, match=message):
        await store.put(symbol, ts, np.array(vector), SMALL.ref, available_at_ns=at)
    assert len(store) == 0


async def test_put_many_applies_rows_in_order_and_counts_what_was_stored() -> None:
    store = MemoryOnlineFeatureStore(SMALL)
    stored = await store.put_many(
        [row("A", 10, [1, 1, 1]), row("B", 10, [2, 2, 2]), row("A", 5, [0, 0, 0]), row("A", 20, [3, 3, 3])]
    )
    assert stored == 3  # A@5 arrived after A@10: ignored
    a = await store.get("A")
    assert a is not None and a.ts == 20 and a.vector[0] == 3.0


async def test_put_many_with_one_bad_row_stores_nothing() -> None:
    store = MemoryOnlineFeatureStore(SMALL)
    with pytest.raises(ValueError, match="vector has 1 values"):
        await store.put_many([row("A", 10, [1, 1, 1]), row("B", 10, [2])])
    assert await store.get("A") is None


async def test_get_many_reports_missing_and_dedupes_in_request_order() -> None:
    store = MemoryOnlineFeatureStore(SMALL)
    await store.put_many([row("A", 1, [1, 2, 3]), row("C", 1, [7, 8, 9])])
    lookup = await store.get_many(["C", "B", "A", "C"])
    assert list(lookup.rows) == ["C", "A"]
    assert lookup.missing == ("B",)
    assert lookup.mismatched == {}
    symbols, matrix = lookup.matrix()
    assert symbols == ["C", "A"]
    np.testing.assert_array_equal(matrix, [[7, 8, 9], [1, 2, 3]])
    empty_symbols, empty = (await store.get_many([])).matrix()
    assert empty_symbols == [] and empty.shape == (0, 0)


def test_named_refuses_another_feature_set() -> None:
    r = row("A", 1, [1, 2, 3])
    with pytest.raises(FeatureSetMismatch, match="feature row of A was computed with small v1"):
        r.named(OTHER)


async def test_a_closed_store_refuses_work() -> None:
    store = MemoryOnlineFeatureStore(SMALL)
    await store.put("A", 1, np.zeros(3), SMALL.ref, available_at_ns=1)
    await store.close()
    with pytest.raises(RuntimeError, match="is closed"):
        await store.get("A")
    with pytest.raises(RuntimeError, match="is closed"):
        await store.put("A", 2, np.zeros(3), SMALL.ref, available_at_ns=2)
