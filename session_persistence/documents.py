"""Session documents: the JSON form of a :class:`PersistedSession`, and its validation.

Every store that writes sessions as JSON (the filesystem store's files, the SQLite store's
columns, backups, exports) uses these functions, so the schema is defined once::

    {
      "format": 1,
      "session_id": "01JD...",            # validated: ULID or [A-Za-z0-9_-]{1,128}
      "processor_id": "my-processor",
      "activity_id": {"$ulid": "01JD..."}, # tagged value: a ULID, or a plain string
      "request_id": {"$ulid": "01JD..."},
      "created_at": "2026-11-21T09:30:00.123456+00:00",   # UTC, ISO 8601
      "updated_at": "...", "last_accessed_at": "...", "expires_at": "..." | null,
      "version": 3,
      "metadata": {...},                   # tagged values (see serialization)
      "tags": ["a", "b"],
      "interactions": [
        {"request": {"event": ..., "sender": "user" | null, "recipients": {"$set": [...]} | null},
         "responses": [{"event": ..., "sender": ..., "recipients": ...}]}
      ]
    }

Values are encoded at the depth they have in this document (``metadata`` inside one object,
an event four or five levels down), also when an interaction is encoded alone to be appended,
so whatever is accepted can always be written as a whole document (JSON stops at
:data:`~session_persistence.serialization.MAX_DEPTH` levels).

Documents read back are untrusted: :func:`document_to_session` checks every field's type and
the session id, and refuses a newer ``format`` with a message saying to upgrade.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from ulid import ULID

from ._ids import is_valid_session_id, ulid_from_str
from .errors import InvalidSessionIdError, SerializationError
from .models import Interaction, InteractionMessage, PersistedSession, SessionHeader
from .serialization import FORMAT_VERSION, Codec

__all__ = [
    "document_to_session",
    "header_of",
    "interaction_from_json",
    "interaction_to_json",
    "session_to_document",
]


def session_to_document(session: PersistedSession, codec: Codec) -> dict[str, Any]:
    """Return the JSON-native document of ``session``.

    Raises:
        SerializationError: A value inside cannot be encoded; ``.path`` names it.
    """
    return {
        "format": FORMAT_VERSION,
        "session_id": session.session_id,
        "processor_id": session.processor_id,
        "activity_id": _encode_id(session.activity_id, "activity_id"),
        "request_id": _encode_id(session.request_id, "request_id"),
        "created_at": session.created_at.isoformat(),
        "updated_at": session.updated_at.isoformat(),
        "last_accessed_at": session.last_accessed_at.isoformat(),
        "expires_at": None if session.expires_at is None else session.expires_at.isoformat(),
        "version": session.version,
        "metadata": codec.to_json_value(session.metadata, "metadata", depth=1),
        "tags": list(session.tags),
        "interactions": [
            interaction_to_json(interaction, codec, f"interactions[{index}]")
            for index, interaction in enumerate(session.interactions)
        ],
    }


#: Containers around an interaction in a session document: the document and its array.
_INTERACTION_DEPTH = 2


def interaction_to_json(interaction: Interaction, codec: Codec, path: str) -> dict[str, Any]:
    """Return the JSON-native form of one interaction, as it sits in a session document.

    Raises:
        SerializationError: Not an :class:`Interaction`, or a value inside cannot be encoded.
    """
    if type(interaction) is not Interaction:
        raise SerializationError(f"expected an Interaction, got {type(interaction).__name__}", path)
    if not isinstance(interaction.responses, list):
        raise SerializationError("responses must be a list", f"{path}.responses")
    return {
        # request: {event}: inside the interaction; responses: [{event}]: one array more.
        "request": _message_to_json(
            interaction.request, codec, f"{path}.request", _INTERACTION_DEPTH + 2
        ),
        "responses": [
            _message_to_json(response, codec, f"{path}.responses[{index}]", _INTERACTION_DEPTH + 3)
            for index, response in enumerate(interaction.responses)
        ],
    }


def _message_to_json(
    message: InteractionMessage, codec: Codec, path: str, depth: int
) -> dict[str, Any]:
    if type(message) is not InteractionMessage:
        raise SerializationError(
            f"expected an InteractionMessage, got {type(message).__name__}", path
        )
    if message.sender is not None and type(message.sender) is not str:
        raise SerializationError("sender must be a str or None", f"{path}.sender")
    return {
        "event": codec.to_json_value(message.event, f"{path}.event", depth=depth),
        "sender": message.sender,
        "recipients": codec.to_json_value(message.recipients, f"{path}.recipients", depth=depth),
    }


def _encode_id(value: ULID | str, path: str) -> Any:
    if type(value) is str:
        return value
    if type(value) is ULID:
        return {"$ulid": _ulid_text(value)}
    raise SerializationError(f"expected a ULID or str, got {type(value).__name__}", path)


@functools.lru_cache(maxsize=4096)
def _ulid_text(value: ULID) -> str:
    """``str(value)``, remembered: a session's ids are encoded at every write (base32 each time)."""
    return str(value)


def document_to_session(document: Any, codec: Codec) -> PersistedSession:
    """Validate a document read from storage and rebuild its session.

    Raises:
        SerializationError: A field is missing or has the wrong type, or the document was
            written by a newer format version.
        InvalidSessionIdError: The session id is not valid.
    """
    _check_document_format(document)
    session_id = _session_id(document)
    interactions = _field(document, "interactions", list)
    metadata = _metadata(document, codec)
    return PersistedSession(
        session_id=session_id,
        processor_id=_field(document, "processor_id", str),
        activity_id=_decode_id(document, "activity_id"),
        request_id=_decode_id(document, "request_id"),
        interactions=[
            interaction_from_json(item, codec, f"interactions[{index}]")
            for index, item in enumerate(interactions)
        ],
        created_at=_timestamp(document, "created_at"),
        updated_at=_timestamp(document, "updated_at"),
        last_accessed_at=_timestamp(document, "last_accessed_at"),
        expires_at=_timestamp(document, "expires_at", optional=True),
        metadata=metadata,
        tags=_tags(document),
        version=_version(document),
    )


def header_from_document(
    document: dict[str, Any], codec: Codec, *, interaction_count: int, size_bytes: int
) -> SessionHeader:
    """Validate a document's header fields and build its header directly.

    The checks are those of :func:`document_to_session`; no session, no interactions and no
    copies are made (the index's fast path).

    Raises:
        SerializationError: A field is missing or has the wrong type.
        InvalidSessionIdError: The session id is not valid.
    """
    return SessionHeader(
        session_id=_session_id(document),
        processor_id=_field(document, "processor_id", str),
        activity_id=_decode_id(document, "activity_id"),
        request_id=_decode_id(document, "request_id"),
        created_at=_timestamp(document, "created_at"),
        updated_at=_timestamp(document, "updated_at"),
        expires_at=_timestamp(document, "expires_at", optional=True),
        last_accessed_at=_timestamp(document, "last_accessed_at"),
        metadata=_metadata(document, codec),
        tags=tuple(_tags(document)),
        version=_version(document),
        interaction_count=interaction_count,
        size_bytes=size_bytes,
    )


def _session_id(document: dict[str, Any]) -> str:
    session_id = document.get("session_id")
    if not is_valid_session_id(session_id):
        raise InvalidSessionIdError(session_id)
    assert isinstance(session_id, str)
    return session_id


def _metadata(document: dict[str, Any], codec: Codec) -> dict[str, Any]:
    metadata = codec.from_json_value(_field(document, "metadata", dict), "metadata", depth=1)
    if type(metadata) is not dict or not all(type(key) is str for key in metadata):
        raise SerializationError("metadata must be an object", "metadata")
    return metadata


def _check_document_format(document: Any) -> None:
    if type(document) is not dict:
        raise SerializationError("a session document must be a JSON object")
    version = document.get("format")
    if type(version) is not int or version < 1:
        raise SerializationError("missing or invalid format version", "format")
    if version > FORMAT_VERSION:
        raise SerializationError(
            f"written in format {version}, newer than this library reads ({FORMAT_VERSION}); "
            "upgrade session-persistence",
            "format",
        )


def interaction_from_json(data: Any, codec: Codec, path: str) -> Interaction:
    """Validate and rebuild one interaction from its JSON-native form.

    Raises:
        SerializationError: A field is missing or of the wrong type.
    """
    if type(data) is not dict:
        raise SerializationError("an interaction must be an object", path)
    responses = data.get("responses")
    if type(responses) is not list:
        raise SerializationError("responses must be an array", f"{path}.responses")
    return Interaction(  # (at the depths interaction_to_json writes them)
        request=_message_from_json(
            data.get("request"), codec, f"{path}.request", _INTERACTION_DEPTH + 2
        ),
        responses=[
            _message_from_json(item, codec, f"{path}.responses[{index}]", _INTERACTION_DEPTH + 3)
            for index, item in enumerate(responses)
        ],
    )


def _message_from_json(data: Any, codec: Codec, path: str, depth: int) -> InteractionMessage:
    if type(data) is not dict or "event" not in data:
        raise SerializationError("a message must be an object with an event", path)
    sender = data.get("sender")
    if sender is not None and type(sender) is not str:
        raise SerializationError("sender must be a string or null", f"{path}.sender")
    return InteractionMessage(
        event=codec.from_json_value(data["event"], f"{path}.event", depth=depth),
        sender=sender,
        recipients=codec.from_json_value(data.get("recipients"), f"{path}.recipients", depth=depth),
    )


def header_of(session: PersistedSession, size_bytes: int) -> SessionHeader:
    """Return the :class:`SessionHeader` of ``session`` (sharing its metadata and tags)."""
    return SessionHeader(
        session_id=session.session_id,
        processor_id=session.processor_id,
        activity_id=session.activity_id,
        request_id=session.request_id,
        created_at=session.created_at,
        updated_at=session.updated_at,
        expires_at=session.expires_at,
        last_accessed_at=session.last_accessed_at,
        metadata=session.metadata,
        tags=tuple(session.tags),
        version=session.version,
        interaction_count=len(session.interactions),
        size_bytes=size_bytes,
    )


def _field(document: dict[str, Any], name: str, kind: type[Any]) -> Any:
    value = document.get(name)
    if type(value) is not kind:
        raise SerializationError(f"{name} must be a {kind.__name__}", name)
    return value


def _decode_id(document: dict[str, Any], name: str) -> ULID | str:
    raw = document.get(name)
    if type(raw) is str:
        return raw
    if type(raw) is dict and set(raw) == {"$ulid"} and type(raw["$ulid"]) is str:
        try:
            return ulid_from_str(raw["$ulid"])
        except ValueError as exc:
            raise SerializationError(f"bad ULID: {exc}", name) from exc
    raise SerializationError("must be a string or a $ulid", name)


def _timestamp(document: dict[str, Any], name: str, *, optional: bool = False) -> Any:
    raw = document.get(name)
    if raw is None and optional:
        return None
    if type(raw) is not str:
        raise SerializationError("must be an ISO 8601 timestamp", name)
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise SerializationError(f"bad timestamp: {exc}", name) from exc
    if moment.utcoffset() is None:
        raise SerializationError("timestamp must carry a UTC offset", name)
    return moment


def _tags(document: dict[str, Any]) -> list[str]:
    tags = document.get("tags")
    if type(tags) is not list or not all(type(tag) is str for tag in tags):
        raise SerializationError("tags must be an array of strings", "tags")
    return tags


def _version(document: dict[str, Any]) -> int:
    version = document.get("version")
    if type(version) is not int or version < 1:
        raise SerializationError("version must be an integer >= 1", "version")
    return version
