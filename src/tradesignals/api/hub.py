"""This node's WebSocket subscribers, and the slow-consumer policy of each channel kind.

Messages are numbered and kept by the ``ChannelLog`` (``channel_seq.py``), shared by every node;
the hub holds only who listens here: a channel exists in the hub while it has a subscriber and is
removed with its last one, so a socket leaves nothing behind when it goes.

Each client remembers, per channel, the last ``seq`` it was given. Delivery per channel kind:

- **Reliable** (``signals``, ``user:*``, ``signal:*:live``, ``system:alerts``, ``market:status``):
  never dropped silently. A message is queued when it is the next one (``seq == last + 1``); when
  the client's queue is full, or a number is missing (this node's tail ran behind, or the client
  resumed with ``since``), the channel switches to *catching up*: its sender reads the missed
  messages from the log in chunks of ``replay_chunk``, only while its queue is empty, so a replay
  never crowds out replies. A full queue also tells the client ``{"type": "lagged", "channel",
  "from_seq"}`` first. A gap the log no longer holds (trimmed) is answered ``{"type": "resync",
  "channel", "from_seq"}``: reload over REST; messages after ``from_seq`` follow.
- **Conflated** (``market:{symbol}:updates``): only the latest message per channel waits in the
  queue; a newer one replaces it (a price is stale once the next one exists). A resume with
  ``since`` is read from the log first, like a reliable channel's, so seqs never go back.

A client that does not read at all is closed by its sender when a send makes no progress for
``send_timeout_s`` (close code 4008).

**Writing at once.** A server that can write a frame without awaiting (``ws_server.py``) gives its
clients a ``writer``: when a client's queue is empty and its channel is live, ``deliver`` hands the
frame, encoded once per message, straight to the socket — no queue, no task switch. The writer
says no when the socket's send buffer is full (the peer is not reading); the frame then takes the
queue and the policy above applies unchanged. Order per channel is kept: a frame is written at
once only when nothing of that client waits before it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from tradesignals.api.channel_seq import ChannelLog, Entry
from tradesignals.domain.entitlements import is_conflated


@dataclass(eq=False, slots=True)
class HubClient:
    """One socket: its queue of frames to send and, per channel, the last ``seq`` it was given."""

    user_id: int | None = None
    limit: int = 1000
    queue: deque[str | tuple[str]] = field(default_factory=deque)  # a frame, or (conflated channel,)
    last: dict[str, int] = field(default_factory=dict)
    catching_up: dict[str, int] = field(default_factory=dict)  # channel -> newest seq seen meanwhile
    announce: set[str] = field(default_factory=set)  # channels that lagged: say so before catching up
    latest: dict[str, str] = field(default_factory=dict)  # conflated channel -> its newest frame
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closing: tuple[int, str] | None = None  # (close code, reason): the socket is to be closed
    writer: Callable[[bytes], bool] | None = None  # writes a frame now; False: the socket cannot take it

    @property
    def channels(self) -> set[str]:
        return set(self.last)

    def offer(self, frame: bytes) -> bool:
        """Queue a direct reply (ack, error); False when the queue is full (the client is not reading)."""
        if not self.queue and self.writer is not None and self.writer(frame):
            return True
        if len(self.queue) >= self.limit:
            return False
        self.queue.append(frame.decode())
        self.wake.set()
        return True

    def pop(self) -> str | None:
        while self.queue:
            item = self.queue.popleft()
            if isinstance(item, tuple):
                frame = self.latest.pop(item[0], None)
                if frame is not None:
                    return frame
                continue
            return item
        return None


def _notice(type_: str, channel: str, from_seq: int) -> str:
    return orjson.dumps({"type": type_, "channel": channel, "from_seq": from_seq}).decode()


class Hub:
    def __init__(self, log: ChannelLog, *, client_queue: int = 1000, replay_chunk: int = 500) -> None:
        self.log = log
        self.client_queue = client_queue
        self.replay_chunk = replay_chunk
        self._subs: dict[str, set[HubClient]] = {}
        self.clients: set[HubClient] = set()
        self.per_user: dict[int, int] = {}
        self.lagged_total = 0
        self.closes: dict[int, int] = {}  # close code -> sockets this node closed with it
        self.resyncs_total = 0
        self.ready = asyncio.Event()  # set by the node's fan-out once it reads the log
        self.relays: dict[str, asyncio.Event] = {}  # topic -> set once this node's relay joined

    def is_ready(self) -> bool:
        """The fan-out reads the log and every relay has joined its group (messages now count)."""
        return self.ready.is_set() and all(e.is_set() for e in self.relays.values())

    async def publish(self, channel: str, type_: str, data: object) -> int:
        """Append one message to the shared log (an in-process producer: billing notices); every
        node's fan-out then delivers it. Returns its seq."""
        seq = await self.log.append(channel, type_, data)
        assert seq is not None  # no ``once``: always numbered
        return seq

    def new_client(self) -> HubClient:
        client = HubClient(limit=self.client_queue)
        self.clients.add(client)
        return client

    def set_user(self, client: HubClient, user_id: int) -> None:
        if client.user_id is not None:
            self._forget_user(client)
        client.user_id = user_id
        self.per_user[user_id] = self.per_user.get(user_id, 0) + 1

    def _forget_user(self, client: HubClient) -> None:
        if client.user_id is None:
            return
        left = self.per_user.get(client.user_id, 1) - 1
        if left > 0:
            self.per_user[client.user_id] = left
        else:
            self.per_user.pop(client.user_id, None)

    def subscribe(self, client: HubClient, channel: str, current: int, since: int | None = None) -> None:
        """Listen from ``current`` (the log's seq now), or from ``since`` (replayed from the log first)."""
        self._subs.setdefault(channel, set()).add(client)
        if since is None or since >= current:
            client.last[channel] = current
            return
        client.last[channel] = since
        client.catching_up[channel] = current
        client.wake.set()

    def unsubscribe(self, client: HubClient, channel: str) -> None:
        subs = self._subs.get(channel)
        if subs is not None:
            subs.discard(client)
            if not subs:
                del self._subs[channel]
        client.last.pop(channel, None)
        client.catching_up.pop(channel, None)
        client.announce.discard(channel)
        client.latest.pop(channel, None)

    def remove(self, client: HubClient) -> None:
        for channel in list(client.last):
            self.unsubscribe(client, channel)
        self._forget_user(client)
        client.user_id = None
        self.clients.discard(client)

    def subscriber_count(self, channel: str) -> int:
        return len(self._subs.get(channel, ()))

    @property
    def channel_count(self) -> int:
        return len(self._subs)

    def deliver(self, entry: Entry) -> None:
        """One message from the log's fan-out to this node's subscribers of its channel."""
        subs = self._subs.get(entry.channel)
        if not subs:
            return
        channel, seq, frame = entry.channel, entry.seq, entry.frame
        conflated = is_conflated(channel)
        payload: bytes | None = None  # the frame encoded once, for the clients written at once
        for client in subs:
            last = client.last.get(channel)
            if last is None or seq <= last:
                continue  # already given (a replay overtook the fan-out)
            if channel in client.catching_up:
                # the sender reads it from the log, in order: a conflated channel resumed with
                # ``since`` too, or its newest frame would overtake (or repeat) the replayed ones
                client.catching_up[channel] = seq
                continue
            if (conflated or seq == last + 1) and not client.queue and client.writer is not None:
                if payload is None:
                    payload = frame.encode()
                if client.writer(payload):
                    client.last[channel] = seq
                    continue
            if conflated:
                if channel not in client.latest:
                    client.queue.append((channel,))
                client.latest[channel] = frame
                client.last[channel] = seq
                client.wake.set()
                continue
            if seq != last + 1:
                client.catching_up[channel] = seq  # a gap: fill it from the log
            elif len(client.queue) >= client.limit:
                client.catching_up[channel] = seq  # lagged: say so, then catch up
                client.announce.add(channel)
                self.lagged_total += 1
            else:
                client.queue.append(frame)
                client.last[channel] = seq
            client.wake.set()

    async def catch_up(self, client: HubClient) -> list[str]:
        """The next frames of one channel that is catching up (empty when none is); read from the log.

        Returns the ``lagged`` notice, the missed messages in order, or a ``resync`` when the log no
        longer holds them; a channel whose read comes back short is live again.
        """
        for channel in list(client.catching_up):
            out: list[str] = []
            if channel in client.announce:
                client.announce.discard(channel)
                out.append(_notice("lagged", channel, client.last[channel]))
            after = client.last[channel]
            entries = await self.log.read(channel, after, self.replay_chunk)
            if channel not in client.last:  # unsubscribed meanwhile
                return out
            if entries and entries[0].seq == after + 1:
                out.extend(e.frame for e in entries)
                client.last[channel] = entries[-1].seq
                if len(entries) < self.replay_chunk and entries[-1].seq >= client.catching_up[channel]:
                    del client.catching_up[channel]  # live again
                return out
            current = await self.log.current(channel)
            if channel not in client.last:
                return out
            if current > after:  # trimmed: the client reloads over REST
                self.resyncs_total += 1
                out.append(_notice("resync", channel, current))
            client.last[channel] = max(after, current)
            if client.last[channel] >= client.catching_up[channel]:
                del client.catching_up[channel]
            return out
        return []


__all__ = ["Hub", "HubClient"]
