"""The PostgreSQL store's schema and its versioned migrations.

Each table set (one per ``table_prefix``) records its schema version in ``{p}schema``.
:func:`migrate` runs at ``initialize()``, in one transaction that first takes a
transaction-scoped advisory lock named by the prefix (``pg_advisory_xact_lock``): of many hosts
starting at once, one migrates and the others wait, then find the version current and do
nothing. DDL is transactional in PostgreSQL, so a failure mid-migration leaves the tables at
their old version. A table set whose version is newer than :data:`SCHEMA_VERSION` is refused.

Version 1::

    {p}sessions(session_id text PRIMARY KEY, processor_id, activity_id, request_id text,
                ulid_ids smallint,           -- 1: activity_id is a ULID, 2: request_id is one
                created_at, updated_at, last_accessed_at, expires_at timestamptz,
                version bigint,              -- 1 on create, +1 on every change
                metadata json, tags json,    -- the codec's text, byte for byte (see _rows)
                interaction_count integer, size_bytes bigint)
    {p}interactions(session_id text REFERENCES {p}sessions ON DELETE CASCADE,
                    seq integer,             -- 0, 1, 2, ... in the session's order
                    data json,               -- one encoded interaction
                    PRIMARY KEY (session_id, seq))
    {p}schema(version integer)               -- one row
    {p}quarantine(session_id, reason, quarantined_at, session json, interactions json)
    {p}expect(n, session_id, expected)       -- raises SQLSTATE SP409 unless n = 1

Version 2 adds ``{p}sessions.incarnation bigint`` (``DEFAULT nextval('{p}incarnations')``):
set when a row is inserted, never updated, never the same for two rows an id ever had. The
remembered state of :mod:`._fast` is checked against it as well as against ``version``
(versions restart at 1 when an id is deleted and created again).

Indexes serve the filters and sort keys of ``SessionFilter``/``SessionQueryOptions``: each is
``(column, session_id)``, the order :func:`~session_persistence.query.sort_and_page` sorts
in, on ``processor_id``, ``activity_id``, ``request_id``, ``created_at`` and ``expires_at``
(never-expiring sessions, ``NULL``, sort last as the library orders them). As on SQLite,
``updated_at`` and ``last_accessed_at`` have none: they change on every write, and an index
on them would cost every write an index update for a sort that can sort the selected rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from psycopg import AsyncConnection

from ...errors import StoreCorruptionError

__all__ = ["SCHEMA_VERSION", "advisory_key", "migrate"]

#: The schema version this library writes.
SCHEMA_VERSION = 2


def _v1(p: str) -> list[str]:
    return [
        f"""CREATE TABLE {p}sessions (
            session_id text COLLATE "C" PRIMARY KEY,
            processor_id text COLLATE "C" NOT NULL,
            activity_id text COLLATE "C" NOT NULL,
            request_id text COLLATE "C" NOT NULL,
            ulid_ids smallint NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            last_accessed_at timestamptz NOT NULL,
            expires_at timestamptz,
            version bigint NOT NULL,
            metadata json NOT NULL,
            tags json NOT NULL,
            interaction_count integer NOT NULL DEFAULT 0,
            size_bytes bigint NOT NULL DEFAULT 0
        )""",
        f"""CREATE TABLE {p}interactions (
            session_id text COLLATE "C" NOT NULL
                REFERENCES {p}sessions(session_id) ON DELETE CASCADE,
            seq integer NOT NULL,
            data json NOT NULL,
            PRIMARY KEY (session_id, seq)
        )""",
        *(
            f"CREATE INDEX {p}sessions_{column} ON {p}sessions ({column}, session_id)"
            for column in ("processor_id", "activity_id", "request_id", "created_at")
        ),
        f"CREATE INDEX {p}sessions_expires_at ON {p}sessions (expires_at NULLS LAST, session_id)",
        # The version check of a write sent without waiting for each statement's reply (see
        # _fast.py): a statement that changed no row fails the transaction with SP409.
        f"""CREATE FUNCTION {p}expect(n bigint, session_id text, expected bigint)
            RETURNS bigint LANGUAGE plpgsql AS $$
            BEGIN
                IF n <> 1 THEN
                    RAISE EXCEPTION USING ERRCODE = 'SP409', MESSAGE = format(
                        'session %s is not at version %s', session_id,
                        coalesce(expected::text, '<absent>'));
                END IF;
                RETURN n;
            END $$""",
        f"""CREATE TABLE {p}quarantine (
            id bigserial PRIMARY KEY,
            session_id text NOT NULL,
            reason text NOT NULL,
            quarantined_at timestamptz NOT NULL DEFAULT now(),
            session json,
            interactions json
        )""",
    ]


def _v2(p: str) -> list[str]:
    # A session's incarnation: a number no other session of the id ever had (a sequence),
    # given when its row is inserted and never changed. Versions restart at 1 when an id is
    # deleted and created again; (incarnation, version) never repeats, so a write built from
    # an old incarnation's state can be checked against it (see _fast.py).
    return [
        f"CREATE SEQUENCE {p}incarnations",
        f"ALTER TABLE {p}sessions ADD COLUMN incarnation bigint NOT NULL "
        f"DEFAULT nextval('{p}incarnations')",
    ]


#: ``MIGRATIONS[n]`` returns the statements taking a table set from version ``n`` to ``n + 1``.
MIGRATIONS: list[Callable[[str], list[str]]] = [_v1, _v2]
assert len(MIGRATIONS) == SCHEMA_VERSION


def advisory_key(prefix: str) -> int:
    """Return the advisory lock key of a table set (a signed 64-bit number from its prefix)."""
    digest = hashlib.blake2b(f"session-persistence:{prefix}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def migrate(conn: AsyncConnection[tuple[object, ...]], prefix: str) -> tuple[int, int]:
    """Bring ``prefix``'s tables to :data:`SCHEMA_VERSION`, creating them if missing.

    Runs in one transaction under the table set's advisory lock (other hosts wait for it).

    Returns:
        The tables' version before and after (``0`` before: they did not exist).

    Raises:
        StoreCorruptionError: The tables were written by a newer version of this library.
    """
    p = prefix
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_key(p),))
        cursor = await conn.execute("SELECT to_regclass(%s)::text", (f"{p}schema",))
        row = await cursor.fetchone()
        found = 0
        if row is not None and row[0] is not None:
            cursor = await conn.execute(f"SELECT version FROM {p}schema")
            version_row = await cursor.fetchone()
            found = 0 if version_row is None else int(str(version_row[0]))
        else:
            await conn.execute(f"CREATE TABLE {p}schema (version integer NOT NULL)")
            await conn.execute(f"INSERT INTO {p}schema (version) VALUES (0)")
        if found > SCHEMA_VERSION:
            raise StoreCorruptionError(
                f"the tables {p}* have schema version {found}, newer than this library writes "
                f"({SCHEMA_VERSION}); upgrade session-persistence to open them",
                f"{p}sessions",
            )
        for step in MIGRATIONS[found:]:
            for statement in step(p):
                await conn.execute(statement)
        if found != SCHEMA_VERSION:
            await conn.execute(f"UPDATE {p}schema SET version = %s", (SCHEMA_VERSION,))
    return found, SCHEMA_VERSION
