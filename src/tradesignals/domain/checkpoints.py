"""Signed ledger checkpoints: the published heads that make a rewrite of the ledger detectable.

A hash chain proves that its entries fit together, not that they are the entries that were there
yesterday: dropping the newest entries, or editing an old one and recomputing every later hash,
leaves a valid chain (see ``domain/ledger.py``). What catches both is a head published earlier and
remembered by someone else. A checkpoint is such a head, signed, so that anyone who kept it can
later prove what the ledger said — the idea of Certificate Transparency's signed tree heads.

This module is the one definition of the recipe and of the check; it is pure (no I/O, no crypto
library): signing and signature checking come in through ``Signer`` and ``SignatureCheck``, which
``tradesignals.signing`` implements with Ed25519. So this file can be read, ported and audited on
its own, and a verifier in another language needs only an Ed25519 library.

The recipe (frozen: changing it would invalidate every checkpoint ever published)
---------------------------------------------------------------------------------

A checkpoint is ``{number, seq, head_hash, at, previous_checkpoint_hash, public_key, signature}``
plus ``next_public_key`` (null except on a key rotation):

- ``number``: 1, 2, 3, … without gaps; its place in the checkpoint chain (not signed: the chain of
  ``previous_checkpoint_hash`` fixes every checkpoint's place, so the number is checkable).
- ``seq``/``head_hash``: the ledger's last entry when the checkpoint was made (``0``/``GENESIS``
  for an empty ledger). The claim: "the entry with this seq has this hash".
- ``at``: when it was made, UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (``ledger.format_at``).
- ``previous_checkpoint_hash``: ``hash`` of the checkpoint before it; ``GENESIS`` for number 1.
- the signed message is ``canonical_json({seq, head_hash, at, previous_checkpoint_hash})``, with
  ``next_public_key`` added to the object on a rotation (the ledger's canonical JSON, UTF-8).
- ``hash = sha256(message)`` in lowercase hex: what the next checkpoint links to.
- ``signature``: Ed25519 over the message by the key in force, 128 lowercase hex digits;
  ``public_key``: that key, 32 raw bytes as 64 lowercase hex digits (hex, not base64: one
  spelling per value, as for the hashes).
- the key in force: checkpoint 1's ``public_key``; after a checkpoint with ``next_public_key``, that
  key. A rotation is therefore signed by the old key. A checkpoint signed by any other key is a
  swapped key, and is refused.

What a verifier checks (``audit``): every checkpoint's signature, link and key; that the ledger
passes through every checkpoint's ``(seq, head_hash)``; and, for checkpoints saved earlier
(``known``), that the ledger still holds the very same checkpoint and still passes through it.
A deleted tail leaves a checkpoint beyond the end; a rewritten past gives another hash at a
checkpoint's seq. The first checkpoint contradicted is named.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from tradesignals.domain.ledger import GENESIS, LedgerEntry, VerifyResult, canonical_json, format_at, verify

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")


class Signer(Protocol):
    """Signs checkpoint messages; holds the private key so that nothing else has to.

    Implementations must keep the private key out of ``repr``, ``str`` and every error.
    """

    @property
    def public_key(self) -> str:
        """The public key, 64 lowercase hex digits (32 raw bytes)."""
        ...

    def sign(self, message: bytes) -> str:
        """The signature of ``message``, 128 lowercase hex digits."""
        ...


SignatureCheck = Callable[[str, bytes, str], bool]
"""``check(public_key_hex, message, signature_hex)``: True only for a valid signature, never raises."""


def is_hex64(value: object) -> bool:
    return isinstance(value, str) and _HEX64.fullmatch(value) is not None


def short(digest: str) -> str:
    """The first 12 hex digits: enough for a person to compare, as git shows commits."""
    return digest[:12]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    number: int
    seq: int
    head_hash: str
    at: datetime
    previous_checkpoint_hash: str
    public_key: str  # the key that signed it
    signature: str
    next_public_key: str | None = None  # set on a rotation: the key in force from the next checkpoint

    def body(self) -> dict[str, Any]:
        """The signed object; ``next_public_key`` only on a rotation, so a plain one signs four fields."""
        body: dict[str, Any] = {
            "seq": self.seq,
            "head_hash": self.head_hash,
            "at": format_at(self.at),
            "previous_checkpoint_hash": self.previous_checkpoint_hash,
        }
        if self.next_public_key is not None:
            body["next_public_key"] = self.next_public_key
        return body

    def message(self) -> bytes:
        return canonical_json(self.body())

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.message()).hexdigest()

    @property
    def key_after(self) -> str:
        """The key in force for the next checkpoint."""
        return self.next_public_key if self.next_public_key is not None else self.public_key

    def describe(self) -> str:
        return f"checkpoint {self.number} (seq {self.seq}, head {short(self.head_hash)})"

    def to_json(self) -> dict[str, Any]:
        """The published form (API answers, saved files); ``from_json`` reads it back."""
        return {
            "number": self.number,
            "seq": self.seq,
            "head_hash": self.head_hash,
            "at": format_at(self.at),
            "previous_checkpoint_hash": self.previous_checkpoint_hash,
            "next_public_key": self.next_public_key,
            "public_key": self.public_key,
            "signature": self.signature,
            "hash": self.hash,
        }

    @classmethod
    def from_json(cls, obj: object) -> Checkpoint:
        """A checkpoint from its published form; ``ValueError`` naming the first bad field.

        ``hash`` is not read: it is recomputed, so a file cannot make a checkpoint link elsewhere.
        """
        if not isinstance(obj, Mapping):
            raise ValueError("a checkpoint must be a JSON object")
        try:
            number, seq = obj["number"], obj["seq"]
            at_text = obj["at"]
            fields = {k: obj[k] for k in ("head_hash", "previous_checkpoint_hash", "public_key", "signature")}
            next_key = obj.get("next_public_key")
        except KeyError as err:
            raise ValueError(f"checkpoint field {err.args[0]!r} is missing") from None
        for name, value in (("number", number), ("seq", seq)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"checkpoint {name} {value!r} is not a whole number")
        if not isinstance(at_text, str):
            raise ValueError(f"checkpoint at {at_text!r} is not a time")
        try:
            at = datetime.fromisoformat(at_text)
            format_at(at)
        except ValueError:
            raise ValueError(f"checkpoint at {at_text!r} is not a UTC time") from None
        for name in ("head_hash", "previous_checkpoint_hash", "public_key"):
            if not is_hex64(fields[name]):
                raise ValueError(f"checkpoint {name} is not 64 lowercase hex digits")
        if not isinstance(fields["signature"], str) or not _HEX128.fullmatch(fields["signature"]):
            raise ValueError("checkpoint signature is not 128 lowercase hex digits")
        if next_key is not None and not is_hex64(next_key):
            raise ValueError("checkpoint next_public_key is not 64 lowercase hex digits")
        return cls(
            number=number,
            seq=seq,
            head_hash=fields["head_hash"],
            at=at,
            previous_checkpoint_hash=fields["previous_checkpoint_hash"],
            public_key=fields["public_key"],
            signature=fields["signature"],
            next_public_key=next_key,
        )


def sign(
    signer: Signer,
    *,
    number: int,
    seq: int,
    head_hash: str,
    at: datetime,
    previous_checkpoint_hash: str,
    next_public_key: str | None = None,
) -> Checkpoint:
    """A checkpoint with exactly these fields, signed by ``signer``; no rule about the chain is checked.

    ``next_checkpoint`` is what the service uses; this is the raw operation it is built on.
    """
    unsigned = Checkpoint(
        number, seq, head_hash, at, previous_checkpoint_hash, signer.public_key, "", next_public_key
    )
    return Checkpoint(
        number,
        seq,
        head_hash,
        at,
        previous_checkpoint_hash,
        signer.public_key,
        signer.sign(unsigned.message()),
        next_public_key,
    )


def next_checkpoint(
    signer: Signer,
    previous: Checkpoint | None,
    *,
    seq: int,
    head_hash: str,
    at: datetime,
    next_public_key: str | None = None,
) -> Checkpoint:
    """The checkpoint after ``previous`` for the ledger head ``(seq, head_hash)``.

    Refuses (``ValueError``) what would make the chain fail its own check, so that a mistake shows
    at once rather than at the next audit: a signer that is not the key in force (the key was
    swapped without a rotation), a head behind the previous checkpoint's, a malformed hash.
    """
    if not is_hex64(head_hash):
        raise ValueError(f"head_hash {head_hash!r} is not 64 lowercase hex digits")
    if next_public_key is not None and not is_hex64(next_public_key):
        raise ValueError("next_public_key is not 64 lowercase hex digits")
    if previous is not None:
        if signer.public_key != previous.key_after:
            raise ValueError(
                f"the signing key {short(signer.public_key)} is not the key in force"
                f" {short(previous.key_after)} after {previous.describe()}; restore that key"
                " (or rotate with it) instead of starting a new one"
            )
        if seq < previous.seq:
            raise ValueError(f"ledger head seq {seq} is behind {previous.describe()}: the ledger shrank")
    return sign(
        signer,
        number=previous.number + 1 if previous is not None else 1,
        seq=seq,
        head_hash=head_hash,
        at=at,
        previous_checkpoint_hash=previous.hash if previous is not None else GENESIS,
        next_public_key=next_public_key,
    )


@dataclass(frozen=True, slots=True)
class ChainResult:
    """The checkpoint chain on its own: signatures, links, keys (no ledger entries involved)."""

    ok: bool
    checked: int  # checkpoints found good before the first bad one
    first_bad: int | None = None  # its number
    reason: str | None = None
    key: str | None = None  # the key in force after the last good checkpoint


def _chain_problem(
    cp: Checkpoint, previous: Checkpoint | None, expected: int, key: str | None, check: SignatureCheck
) -> tuple[int, str | None]:
    """``(number, why)`` of what is wrong with ``cp`` after ``previous``; ``why`` None when nothing is."""
    if cp.number != expected:
        what = "missing" if cp.number > expected else "repeated or out of order"
        return expected, f"checkpoint {expected} is {what} (next served is {cp.number})"
    link = previous.hash if previous is not None else GENESIS
    if cp.previous_checkpoint_hash != link:
        return cp.number, (
            f"previous_checkpoint_hash {short(cp.previous_checkpoint_hash)} is not the hash"
            f" {short(link)} of checkpoint {expected - 1}"
        )
    if key is not None and cp.public_key != key:
        return cp.number, (
            f"signed by key {short(cp.public_key)}, but the key in force is {short(key)}"
            " (a key swapped without a rotation checkpoint)"
        )
    try:
        message = cp.message()
    except (ValueError, TypeError) as err:
        return cp.number, f"cannot be formed into its message: {err}"
    if not check(cp.public_key, message, cp.signature):
        return cp.number, "bad signature (forged or altered)"
    if previous is not None and cp.seq < previous.seq:
        return (
            cp.number,
            f"vouches for seq {cp.seq}, behind checkpoint {previous.number}'s seq {previous.seq}",
        )
    return cp.number, None


def verify_chain(checkpoints: Iterable[Checkpoint], check: SignatureCheck) -> ChainResult:
    """Walk ``checkpoints`` from number 1 and name the first whose number, link, key or signature fails.

    Never raises on bad data: a malformed checkpoint is a broken chain like any other.
    """
    previous: Checkpoint | None = None
    checked = 0
    key: str | None = None
    for cp in checkpoints:
        expected = previous.number + 1 if previous is not None else 1
        number, why = _chain_problem(cp, previous, expected, key, check)
        if why is not None:
            return ChainResult(False, checked, number, f"checkpoint {number}: {why}", key)
        previous, key, checked = cp, cp.key_after, checked + 1
    return ChainResult(True, checked, key=key)


@dataclass(frozen=True, slots=True)
class AuditResult:
    """Everything ``ledger verify`` says: the chain of entries, the checkpoints, the saved ones."""

    ok: bool
    ledger: VerifyResult
    checkpoints: int  # checkpoints whose chain verified
    known: int  # saved checkpoints given
    latest: Checkpoint | None  # the newest checkpoint of the source
    contradicted: int | None = None  # number of the first checkpoint contradicted
    reason: str | None = None  # one line for people


def _observe(entries: Iterable[LedgerEntry], seqs: set[int], seen: dict[int, str]) -> Iterator[LedgerEntry]:
    for entry in entries:
        if entry.seq in seqs:
            seen[entry.seq] = entry.hash
        yield entry


def audit(
    entries: Iterable[LedgerEntry],
    checkpoints: Sequence[Checkpoint],
    check: SignatureCheck,
    *,
    known: Sequence[Checkpoint] = (),
    public_key: str | None = None,
) -> AuditResult:
    """Check the ledger against its checkpoints and against ``known`` ones saved earlier.

    ``entries`` stream (any number, any paging); ``checkpoints`` are the source's, in order;
    ``public_key`` is the key the source says it signs with now (None: not asked). The result
    names the lowest-numbered checkpoint contradicted; with none contradicted, a broken entry
    chain is reported as ``verify`` reports it.
    """
    problems: dict[int, str] = {}

    def contradict(number: int, why: str) -> None:
        problems.setdefault(number, why)

    chain = verify_chain(checkpoints, check)
    good = list(checkpoints[: chain.checked])
    if not chain.ok and chain.first_bad is not None:
        contradict(chain.first_bad, chain.reason or "")
    by_number = {cp.number: cp for cp in checkpoints}
    for saved in known:
        label = f"saved {saved.describe()}"
        try:
            valid = check(saved.public_key, saved.message(), saved.signature)
        except (ValueError, TypeError):
            valid = False
        if not valid:
            contradict(saved.number, f"{label} has a bad signature (forged or altered)")
            continue
        served = by_number.get(saved.number)
        if served is None:
            top = max(by_number, default=0)
            contradict(
                saved.number,
                f"{label} is missing: the ledger's checkpoints stop at {top} (checkpoints were deleted)",
            )
        elif served.to_json() != saved.to_json():
            contradict(
                saved.number,
                f"{label} differs from the one served now ({served.describe()}, key"
                f" {short(served.public_key)}): the checkpoints were rewritten",
            )
    if chain.ok and public_key is not None and chain.key is not None and public_key != chain.key:
        last = good[-1]
        contradict(
            last.number,
            f"the served public key {short(public_key)} is not the key in force {short(chain.key)}"
            f" after checkpoint {last.number} (a key swapped without a rotation checkpoint)",
        )

    # Every claim "the entry at seq S has hash H", from the good checkpoints and the saved ones.
    claims = [(cp.number, cp.seq, cp.head_hash) for cp in good]
    claims += [(cp.number, cp.seq, cp.head_hash) for cp in known if cp.number not in problems]
    seen: dict[int, str] = {0: GENESIS}
    ledger = verify(_observe(entries, {seq for _, seq, _ in claims}, seen))
    for number, seq, head in claims:
        if seq <= ledger.head_seq:
            if seen.get(seq) != head:
                contradict(
                    number,
                    f"the ledger's entry {seq} hashes to {short(seen.get(seq, '?'))}, checkpoint"
                    f" {number} says {short(head)}: history up to checkpoint {number} was rewritten",
                )
        elif ledger.ok:
            contradict(
                number,
                f"the ledger ends at seq {ledger.head_seq}, but checkpoint {number} vouches for seq"
                f" {seq}: the newest entries were dropped",
            )
        else:
            contradict(
                number,
                f"the ledger breaks at seq {ledger.first_bad} ({ledger.reason}) before checkpoint"
                f" {number}'s seq {seq}",
            )
    latest = checkpoints[-1] if checkpoints else None
    if problems:
        first = min(problems)
        return AuditResult(
            False,
            ledger,
            chain.checked,
            len(known),
            latest,
            first,
            f"contradicts checkpoint {first}: " + problems[first],
        )
    if not ledger.ok:
        return AuditResult(False, ledger, chain.checked, len(known), latest, None, ledger.reason)
    return AuditResult(True, ledger, chain.checked, len(known), latest)


__all__ = [
    "AuditResult",
    "ChainResult",
    "Checkpoint",
    "SignatureCheck",
    "Signer",
    "audit",
    "next_checkpoint",
    "sign",
    "verify_chain",
]
