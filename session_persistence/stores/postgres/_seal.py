"""Sealed and compressed values in the PostgreSQL store's ``json`` columns.

What is wrapped (see :mod:`session_persistence._envelope`): ``{p}sessions.metadata`` (context
``b"meta:<session_id>"``) and each ``{p}interactions.data`` (context
``b"item:<session_id>:<seq>"``: a row's ``seq`` is its position, which never changes while
the row exists; a history rewritten from position ``n`` rewrites every row from ``n``, so a
row moved to another position, or to another session, fails authentication). Every other
column is a header field and stays in clear: ids, ``processor_id``, the timestamps,
``version``, ``tags``, ``interaction_count``, ``size_bytes``, ``incarnation``.

A wrapped record is ASCII without quotes or backslashes, so the columns keep their ``json``
type and hold it as a JSON *string*: ``"$sp1:k1:…"``. No migration is needed, and one table
set holds plain and wrapped values side by side (sealing turned on later, a rotation
halfway). A plain value is never a JSON string (metadata is an object, an interaction is an
object), so ``"$sp1:`` at the start of a column's text tells a wrapped value. :data:`WRAPPED`
is that prefix, for SQL that tells them apart (``left(metadata::text, 6) = '"$sp1:'``).

Reading a wrapped value raises :class:`~session_persistence._envelope.Unsealable` for damage
(the callers in :mod:`._rows` turn it into ``StoreCorruptionError`` naming the session) and
:class:`~session_persistence.errors.SealingKeyError` for a key the store was not given, which
nobody catches: it is not damage.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..._envelope import Envelope, Unsealable

__all__ = [
    "WRAPPED",
    "item_context",
    "meta_context",
    "open_item",
    "open_items",
    "open_metadata",
    "seal_item",
    "seal_items",
    "seal_metadata",
    "stale_prefix",
]

#: How a wrapped value's column text starts (the JSON string's quote, then the envelope's).
WRAPPED = '"$sp1:'
_ENVELOPE = "$sp1:"


def meta_context(session_id: str) -> bytes:
    """The associated data of a session's metadata value."""
    return b"meta:" + session_id.encode()


def item_context(session_id: str, seq: int) -> bytes:
    """The associated data of the interaction row at position ``seq``."""
    return b"item:%s:%d" % (session_id.encode(), seq)


def _stored(wrapped: str) -> str:
    """A wrapped record as a ``json`` column holds it (a plain one as it is)."""
    return f'"{wrapped}"' if wrapped.startswith(_ENVELOPE) else wrapped


def seal_metadata(envelope: Envelope, session_id: str, text: str) -> str:
    """The metadata column's value for the metadata JSON ``text``."""
    if not envelope.active:
        return text
    return _stored(envelope.wrap_text(text, meta_context(session_id)))


def seal_item(envelope: Envelope, session_id: str, seq: int, text: str) -> str:
    """The ``data`` column's value for the interaction JSON ``text`` at position ``seq``."""
    if not envelope.active:
        return text
    return _stored(envelope.wrap_text(text, item_context(session_id, seq)))


def seal_items(envelope: Envelope, session_id: str, first: int, texts: list[str]) -> list[str]:
    """:func:`seal_item` for rows at positions ``first``, ``first + 1``, ..."""
    if not envelope.active:
        return texts
    return [seal_item(envelope, session_id, first + k, text) for k, text in enumerate(texts)]


def open_metadata(envelope: Envelope, session_id: str, column: Any) -> Any:
    """The metadata JSON text a column holds (anything not wrapped is returned as it is).

    Raises:
        Unsealable: The value is damaged.
        SealingKeyError: It is sealed with a key the store was not given.
    """
    if type(column) is not str or not column.startswith(WRAPPED):
        if type(column) is str:
            envelope.refuse_clear()
        return column
    return envelope.unwrap_text(_inner(column), meta_context(session_id))


def open_items(envelope: Envelope, session_id: str, aggregated: Any) -> Any:
    """A session's interactions, from their rows' values as one JSON array's text.

    Returns the text as it is when no row is wrapped (the caller parses it), else the parsed
    list with each wrapped row opened and parsed. A row's position in the array is its
    ``seq`` (rows are ``0 .. n - 1``; one missing or moved fails authentication).

    Raises:
        Unsealable: A row is damaged.
        SealingKeyError: A row is sealed with a key the store was not given.
    """
    if type(aggregated) is not str or WRAPPED not in aggregated:
        if type(aggregated) is str and aggregated.strip() not in ("", "[]", "null"):
            envelope.refuse_clear()
        return aggregated
    try:
        items = orjson.loads(aggregated)
    except orjson.JSONDecodeError:
        return aggregated  # (the caller reports it)
    if type(items) is not list:
        return aggregated
    for seq, item in enumerate(items):
        if type(item) is str and item.startswith(_ENVELOPE):
            text = envelope.unwrap_text(item, item_context(session_id, seq))
            try:
                items[seq] = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise Unsealable(f"interaction {seq} opens to text that is not JSON") from exc
        else:
            envelope.refuse_clear()
    return items


def open_item(envelope: Envelope, session_id: str, seq: int, column: str) -> str:
    """One interaction row's JSON text (``data::text``), opened if wrapped."""
    if not column.startswith(WRAPPED):
        envelope.refuse_clear()
        return column
    return envelope.unwrap_text(_inner(column), item_context(session_id, seq))


def _inner(column: str) -> str:
    """The envelope inside a wrapped column's JSON string (damaged if it is not one)."""
    if len(column) < 2 or column[-1] != '"' or "\\" in column:
        raise Unsealable("a wrapped value that is not a plain JSON string")
    return column[1:-1]


def stale_prefix(key_id: str, check: str) -> str:
    """How a value sealed with ``key_id`` starts (as column text); others are stale.

    The key's check is part of it: a value sealed under the same id with another secret is
    not this key's (re-sealing it raises ``SealingKeyError``).
    """
    return f"{WRAPPED}{key_id}:{check}:"
