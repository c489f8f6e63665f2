"""Signal images: rendered once, kept in the object store, served from there (and a small LRU).

Where they live: the project's artifact store (``models.registry.ArtifactStore``) under the name
``signals``, one version per signal id holding ``chart.png`` — ``TS_HOME/images`` in embedded mode,
an S3-compatible bucket with ``TS_IMAGE_STORE=s3://BUCKET/PREFIX`` (the S3 store's ``_COMPLETE``
marker makes an upload all-or-nothing, as for models). A signal's image never changes: it is drawn
from the bars up to its decision, so the first stored copy is the copy, on every node.

When: the image worker (``images.worker``) renders each new signal from the ``signals`` topic, in
this service's own thread — never in the engine's path. A request that comes before it (or for a
signal published while no worker ran) renders on demand in the same thread, bounded: at most
``max_pending`` renders wait at once, beyond that the API answers 503 with Retry-After. Two
requests for the same missing image share one render.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import pandas as pd
import structlog
from prometheus_client import Counter, Histogram

from tradesignals.domain.market import Timeframe, to_ns
from tradesignals.domain.sessions import DAY_NS
from tradesignals.domain.signals import Signal
from tradesignals.images.render import RECENT_BARS, render_png
from tradesignals.models.registry import ArtifactStore, ModelRegistryError
from tradesignals.storage.timeseries import BarStore

log = structlog.get_logger(__name__)

NAME = "signals"
FILENAME = "chart.png"


class ImageBusy(Exception):
    """Too many on-demand renders are waiting: try again shortly."""


class ImageFailed(Exception):
    """The image could not be rendered or stored; the reason is in the log."""


@dataclass(frozen=True, slots=True)
class StoredImage:
    data: bytes
    etag: str
    """sha256 of the bytes (hex): the same image has the same tag on every node."""


IMAGES = Counter("ts_signal_images_total", "Signal images by result: rendered, failed.", ["result"])
RENDER_SECONDS = Histogram(
    "ts_signal_image_render_seconds",
    "Time to draw one signal image (the render thread, not the request).",
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


@dataclass(slots=True)
class ImageStats:
    """This service's counts (the process-wide ones are ``ts_signal_images_total``)."""

    rendered: int = 0
    failed: int = 0

    def count(self, result: str) -> None:
        setattr(self, result, getattr(self, result) + 1)
        IMAGES.labels(result).inc()


def _image(data: bytes) -> StoredImage:
    return StoredImage(data, hashlib.sha256(data).hexdigest())


class SignalImages:
    def __init__(
        self,
        store: ArtifactStore,
        bars: BarStore,
        *,
        max_pending: int = 8,
        cache_entries: int = 128,
    ) -> None:
        self.store = store
        self.bars = bars
        self.max_pending = max_pending
        self.cache_entries = cache_entries
        self.stats = ImageStats()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="signal-image")
        self._cache: OrderedDict[str, StoredImage] = OrderedDict()
        self._lock = threading.Lock()
        self._inflight: dict[str, Future[StoredImage]] = {}

    # -- reading ---------------------------------------------------------------------------------

    def load(self, signal_id: str) -> StoredImage | None:
        """The stored image of ``signal_id``, or None when it was not rendered yet."""
        with self._lock:
            hit = self._cache.get(signal_id)
            if hit is not None:
                self._cache.move_to_end(signal_id)
                return hit
        try:
            data = self.store.read(NAME, signal_id, FILENAME)
        except ModelRegistryError:
            return None
        return self._remember(signal_id, _image(data))

    def _remember(self, signal_id: str, image: StoredImage) -> StoredImage:
        with self._lock:
            self._cache[signal_id] = image
            self._cache.move_to_end(signal_id)
            while len(self._cache) > self.cache_entries:
                self._cache.popitem(last=False)
        return image

    # -- rendering -------------------------------------------------------------------------------

    def recent_bars(self, signal: Signal) -> pd.DataFrame:
        """The bars of the signal's timeframe opened before its decision (the deciding bar included)."""
        try:
            timeframe = Timeframe.parse(signal.timeframe)
        except ValueError:
            return pd.DataFrame(columns=["ts", "open", "high", "low", "close", "volume"])
        decided = to_ns(signal.decided_at or signal.created_at)
        span = max(4 * RECENT_BARS * timeframe.ns, 10 * DAY_NS)
        return self.bars.read(timeframe, [signal.symbol], decided - span, decided)

    def render_and_store(self, signal: Signal) -> StoredImage:
        """Render, store and return the image (the stored one when it exists already). Blocking."""
        existing = self.load(signal.id)
        if existing is not None:
            return existing
        t0 = time.perf_counter()
        try:
            png = render_png(signal, self.recent_bars(signal))
        except Exception as exc:  # a chart that cannot be drawn is counted, never a crash
            self.stats.count("failed")
            log.warning("image.render_failed", id=signal.id, error=repr(exc)[:300])
            raise ImageFailed(signal.id) from None
        RENDER_SECONDS.observe(time.perf_counter() - t0)
        try:
            self.store.publish(NAME, signal.id, {FILENAME: png})
        except (ModelRegistryError, OSError) as exc:
            # Another node (or this one, earlier) stored it first: that copy is the copy.
            stored = self.load(signal.id)
            if stored is not None:
                return stored
            self.stats.count("failed")
            log.warning("image.store_failed", id=signal.id, error=str(exc)[:300])
            raise ImageFailed(signal.id) from None
        self.stats.count("rendered")
        return self._remember(signal.id, _image(png))

    async def ensure(self, signal: Signal, *, bounded: bool = True) -> StoredImage:
        """The image of ``signal``: stored, or rendered now in this service's thread.

        ``bounded`` (API requests): ImageBusy when ``max_pending`` renders already wait. The worker
        passes False: it renders one signal at a time and must not be refused.
        """
        found = await asyncio.to_thread(self.load, signal.id)
        if found is not None:
            return found
        with self._lock:
            fut = self._inflight.get(signal.id)
            if fut is None:
                if bounded and len(self._inflight) >= self.max_pending:
                    raise ImageBusy(f"{len(self._inflight)} images are being rendered")
                fut = self._pool.submit(self.render_and_store, signal)
                self._inflight[signal.id] = fut
                fut.add_done_callback(functools.partial(self._done, signal.id))
        return await asyncio.wrap_future(fut)

    @property
    def pending(self) -> int:
        """Renders submitted and not finished yet."""
        with self._lock:
            return len(self._inflight)

    def _done(self, signal_id: str, _future: object) -> None:
        with self._lock:
            self._inflight.pop(signal_id, None)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._pool.shutdown(wait=True, cancel_futures=True)


__all__ = ["FILENAME", "NAME", "ImageBusy", "ImageFailed", "SignalImages", "StoredImage"]
