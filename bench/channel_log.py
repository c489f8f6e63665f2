"""What an append to the WebSocket channel log costs on Redis, printed as one JSON object.

Relay-shaped work: batches of ``--batch`` messages, each with a ``once`` key, over ``--channels``
channels (``append_many``, as the relay appends one bus batch), and lone appends (``append``, as a
market-status change or a billing notice), each timed until it returns; then the same messages read
back from the fan-out tail. ``current_split`` is the Redis Cluster's two-step append run on the
single server (same machine, same server: what the split costs). ``--compare MODULE_FILE`` also runs another ``channel_seq.py`` (say, the
previous release's, from ``git show``) in the same run, rounds interleaved, so both see the same
machine load. ``--redis-cluster-url`` adds the current code on a Redis Cluster.

    .venv/bin/python bench/channel_log.py [--redis-url URL] [--redis-cluster-url URL] [--compare FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import platform
import statistics
import sys
import time
import uuid
from typing import Any

import redis

from tradesignals.api.channel_seq import RedisChannelLog


def _load(path: str) -> Any:
    name = f"compared_{uuid.uuid4().hex[:6]}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module.RedisChannelLog


async def one_round(
    cls: Any, url: str, prefix: str, kw: dict[str, bool], args: argparse.Namespace
) -> dict[str, float]:
    log = cls(url, prefix=prefix, retention=1000, **kw)
    try:
        cursor = await log.tail_start()
        batches = [
            [
                (
                    f"user:{(b * args.batch + i) % args.channels}:signals",
                    "signal",
                    {"b": b, "i": i, "pad": "x" * 300},
                    f"signals:0:{b}-0:{i}",
                )
                for i in range(args.batch)
            ]
            for b in range(args.batches)
        ]
        t0 = time.perf_counter()
        for items in batches:
            await log.append_many(items)
        batch_s = time.perf_counter() - t0
        lone: list[float] = []
        for n in range(args.lone):
            s = time.perf_counter()
            await log.append("market:status", "session", {"n": n}, once=f"lone:{n}")
            lone.append(time.perf_counter() - s)
        want = args.batches * args.batch + args.lone
        got = 0
        while got < want:
            cursor, entries = await log.tail(cursor, count=5000, wait=1.0)
            if not entries:
                break
            got += len(entries)
        lone.sort()
        return {
            "batch_msgs_per_s": want and args.batches * args.batch / batch_s,
            "lone_p50_us": statistics.median(lone) * 1e6,
            "lone_p99_us": lone[int(0.99 * (len(lone) - 1))] * 1e6,
            "fanned_out": got,
        }
    finally:
        await log.close()


def cleanup(url: str, prefix: str, cluster: bool) -> None:
    client: Any = redis.RedisCluster.from_url(url) if cluster else redis.Redis.from_url(url)
    for key in client.scan_iter(
        match=f"*{prefix}*", count=1000, **({"target_nodes": "primaries"} if cluster else {})
    ):
        client.delete(key)
    client.close()


def summary(rounds: list[dict[str, float]]) -> dict[str, Any]:
    return {
        k: {
            "median": round(statistics.median(r[k] for r in rounds), 1),
            "runs": [round(r[k], 1) for r in rounds],
        }
        for k in rounds[0]
    }


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--redis-cluster-url")
    p.add_argument("--compare", help="another channel_seq.py, run in the same rounds (labelled 'compared')")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batches", type=int, default=40)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--channels", type=int, default=2000)
    p.add_argument("--lone", type=int, default=500)
    args = p.parse_args()

    runs: dict[str, tuple[Any, str, dict[str, bool]]] = {
        "current": (RedisChannelLog, args.redis_url, {}),
        "current_split": (RedisChannelLog, args.redis_url, {"split": True}),  # the cluster's two steps
    }
    if args.compare:
        runs["compared"] = (_load(args.compare), args.redis_url, {})
    if args.redis_cluster_url:
        runs["current_cluster"] = (RedisChannelLog, args.redis_cluster_url, {"cluster": True})
    results: dict[str, list[dict[str, float]]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, (cls, url, kw) in runs.items():  # interleaved: the same load for each
            prefix = f"bench:{uuid.uuid4().hex[:8]}"
            try:
                results[name].append(await one_round(cls, url, prefix, kw, args))
            finally:
                cleanup(url, prefix, kw.get("cluster", False))
    print(
        json.dumps(
            {
                "bench": "channel_log",
                "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                "batches": args.batches,
                "batch": args.batch,
                "channels": args.channels,
                "lone": args.lone,
                "rounds": args.rounds,
                **{name: summary(r) for name, r in results.items()},
            },
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
