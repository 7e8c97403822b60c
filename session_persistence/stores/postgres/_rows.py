"""Rows to sessions and back: the PostgreSQL store's column encoding, defined once.

Timestamps are ``timestamptz`` columns (microsecond precision, as Python's datetimes); ids are
``text`` with a flag column saying which of ``activity_id``/``request_id`` is a ULID (a NUL,
which ``text`` cannot hold, escaped order-preservingly: see :func:`escape_id`); the JSON
parts (``metadata``, ``tags``, each interaction) are PostgreSQL ``json`` values holding the
codec's compact text byte for byte.

Why ``json`` and not ``jsonb``: ``jsonb`` rewrites what it stores (keys reordered, a float such
as ``1e16`` printed back as the integer ``10000000000000000``, a NUL escape refused), so a
session would not come back exactly as written. ``json`` keeps the text and still validates
it and answers ``->``, ``json_typeof`` and ``json_array_elements`` in queries.

Rows read from the database are untrusted (an operator may edit them): every header and
session is rebuilt through :mod:`session_persistence.documents`, which validates each field. A
row that fails raises :class:`~session_persistence.errors.StoreCorruptionError` naming it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson
from ulid import ULID

from ..._envelope import PLAIN, Envelope, Unsealable
from ...documents import document_to_session, header_from_document
from ...errors import InvalidInputError, StoreCorruptionError
from ...models import PersistedSession, SessionHeader
from ...serialization import FORMAT_VERSION, Codec
from ._seal import open_items, open_metadata

__all__ = [
    "COLUMNS",
    "HEADER_SELECT",
    "HeaderRow",
    "changed_columns",
    "escape_id",
    "header_from_row",
    "header_values",
    "interaction_items",
    "put_values",
    "session_from_rows",
]

#: The stored header columns, in the order :func:`header_values` gives them.
COLUMNS = (
    "session_id",
    "processor_id",
    "activity_id",
    "request_id",
    "ulid_ids",
    "created_at",
    "updated_at",
    "last_accessed_at",
    "expires_at",
    "version",
    "metadata",
    "tags",
    "interaction_count",
    "size_bytes",
)

_TIMES = ("created_at", "updated_at", "last_accessed_at", "expires_at")


def _selected(column: str) -> str:
    if column in ("metadata", "tags"):
        return f"s.{column}::text"
    if column in _TIMES:
        # In UTC, whatever the connection's TimeZone: psycopg returns a timestamptz in that
        # zone, where a late UTC time (9999-12-31 23:00) may be a year Python cannot hold.
        return f"s.{column} AT TIME ZONE 'UTC'"
    return f"s.{column}"


#: What a header is read with (alias ``s``): the JSON columns as their exact text, the
#: timestamps as UTC wall-clock times (``timestamp`` values that :func:`_text` reads as UTC).
HEADER_SELECT = ", ".join(_selected(c) for c in COLUMNS)

HeaderRow = tuple[Any, ...]

_ACTIVITY_ULID = 1
_REQUEST_ULID = 2

_UNESCAPE = re.compile("\x01([\x01\x02])")


def escape_id(text: str) -> str:
    r"""An id as a ``text`` column holds it: NUL (which ``text`` cannot hold) escaped.

    ``\x00`` becomes ``\x01\x01`` and ``\x01`` becomes ``\x01\x02``; nothing else
    changes. The escape keeps code-point order (``COLLATE "C"``: sorts and ranges agree with
    Python's), and an id without either character, every ordinary one, is stored as it is.
    """
    if "\x00" in text or "\x01" in text:
        return text.replace("\x01", "\x01\x02").replace("\x00", "\x01\x01")
    return text


def unescape_id(text: Any) -> Any:
    """The id :func:`escape_id` stored (anything not a ``str`` is returned for validation)."""
    if type(text) is str and "\x01" in text:
        return _UNESCAPE.sub(lambda m: "\x00" if m.group(1) == "\x01" else "\x01", text)
    return text


def header_values(header: SessionHeader, metadata_json: str) -> tuple[Any, ...]:
    """Return a header's column values, in :data:`COLUMNS` order."""
    flags = (_ACTIVITY_ULID if type(header.activity_id) is ULID else 0) | (
        _REQUEST_ULID if type(header.request_id) is ULID else 0
    )
    return (
        header.session_id,
        escape_id(header.processor_id),
        escape_id(str(header.activity_id)),
        escape_id(str(header.request_id)),
        flags,
        header.created_at,
        header.updated_at,
        header.last_accessed_at,
        header.expires_at,
        header.version,
        metadata_json,
        orjson.dumps(list(header.tags)).decode(),
        header.interaction_count,
        header.size_bytes,
    )


def changed_columns(
    old: SessionHeader, new: SessionHeader, metadata_json: str
) -> tuple[tuple[str, ...], list[Any]]:
    """The columns (and values) of ``new`` that differ from ``old``'s, ``version`` always.

    A replace sets only these: every column named in ``SET`` costs encoding and sending, and
    an indexed one an index entry, changed or not. ``metadata`` is always set (comparing the
    dicts costs about what sending it does).
    """
    columns = ["version", "updated_at", "last_accessed_at", "metadata"]
    values: list[Any] = [new.version, new.updated_at, new.last_accessed_at, metadata_json]
    if new.expires_at != old.expires_at:
        columns.append("expires_at")
        values.append(new.expires_at)
    if new.tags != old.tags:
        columns.append("tags")
        values.append(orjson.dumps(list(new.tags)).decode())
    if new.interaction_count != old.interaction_count:
        columns.append("interaction_count")
        values.append(new.interaction_count)
    if new.size_bytes != old.size_bytes:
        columns.append("size_bytes")
        values.append(new.size_bytes)
    if (new.processor_id, new.activity_id, new.request_id, new.created_at) != (
        old.processor_id,
        old.activity_id,
        old.request_id,
        old.created_at,
    ):  # (never, through the API; a restore goes through the batch path)
        full = header_values(new, metadata_json)
        return COLUMNS[1:], list(full[1:])
    return tuple(columns), values


def put_values(header: SessionHeader, data: bytes) -> tuple[tuple[Any, ...], list[str]]:
    """Split an encoded session document into its header columns and interaction rows."""
    document = orjson.loads(data)
    metadata = orjson.dumps(document["metadata"]).decode()
    interactions = [orjson.dumps(item).decode() for item in document["interactions"]]
    return header_values(header, metadata), interactions


def _text(moment: Any, column: str) -> str | None:
    if moment is None:
        return None
    if not isinstance(moment, datetime):
        raise InvalidInputError(f"{column} must be a timestamp with a time zone")
    if moment.tzinfo is None:  # (read AT TIME ZONE 'UTC': see HEADER_SELECT)
        return moment.replace(tzinfo=UTC).isoformat()
    return moment.astimezone(UTC).isoformat()


def _document(row: HeaderRow, interactions: Any, envelope: Envelope) -> dict[str, Any]:
    session_id, flags = row[0], row[4]
    processor_id, activity_id, request_id = (unescape_id(value) for value in row[1:4])
    if type(flags) is not int:
        raise InvalidInputError("ulid_ids must be an integer")
    return {
        "format": FORMAT_VERSION,
        "session_id": session_id,
        "processor_id": processor_id,
        "activity_id": {"$ulid": activity_id} if flags & _ACTIVITY_ULID else activity_id,
        "request_id": {"$ulid": request_id} if flags & _REQUEST_ULID else request_id,
        "created_at": _text(row[5], "created_at"),
        "updated_at": _text(row[6], "updated_at"),
        "last_accessed_at": _text(row[7], "last_accessed_at"),
        "expires_at": _text(row[8], "expires_at"),
        "version": row[9],
        "metadata": _json(open_metadata(envelope, str(session_id), row[10]), "metadata"),
        "tags": _json(row[11], "tags"),
        "interactions": interactions,
    }


def _json(text: Any, column: str) -> Any:
    if type(text) is not str:
        raise InvalidInputError(f"{column} must be JSON text")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"{column} is not valid JSON: {exc}") from exc


def _corrupt(row: HeaderRow, where: str, exc: Exception) -> StoreCorruptionError:
    return StoreCorruptionError(
        f"session {row[0]!r} in {where} is damaged ({exc}); restore it from a backup or delete it",
        where,
    )


def header_from_row(
    row: HeaderRow, codec: Codec, where: str, envelope: Envelope = PLAIN
) -> SessionHeader:
    """Rebuild and validate a header from its columns (:data:`HEADER_SELECT`).

    Args:
        row: The header columns.
        codec: The codec.
        where: The tables, for messages.
        envelope: Opens a sealed or compressed metadata value (see :mod:`._seal`).

    Raises:
        StoreCorruptionError: A column does not hold what it must (or a wrapped value is
            damaged).
        SealingKeyError: The metadata is sealed with a key the store was not given.
    """
    try:
        count, size = row[12], row[13]
        if type(count) is not int or count < 0 or type(size) is not int or size < 0:
            raise InvalidInputError("interaction_count and size_bytes must be integers >= 0")
        return header_from_document(
            _document(row, [], envelope), codec, interaction_count=count, size_bytes=size
        )
    except (InvalidInputError, ValueError, Unsealable) as exc:
        raise _corrupt(row, where, exc) from exc


def interaction_items(
    row: HeaderRow, interactions: Any, where: str, envelope: Envelope = PLAIN
) -> list[Any]:
    """A session's interactions as JSON values, from their rows (opened if wrapped).

    Args:
        row: The header columns (:data:`HEADER_SELECT`).
        interactions: The session's interaction rows in order, as one JSON array's text
            (``json_agg`` of them).
        where: The tables, for messages.
        envelope: Opens sealed or compressed rows (see :mod:`._seal`).

    Raises:
        StoreCorruptionError: The rows are not a JSON array, a wrapped row is damaged, or
            the rows do not number ``interaction_count``.
        SealingKeyError: A row is sealed with a key the store was not given.
    """
    try:
        opened = open_items(envelope, str(row[0]), interactions)
        items = opened if type(opened) is list else _json(opened, "interactions")
        if type(items) is not list:
            raise InvalidInputError("interactions must be a JSON array")
        if row[12] != len(items):
            raise InvalidInputError(
                f"interaction_count is {row[12]} but {len(items)} interaction rows exist"
            )
    except (InvalidInputError, ValueError, Unsealable) as exc:
        raise _corrupt(row, where, exc) from exc
    return items


def session_from_rows(
    row: HeaderRow, interactions: Any, codec: Codec, where: str, envelope: Envelope = PLAIN
) -> PersistedSession:
    """Rebuild and validate a session from its columns and its interactions.

    Args:
        row: The header columns (:data:`HEADER_SELECT`).
        interactions: The session's interaction rows in order, as one JSON array's text
            (``json_agg`` of them), or as :func:`interaction_items` returned them.
        codec: The codec.
        where: The tables, for messages.
        envelope: Opens sealed or compressed values (see :mod:`._seal`).

    Raises:
        StoreCorruptionError: A column or an interaction row does not hold what it must
            (a wrapped one is damaged), or the rows do not number ``interaction_count``.
        SealingKeyError: A value is sealed with a key the store was not given.
    """
    items = (
        interactions
        if type(interactions) is list
        else interaction_items(row, interactions, where, envelope)
    )
    try:
        return document_to_session(_document(row, items, envelope), codec)
    except (InvalidInputError, ValueError, Unsealable) as exc:
        raise _corrupt(row, where, exc) from exc
