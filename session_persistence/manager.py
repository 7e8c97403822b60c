"""``SessionPersistenceManager``: one object that opens a store and keeps sessions persisted.

It opens the store its :class:`~session_persistence.SessionPersistenceConfig` names, offers
everything the store does (delegated), and manages :class:`~session_persistence.DefaultSession`
objects: their changes are written in the background (debounced, retried, counted), and
:meth:`SessionPersistenceManager.shutdown` flushes whatever is still unsaved before closing the
store. It never deletes data on shutdown.

Write paths: the manager adds no storage of its own. Every write is one store call
(``create_session``, ``append_interactions`` or ``update_session``), with that store's
durability (see the store's docs); a change acknowledged by ``persist()`` is as durable as the
store's writes. A change not yet persisted lives only in the process: a crash before the
debounce window (``auto_persist_delay``) ends loses it, which is why ``persist()`` exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar

from ulid import ULID

from ._deprecation import warn_deprecated
from ._manager_events import ManagerEvents, _Registration
from ._manager_keyed import KeyedManagerMethods
from ._manager_queries import QueryManagerMethods
from ._manager_stores import copy_sessions, open_configured_store, store_changed
from .config import seconds, utc_now
from .errors import (
    ConfigurationError,
    InvalidInputError,
    MigrationError,
    SessionConflictError,
    SessionNotFoundError,
    SessionStoreError,
    StoreClosedError,
    UnsavedChangesError,
)
from .events import Unsubscribe
from .manager_config import SessionPersistenceConfig
from .manager_results import BulkUpdateResult, ManagerStats, SessionSummary
from .models import (
    UNSET,
    HealthStatus,
    OptimizeResult,
    PersistedSession,
    SessionFilter,
    SessionObject,
    StoreStats,
    Unset,
)
from .session import DefaultSession
from .stores.base import SessionStore
from .transactions import TransactionContext

__all__ = [
    "BulkUpdateResult",
    "ManagerStats",
    "SessionPersistenceManager",
    "SessionSummary",
    "copy_sessions",
]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

_SHUTDOWN_ATTEMPTS = 3


def _delegated(
    method: Callable[Concatenate[SessionStore, P], Awaitable[R]],
) -> Callable[Concatenate[SessionPersistenceManager, P], Awaitable[R]]:
    """A manager method that runs the store method of the same name on the current store."""
    name = method.__name__

    @functools.wraps(method)
    async def call(self: SessionPersistenceManager, /, *args: P.args, **kwargs: P.kwargs) -> R:
        async with self._using() as store:
            result: R = await getattr(store, name)(*args, **kwargs)
            return result

    return call


class SessionPersistenceManager(KeyedManagerMethods, QueryManagerMethods, ManagerEvents):
    """Opens the configured store and keeps managed sessions persisted.

    ``async with SessionPersistenceManager(config) as manager:`` initializes and shuts down.
    Every store method (``create_session``, ``list_sessions``, ``create_backup``, ...) is
    available on the manager and runs on its current store.

    Args:
        config: What to open and how to persist (default: the filesystem store in
            ``./session_data``, auto-persistence on).
    """

    def __init__(self, config: SessionPersistenceConfig | None = None) -> None:
        if config is not None and not isinstance(config, SessionPersistenceConfig):
            raise ConfigurationError("config", "must be a SessionPersistenceConfig")
        self._config = config or SessionPersistenceConfig()
        self._store: SessionStore | None = None
        self._owns_store = False
        self._managed: dict[DefaultSession, None] = {}  # insertion-ordered set
        self._scheduled: dict[DefaultSession, asyncio.Task[None]] = {}
        self._failures: dict[DefaultSession, int] = {}
        self._listeners: list[_Registration] = []
        self._own_unsubscribers: list[Unsubscribe] = []
        # Ids of managed sessions whose record this manager saw expire (session_expired): the
        # evidence recreate_expired needs before writing back a record that is gone.
        self._expired_ids: set[str] = set()
        self._interval_task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._open_gate = asyncio.Event()
        self._open_gate.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._in_flight = 0
        self._persist_count = 0
        self._error_count = 0
        self._errors: deque[tuple[datetime, str]] = deque(maxlen=1000)
        self._last_persist_time: datetime | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # where it runs, once initialized

    # == lifecycle ===============================================================================

    @property
    def config(self) -> SessionPersistenceConfig:
        """The configuration in effect (change it with :meth:`update_config`)."""
        return self._config

    @property
    def store(self) -> SessionStore:
        """The store in use.

        Raises:
            StoreClosedError: The manager is not initialized.
        """
        if self._store is None:
            raise StoreClosedError("the manager is not open: call initialize() first")
        return self._store

    @property
    def is_initialized(self) -> bool:
        """True between :meth:`initialize` and :meth:`shutdown`."""
        return self._store is not None

    async def initialize(self) -> None:
        """Open the store (recovering its state) and start background persistence.

        Raises:
            StoreIOError, StoreCorruptionError: The store could not be opened.
        """
        if self._store is not None:
            return
        self._store, self._owns_store = await open_configured_store(self._config)
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._subscribe_all()
        self._start_interval()
        for session in self._managed:
            if session.is_auto_persist_enabled and session.has_unsaved_changes:
                self._schedule(session)

    async def shutdown(self) -> None:
        """Stop the timers, write every unsaved managed session, close the store.

        Never deletes data. Transient write failures are retried a few times.

        Raises:
            UnsavedChangesError: Some sessions could not be written (conflict, deleted
                record, or a store that kept failing); the store is closed anyway.
        """
        store = self._store
        if store is None:
            return
        self._stopping.set()  # wakes debounce waits: they flush now
        tasks = [t for t in (self._interval_task, *self._scheduled.values()) if t is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        self._interval_task = None
        failed: list[DefaultSession] = []
        for attempt in range(_SHUTDOWN_ATTEMPTS):
            failed = await self._flush(list(self._managed), background=False)
            if not failed or all(s.state in ("conflict", "missing") for s in failed):
                break
            await asyncio.sleep(0.05 * 2**attempt)
        self._unsubscribe_all()
        try:
            if self._owns_store:
                await store.shutdown()
        finally:
            self._store = None
        if failed:
            ids = [s.session_id or "(new)" for s in failed]
            raise UnsavedChangesError(
                f"{len(failed)} managed session(s) could not be saved at shutdown "
                f"({', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''}); "
                "see each session's get_persistence_metadata()['last_error']",
                ids,
            )

    async def __aenter__(self) -> SessionPersistenceManager:
        await self.initialize()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    # == managed sessions ========================================================================

    async def create_managed_session(
        self,
        session_object: SessionObject | None = None,
        *,
        session_id: str | None = None,
        expires_at: datetime | Unset | None = UNSET,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        auto_persist: bool = True,
        enable_auto_persist: bool | None = None,
    ) -> DefaultSession:
        """Create a stored session and return it as a managed :class:`DefaultSession`.

        Args:
            session_object: Ids and interactions. Left out: processor ``"default"`` with
                new ULIDs.
            session_id: The caller's own id (see :meth:`SessionStore.create_session`); left
                out, a new ULID.
            expires_at: When it expires (``None``: never; left out: the default TTL).
            metadata: Free-form data.
            tags: Labels.
            auto_persist: Persist its changes in the background.
            enable_auto_persist: Deprecated spelling of ``auto_persist``.
        """
        if enable_auto_persist is not None:
            warn_deprecated("create_managed_session(enable_auto_persist=...)", "auto_persist=...")
            auto_persist = enable_auto_persist
        obj = session_object or SessionObject("default", ULID(), ULID())
        created = await self.create_session(
            obj, session_id=session_id, expires_at=expires_at, metadata=metadata, tags=tags
        )
        session = DefaultSession(obj)
        session._take(created)
        session.set_persistence_manager(self, auto_persist)
        return session

    async def load_managed_session(
        self,
        session_id: str,
        *,
        auto_persist: bool = True,
        enable_auto_persist: bool | None = None,
    ) -> DefaultSession | None:
        """Return the managed session of a stored record (``None``: absent or expired).

        If this manager already manages a session for that record, that object is returned,
        so one process has one local view of each record. :meth:`require_managed_session`
        raises instead of returning ``None``.

        Args:
            session_id: The record.
            auto_persist: Persist its changes in the background.
            enable_auto_persist: Deprecated spelling of ``auto_persist``.
        """
        if enable_auto_persist is not None:
            warn_deprecated("load_managed_session(enable_auto_persist=...)", "auto_persist=...")
            auto_persist = enable_auto_persist
        for session in self._managed:
            if session.session_id == session_id:
                return session
        stored = await self.get_session(session_id)
        if stored is None:
            return None
        session = DefaultSession(SessionObject(stored.processor_id, "", ""))
        session._take(stored)
        session.set_persistence_manager(self, auto_persist)
        return session

    async def require_managed_session(
        self, session_id: str, *, auto_persist: bool = True
    ) -> DefaultSession:
        """Return the managed session of a stored record, which must exist.

        :meth:`load_managed_session` without the ``None``: for code that holds the id of a
        session it expects to be there.

        Args:
            session_id: The record.
            auto_persist: Persist its changes in the background.

        Raises:
            SessionNotFoundError: No such session, or it has expired.
        """
        session = await self.load_managed_session(session_id, auto_persist=auto_persist)
        if session is None:
            raise SessionNotFoundError(session_id)
        return session

    async def persist_session(self, session: DefaultSession) -> str:
        """Write a session's changes now (adopting it if it has no manager); return its id.

        Raises:
            InvalidInputError: The session belongs to another manager.
            SessionNotFoundError, SessionConflictError: As for :meth:`DefaultSession.persist`.
        """
        if not isinstance(session, DefaultSession):
            raise InvalidInputError(f"expected a DefaultSession, got {type(session).__name__}")
        if session._manager is None:
            session.set_persistence_manager(self)
        elif session._manager is not self:
            raise InvalidInputError("this session is managed by another manager")
        session_id = await session.persist()
        assert session_id is not None  # it has a manager, so persist wrote or knew its record
        return session_id

    def mark_session_for_persistence(self, session_id: str) -> bool:
        """Write the managed session(s) of this record soon, even with auto-persistence off.

        Returns whether this manager manages a session for that record.
        """
        found = [s for s in self._managed if s.session_id == session_id]
        for session in found:
            self._schedule(session, force=True)
        return bool(found)

    async def unmanage_session(self, session_id: str, *, flush: bool = True) -> bool:
        """Stop managing the session(s) of this record, writing their changes first.

        Args:
            session_id: The record.
            flush: Write unsaved changes before letting go (default). ``False`` drops them.

        Returns whether any session was managed for that record.

        Raises:
            SessionStoreError: ``flush`` failed; the session stays managed.
        """
        found = [s for s in self._managed if s.session_id == session_id]
        for session in found:
            if flush and session.has_unsaved_changes:
                await session.persist()
            session.set_persistence_manager(None)
        return bool(found)

    @property
    def managed_sessions(self) -> list[DefaultSession]:
        """The sessions this manager tracks (flushes at shutdown)."""
        return list(self._managed)

    # == monitoring ==============================================================================

    async def get_stats(self) -> ManagerStats:
        """The store's statistics plus the manager's persistence figures."""
        async with self._using() as store:
            stats = await store.get_stats()
        fields = {name: getattr(stats, name) for name in StoreStats.__dataclass_fields__}
        return ManagerStats(
            **fields,
            store_type=store.store_type,
            auto_persist_enabled=self._config.auto_persist_enabled,
            last_persist_time=self._last_persist_time,
            persist_count=self._persist_count,
            error_count=self._error_count,
            managed_sessions=len(self._managed),
            unsaved_sessions=sum(1 for s in self._managed if s.has_unsaved_changes),
            sessions_needing_attention=self._needing_attention(),
        )

    async def health_check(self) -> HealthStatus:
        """Run the store's probes plus the manager's.

        The manager adds recent persist failures (within the store's
        ``health_error_window``; older ones no longer count) and sessions needing attention.
        """
        store = self._store
        if store is None:
            return HealthStatus(
                healthy=False,
                issues=["the manager is not initialized"],
                last_check=utc_now(),
                details={"store_type": self._config.store_type},
            )
        health = await store.health_check()
        issues = list(health.issues)
        now = store.config.clock()
        window = seconds(store.config.health_error_window)
        recent = [e for e in self._errors if e[0] > now - timedelta(seconds=window)]
        if len(recent) >= store.config.health_error_threshold:
            issues.append(
                f"{len(recent)} failed persist(s) of managed sessions in the last {window:g}s; "
                f"latest: {recent[-1][1]}"
            )
        attention = self._needing_attention()
        if attention:
            issues.append(
                f"{len(attention)} managed session(s) need attention (version conflict or "
                f"deleted record): {', '.join(attention[:5])}"
            )
        details = {
            **health.details,
            "manager_recent_errors": len(recent),
            "managed_sessions": len(self._managed),
            "unsaved_sessions": sum(1 for s in self._managed if s.has_unsaved_changes),
        }
        return HealthStatus(
            healthy=not issues, issues=issues, last_check=health.last_check, details=details
        )

    async def optimize(self) -> OptimizeResult:
        """Write unsaved managed sessions, then run the store's maintenance."""
        failed = await self._flush(list(self._managed), background=False)
        async with self._using() as store:
            result = await store.optimize()
        note = "wrote unsaved managed sessions"
        if failed:
            note += f" ({len(failed)} could not be written)"
        return OptimizeResult(
            operations_performed=[note, *result.operations_performed],
            performance_impact=result.performance_impact,
        )

    def _needing_attention(self) -> list[str]:
        return [
            s.session_id or "(new)" for s in self._managed if s.state in ("conflict", "missing")
        ]

    # == configuration ===========================================================================

    async def update_config(
        self, config: SessionPersistenceConfig | None = None, /, **changes: Any
    ) -> SessionPersistenceConfig:
        """Change the configuration; switching stores migrates every session.

        Pass a whole config, or the options to change (``update_config(store_type="sqlite",
        sqlite_path=...)``). When the store changes (type, location, store config or
        durability), unsaved managed sessions are written first, then every session,
        expired ones included, is copied into the new store, which must be empty; the
        counts are compared; then the manager switches. Either all of that happens, or
        nothing changes: the old store is only read, and a failure removes what was copied.

        Other writers must be stopped while a store switch runs: the manager holds back its
        own managed sessions' writes, but not other processes' or other code's.

        Raises:
            ConfigurationError: An invalid option (nothing changed), or a switch inside a
                transaction.
            MigrationError: The copy failed; the manager still uses the old store.
        """
        new = config if config is not None else self._config.replace(**changes)
        if not isinstance(new, SessionPersistenceConfig):
            raise ConfigurationError("config", "must be a SessionPersistenceConfig")
        if not new.enable_event_listeners and self._listeners:
            raise ConfigurationError(
                "enable_event_listeners", "unregister the manager's listeners before disabling"
            )
        old_store = self._store
        if old_store is None:
            self._config = new
            return new
        if store_changed(self._config, new):
            if old_store._joined() is not None:
                raise ConfigurationError("store_type", "cannot switch stores inside a transaction")
            await self._migrate(old_store, new)
        self._unsubscribe_all()
        self._config = new
        self._subscribe_all()
        # Restart the timer with the new interval: a fresh event for the new loop, the old
        # event stops the old one (and wakes debounce waits, which then write at once).
        old_stopping, self._stopping = self._stopping, asyncio.Event()
        old_stopping.set()
        if self._interval_task is not None:
            await asyncio.gather(self._interval_task, return_exceptions=True)
        self._start_interval()
        return new

    async def _migrate(self, old: SessionStore, new: SessionPersistenceConfig) -> None:
        await self._flush(list(self._managed), background=False)
        target_name = f"{new.store_type}:{new.store_location()}"
        self._open_gate.clear()  # hold managed writes until the switch is done
        try:
            await self._idle.wait()
            try:
                target, owned = await open_configured_store(new)
            except SessionStoreError as error:
                raise MigrationError(
                    f"cannot open {target_name}: {error}; still using the old store",
                    target_name,
                ) from error
            try:
                await copy_sessions(old, target, target_name)
            except BaseException:
                if owned:
                    await target.shutdown()
                raise
            self._unsubscribe_all()
            self._store, owns_old = target, self._owns_store
            self._owns_store = owned
            if owns_old:
                await old.shutdown()  # closes it; its data stays where it was
        finally:
            self._open_gate.set()

    # == transactions and delegated store methods ================================================

    def transaction(self) -> TransactionContext:
        """Open a transaction on the current store: ``async with manager.transaction():``."""
        return self.store.transaction()

    async def iter_sessions(
        self, filter: SessionFilter | None = None
    ) -> AsyncIterator[PersistedSession]:
        """Yield the selected sessions one at a time (see :meth:`SessionStore.iter_sessions`)."""
        async for session in self.store.iter_sessions(filter):
            yield session

    create_session = _delegated(SessionStore.create_session)
    get_or_create_session = _delegated(SessionStore.get_or_create_session)
    fork_session = _delegated(SessionStore.fork_session)
    get_session = _delegated(SessionStore.get_session)
    require_session = _delegated(SessionStore.require_session)
    get_session_header = _delegated(SessionStore.get_session_header)
    get_interactions = _delegated(SessionStore.get_interactions)
    has_session = _delegated(SessionStore.has_session)
    update_session = _delegated(SessionStore.update_session)
    append_interactions = _delegated(SessionStore.append_interactions)
    delete_session = _delegated(SessionStore.delete_session)
    list_sessions = _delegated(SessionStore.list_sessions)
    list_session_headers = _delegated(SessionStore.list_session_headers)
    count_sessions = _delegated(SessionStore.count_sessions)
    search_sessions = _delegated(SessionStore.search_sessions)
    get_sessions_by_processor = _delegated(SessionStore.get_sessions_by_processor)
    get_active_sessions = _delegated(SessionStore.get_active_sessions)
    get_expired_sessions = _delegated(SessionStore.get_expired_sessions)
    set_session_expiration = _delegated(SessionStore.set_session_expiration)
    extend_session_expiration = _delegated(SessionStore.extend_session_expiration)
    refresh_session = _delegated(SessionStore.refresh_session)
    expire_sessions = _delegated(SessionStore.expire_sessions)
    cleanup_expired_sessions = _delegated(SessionStore.cleanup_expired_sessions)
    begin_transaction = _delegated(SessionStore.begin_transaction)
    with_transaction = _delegated(SessionStore.with_transaction)
    create_backup = _delegated(SessionStore.create_backup)
    list_backups = _delegated(SessionStore.list_backups)
    get_backup = _delegated(SessionStore.get_backup)
    delete_backup = _delegated(SessionStore.delete_backup)
    verify_backup = _delegated(SessionStore.verify_backup)
    restore_from_backup = _delegated(SessionStore.restore_from_backup)
    export_sessions = _delegated(SessionStore.export_sessions)
    import_sessions = _delegated(SessionStore.import_sessions)
    check = _delegated(SessionStore.check)
    rotate_key = _delegated(SessionStore.rotate_key)
    key_status = _delegated(SessionStore.key_status)

    # == background persistence (used by DefaultSession) =========================================

    def _adopt(self, session: DefaultSession) -> None:
        self._managed[session] = None

    def _forget(self, session: DefaultSession) -> None:
        self._managed.pop(session, None)
        self._failures.pop(session, None)
        task = self._scheduled.pop(session, None)
        if task is not None:
            task.cancel()

    def _schedule(
        self, session: DefaultSession, *, force: bool = False, delay: float | None = None
    ) -> None:
        """Write ``session`` after the debounce window (one write for a burst of changes)."""
        config = self._config
        if self._store is None or self._stopping.is_set() or session in self._scheduled:
            return  # closed, or shutting down: the shutdown flush writes it
        if not force and not (config.auto_persist_enabled and config.auto_persist_on_interaction):
            return  # the interval flush (or shutdown) writes it
        if session.state in ("conflict", "missing"):
            return  # retrying cannot succeed; the session reports it
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # Changed in another thread (a blocking caller of session_persistence.sync):
            # schedule it on the manager's loop. Without one, the interval flush picks it up.
            home = self._loop
            if home is not None and not home.is_closed():
                home.call_soon_threadsafe(
                    functools.partial(self._schedule, session, force=force, delay=delay)
                )
            return
        wait = seconds(config.auto_persist_delay) if delay is None else delay
        self._scheduled[session] = loop.create_task(self._persist_later(session, wait))

    async def _persist_later(self, session: DefaultSession, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)
        self._scheduled.pop(session, None)
        if session in self._managed:
            await self._flush([session], background=True)

    def _start_interval(self) -> None:
        if self._config.auto_persist_enabled:
            self._interval_task = asyncio.get_running_loop().create_task(self._interval_loop())
        else:
            self._interval_task = None

    async def _interval_loop(self) -> None:
        interval = seconds(self._config.auto_persist_interval)
        stopping = self._stopping
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), interval)
            if stopping.is_set():
                return
            candidates = [s for s in self._managed if s.is_auto_persist_enabled]
            await self._flush(candidates, background=True)

    async def _flush(
        self, sessions: Sequence[DefaultSession], *, background: bool
    ) -> list[DefaultSession]:
        """Write the unsaved ones of ``sessions`` concurrently; return those that failed.

        In the background, a failure other than a conflict or a lost record is retried with
        backoff; sessions in those two states are skipped (retrying cannot succeed).
        """
        todo = [
            s
            for s in sessions
            if s.has_unsaved_changes and not (background and s.state in ("conflict", "missing"))
        ]
        results = await asyncio.gather(*(s.persist() for s in todo), return_exceptions=True)
        failed = []
        for session, result in zip(todo, results, strict=True):
            if isinstance(result, BaseException):
                failed.append(session)
                if not isinstance(result, Exception):
                    raise result
                logger.warning(
                    "persisting session %s failed: %s",
                    session.session_id or "(new)",
                    result,
                )
                if background and not isinstance(
                    result, SessionConflictError | SessionNotFoundError
                ):
                    failures = self._failures[session] = self._failures.get(session, 0) + 1
                    interval = seconds(self._config.auto_persist_interval)
                    backoff = min(0.05 * 2**failures, interval)
                    self._schedule(session, force=True, delay=backoff)
            else:
                self._failures.pop(session, None)
        return failed

    @contextlib.asynccontextmanager
    async def _using(self) -> AsyncIterator[SessionStore]:
        """The current store, for one call; waits while a store switch runs."""
        while not self._open_gate.is_set():
            await self._open_gate.wait()
        store = self.store
        self._in_flight += 1
        self._idle.clear()
        try:
            yield store
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[SessionStore]:
        """The store for one persist of a managed session; a failure is counted."""
        try:
            async with self._using() as store:
                yield store
        except Exception as error:
            self._error_count += 1
            when = self._store.config.clock() if self._store is not None else utc_now()
            self._errors.append((when, f"{type(error).__name__}: {error}"))
            raise

    def _persisted(self, store: SessionStore) -> datetime:
        """Count one write of a managed session; return its time."""
        self._persist_count += 1
        self._last_persist_time = store.config.clock()
        return self._last_persist_time
