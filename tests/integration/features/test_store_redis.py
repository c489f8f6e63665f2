"""The Redis online store on the real Redis and on a 3-master Redis Cluster: exact vectors, newer bars
win across processes, and rows written under another definition of the set are reported, never served."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from tradesignals.features.catalog import CORE_V1, FeatureSet, FeatureSetMismatch
from tradesignals.features.store import FeatureRow
from tradesignals.features.store_redis import RedisOnlineFeatureStore
from tradesignals.storage.base import StorageError

pytestmark = pytest.mark.integration

SMALL = FeatureSet("small", 1, ("a", "b", "c"), {"p": 1})
EDITED = FeatureSet("small", 1, ("a", "b", "c"), {"p": 2})  # same name and version, another definition
SMALL_V2 = FeatureSet("small", 2, ("a", "b", "c", "d"), {"p": 1})
T = 1_700_000_000_000_000_000  # 2023: ns timestamps far beyond the 2**53 a Lua number holds exactly


@dataclass(frozen=True)
class Target:
    """Where a test's stores live: the single Redis or the session's Redis Cluster."""

    url: str
    prefix: str
    cluster: bool

    def store(self, fs: FeatureSet) -> RedisOnlineFeatureStore:
        return RedisOnlineFeatureStore(self.url, fs, prefix=self.prefix, cluster=self.cluster)

    def client(self) -> Any:
        """A raw client, to look at or plant values behind the store's back."""
        return RedisCluster.from_url(self.url) if self.cluster else aioredis.Redis.from_url(self.url)


@pytest.fixture(params=["redis", "redis-cluster"])
def target(request: pytest.FixtureRequest) -> Target:
    if request.param == "redis":
        return Target(request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix"), False)
    cluster = request.getfixturevalue("redis_cluster")
    return Target(cluster.url, request.getfixturevalue("redis_cluster_prefix"), True)


@pytest.fixture
async def store(target: Target) -> AsyncIterator[RedisOnlineFeatureStore]:
    s = target.store(SMALL)
    yield s
    await s.close()


def row(symbol: str, ts: int, values: list[float], fs: FeatureSet = SMALL) -> FeatureRow:
    return FeatureRow(symbol, ts, ts + 60_000_000_000, np.array(values, dtype=np.float64), fs.ref)


async def test_round_trip_is_bit_exact(store: RedisOnlineFeatureStore) -> None:
    awkward = np.array([0.1 + 0.2, np.nan, -0.0])
    assert await store.put("AAPL", T, awkward, SMALL.ref, available_at_ns=T + 60)
    got = await store.get("AAPL")
    assert got is not None
    assert (got.symbol, got.ts, got.available_at, got.ref) == ("AAPL", T, T + 60, SMALL.ref)
    assert got.vector.tobytes() == awkward.tobytes()  # NaN and the sign of zero survive
    with pytest.raises(ValueError, match="read-only"):
        got.vector[0] = 1.0


async def test_layout_is_one_string_per_set_version_and_symbol(
    store: RedisOnlineFeatureStore, target: Target
) -> None:
    await store.put("BTC/USDT", T, np.array([1.0, 2.0, 3.0]), SMALL.ref, available_at_ns=T + 5)
    client = target.client()
    try:
        value = await client.get(f"{target.prefix}:features:small:v1:{{BTC/USDT}}")
    finally:
        await client.aclose()
    assert isinstance(value, bytes) and len(value) == 104 + 3 * 8
    assert int(value[:20]) - 2**63 == T
    assert int(value[20:40]) - 2**63 == T + 5
    assert value[40:104] == SMALL.fingerprint.encode()
    assert np.frombuffer(value[104:], "<f8").tolist() == [1.0, 2.0, 3.0]


async def test_rows_are_shared_between_store_instances(
    store: RedisOnlineFeatureStore, target: Target
) -> None:
    other = target.store(SMALL)  # another process, say
    try:
        await other.put("MSFT", T, np.array([4.0, 5.0, 6.0]), SMALL.ref, available_at_ns=T)
        got = await store.get("MSFT")
        assert got is not None and got.vector.tolist() == [4.0, 5.0, 6.0]
    finally:
        await other.close()


@pytest.mark.parametrize(
    ("newer", "older"),
    [
        (T + 1, T),  # one nanosecond apart at 1.7e18: Lua numbers would call these equal
        (T, -T),  # before 1970
        (-1, -2),
        (2**63 - 1, 0),
    ],
)
async def test_an_older_bar_never_replaces_a_newer_one(
    store: RedisOnlineFeatureStore, newer: int, older: int
) -> None:
    assert await store.put("AAPL", newer, np.array([2.0, 2, 2]), SMALL.ref, available_at_ns=newer)
    assert not await store.put(
        "AAPL", older, np.array([1.0, 1, 1]), SMALL.ref, available_at_ns=max(older, newer)
    )
    got = await store.get("AAPL")
    assert got is not None and got.ts == newer and got.vector[0] == 2.0


async def test_older_first_then_newer_replaces_and_same_bar_is_corrected(
    store: RedisOnlineFeatureStore,
) -> None:
    assert await store.put("AAPL", T, np.array([1.0, 1, 1]), SMALL.ref, available_at_ns=T)
    assert await store.put("AAPL", T + 1, np.array([2.0, 2, 2]), SMALL.ref, available_at_ns=T + 1)
    assert await store.put("AAPL", T + 1, np.array([3.0, 3, 3]), SMALL.ref, available_at_ns=T + 2)
    got = await store.get("AAPL")
    assert got is not None and (got.ts, got.available_at, got.vector[0]) == (T + 1, T + 2, 3.0)


async def test_a_row_of_another_definition_is_reported_not_served(
    store: RedisOnlineFeatureStore, target: Target
) -> None:
    edited = target.store(EDITED)  # a deployment with an edited v1
    try:
        await edited.put("AAPL", T, np.array([9.0, 9, 9]), EDITED.ref, available_at_ns=T)
        await store.put("MSFT", T, np.array([1.0, 1, 1]), SMALL.ref, available_at_ns=T)

        with pytest.raises(FeatureSetMismatch) as info:
            await store.get("AAPL")
        msg = str(info.value)
        assert "\n" not in msg and "not served" in msg
        assert EDITED.short_fingerprint in msg and SMALL.short_fingerprint in msg

        lookup = await store.get_many(["AAPL", "MSFT", "NVDA"])
        assert list(lookup.rows) == ["MSFT"]
        assert lookup.missing == ("NVDA",)
        assert lookup.mismatched == {"AAPL": EDITED.ref}

        # Our own put replaces the unusable row, even for an older bar.
        assert await store.put("AAPL", T - 1, np.array([1.0, 2, 3]), SMALL.ref, available_at_ns=T)
        got = await store.get("AAPL")
        assert got is not None and got.vector.tolist() == [1.0, 2.0, 3.0]
        with pytest.raises(FeatureSetMismatch):
            await edited.get("AAPL")
    finally:
        await edited.close()


async def test_versions_live_side_by_side_during_a_rolling_deploy(
    store: RedisOnlineFeatureStore, target: Target
) -> None:
    v2 = target.store(SMALL_V2)
    try:
        await store.put("AAPL", T, np.array([1.0, 1, 1]), SMALL.ref, available_at_ns=T)
        assert await v2.get("AAPL") is None
        await v2.put("AAPL", T + 1, np.array([2.0, 2, 2, 2]), SMALL_V2.ref, available_at_ns=T + 1)
        old, new = await store.get("AAPL"), await v2.get("AAPL")
        assert old is not None and old.vector.tolist() == [1.0, 1.0, 1.0]
        assert new is not None and new.vector.tolist() == [2.0, 2.0, 2.0, 2.0]
    finally:
        await v2.close()


async def test_put_refuses_a_foreign_ref_and_a_wrong_length(store: RedisOnlineFeatureStore) -> None:
    with pytest.raises(FeatureSetMismatch):
        await store.put("AAPL", T, np.zeros(15), CORE_V1.ref, available_at_ns=T)
    with pytest.raises(ValueError, match="vector has 2 values"):
        await store.put("AAPL", T, np.zeros(2), SMALL.ref, available_at_ns=T)
    assert await store.get("AAPL") is None


async def test_put_many_pipelines_in_order_and_is_all_or_nothing_on_validation(
    store: RedisOnlineFeatureStore,
) -> None:
    rows = [row(f"S{i:04d}", T, [i, i, i]) for i in range(500)]
    assert await store.put_many(rows) == 500
    assert await store.put_many([row("S0000", T - 5, [0, 0, 0]), row("S0000", T + 5, [7, 7, 7])]) == 1
    lookup = await store.get_many([r.symbol for r in rows])
    assert len(lookup.rows) == 500 and not lookup.missing
    assert lookup.rows["S0000"].vector.tolist() == [7.0, 7.0, 7.0]
    assert lookup.rows["S0499"].vector.tolist() == [499.0, 499.0, 499.0]
    symbols, matrix = lookup.matrix()
    assert matrix.shape == (500, 3) and symbols[1] == "S0001"

    with pytest.raises(ValueError, match="vector has 1 values"):
        await store.put_many([row("NEW", T, [1, 1, 1]), row("BAD", T, [1])])
    assert await store.get("NEW") is None
    assert await store.put_many([]) == 0


async def test_get_many_dedupes_and_handles_empty(store: RedisOnlineFeatureStore) -> None:
    await store.put("A", T, np.ones(3), SMALL.ref, available_at_ns=T)
    lookup = await store.get_many(["A", "A", "B"])
    assert list(lookup.rows) == ["A"] and lookup.missing == ("B",)
    assert (await store.get_many([])).rows == {}


async def test_delete_forgets_symbols(store: RedisOnlineFeatureStore) -> None:
    await store.put_many([row("A", T, [1, 1, 1]), row("B", T, [1, 1, 1])])
    assert await store.delete(["A", "C"]) == 1
    assert await store.get("A") is None
    assert await store.get("B") is not None


async def test_a_value_not_written_by_us_is_an_error_not_a_vector(
    store: RedisOnlineFeatureStore, target: Target
) -> None:
    header = f"{T + 2**63:020d}{T + 2**63:020d}".encode() + SMALL.fingerprint.encode()
    client = target.client()
    try:
        await client.set(store.key("WIDE"), header + np.zeros(2).tobytes())
        await client.set(store.key("JUNK"), b"hello")
    finally:
        await client.aclose()
    with pytest.raises(StorageError, match=r"hold 2 values, small v1 .* has 3"):
        await store.get("WIDE")
    with pytest.raises(StorageError, match="is not ours"):
        await store.get_many(["JUNK"])


async def test_unreachable_redis_is_a_one_line_storage_error() -> None:
    dead = RedisOnlineFeatureStore("redis://:secret@127.0.0.1:1/0", SMALL, connect_timeout=0.5)
    try:
        assert not await dead.ping()
        with pytest.raises(StorageError) as info:
            await dead.get("AAPL")
        msg = str(info.value)
        assert "127.0.0.1:1" in msg and "unreachable" in msg and "secret" not in msg and "\n" not in msg
        with pytest.raises(StorageError, match="unreachable while storing features of AAPL"):
            await dead.put("AAPL", T, np.zeros(3), SMALL.ref, available_at_ns=T)
    finally:
        await dead.close()


async def test_closed_store_refuses_work(target: Target) -> None:
    s = target.store(SMALL)
    assert await s.ping()
    await s.close()
    assert not await s.ping()
    with pytest.raises(RuntimeError, match="is closed"):
        await s.get("A")
