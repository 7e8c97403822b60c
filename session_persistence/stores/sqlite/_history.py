"""A slice of one session's history, read as rows: what ``get_interactions`` costs on SQLite.

Interactions are rows of ``{prefix}interactions`` keyed ``(session_id, seq)`` (schema v3), so a
slice is pushed into SQL: one statement reads the session's header row joined with only the
chosen interaction rows (``ORDER BY seq [DESC] LIMIT ? OFFSET ?`` on the primary key), so it is
read at one committed instant and only the slice's rows are decoded. ``OFFSET`` still steps over
the skipped keys in the b-tree (no row is decoded or returned for them). On a sealed store only
the slice's rows are opened, each with its position (see :mod:`._seal`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from ..._envelope import Envelope, Unsealable
from ...documents import interaction_from_json
from ...errors import InvalidInputError, SerializationError, StoreCorruptionError
from ...models import Interaction
from ...serialization import Codec
from .._history import HistoryWindow
from ._rows import HEADER_COLUMNS, HeaderRow
from ._seal import open_item

__all__ = ["HistoryStatements", "decode_slice", "history_rows"]

_COLUMNS = [column.strip() for column in HEADER_COLUMNS.split(",")]


class HistoryStatements:
    """The two slice statements (oldest first, newest first) of one table prefix."""

    def __init__(self, p: str) -> None:
        def statement(order: str) -> str:
            return (
                "SELECT "
                + ", ".join(f"s.{c}" for c in _COLUMNS)
                + f", i.data FROM {p}sessions s LEFT JOIN ("
                f"SELECT seq, data FROM {p}interactions WHERE session_id = ?1 "
                f"ORDER BY seq {order} LIMIT ?2 OFFSET ?3"
                f") i ON 1 WHERE s.session_id = ?1 ORDER BY i.seq {order}"
            )

        self.oldest_first = statement("ASC")
        self.newest_first = statement("DESC")


def history_rows(
    db: sqlite3.Connection, sql: HistoryStatements, session_id: str, window: HistoryWindow
) -> tuple[HeaderRow, list[Any]] | None:
    """Read a session's header row and the window's interaction texts, in one statement.

    Returns ``None`` if there is no such session.
    """
    statement = sql.newest_first if window.newest_first else sql.oldest_first
    limit = -1 if window.limit is None else window.limit
    rows = db.execute(statement, (session_id, limit, window.offset)).fetchall()
    if not rows:
        return None
    width = len(_COLUMNS)
    texts = [row[width] for row in rows]
    if texts == [None]:
        texts = []
    return rows[0][:width], texts


def decode_slice(
    row: HeaderRow,
    texts: Sequence[Any],
    window: HistoryWindow,
    path: str,
    codec: Codec,
    *,
    envelope: Envelope,
) -> list[Interaction]:
    """Open, validate and rebuild the window's interactions (in the window's order).

    Raises:
        StoreCorruptionError: A row is not a valid interaction (or does not open), or the rows
            found are not as many as ``interaction_count`` says the window holds.
        SealingKeyError: A row is sealed with a key ``envelope`` does not hold.
    """
    try:
        count = row[12]
        if type(count) is not int or count < 0:
            raise InvalidInputError("interaction_count must be an integer >= 0")
        start, stop = window.bounds(count)
        if len(texts) != stop - start:
            raise InvalidInputError(
                f"interaction_count is {count} but the rows do not hold positions "
                f"{start} to {stop - 1}"
            )
        found: list[Interaction] = []
        for index, text in enumerate(texts):
            position = stop - 1 - index if window.newest_first else start + index
            where = f"interactions[{position}]"
            if type(text) is not str:
                raise InvalidInputError(f"{where} must be JSON text")
            try:  # (open_item refuses a row in clear when the store seals everything)
                plain = open_item(envelope, row[0], position, text)
            except Unsealable as exc:
                raise InvalidInputError(f"{where}: {exc}") from exc
            try:
                data = orjson.loads(plain)
            except orjson.JSONDecodeError as exc:
                raise InvalidInputError(f"{where} is not valid JSON: {exc}") from exc
            found.append(interaction_from_json(data, codec, where))
        return found
    except (InvalidInputError, SerializationError, ValueError) as exc:
        raise StoreCorruptionError(
            f"session {row[0]!r} in {path} is damaged ({exc}); restore it from a backup or "
            "delete it",
            path,
        ) from exc
