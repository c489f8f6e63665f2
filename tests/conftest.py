"""Shared fixtures: real PostgreSQL and Redis on 127.0.0.1, the real-data folder.

A missing service skips the tests that need it, unless TS_REQUIRE_SERVICES=1 (CI), where it fails
them: CI must never pass having silently skipped the storage and bus suites.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

REQUIRE_SERVICES = os.environ.get("TS_REQUIRE_SERVICES") == "1"
PG_ADMIN_URL = os.environ.get("TS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _unavailable(what: str, err: Exception) -> None:
    msg = f"{what} is not reachable ({type(err).__name__}: {err})"
    if REQUIRE_SERVICES:
        pytest.fail(msg + " and TS_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """The server's maintenance database (for CREATE/DROP DATABASE). A fixture, not an import:
    a dependency installs a top-level ``tests`` package, so ``from tests.conftest`` is ambiguous."""
    return PG_ADMIN_URL


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty PostgreSQL database, dropped after the session."""
    import psycopg

    name = f"ts_test_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as err:
        _unavailable("PostgreSQL at " + PG_ADMIN_URL, err)
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
        client.close()
    except redis.RedisError as err:
        _unavailable("Redis at " + REDIS_URL, err)
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix unique to one test; every key under it is deleted afterwards."""
    import redis

    prefix = f"tstest:{uuid.uuid4().hex[:8]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))  # hash-tagged keys start with "{"
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """../shared/data (or TS_DATA_DIR). CI sets TS_DATA_DIR and so requires it."""
    env = os.environ.get("TS_DATA_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    if not path.is_dir():
        if env:
            pytest.fail(f"TS_DATA_DIR={env} is not a directory", pytrace=False)
        pytest.skip(f"real data folder {path} is absent (set TS_DATA_DIR)")
    return path


@pytest.fixture(autouse=True)
def _structlog_reset() -> Iterator[None]:
    """Each test starts from structlog's defaults: a CLI run configures it globally (level, stream),
    which would otherwise filter or misdirect the log lines that later tests capture."""
    yield
    structlog.reset_defaults()


STREAM_WAIT_S = 5.0


async def _take(stream: AsyncIterator[Any], count: int) -> list[Any]:
    """The next ``count`` items of ``stream``, or a TimeoutError naming how many came."""
    out: list[Any] = []
    try:
        async with asyncio.timeout(STREAM_WAIT_S):
            while len(out) < count:
                out.append(await anext(stream))
    except TimeoutError:
        raise TimeoutError(f"got {len(out)} of {count} items: {out}") from None
    return out


@pytest.fixture
def take() -> Callable[..., Any]:
    """``await take(stream, n)``: the next n items of a feed's stream, bounded by a timeout."""
    return _take


# -- Redis Cluster ----------------------------------------------------------------------------------


class RedisClusterProcs:
    """A 3-master, 1-replica-each Redis Cluster on loopback ports, started for the test session.

    Tests read ``url`` (any master: the client discovers the rest) and, for fault tests, find the
    master serving a key, kill it and restart it (it rejoins as the replica of its promoted
    replica, so later tests still have a 3 + 3 cluster).
    """

    NODE_TIMEOUT_MS = 1000  # failure detection ~1 s: a failover test takes seconds, not minutes

    def __init__(self, tmp: Path, ports: list[int]) -> None:
        self.tmp = tmp
        self.ports = ports
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.url = f"redis://127.0.0.1:{ports[0]}/0"

    def start_node(self, port: int) -> None:
        log = (self.tmp / f"redis-{port}.log").open("ab")
        self.procs[port] = subprocess.Popen(
            [
                "redis-server",
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--dir", str(self.tmp),
                "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{port}.conf",
                "--cluster-node-timeout", str(self.NODE_TIMEOUT_MS),
                "--appendonly", "no",
                "--save", "",
                "--logfile", "",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def client(self, port: int) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, socket_timeout=2)

    def wait_until(self, what: str, condition: Callable[[], bool], timeout: float = 30.0) -> None:
        """Poll ``condition`` (a cheap command) until it holds; fail with ``what`` at the deadline."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                logs = " | ".join(p.read_text()[-300:] for p in self.tmp.glob("redis-*.log"))
                pytest.fail(f"Redis Cluster: {what} not within {timeout:g} s ({logs})", pytrace=False)
            time.sleep(0.02)  # a polling interval between checks, not a wait for readiness

    def answers(self, port: int) -> bool:
        import redis

        try:
            with self.client(port) as c:
                return bool(c.ping())
        except redis.RedisError:
            return False

    def info(self, port: int, section: str) -> dict[str, Any]:
        import redis

        try:
            with self.client(port) as c:
                return dict(c.info(section))
        except redis.RedisError:
            return {}

    def cluster_info(self, port: int) -> dict[str, str]:
        import redis

        try:
            with self.client(port) as c:
                text = c.execute_command("CLUSTER", "INFO")
        except redis.RedisError:
            return {}
        text = text.decode() if isinstance(text, bytes) else str(text)
        return dict(line.split(":", 1) for line in text.split() if ":" in line)

    def healthy(self) -> bool:
        """Every node says ok, three masters each have a replica in sync."""
        live = [p for p in self.ports if self.procs.get(p) and self.procs[p].poll() is None]
        if len(live) != len(self.ports):
            return False
        if any(self.cluster_info(p).get("cluster_state") != "ok" for p in live):
            return False
        roles = [self.info(p, "replication") for p in live]
        masters = [r for r in roles if r.get("role") == "master"]
        replicas = [r for r in roles if r.get("role") == "slave"]
        return (
            len(masters) == 3
            and all(int(m.get("connected_slaves", 0)) == 1 for m in masters)
            and all(r.get("master_link_status") == "up" for r in replicas)
        )

    def master_of(self, key: str) -> int:
        """The port of the master serving ``key``'s slot now."""
        import redis

        with self.client(self.live_port()) as c:
            slot = int(c.execute_command("CLUSTER", "KEYSLOT", key))
            for start, end, master, *_ in c.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return int(master[1])
        raise redis.RedisError(f"no master serves slot {slot}")

    def live_port(self) -> int:
        return next(p for p in self.ports if self.procs[p].poll() is None and self.answers(p))

    def kill(self, port: int) -> None:
        """``kill -9``: no shutdown, no goodbye to the cluster."""
        self.procs[port].kill()
        self.procs[port].wait(10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _free_cluster_ports(count: int) -> list[int]:
    """Ports P with P and its cluster bus port P + 10000 both free on loopback."""
    import random
    import socket

    ports: list[int] = []
    rng = random.Random()
    while len(ports) < count:
        port = rng.randrange(20_000, 30_000)
        if port in ports:
            continue
        try:
            for p in (port, port + 10_000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        ports.append(port)
    return ports


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcs]:
    """Six redis-server processes made into a cluster once per session, stopped afterwards."""
    missing = [exe for exe in ("redis-server", "redis-cli") if shutil.which(exe) is None]
    if missing:
        _unavailable("Redis Cluster", FileNotFoundError(f"{', '.join(missing)} not on PATH"))
    cluster = RedisClusterProcs(tmp_path_factory.mktemp("redis-cluster"), _free_cluster_ports(6))
    try:
        for port in cluster.ports:
            cluster.start_node(port)
        for port in cluster.ports:
            cluster.wait_until(f"node {port} answering", lambda p=port: cluster.answers(p))
        nodes = [f"127.0.0.1:{p}" for p in cluster.ports]
        create = subprocess.run(
            ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "1", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if create.returncode != 0:
            pytest.fail(f"redis-cli --cluster create failed: {create.stdout[-500:]}", pytrace=False)
        cluster.wait_until("cluster_state:ok with 3 masters and 3 replicas in sync", cluster.healthy)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_cluster_prefix(redis_cluster: RedisClusterProcs) -> Iterator[str]:
    """``redis_prefix`` for the cluster: a unique prefix whose keys are deleted on every master."""
    prefix = f"tstest:{uuid.uuid4().hex[:8]}"
    yield prefix
    import redis

    for port in redis_cluster.ports:
        if redis_cluster.procs[port].poll() is not None:
            continue
        try:
            with redis_cluster.client(port) as c:
                if c.info("replication").get("role") != "master":
                    continue
                keys = list(c.scan_iter(match=f"*{prefix}*", count=1000))
                for key in keys:  # one by one: a multi-key DEL must not cross slots
                    c.delete(key)
        except redis.RedisError:
            continue
