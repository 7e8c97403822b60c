"""The PostgreSQL store's write statements: each op as the fewest statements that apply it.

Everything here runs inside the one PostgreSQL transaction (``READ COMMITTED``) that applies a
batch, on one pooled connection. Version checks are part of the writing statement itself
(``UPDATE ... WHERE session_id = %s AND version = %s``, ``DELETE ... AND version = %s``): under
``READ COMMITTED`` such a statement that meets a row another transaction is changing waits for
it, then re-evaluates its ``WHERE`` on the committed row, so a statement that changes no row
means the stored version was not the expected one, and :class:`SessionConflictError` is
raised (the caller rolls the transaction back: nothing of the batch stays). The updated rows
stay locked until ``COMMIT``, so what was checked is what commits.

Creates are ``INSERT ... ON CONFLICT DO NOTHING`` (no row inserted: the id is taken), under a
transaction-scoped advisory lock on the session id, which a transaction that read the id as
absent (a ``CheckOp`` expecting ``None``) also takes before checking: that check and any
create of the id are serialized. A ``CheckOp`` on an existing session locks its row
``FOR SHARE`` until commit.

Ops are applied in ``session_id`` order, so two batches touching the same sessions lock them
in the same order and never deadlock.

Interaction rows are rewritten only from the first one that changed: an update of metadata,
tags or expiry writes the session's row and nothing else, and an append inserts only the new
rows.

With sealing or compression configured, the metadata value and each interaction row are
wrapped as they are written (see :mod:`._seal`); which rows changed is decided on their plain
text (a sealed value differs on every write: its nonce is random).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection

from ..._envelope import PLAIN, Envelope, Unsealable
from ...errors import SessionConflictError
from ...ops import AppendOp, CheckOp, DeleteOp, PutOp, WriteOp, op_session_id
from ._rows import COLUMNS, put_values
from ._seal import open_item, seal_items, seal_metadata

__all__ = ["Statements", "id_key", "write_ops"]

Conn = AsyncConnection[tuple[Any, ...]]

#: Each column's type, cast explicitly: ``INSERT ... SELECT`` does not infer parameter types.
_TYPES = {
    "session_id": "text",
    "processor_id": "text",
    "activity_id": "text",
    "request_id": "text",
    "ulid_ids": "smallint",
    "created_at": "timestamptz",
    "updated_at": "timestamptz",
    "last_accessed_at": "timestamptz",
    "expires_at": "timestamptz",
    "version": "bigint",
    "metadata": "json",
    "tags": "json",
    "interaction_count": "integer",
    "size_bytes": "bigint",
}


def id_key(prefix: str, session_id: str) -> int:
    """The advisory lock key of one session id (a signed 64-bit number)."""
    digest = hashlib.blake2b(f"{prefix}\0{session_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Statements:
    """The SQL of every write, for one table prefix."""

    def __init__(self, p: str) -> None:
        marks = ", ".join(f"%s::{_TYPES[c]}" for c in COLUMNS)
        self.insert = (
            f"INSERT INTO {p}sessions ({', '.join(COLUMNS)}) "
            f"SELECT {marks} FROM (SELECT pg_advisory_xact_lock(%s)) lock "
            "ON CONFLICT (session_id) DO NOTHING"
        )
        sets = ", ".join(f"{c} = %s::{_TYPES[c]}" for c in COLUMNS[1:])
        self.replace = f"UPDATE {p}sessions SET {sets} WHERE session_id = %s AND version = %s"
        self.append = (
            f"UPDATE {p}sessions SET version = %s, updated_at = %s, last_accessed_at = %s, "
            "expires_at = %s, interaction_count = %s, size_bytes = %s "
            "WHERE session_id = %s AND version = %s"
        )
        self.delete = f"DELETE FROM {p}sessions WHERE session_id = %s AND version = %s"
        # (the same, pinned to one incarnation of the id as well: see _fast.py)
        self.append_pinned = self.append + " AND incarnation = %s"
        self.delete_pinned = self.delete + " AND incarnation = %s"
        self.incarnation = f"SELECT incarnation FROM {p}sessions WHERE session_id = %s"
        self.version = f"SELECT version FROM {p}sessions WHERE session_id = %s"
        self.lock_version = f"SELECT version FROM {p}sessions WHERE session_id = %s FOR SHARE"
        self.lock_id = "SELECT pg_advisory_xact_lock(%s)"
        self.texts = f"SELECT data::text FROM {p}interactions WHERE session_id = %s ORDER BY seq"
        self.delete_rows_from = f"DELETE FROM {p}interactions WHERE session_id = %s AND seq >= %s"
        self.insert_rows = (
            f"INSERT INTO {p}interactions (session_id, seq, data) VALUES (%s, %s, %s::json)"
        )
        self.count = f"SELECT count(*) FROM {p}sessions"
        #: The advisory lock of ``max_sessions`` checks (one per table set).
        self.limit_key = int.from_bytes(
            hashlib.blake2b(
                f"session-persistence:{p}:max_sessions".encode(), digest_size=8
            ).digest(),
            "big",
            signed=True,
        )
        self.prefix = p
        self.upsert_rows = (
            f"INSERT INTO {p}interactions (session_id, seq, data) "
            "SELECT %s, t.seq, t.data::json FROM unnest(%s::integer[], %s::text[]) AS t(seq, data) "
            "ON CONFLICT (session_id, seq) DO UPDATE SET data = EXCLUDED.data"
        )
        self._one: dict[tuple[str, ...], str] = {}
        self._replace: dict[tuple[str, ...], str] = {}

    def replace_columns(self, columns: tuple[str, ...]) -> str:
        """``UPDATE`` of ``columns`` only, at ``session_id``, ``version`` and ``incarnation``."""
        found = self._replace.get(columns)
        if found is None:
            sets = ", ".join(f"{c} = %s::{_TYPES[c]}" for c in columns)
            found = (
                f"UPDATE {self.prefix}sessions SET {sets} "
                "WHERE session_id = %s AND version = %s AND incarnation = %s"
            )
            self._replace[columns] = found
        return found

    def one(self, ctes: tuple[str, ...]) -> str:
        """One statement: ``ctes`` (the first named ``changed``), then the version check.

        ``{prefix}expect`` fails the statement (SQLSTATE SP409), and so everything the CTEs
        did, unless ``changed`` holds exactly one row. Its last parameters: the session id
        and the expected version (for the message), the channel and the notification.
        """
        found = self._one.get(ctes)
        if found is None:
            found = (
                f"WITH {', '.join(ctes)} SELECT {self.prefix}expect("
                "(SELECT count(*) FROM changed), %s::text, %s::bigint), pg_notify(%s, %s)"
            )
            self._one[ctes] = found
        return found


async def write_ops(
    conn: Conn,
    sql: Statements,
    ops: Sequence[WriteOp],
    stored: dict[str, list[str]],
    envelope: Envelope = PLAIN,
) -> None:
    """Apply a batch's ops in ``session_id`` order, each version-checked.

    Args:
        conn: The connection, inside the batch's transaction.
        sql: The statements of the store's table prefix.
        ops: The batch.
        stored: Interaction texts already known for some sessions (read in this
            transaction, plain), so a replace need not read them again.
        envelope: Seals and compresses the values written.

    Raises:
        SessionConflictError: An op's stored version is not its ``expected``; the caller must
            roll the transaction back.
    """
    for op in sorted(ops, key=op_session_id):
        await write_op(conn, sql, op, stored.get(op_session_id(op)), envelope)


async def write_op(
    conn: Conn,
    sql: Statements,
    op: WriteOp,
    stored: Sequence[str | None] | None = None,
    envelope: Envelope = PLAIN,
) -> None:
    """Apply one op, its version checked by the writing statement (see the module docs)."""
    if isinstance(op, PutOp):
        values, texts = put_values(op.header, op.data)
        session_id = op.header.session_id
        if envelope.active:
            metadata = seal_metadata(envelope, session_id, values[10])
            values = (*values[:10], metadata, *values[11:])
        if op.expected is None:
            cursor = await conn.execute(sql.insert, (*values, id_key(sql.prefix, session_id)))
            if cursor.rowcount != 1:
                await _conflict(conn, sql, op)
            await _insert_rows(conn, sql, session_id, 0, seal_items(envelope, session_id, 0, texts))
            return
        cursor = await conn.execute(sql.replace, (*values[1:], session_id, op.expected))
        if cursor.rowcount != 1:
            await _conflict(conn, sql, op)
        if stored is None:
            cursor = await conn.execute(sql.texts, (session_id,))
            stored = [
                _plain(envelope, session_id, seq, text)
                for seq, (text,) in enumerate(await cursor.fetchall())
            ]
        same = 0
        for old, new in zip(stored, texts, strict=False):
            if old != new:
                break
            same += 1
        if same < len(stored):
            await conn.execute(sql.delete_rows_from, (session_id, same))
        await _insert_rows(
            conn, sql, session_id, same, seal_items(envelope, session_id, same, texts[same:])
        )
    elif isinstance(op, AppendOp):
        header = op.header
        cursor = await conn.execute(
            sql.append,
            (
                header.version,
                header.updated_at,
                header.last_accessed_at,
                # (an append moves a sliding session's expiry: the header's is kept)
                header.expires_at,
                header.interaction_count,
                header.size_bytes,
                header.session_id,
                op.expected,
            ),
        )
        if cursor.rowcount != 1:
            await _conflict(conn, sql, op)
        first = header.interaction_count - len(op.encoded)
        items = [item.decode() for item in op.encoded]
        sealed = seal_items(envelope, header.session_id, first, items)
        await _insert_rows(conn, sql, header.session_id, first, sealed)
    elif isinstance(op, DeleteOp):
        # ON DELETE CASCADE removes the session's interaction rows.
        cursor = await conn.execute(sql.delete, (op.session_id, op.expected))
        if cursor.rowcount != 1:
            await _conflict(conn, sql, op)
    else:
        assert isinstance(op, CheckOp)
        if op.expected is None:
            # Absence cannot be locked as a row: take the id's lock, as creators do.
            await conn.execute(sql.lock_id, (id_key(sql.prefix, op.session_id),))
            cursor = await conn.execute(sql.version, (op.session_id,))
        else:
            cursor = await conn.execute(sql.lock_version, (op.session_id,))
        row = await cursor.fetchone()
        actual = None if row is None else int(row[0])
        if actual != op.expected:
            raise SessionConflictError(op.session_id, op.expected, actual)


def _plain(envelope: Envelope, session_id: str, seq: int, text: str) -> str | None:
    """A stored row's plain text, to compare with the new one (``None``: damaged, rewrite it).

    A ``SealingKeyError`` (a key the store was not given) is raised: the batch is rolled back.
    """
    try:
        return open_item(envelope, session_id, seq, text)
    except Unsealable:
        return None


async def _conflict(conn: Conn, sql: Statements, op: WriteOp) -> None:
    """A version-checked statement changed no row: raise, naming the version found."""
    session_id = op_session_id(op)
    cursor = await conn.execute(sql.version, (session_id,))
    row = await cursor.fetchone()
    actual = None if row is None else int(row[0])
    raise SessionConflictError(session_id, op.expected, actual)


async def _insert_rows(
    conn: Conn, sql: Statements, session_id: str, first: int, texts: Sequence[str]
) -> None:
    if len(texts) == 1:
        await conn.execute(sql.insert_rows, (session_id, first, texts[0]))
    elif texts:
        async with conn.cursor() as cursor:
            await cursor.executemany(
                sql.insert_rows,
                [(session_id, first + index, text) for index, text in enumerate(texts)],
            )
