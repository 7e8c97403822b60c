"""``DefaultSession``: a processor session that persists itself through a manager.

It implements the Sentient Agent Framework's ``Session`` protocol (``processor_id``,
``activity_id``, ``request_id``, ``get_interactions()``) and tracks what changed since it was
last written, so persisting is cheap and safe:

- **Only new interactions** are appended (:meth:`SessionStore.append_interactions`) when that is
  all that changed; the stored history is not rewritten.
- **One record per session.** The first persist creates the record; every later one writes to
  that same record. A record that *expired* while the session was still in use is written back
  under the same id with the whole local history at the next persist (the manager's
  ``recreate_expired``, on by default; it fires ``session_recreated`` and logs a warning). A
  record that was *deleted* is never silently re-created: persist raises
  :class:`~session_persistence.SessionNotFoundError` until ``persist(recreate=True)``.
- **Concurrent writers lose nothing.** Appends need no version, so two ``DefaultSession`` objects
  (in one process or several) appending to one record both land. When the store shows that
  someone else wrote in between, the local view is reloaded so its order matches the store's.
- **Conflicts are not hidden.** Removing or replacing interactions rewrites the history with
  ``expected_version``; if another writer changed the record meanwhile, persist raises
  :class:`~session_persistence.SessionConflictError` and keeps the local change. Call
  :meth:`DefaultSession.load_from_persistence` to take the stored state instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from ulid import ULID

from ._copy import clone_interaction, clone_interactions, clone_value
from ._deprecation import DeprecatedKeys, warn_deprecated
from .errors import (
    InvalidInputError,
    InvalidUpdateError,
    SessionConflictError,
    SessionExistsError,
    SessionNotFoundError,
)
from .models import Interaction, PersistedSession, SessionHeader, SessionObject

if TYPE_CHECKING:
    from .manager import SessionPersistenceManager
    from .stores.base import SessionStore

__all__ = ["DefaultSession", "SessionState"]

#: ``"new"``: never persisted; ``"saved"``: the store has everything; ``"unsaved"``: local
#: changes wait to be written; ``"conflict"``: a rewrite met another writer's change;
#: ``"missing"``: the record was deleted or expired.
SessionState: TypeAlias = Literal["new", "saved", "unsaved", "conflict", "missing"]

_OBJECT_FIELDS = frozenset({"processor_id", "activity_id", "request_id", "interactions"})


@dataclass(slots=True)
class _Record:
    """What this session knows of its stored record, as of its last read or write."""

    session_id: str
    version: int | None  # None: bound by id, not read yet
    created_at: datetime | None = None
    updated_at: datetime | None = None
    expires_at: datetime | None = None
    metadata: dict[str, Any] | None = None
    tags: list[str] | None = None

    def follow(self, source: PersistedSession | SessionHeader) -> None:
        self.version = source.version
        self.created_at = source.created_at
        self.updated_at = source.updated_at
        self.expires_at = source.expires_at
        self.metadata = clone_value(dict(source.metadata))
        self.tags = list(source.tags)


class DefaultSession:
    """A session object that knows what changed and persists itself through a manager.

    Mutations (:meth:`add_interaction`, ...) are synchronous and only change the local view;
    with auto-persistence on, the manager writes them shortly after (see
    :class:`~session_persistence.SessionPersistenceConfig`). :meth:`persist` writes now.

    Args:
        session_object: The processor's ids and interactions (copied). Left out: processor
            ``"default"`` with new ULIDs.
        persistence_manager: The manager that persists it (see :meth:`set_persistence_manager`).
        auto_persist: Let the manager persist changes in the background.
        session_id: Bind to this existing stored record. Its first persist reads the record:
            the local interactions must start with the stored ones (the rest are appended),
            else it raises ``SessionConflictError``.
        enable_auto_persistence: Deprecated spelling of ``auto_persist``.
        persistence_session_id: Deprecated spelling of ``session_id``.
    """

    def __init__(
        self,
        session_object: SessionObject | None = None,
        *,
        persistence_manager: SessionPersistenceManager | None = None,
        auto_persist: bool = False,
        session_id: str | None = None,
        enable_auto_persistence: bool | None = None,
        persistence_session_id: str | None = None,
    ) -> None:
        if enable_auto_persistence is not None:
            warn_deprecated("DefaultSession(enable_auto_persistence=...)", "auto_persist=...")
            auto_persist = enable_auto_persistence
        if persistence_session_id is not None:
            warn_deprecated("DefaultSession(persistence_session_id=...)", "session_id=...")
            session_id = persistence_session_id
        obj = session_object or SessionObject("default", ULID(), ULID())
        if not isinstance(obj, SessionObject):
            raise InvalidInputError(
                f"session_object must be a SessionObject, got {type(obj).__name__}"
            )
        self._processor_id = obj.processor_id
        self._activity_id = obj.activity_id
        self._request_id = obj.request_id
        self._interactions: list[Interaction] = clone_interactions(list(obj.interactions))
        self._synced = 0  # leading local interactions known to be stored, in store order
        self._rewrite = False  # a change that appending cannot express
        self._rewrites = 0  # counts rewrite changes, to notice one made while persisting
        self._record: _Record | None = None
        if session_id is not None:
            self._record = _Record(session_id, None)
        self._state: SessionState = "new" if self._record is None else "unsaved"
        self._manager: SessionPersistenceManager | None = None
        self._auto = False
        self._lock: asyncio.Lock | None = None
        self._persist_count = 0
        self._last_persisted_at: datetime | None = None
        self._last_error: str | None = None
        if persistence_manager is not None:
            self.set_persistence_manager(persistence_manager, auto_persist)

    def __repr__(self) -> str:
        return (
            f"DefaultSession(processor_id={self._processor_id!r}, "
            f"session_id={self.session_id!r}, "
            f"interactions={len(self._interactions)}, state={self.state!r})"
        )

    # == the Sentient Session protocol ===========================================================

    @property
    def processor_id(self) -> str:
        """The processor this session belongs to."""
        return self._processor_id

    @property
    def activity_id(self) -> ULID | str:
        """The activity id (a ULID in the Sentient framework)."""
        return self._activity_id

    @property
    def request_id(self) -> ULID | str:
        """The request id (a ULID in the Sentient framework)."""
        return self._request_id

    async def get_interactions(self) -> AsyncIterator[Interaction]:
        """Yield copies of the interactions, oldest first (a snapshot taken at the call)."""
        for interaction in clone_interactions(self._interactions):
            yield interaction

    # == the local view ==========================================================================

    @property
    def interactions(self) -> list[Interaction]:
        """A copy of the interactions, oldest first."""
        return clone_interactions(self._interactions)

    @property
    def session_object(self) -> SessionObject:
        """A copy of the session as a :class:`SessionObject`."""
        return SessionObject(
            self._processor_id, self._activity_id, self._request_id, self.interactions
        )

    def add_interaction(self, interaction: Interaction) -> None:
        """Append an interaction (copied). Persisting it appends it to the stored record.

        Raises:
            InvalidInputError: Not an :class:`Interaction`.
            SerializationError: A value inside contains itself or nests deeper than a session
                can be written (``.path`` says where); nothing was added.
        """
        if not isinstance(interaction, Interaction):
            raise InvalidInputError(
                f"add_interaction needs an Interaction, got {type(interaction).__name__}"
            )
        self._interactions.append(clone_interaction(interaction, len(self._interactions)))
        self._changed()

    def remove_interaction(self, interaction: Interaction | int) -> bool:
        """Remove an interaction, given by position or as an equal value (the first one).

        Returns whether one was removed. Persisting then rewrites the stored history (with
        ``expected_version``, so a concurrent writer's change is reported, not overwritten).
        """
        if isinstance(interaction, int) and not isinstance(interaction, bool):
            if not -len(self._interactions) <= interaction < len(self._interactions):
                return False
            del self._interactions[interaction]
        else:
            try:
                self._interactions.remove(interaction)  # type: ignore[arg-type]
            except ValueError:
                return False
        self._rewritten()
        return True

    def clear_interactions(self) -> None:
        """Remove every interaction (persisting rewrites the stored history to empty)."""
        if self._interactions:
            self._interactions.clear()
            self._rewritten()

    def update_session_object(self, updates: SessionObject | Mapping[str, Any]) -> None:
        """Replace fields: ``processor_id``, ``activity_id``, ``request_id``, ``interactions``.

        A stored record's ids cannot change (the store keys and indexes them): create a new
        session instead. Interactions that extend the current ones are appended when
        persisted; any other change rewrites the history.

        Raises:
            InvalidUpdateError: An unknown key, or a changed id of a persisted session.
        """
        if isinstance(updates, SessionObject):
            changes: dict[str, Any] = {name: getattr(updates, name) for name in _OBJECT_FIELDS}
        elif isinstance(updates, Mapping):
            changes = dict(updates)
        else:
            raise InvalidUpdateError("updates must be a SessionObject or a mapping")
        unknown = sorted(set(changes) - _OBJECT_FIELDS)
        if unknown:
            raise InvalidUpdateError(
                f"cannot update {', '.join(unknown)}: a session object has only "
                f"{', '.join(sorted(_OBJECT_FIELDS))}",
                fields=unknown,
            )
        ids = {"processor_id": self._processor_id, "activity_id": self._activity_id}
        ids["request_id"] = self._request_id
        changed_ids = [name for name in ids if name in changes and changes[name] != ids[name]]
        if changed_ids and self._record is not None:
            raise InvalidUpdateError(
                f"cannot change {', '.join(changed_ids)} of persisted session "
                f"{self._record.session_id}: create a new session instead",
                fields=changed_ids,
            )
        interactions = changes.get("interactions")
        if interactions is not None:
            items = list(interactions)
            if not all(isinstance(item, Interaction) for item in items):
                raise InvalidUpdateError(
                    "interactions must be Interaction objects", fields=["interactions"]
                )
        self._processor_id = changes.get("processor_id", self._processor_id)
        self._activity_id = changes.get("activity_id", self._activity_id)
        self._request_id = changes.get("request_id", self._request_id)
        if interactions is None:
            self._changed()
            return
        current = self._interactions
        self._interactions = clone_interactions(items)
        if items[: len(current)] == current:
            self._changed()
        else:
            self._rewritten()

    # == state ===================================================================================

    @property
    def session_id(self) -> str | None:
        """The id of the stored record, as in ``PersistedSession`` (``None`` until persisted)."""
        return None if self._record is None else self._record.session_id

    @property
    def persistence_session_id(self) -> str | None:
        """Deprecated spelling of :attr:`session_id`."""
        warn_deprecated("DefaultSession.persistence_session_id", "DefaultSession.session_id")
        return self.session_id

    @property
    def has_unsaved_changes(self) -> bool:
        """Whether the local view holds anything the store does not."""
        if self._record is None:
            return True
        if self._record.version is None:
            return bool(self._interactions)
        return self._rewrite or len(self._interactions) > self._synced

    @property
    def state(self) -> SessionState:
        """Where this session stands against its record (see :data:`SessionState`)."""
        if self._state in ("conflict", "missing"):
            return self._state
        if self._record is None:
            return "new"
        return "unsaved" if self.has_unsaved_changes else "saved"

    @property
    def is_auto_persist_enabled(self) -> bool:
        """Whether the manager persists this session's changes in the background."""
        return self._auto and self._manager is not None

    @property
    def is_auto_persistence_enabled(self) -> bool:
        """Deprecated spelling of :attr:`is_auto_persist_enabled`."""
        warn_deprecated(
            "DefaultSession.is_auto_persistence_enabled", "DefaultSession.is_auto_persist_enabled"
        )
        return self.is_auto_persist_enabled

    def set_persistence_manager(
        self,
        manager: SessionPersistenceManager | None,
        auto_persist: bool = False,
        *,
        enable_auto: bool | None = None,
    ) -> None:
        """Attach this session to ``manager`` (which then flushes it at shutdown), or detach it.

        Args:
            manager: The manager; ``None`` detaches.
            auto_persist: Let the manager persist changes in the background.
            enable_auto: Deprecated spelling of ``auto_persist``.
        """
        if enable_auto is not None:
            warn_deprecated("set_persistence_manager(enable_auto=...)", "auto_persist=...")
            auto_persist = enable_auto
        if self._manager is not None and self._manager is not manager:
            self._manager._forget(self)
        self._manager = manager
        self._auto = bool(auto_persist) and manager is not None
        if manager is not None:
            manager._adopt(self)
            if self.has_unsaved_changes:
                self._changed()

    def set_auto_persist(self, enabled: bool) -> None:
        """Turn background persistence on or off (it needs a manager to have an effect)."""
        self._auto = bool(enabled)
        if self._auto and self.has_unsaved_changes:
            self._changed()

    def set_auto_persistence(self, enabled: bool) -> None:
        """Deprecated spelling of :meth:`set_auto_persist`."""
        warn_deprecated("DefaultSession.set_auto_persistence()", "set_auto_persist()")
        self.set_auto_persist(enabled)

    def get_persistence_metadata(self) -> dict[str, Any]:
        """Describe this session's persistence: id, state, version, counts, stored fields.

        Keys: ``session_id``, ``session_type`` (``"DefaultSession"``), ``state``,
        ``is_persisted``, ``has_unsaved_changes``, ``has_manager``, ``auto_persist_enabled``,
        ``version``, ``interaction_count``, ``unsaved_interactions``, ``persist_count``,
        ``last_persisted_at``, ``last_error``, and the stored ``created_at``, ``updated_at``,
        ``expires_at``, ``metadata`` and ``tags`` (``None`` until persisted).

        Seed 003's names are there too, for code ported from it: ``auto_persistence_enabled``
        and ``interactions_count`` (same values). ``persistence_session_id`` is a deprecated
        spelling of ``session_id``: reading it warns.
        """
        record = self._record
        auto = self.is_auto_persist_enabled
        data: dict[str, Any] = {
            "session_id": self.session_id,
            "session_type": type(self).__name__,
            "state": self.state,
            "is_persisted": record is not None and record.version is not None,
            "has_unsaved_changes": self.has_unsaved_changes,
            "has_manager": self._manager is not None,
            "auto_persist_enabled": auto,
            "auto_persistence_enabled": auto,
            "version": None if record is None else record.version,
            "interaction_count": len(self._interactions),
            "interactions_count": len(self._interactions),
            "unsaved_interactions": max(0, len(self._interactions) - self._synced),
            "persist_count": self._persist_count,
            "last_persisted_at": self._last_persisted_at,
            "last_error": self._last_error,
            "created_at": None if record is None else record.created_at,
            "updated_at": None if record is None else record.updated_at,
            "expires_at": None if record is None else record.expires_at,
            "metadata": None if record is None else clone_value(record.metadata),
            "tags": None if record is None or record.tags is None else list(record.tags),
            "persistence_session_id": self.session_id,
        }
        return DeprecatedKeys(data, {"persistence_session_id": "session_id"})

    # == persistence =============================================================================

    async def persist(self, *, recreate: bool = False) -> str | None:
        """Write the local changes now. Return the record id (``None`` without a manager).

        Args:
            recreate: Write the whole session as a new record, for a session whose record was
                deleted or expired (its id changes).

        A record that expired (rather than being deleted) is written back under its own id
        when the manager's ``recreate_expired`` is on (the default); see the module docs.

        Raises:
            SessionNotFoundError: The record was deleted, or has expired and
                ``recreate_expired`` is off (state ``"missing"``).
            SessionConflictError: A rewrite met another writer's change (state ``"conflict"``);
                the local change is kept.
            SessionStoreError: The store failed; the changes stay unsaved and can be retried.
        """
        manager = self._manager
        if manager is None:
            return None
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            try:
                async with manager._writing() as store:
                    if await self._write_or_recreate(store, recreate=recreate):
                        self._saved(manager._persisted(store))
            except SessionNotFoundError as error:
                self._failed("missing", error)
                raise
            except SessionConflictError as error:
                self._failed("conflict", error)
                raise
            except Exception as error:
                self._last_error = f"{type(error).__name__}: {error}"
                raise
        return self.session_id

    async def fork(
        self,
        *,
        up_to: int | None = None,
        new_session_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
    ) -> DefaultSession:
        """Branch this conversation into a new managed session (persisting this one first).

        See :meth:`SessionPersistenceManager.fork_managed_session`; the fork's
        ``metadata["forked_from"]`` names this session and the version copied.

        Raises:
            InvalidInputError: The session has no manager.
            SessionNotFoundError: Its record was deleted.
        """
        manager = self._manager
        if manager is None:
            raise InvalidInputError("fork() needs a manager: call set_persistence_manager()")
        return await manager.fork_managed_session(
            self, up_to=up_to, new_session_id=new_session_id, metadata=metadata, tags=tags
        )

    async def load_from_persistence(self, session_id: str | None = None) -> bool:
        """Replace the local view with the stored record (unsaved local changes are dropped).

        Args:
            session_id: The record to load; left out, this session's own record.

        Returns:
            ``False`` without a manager, without an id, or when the record does not exist or
            has expired; ``True`` once loaded.
        """
        manager = self._manager
        target = session_id or self.session_id
        if manager is None or target is None:
            return False
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            stored = await manager.get_session(target)
            if stored is None:
                return False
            self._take(stored)
        return True

    # == used by the manager =====================================================================

    async def _write_or_recreate(self, store: SessionStore, *, recreate: bool) -> bool:
        """:meth:`_write_to`, writing back a record that expired if the manager says so."""
        try:
            return await self._write_to(store, recreate=recreate)
        except SessionNotFoundError:
            manager = self._manager
            record = self._record
            if (
                recreate
                or manager is None
                or record is None
                or not manager.config.recreate_expired
                or not await self._record_expired(store, record)
            ):
                raise
        created = await self._create_record(store, record.session_id)
        await manager._recreated(store, created)
        return True

    async def _record_expired(self, store: SessionStore, record: _Record) -> bool:
        """Whether the record is gone because it expired (not because it was deleted).

        Expired and still stored, or no longer stored and seen to expire by the manager
        (cleanup removed it and fired ``session_expired``). A record that is simply gone may
        have been deleted while live (another writer may have slid its expiry since this
        session last saw it): it is not "expired", and is never written back.
        """
        header = await store.get_session_header(record.session_id)
        if header is not None:
            return store.is_expired(header)
        manager = self._manager
        return manager is not None and manager._saw_expire(record.session_id)

    def _changed(self) -> None:
        if self._state == "conflict" and not self._rewrite:
            self._state = "unsaved"
        if self._manager is not None and self._auto:
            self._manager._schedule(self)

    def _rewritten(self) -> None:
        self._rewrite = True
        self._rewrites += 1
        self._changed()

    def _failed(self, state: SessionState, error: Exception) -> None:
        self._state = state
        self._last_error = f"{type(error).__name__}: {error}"

    def _take(self, stored: PersistedSession) -> None:
        """Make the local view exactly ``stored``."""
        self._processor_id = stored.processor_id
        self._activity_id = stored.activity_id
        self._request_id = stored.request_id
        self._interactions = clone_interactions(stored.interactions)
        self._synced = len(self._interactions)
        self._rewrite = False
        self._record = _Record(stored.session_id, stored.version)
        self._record.follow(stored)
        self._state = "saved"
        self._last_error = None

    def _saved(self, when: datetime) -> None:
        self._persist_count += 1
        self._last_persisted_at = when
        self._last_error = None
        if self._state in ("conflict", "missing"):
            self._state = "saved"

    async def _write_to(self, store: SessionStore, *, recreate: bool) -> bool:
        """Write what changed to ``store``; return whether anything was written.

        The caller holds this session's lock. Mutations may still happen while a store call
        is awaited: appended interactions land after the written ones and stay unsaved, and a
        rewrite made meanwhile (``_rewrites`` moved) is written next time, against a version
        that includes only this session's own writes, so another writer's change still
        surfaces as a conflict.
        """
        record = self._record
        rewrites = self._rewrites
        if record is None or recreate:
            await self._create_record(store, None)
            return True
        if not self.has_unsaved_changes:
            return False
        if record.version is None:
            await self._attach(store, record)
            if not self.has_unsaved_changes:
                return False
        if self._rewrite:
            snapshot = clone_interactions(self._interactions)
            updated = await store.update_session(
                record.session_id, {"interactions": snapshot}, expected_version=record.version
            )
            record.follow(updated)
            if self._rewrites == rewrites:
                self._rewrite = False
                self._synced = len(snapshot)
            return True
        start, before = self._synced, record.version or 0
        new = clone_interactions(self._interactions[start:])
        header = await store.append_interactions(record.session_id, *new)
        if header.version == before + 1:  # nobody else wrote in between
            record.follow(header)
            if self._rewrites == rewrites:
                self._synced = start + len(new)
            return True
        if self._rewrites != rewrites:
            return True  # keep the old version: the pending rewrite must meet the conflict
        # Another writer appended too: take the store's order, keep what came after `new`.
        stored = await store.get_session(record.session_id)
        if stored is None:
            raise SessionNotFoundError(record.session_id)
        if self._rewrites == rewrites:
            pending = self._interactions[start + len(new) :]
            self._interactions = clone_interactions(stored.interactions) + pending
            self._synced = len(stored.interactions)
            record.follow(stored)
        return True

    async def _create_record(self, store: SessionStore, session_id: str | None) -> PersistedSession:
        """Write the whole local session as a new record (under ``session_id`` if given).

        Raises:
            SessionConflictError: ``session_id`` was taken meanwhile (another writer wrote
                the expired record back first).
        """
        record = self._record
        rewrites = self._rewrites
        snapshot = clone_interactions(self._interactions)
        try:
            created = await store.create_session(
                SessionObject(self._processor_id, self._activity_id, self._request_id, snapshot),
                session_id=session_id,
                metadata=None if record is None else record.metadata,
                tags=None if record is None else record.tags,
            )
        except SessionExistsError as error:
            assert session_id is not None
            raise SessionConflictError(
                session_id,
                None,
                None,
                f"session {session_id!r} was written back by another writer after it expired; "
                "call load_from_persistence() to take the stored one",
            ) from error
        self._record = _Record(created.session_id, created.version)
        self._record.follow(created)
        self._synced = len(snapshot)
        self._rewrite = self._rewrites != rewrites
        return created

    async def _attach(self, store: SessionStore, record: _Record) -> None:
        """First write of a session bound by id: read the record, check the local prefix."""
        stored = await store.get_session(record.session_id)
        if stored is None:
            raise SessionNotFoundError(record.session_id)
        count = len(stored.interactions)
        if self._interactions[:count] != stored.interactions:
            raise SessionConflictError(
                record.session_id,
                None,
                stored.version,
                f"session {record.session_id!r} holds interactions this DefaultSession does "
                "not start with; call load_from_persistence() to take the stored ones",
            )
        record.follow(stored)
        self._synced = count
