"""Sealing and compression of the SQLite store's two content columns (issue 23).

What is wrapped
    ``{p}sessions.metadata`` and each ``{p}interactions.data`` value, one record each, through
    the store's :class:`~session_persistence._envelope.Envelope`. Every other column (ids,
    ``processor_id``, timestamps, ``version``, ``tags``, ``interaction_count``,
    ``size_bytes``, ``seq``) stays in clear, so filters on them, sorting and counting stay in
    SQL and cost nothing more.

Contexts (the associated data a sealed value is bound to)
    ``b"meta:<session_id>"`` for a metadata value, ``b"item:<session_id>:<seq>"`` for an
    interaction row. ``seq`` is stable: the row at ``seq`` n only ever holds the session's
    n-th interaction (a put rewrites rows from the first that changed, at the same
    positions; an append adds rows after the last), so a row copied to another position or
    session fails authentication like an edited one.

Reading
    A value that does not start with ``$`` is plain JSON and passes through untouched, so a
    store that turned sealing on later, or is halfway through a rotation, reads both.
    :class:`~session_persistence._envelope.Unsealable` (a value that fails authentication,
    or whose base64 or compression is broken) is damage: it is reported as
    :class:`~session_persistence.errors.StoreCorruptionError` naming the session, as any
    damaged row is. :class:`~session_persistence.errors.SealingKeyError` (a key the store
    was not given) propagates unchanged.

SQL functions (see :class:`Functions`)
    ``sp_meta(metadata, session_id, strict)`` and ``sp_item(data, session_id, seq)`` return a
    value's plain JSON, so metadata filters keep their ``json_extract`` pushdown and search its
    functions. SQLite calls them only for wrapped values (the statements test the first
    character natively), and ``sp_meta`` remembers its last answer, since a filter condition
    reads one value twice (``json_type`` and ``json_extract``). A function cannot raise a
    typed error through SQLite, so it records the error and fails the statement; the store
    raises the recorded error instead of SQLite's (:meth:`Functions.take_error`).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from ..._envelope import PREFIX, Envelope, Unsealable
from ...errors import SealingKeyError, StoreCorruptionError

__all__ = [
    "METADATA",
    "Functions",
    "ResealCursor",
    "census",
    "damaged",
    "item_context",
    "item_sql",
    "meta_context",
    "meta_sql",
    "open_item",
    "open_meta",
    "opened",
    "reseal_step",
    "seal_items",
    "seal_meta",
]

logger = logging.getLogger(__name__)

#: The index of ``metadata`` in a header row (:data:`._rows.HEADER_COLUMNS`).
METADATA = 10
#: The index of ``interaction_count`` in a header row.
_COUNT = 12

_TEXT_PREFIX = PREFIX.decode()

#: Sessions per re-sealing range, and values re-sealed per write transaction at most.
SESSIONS_PER_STEP = 64
RECORDS_PER_STEP = 512


def meta_context(session_id: object) -> bytes:
    """The associated data of a session's metadata value."""
    return b"meta:" + str(session_id).encode()


def item_context(session_id: object, seq: int) -> bytes:
    """The associated data of the interaction row at ``seq``."""
    return b"item:%s:%d" % (str(session_id).encode(), seq)


# -- writing --------------------------------------------------------------------------------------


def seal_meta(envelope: Envelope, session_id: str, text: str) -> str:
    """Return a metadata value as it is stored (wrapped if sealing or compression is on)."""
    if not envelope.active:
        return text
    return envelope.wrap_text(text, meta_context(session_id))


def seal_items(envelope: Envelope, session_id: str, first: int, texts: Sequence[str]) -> list[str]:
    """Return interaction rows ``first``, ``first + 1``, ... as they are stored."""
    if not envelope.active:
        return list(texts)
    wrap = envelope.wrap_text
    return [wrap(text, item_context(session_id, first + i)) for i, text in enumerate(texts)]


# -- reading --------------------------------------------------------------------------------------


def open_meta(envelope: Envelope, session_id: object, text: Any) -> Any:
    """Return a stored metadata value's plain JSON (a plain or non-text value as it is).

    Raises:
        Unsealable: The value is damaged.
        SealingKeyError: It is sealed with a key the envelope does not hold.
    """
    if type(text) is not str or not text.startswith(_TEXT_PREFIX):
        if type(text) is str:
            envelope.refuse_clear()
        return text
    return envelope.unwrap_text(text, meta_context(session_id))


def open_item(envelope: Envelope, session_id: object, seq: int, text: Any) -> Any:
    """Return a stored interaction row's plain JSON (a plain or non-text value as it is).

    Raises:
        Unsealable: The value is damaged.
        SealingKeyError: It is sealed with a key the envelope does not hold.
    """
    if type(text) is not str or not text.startswith(_TEXT_PREFIX):
        if type(text) is str:
            envelope.refuse_clear()
        return text
    return envelope.unwrap_text(text, item_context(session_id, seq))


def damaged(row: Sequence[Any], path: str, exc: Exception) -> StoreCorruptionError:
    """The error for a session whose row holds a value that does not open."""
    return StoreCorruptionError(
        f"session {row[0]!r} in {path} is damaged ({exc}); restore it from a backup or delete it",
        path,
    )


def opened(
    envelope: Envelope,
    row: tuple[Any, ...],
    texts: Sequence[Any] | None,
    path: str,
    positions: Sequence[int] | range | None = None,
) -> tuple[tuple[Any, ...], list[Any]]:
    """Return a header row and its interaction rows with their content columns opened.

    Args:
        envelope: The store's envelope.
        row: A header row (:data:`._rows.HEADER_COLUMNS`).
        texts: Its interaction rows' ``data`` (``None``: none read).
        path: The database, for messages.
        positions: The ``seq`` of each of ``texts`` (default: 0, 1, 2, ...).

    Raises:
        StoreCorruptionError: A value is damaged, or (for a whole session) the rows do not
            number ``interaction_count``.
        SealingKeyError: A value is sealed with a key the envelope does not hold.
    """
    session_id = row[0]
    items: list[Any] = []
    try:
        meta = row[METADATA]
        if type(meta) is str and meta.startswith(_TEXT_PREFIX):
            row = (*row[:METADATA], open_meta(envelope, session_id, meta), *row[METADATA + 1 :])
        elif type(meta) is str:
            envelope.refuse_clear()
        if texts:
            if positions is None:
                count = row[_COUNT]
                if type(count) is int and count != len(texts):
                    # Positions would be wrong: report what is wrong, as the decoding does.
                    raise Unsealable(
                        f"interaction_count is {count} but {len(texts)} interaction rows exist"
                    )
                positions = range(len(texts))
            unwrap = envelope.unwrap_text
            items = [
                unwrap(text, item_context(session_id, seq))
                if type(text) is str and text.startswith(_TEXT_PREFIX)
                else text
                for seq, text in zip(positions, texts, strict=True)
            ]
            if envelope.strict and any(
                type(text) is str and not text.startswith(_TEXT_PREFIX) for text in texts
            ):
                envelope.refuse_clear()
    except Unsealable as exc:
        raise damaged(row, path, exc) from exc
    return row, items


# -- SQL functions ----------------------------------------------------------------------------


class Functions:
    """``sp_meta`` and ``sp_item`` on one connection, and the errors they recorded."""

    def __init__(self, envelope: Callable[[], Envelope]) -> None:
        self._envelope = envelope
        self._error: Exception | None = None
        self._last: tuple[str, object, Any] | None = None

    def take_error(self) -> Exception | None:
        """Return (and forget) the typed error a function failed its statement with."""
        error, self._error = self._error, None
        return error

    def _fail(self, exc: Exception) -> NoReturn:
        self._error = exc
        raise exc

    def meta(self, text: Any, session_id: object, strict: object) -> Any:
        """``sp_meta(metadata, session_id, strict)``: the plain JSON of a metadata value.

        A damaged value fails the statement if ``strict`` (a filter: as ``json_extract``
        fails on a damaged plain value), else it matches nothing (search).
        """
        last = self._last
        if last is not None and last[0] == text and last[1] == session_id:
            return last[2]
        try:
            plain = open_meta(self._envelope(), session_id, text)
        except Unsealable as exc:
            if not strict:
                return None
            self._fail(damaged((session_id,), "the database", exc))
        except SealingKeyError as exc:
            self._fail(exc)
        if type(text) is str:
            self._last = (text, session_id, plain)
        return plain

    def item(self, text: Any, session_id: object, seq: object) -> Any:
        """``sp_item(data, session_id, seq)``: the plain JSON of an interaction row."""
        if type(seq) is not int:
            return None  # a damaged row: reading the session reports it
        try:
            return open_item(self._envelope(), session_id, seq, text)
        except Unsealable:
            return None  # a damaged row matches nothing: reading the session reports it
        except SealingKeyError as exc:
            self._fail(exc)

    def register(self, db: sqlite3.Connection) -> None:
        """Register ``sp_meta`` and ``sp_item`` on ``db``."""
        db.create_function("sp_meta", 3, self.meta, deterministic=True)
        db.create_function("sp_item", 3, self.item, deterministic=True)


def meta_sql(strict: bool, column: str = "s.metadata", session_id: str = "s.session_id") -> str:
    """SQL for a metadata column's plain JSON (Python is called for wrapped values only)."""
    return (
        f"(CASE WHEN substr({column}, 1, 1) = '$' "
        f"THEN sp_meta({column}, {session_id}, {int(strict)}) ELSE {column} END)"
    )


def item_sql(column: str = "i.data", session_id: str = "i.session_id", seq: str = "i.seq") -> str:
    """SQL for an interaction row's plain JSON (Python is called for wrapped values only)."""
    return (
        f"(CASE WHEN substr({column}, 1, 1) = '$' "
        f"THEN sp_item({column}, {session_id}, {seq}) ELSE {column} END)"
    )


# -- rotation -------------------------------------------------------------------------------------


@dataclass(slots=True)
class ResealCursor:
    """How far a re-sealing pass has come (sessions are taken in ``session_id`` order)."""

    key_id: str
    #: Every session up to this id is done (``None``: none yet).
    after: str | None = None
    #: The last session of the range being done (``None``: take the next range).
    range_end: str | None = None
    range_size: int = 0
    #: Inside the range, interaction rows up to this ``(session_id, seq)`` are done.
    item: tuple[str, int] | None = None
    sessions_done: int = 0
    rewritten: int = 0
    finished: bool = False


def _reseal_value(envelope: Envelope, text: Any, context: bytes, session_id: object) -> Any:
    """The value sealed under the envelope's active key, or ``None`` if it cannot be read."""
    if type(text) is not str:
        return None
    try:
        plain = envelope.unwrap_text(text, context)
    except Unsealable as exc:
        # Damage stays as it is (check() reports it); the census keeps counting its key.
        logger.warning("session %r: a value does not open, left as it is: %s", session_id, exc)
        return None
    return envelope.wrap(plain.encode(), context).decode()


def reseal_step(db: sqlite3.Connection, p: str, envelope: Envelope, cur: ResealCursor) -> None:
    """Re-seal the next batch of values not sealed with ``cur.key_id``; advance ``cur``.

    Runs inside the caller's write transaction. Only the content columns change: no version,
    timestamp or count does. A value is selected as stale by its prefix in SQL
    (``$sp1:<key id>:``), so values already under the key are never read into Python.

    Raises:
        SealingKeyError: A value is sealed with a key the envelope does not hold (the caller
            rolls back: nothing of this step stays).
    """
    head = f"{_TEXT_PREFIX}{cur.key_id}:"
    width = len(head)
    if cur.range_end is None:
        if cur.after is None:
            found = db.execute(
                f"SELECT session_id FROM {p}sessions ORDER BY session_id LIMIT ?",
                (SESSIONS_PER_STEP,),
            ).fetchall()
        else:
            found = db.execute(
                f"SELECT session_id FROM {p}sessions WHERE session_id > ? "
                "ORDER BY session_id LIMIT ?",
                (cur.after, SESSIONS_PER_STEP),
            ).fetchall()
        if not found:
            cur.finished = True
            return
        low, high = found[0][0], found[-1][0]
        cur.range_end, cur.range_size, cur.item = high, len(found), (low, -1)
        stale = db.execute(
            f"SELECT session_id, metadata FROM {p}sessions WHERE session_id BETWEEN ? AND ? "
            "AND substr(metadata, 1, ?) != ?",
            (low, high, width, head),
        ).fetchall()
        for session_id, text in stale:
            value = _reseal_value(envelope, text, meta_context(session_id), session_id)
            if value is not None:
                db.execute(
                    f"UPDATE {p}sessions SET metadata = ? WHERE session_id = ?", (value, session_id)
                )
                cur.rewritten += 1
    assert cur.item is not None
    items = db.execute(
        f"SELECT session_id, seq, data FROM {p}interactions "
        "WHERE (session_id, seq) > (?, ?) AND session_id <= ? AND substr(data, 1, ?) != ? "
        "ORDER BY session_id, seq LIMIT ?",
        (*cur.item, cur.range_end, width, head, RECORDS_PER_STEP),
    ).fetchall()
    for session_id, seq, text in items:
        value = _reseal_value(envelope, text, item_context(session_id, seq), session_id)
        if value is not None:
            db.execute(
                f"UPDATE {p}interactions SET data = ? WHERE session_id = ? AND seq = ?",
                (value, session_id, seq),
            )
            cur.rewritten += 1
    if len(items) == RECORDS_PER_STEP:
        cur.item = (items[-1][0], items[-1][1])
        return
    cur.after, cur.range_end, cur.item = cur.range_end, None, None
    cur.sessions_done += cur.range_size


def census(db: sqlite3.Connection, p: str) -> dict[str | None, int]:
    """Count metadata and interaction values by the key that sealed them (``None``: unsealed).

    Two ``GROUP BY`` scans over the prefixes; nothing is opened.
    """
    counts: dict[str | None, int] = {}
    for table, column in ((f"{p}sessions", "metadata"), (f"{p}interactions", "data")):
        rows = db.execute(
            f"SELECT CASE WHEN substr({column}, 1, 5) = '{_TEXT_PREFIX}' "
            f"THEN substr({column}, 6, instr(substr({column}, 6), ':') - 1) END AS k, "
            f"count(*) FROM {table} GROUP BY k"
        ).fetchall()
        for key_id, count in rows:
            key = key_id or None  # '' is a compressed, unsealed value
            counts[key] = counts.get(key, 0) + count
    return counts
