"""Rows to sessions and back: the SQLite store's column encoding, defined once.

Rows read from a database file are untrusted (a file may be damaged or edited by hand): every
header and session is rebuilt through :func:`~session_persistence.documents.document_to_session`,
which validates each field and the session id. A row that fails raises
:class:`~session_persistence.errors.StoreCorruptionError` naming the session.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from ulid import ULID

from ...documents import document_to_session, header_from_document
from ...errors import InvalidInputError, StoreCorruptionError
from ...models import PersistedSession, SessionHeader
from ...serialization import FORMAT_VERSION, Codec

__all__ = [
    "HEADER_COLUMNS",
    "V1_COLUMNS",
    "HeaderRow",
    "accessed",
    "document_size",
    "header_from_row",
    "header_values",
    "put_values",
    "session_from_rows",
    "timestamp",
]

#: The columns a header is read from, in the order :func:`header_from_row` expects.
HEADER_COLUMNS = (
    "session_id, processor_id, activity_id, request_id, ulid_ids, created_at, updated_at, "
    "last_accessed_at, expires_at, version, metadata, tags, interaction_count, size_bytes"
)

#: The header columns of schema version 1 (the last two are not there yet).
V1_COLUMNS = HEADER_COLUMNS.rsplit(", interaction_count", 1)[0]

HeaderRow = tuple[Any, ...]

_ACTIVITY_ULID = 1
_REQUEST_ULID = 2


def timestamp(moment: datetime) -> str:
    """Return the fixed-width UTC text stored for ``moment`` (sorts as the datetimes do)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def header_values(header: SessionHeader, metadata_json: str) -> tuple[Any, ...]:
    """Return a header's column values, in :data:`HEADER_COLUMNS` order."""
    flags = (_ACTIVITY_ULID if type(header.activity_id) is ULID else 0) | (
        _REQUEST_ULID if type(header.request_id) is ULID else 0
    )
    return (
        header.session_id,
        header.processor_id,
        str(header.activity_id),
        str(header.request_id),
        flags,
        timestamp(header.created_at),
        timestamp(header.updated_at),
        timestamp(header.last_accessed_at),
        None if header.expires_at is None else timestamp(header.expires_at),
        header.version,
        metadata_json,
        orjson.dumps(list(header.tags)).decode(),
        header.interaction_count,
        header.size_bytes,
    )


def put_values(header: SessionHeader, data: bytes) -> tuple[tuple[Any, ...], list[str]]:
    """Split an encoded session document into its header columns and interaction rows."""
    document = orjson.loads(data)
    metadata = orjson.dumps(document["metadata"]).decode()
    interactions = [orjson.dumps(item).decode() for item in document["interactions"]]
    return header_values(header, metadata), interactions


def _document(row: HeaderRow, interactions: Any) -> dict[str, Any]:
    (session_id, processor_id, activity_id, request_id, flags) = row[:5]
    if type(flags) is not int:
        raise InvalidInputError("ulid_ids must be an integer")
    return {
        "format": FORMAT_VERSION,
        "session_id": session_id,
        "processor_id": processor_id,
        "activity_id": {"$ulid": activity_id} if flags & _ACTIVITY_ULID else activity_id,
        "request_id": {"$ulid": request_id} if flags & _REQUEST_ULID else request_id,
        "created_at": row[5],
        "updated_at": row[6],
        "last_accessed_at": row[7],
        "expires_at": row[8],
        "version": row[9],
        "metadata": _json(row[10], "metadata"),
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


def _corrupt(row: HeaderRow, path: str, exc: Exception) -> StoreCorruptionError:
    return StoreCorruptionError(
        f"session {row[0]!r} in {path} is damaged ({exc}); restore it from a backup or delete it",
        path,
    )


def document_size(row: HeaderRow, interactions: Sequence[str]) -> int:
    """Return the length of the compact JSON document that a row and its interactions form.

    Raises:
        StoreCorruptionError: A column or row is not valid JSON.
    """
    try:
        items = _json("[" + ",".join(interactions) + "]", "interactions")
        return len(orjson.dumps(_document(row, items)))
    except InvalidInputError as exc:
        raise _corrupt(row, "the database", exc) from exc


def header_from_row(row: HeaderRow, codec: Codec, path: str) -> SessionHeader:
    """Rebuild and validate a header from its columns.

    Raises:
        StoreCorruptionError: A column does not hold what it must.
    """
    try:
        count, size = row[12], row[13]
        if type(count) is not int or count < 0 or type(size) is not int or size < 0:
            raise InvalidInputError("interaction_count and size_bytes must be integers >= 0")
        return header_from_document(
            _document(row, []), codec, interaction_count=count, size_bytes=size
        )
    except (InvalidInputError, ValueError) as exc:
        raise _corrupt(row, path, exc) from exc


def accessed(row: HeaderRow, when: str | None) -> HeaderRow:
    """Return ``row`` with ``last_accessed_at`` moved forward to ``when`` (UTC text), if later.

    The texts are fixed-width UTC, so they compare as the datetimes do. A damaged column is
    left as it is, for the decoding to report.
    """
    if when is not None and type(row[7]) is str and when > row[7]:
        return (*row[:7], when, *row[8:])
    return row


def session_from_rows(
    row: HeaderRow, interactions: Sequence[str], codec: Codec, path: str
) -> PersistedSession:
    """Rebuild and validate a session from its columns and its interaction rows, in order.

    Raises:
        StoreCorruptionError: A column or an interaction row does not hold what it must, or
            the rows do not number ``interaction_count``.
    """
    try:
        if not all(type(item) is str for item in interactions):
            raise InvalidInputError("interaction rows must be JSON text")
        items = _json("[" + ",".join(interactions) + "]", "interactions")
        if row[12] != len(items):
            raise InvalidInputError(
                f"interaction_count is {row[12]} but {len(items)} interaction rows exist"
            )
        return document_to_session(_document(row, items), codec)
    except (InvalidInputError, ValueError) as exc:
        raise _corrupt(row, path, exc) from exc
