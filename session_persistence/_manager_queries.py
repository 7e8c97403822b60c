"""The manager's queries and bulk work (kept apart from ``manager`` for size).

``find_sessions`` and ``find_session_headers`` select by recency and a few common criteria;
``get_session_summary`` reads a header; ``bulk_update_sessions`` updates what a filter selects.
Only ``find_sessions`` reads histories: the others need headers alone, and read only those.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from .errors import InvalidInputError, SessionNotFoundError, SessionTooLargeError
from .manager_results import BulkUpdateResult, SessionSummary
from .models import (
    PersistedSession,
    SessionFilter,
    SessionHeader,
    SessionQueryOptions,
    SessionUpdate,
)

if TYPE_CHECKING:
    from .manager import SessionPersistenceManager

__all__ = ["QueryManagerMethods"]


def _recent(
    *,
    processor_id: str | Sequence[str] | None,
    since: datetime | None,
    until: datetime | None,
    has_interactions: bool | None,
    tags: Sequence[str] | None,
    limit: int | None,
) -> tuple[SessionFilter, SessionQueryOptions]:
    return (
        SessionFilter(
            processor_id=processor_id,
            updated_after=since,
            updated_before=until,
            has_interactions=has_interactions,
            tags=tags,
        ),
        SessionQueryOptions(limit=limit, sort_by="updated_at", sort_order="desc"),
    )


class QueryManagerMethods:
    """``find_sessions``, ``find_session_headers``, summaries and bulk updates."""

    async def find_sessions(
        self,
        *,
        processor_id: str | Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        has_interactions: bool | None = None,
        tags: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[PersistedSession]:
        """Live sessions updated within ``[since, until]``, most recently updated first.

        Reads every selected session's history: when only ids, counts, tags or metadata
        are needed, :meth:`find_session_headers` takes the same arguments and reads only the
        index.

        Args:
            processor_id: One processor or several.
            since: Updated at or after this time.
            until: Updated at or before this time.
            has_interactions: Only sessions with (``True``) or without (``False``) any.
            tags: Sessions carrying any of these tags.
            limit: At most this many.
        """
        manager = cast("SessionPersistenceManager", self)
        flt, options = _recent(
            processor_id=processor_id,
            since=since,
            until=until,
            has_interactions=has_interactions,
            tags=tags,
            limit=limit,
        )
        return await manager.list_sessions(flt, options)

    async def find_session_headers(
        self,
        *,
        processor_id: str | Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        has_interactions: bool | None = None,
        tags: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[SessionHeader]:
        """:meth:`find_sessions` without the histories: the same sessions' headers.

        Same arguments, selection and order, answered from the index (see
        :meth:`SessionStore.list_session_headers`): each header carries
        ``interaction_count`` and ``size_bytes``, and listing is not an access.
        """
        manager = cast("SessionPersistenceManager", self)
        flt, options = _recent(
            processor_id=processor_id,
            since=since,
            until=until,
            has_interactions=has_interactions,
            tags=tags,
            limit=limit,
        )
        return await manager.list_session_headers(flt, options)

    async def get_session_summary(self, session_id: str) -> SessionSummary | None:
        """Summarize a stored session, expired or not (``None``: it does not exist).

        Reads only the header: cheap, and not an access.
        """
        manager = cast("SessionPersistenceManager", self)
        async with manager._using() as store:
            header = await store.get_session_header(session_id)
            if header is None:
                return None
            now = store.config.clock()
            expired = store.is_expired(header)
        managed = [s for s in manager._managed if s.session_id == session_id]
        return SessionSummary(
            session_id=header.session_id,
            processor_id=header.processor_id,
            interaction_count=header.interaction_count,
            version=header.version,
            created_at=header.created_at,
            updated_at=header.updated_at,
            expires_at=header.expires_at,
            last_accessed_at=header.last_accessed_at,
            age=now - header.created_at,
            time_since_update=now - header.updated_at,
            is_expired=expired,
            is_managed=bool(managed),
            has_unsaved_changes=any(s.has_unsaved_changes for s in managed),
            size_bytes=header.size_bytes,
        )

    async def bulk_update_sessions(
        self,
        filter: SessionFilter,
        updates: SessionUpdate | Mapping[str, Any],
        *,
        atomic: bool = True,
    ) -> BulkUpdateResult:
        """Apply one update to every session ``filter`` selects, in one transaction.

        All-or-nothing by default: every selected session changes, or, if one cannot take
        the update (it grew too large, it vanished), none does and the error is raised. With
        ``atomic=False``, each session that can take the update does (still committed
        together, as one transaction), and each one that cannot is left unchanged and named
        in :attr:`BulkUpdateResult.errors`. Managed sessions follow: their next persist sees
        the new version and reloads.

        Args:
            filter: The sessions to update.
            updates: As for :meth:`SessionStore.update_session`.
            atomic: ``False`` to update what can be updated and report the rest.

        Raises:
            InvalidUpdateError: ``updates`` is not a valid update (nothing changed).
            SessionTooLargeError, SessionNotFoundError: ``atomic`` and a session could not be
                updated (nothing changed).
            TransactionError: Another writer changed a selected session meanwhile (nothing
                changed; run it again).
        """
        manager = cast("SessionPersistenceManager", self)
        if not isinstance(filter, SessionFilter):
            raise InvalidInputError("filter must be a SessionFilter")
        updated: list[str] = []
        errors: list[str] = []
        async with manager._using() as store, store.transaction():
            for session_id in [h.session_id for h in await store.list_session_headers(filter)]:
                try:
                    async with store.transaction():  # a savepoint: undoes this session only
                        await store.update_session(session_id, updates)
                except (SessionTooLargeError, SessionNotFoundError) as error:
                    if atomic:
                        raise
                    errors.append(f"{session_id}: {error}")
                else:
                    updated.append(session_id)
        return BulkUpdateResult(updated_count=len(updated), session_ids=updated, errors=errors)
