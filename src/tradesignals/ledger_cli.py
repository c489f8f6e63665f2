"""``tradesignals ledger verify | checkpoint``: check the ledger and its signed checkpoints.

``verify`` re-walks the whole hash chain, checks every checkpoint's signature and that the chain
passes through each, and — given checkpoints saved earlier (``--known FILE``) — that the ledger
still extends them. It reads the database (``settings``) or, with ``--remote URL``, a running
server's public API only. ``checkpoint --save FILE`` appends the latest checkpoint to FILE.

Kept free of Typer so the CLI stays a thin shell over it and tests call it directly. Read-only on
the database: it never migrates or creates one (pointing it at a wrong path must not leave an
empty file).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from tradesignals.config import ConfigError, Settings, load_settings
from tradesignals.domain.checkpoints import AuditResult, Checkpoint, audit
from tradesignals.domain.ledger import LedgerEntry, VerifyResult, verify
from tradesignals.storage.base import CheckpointRepository, SignalRepository, StorageError
from tradesignals.storage.db import current_revision, describe_url, head_revision, make_engine, parse_url

if TYPE_CHECKING:
    import httpx
    from sqlalchemy.engine import Engine

PAGE = 10_000

EXIT_OK, EXIT_BROKEN, EXIT_UNREADABLE = 0, 1, 2


def walk(repo: SignalRepository, page: int = PAGE) -> Iterator[LedgerEntry]:
    """Every entry in seq order, a page at a time, so memory stays flat however long the ledger."""
    from_seq = 0
    while True:
        entries = repo.ledger(from_seq=from_seq, limit=page)
        yield from entries
        if len(entries) < page:
            return
        from_seq = entries[-1].seq + 1


def walk_checkpoints(repo: CheckpointRepository, page: int = PAGE) -> list[Checkpoint]:
    out: list[Checkpoint] = []
    while True:
        got = repo.page(from_number=out[-1].number + 1 if out else 0, limit=page)
        out += got
        if len(got) < page:
            return out


@contextmanager
def _database(settings: Settings) -> Iterator[Engine]:
    """The database ``settings`` point at, refused unless it exists and is at this release's schema."""
    url = parse_url(settings.db_url)
    if url.get_backend_name() == "sqlite":
        path = url.database or ""
        if path in ("", ":memory:"):
            raise StorageError("ledger verify needs a database file, not an in-memory SQLite")
        if not Path(path).is_file():
            raise StorageError(f"no database at {path} (set TS_DATABASE_URL or TS_HOME)")
    engine = make_engine(url)
    try:
        revision, head = current_revision(engine), head_revision()
        if revision != head:
            raise StorageError(
                f"database {describe_url(url)} is at schema revision {revision}, this release reads"
                f" {head}: migrate it first (start the app once, or `tradesignals serve`)"
            )
        yield engine
    except ValueError as err:
        # A row the driver cannot even decode (JSON text edited into garbage) is tampering too,
        # but it stops the read before verify sees the row.
        raise StorageError(f"ledger rows cannot be read: {err}") from None
    finally:
        engine.dispose()


def verify_ledger(settings: Settings, *, page: int = PAGE) -> VerifyResult:
    """Verify the ledger of the database ``settings`` point at; ``StorageError`` if it cannot be read."""
    from tradesignals.storage.repositories import SqlSignalRepository

    with _database(settings) as engine:
        return verify(walk(SqlSignalRepository(engine), page))


def audit_ledger(settings: Settings, known: Sequence[Checkpoint] = (), *, page: int = PAGE) -> AuditResult:
    """The ledger and checkpoints of the database ``settings`` point at, against ``known``."""
    from tradesignals.signing import check_signature
    from tradesignals.storage.checkpoints import SqlCheckpointRepository
    from tradesignals.storage.repositories import SqlSignalRepository

    with _database(settings) as engine:
        checkpoints = walk_checkpoints(SqlCheckpointRepository(engine))
        return audit(walk(SqlSignalRepository(engine), page), checkpoints, check_signature, known=known)


def audit_remote(
    url: str, known: Sequence[Checkpoint] = (), *, client: httpx.Client | None = None
) -> AuditResult:
    """A running server's ledger, checkpoints and public key, from its public API only."""
    from tradesignals.ledger_remote import RemoteLedger
    from tradesignals.signing import check_signature

    with RemoteLedger(url, client=client) as remote:
        public_key = remote.public_key()
        checkpoints = remote.checkpoints()
        return audit(remote.entries(), checkpoints, check_signature, known=known, public_key=public_key)


class KnownFileError(Exception):
    """A file of saved checkpoints cannot be read; one line naming the file and line."""


def load_known(path: Path) -> list[Checkpoint]:
    """Checkpoints saved earlier, one JSON object a line (``checkpoint --save``); blank lines skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise KnownFileError(f"cannot read {path}: {getattr(err, 'strerror', None) or err}") from None
    out: list[Checkpoint] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append(Checkpoint.from_json(json.loads(line)))
        except ValueError as err:  # json.JSONDecodeError is a ValueError
            raise KnownFileError(f"{path} line {n}: not a saved checkpoint ({err})") from None
    return out


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> bool:
    """Append ``checkpoint`` to ``path`` (JSON lines) unless it is already the last one; True if added."""
    saved = load_known(path) if path.exists() else []
    if saved and saved[-1].to_json() == checkpoint.to_json():
        return False
    line = json.dumps(checkpoint.to_json(), sort_keys=True, separators=(",", ":")) + "\n"
    try:
        with path.open("a", encoding="utf-8") as f:
            f.write(line)
    except OSError as err:
        raise KnownFileError(f"cannot write {path}: {err.strerror or err}") from None
    return True


def describe(result: VerifyResult | AuditResult) -> str:
    if isinstance(result, AuditResult):
        return _describe_audit(result)
    if result.ok:
        return f"ledger ok: {result.checked} entries, head {result.head}"
    return f"ledger broken at seq {result.first_bad}: {result.reason}"


def _describe_audit(result: AuditResult) -> str:
    if result.contradicted is not None:
        return f"ledger {result.reason}"
    line = describe(result.ledger)
    if not result.ok:
        return line
    if result.latest is not None:
        line += f"; {result.checkpoints} checkpoints verified (latest {result.latest.number} at seq {result.latest.seq})"
    if result.known:
        line += f"; extends all {result.known} saved checkpoints"
    return line


def verify_command(
    settings: Settings | None = None,
    *,
    remote: str | None = None,
    known: Path | None = None,
    echo: Callable[[str], None] = print,
) -> int:
    """Run the check and print one line; exit code 0 ok, 1 broken, 2 the ledger could not be read."""
    from tradesignals.ledger_remote import RemoteError

    try:
        saved = load_known(known) if known is not None else []
        if remote is not None:
            result = audit_remote(remote, saved)
        else:
            result = audit_ledger(settings if settings is not None else load_settings(), saved)
    except (StorageError, ConfigError, RemoteError, KnownFileError) as err:
        echo(f"ledger verify failed: {err}")
        return EXIT_UNREADABLE
    echo(describe(result))
    return EXIT_OK if result.ok else EXIT_BROKEN


def checkpoint_command(
    save: Path,
    settings: Settings | None = None,
    *,
    remote: str | None = None,
    echo: Callable[[str], None] = print,
) -> int:
    """Append the latest checkpoint (of the database, or of ``remote``) to ``save``; print one line.

    The checkpoint's signature is checked first: a file of saved checkpoints is only worth keeping
    if what went in was really signed.
    """
    from tradesignals.ledger_remote import RemoteError, RemoteLedger
    from tradesignals.signing import check_signature

    try:
        if remote is not None:
            with RemoteLedger(remote) as server:
                latest = server.latest()
        else:
            from tradesignals.storage.checkpoints import SqlCheckpointRepository

            with _database(settings if settings is not None else load_settings()) as engine:
                latest = SqlCheckpointRepository(engine).latest()
        if latest is None:
            echo("ledger checkpoint failed: no checkpoint yet (the engine writes one at start)")
            return EXIT_UNREADABLE
        if not check_signature(latest.public_key, latest.message(), latest.signature):
            echo(f"ledger checkpoint refused: {latest.describe()} has a bad signature (forged or altered)")
            return EXIT_BROKEN
        added = save_checkpoint(save, latest)
    except (StorageError, ConfigError, RemoteError, KnownFileError) as err:
        echo(f"ledger checkpoint failed: {err}")
        return EXIT_UNREADABLE
    echo(f"{'saved' if added else 'already saved'} {latest.describe()} in {save}")
    return EXIT_OK


def rotate_command(
    new_key: Path, settings: Settings | None = None, *, echo: Callable[[str], None] = print
) -> int:
    """Rotate the checkpoint key: a checkpoint signed by the current key names ``new_key``'s.

    ``new_key`` is created (mode 0600) when absent. The engine must be stopped: a running one would
    go on signing with the old key, which the chain no longer accepts. Afterwards the new key must
    be the configured one: in embedded mode with the default key file it is put in place here (the
    old key kept beside it as ``ledger-key.retired-N.pem``); otherwise the line says what to set.
    """
    import os
    import shutil

    from tradesignals.config import Mode
    from tradesignals.engine.checkpointer import Checkpointer
    from tradesignals.signing import KEY_FILE_NAME, SigningKeyError, load_or_create_signer
    from tradesignals.storage.checkpoints import SqlCheckpointRepository
    from tradesignals.wiring import build_signer

    settings = settings if settings is not None else load_settings()
    default = settings.home / KEY_FILE_NAME
    in_place = (
        settings.mode is Mode.EMBEDDED and settings.ledger_key is None and settings.ledger_key_file is None
    )
    try:
        if in_place and not default.exists():
            raise ConfigError(f"no key at {default} to rotate from")
        current = build_signer(settings)
        if current is None:
            raise ConfigError("no current key: set TS_LEDGER_KEY_FILE (or TS_LEDGER_KEY)")
        new, _ = load_or_create_signer(new_key)
        if new.public_key == current.public_key:
            raise ConfigError(f"{new_key} holds the current key; give a new one")
        with _database(settings) as engine:
            checkpointer = Checkpointer(SqlCheckpointRepository(engine), current)
            checkpointer.check_key()
            rotation = checkpointer.checkpoint(next_public_key=new.public_key)
        if in_place:
            retired = default.with_name(f"ledger-key.retired-{rotation.number}.pem")
            os.replace(default, retired)
            shutil.copyfile(new_key, default)  # a private copy: the new file is 0600 already
            os.chmod(default, 0o600)
            where = f"the new key is now {default} (the old one kept as {retired.name})"
        else:
            where = f"now set TS_LEDGER_KEY_FILE={new_key} on every engine node and restart"
    except (StorageError, ConfigError, SigningKeyError, ValueError) as err:
        echo(f"ledger rotate-key failed: {err}")
        return EXIT_UNREADABLE
    echo(f"rotated: {rotation.describe()} names key {new.public_key[:12]}; {where}")
    return EXIT_OK


__all__ = [
    "KnownFileError",
    "audit_ledger",
    "audit_remote",
    "checkpoint_command",
    "describe",
    "load_known",
    "rotate_command",
    "save_checkpoint",
    "verify_command",
    "verify_ledger",
    "walk",
    "walk_checkpoints",
]
