"""``tradesignals ledger verify``: re-walk the whole hash chain in the database, name the first bad entry.

Kept free of Typer so the CLI stays a thin shell over it and tests call it directly. Read-only: it
never migrates or creates a database (pointing it at a wrong path must not leave an empty file).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from tradesignals.config import ConfigError, Settings, load_settings
from tradesignals.domain.ledger import LedgerEntry, VerifyResult, verify
from tradesignals.storage.base import SignalRepository, StorageError
from tradesignals.storage.db import current_revision, describe_url, head_revision, make_engine, parse_url

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


def verify_ledger(settings: Settings, *, page: int = PAGE) -> VerifyResult:
    """Verify the ledger of the database ``settings`` point at; ``StorageError`` if it cannot be read."""
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
        from tradesignals.storage.repositories import SqlSignalRepository

        try:
            return verify(walk(SqlSignalRepository(engine), page))
        except ValueError as err:
            # A row the driver cannot even decode (JSON text edited into garbage) is tampering too,
            # but it stops the read before verify sees the row.
            raise StorageError(f"ledger rows cannot be read: {err}") from None
    finally:
        engine.dispose()


def describe(result: VerifyResult) -> str:
    if result.ok:
        return f"ledger ok: {result.checked} entries, head {result.head}"
    return f"ledger broken at seq {result.first_bad}: {result.reason}"


def verify_command(settings: Settings | None = None, *, echo: Callable[[str], None] = print) -> int:
    """Run the check and print one line; exit code 0 ok, 1 broken, 2 the ledger could not be read."""
    try:
        result = verify_ledger(settings if settings is not None else load_settings())
    except (StorageError, ConfigError) as err:
        echo(f"ledger verify failed: {err}")
        return EXIT_UNREADABLE
    echo(describe(result))
    return EXIT_OK if result.ok else EXIT_BROKEN


__all__ = ["describe", "verify_command", "verify_ledger", "walk"]
