"""The manager's methods keyed by the caller's own ids (kept apart from ``manager`` for size)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from .errors import InvalidInputError
from .models import UNSET, SessionObject, Unset
from .session import DefaultSession

if TYPE_CHECKING:
    from .manager import SessionPersistenceManager

__all__ = ["KeyedManagerMethods"]


class KeyedManagerMethods:
    """``get_or_create_managed_session`` and ``fork_managed_session``: mixed into the manager."""

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

    async def fork_managed_session(
        self,
        source: DefaultSession | str,
        *,
        up_to: int | None = None,
        new_session_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        auto_persist: bool = True,
    ) -> DefaultSession:
        """Branch a conversation into a new managed session (see the store's ``fork_session``).

        Args:
            source: A managed :class:`DefaultSession` (its unsaved changes are persisted
                first, so the fork starts from everything it holds) or a stored session's id.
            up_to: Copy the first ``up_to`` interactions; all by default.
            new_session_id: The fork's id; a new ULID by default.
            metadata: The fork's metadata (``forked_from`` is added); the source's by default.
            tags: The fork's tags; the source's by default.
            auto_persist: Persist the fork's changes in the background.

        Raises:
            SessionNotFoundError: The source does not exist or has expired.
            InvalidInputError: ``up_to`` is out of range, or ``source`` is a session of
                another manager (or of none).
        """
        manager = cast("SessionPersistenceManager", self)
        if isinstance(source, DefaultSession):
            if source._manager is not manager:
                raise InvalidInputError(
                    "fork_managed_session needs a session managed by this manager"
                )
            await source.persist()
            source_id = source.session_id
            assert source_id is not None  # persisted by its manager
        else:
            source_id = source
        forked = await manager.fork_session(
            source_id, up_to=up_to, new_session_id=new_session_id, metadata=metadata, tags=tags
        )
        session = DefaultSession(SessionObject(forked.processor_id, "", ""))
        session._take(forked)
        session.set_persistence_manager(manager, auto_persist)
        return session
