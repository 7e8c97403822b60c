"""Fast deep copies of session values, so nothing returned or kept aliases anything else.

``copy.deepcopy`` is general but slow; sessions are mostly JSON-like trees of immutable leaves
(str, int, ULID, datetime, ...), so this walks lists, dicts, sets and tuples itself, shares the
immutable leaves, and falls back to ``copy.deepcopy`` only for other objects (registered user
types).
"""

from __future__ import annotations

import copy
import enum
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from ulid import ULID

from .models import Interaction, InteractionMessage, PersistedSession, SessionHeader

_IMMUTABLE: frozenset[type[Any]] = frozenset(
    {str, int, float, bool, type(None), bytes, frozenset, uuid.UUID, Decimal}
    | {ULID, datetime, date, time, timedelta}
)


def clone_value(value: Any) -> Any:
    """Return a deep copy of ``value`` that shares only immutable parts."""
    kind = type(value)
    if kind in _IMMUTABLE:
        return value
    # Leaves are tested inline: most values are, and a call per leaf is the main cost.
    if kind is dict:
        return {
            key: item if type(item) in _IMMUTABLE else clone_value(item)
            for key, item in value.items()
        }
    if kind is list:
        return [item if type(item) in _IMMUTABLE else clone_value(item) for item in value]
    if kind is set:
        return set(value)  # members are hashable, hence treated as immutable
    if kind is tuple:
        return tuple(clone_value(item) for item in value)
    if kind is bytearray:
        return bytearray(value)
    if isinstance(value, enum.Enum):
        return value
    if kind is PersistedSession:
        return clone_session(value)
    return copy.deepcopy(value)


def clone_message(message: InteractionMessage) -> InteractionMessage:
    """Return a deep copy of an interaction message."""
    return InteractionMessage(
        event=clone_value(message.event),
        sender=message.sender,
        recipients=None if message.recipients is None else clone_value(message.recipients),
    )


def clone_interaction(interaction: Interaction) -> Interaction:
    """Return a deep copy of an interaction."""
    return Interaction(
        request=clone_message(interaction.request),
        responses=[clone_message(response) for response in interaction.responses],
    )


def clone_interactions(interactions: list[Interaction]) -> list[Interaction]:
    """Return deep copies of ``interactions``, in order."""
    return [clone_interaction(interaction) for interaction in interactions]


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
