"""WebSocket fan-out figures, as JSON: our API role beside a minimal plain ``websockets`` server.

    .venv/bin/python bench/ws_fanout.py [--n 1000,5000,10000] [--messages 30] [--rate 10]
        [--procs 4] [--servers plain,fanout,asgi] [--resume 100000] [--redis-url URL] [--pg-url URL]

For each N, in the same run and with the same clients and messages:

- **fanout**: ``tradesignals`` in server mode, API role only, in its own process (the same config
  as ``tradesignals serve``) with its dedicated WebSocket server (``ws_port``, ``api/ws_server.py``),
  fed through Redis as the engine feeds it: the bench publishes each message on the bus topic
  ``system.alerts``; the API relays it to the channel log and fans it out to ``system:alerts``.
- **asgi**: the same process, the clients on the API's ASGI route ``/ws`` (uvicorn) instead.
- **plain**: a minimal ``websockets`` server in its own process, fed through Redis too (``XREAD`` on
  a stream), sending each message with ``websockets.broadcast`` to every socket that subscribed.

N clients subscribe from ``--procs`` client processes, many sockets each, on picows (frames parsed
in C, a callback per frame; ``--client websockets`` for asyncio + websockets as earlier runs used).
Why picows by default: on this 2-core machine the client processes share the cores with the
server, so a client that costs less per frame lets the spread show the server more; and the
``websockets`` client offers permessage-deflate, which the plain ``websockets`` server accepts
(compressing every frame for every socket) and ours does not (a fan-out sends one encoded frame to
all), so that client makes the two servers do different work.
Per message: the spread from the first client to receive it to the last (p50/p99 over messages),
the delay from publish to the first client, drops (messages a client never got), and the server
process's CPU (seconds and % of one core over the send window) and peak RSS.
``ratio_p99_spread_<ours>_over_plain`` is each of ours over plain for the p99 spread. A size that cannot be opened (file descriptors, memory, time) is
reported with where it stopped.

``resume``: ``--resume`` messages appended to one channel while no one listens; then one client
subscribes with ``since: 0`` on the fan-out server and the time until it holds the last one
(``caught_up_s``).

Keys under a random ``tsbench:`` prefix are deleted afterwards; the PostgreSQL database the bench
creates is dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

CHANNEL = "system:alerts"
CLIENT_LIB = ["websockets"]  # the client processes' WebSocket library (--client)
HERE = Path(__file__).resolve()


def raise_fd_limit() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1_048_576
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# --- server processes -----------------------------------------------------------------------------


def serve_ours(port: int, db: str, redis_url: str, prefix: str, ws_port: int | None) -> None:
    import uvicorn

    from tradesignals.api.app import create_app
    from tradesignals.api.http_limits import uvicorn_config
    from tradesignals.config import load_settings
    from tradesignals.wiring import build_services

    raise_fd_limit()
    settings = load_settings(
        mode="server",
        home=Path(tempfile.mkdtemp(prefix="tsbench-ws-")),
        database_url=db,
        redis_url=redis_url,
        bus_prefix=prefix,
        port=port,
        ws_max_connections=50_000,
        http_max_concurrency=60_000,
        ws_retention=200_000,
        ws_idle_timeout_s=3600,
        ws_port=ws_port,
    )

    async def main() -> None:
        services = await build_services(settings)
        server = uvicorn.Server(uvicorn_config(create_app(services, roles=frozenset({"api"})), settings))
        await server.serve()

    asyncio.run(main())


def serve_plain(port: int, redis_url: str, stream: str) -> None:
    """The reference: accept, take one subscribe frame, then broadcast what arrives on ``stream``."""
    import redis.asyncio as aioredis
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    raise_fd_limit()
    clients: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send('{"type":"subscribed"}')
        clients.add(ws)
        try:
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    async def feed() -> None:
        r = aioredis.Redis.from_url(redis_url)
        cursor, seq = "$", 0
        while True:
            reply = await r.xread({stream: cursor}, count=100, block=1000)
            for _, rows in reply or []:
                for rid, fields in rows:
                    cursor = rid
                    seq += 1
                    data = fields[b"d"].decode()
                    frame = f'{{"seq":{seq},"channel":"{CHANNEL}","type":"alert","data":{data}}}'
                    broadcast(clients, frame)

    async def main() -> None:
        async with serve(handler, "127.0.0.1", port, max_queue=16, ping_interval=20):
            await feed()

    asyncio.run(main())


# --- client processes -----------------------------------------------------------------------------


def run_clients(url: str, n: int, expect: int, since: int | None) -> None:
    """``n`` sockets; prints READY once all subscribed, then one JSON line with what each message got."""
    import orjson
    import websockets

    raise_fd_limit()
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    count: dict[int, int] = {}
    sent_at: dict[int, int] = {}
    done = asyncio.Event()
    received = 0
    failures: list[str] = []

    async def one(sem: asyncio.Semaphore, ready: list[Any]) -> None:
        nonlocal received
        async with sem:
            try:
                ws = await websockets.connect(url, max_size=2**20, open_timeout=60, ping_interval=None)
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {str(exc)[:100]}")
                ready.append(None)
                return
            msg: dict[str, Any] = {"op": "subscribe", "channels": [CHANNEL]}
            if since is not None:
                msg["since"] = since
            await ws.send(orjson.dumps(msg).decode())
            while True:
                frame = orjson.loads(await ws.recv())
                if frame.get("type") in ("subscribed", "error"):
                    break
        ready.append(ws)
        try:
            async for raw in ws:
                now = time.time_ns()
                frame = orjson.loads(raw)
                if "seq" not in frame:
                    continue
                i = int(frame["data"]["i"])
                sent_at.setdefault(i, int(frame["data"]["t"]))
                first[i] = min(first.get(i, now), now)
                last[i] = max(last.get(i, 0), now)
                count[i] = count.get(i, 0) + 1
                received += 1
                if received >= expect * n:
                    done.set()
        except Exception:  # closed: counted as drops
            pass

    async def main() -> None:
        sem = asyncio.Semaphore(100)
        ready: list[Any] = []
        tasks = [asyncio.create_task(one(sem, ready)) for _ in range(n)]
        while len(ready) < n:
            await asyncio.sleep(0.05)
        print(
            json.dumps({"ready": sum(1 for r in ready if r is not None), "failures": failures[:3]}),
            flush=True,
        )
        quiet = 0
        seen = -1
        while not done.is_set() and quiet < 100:  # stop 10 s after the last message
            await asyncio.sleep(0.1)
            quiet = quiet + 1 if received == seen else 0
            seen = received
        print(
            json.dumps(
                {
                    "first": first,
                    "last": last,
                    "count": count,
                    "sent_at": sent_at,
                    "received": received,
                }
            ),
            flush=True,
        )
        for t in tasks:
            t.cancel()
        for ws in ready:
            if ws is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 1)

    asyncio.run(main())


def run_picows_clients(url: str, n: int, expect: int, since: int | None) -> None:
    """As ``run_clients``, on picows (frames parsed in C, a callback per frame, no task per socket):
    a client process that costs less per frame measures the server more and itself less."""
    import orjson
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    raise_fd_limit()
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    count: dict[int, int] = {}
    sent_at: dict[int, int] = {}
    state = {"received": 0}
    done = asyncio.Event()
    failures: list[str] = []
    sub: dict[str, Any] = {"op": "subscribe", "channels": [CHANNEL]}
    if since is not None:
        sub["since"] = since
    sub_frame = orjson.dumps(sub)

    class Client(WSListener):  # type: ignore[misc]
        def __init__(self) -> None:
            self.subscribed = asyncio.get_running_loop().create_future()

        def on_ws_connected(self, transport: WSTransport) -> None:
            transport.send(WSMsgType.TEXT, sub_frame)

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type != WSMsgType.TEXT:
                return
            now = time.time_ns()
            msg = orjson.loads(frame.get_payload_as_bytes())
            if msg.get("type") in ("subscribed", "error"):
                if not self.subscribed.done():
                    self.subscribed.set_result(True)
                return
            if "seq" not in msg:
                return
            i = int(msg["data"]["i"])
            sent_at.setdefault(i, int(msg["data"]["t"]))
            if i not in first or now < first[i]:
                first[i] = now
            if now > last.get(i, 0):
                last[i] = now
            count[i] = count.get(i, 0) + 1
            state["received"] += 1
            if state["received"] >= expect * n:
                done.set()

    async def one(sem: asyncio.Semaphore) -> WSTransport | None:
        async with sem:
            try:
                transport, client = await ws_connect(Client, url, websocket_handshake_timeout=60)
                await asyncio.wait_for(client.subscribed, 60)
                return transport  # type: ignore[no-any-return]
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {str(exc)[:100]}")
                return None

    async def main() -> None:
        sem = asyncio.Semaphore(100)
        opened = await asyncio.gather(*(one(sem) for _ in range(n)))
        print(
            json.dumps({"ready": sum(1 for t in opened if t is not None), "failures": failures[:3]}),
            flush=True,
        )
        quiet, seen = 0, -1
        while not done.is_set() and quiet < 100:  # stop 10 s after the last message
            await asyncio.sleep(0.1)
            quiet = quiet + 1 if state["received"] == seen else 0
            seen = state["received"]
        print(
            json.dumps(
                {
                    "first": first,
                    "last": last,
                    "count": count,
                    "sent_at": sent_at,
                    "received": state["received"],
                }
            ),
            flush=True,
        )
        for t in opened:
            if t is not None:
                with contextlib.suppress(Exception):
                    t.disconnect()

    asyncio.run(main())


# --- the driver -----------------------------------------------------------------------------------


class Sampler:
    """CPU seconds and peak RSS of one process, sampled every 0.1 s."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.proc = psutil.Process(pid)
        self.peak_rss = 0
        self._stop = False

    def cpu(self) -> float:
        t = self.proc.cpu_times()
        return float(t.user + t.system)

    def rss(self) -> int:
        rss = int(self.proc.memory_info().rss)
        self.peak_rss = max(self.peak_rss, rss)
        return rss


def wait_port(port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"port {port} did not open")


def start_clients(
    url: str, n: int, procs: int, expect: int, since: int | None = None
) -> list[subprocess.Popen[str]]:
    per = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    cmd = [
        sys.executable,
        str(HERE),
        "_clients",
        "--url",
        url,
        "--expect",
        str(expect),
        "--lib",
        CLIENT_LIB[0],
    ]
    if since is not None:
        cmd += ["--since", str(since)]
    return [subprocess.Popen([*cmd, "--n", str(k)], stdout=subprocess.PIPE, text=True) for k in per if k > 0]


def read_ready(clients: list[subprocess.Popen[str]], timeout: float) -> int:
    """Blocks until each client process printed its READY line; returns the sockets open."""
    opened = 0
    deadline = time.monotonic() + timeout
    for c in clients:
        assert c.stdout is not None
        line = c.stdout.readline()
        if not line or time.monotonic() > deadline:
            raise TimeoutError("client processes did not get ready")
        opened += int(json.loads(line)["ready"])
    return opened


async def publish_ours(redis_url: str, prefix: str, messages: int, rate: float) -> None:
    from tradesignals.bus import topics
    from tradesignals.bus.codec import encode
    from tradesignals.bus.redis_streams import RedisStreamsBus

    bus = RedisStreamsBus(redis_url, prefix=prefix)
    try:
        for i in range(messages):
            await bus.publish(topics.SYSTEM_ALERTS, "bench", encode({"i": i, "t": time.time_ns()}))
            await asyncio.sleep(1 / rate)
    finally:
        await bus.close()


async def publish_plain(redis_url: str, stream: str, messages: int, rate: float) -> None:
    import redis.asyncio as aioredis

    r = aioredis.Redis.from_url(redis_url)
    try:
        for i in range(messages):
            await r.xadd(stream, {"d": json.dumps({"i": i, "t": time.time_ns()})})
            await asyncio.sleep(1 / rate)
    finally:
        await r.aclose()


def measure(
    kind: str, n: int, args: argparse.Namespace, redis_url: str, prefix: str, db: str
) -> dict[str, Any]:
    port = free_port()
    ws_port = free_port() if kind == "fanout" else port
    stream = f"{prefix}:plain"
    ours = kind in ("asgi", "fanout")
    if ours:
        cmd = [sys.executable, str(HERE), "_ours", "--port", str(port), "--db", db]
        if kind == "fanout":
            cmd += ["--ws-port", str(ws_port)]
    else:
        cmd = [sys.executable, str(HERE), "_plain", "--port", str(port), "--stream", stream]
    server = subprocess.Popen([*cmd, "--redis-url", redis_url, "--prefix", prefix], stdout=subprocess.DEVNULL)
    out: dict[str, Any] = {"server": kind, "n": n}
    clients: list[subprocess.Popen[str]] = []
    try:
        wait_port(port)
        wait_port(ws_port)
        sampler = Sampler(server.pid)
        if ours:
            time.sleep(2.0)  # its roles start after the port opens: let the baseline settle
        rss_base = sampler.rss()
        url = f"ws://127.0.0.1:{ws_port}/ws" if ours else f"ws://127.0.0.1:{port}/"
        t0 = time.monotonic()
        clients = start_clients(url, n, args.procs, args.messages)
        opened = read_ready(clients, timeout=args.open_timeout)
        out["opened"] = opened
        print(f"{kind}: {opened} open", file=sys.stderr, flush=True)
        out["open_s"] = round(time.monotonic() - t0, 2)
        rss_idle = sampler.rss()
        out["rss_mb_subscribed"] = round(rss_idle / 2**20, 1)
        if opened < n:
            out["stopped"] = f"only {opened} of {n} sockets opened"
        cpu0 = sampler.cpu()
        w0 = time.monotonic()
        publish = (
            publish_ours(redis_url, prefix, args.messages, args.rate)
            if ours
            else publish_plain(redis_url, stream, args.messages, args.rate)
        )
        asyncio.run(publish)
        results = []
        for c in clients:
            assert c.stdout is not None
            while True:
                sampler.rss()
                line = c.stdout.readline()
                if line:
                    results.append(json.loads(line))
                    break
        window = time.monotonic() - w0
        cpu = sampler.cpu() - cpu0
        first: dict[str, int] = {}
        last: dict[str, int] = {}
        count: dict[str, int] = {}
        sent: dict[str, int] = {}
        for r in results:
            for i, v in r["first"].items():
                first[i] = min(first.get(i, v), v)
            for i, v in r["last"].items():
                last[i] = max(last.get(i, v), v)
            for i, v in r["count"].items():
                count[i] = count.get(i, 0) + v
            sent.update(r["sent_at"])
        spreads = [(last[i] - first[i]) / 1e6 for i in first]
        delays = [(first[i] - sent[i]) / 1e6 for i in first]
        out.update(
            {
                "messages": args.messages,
                "spread_ms_p50": round(pct(spreads, 50) or 0, 1),
                "spread_ms_p99": round(pct(spreads, 99) or 0, 1),
                "first_delay_ms_p50": round(pct(delays, 50) or 0, 1),
                "drops": opened * args.messages - sum(count.values()),
                "server_cpu_s": round(cpu, 2),
                "server_cpu_pct_of_core": round(100 * cpu / window, 1),
                "server_rss_mb_peak": round(sampler.peak_rss / 2**20, 1),
                "server_kb_per_socket": round((rss_idle - rss_base) / max(opened, 1) / 1024, 1),
            }
        )
    except Exception as exc:
        out["stopped"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    finally:
        for c in clients:
            c.kill()
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    return out


def measure_resume(total: int, redis_url: str, prefix: str, db: str) -> dict[str, Any]:
    """``total`` messages appended with no one listening; one client resumes from 0."""
    from tradesignals.api.channel_seq import RedisChannelLog

    async def fill() -> None:
        log = RedisChannelLog(redis_url, prefix=prefix, retention=200_000)
        try:
            for start in range(0, total, 1000):
                items = [
                    (CHANNEL, "alert", {"i": i, "t": 0}, None) for i in range(start, min(total, start + 1000))
                ]
                await log.append_many(items)
        finally:
            await log.close()

    port, ws_port = free_port(), free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            str(HERE),
            "_ours",
            "--port",
            str(port),
            "--ws-port",
            str(ws_port),
            "--db",
            db,
            "--redis-url",
            redis_url,
            "--prefix",
            prefix,
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        wait_port(ws_port)
        asyncio.run(fill())

        async def resume() -> float:
            import websockets

            async with websockets.connect(f"ws://127.0.0.1:{ws_port}/ws", max_size=2**20) as ws:
                t0 = time.monotonic()
                await ws.send(json.dumps({"op": "subscribe", "channels": [CHANNEL], "since": 0}))
                while True:
                    frame = json.loads(await ws.recv())
                    if frame.get("channel") == CHANNEL and frame["seq"] >= total:
                        return time.monotonic() - t0

        caught = asyncio.run(resume())
        return {"missed": total, "caught_up_s": round(caught, 2), "msgs_per_s": round(total / caught)}
    except Exception as exc:
        return {"missed": total, "stopped": f"{type(exc).__name__}: {str(exc)[:200]}"}
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd")
    o = sub.add_parser("_ours")
    o.add_argument("--port", type=int)
    o.add_argument("--db")
    o.add_argument("--redis-url")
    o.add_argument("--prefix")
    o.add_argument("--ws-port", type=int, default=None)
    pl = sub.add_parser("_plain")
    pl.add_argument("--port", type=int)
    pl.add_argument("--redis-url")
    pl.add_argument("--prefix")
    pl.add_argument("--stream")
    c = sub.add_parser("_clients")
    c.add_argument("--url")
    c.add_argument("--n", type=int)
    c.add_argument("--expect", type=int)
    c.add_argument("--since", type=int, default=None)
    c.add_argument("--lib", default="websockets")
    p.add_argument("--n", default="1000,5000,10000")
    p.add_argument("--messages", type=int, default=30)
    p.add_argument("--rate", type=float, default=10.0)
    p.add_argument("--procs", type=int, default=4)
    p.add_argument("--open-timeout", type=float, default=300.0)
    p.add_argument("--resume", type=int, default=100_000)
    p.add_argument("--servers", default="plain,fanout,asgi", help="which servers to measure, in order")
    p.add_argument(
        "--client",
        choices=["websockets", "picows"],
        default="picows",
        help="the client processes' library (picows: less client CPU per frame, so the spread shows the server more)",
    )
    p.add_argument("--redis-url", default=os.environ.get("TS_REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument(
        "--pg-url", default=os.environ.get("TS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    )
    args = p.parse_args()
    if args.cmd == "_ours":
        serve_ours(args.port, args.db, args.redis_url, args.prefix, args.ws_port)
        return
    if args.cmd == "_plain":
        serve_plain(args.port, args.redis_url, args.stream)
        return
    if args.cmd == "_clients":
        run = run_picows_clients if args.lib == "picows" else run_clients
        run(args.url, args.n, args.expect, args.since)
        return

    import psycopg
    import redis

    fd_limit = raise_fd_limit()
    CLIENT_LIB[0] = args.client
    name = f"tsbench_ws_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db = args.pg_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + "/" + name
    prefixes: list[str] = []
    report: dict[str, Any] = {
        "bench": "ws_fanout",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "fd_limit": fd_limit,
        "procs": args.procs,
        "rate_per_s": args.rate,
        "client": args.client,
        "fanout": [],
    }
    try:
        for n in [int(x) for x in args.n.split(",") if x]:
            row: dict[str, Any] = {"n": n}
            kinds = [k for k in args.servers.split(",") if k]
            for kind in kinds:
                prefix = f"tsbench:{uuid.uuid4().hex[:8]}"
                prefixes.append(prefix)
                row[kind] = measure(kind, n, args, args.redis_url, prefix, db)
                print(json.dumps(row[kind]), file=sys.stderr, flush=True)
            b = row.get("plain", {}).get("spread_ms_p99")
            for kind in kinds:
                a = row[kind].get("spread_ms_p99")
                if kind != "plain" and b:
                    row[f"ratio_p99_spread_{kind}_over_plain"] = round(a / b, 2) if a is not None else None
            report["fanout"].append(row)
        if args.resume:
            prefix = f"tsbench:{uuid.uuid4().hex[:8]}"
            prefixes.append(prefix)
            report["resume"] = measure_resume(args.resume, args.redis_url, prefix, db)
    finally:
        r = redis.Redis.from_url(args.redis_url)
        for prefix in prefixes:
            keys = list(r.scan_iter(match=f"{prefix}*", count=1000))
            for i in range(0, len(keys), 1000):
                r.delete(*keys[i : i + 1000])
        r.close()
        with psycopg.connect(args.pg_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
