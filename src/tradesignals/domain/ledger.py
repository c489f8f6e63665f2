"""The signal ledger: a hash chain over every signal event, checkable by anyone from its entries alone.

The public track record is only worth something if nobody — us included — can quietly edit it. So
every event (a signal created, updated, closed with its outcome) is chained to the one before it,
and changing, dropping or reordering any stored entry breaks the chain at that point.

This module is the one definition of the recipe; the repository uses it to write hashes, the
migration to backfill them, ``tradesignals ledger verify`` and the tests to check them. It is pure
(no I/O) so that it can be read, ported and audited on its own.

The recipe (what ``GET /api/ledger`` users need to re-verify; frozen: changing any rule would break
every existing hash)
--------------------------------------------------------------------------------------------------

Each entry is ``{seq, signal_id, kind, at, data}`` plus ``prev_hash`` and ``hash``:

- ``seq``: 1, 2, 3, … with no gaps, in the order entries were appended.
- ``at``: the event time in UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (always six fractional digits, ``Z``).
- ``prev_hash`` of the first entry is ``GENESIS`` (64 zeros); of every other entry, the ``hash`` of
  the entry before it.
- ``hash = sha256(bytes.fromhex(prev_hash) + canonical_json({seq, signal_id, kind, at, data}))``,
  as 64 lowercase hex digits (the 32 raw bytes of ``prev_hash``, not its hex text, are hashed).
- canonical JSON: object keys sorted (by code point), no whitespace, UTF-8 (no ``\\u`` escapes for
  non-ASCII), floats in Python's shortest round-trip form (``repr(float)``: ``0.1``, ``5.0``,
  ``1e+22``), integers as integers, no NaN or infinity. It is exactly Python's
  ``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)``.

Re-verifying the API's output in Python (its ``json`` keeps ``5.0`` a float and ``5`` an int, which
the hash depends on; a verifier in another language must keep that distinction too)::

    import hashlib, json
    def canon(o): return json.dumps(o, sort_keys=True, separators=(",", ":"),
                                    ensure_ascii=False, allow_nan=False).encode()
    prev, seq = "0" * 64, 1
    for e in entries:  # every entry from seq 1, in order, from GET /api/ledger pages
        body = {k: e[k] for k in ("seq", "signal_id", "kind", "at", "data")}
        h = e["hash"] if e["data"] is None else (  # None: sealed, see below
            hashlib.sha256(bytes.fromhex(prev) + canon(body)).hexdigest())
        assert e["seq"] == seq and e["prev_hash"] == prev and e["hash"] == h, e["seq"]
        prev, seq = h, seq + 1
    print("ok, head", prev)

Sealed entries: the public API withholds the ``data`` of events of signals that are still open
(``data`` null, ``sealed`` true) — a live signal is what premium users pay for. Its ``hash`` is a
commitment: the chain still links through it, and once the signal closes the entry is served in
full and must hash to the value published while it was sealed. So a verifier of API output checks
the links of sealed entries and everything of the others (``verify`` does both).

Salt and the hidden id: every ``created`` and ``updated`` entry's ``data`` holds ``salt``, 128 random
bits as 32 hex digits (``new_salt``). While the entry is sealed its hash is a commitment that
nobody can confirm by guessing the content (a symbol, a price rounded to a tick and a timestamp are
few enough guesses to try them all; 2^128 salts are not), and the API also serves a sealed entry's
``signal_id`` as null, so the ledger never names a live signal. Both are revealed with the rest of
the data once the signal closes; the recipe above is unchanged (the salt is just part of ``data``).

What a chain cannot show on its own: the loss of the newest entries (the truncated chain is still a
valid chain) or a wholesale re-computation of every hash after an edit. Both are caught only by
comparing the head hash with one published earlier, which is why ``verify`` reports ``head``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Any

GENESIS = "0" * 64

_HEX64 = re.compile(r"[0-9a-f]{64}")

SALT_BYTES = 16
"""128 bits: a sealed entry's hash cannot be confirmed by trying every plausible content."""


def new_salt() -> str:
    """A fresh salt for the data of a ``created`` or ``updated`` entry (see "Salt" above)."""
    return secrets.token_hex(SALT_BYTES)


def format_at(at: datetime) -> str:
    """The one text form of a ledger time: UTC, microseconds always, ``Z``.

    Fixed width so that a verifier never has to guess how an offset or a zero fraction was spelled.
    A naive time is refused: which instant it means would be a guess.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()} refused: ledger times must be aware")
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _plain(value: object, path: str) -> Any:
    """``value`` as the JSON types the hash is defined over, or ``ValueError`` naming ``path``.

    Strict on purpose: anything ``json.dumps`` would change silently (a non-string key turned into
    a string, NaN written as a bare word) would make the stored entry and the hashed one differ.
    """
    if isinstance(value, Enum):
        return _plain(value.value, path)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path} is {value}, which canonical JSON refuses")
        return float(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{path} holds a lone surrogate, which UTF-8 cannot encode") from None
        return str(value)
    if isinstance(value, datetime):
        return format_at(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path} has a non-string key {key!r}")
            out[str(key)] = _plain(item, f"{path}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [_plain(item, f"{path}[{i}]") for i, item in enumerate(value)]
    raise ValueError(f"{path} is a {type(value).__name__}, which canonical JSON cannot hold")


def canonical_json(obj: object) -> bytes:
    """The bytes that get hashed: one spelling per value, so any verifier reproduces them exactly.

    Rules in the module docstring. Datetimes are written as ``format_at`` does; enums as their value;
    tuples as lists. NaN, infinity, non-string keys and other types raise ``ValueError``.
    """
    text = json.dumps(
        _plain(obj, "$"), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


def entry_body(seq: int, signal_id: str, kind: str, at: datetime, data: Mapping[str, Any]) -> dict[str, Any]:
    """The hashed part of an entry. ``prev_hash`` is not in it: it is mixed in as raw bytes."""
    return {"seq": seq, "signal_id": signal_id, "kind": str(kind), "at": format_at(at), "data": data}


def entry_hash(prev_hash: str, entry: Mapping[str, Any]) -> str:
    """``sha256(bytes.fromhex(prev_hash) + canonical_json(entry))`` as 64 lowercase hex digits.

    ``prev_hash`` must be exactly 64 lowercase hex digits: ``bytes.fromhex`` alone would accept
    upper case and spaces, letting two spellings of one link both verify.
    """
    if not isinstance(prev_hash, str) or not _HEX64.fullmatch(prev_hash):
        raise ValueError(f"prev_hash {prev_hash!r} is not 64 lowercase hex digits")
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical_json(entry)).hexdigest()


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One stored event with its place in the chain."""

    seq: int
    signal_id: str
    kind: str  # a SignalEventKind value: created | updated | closed
    at: datetime
    data: Mapping[str, Any] | None  # None: sealed (withheld by the API while the signal is open)
    prev_hash: str
    hash: str

    @property
    def sealed(self) -> bool:
        return self.data is None

    def body(self) -> dict[str, Any]:
        if self.data is None:
            raise ValueError(f"seq {self.seq} is sealed: its content is withheld, so it cannot be hashed")
        return entry_body(self.seq, self.signal_id, self.kind, self.at, self.data)

    def computed_hash(self) -> str:
        """What ``hash`` must be given the entry's content; ``ValueError`` if it cannot be hashed."""
        return entry_hash(self.prev_hash, self.body())


class Problem(StrEnum):
    """Why a chain is broken; each names what was most likely done to the stored rows."""

    HASH_MISMATCH = "hash mismatch"  # the entry's content is not what was hashed: the row was changed
    BROKEN_LINK = "broken link"  # prev_hash is not the previous hash: one was deleted, inserted or moved
    SEQ_GAP = "seq gap"  # a seq is missing: an entry was deleted
    SEQ_OUT_OF_ORDER = "seq out of order"  # a seq at or below the previous one: entries reordered
    UNHASHABLE = "unhashable entry"  # malformed hash fields or content: the row was changed


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int  # entries found good before the first bad one (all of them when ok)
    first_bad: int | None = None  # the seq where the chain breaks (for a gap: the missing seq)
    reason: str | None = None  # one line for people, starting with ``problem``'s value
    problem: Problem | None = None
    head: str = GENESIS  # hash of the last good entry: publish it to catch tail truncation later
    head_seq: int = 0  # seq of the last good entry (0: none)
    sealed: int = 0  # entries among ``checked`` whose content was withheld: only their links checked


def verify(entries: Iterable[LedgerEntry], *, prev_hash: str = GENESIS, first_seq: int = 1) -> VerifyResult:
    """Re-walk ``entries`` (in the order given) and name the first entry where the chain breaks.

    By default the walk must start at the beginning (seq 1, after ``GENESIS``). To check a later
    stretch, pass the ``hash`` and ``seq + 1`` of the entry just before it. Never raises on bad
    data: a malformed entry is a broken chain, reported like any other. Streams: ``entries`` may be
    a generator over pages of any length.

    Checks per entry, in this order, the first failure deciding the reason: seq not above the
    previous one; seq skipping ahead; content not matching ``hash``; ``prev_hash`` not the previous
    entry's ``hash``. A sealed entry (``data`` None) is taken at its ``hash``, its link checked.
    """
    prev, expected, checked, sealed = prev_hash, first_seq, 0, 0
    head_seq = first_seq - 1

    def bad(seq: int, problem: Problem, detail: str) -> VerifyResult:
        return VerifyResult(
            ok=False,
            checked=checked,
            first_bad=seq,
            reason=f"{problem.value}: {detail}",
            problem=problem,
            head=prev,
            head_seq=head_seq,
            sealed=sealed,
        )

    for entry in entries:
        seq = entry.seq
        if seq < expected:
            where = f"follows seq {expected - 1}" if checked else f"where the walk starts at seq {expected}"
            return bad(seq, Problem.SEQ_OUT_OF_ORDER, f"seq {seq} {where}")
        if seq > expected:
            missing = f"{expected}" if seq == expected + 1 else f"{expected}..{seq - 1}"
            return bad(expected, Problem.SEQ_GAP, f"seq {missing} missing (next entry is seq {seq})")
        if entry.sealed:
            if not isinstance(entry.hash, str) or not _HEX64.fullmatch(entry.hash):
                return bad(
                    seq, Problem.UNHASHABLE, f"seq {seq}: hash {entry.hash!r} is not 64 lowercase hex digits"
                )
        else:
            try:
                computed = entry.computed_hash()
            except (ValueError, TypeError, AttributeError) as err:
                return bad(seq, Problem.UNHASHABLE, f"seq {seq}: {err}")
            if computed != entry.hash:
                return bad(
                    seq, Problem.HASH_MISMATCH, f"seq {seq} content hashes to {computed}, stored {entry.hash}"
                )
        if entry.prev_hash != prev:
            return bad(
                seq,
                Problem.BROKEN_LINK,
                f"seq {seq} prev_hash {entry.prev_hash} is not the previous hash {prev}",
            )
        prev, expected, head_seq, checked = entry.hash, seq + 1, seq, checked + 1
        sealed += entry.sealed
    return VerifyResult(ok=True, checked=checked, head=prev, head_seq=head_seq, sealed=sealed)


@dataclass(slots=True)
class Chain:
    """A head kept in memory, for building a chain in one go (tests, exports, tools).

    The repository does not keep one: it reads the head inside each write transaction, so that two
    processes appending never both extend the same head.
    """

    head: str = GENESIS
    seq: int = 0

    def append(self, signal_id: str, kind: str, at: datetime, data: Mapping[str, Any]) -> LedgerEntry:
        seq = self.seq + 1
        digest = entry_hash(self.head, entry_body(seq, signal_id, kind, at, data))
        entry = LedgerEntry(seq, signal_id, str(kind), at, data, self.head, digest)
        self.head, self.seq = digest, seq
        return entry


__all__ = [
    "GENESIS",
    "SALT_BYTES",
    "Chain",
    "LedgerEntry",
    "Problem",
    "VerifyResult",
    "canonical_json",
    "entry_body",
    "entry_hash",
    "format_at",
    "new_salt",
    "verify",
]
