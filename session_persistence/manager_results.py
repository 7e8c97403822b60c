"""What the manager returns: its stats, session summaries and bulk-update results."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .models import StoreStats

__all__ = ["BulkUpdateResult", "ManagerStats", "SessionSummary"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ManagerStats(StoreStats):
    """The store's :class:`StoreStats` plus the manager's own figures.

    Attributes:
        store_type: The store in use.
        auto_persist_enabled: Whether background persistence is on.
        last_persist_time: When a managed session was last written (``None``: never).
        persist_count: Writes of managed sessions since the manager started.
        error_count: Failed writes of managed sessions (each retry that fails counts).
        managed_sessions: ``DefaultSession`` objects the manager tracks.
        unsaved_sessions: Of those, how many hold changes not yet written.
        sessions_needing_attention: Ids of managed sessions in state ``"conflict"`` or
            ``"missing"``, which background persistence does not retry.
    """

    store_type: str
    auto_persist_enabled: bool
    last_persist_time: datetime | None = None
    persist_count: int = 0
    error_count: int = 0
    managed_sessions: int = 0
    unsaved_sessions: int = 0
    sessions_needing_attention: list[str] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionSummary:
    """A session at a glance (:meth:`SessionPersistenceManager.get_session_summary`)."""

    session_id: str
    processor_id: str
    interaction_count: int
    version: int
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    last_accessed_at: datetime
    age: timedelta
    time_since_update: timedelta
    is_expired: bool
    is_managed: bool
    has_unsaved_changes: bool
    size_bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BulkUpdateResult:
    """What :meth:`SessionPersistenceManager.bulk_update_sessions` changed.

    Attributes:
        updated_count: How many sessions were updated.
        session_ids: Their ids.
        errors: One line per selected session that was not updated, ``"<id>: <why>"``; empty
            when every one was (seed 003's ``errors``). Only ``atomic=False`` leaves sessions
            out: an atomic bulk update raises instead, and changes nothing.
    """

    updated_count: int
    session_ids: list[str]
    errors: list[str] = field(default_factory=list)
