import orjson

from tradesignals.api.hub import Hub


def drain(client) -> list[dict]:  # type: ignore[no-untyped-def]
    out = []
    while not client.queue.empty():
        raw = client.queue.get_nowait()
        if raw:
            out.append(orjson.loads(raw))
    return out


async def test_messages_carry_channel_sequence_and_reach_only_subscribers() -> None:
    hub = Hub()
    a, b = hub.new_client(), hub.new_client()
    hub.subscribe(a, "signals")
    hub.subscribe(b, "system:alerts")
    hub.publish("signals", "signal", {"id": 1})
    hub.publish("signals", "signal", {"id": 2})
    got = drain(a)
    assert [(m["channel"], m["seq"], m["data"]["id"]) for m in got] == [("signals", 1, 1), ("signals", 2, 2)]
    assert drain(b) == []


async def test_since_replays_only_newer_messages_from_the_buffer() -> None:
    hub = Hub(replay_buffer=3)
    for i in range(5):
        hub.publish("signals", "signal", {"i": i})
    late = hub.new_client()
    current = hub.subscribe(late, "signals", since=3)
    assert current == 5
    assert [m["seq"] for m in drain(late)] == [4, 5]
    older = hub.new_client()
    hub.subscribe(older, "signals", since=0)
    assert [m["seq"] for m in drain(older)] == [3, 4, 5]  # the buffer holds the last 3 only


async def test_slow_client_is_dropped_without_blocking_others() -> None:
    hub = Hub(client_queue=3)
    slow, fast = hub.new_client(), hub.new_client()
    hub.subscribe(slow, "signals")
    hub.subscribe(fast, "signals")
    for i in range(10):
        hub.publish("signals", "signal", {"i": i})
        drain(fast)
    assert slow.dropped and "slow consumer" in slow.drop_reason
    assert hub.dropped_clients == 1
    assert hub.subscriber_count("signals") == 1
    hub.publish("signals", "signal", {"i": 99})
    assert drain(fast)[-1]["data"] == {"i": 99}


async def test_unsubscribe_and_remove() -> None:
    hub = Hub()
    c = hub.new_client()
    hub.subscribe(c, "signals")
    hub.subscribe(c, "market:status")
    hub.unsubscribe(c, "signals")
    hub.publish("signals", "signal", {})
    assert drain(c) == []
    hub.remove(c)
    assert hub.subscriber_count("market:status") == 0
