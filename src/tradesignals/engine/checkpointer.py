"""Writes signed ledger checkpoints: at start, every ``interval_s``, and at a clean stop.

Run by the role that writes the ledger (the engine), so that a checkpoint follows the entries it
vouches for closely; the final one is written by a shutdown hook, after the engine has stopped
appending, so the head a stopped service last vouched for is its true last entry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from tradesignals.domain.checkpoints import Checkpoint, Signer, next_checkpoint, short
from tradesignals.storage.base import CheckpointRepository, StorageError

log = structlog.get_logger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


class Checkpointer:
    """Signs the current ledger head with ``signer`` and appends it to ``repo``."""

    def __init__(
        self, repo: CheckpointRepository, signer: Signer, clock: Callable[[], datetime] = _now
    ) -> None:
        self.repo = repo
        self.signer = signer
        self.clock = clock

    def check_key(self) -> None:
        """``ValueError`` unless ``signer`` is the key in force: a swapped key must stop the start,
        not produce checkpoints that every verifier will reject."""
        latest = self.repo.latest()
        if latest is not None and latest.key_after != self.signer.public_key:
            raise ValueError(
                f"the configured key {short(self.signer.public_key)} is not the key in force"
                f" {short(latest.key_after)} after {latest.describe()}; restore that key, or rotate"
                " to a new one with `tradesignals ledger rotate-key`"
            )

    def checkpoint(self, next_public_key: str | None = None) -> Checkpoint:
        """Write the next checkpoint (a rotation when ``next_public_key`` is given) and return it."""

        def make(seq: int, head_hash: str, previous: Checkpoint | None) -> Checkpoint:
            return next_checkpoint(
                self.signer,
                previous,
                seq=seq,
                head_hash=head_hash,
                at=self.clock(),
                next_public_key=next_public_key,
            )

        cp = self.repo.append(make)
        log.info(
            "ledger.checkpoint",
            number=cp.number,
            seq=cp.seq,
            head=cp.head_hash,
            rotation=next_public_key is not None,
        )
        return cp

    def try_checkpoint(self, why: str) -> Checkpoint | None:
        """``checkpoint()``, a failure logged instead of raised: the next interval tries again."""
        try:
            return self.checkpoint()
        except (StorageError, ValueError) as exc:
            log.warning("ledger.checkpoint_failed", why=why, error=str(exc))
            return None


async def run_checkpoints(checkpointer: Checkpointer, stop: asyncio.Event, interval_s: float) -> None:
    """One checkpoint now, then one every ``interval_s`` until ``stop`` (the stop one is a hook's)."""
    await asyncio.to_thread(checkpointer.try_checkpoint, "start")
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
        except TimeoutError:
            await asyncio.to_thread(checkpointer.try_checkpoint, "interval")


__all__ = ["Checkpointer", "run_checkpoints"]
