"""The public ledger: every signal event with its place in the hash chain, for anyone to re-verify."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from tradesignals.api.dbpool import DbPoolDep
from tradesignals.api.deps import CheckpointRepoDep, ServicesDep, SignalRepoDep
from tradesignals.api.schemas import MAX_INT64, CheckpointOut, ErrorOut
from tradesignals.domain.ledger import GENESIS, LedgerEntry, format_at

router = APIRouter(prefix="/api/ledger", tags=["ledger"])

MAX_LEDGER_PAGE = 5_000
MAX_CHECKPOINT_PAGE = 1_000

RECIPE = f"""
Every signal event, in `seq` order (1, 2, 3, … without gaps), each chained to the one before.

**Re-verify** (needs nothing but these pages): walk every entry from `seq` 1 and check

- `prev_hash` of seq 1 is the genesis `{GENESIS}`; of every other entry, the previous `hash`;
- `hash == sha256(bytes.fromhex(prev_hash) + canonical_json({{seq, signal_id, kind, at, data}}))`
  in lowercase hex, where canonical JSON is Python's
  `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)`
  encoded as UTF-8 (floats in shortest round-trip form: keep `5.0` a float and `5` an int when
  parsing), and `at` is hashed exactly as served (`YYYY-MM-DDTHH:MM:SS.ffffffZ`).

**Sealed entries**: while a signal is open, its events are served with `data` and `signal_id` null
and `sealed` true (live signals are the paid product). Check only their link; the `hash` is a
commitment, and the same entry, served in full once the signal closes, must hash to it. Its data
holds a 128-bit `salt`, so the commitment cannot be confirmed by guessing the signal.

A valid chain can still be a truncated one: keep the last `hash` you verified and check that later
pages still extend it. The full recipe, with a ten-line script, is in `tradesignals.domain.ledger`.
"""


class LedgerEntryOut(BaseModel):
    seq: int
    signal_id: str | None = Field(description="null while sealed: the ledger never names a live signal")
    kind: str = Field(description="created | updated | closed")
    at: str = Field(description="UTC event time, hashed exactly as written: YYYY-MM-DDTHH:MM:SS.ffffffZ")
    data: dict[str, Any] | None = Field(description="The event's data; null while sealed.")
    sealed: bool
    prev_hash: str
    hash: str


class LedgerPage(BaseModel):
    genesis: str = Field(default=GENESIS, description="prev_hash of seq 1.")
    entries: list[LedgerEntryOut]
    next_from: int | None = Field(
        description="Pass as `from` for the next page; null when this page reached `to` or the end."
    )


def _out(entry: LedgerEntry, sealed: bool) -> LedgerEntryOut:
    return LedgerEntryOut(
        seq=entry.seq,
        signal_id=None if sealed else entry.signal_id,
        kind=entry.kind,
        at=format_at(entry.at),
        data=None if sealed or entry.data is None else dict(entry.data),
        sealed=sealed,
        prev_hash=entry.prev_hash,
        hash=entry.hash,
    )


@router.get(
    "",
    response_model=LedgerPage,
    summary="Ledger entries with their hashes",
    description=RECIPE,
    responses={422: {"model": ErrorOut}},
)
async def ledger(
    repo: SignalRepoDep,
    pool: DbPoolDep,
    from_seq: Annotated[
        int, Query(alias="from", ge=0, le=MAX_INT64, description="First seq (inclusive).")
    ] = 0,
    to_seq: Annotated[
        int | None, Query(alias="to", ge=0, le=MAX_INT64, description="Last seq (inclusive).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LEDGER_PAGE)] = 1000,
) -> LedgerPage:
    if to_seq is not None and to_seq < from_seq:
        raise HTTPException(422, detail=f"to ({to_seq}) is before from ({from_seq})")
    entries = await pool.run(repo.ledger, from_seq, to_seq, limit)
    closed = await pool.run(repo.closed_among, {e.signal_id for e in entries})
    more = len(entries) == limit and (to_seq is None or entries[-1].seq < to_seq)
    return LedgerPage(
        entries=[_out(e, e.signal_id not in closed) for e in entries],
        next_from=entries[-1].seq + 1 if more else None,
    )


CHECKPOINTS = f"""
Signed heads of the ledger, in `number` order, each chained to the one before. **Keep some**
(`tradesignals ledger checkpoint --save FILE`, or save this JSON): later, the ledger must still
pass through every one you kept, which shows that nothing was dropped or rewritten since.

**Re-verify**: the signed message is canonical JSON (as for ledger entries) of
`{{seq, head_hash, at, previous_checkpoint_hash}}` — plus `next_public_key` when it is not null —
and `hash` is its sha256. Check that `signature` is `public_key`'s Ed25519 signature of the
message; that `previous_checkpoint_hash` is the previous checkpoint's `hash` (`{GENESIS}` for
number 1); that `public_key` is the key in force (checkpoint 1's, then the `next_public_key` of a
rotation); and that the ledger entry at `seq` has hash `head_hash`.
"""


class CheckpointPage(BaseModel):
    checkpoints: list[CheckpointOut]
    next_from: int | None = Field(description="Pass as `from` for the next page; null at the end.")


class PublicKeyOut(BaseModel):
    algorithm: str = "ed25519"
    public_key: str = Field(description="32 raw bytes as 64 lowercase hex digits.")


@router.get(
    "/checkpoints",
    response_model=CheckpointPage,
    summary="Signed ledger checkpoints",
    description=CHECKPOINTS,
    responses={422: {"model": ErrorOut}},
)
async def checkpoints(
    repo: CheckpointRepoDep,
    pool: DbPoolDep,
    from_number: Annotated[
        int, Query(alias="from", ge=0, le=MAX_INT64, description="First number (inclusive).")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_CHECKPOINT_PAGE)] = 100,
) -> CheckpointPage:
    page = await pool.run(repo.page, from_number, limit)
    return CheckpointPage(
        checkpoints=[CheckpointOut.of(cp) for cp in page],
        next_from=page[-1].number + 1 if len(page) == limit else None,
    )


@router.get(
    "/checkpoints/latest",
    response_model=CheckpointOut,
    summary="The newest signed checkpoint",
    responses={404: {"model": ErrorOut}},
)
async def latest_checkpoint(repo: CheckpointRepoDep, pool: DbPoolDep) -> CheckpointOut:
    cp = await pool.run(repo.latest)
    if cp is None:
        raise HTTPException(404, detail="no checkpoint yet")
    return CheckpointOut.of(cp)


@router.get(
    "/public-key",
    response_model=PublicKeyOut,
    summary="The key that signs checkpoints",
    responses={404: {"model": ErrorOut}},
)
async def public_key(services: ServicesDep, pool: DbPoolDep) -> PublicKeyOut:
    """This node's signing key; on a node without it (API only), the key in force after the newest
    checkpoint. A verifier compares it with the key the checkpoint chain says is in force."""
    if services.signer is not None:
        return PublicKeyOut(public_key=services.signer.public_key)
    latest = await pool.run(services.checkpoints.latest)
    if latest is None:
        raise HTTPException(404, detail="no signing key configured and no checkpoint yet")
    return PublicKeyOut(public_key=latest.key_after)
