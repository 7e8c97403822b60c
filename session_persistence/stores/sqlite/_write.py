"""The SQLite store's write statements: each op as the fewest statements that apply it.

Everything here runs on the store's worker thread, inside the write transaction
(``BEGIN IMMEDIATE``) the caller holds, so what a statement reads cannot change before the
transaction commits. The statements are built once per table prefix (:class:`Statements`) so
``sqlite3``'s statement cache always finds them.

Version checks are part of the writing statement itself (``UPDATE ... WHERE session_id = ? AND
version = ?``, ``DELETE ... AND version = ?``): a statement that changes no row means the
stored version was not the expected one, and the op raises ``SessionConflictError`` (the
caller rolls its savepoint back, so nothing of the op stays). A single-operation write reads
the row it builds from in the same transaction, so no separate version ``SELECT`` is needed.

Interaction rows are rewritten only from the first one that changed: an update of metadata,
tags or expiry writes the session's row and nothing else, and an append inserts only the new
rows (``executemany``).

Content columns are sealed here (see :mod:`._seal`): ``write_op`` takes the plain values of an
op, compares them with the stored ones *opened* (the caller passes them opened, or it opens
what it reads itself), and wraps only what it writes. So an unchanged metadata value or
interaction row is not rewritten on a sealed store either (a fresh nonce would make every
sealed value differ from the one stored).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from ..._envelope import Envelope, Unsealable
from ...errors import SealingKeyError, SessionConflictError
from ...ops import AppendOp, CheckOp, DeleteOp, PutOp, WriteOp, op_session_id
from ._rows import HEADER_COLUMNS, put_values, timestamp
from ._seal import METADATA, open_item, open_meta, seal_items, seal_meta

__all__ = ["Statements", "session_rows", "versions_match", "write_op"]

_COLUMNS = [column.strip() for column in HEADER_COLUMNS.split(",")]
_VERSION = _COLUMNS.index("version")


class Statements:
    """The SQL of every write, for one table prefix."""

    def __init__(self, p: str) -> None:
        marks = ", ".join("?" * len(_COLUMNS))
        self.header = f"SELECT {HEADER_COLUMNS} FROM {p}sessions WHERE session_id = ?"
        self.texts = f"SELECT data FROM {p}interactions WHERE session_id = ? ORDER BY seq"
        # A whole session in one statement (so one committed instant, no BEGIN): its header
        # columns on every row, then each interaction's data in order (NULL: it has none).
        self.session = (
            "SELECT "
            + ", ".join(f"s.{c}" for c in _COLUMNS)
            + f", i.data FROM {p}sessions s LEFT JOIN {p}interactions i"
            " ON i.session_id = s.session_id WHERE s.session_id = ? ORDER BY i.seq"
        )
        self.version = f"SELECT version FROM {p}sessions WHERE session_id = ?"
        self.count = f"SELECT count(*) FROM {p}sessions"
        self.insert = f"INSERT INTO {p}sessions ({HEADER_COLUMNS}) VALUES ({marks})"
        self._p = p
        self._replace: dict[tuple[str, ...], str] = {}
        self.append = (
            f"UPDATE {p}sessions SET version = ?, updated_at = ?, last_accessed_at = ?, "
            "expires_at = ?, interaction_count = ?, size_bytes = ? "
            "WHERE session_id = ? AND version = ?"
        )
        self.delete = f"DELETE FROM {p}sessions WHERE session_id = ? AND version = ?"
        self.delete_rows_from = f"DELETE FROM {p}interactions WHERE session_id = ? AND seq >= ?"
        self.insert_rows = f"INSERT INTO {p}interactions (session_id, seq, data) VALUES (?, ?, ?)"

    def replace(self, columns: tuple[str, ...]) -> str:
        """``UPDATE`` of ``columns`` only, for the row at ``session_id`` and ``version``.

        Only the columns whose values change are set: SQLite rewrites an index entry for
        every indexed column named in ``SET``, changed or not.
        """
        statement = self._replace.get(columns)
        if statement is None:
            sets = ", ".join(f"{c} = ?" for c in columns)
            statement = f"UPDATE {self._p}sessions SET {sets} WHERE session_id = ? AND version = ?"
            self._replace[columns] = statement
        return statement


def session_rows(
    db: sqlite3.Connection, sql: Statements, session_id: str
) -> tuple[tuple[Any, ...], list[str]] | None:
    """Read a session's header row and its interaction rows, in order, in one statement."""
    rows = db.execute(sql.session, (session_id,)).fetchall()
    if not rows:
        return None
    width = len(_COLUMNS)
    texts = [row[width] for row in rows]
    if texts == [None]:
        texts = []
    return rows[0][:width], texts


def write_op(
    db: sqlite3.Connection,
    sql: Statements,
    op: WriteOp,
    *,
    envelope: Envelope,
    row: Sequence[Any] | None = None,
    stored: Sequence[str] | None = None,
) -> None:
    """Apply one op, its version checked by the writing statement.

    Args:
        db: The connection, inside a write transaction.
        sql: The statements of the store's table prefix.
        op: The op.
        envelope: Seals (and compresses) the content columns written.
        row: For a ``PutOp`` replacing a session, its stored header row
            (:data:`HEADER_COLUMNS`), its metadata opened, if the caller has read it in
            this transaction.
        stored: Likewise, its stored interaction rows, opened. Columns and rows that did not
            change are not rewritten.

    Raises:
        SessionConflictError: The stored version is not ``op.expected``; the caller must roll
            back what this op wrote.
    """
    if isinstance(op, PutOp):
        values, texts = put_values(op.header, op.data)
        session_id = op.header.session_id
        if op.expected is None:
            # The caller checked absence; a row there now fails the primary key.
            meta = seal_meta(envelope, session_id, values[METADATA])
            db.execute(sql.insert, (*values[:METADATA], meta, *values[METADATA + 1 :]))
            _insert_rows(db, sql, session_id, 0, seal_items(envelope, session_id, 0, texts))
            return
        if row is None:
            row = db.execute(sql.header, (session_id,)).fetchone()
            if row is None:
                versions_match(db, sql, [op])  # raises: the session is gone
            meta = _opened(open_meta, envelope, session_id, row[METADATA])
            row = (*row[:METADATA], meta, *row[METADATA + 1 :])
        # The version is always set: the statement must name a column (a restore may put a
        # session back exactly as stored), and its WHERE clause is the version check.
        changed = [i for i in range(1, len(_COLUMNS)) if row[i] != values[i] or i == _VERSION]
        statement = sql.replace(tuple(_COLUMNS[i] for i in changed))
        params = [
            seal_meta(envelope, session_id, values[i]) if i == METADATA else values[i]
            for i in changed
        ]
        _changed(db, sql, db.execute(statement, (*params, session_id, op.expected)), op)
        same = 0
        if stored is None:
            # Open stored rows only as far as they match (a put mostly keeps a prefix).
            found = [text for (text,) in db.execute(sql.texts, (session_id,))]
            for seq, (old, new) in enumerate(zip(found, texts, strict=False)):
                if _opened(open_item, envelope, session_id, old, seq) != new:
                    break
                same += 1
            count = len(found)
        else:
            for old, new in zip(stored, texts, strict=False):
                if old != new:
                    break
                same += 1
            count = len(stored)
        if same < count:
            db.execute(sql.delete_rows_from, (session_id, same))
        _insert_rows(
            db, sql, session_id, same, seal_items(envelope, session_id, same, texts[same:])
        )
    elif isinstance(op, AppendOp):
        header = op.header
        _changed(
            db,
            sql,
            db.execute(
                sql.append,
                (
                    header.version,
                    timestamp(header.updated_at),
                    timestamp(header.last_accessed_at),
                    # (an append moves a sliding session's expiry: the header's is kept)
                    None if header.expires_at is None else timestamp(header.expires_at),
                    header.interaction_count,
                    header.size_bytes,
                    header.session_id,
                    op.expected,
                ),
            ),
            op,
        )
        first = header.interaction_count - len(op.encoded)
        plain = [item.decode() for item in op.encoded]
        _insert_rows(
            db, sql, header.session_id, first, seal_items(envelope, header.session_id, first, plain)
        )
    elif isinstance(op, DeleteOp):
        # ON DELETE CASCADE removes the session's interaction rows.
        _changed(db, sql, db.execute(sql.delete, (op.session_id, op.expected)), op)
    else:
        assert isinstance(op, CheckOp)


def _opened(opener: Any, envelope: Envelope, session_id: str, text: Any, *seq: int) -> Any:
    """A stored value opened to compare it (``None``, which differs, if it does not open).

    A put replaces the session whatever its stored values hold: a value that is damaged, or
    sealed with a key this store does not hold, is simply rewritten.
    """
    try:
        return opener(envelope, session_id, *seq, text)
    except (Unsealable, SealingKeyError):
        return None


def _changed(db: sqlite3.Connection, sql: Statements, cursor: sqlite3.Cursor, op: WriteOp) -> None:
    """Raise ``SessionConflictError`` if the version-checked statement changed no row."""
    if cursor.rowcount != 1:
        versions_match(db, sql, [op])  # raises, naming the version found
        raise AssertionError("a version-checked write changed no row at the expected version")


def _insert_rows(
    db: sqlite3.Connection, sql: Statements, session_id: str, first: int, texts: Sequence[str]
) -> None:
    if len(texts) == 1:
        db.execute(sql.insert_rows, (session_id, first, texts[0]))
    elif texts:
        db.executemany(
            sql.insert_rows,
            [(session_id, first + index, text) for index, text in enumerate(texts)],
        )


def versions_match(db: sqlite3.Connection, sql: Statements, ops: Sequence[WriteOp]) -> None:
    """Raise ``SessionConflictError`` for the first op whose stored version is not expected."""
    for op in ops:
        session_id = op_session_id(op)
        row = db.execute(sql.version, (session_id,)).fetchone()
        actual: Any = None if row is None else row[0]
        if actual != op.expected:
            raise SessionConflictError(session_id, op.expected, actual)
