"""The manager's methods keyed by the caller's own ids (kept apart from ``manager`` for size)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from .models import UNSET, SessionObject, Unset
from .session import DefaultSession

if TYPE_CHECKING:
    from .manager import SessionPersistenceManager

__all__ = ["KeyedManagerMethods"]


class KeyedManagerMethods:
    """``get_or_create_managed_session``: mixed into the manager."""

    async def get_or_create_managed_session(
        self,
        session_id: str,
        session_object: SessionObject | None = None,
        *,
        expires_at: datetime | Unset | None = UNSET,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        auto_persist: bool = True,
    ) -> DefaultSession:
        """Return the managed session with the caller's id, creating its record if needed.

        The managed counterpart of :meth:`SessionStore.get_or_create_session`, and as atomic:
        concurrent callers (in this process or others) end up with one record. A session this
        manager already manages for that id is returned as is.

        Args:
            session_id: The caller's id (a chat, thread or activity id).
            session_object: Used only to create (see the store method for the defaults).
            expires_at: Used only to create.
            metadata: Used only to create.
            tags: Used only to create.
            auto_persist: Persist its changes in the background.

        Raises:
            InvalidSessionIdError: ``session_id`` is not a valid id.
        """
        manager = cast("SessionPersistenceManager", self)
        for managed in manager._managed:
            if managed.session_id == session_id:
                return managed
        stored, _ = await manager.get_or_create_session(
            session_id, session_object, expires_at=expires_at, metadata=metadata, tags=tags
        )
        for managed in manager._managed:  # adopted by a concurrent caller meanwhile
            if managed.session_id == session_id:
                return managed
        session = DefaultSession(SessionObject(stored.processor_id, "", ""))
        session._take(stored)
        session.set_persistence_manager(manager, auto_persist)
        return session
