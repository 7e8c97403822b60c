"""The SQLite store's schema and its ordered migrations.

The schema version of a database file is ``PRAGMA user_version``. Opening a file runs, in one
``BEGIN IMMEDIATE`` transaction, every migration above the file's version for every table set
in it (a file may hold several, one per ``table_prefix``), then sets ``user_version``. DDL is
transactional in SQLite, so a crash or an error mid-migration leaves the file at its old
version, untouched. A file whose version is newer than :data:`SCHEMA_VERSION` is refused.

Version 1 (the first release)::

    {p}sessions(session_id TEXT PRIMARY KEY, processor_id, activity_id, request_id,
                ulid_ids INTEGER,          -- 1: activity_id is a ULID, 2: request_id is one
                created_at, updated_at, last_accessed_at, expires_at,   -- UTC ISO 8601 text
                version INTEGER, metadata TEXT (JSON), tags TEXT (JSON array))
    {p}interactions(session_id REFERENCES {p}sessions ON DELETE CASCADE,
                    seq INTEGER,           -- 0, 1, 2, ... in the session's order
                    data TEXT (JSON),      -- one encoded interaction
                    PRIMARY KEY (session_id, seq)) WITHOUT ROWID

Version 2 adds the header figures as columns, so listing and counting never count or measure
interactions (``interaction_count``, ``size_bytes``, backfilled from the rows), and indexes for
the filters and sort keys.

Version 3 (issue 21) drops the indexes on ``updated_at`` and ``last_accessed_at``: both change
on every write (and ``last_accessed_at`` on every read, when touches are written), so each cost
a WAL page per write, and no query needs them enough to pay that (sorting by ``updated_at``
sorts the selected rows instead; idle expiry scans the table). The indexes that stay name
columns that never change after a create (``processor_id``, ``activity_id``, ``created_at``)
or change only with the expiry (``expires_at``). ``docs/concepts/sqlite-store.md`` has what
each costs.

Timestamps are fixed-width UTC text (``2026-11-21T09:30:00.123456+00:00``), so they read well in
the ``sqlite3`` shell and compare in SQL exactly as the datetimes do.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from ...errors import StoreCorruptionError
from ._rows import V1_COLUMNS, document_size

__all__ = ["SCHEMA_VERSION", "migrate", "table_sets"]

#: The schema version this library writes.
SCHEMA_VERSION = 3


def _v1(db: sqlite3.Connection, p: str) -> None:
    db.execute(f"""
        CREATE TABLE {p}sessions (
            session_id TEXT PRIMARY KEY NOT NULL,
            processor_id TEXT NOT NULL,
            activity_id TEXT NOT NULL,
            request_id TEXT NOT NULL,
            ulid_ids INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            last_accessed_at TEXT NOT NULL,
            expires_at TEXT,
            version INTEGER NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{{}}',
            tags TEXT NOT NULL DEFAULT '[]'
        )""")
    db.execute(f"""
        CREATE TABLE {p}interactions (
            session_id TEXT NOT NULL
                REFERENCES {p}sessions(session_id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (session_id, seq)
        ) WITHOUT ROWID""")
    db.execute(f"CREATE INDEX {p}sessions_expires_at ON {p}sessions(expires_at)")


def _v2(db: sqlite3.Connection, p: str) -> None:
    db.execute(f"ALTER TABLE {p}sessions ADD COLUMN interaction_count INTEGER NOT NULL DEFAULT 0")
    db.execute(f"ALTER TABLE {p}sessions ADD COLUMN size_bytes INTEGER NOT NULL DEFAULT 0")
    # Backfill from the rows: the count, and the length of the compact JSON document the
    # columns and rows make up (the figure stats and max_session_bytes use).
    rows = db.execute(f"SELECT {V1_COLUMNS} FROM {p}sessions").fetchall()
    for row in rows:
        texts = [
            text
            for (text,) in db.execute(
                f"SELECT data FROM {p}interactions WHERE session_id = ? ORDER BY seq", (row[0],)
            )
        ]
        db.execute(
            f"UPDATE {p}sessions SET interaction_count = ?, size_bytes = ? WHERE session_id = ?",
            (len(texts), document_size(row, texts), row[0]),
        )
    for column in ("processor_id", "activity_id", "created_at", "updated_at", "last_accessed_at"):
        db.execute(f"CREATE INDEX {p}sessions_{column} ON {p}sessions({column}, session_id)")


def _v3(db: sqlite3.Connection, p: str) -> None:
    for column in ("updated_at", "last_accessed_at"):
        db.execute(f"DROP INDEX IF EXISTS {p}sessions_{column}")


#: ``MIGRATIONS[n]`` takes a table set from version ``n`` to ``n + 1``.
MIGRATIONS: list[Callable[[sqlite3.Connection, str], None]] = [_v1, _v2, _v3]
assert len(MIGRATIONS) == SCHEMA_VERSION


def table_sets(db: sqlite3.Connection) -> list[str]:
    """Return the prefixes of every session table set in the file."""
    names = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return sorted(
        name[: -len("sessions")]
        for name in names
        if name.endswith("sessions") and name[: -len("sessions")] + "interactions" in names
    )


def migrate(db: sqlite3.Connection, prefix: str, path: str) -> tuple[int, int]:
    """Bring the file to :data:`SCHEMA_VERSION` and create ``prefix``'s tables if missing.

    Runs in one ``BEGIN IMMEDIATE`` transaction (it waits for other writers).

    Returns:
        The file's version before and after.

    Raises:
        StoreCorruptionError: The file was written by a newer version of this library.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        (found,) = db.execute("PRAGMA user_version").fetchone()
        if found > SCHEMA_VERSION:
            raise StoreCorruptionError(
                f"{path} has schema version {found}, newer than this library writes "
                f"({SCHEMA_VERSION}); upgrade session-persistence to open it",
                path,
            )
        existing = table_sets(db)
        for p in existing:
            for step in MIGRATIONS[found:]:
                step(db, p)
        if prefix not in existing:
            for step in MIGRATIONS:
                step(db, prefix)
        if found != SCHEMA_VERSION:
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return found, SCHEMA_VERSION
