"""The manager's listeners: registered once, attached to whichever store is current.

A listener registered with :class:`~session_persistence.SessionPersistenceManager` follows
store switches (``update_config``): it is detached from the old store and attached to the new
one. The manager also listens itself, to flag a managed session whose record another writer
deleted (state ``"missing"``), or that expired while ``recreate_expired`` is off.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError, SessionNotFoundError
from .events import EventName, Listener, Unsubscribe
from .manager_config import SessionPersistenceConfig
from .models import PersistedSession
from .stores.base import SessionStore

if TYPE_CHECKING:
    from .session import DefaultSession

__all__ = ["ManagerEvents"]

logger = logging.getLogger(__name__)


class ManagerEvents:
    """The ``on_*`` registrations of the manager (a mixin of it)."""

    _config: SessionPersistenceConfig
    _store: SessionStore | None
    _listeners: list[_Registration]
    _own_unsubscribers: list[Unsubscribe]
    _managed: Iterable[DefaultSession]
    _expired_ids: set[str]

    def on_session_created(self, callback: Listener) -> Unsubscribe:
        """Call ``callback(session)`` after each committed create (follows store switches)."""
        return self._listen("session_created", callback)

    def on_session_updated(self, callback: Listener) -> Unsubscribe:
        """Call ``callback(new, old)`` after each committed update (follows store switches)."""
        return self._listen("session_updated", callback)

    def on_session_deleted(self, callback: Listener) -> Unsubscribe:
        """Call ``callback(session_id)`` after each committed delete (follows store switches)."""
        return self._listen("session_deleted", callback)

    def on_session_expired(self, callback: Listener) -> Unsubscribe:
        """Call ``callback(session)`` once when a session is found expired."""
        return self._listen("session_expired", callback)

    def on_backup_created(self, callback: Listener) -> Unsubscribe:
        """Call ``callback(backup)`` after each backup is written."""
        return self._listen("backup_created", callback)

    def on_session_recreated(self, callback: Listener) -> Unsubscribe:
        """Call ``callback(session)`` when an expired managed session is written back.

        With ``recreate_expired`` (the default), a :class:`DefaultSession` whose record
        expired while it was still in use is written back under the same id, with its whole
        local history, at its next persist; ``session`` is the new record.
        """
        return self._listen("session_recreated", callback)

    async def _recreated(self, store: SessionStore, session: PersistedSession) -> None:
        """Report a managed session written back after its record expired."""
        self._expired_ids.discard(session.session_id)
        logger.warning(
            "session %s had expired while in use; written back under the same id with its "
            "%d interaction(s) (recreate_expired)",
            session.session_id,
            len(session.interactions),
        )
        if self._config.enable_event_listeners:
            await store._emit("session_recreated", session)

    def _listen(self, event: EventName, callback: Listener) -> Unsubscribe:
        if not self._config.enable_event_listeners:
            raise ConfigurationError(
                "enable_event_listeners", "is False: enable it to register listeners"
            )
        if not callable(callback):
            raise TypeError(f"listener must be callable, got {callback!r}")
        registration = _Registration(event, callback)
        self._listeners.append(registration)
        if self._store is not None:
            registration.attach(self._store)

        def unsubscribe() -> None:
            registration.detach()
            if registration in self._listeners:
                self._listeners.remove(registration)

        return unsubscribe

    def _subscribe_all(self) -> None:
        store = self._store
        if store is None or not self._config.enable_event_listeners:
            return
        for registration in self._listeners:
            registration.attach(store)
        self._own_unsubscribers = [
            store.on_session_deleted(self._record_gone),
            store.on_session_expired(self._record_expired),
        ]

    def _record_expired(self, session: Any) -> None:
        session_id = session.session_id
        if any(managed.session_id == session_id for managed in self._managed):
            self._expired_ids.add(session_id)
        self._record_gone(session_id)

    def _saw_expire(self, session_id: str) -> bool:
        """Whether this manager saw the record of ``session_id`` expire."""
        return session_id in self._expired_ids

    def _is_recreatable(self, session: DefaultSession) -> bool:
        """Whether a lost record of ``session`` will be written back (it was seen to expire).

        A record that is simply gone may have been deleted while it was live (its last seen
        expiry says nothing once other writers slide it): that one is never written back.
        """
        session_id = session.session_id
        return (
            self._config.recreate_expired
            and self._store is not None
            and session_id is not None
            and self._saw_expire(session_id)
        )

    def _unsubscribe_all(self) -> None:
        for registration in self._listeners:
            registration.detach()
        for unsubscribe in self._own_unsubscribers:
            unsubscribe()
        self._own_unsubscribers = []

    def _record_gone(self, session_id: str) -> None:
        for session in self._managed:
            if session.session_id == session_id and not self._is_recreatable(session):
                session._failed("missing", SessionNotFoundError(session_id))


class _Registration:
    """A listener registered with the manager, attached to whichever store is current."""

    def __init__(self, event: EventName, callback: Listener) -> None:
        self.event = event
        self.callback = callback
        self._unsubscribe: Unsubscribe | None = None

    def attach(self, store: SessionStore) -> None:
        self.detach()
        self._unsubscribe = store._events.subscribe(self.event, self.callback)

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
