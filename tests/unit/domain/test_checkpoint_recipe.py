"""The checkpoint recipe and the audit, over in-memory chains and real Ed25519 keys."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tradesignals.domain.checkpoints import Checkpoint, audit, next_checkpoint, sign, verify_chain
from tradesignals.domain.ledger import GENESIS, Chain, LedgerEntry, entry_body, entry_hash
from tradesignals.signing import Ed25519Signer, check_signature

T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def grow(chain: Chain, entries: list[LedgerEntry], n: int) -> None:
    for _ in range(n):
        i = chain.seq
        entries.append(
            chain.append(f"sig{i % 7}", "updated", T0 + timedelta(minutes=i), {"i": i, "x": i / 3})
        )


def honest(
    signer: Ed25519Signer, sizes: tuple[int, ...] = (3, 5, 0, 4)
) -> tuple[list[LedgerEntry], list[Checkpoint]]:
    """A ledger grown in steps, a checkpoint after each step (an empty step repeats the head)."""
    chain, entries, cps = Chain(), [], []
    for k, n in enumerate(sizes):
        grow(chain, entries, n)
        cps.append(
            next_checkpoint(
                signer,
                cps[-1] if cps else None,
                seq=chain.seq,
                head_hash=chain.head,
                at=T0 + timedelta(hours=k),
            )
        )
    return entries, cps


def test_the_signed_message_is_the_documented_canonical_json() -> None:
    signer = Ed25519Signer.generate()
    cp = sign(signer, number=1, seq=7, head_hash="a" * 64, at=T0, previous_checkpoint_hash=GENESIS)
    message = json.dumps(
        {
            "seq": 7,
            "head_hash": "a" * 64,
            "at": "2026-01-05T15:00:00.000000Z",
            "previous_checkpoint_hash": GENESIS,
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    assert cp.message() == message
    assert cp.hash == hashlib.sha256(message).hexdigest()
    # Any Ed25519 implementation accepts it: here the library's own verify, on the raw bytes.
    Ed25519PublicKey.from_public_bytes(bytes.fromhex(cp.public_key)).verify(
        bytes.fromhex(cp.signature), message
    )
    assert len(cp.public_key) == 64 and len(cp.signature) == 128
    rotation = sign(signer, number=2, seq=7, head_hash="a" * 64, at=T0, previous_checkpoint_hash=cp.hash,
                    next_public_key="b" * 64)  # fmt: skip
    assert json.loads(rotation.message())["next_public_key"] == "b" * 64


def test_json_round_trip_and_refusals() -> None:
    _, cps = honest(Ed25519Signer.generate())
    for cp in cps:
        assert Checkpoint.from_json(json.loads(json.dumps(cp.to_json()))) == cp
    good = cps[1].to_json()
    for field, value, why in [
        ("seq", -1, "seq"),
        ("seq", True, "seq"),
        ("head_hash", "A" * 64, "head_hash"),
        ("signature", "ab", "signature"),
        ("at", "yesterday", "at"),
        ("at", "2026-01-05T15:00:00", "at"),  # naive
        ("next_public_key", "xyz", "next_public_key"),
    ]:
        with pytest.raises(ValueError, match=why):
            Checkpoint.from_json({**good, field: value})
    with pytest.raises(ValueError, match="'number' is missing"):
        Checkpoint.from_json({k: v for k, v in good.items() if k != "number"})


def test_an_honest_chain_verifies_and_a_grown_ledger_extends_it() -> None:
    signer = Ed25519Signer.generate()
    entries, cps = honest(signer)
    chain = verify_chain(cps, check_signature)
    assert chain.ok and chain.checked == 4 and chain.key == signer.public_key
    result = audit(entries, cps, check_signature, known=cps[:2], public_key=signer.public_key)
    assert result.ok and result.ledger.checked == 12 and result.latest == cps[-1] and result.known == 2
    # The ledger grows after the saved checkpoints: still ok.
    more = Chain(entries[-1].hash, entries[-1].seq)
    grown = list(entries)
    grow(more, grown, 6)
    assert audit(grown, cps, check_signature, known=cps).ok


def test_a_forged_checkpoint_is_rejected() -> None:
    signer = Ed25519Signer.generate()
    entries, cps = honest(signer)
    forged = replace(cps[2], signature=("0" if cps[2].signature[0] != "0" else "1") + cps[2].signature[1:])
    result = audit(entries, [*cps[:2], forged, cps[3]], check_signature)
    assert (result.ok, result.contradicted) == (False, 3) and "bad signature" in (result.reason or "")
    # A checkpoint whose content was changed after signing fails the same way.
    moved = replace(cps[1], seq=cps[1].seq - 1, head_hash=entries[cps[1].seq - 2].hash)
    assert audit(entries, [cps[0], moved], check_signature).contradicted == 2
    # And a forged one in the file of saved checkpoints is named too.
    result = audit(entries, cps, check_signature, known=[forged])
    assert result.contradicted == 3 and "saved checkpoint 3" in (result.reason or "")


def test_dropped_newest_entries_are_named() -> None:
    entries, cps = honest(Ed25519Signer.generate())  # checkpoints at seq 3, 8, 8, 12
    cut = audit(entries[:9], cps, check_signature)
    assert (cut.ok, cut.contradicted) == (False, 4)
    assert "ends at seq 9" in (cut.reason or "") and "dropped" in (cut.reason or "")
    assert audit(entries[:5], cps, check_signature).contradicted == 2


def test_an_edit_with_every_later_hash_recomputed_is_named() -> None:
    entries, cps = honest(Ed25519Signer.generate())
    rewritten, prev = [], GENESIS
    for e in entries:
        data = {"i": -1, "x": 0.0} if e.seq == 5 else e.data
        assert data is not None
        digest = entry_hash(prev, entry_body(e.seq, e.signal_id, e.kind, e.at, data))
        rewritten.append(LedgerEntry(e.seq, e.signal_id, e.kind, e.at, data, prev, digest))
        prev = digest
    result = audit(rewritten, cps, check_signature)
    assert result.ledger.ok  # the chain alone is fine: that is the attack
    assert (result.ok, result.contradicted) == (False, 2)
    assert "history up to checkpoint 2 was rewritten" in (result.reason or "")


def test_a_swapped_key_without_rotation_is_named_and_a_rotation_is_accepted() -> None:
    old, new = Ed25519Signer.generate(), Ed25519Signer.generate()
    entries, cps = honest(old, (3, 2))
    with pytest.raises(ValueError, match="not the key in force"):
        next_checkpoint(new, cps[-1], seq=5, head_hash=entries[-1].hash, at=T0)
    swapped = sign(
        new, number=3, seq=5, head_hash=entries[-1].hash, at=T0, previous_checkpoint_hash=cps[-1].hash
    )
    result = audit(entries, [*cps, swapped], check_signature, public_key=new.public_key)
    assert result.contradicted == 3 and "key swapped without a rotation" in (result.reason or "")
    # The server announcing the new key while every checkpoint is the old key's: named too.
    assert audit(entries, cps, check_signature, public_key=new.public_key).contradicted == 2

    rotation = next_checkpoint(
        old, cps[-1], seq=5, head_hash=entries[-1].hash, at=T0, next_public_key=new.public_key
    )
    after = next_checkpoint(new, rotation, seq=5, head_hash=entries[-1].hash, at=T0 + timedelta(hours=9))
    with pytest.raises(ValueError, match="not the key in force"):
        next_checkpoint(old, rotation, seq=5, head_hash=entries[-1].hash, at=T0)
    ok = audit(entries, [*cps, rotation, after], check_signature, known=cps, public_key=new.public_key)
    assert ok.ok, ok.reason


def test_checkpoints_rewritten_from_scratch_are_caught_by_the_saved_ones() -> None:
    """Whoever holds the key can re-sign a rewritten ledger; only a saved checkpoint tells."""
    signer = Ed25519Signer.generate()
    _, cps = honest(signer)
    rewritten = Chain()
    fake: list[LedgerEntry] = []
    grow(rewritten, fake, 20)
    resigned = [next_checkpoint(signer, None, seq=20, head_hash=rewritten.head, at=T0)]
    assert audit(fake, resigned, check_signature).ok  # self-consistent
    result = audit(fake, resigned, check_signature, known=cps[1:2])
    assert result.contradicted == 2 and "missing" in (result.reason or "")
    resigned.append(next_checkpoint(signer, resigned[0], seq=20, head_hash=rewritten.head, at=T0))
    result = audit(fake, resigned, check_signature, known=cps[1:2])
    assert result.contradicted == 2 and "differs" in (result.reason or "")


def test_chain_links_numbers_and_a_shrinking_seq_are_checked() -> None:
    signer = Ed25519Signer.generate()
    _, cps = honest(signer)
    assert verify_chain([cps[0], cps[2]], check_signature).first_bad == 2  # a missing checkpoint
    assert verify_chain([cps[1]], check_signature).first_bad == 1
    relinked = sign(
        signer, number=2, seq=3, head_hash=cps[0].head_hash, at=T0, previous_checkpoint_hash="f" * 64
    )
    assert "previous_checkpoint_hash" in (verify_chain([cps[0], relinked], check_signature).reason or "")
    back = sign(signer, number=2, seq=1, head_hash="e" * 64, at=T0, previous_checkpoint_hash=cps[0].hash)
    assert "behind checkpoint 1" in (verify_chain([cps[0], back], check_signature).reason or "")
    with pytest.raises(ValueError, match="shrank"):
        next_checkpoint(signer, cps[1], seq=1, head_hash="e" * 64, at=T0)


def test_check_signature_never_raises() -> None:
    signer = Ed25519Signer.generate()
    sig = signer.sign(b"m")
    assert check_signature(signer.public_key, b"m", sig)
    assert not check_signature(signer.public_key, b"n", sig)
    assert not check_signature("zz", b"m", sig)
    assert not check_signature(signer.public_key, b"m", "00")
    assert not check_signature("0" * 64, b"m", sig)  # not a valid point, or just wrong
    assert not check_signature(None, b"m", sig)  # type: ignore[arg-type]
