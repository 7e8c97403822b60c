"""Fast deep copies of session values, so nothing returned or kept aliases anything else.

``copy.deepcopy`` is general but slow; sessions are mostly JSON-like trees of immutable leaves
(str, int, ULID, datetime, ...), so this walks lists, dicts, sets and tuples itself, shares the
immutable leaves, and falls back to ``copy.deepcopy`` only for other objects (registered user
types).

Copying is where values enter a store (and a ``DefaultSession``), so it is also the first
guard: the walk counts its depth, and a value nesting more than ``MAX_DEPTH`` levels, which no
document can hold, stops it before Python's recursion limit would. A value that contains itself
nests without end, so it stops there too, and :func:`~session_persistence.serialization.
nesting_error` then tells the two apart: either way a ``SerializationError`` naming the path,
never a ``RecursionError``.
"""

from __future__ import annotations

import copy
import enum
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from ulid import ULID

from .errors import SerializationError
from .models import Interaction, InteractionMessage, PersistedSession, SessionHeader
from .serialization import DEPTH_MESSAGE, MAX_DEPTH, nesting_error

_IMMUTABLE: frozenset[type[Any]] = frozenset(
    {str, int, float, bool, type(None), bytes, frozenset, uuid.UUID, Decimal}
    | {ULID, datetime, date, time, timedelta}
)


class _TooDeep(Exception):
    """Internal: the copy went past ``MAX_DEPTH`` levels."""


def clone_value(value: Any, path: str = "") -> Any:
    """Return a deep copy of ``value`` that shares only immutable parts.

    Args:
        value: The value to copy.
        path: Where ``value`` sits in its session, the prefix of an error's path.

    Raises:
        SerializationError: ``value`` contains itself, or nests more than ``MAX_DEPTH``
            levels; ``.path`` says where.
    """
    if type(value) in _IMMUTABLE:
        return value
    try:
        return _clone(value, 0)
    except _TooDeep:
        pass
    raise nesting_error(value, path) or SerializationError(DEPTH_MESSAGE, path)


def _clone(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind in _IMMUTABLE:
        return value
    # Leaves are tested inline: most values are, and a call per leaf is the main cost.
    if kind is dict:
        if depth >= MAX_DEPTH:
            raise _TooDeep
        depth += 1
        return {
            key: item if type(item) in _IMMUTABLE else _clone(item, depth)
            for key, item in value.items()
        }
    if kind is list:
        if depth >= MAX_DEPTH:
            raise _TooDeep
        depth += 1
        return [item if type(item) in _IMMUTABLE else _clone(item, depth) for item in value]
    if kind is set:
        return set(value)  # members are hashable, hence treated as immutable
    if kind is tuple:
        if depth >= MAX_DEPTH:
            raise _TooDeep
        return tuple(_clone(item, depth + 1) for item in value)
    if kind is bytearray:
        return bytearray(value)
    if isinstance(value, enum.Enum):
        return value
    if kind is PersistedSession:
        return clone_session(value)
    try:
        return copy.deepcopy(value)
    except RecursionError as exc:  # a registered type nesting without end: too deep
        raise _TooDeep from exc


def _message(message: InteractionMessage) -> InteractionMessage:
    """Copy a message; raises ``_TooDeep`` (paths are worked out only when one is needed)."""
    return InteractionMessage(
        event=_clone(message.event, 0),
        sender=message.sender,
        recipients=None if message.recipients is None else _clone(message.recipients, 0),
    )


def clone_message(message: InteractionMessage, path: str = "") -> InteractionMessage:
    """Return a deep copy of an interaction message.

    Raises:
        SerializationError: See :func:`clone_value`; ``path`` is the message's path.
    """
    try:
        return _message(message)
    except _TooDeep:
        pass
    clone_value(message.event, f"{path}.event".removeprefix("."))  # raises, naming the path
    clone_value(message.recipients, f"{path}.recipients".removeprefix("."))
    raise AssertionError("unreachable: one of the fields is too deep")  # pragma: no cover


def clone_interaction(interaction: Interaction, index: int = 0) -> Interaction:
    """Return a deep copy of an interaction, the ``index``-th of its session (for errors).

    Raises:
        SerializationError: See :func:`clone_value`.
    """
    try:
        return Interaction(
            request=_message(interaction.request),
            responses=[_message(response) for response in interaction.responses],
        )
    except _TooDeep:
        pass
    path = f"interactions[{index}]"  # the slow path: find the message, to name it
    clone_message(interaction.request, f"{path}.request")
    for number, response in enumerate(interaction.responses):
        clone_message(response, f"{path}.responses[{number}]")
    raise AssertionError("unreachable: one of the messages is too deep")  # pragma: no cover


def clone_interactions(interactions: list[Interaction], start: int = 0) -> list[Interaction]:
    """Return deep copies of ``interactions``, in order; the first is the ``start``-th.

    Raises:
        SerializationError: See :func:`clone_value`.
    """
    return [clone_interaction(item, start + i) for i, item in enumerate(interactions)]


def accessed(header: SessionHeader, when: datetime) -> SessionHeader:
    """``header`` with ``last_accessed_at=when``: ``dataclasses.replace``, five times faster.

    Shares metadata and tags with ``header``: headers are never mutated.
    """
    return SessionHeader(
        session_id=header.session_id,
        processor_id=header.processor_id,
        activity_id=header.activity_id,
        request_id=header.request_id,
        created_at=header.created_at,
        updated_at=header.updated_at,
        expires_at=header.expires_at,
        last_accessed_at=when,
        metadata=header.metadata,
        tags=header.tags,
        version=header.version,
        interaction_count=header.interaction_count,
        size_bytes=header.size_bytes,
    )


def clone_session(
    session: PersistedSession, last_accessed_at: datetime | None = None
) -> PersistedSession:
    """Return a deep copy of a persisted session, optionally with a newer access time."""
    return PersistedSession(
        session_id=session.session_id,
        processor_id=session.processor_id,
        activity_id=session.activity_id,
        request_id=session.request_id,
        interactions=clone_interactions(session.interactions),
        created_at=session.created_at,
        updated_at=session.updated_at,
        expires_at=session.expires_at,
        last_accessed_at=last_accessed_at or session.last_accessed_at,
        metadata=clone_value(session.metadata),
        tags=list(session.tags),
        version=session.version,
    )
