"""The write operations a backend applies: the vocabulary of the narrow core.

Every change, whether a single ``update_session``, a transaction, a cleanup or a restore, reaches
a backend as one call to ``SessionStore._apply(ops)`` with a batch of these operations. The
backend must apply the batch **atomically** (all or nothing) and **check every op's expected
version against the latest committed state** as part of the same atomic step, raising
:class:`~session_persistence.errors.SessionConflictError` (and applying nothing) on a mismatch.
:func:`check_versions` does that check for backends that can look versions up.

``expected`` is the version the stored record must have for the batch to apply; ``None`` means
the record must not exist.

The base store has already validated, encoded and size-checked everything: ``PutOp.data`` is
the session's encoded document (compact JSON, see :mod:`session_persistence.documents`) and
``AppendOp.encoded`` holds each new interaction's encoded JSON, so a backend never encodes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from .errors import SessionConflictError
from .models import Interaction, PersistedSession, SessionHeader

__all__ = ["AppendOp", "CheckOp", "DeleteOp", "PutOp", "WriteOp", "check_versions"]


@dataclass(frozen=True, slots=True)
class PutOp:
    """Write the whole session (create it, or replace it).

    Attributes:
        session: The new state; the backend may keep it (the base never mutates it further).
        header: Its header.
        data: Its encoded document.
        expected: Version that must be stored now (``None``: must be absent).
    """

    session: PersistedSession
    header: SessionHeader
    data: bytes
    expected: int | None


@dataclass(frozen=True, slots=True)
class AppendOp:
    """Append interactions to a session, without rewriting its history.

    Attributes:
        session_id: The session.
        interactions: The new interactions, oldest first (the backend may keep them).
        encoded: Each interaction's encoded JSON, in the same order.
        header: The session's header after the append (new version, timestamps, count).
            The backend keeps every field of it, ``expires_at`` included: sliding expiry
            moves a session's expiry on appends too.
        expected: Version that must be stored now.
    """

    session_id: str
    interactions: Sequence[Interaction]
    encoded: Sequence[bytes]
    header: SessionHeader
    expected: int


@dataclass(frozen=True, slots=True)
class DeleteOp:
    """Delete a session.

    Attributes:
        session_id: The session.
        expected: Version that must be stored now.
    """

    session_id: str
    expected: int


@dataclass(frozen=True, slots=True)
class CheckOp:
    """Change nothing; only require the stored version (a transaction's read set).

    Attributes:
        session_id: The session.
        expected: Version that must be stored now (``None``: must be absent).
    """

    session_id: str
    expected: int | None


WriteOp: TypeAlias = PutOp | AppendOp | DeleteOp | CheckOp


def op_session_id(op: WriteOp) -> str:
    """Return the id of the session an op concerns."""
    return op.session.session_id if isinstance(op, PutOp) else op.session_id


def check_versions(ops: Sequence[WriteOp], version_of: Callable[[str], int | None]) -> None:
    """Raise :class:`SessionConflictError` for the first op whose expectation fails.

    Args:
        ops: The batch; each session appears at most once.
        version_of: Returns the latest committed version of a session, ``None`` if absent.
    """
    for op in ops:
        session_id = op_session_id(op)
        actual = version_of(session_id)
        if actual != op.expected:
            raise SessionConflictError(session_id, op.expected, actual)
