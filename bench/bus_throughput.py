"""Bus figures: publish + consume + ack throughput and publish -> delivery latency, as JSON.

    .venv/bin/python bench/bus_throughput.py [--redis-url URL] [--redis-cluster-url URL] [--quick]

Measures the in-process bus and, when Redis answers (TS_REDIS_URL, else redis://127.0.0.1:6379/0),
the Redis Streams bus. Payloads are real encoded ``Tick``s decoded on the way out, so the figures
include the codec as the tick path pays it. Throughput runs producer and consumer concurrently on
one event loop (one core); latency is ping-pong (publish one, wait for its delivery), i.e. the
unloaded path a lone tick takes. Keys under a random ``tsbench:`` prefix are deleted afterwards.

For Redis it also measures, in the same run: batched publish alone (``publish_many`` of 1,000:
each partition's messages packed into entries of up to 64 (ADR 0031), pipelined XADDs and one XTRIM
per stream on a single server, one Lua script on a cluster), consume alone (XREADGROUP + one XACK per
partition per batch), the producer and the consumer in two processes (as ingest and engine run),
``redis-benchmark`` pipelining XADD of one message (same payload size, MAXLEN ~) — the server's own
ceiling for one-message entries on this machine — and (``same_cycle_server_cost``) the same publish +
consume + ack cycle four ways, each with the server's own CPU per message (INFO cpu) and so the rate
at which the server alone fills a core: the bus, the bus writing one message an entry (the format
before ADR 0031), and bare hiredis sockets with no bus logic in both formats — about the best a
Python client does here, the peers the bus's figures are judged against.

With ``--redis-cluster-url`` (any master of a Redis Cluster, e.g. one made with ``redis-cli --cluster
create``), the same Redis figures are measured on the cluster too (ADR 0027), ``redis-benchmark``
in its ``--cluster`` mode.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import uuid
from typing import Any

from tradesignals.bus.base import Bus
from tradesignals.bus.codec import decoder, encode
from tradesignals.bus.memory import MemoryBus
from tradesignals.bus.redis_streams import RedisStreamsBus
from tradesignals.domain.market import Tick

PARTITIONS = 8
SYMBOLS = [f"SYM{i:03d}" for i in range(100)]
DECODE = decoder(Tick)


def ticks(n: int) -> list[tuple[str, bytes]]:
    base = time.time_ns()
    return [
        (SYMBOLS[i % len(SYMBOLS)], encode(Tick(SYMBOLS[i % len(SYMBOLS)], base + i, 100.0 + i % 7, 1.0)))
        for i in range(n)
    ]


async def throughput(bus: Bus, n: int, batch: int | None) -> float:
    """Messages per second through publish (or publish_many in ``batch``es), fetch and ack."""
    topic = f"bench.tp.{uuid.uuid4().hex[:8]}"
    consumer = bus.consumer(topic, "bench", "w1", DECODE, lease_seconds=30)
    await consumer.fetch(1, wait=0)  # join before the clock starts
    items = ticks(n)

    async def produce() -> None:
        if batch is None:
            for key, payload in items:
                await bus.publish(topic, key, payload)
        else:
            for i in range(0, n, batch):
                await bus.publish_many(topic, items[i : i + batch])

    async def consume() -> None:
        got = 0
        while got < n:
            deliveries = await consumer.fetch(2_000, wait=1.0)
            got += len(deliveries)
            if deliveries:
                await consumer.ack(*deliveries)

    t0 = time.perf_counter()
    await asyncio.gather(produce(), consume())
    elapsed = time.perf_counter() - t0
    await consumer.close()
    return n / elapsed


async def latency(bus: Bus, n: int) -> dict[str, float]:
    """Publish one message, wait until the consumer holds it; p50/p99 of that, in microseconds."""
    topic = f"bench.lat.{uuid.uuid4().hex[:8]}"
    consumer = bus.consumer(topic, "bench", "w1", DECODE, lease_seconds=30)
    await consumer.fetch(1, wait=0)
    received = asyncio.Event()
    sent_at = 0
    samples: list[int] = []

    async def consume() -> None:
        while len(samples) < n:
            deliveries = await consumer.fetch(100, wait=1.0)
            if deliveries:
                samples.append(time.perf_counter_ns() - sent_at)
                received.set()
                await consumer.ack(*deliveries)

    reader = asyncio.create_task(consume())
    items = ticks(n)
    for key, payload in items:
        received.clear()
        sent_at = time.perf_counter_ns()
        await bus.publish(topic, key, payload)
        await received.wait()
    await reader
    await consumer.close()
    samples.sort()
    return {
        "p50": round(samples[len(samples) // 2] / 1_000, 1),
        "p99": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))] / 1_000, 1),
        "samples": len(samples),
    }


async def measure(bus: Bus, *, single: int, batched: int, pings: int) -> dict[str, Any]:
    return {
        "publish_consume_ack_msgs_per_s": round(await throughput(bus, single, None)),
        "publish_many_consume_ack_msgs_per_s": round(await throughput(bus, batched, 1_000)),
        "publish_to_delivery_latency_us": await latency(bus, pings),
        "messages": {"publish": single, "publish_many": batched, "latency": pings},
    }


async def publish_only(bus: Bus, n: int, batch: int = 1_000) -> float:
    topic = f"bench.pub.{uuid.uuid4().hex[:8]}"
    items = ticks(n)
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        await bus.publish_many(topic, items[i : i + batch])
    return n / (time.perf_counter() - t0)


async def consume_only(bus: Bus, n: int, batch: int = 2_000) -> float:
    """Fetch + ack ``n`` messages already in the streams: the consumer's own cost, nothing else."""
    topic = f"bench.con.{uuid.uuid4().hex[:8]}"
    consumer = bus.consumer(topic, "bench", "w1", DECODE, lease_seconds=30)
    await consumer.fetch(1, wait=0)
    items = ticks(n)
    for i in range(0, n, 1_000):
        await bus.publish_many(topic, items[i : i + 1_000])
    got = 0
    t0 = time.perf_counter()
    while got < n:
        deliveries = await consumer.fetch(batch, wait=1.0)
        got += len(deliveries)
        if deliveries:
            await consumer.ack(*deliveries)
    elapsed = time.perf_counter() - t0
    await consumer.close()
    return n / elapsed


def _producer(url: str, cluster: bool, prefix: str, topic: str, n: int, ready: Any, go: Any) -> None:
    async def run() -> None:
        bus = RedisStreamsBus(url, partitions=PARTITIONS, prefix=prefix, cluster=cluster)
        items = ticks(n)
        ready.set()
        go.wait()
        for i in range(0, n, 1_000):
            await bus.publish_many(topic, items[i : i + 1_000])
        await bus.close()

    asyncio.run(run())


async def two_processes(url: str, cluster: bool, prefix: str, n: int) -> float:
    """Producer in a child process, consumer here: publish + consume + ack on two cores."""
    bus = RedisStreamsBus(url, partitions=PARTITIONS, prefix=prefix, cluster=cluster)
    topic = f"bench.2p.{uuid.uuid4().hex[:8]}"
    consumer = bus.consumer(topic, "bench", "w1", DECODE, lease_seconds=30)
    await consumer.fetch(1, wait=0)
    ctx = multiprocessing.get_context("spawn")
    ready, go = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_producer, args=(url, cluster, prefix, topic, n, ready, go))
    child.start()
    if not await asyncio.to_thread(ready.wait, 120):  # it builds its payloads before the clock starts
        child.kill()
        raise RuntimeError("the producer process did not start within 120 s")
    got = 0
    go.set()
    t0 = time.perf_counter()
    while got < n:
        deliveries = await consumer.fetch(2_000, wait=1.0)
        got += len(deliveries)
        if deliveries:
            await consumer.ack(*deliveries)
    elapsed = time.perf_counter() - t0
    await asyncio.to_thread(child.join, 30)
    await consumer.close()
    await bus.close()
    return n / elapsed


def redis_benchmark_xadd(url: str, n: int, payload_size: int, prefix: str, cluster: bool) -> dict[str, Any]:
    """``redis-benchmark`` pipelining XADD with our entry shape: what the server alone sustains."""
    exe = shutil.which("redis-benchmark")
    if exe is None:
        return {"skipped": "redis-benchmark is not installed"}
    m = re.match(r"redis://(?:[^@/]*@)?([^:/]+)(?::(\d+))?(?:/(\d+))?", url)
    if m is None:
        return {"skipped": f"cannot read host/port from {url}"}
    host, port, db = m.group(1), m.group(2) or "6379", m.group(3) or "0"
    # In --cluster mode redis-benchmark fills "{tag}" with a tag per master, so each gets its share.
    key = f"{{tag}}:{prefix}:redis-benchmark" if cluster else f"{prefix}:redis-benchmark"
    cmd = [exe, "-h", host, "-p", port, "-n", str(n), "-P", "1000", "-c", "1", "-q"]
    cmd += ["--cluster"] if cluster else ["--dbnum", db]
    cmd += ["XADD", key, "MAXLEN", "~", "1000000", "*", "k", "SYM001", "v", "x" * payload_size]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    found = re.findall(r"([\d.]+) requests per second", out.stdout)
    if not found:
        return {"skipped": f"redis-benchmark said: {(out.stdout + out.stderr).strip()[-200:]}"}
    return {"xadd_msgs_per_s": round(float(found[-1])), "pipeline": 1000, "clients": 1, "messages": n}


def raw_floor(url: str, n: int, payload: bytes, prefix: str, per_entry: int = 1) -> dict[str, Any]:
    """The peer: the same publish + consume + ack cycle from bare hiredis sockets, with no bus.

    A producer thread pipelines XADD (1,000 messages per batch, MAXLEN ~) over the same 8 streams
    while a consumer thread reads them with XREADGROUP (2,000 messages a stream per read) and acks
    with one XACK per stream, each on its own blocking socket (the GIL is let go while they wait on
    the socket): no leases, no partition script, no payload decoding, no event loop. With
    ``per_entry`` > 1 each XADD carries that many messages of a stream packed as the bus packs them
    (ADR 0031), which the consumer unpacks. About the best a Python client does on this machine for
    this cycle, so the bus's figure can be judged against it in the same run.
    """
    import socket
    import threading

    import hiredis
    import msgspec

    pack_batch = msgspec.msgpack.Encoder().encode
    unpack_batch = msgspec.msgpack.Decoder(list[tuple[str, bytes]]).decode

    m = re.match(r"redis://(?:[^@/]*@)?([^:/]+)(?::(\d+))?(?:/(\d+))?", url)
    if m is None or "@" in url:
        return {"skipped": "needs a redis://host:port/db URL without a password"}
    host, port, db = m.group(1), int(m.group(2) or 6379), m.group(3) or "0"
    pack = hiredis.pack_command

    class Conn:
        def __init__(self) -> None:
            self.sock = socket.create_connection((host, port))
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.reader = hiredis.Reader()
            self.call([pack(("SELECT", db))])

        def call(self, commands: list[bytes]) -> list[Any]:
            self.sock.sendall(b"".join(commands))
            replies: list[Any] = []
            while len(replies) < len(commands):
                reply = self.reader.gets()
                if reply is False:
                    self.reader.feed(self.sock.recv(1 << 20))
                else:
                    replies.append(reply)
            return replies

    streams = [f"{prefix}:raw:{p}" for p in range(PARTITIONS)]
    producer, consumer = Conn(), Conn()
    consumer.call([pack(("XGROUP", "CREATE", s, "g", "$", "MKSTREAM")) for s in streams])
    read = pack(
        (
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "COUNT",
            str(max(1, 2_000 // per_entry)),
            "BLOCK",
            "1000",
            "STREAMS",
            *streams,
            *[">"] * len(streams),
        )
    )

    def produce_packed() -> None:
        for start in range(0, n, 1_000):
            count = min(n, start + 1_000) - start
            per_stream = [
                [("SYM001", payload)] * (count // PARTITIONS + (p < count % PARTITIONS))
                for p in range(PARTITIONS)
            ]
            producer.call(
                [
                    pack(
                        (
                            "XADD",
                            streams[p],
                            "MAXLEN",
                            "~",
                            "1000000",
                            "*",
                            "b",
                            pack_batch(msgs[at : at + per_entry]),
                        )
                    )
                    for p, msgs in enumerate(per_stream)
                    for at in range(0, len(msgs), per_entry)
                ]
            )

    def produce() -> None:
        if per_entry > 1:
            produce_packed()
            return
        for start in range(0, n, 1_000):
            producer.call(
                [
                    pack(
                        (
                            "XADD",
                            streams[i % PARTITIONS],
                            "MAXLEN",
                            "~",
                            "1000000",
                            "*",
                            "k",
                            "SYM001",
                            "v",
                            payload,
                        )
                    )
                    for i in range(start, min(n, start + 1_000))
                ]
            )

    try:
        t0 = time.perf_counter()
        thread = threading.Thread(target=produce)
        thread.start()
        got = 0
        while got < n:
            acks = []
            for stream, entries in consumer.call([read])[0] or []:
                ids = [entry[0] for entry in entries]
                got += sum(len(unpack_batch(e[1][1])) for e in entries) if per_entry > 1 else len(ids)
                if ids:
                    acks.append(pack(("XACK", stream, "g", *ids)))
            if acks:
                consumer.call(acks)
        elapsed = time.perf_counter() - t0
        thread.join()
        consumer.call([pack(("DEL", *streams))])
    finally:
        producer.sock.close()
        consumer.sock.close()
    return {
        "publish_consume_ack_msgs_per_s": round(n / elapsed),
        "messages": n,
        "messages_per_entry": per_entry,
        "threads": 2,
    }


async def server_cpu_s(bus: RedisStreamsBus) -> float:
    """The Redis server's own CPU seconds so far (INFO cpu: user + system, main thread and all)."""
    info = await bus._redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def server_cost(bus: RedisStreamsBus, url: str, n: int, prefix: str) -> dict[str, Any]:
    """Server CPU per message, and the ceiling that implies (the rate at which the server alone would
    fill one core), for the same cycle four ways: the bus as configured (batch entries, ADR 0031),
    the bus writing one message an entry (``entry_messages=1``, the format before), and the
    bare-client peer in both formats."""

    async def measured(run: Any) -> tuple[Any, float]:
        before = await server_cpu_s(bus)
        result = await run()
        return result, await server_cpu_s(bus) - before

    one = RedisStreamsBus(url, partitions=PARTITIONS, prefix=prefix, entry_messages=1)
    try:
        rate, bus_cpu = await measured(lambda: throughput(bus, n, 1_000))
        rate_one, one_cpu = await measured(lambda: throughput(one, n, 1_000))
    finally:
        await one.close()
    payload = ticks(1)[0][1]
    peer, peer_cpu = await measured(lambda: asyncio.to_thread(raw_floor, url, n, payload, prefix))
    packed, packed_cpu = await measured(
        lambda: asyncio.to_thread(raw_floor, url, n, payload, prefix, bus.entry_messages)
    )

    def cost(rate: float, cpu: float) -> dict[str, Any]:
        return {
            "msgs_per_s": round(rate),
            "server_cpu_us_per_msg": round(cpu / n * 1e6, 2),
            "server_ceiling_msgs_per_s": round(n / cpu) if cpu else None,
        }

    return {
        "bus": {**cost(rate, bus_cpu), "messages_per_entry": bus.entry_messages},
        "bus_one_message_entries": {**cost(rate_one, one_cpu), "messages_per_entry": 1},
        "raw_hiredis_peer": {**cost(peer["publish_consume_ack_msgs_per_s"], peer_cpu), **peer},
        "raw_hiredis_peer_batch_entries": {
            **cost(packed["publish_consume_ack_msgs_per_s"], packed_cpu),
            **packed,
        },
        "messages": n,
    }


async def redis_figures(url: str, quick: bool, cluster: bool = False) -> dict[str, Any]:
    prefix = f"tsbench:{uuid.uuid4().hex[:8]}"
    bus = RedisStreamsBus(url, partitions=PARTITIONS, prefix=prefix, cluster=cluster)
    if not await bus.ping():
        await bus.close()
        return {"skipped": f"Redis at {url} does not answer"}
    try:
        scale = 4 if quick else 1
        batched = 200_000 // scale
        return {
            "url": url,
            **await measure(bus, single=20_000 // scale, batched=batched, pings=2_000 // scale),
            "publish_many_only_msgs_per_s": round(await publish_only(bus, batched)),
            "fetch_ack_only_msgs_per_s": round(await consume_only(bus, batched)),
            "publish_consume_ack_two_processes_msgs_per_s": round(
                await two_processes(url, cluster, prefix, batched)
            ),
            "redis_benchmark": redis_benchmark_xadd(url, batched, len(ticks(1)[0][1]), prefix, cluster),
            **({} if cluster else {"same_cycle_server_cost": await server_cost(bus, url, batched, prefix)}),
        }
    finally:
        await bus.close()
        from tradesignals.bus.redis_client import connect

        client = connect(url, cluster=cluster)
        keys = [k async for k in client.scan_iter(match=f"*{prefix}*", count=1_000)]
        if keys:
            await client.delete(*keys)  # split per slot on a cluster
        await client.aclose()


def _cpu_model() -> str:
    """Figures from different sessions ran on different CPUs (3x apart): say which this was."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--redis-url",
        default=os.environ.get(
            "TS_REDIS_URL", os.environ.get("TS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
        ),
    )
    parser.add_argument(
        "--redis-cluster-url", default=None, help="a master of a Redis Cluster: measure the bus there too"
    )
    parser.add_argument("--quick", action="store_true", help="a quarter of the messages")
    args = parser.parse_args()
    scale = 4 if args.quick else 1
    memory = MemoryBus(partitions=PARTITIONS)
    result = {
        "bench": "bus_throughput",
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "partitions": PARTITIONS,
        "memory": await measure(
            memory, single=200_000 // scale, batched=400_000 // scale, pings=20_000 // scale
        ),
        "redis": await redis_figures(args.redis_url, args.quick),
    }
    if args.redis_cluster_url:
        result["redis_cluster"] = await redis_figures(args.redis_cluster_url, args.quick, cluster=True)
    await memory.close()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
