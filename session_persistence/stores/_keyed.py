"""The parts of the store contract keyed by the caller's own ids: get-or-create and forks.

Kept apart from :mod:`.base` only for size; mixed into :class:`SessionStore`. Both are written
once over the transaction machinery, so they hold on every backend:

* ``get_or_create_session`` stages a create under the caller's id with the store's "must not
  exist" expectation. Of any number of concurrent callers (coroutines, threads, processes
  sharing the store), the backend's atomic version check lets exactly one create commit; every
  other one gets a conflict, retries, and finds the session made by the winner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from .._ids import validate_session_id
from ..models import UNSET, PersistedSession, SessionObject, Unset

if TYPE_CHECKING:
    from .base import SessionStore

__all__ = ["KeyedMethods"]


class KeyedMethods:
    """``get_or_create_session``: mixed into :class:`SessionStore`."""

    async def get_or_create_session(
        self,
        session_id: str,
        session_object: SessionObject | None = None,
        *,
        expires_at: datetime | Unset | None = UNSET,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
    ) -> tuple[PersistedSession, bool]:
        """Return the live session with the caller's id, creating it if there is none.

        Atomic: any number of concurrent callers with one id (coroutines, threads, or
        processes sharing the store) create exactly one session, and all get it back. Use it
        to key sessions by a chat, thread or activity id.

        An expired session not yet cleaned up is replaced by the new one (its version keeps
        rising). A session found is read as :meth:`get_session` reads it (an access), and the
        other arguments are then ignored.

        Args:
            session_id: The caller's id: a ULID or ``[A-Za-z0-9_-]{1,128}``, stored as given.
            session_object: Used only to create. Left out: processor ``"default"``,
                ``activity_id`` the session id (a ``ULID`` when it is a canonical ULID string,
                else the string), ``request_id`` a new ULID.
            expires_at: Used only to create, as in :meth:`create_session`.
            metadata: Used only to create.
            tags: Used only to create.

        Returns:
            ``(session, created)``: ``created`` is true for the one caller that created it.

        Raises:
            InvalidSessionIdError: ``session_id`` is not a valid id.
            InvalidInputError, SerializationError, SessionTooLargeError, SessionLimitError:
                As for :meth:`create_session`, when it creates.
        """
        store = cast("SessionStore", self)
        validate_session_id(session_id)
        session, created = await store._write(
            lambda tx: tx.get_or_create_session(
                session_id, session_object, expires_at=expires_at, metadata=metadata, tags=tags
            )
        )
        if not created and store._joined() is None:
            store._touch(session_id, store._now())
        return session, created
