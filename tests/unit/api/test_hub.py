"""The hub over the in-process channel log: numbering, replay, lag, resync, conflation, cleanup."""

from __future__ import annotations

import orjson

from tradesignals.api.channel_seq import Entry, MemoryChannelLog
from tradesignals.api.hub import Hub, HubClient


def drain(client: HubClient) -> list[dict]:  # type: ignore[type-arg]
    out = []
    while (frame := client.pop()) is not None:
        out.append(orjson.loads(frame))
    return out


async def publish(hub: Hub, channel: str, n: int, first: int = 0) -> None:
    """Append ``n`` messages and hand them to the hub, as the node's fan-out does."""
    cursor = await hub.log.tail_start()
    for i in range(first, first + n):
        await hub.log.append(channel, "signal", {"i": i})
    _, entries = await hub.log.tail(cursor, count=100_000, wait=0)
    for e in entries:
        hub.deliver(e)


async def caught_up(hub: Hub, client: HubClient) -> list[dict]:  # type: ignore[type-arg]
    """Everything the sender would send: queued frames, then catch-up reads until none is left."""
    out = drain(client)
    while client.catching_up:
        out.extend(orjson.loads(f) for f in await hub.catch_up(client))
        out.extend(drain(client))
    return out


async def subscribe(hub: Hub, client: HubClient, channel: str, since: int | None = None) -> None:
    hub.subscribe(client, channel, await hub.log.current(channel), since)


async def test_messages_carry_channel_sequence_and_reach_only_subscribers() -> None:
    hub = Hub(MemoryChannelLog())
    a, b = hub.new_client(), hub.new_client()
    await subscribe(hub, a, "signals")
    await subscribe(hub, b, "system:alerts")
    await publish(hub, "signals", 2)
    got = drain(a)
    assert [(m["channel"], m["seq"], m["data"]["i"]) for m in got] == [("signals", 1, 0), ("signals", 2, 1)]
    assert drain(b) == []


async def test_since_replays_in_chunks_through_the_sender_not_the_queue() -> None:
    hub = Hub(MemoryChannelLog(), client_queue=10, replay_chunk=4)
    await publish(hub, "signals", 50)
    late = hub.new_client()
    await subscribe(hub, late, "signals", since=3)
    assert len(late.queue) == 0  # nothing queued: the subscribe reply always fits
    assert late.offer(b'{"type":"subscribed"}')
    got = await caught_up(hub, late)
    assert got[0] == {"type": "subscribed"}
    assert [m["seq"] for m in got[1:]] == list(range(4, 51))


async def test_a_trimmed_gap_gets_resync_from_the_current_seq() -> None:
    hub = Hub(MemoryChannelLog(retention=5))
    await publish(hub, "signals", 20)
    c = hub.new_client()
    await subscribe(hub, c, "signals", since=2)
    assert await caught_up(hub, c) == [{"type": "resync", "channel": "signals", "from_seq": 20}]
    await publish(hub, "signals", 1)
    assert [m["seq"] for m in drain(c)] == [21]


async def test_a_full_queue_makes_the_client_lag_then_catch_up_without_losing_a_message() -> None:
    hub = Hub(MemoryChannelLog(), client_queue=3, replay_chunk=2)
    slow, fast = hub.new_client(), hub.new_client()
    await subscribe(hub, slow, "user:1:notifications")
    await subscribe(hub, fast, "user:1:notifications")
    for i in range(10):
        await publish(hub, "user:1:notifications", 1, first=i)
        drain(fast)
    assert hub.lagged_total == 1
    got = await caught_up(hub, slow)
    notices = [m for m in got if "seq" not in m]
    assert notices == [{"type": "lagged", "channel": "user:1:notifications", "from_seq": 3}]
    assert [m["seq"] for m in got if "seq" in m] == list(range(1, 11))  # every one, in order
    await publish(hub, "user:1:notifications", 1, first=10)
    assert [m["seq"] for m in drain(slow)] == [11]  # live again


async def test_a_gap_in_the_fan_out_is_filled_from_the_log() -> None:
    hub = Hub(MemoryChannelLog())
    c = hub.new_client()
    await subscribe(hub, c, "signals")
    await hub.log.append("signals", "outcome", {"n": 1})  # appended, never handed to this hub
    await publish(hub, "signals", 1)
    assert [m["seq"] for m in await caught_up(hub, c)] == [1, 2]


async def test_market_updates_are_conflated_to_the_latest() -> None:
    hub = Hub(MemoryChannelLog())
    c = hub.new_client()
    await subscribe(hub, c, "market:AAPL:updates")
    await subscribe(hub, c, "market:MSFT:updates")
    await publish(hub, "market:AAPL:updates", 5)
    await publish(hub, "market:MSFT:updates", 2)
    await publish(hub, "market:AAPL:updates", 1, first=5)
    got = drain(c)
    assert [(m["channel"], m["seq"]) for m in got] == [("market:AAPL:updates", 6), ("market:MSFT:updates", 2)]


class FanOutDuringRead(MemoryChannelLog):
    """A log whose read lets the node's fan-out deliver one new message first (a read over the
    network yields to the event loop): the race of a resumed client with a live message."""

    hub: Hub
    channel = ""

    async def read(self, channel: str, after: int, count: int) -> list[Entry]:
        if self.channel:
            cursor = await self.tail_start()
            await self.append(self.channel, "bar", {"live": True})
            _, entries = await self.tail(cursor, wait=0)
            self.channel = ""
            for e in entries:
                self.hub.deliver(e)
        return await super().read(channel, after, count)


async def test_a_conflated_channel_resumed_with_since_never_goes_back_or_repeats() -> None:
    log = FanOutDuringRead()
    hub = log.hub = Hub(log)
    c = hub.new_client()
    await publish(hub, "market:AAPL:updates", 5)
    await subscribe(hub, c, "market:AAPL:updates", since=2)
    log.channel = "market:AAPL:updates"  # seq 6 reaches the hub while the replay reads 3..
    assert [m["seq"] for m in await caught_up(hub, c)] == [3, 4, 5, 6]
    await publish(hub, "market:AAPL:updates", 2)
    assert [m["seq"] for m in await caught_up(hub, c)] == [8]  # live again: conflated


async def test_channels_leave_the_hub_with_their_last_subscriber() -> None:
    hub = Hub(MemoryChannelLog())
    a, b = hub.new_client(), hub.new_client()
    for i in range(300):
        await subscribe(hub, a, f"market:S{i}:updates")
    await subscribe(hub, b, "market:S0:updates")
    hub.set_user(a, 7)
    assert hub.channel_count == 300 and hub.per_user == {7: 1}
    hub.remove(a)
    assert hub.channel_count == 1 and hub.subscriber_count("market:S0:updates") == 1
    assert hub.per_user == {}
    hub.unsubscribe(b, "market:S0:updates")
    hub.remove(b)
    assert hub.channel_count == 0 and not hub.clients


# --- writing at once (the dedicated fan-out server's writer) -----------------------------------------


class Socket:
    """A writer that takes frames until its send buffer is "full" (``open`` False)."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.open = True

    def __call__(self, frame: bytes) -> bool:
        if not self.open:
            return False
        self.sent.append(frame)
        return True

    def seqs(self) -> list[int]:
        return [orjson.loads(f)["seq"] for f in self.sent]


async def test_a_client_with_an_empty_queue_is_written_at_once_and_nothing_waits() -> None:
    hub = Hub(MemoryChannelLog())
    fast, slow = hub.new_client(), hub.new_client()
    sock = Socket()
    fast.writer = sock
    await subscribe(hub, fast, "signals")
    await subscribe(hub, slow, "signals")
    await publish(hub, "signals", 3)
    assert sock.seqs() == [1, 2, 3] and not fast.queue and not fast.wake.is_set()
    assert fast.last["signals"] == 3
    assert [m["seq"] for m in drain(slow)] == [1, 2, 3]  # no writer: the queue, as before


async def test_one_message_is_encoded_once_for_every_socket_written_at_once() -> None:
    hub = Hub(MemoryChannelLog())
    socks = [Socket() for _ in range(5)]
    for sock in socks:
        client = hub.new_client()
        client.writer = sock
        await subscribe(hub, client, "system:alerts")
    await publish(hub, "system:alerts", 1)
    assert len({id(s.sent[0]) for s in socks}) == 1  # the same bytes object handed to all five


async def test_a_socket_that_cannot_take_more_falls_back_to_the_queue_and_keeps_the_order() -> None:
    hub = Hub(MemoryChannelLog(), client_queue=10)
    client = hub.new_client()
    sock = Socket()
    client.writer = sock
    await subscribe(hub, client, "signals")
    await publish(hub, "signals", 2)
    sock.open = False  # the peer stopped reading: its send buffer is over the high-water mark
    await publish(hub, "signals", 3, first=2)
    sock.open = True  # it reads again, but frames wait in the queue: later ones must not overtake
    await publish(hub, "signals", 1, first=5)
    assert sock.seqs() == [1, 2]
    assert [m["seq"] for m in drain(client)] == [3, 4, 5, 6]
    await publish(hub, "signals", 1, first=6)  # the queue is empty again: written at once
    assert sock.seqs() == [1, 2, 7]


async def test_a_socket_that_stays_full_lags_and_catches_up_from_the_log() -> None:
    hub = Hub(MemoryChannelLog(), client_queue=10)
    client = hub.new_client()
    sock = Socket()
    sock.open = False
    client.writer = sock
    await subscribe(hub, client, "signals")
    await publish(hub, "signals", 25)
    assert hub.lagged_total == 1 and "signals" in client.catching_up
    sock.open = True
    got = await caught_up(hub, client)
    assert [m.get("seq") for m in got if "seq" in m] == list(range(1, 26))
    assert any(m.get("type") == "lagged" for m in got)


async def test_a_gap_is_never_written_at_once() -> None:
    hub = Hub(MemoryChannelLog())
    client = hub.new_client()
    sock = Socket()
    client.writer = sock
    await subscribe(hub, client, "signals")
    await hub.log.append("signals", "signal", {"i": 0})  # seq 1: this node's tail missed it
    await hub.log.append("signals", "signal", {"i": 1})
    hub.deliver(Entry("signals", 2, (await hub.log.read("signals", 1, 1))[0].frame))
    assert sock.sent == [] and client.catching_up == {"signals": 2}
    assert [m["seq"] for m in await caught_up(hub, client)] == [1, 2]


async def test_replies_are_written_at_once_only_behind_nothing() -> None:
    hub = Hub(MemoryChannelLog())
    client = hub.new_client()
    sock = Socket()
    client.writer = sock
    assert client.offer(b'{"type":"pong"}') and sock.sent == [b'{"type":"pong"}'] and not client.queue
    sock.open = False
    assert client.offer(b'{"type":"pong","n":2}') and len(client.queue) == 1
    sock.open = True
    assert client.offer(b'{"type":"pong","n":3}') and len(client.queue) == 2  # behind the waiting one
