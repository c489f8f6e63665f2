"""Reads a running server's ledger from its public API only: what any outsider can verify.

``tradesignals ledger verify --remote URL`` feeds these pages to ``domain.checkpoints.audit``; nothing
here judges them. Every failure to read (unreachable, an error status, a malformed answer) is one
``RemoteError`` line naming the address; a well-formed answer with wrong content is left to the audit.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, cast

import httpx

from tradesignals.domain.checkpoints import Checkpoint
from tradesignals.domain.ledger import LedgerEntry

LEDGER_PAGE = 5_000  # the API's largest page
CHECKPOINT_PAGE = 1_000


class RemoteError(Exception):
    """The server's ledger cannot be read; one line."""


def _entry(obj: Any) -> LedgerEntry:
    try:
        at_text = obj["at"]
        try:
            at = datetime.fromisoformat(at_text)
        except (TypeError, ValueError):
            at = cast(datetime, at_text)  # verify reports it as an unhashable entry, at its seq
        # a sealed entry's signal_id is served null: only its link is checked, so "" stands in
        signal_id = obj["signal_id"] if obj["data"] is not None else (obj["signal_id"] or "")
        return LedgerEntry(obj["seq"], signal_id, obj["kind"], at, obj["data"], obj["prev_hash"], obj["hash"])
    except (KeyError, TypeError):
        raise RemoteError(f"malformed ledger entry: {str(obj)[:120]}") from None


class RemoteLedger:
    """The ledger, checkpoints and public key served at ``url`` (``http://host:port``)."""

    def __init__(self, url: str, *, client: httpx.Client | None = None, timeout_s: float = 30.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise RemoteError(f"{url!r} is not an http:// or https:// address")
        self.url = url.rstrip("/")
        self._owned = client is None
        self._client = client if client is not None else httpx.Client(timeout=timeout_s)

    def close(self) -> None:
        if self._owned:
            self._client.close()

    def __enter__(self) -> RemoteLedger:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _get(self, path: str, params: dict[str, int] | None = None, *, missing_ok: bool = False) -> Any:
        where = f"{self.url}{path}"
        try:
            r = self._client.get(where, params=params)
        except httpx.HTTPError as err:
            raise RemoteError(f"cannot reach {where}: {type(err).__name__}: {err}") from None
        if missing_ok and r.status_code == 404:
            return None
        if r.status_code != 200:
            detail = r.text[:200].replace("\n", " ")
            raise RemoteError(f"{where} answered {r.status_code}: {detail}")
        try:
            return r.json()  # the stdlib parser: 5.0 stays a float and 5 an int, as hashed
        except ValueError:
            raise RemoteError(f"{where} did not answer JSON") from None

    def public_key(self) -> str | None:
        body = self._get("/api/ledger/public-key", missing_ok=True)
        if body is None:
            return None
        key = body.get("public_key") if isinstance(body, dict) else None
        if not isinstance(key, str):
            raise RemoteError(f"{self.url}/api/ledger/public-key: no public_key in the answer")
        return key

    def latest(self) -> Checkpoint | None:
        body = self._get("/api/ledger/checkpoints/latest", missing_ok=True)
        return None if body is None else self._checkpoint(body)

    def _checkpoint(self, obj: Any) -> Checkpoint:
        try:
            return Checkpoint.from_json(obj)
        except ValueError as err:
            raise RemoteError(f"{self.url}: malformed checkpoint: {err}") from None

    def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint, in number order (they are few: one an hour is 8,760 a year)."""
        out: list[Checkpoint] = []
        from_number: int | None = 0
        while from_number is not None:
            body = self._get("/api/ledger/checkpoints", {"from": from_number, "limit": CHECKPOINT_PAGE})
            try:
                items, from_number = body["checkpoints"], body["next_from"]
            except (KeyError, TypeError):
                raise RemoteError(f"{self.url}/api/ledger/checkpoints: malformed page") from None
            out += [self._checkpoint(item) for item in items]
        return out

    def entries(self) -> Iterator[LedgerEntry]:
        """Every ledger entry from seq 1, a page at a time (memory stays flat)."""
        from_seq: int | None = 0
        while from_seq is not None:
            body = self._get("/api/ledger", {"from": from_seq, "limit": LEDGER_PAGE})
            try:
                items, from_seq = body["entries"], body["next_from"]
            except (KeyError, TypeError):
                raise RemoteError(f"{self.url}/api/ledger: malformed page") from None
            for item in items:
                yield _entry(item)


__all__ = ["RemoteError", "RemoteLedger"]
