"""The reconnect loop shared by the WebSocket feeds (Binance, Alpaca, Polygon; Alpaca's news stream).

Every live provider drops connections: networks fail, servers restart, Binance cuts each
connection at 24 hours. The adapters only say how to open, greet and decode their provider's wire
format; this module owns what happens around that, so the three behave, count and stop the same
way:

* a dropped connection is re-opened with exponential backoff and jitter (many processes reconnecting
  to one endpoint at the same instant would look like an attack and get rate-limited), and the
  adapter's handshake re-authenticates and re-subscribes on every new socket;
* a connection can be *rotated* make-before-break: the successor is opened and subscribed before
  the old one is closed, so a planned cut (connection age, a ``serverShutdown`` notice) loses
  nothing; the adapter drops the overlap by its own ids;
* a bad frame is the adapter's to count in ``rejected`` and skip; only a condition that retrying
  cannot fix (bad credentials, a plan without access) ends ``stream()``, with a one-line
  ``FeedError``;
* ``close()`` ends ``stream()`` promptly whatever it is waiting on: a frame, a handshake, a backoff.

It also holds the few strict field readers the decoders share (``as_int``, ``as_float``,
``as_symbol``): a provider that changes a field's type should show up as counted rejects, not as
silently coerced nonsense.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.protocol import State
from websockets.uri import parse_uri

from tradesignals.marketdata.feeds.base import FeedError

log = structlog.get_logger(__name__)

T = TypeVar("T")
#: What a feed yields: market events for the market feeds, ``NewsItem`` for the news stream.
E = TypeVar("E")

# HTTP statuses on the upgrade that retrying will not change: wrong path, no access.
_FATAL_UPGRADE_STATUSES = frozenset({400, 401, 403, 404, 405, 410})


class TransientFeedError(Exception):
    """The provider refused this attempt for a reason that passes (connection limit, server busy)."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before reconnect attempt ``n``: ``initial * factor**(n-1)``, capped, minus jitter.

    The jitter takes up to ``jitter`` (a fraction) off each delay, so a fleet that lost its
    connections together does not come back in lockstep. Tests pass milliseconds here.
    """

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not (0 < self.initial <= self.maximum):
            raise FeedError(f"backoff needs 0 < initial <= maximum, got {self.initial}, {self.maximum}")
        if self.factor < 1:
            raise FeedError(f"backoff factor must be >= 1, got {self.factor}")
        if not (0 <= self.jitter <= 1):
            raise FeedError(f"backoff jitter must be in [0, 1], got {self.jitter}")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt ``attempt`` (1-based)."""
        exponent = min(max(attempt - 1, 0), 64)  # 2**64 * initial is past any sane maximum
        base = min(self.maximum, self.initial * self.factor**exponent)
        draw = (rng or random).random()
        return base * (1.0 - self.jitter * draw)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long each phase may take, and the keepalive that notices a dead peer.

    ``ping_interval``/``ping_timeout`` are the client's own pings: a half-open TCP connection (a
    NAT that forgot us) shows up within ``interval + timeout`` seconds instead of never. Replying
    to the server's pings (Binance expects a pong within a minute) is automatic in ``websockets``.
    ``close`` bounds how long ``close()`` waits for the server's closing handshake.
    """

    open: float = 10.0
    handshake: float = 10.0
    close: float = 2.0
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0


class ReconnectingFeed(ABC, Generic[E]):
    """A Feed over one WebSocket at a time, kept alive across drops; adapters fill in the wire."""

    name: str

    def __init__(
        self,
        *,
        backoff: Backoff | None,
        max_retries: int | None,
        timeouts: Timeouts | None,
        max_connection_age: float | None = None,
        max_message_bytes: int = 16 * 2**20,
        rng: random.Random | None = None,
    ) -> None:
        if max_retries is not None and max_retries < 0:
            raise FeedError(f"{self.name}: max_retries must be >= 0 or None, got {max_retries}")
        if max_connection_age is not None and max_connection_age <= 0:
            raise FeedError(f"{self.name}: max_connection_age must be positive, got {max_connection_age}")
        self._backoff = backoff or Backoff()
        self._max_retries = max_retries
        self._timeouts = timeouts or Timeouts()
        self._max_connection_age = max_connection_age
        self._max_message_bytes = max_message_bytes
        self._rng = rng or random.Random()
        #: Frames (or messages inside a frame) skipped, by reason. Bad data never raises.
        self.rejected: Counter[str] = Counter()
        #: Connections re-established, by why the previous one ended
        #: (``dropped``, ``rotation``, ``server_shutdown``).
        self.reconnects: Counter[str] = Counter()
        #: Attempts to open a connection that failed, by error type.
        self.failures: Counter[str] = Counter()
        self._closing = asyncio.Event()
        self._streaming = False
        self._ws: ClientConnection | None = None
        self._rotation: asyncio.Task[None] | None = None
        self._successor: tuple[ClientConnection, str] | None = None
        self._fatal: FeedError | None = None
        self._rotation_started = False

    # ---- what an adapter provides -------------------------------------------------------------

    @abstractmethod
    def symbols(self) -> list[str]: ...

    @abstractmethod
    def _url(self) -> str:
        """The URL to open; called for every connection, so it may carry the subscription."""

    def _headers(self) -> Mapping[str, str] | None:
        return None

    @abstractmethod
    async def _handshake(self, ws: ClientConnection) -> None:
        """Greet, authenticate and subscribe on a fresh socket.

        Raise ``FeedError`` for what retrying cannot fix, ``TransientFeedError`` for a refusal that
        passes. Runs under ``Timeouts.handshake``.
        """

    @abstractmethod
    def _decode(self, message: str | bytes) -> list[E]:
        """Events in one frame. Count what is skipped in ``self.rejected``; never raise for bad data.

        May call ``request_rotation`` (the server announced it will go away) or raise ``FeedError``
        (the provider revoked access mid-stream).
        """

    # ---- the Feed protocol ----------------------------------------------------------------------

    async def stream(self) -> AsyncIterator[E]:
        """Events as they arrive, across reconnects, until ``close()``.

        One consumer per feed: a second concurrent ``stream()`` would split the frames between them.
        """
        if self._streaming:
            raise FeedError(f"{self.name}: stream() is already being consumed; use one consumer per feed")
        if self._closing.is_set():
            return
        self._streaming = True
        failures = 0  # consecutive attempts that ended without delivering a frame
        ended_because: str | None = None
        try:
            while not self._closing.is_set():
                if failures:
                    if self._max_retries is not None and failures > self._max_retries:
                        raise FeedError(
                            f"{self.name}: gave up after {failures} failed connection attempts to {self._url()}"
                        )
                    if await self._sleep_unless_closed(self._backoff.delay(failures, self._rng)):
                        break
                try:
                    ws = await self._until_closed(self._open())
                except (TransientFeedError, OSError, InvalidHandshake, ConnectionClosed, TimeoutError) as exc:
                    fatal = fatal_upgrade(self.name, self._url(), exc)
                    if fatal is not None:
                        raise fatal from exc
                    failures += 1
                    self.failures[type(exc).__name__] += 1
                    log.warning("feed.connect_failed", feed=self.name, attempt=failures, error=_one_line(exc))
                    continue
                if ws is None:  # closed while connecting
                    break
                if ended_because is not None:
                    self.reconnects[ended_because] += 1
                    log.info("feed.reconnected", feed=self.name, reason=ended_because)
                delivered = False
                async with contextlib.aclosing(self._read(ws)) as events:
                    async for event_or_none in events:
                        if event_or_none is None:  # a frame arrived: the connection is healthy
                            if not delivered:
                                delivered, failures = True, 0
                            continue
                        yield event_or_none
                if self._fatal is not None:
                    raise self._fatal
                if self._closing.is_set():
                    break
                ended_because = "dropped"
                if not delivered:
                    failures += 1
                log.warning("feed.disconnected", feed=self.name, will_retry=True)
        finally:
            await self._teardown()
            self._streaming = False

    async def close(self) -> None:
        """End ``stream()`` promptly and release the socket; safe to call more than once."""
        self._closing.set()
        await self._teardown()

    # ---- rotation ---------------------------------------------------------------------------------

    def request_rotation(self, reason: str) -> None:
        """Open a successor connection now and switch to it (make-before-break)."""
        if self._ws is None:
            return
        if self._rotation is not None and not self._rotation.done():
            if self._rotation_started:
                return  # a successor is already being opened
            self._rotation.cancel()  # only the age timer was sleeping; rotate now instead
        self._rotation_started = False
        self._rotation = asyncio.get_running_loop().create_task(self._rotate(self._ws, 0.0, reason))

    async def _rotate(self, old: ClientConnection, after: float, reason: str) -> None:
        """Replace ``old`` by a fresh, subscribed connection once ``after`` seconds have passed."""
        await asyncio.sleep(after)
        self._rotation_started = True
        attempt = 0
        while not self._closing.is_set() and old.state is State.OPEN:
            attempt += 1
            try:
                new = await self._open()
            except FeedError as exc:
                # Access was revoked: end the stream with this error rather than lose it in a task.
                self._fatal = exc
                await old.close()
                return
            except Exception as exc:
                self.failures[type(exc).__name__] += 1
                log.warning("feed.rotation_failed", feed=self.name, attempt=attempt, error=_one_line(exc))
                await asyncio.sleep(self._backoff.delay(attempt, self._rng))
                continue
            if self._closing.is_set() or old.state is not State.OPEN:
                await _discard(new)
                return
            self._successor = (new, reason)
            log.info("feed.rotating", feed=self.name, reason=reason)
            # Closing ``old`` ends its reader after the frames it already buffered are consumed.
            await old.close()
            return

    # ---- internals ----------------------------------------------------------------------------------

    async def _open(self) -> ClientConnection:
        ws = await connect(
            self._url(),
            additional_headers=self._headers(),
            open_timeout=self._timeouts.open,
            ping_interval=self._timeouts.ping_interval,
            ping_timeout=self._timeouts.ping_timeout,
            close_timeout=self._timeouts.close,
            max_size=self._max_message_bytes,
        )
        try:
            async with asyncio.timeout(self._timeouts.handshake):
                await self._handshake(ws)
        except BaseException:
            await _discard(ws)
            raise
        return ws

    async def _read(self, ws: ClientConnection) -> AsyncGenerator[E | None, None]:
        """Events from ``ws`` and then from its rotation successors; ``None`` marks a frame boundary."""
        self._ws = ws
        self._schedule_rotation(ws)
        while True:
            try:
                message = await ws.recv()
            except ConnectionClosed:
                successor, self._successor = self._successor, None
                if successor is None or self._closing.is_set():
                    if successor is not None:
                        await _discard(successor[0])
                    return
                ws, reason = successor
                self.reconnects[reason] += 1
                self._ws = ws
                self._schedule_rotation(ws)
                continue
            if self._closing.is_set():
                return
            yield None
            for event in self._decode(message):
                yield event

    def _schedule_rotation(self, ws: ClientConnection) -> None:
        if self._rotation is not None and not self._rotation.done():
            self._rotation.cancel()
        self._rotation = None
        self._rotation_started = False
        if self._max_connection_age is not None:
            self._rotation = asyncio.get_running_loop().create_task(
                self._rotate(ws, self._max_connection_age, "rotation")
            )

    async def _until_closed(self, work: Coroutine[Any, Any, T]) -> T | None:
        """Result of ``work``, or None (and ``work`` cancelled) if ``close()`` is called first."""
        task = asyncio.ensure_future(work)
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({task, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            if not task.done():
                task.cancel()
                # wait() never raises the task's outcome, and lets our own cancellation through.
                await asyncio.wait({task})
        if task.cancelled():
            return None
        result = task.result()
        if self._closing.is_set():
            if isinstance(result, ClientConnection):
                await _discard(result)
            return None
        return result

    async def _sleep_unless_closed(self, seconds: float) -> bool:
        """Sleep ``seconds``; True if ``close()`` was called meanwhile."""
        try:
            async with asyncio.timeout(seconds):
                await self._closing.wait()
        except TimeoutError:
            return False
        return True

    async def _teardown(self) -> None:
        rotation, self._rotation = self._rotation, None
        if rotation is not None and not rotation.done():
            rotation.cancel()
            await asyncio.wait({rotation})
        successor, self._successor = self._successor, None
        if successor is not None:
            await _discard(successor[0])
        ws = self._ws
        if ws is not None:
            await _discard(ws)


def validate_url(feed: str, url: str) -> str:
    """Refuse a malformed URL at construction, where the mistake is, not at the first reconnect."""
    try:
        parse_uri(url)
    except InvalidURI as exc:
        raise FeedError(f"{feed}: {url!r} is not a WebSocket URL (ws:// or wss://)") from exc
    return url


def fatal_upgrade(feed: str, url: str, exc: BaseException) -> FeedError | None:
    """A FeedError when the HTTP upgrade was refused for good (404, 401…), else None."""
    if isinstance(exc, InvalidStatus) and exc.response.status_code in _FATAL_UPGRADE_STATUSES:
        return FeedError(f"{feed}: {url} refused the WebSocket upgrade with HTTP {exc.response.status_code}")
    return None


def as_int(value: Any) -> int:
    """An integer field (epoch milliseconds, ids); a bool or a string is refused, not coerced."""
    if type(value) is not int:
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def as_float(value: Any) -> float:
    """A price or size: a JSON number, or a decimal string as Binance sends them."""
    if isinstance(value, str) or (isinstance(value, int | float) and not isinstance(value, bool)):
        return float(value)
    raise TypeError(f"expected a number, got {value!r}")


def as_symbol(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"expected a symbol, got {value!r}")
    return value.upper()


async def _discard(ws: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        await ws.close()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
