"""Channel hub for WebSocket delivery: sequence numbers, a replay buffer, bounded client queues.

Each message is encoded once per channel and the same bytes go to every subscriber. A client whose
queue is full is dropped (it can reconnect and resume with ``since``) so one slow reader never
slows the others.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(eq=False, slots=True)
class HubClient:
    queue: asyncio.Queue[bytes]
    channels: set[str] = field(default_factory=set)
    dropped: bool = False
    drop_reason: str = ""

    def offer(self, payload: bytes) -> bool:
        if self.dropped:
            return False
        try:
            self.queue.put_nowait(payload)
        except asyncio.QueueFull:
            self.dropped = True
            self.drop_reason = "slow consumer: send queue full"
            return False
        return True


@dataclass(slots=True)
class _Channel:
    seq: int = 0
    ring: deque[tuple[int, bytes]] = field(default_factory=deque)
    subscribers: set[HubClient] = field(default_factory=set)


class Hub:
    def __init__(self, *, replay_buffer: int = 1000, client_queue: int = 1000) -> None:
        self.replay_buffer = replay_buffer
        self.client_queue = client_queue
        self._channels: dict[str, _Channel] = {}
        self.dropped_clients = 0

    def new_client(self) -> HubClient:
        return HubClient(queue=asyncio.Queue(maxsize=self.client_queue))

    def publish(self, channel: str, type_: str, data: Any) -> int:
        """Send to every subscriber of ``channel``; returns the message's sequence number."""
        ch = self._channels.setdefault(channel, _Channel())
        ch.seq += 1
        payload = orjson.dumps({"channel": channel, "seq": ch.seq, "type": type_, "data": data})
        ch.ring.append((ch.seq, payload))
        if len(ch.ring) > self.replay_buffer:
            ch.ring.popleft()
        for client in list(ch.subscribers):
            if not client.offer(payload):
                self._drop(client)
        return ch.seq

    def subscribe(self, client: HubClient, channel: str, since: int | None = None) -> int:
        """Subscribe; with ``since``, first replay buffered messages with seq > since. Returns the current seq."""
        ch = self._channels.setdefault(channel, _Channel())
        if since is not None:
            for seq, payload in ch.ring:
                if seq > since and not client.offer(payload):
                    self._drop(client)
                    return ch.seq
        ch.subscribers.add(client)
        client.channels.add(channel)
        return ch.seq

    def unsubscribe(self, client: HubClient, channel: str) -> None:
        ch = self._channels.get(channel)
        if ch is not None:
            ch.subscribers.discard(client)
        client.channels.discard(channel)

    def remove(self, client: HubClient) -> None:
        for channel in list(client.channels):
            self.unsubscribe(client, channel)

    def subscriber_count(self, channel: str) -> int:
        ch = self._channels.get(channel)
        return len(ch.subscribers) if ch else 0

    def _drop(self, client: HubClient) -> None:
        self.dropped_clients += 1
        self.remove(client)
        # Wake the sender so it notices the drop and closes the socket.
        if client.queue.full():
            return
        client.queue.put_nowait(b"")
