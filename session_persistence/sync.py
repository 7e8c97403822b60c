"""Blocking access for code with no event loop: Flask and Django views, scripts, notebooks.

:class:`SyncSessionStore` wraps any store, and :class:`SyncSessionPersistenceManager` a manager,
so every I/O method is a plain blocking call::

    from session_persistence import FileSystemSessionStore
    from session_persistence.sync import SyncSessionStore

    with SyncSessionStore(FileSystemSessionStore("./session_data")) as store:
        session, created = store.get_or_create_session("chat-42")

How it works: the wrapper runs its own event loop on one background thread, and each call
submits the async method to it and waits for the result. The logic is the async code, written
once (no twin implementations). Consequences:

* **Many threads at once.** Calls from any number of threads run as concurrent tasks on that
  loop, with the same guarantees as concurrent coroutines (versions, atomic get-or-create,
  appends that never lose each other).
* **Transactions.** ``with store.transaction() as tx:`` works as the async one does: the
  store's own calls made in the block, *in this thread* (or in a context copied from it),
  join the transaction; it commits when the block exits normally and rolls back on an
  exception; nested, it is a savepoint. Calls from other threads do not join it.
* **Listeners** (``on_session_created`` ...) run on the background thread. A listener must not
  call the blocking wrapper itself (that would wait on its own thread): it raises
  :class:`~session_persistence.errors.InvalidInputError`. Use an async listener and the async
  store (``wrapper.store``) there.
* ``shutdown()`` (or leaving the ``with`` block) shuts the store down and stops the thread.

Inside async code, use the async store directly: a blocking call made on a running event loop
blocks that loop for as long as the call takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Self, TypeVar

from .config import SessionStoreConfig
from .errors import InvalidInputError
from .events import Listener, Unsubscribe
from .manager import SessionPersistenceManager
from .manager_config import SessionPersistenceConfig
from .models import (
    UNSET,
    Interaction,
    PersistedSession,
    SessionFilter,
    SessionHeader,
    SessionObject,
    SessionUpdate,
    Unset,
)
from .serialization import Codec
from .session import DefaultSession
from .stores.base import SessionStore
from .transactions import Transaction, _ambient

if TYPE_CHECKING:
    pass

__all__ = ["SyncSessionPersistenceManager", "SyncSessionStore", "SyncTransaction"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

#: The transaction a ``with wrapper.transaction():`` block opened, in this context.
_current: contextvars.ContextVar[Transaction | None] = contextvars.ContextVar(
    "session_persistence_sync_transaction", default=None
)


class _LoopThread:
    """An event loop running on a daemon thread of its own; ``run`` blocks for a result."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _start(self) -> tuple[asyncio.AbstractEventLoop, bool]:
        """The running loop, and whether this call started it."""
        with self._lock:
            if self._loop is not None:
                return self._loop, False
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=self._main, args=(loop,), name=self._name, daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
            return loop, True

    @staticmethod
    def _main(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            # Whatever is left (a listener's task) is cancelled, not leaked.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def run(
        self,
        factory: Callable[[], Awaitable[R]],
        tx: Transaction | None = None,
        *,
        keep: bool = False,
    ) -> R:
        """Run ``factory()`` on the loop (inside ``tx`` if given) and return its result.

        ``keep``: leave a loop this call started running (``initialize``). Any other call that
        finds no loop (made after ``shutdown``, or before ``initialize``) stops the loop it
        started once it returns, so no thread is left behind.
        """
        if self._thread is not None and threading.get_ident() == self._thread.ident:
            raise InvalidInputError(
                "a blocking session-persistence call was made on the wrapper's own loop "
                "thread (from a listener?); it would wait for itself. Use the async store "
                "(wrapper.store) there"
            )
        loop, started = self._start()

        async def call() -> R:
            # This task's context is a copy of the caller's: inside the loop only the store's
            # own ambient transaction counts (a listener's blocking call must not join ours).
            _current.set(None)
            if tx is None:
                return await factory()
            token = _ambient.set(tx)  # the store's calls join the caller's transaction
            try:
                return await factory()
            finally:
                _ambient.reset(token)

        future = asyncio.run_coroutine_threadsafe(call(), loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # interrupted (Ctrl-C): do not leave the call running
            raise
        finally:
            if started and not keep:
                self.stop()

    def stop(self) -> None:
        """Stop the loop and wait for its thread (a later ``run`` starts a new one)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()


class SyncTransaction:
    """A transaction's blocking methods (see :class:`~session_persistence.Transaction`)."""

    def __init__(self, tx: Transaction, loop: _LoopThread) -> None:
        self._tx = tx
        self._loop = loop

    @property
    def transaction(self) -> Transaction:
        """The async transaction this wraps."""
        return self._tx

    @property
    def transaction_id(self) -> str:
        """A ULID string naming the transaction."""
        return self._tx.transaction_id

    @property
    def started_at(self) -> datetime:
        """When it began (UTC)."""
        return self._tx.started_at

    @property
    def is_active(self) -> bool:
        """True until it (or, for a savepoint, its parent) commits or rolls back."""
        return self._tx.is_active

    def commit(self) -> None:
        """Apply every staged change atomically, then fire events."""
        self._loop.run(self._tx.commit)

    def rollback(self) -> None:
        """Discard the staged changes."""
        self._loop.run(self._tx.rollback)

    def get_session(self, session_id: str) -> PersistedSession | None:
        """The session as this transaction sees it, or ``None``."""
        return self._loop.run(lambda: self._tx.get_session(session_id))

    def has_session(self, session_id: str) -> bool:
        """Whether the session exists (and is not expired) in this transaction."""
        return self._loop.run(lambda: self._tx.has_session(session_id))

    def create_session(
        self,
        session_object: SessionObject,
        *,
        session_id: str | None = None,
        expires_at: datetime | Unset | None = UNSET,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
    ) -> PersistedSession:
        """Stage a new session."""
        return self._loop.run(
            lambda: self._tx.create_session(
                session_object,
                session_id=session_id,
                expires_at=expires_at,
                metadata=metadata,
                tags=tags,
            )
        )

    def get_or_create_session(
        self,
        session_id: str,
        session_object: SessionObject | None = None,
        *,
        expires_at: datetime | Unset | None = UNSET,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
    ) -> tuple[PersistedSession, bool]:
        """Return the live session ``session_id``, or stage it."""
        return self._loop.run(
            lambda: self._tx.get_or_create_session(
                session_id, session_object, expires_at=expires_at, metadata=metadata, tags=tags
            )
        )

    def update_session(
        self,
        session_id: str,
        updates: SessionUpdate | Mapping[str, Any],
        *,
        expected_version: int | None = None,
    ) -> PersistedSession:
        """Stage an update."""
        return self._loop.run(
            lambda: self._tx.update_session(session_id, updates, expected_version=expected_version)
        )

    def append_interactions(
        self, session_id: str, *interactions: Interaction, expected_version: int | None = None
    ) -> SessionHeader:
        """Stage appended interactions."""
        return self._loop.run(
            lambda: self._tx.append_interactions(
                session_id, *interactions, expected_version=expected_version
            )
        )

    def delete_session(self, session_id: str) -> bool:
        """Stage a deletion."""
        return self._loop.run(lambda: self._tx.delete_session(session_id))

    def set_session_expiration(
        self, session_id: str, expires_at: datetime | None
    ) -> PersistedSession:
        """Stage a new expiry."""
        return self._loop.run(lambda: self._tx.set_session_expiration(session_id, expires_at))

    def extend_session_expiration(self, session_id: str, by: float | timedelta) -> PersistedSession:
        """Stage ``expires_at = max(expires_at, now) + by``."""
        return self._loop.run(lambda: self._tx.extend_session_expiration(session_id, by))

    def refresh_session(self, session_id: str) -> PersistedSession:
        """Stage a refresh."""
        return self._loop.run(lambda: self._tx.refresh_session(session_id))


class _Blocking:
    """What both wrappers share: the loop thread, ambient transactions, the context manager."""

    _loop: _LoopThread

    def _target(self) -> SessionStore:
        raise NotImplementedError

    def _run(self, factory: Callable[[], Awaitable[R]]) -> R:
        tx = _current.get()
        if tx is not None and (tx.store is not self._target() or not tx.is_active):
            tx = None
        return self._loop.run(factory, tx)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[SyncTransaction]:
        """A transaction: ``with wrapper.transaction() as tx: ...``.

        The store's own calls made in the block (in this thread) join it. It commits when the
        block exits normally and rolls back on an exception. Nested, it is a savepoint.
        """
        store = self._target()
        store._ensure_open()
        outer = _current.get()
        parent = outer if outer is not None and outer.store is store and outer.is_active else None
        tx = Transaction(store, parent=parent)
        token = _current.set(tx)
        sync_tx = SyncTransaction(tx, self._loop)
        try:
            yield sync_tx
        except BaseException:
            _current.reset(token)
            if tx.is_active:
                sync_tx.rollback()
            raise
        _current.reset(token)
        if tx.is_active:
            sync_tx.commit()

    def begin_transaction(self) -> SyncTransaction:
        """Start an explicit transaction: use its methods, then ``commit()`` or ``rollback()``."""
        store = self._target()
        store._ensure_open()
        return SyncTransaction(Transaction(store), self._loop)

    def with_transaction(self, operation: Callable[[SyncTransaction], T]) -> T:
        """Run ``operation(tx)`` in a :meth:`transaction` and return its result."""
        with self.transaction() as tx:
            return operation(tx)

    def iter_sessions(self, filter: SessionFilter | None = None) -> Iterator[PersistedSession]:
        """Yield the selected sessions one at a time, oldest first (a plain iterator)."""
        store = self._target()
        iterator = store.iter_sessions(filter)
        try:
            while True:
                try:
                    yield self._run(iterator.__anext__)
                except StopAsyncIteration:
                    return
        finally:
            close = getattr(iterator, "aclose", None)  # an async generator: finish it
            if close is not None and self.is_initialized:
                self._loop.run(close)

    def __enter__(self) -> Self:
        self.initialize()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.shutdown()

    @property
    def is_initialized(self) -> bool:
        """True between :meth:`initialize` and :meth:`shutdown`."""
        raise NotImplementedError

    def initialize(self) -> None:
        """Open (see the async ``initialize``)."""
        raise NotImplementedError

    def shutdown(self) -> None:
        """Close (see the async ``shutdown``)."""
        raise NotImplementedError


def _blocking(
    method: Callable[Concatenate[Any, P], Awaitable[R]],
) -> Callable[Concatenate[Any, P], R]:
    """A blocking method that runs the async method of the same name on the wrapped object."""
    name = method.__name__

    @functools.wraps(method)
    def call(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        target = self._wrapped()
        return self._run(lambda: getattr(target, name)(*args, **kwargs))  # type: ignore[no-any-return]

    call.__doc__ = f"Blocking ``{name}``: {method.__doc__ or ''}"
    return call


class SyncSessionStore(_Blocking):
    """Any store, as plain blocking calls, safe from many threads at once.

    ``with SyncSessionStore(store) as sync:`` opens and closes it. Every I/O method of
    :class:`~session_persistence.SessionStore` is here with the same arguments and results,
    blocking; :meth:`iter_sessions` is a plain iterator; :meth:`transaction` is a ``with``
    block. See the module docs for threads, transactions and listeners.

    Args:
        store: The store to wrap (not yet opened, or opened on no other event loop).
    """

    def __init__(self, store: SessionStore) -> None:
        if not isinstance(store, SessionStore):
            raise InvalidInputError(f"expected a SessionStore, got {type(store).__name__}")
        self._store = store
        self._loop = _LoopThread(f"session-persistence-sync-{type(store).__name__}")

    def __repr__(self) -> str:
        return f"<SyncSessionStore {self._store!r}>"

    def _target(self) -> SessionStore:
        return self._store

    def _wrapped(self) -> SessionStore:
        return self._store

    @property
    def store(self) -> SessionStore:
        """The async store (for async code and listeners, on the wrapper's thread)."""
        return self._store

    @property
    def is_initialized(self) -> bool:
        """True between :meth:`initialize` and :meth:`shutdown`."""
        return self._store.is_initialized

    @property
    def config(self) -> SessionStoreConfig:
        """The store's configuration."""
        return self._store.config

    @property
    def codec(self) -> Codec:
        """The codec the store serializes with."""
        return self._store.codec

    @property
    def store_type(self) -> str:
        """Name of the backend."""
        return self._store.store_type

    def initialize(self, config: SessionStoreConfig | None = None) -> None:
        """Open the store on the wrapper's loop (see :meth:`SessionStore.initialize`)."""
        self._loop.run(lambda: self._store.initialize(config), keep=True)

    def shutdown(self) -> None:
        """Shut the store down, then stop the wrapper's thread. Idempotent."""
        try:
            self._loop.run(self._store.shutdown)
        finally:
            self._loop.stop()

    def is_expired(self, header: SessionHeader | PersistedSession) -> bool:
        """Whether a session (or its header) counts as expired now, by the store's rules."""
        return self._store.is_expired(header)

    def on_session_created(self, callback: Listener) -> Unsubscribe:
        """Call ``callback(session)`` after each committed create (on the wrapper's thread)."""
        return self._store.on_session_created(callback)

    def on_session_updated(self, callback: Listener) -> Unsubscribe:
        """Call ``callback(new, old)`` after each committed update (on the wrapper's thread)."""
        return self._store.on_session_updated(callback)

    def on_session_deleted(self, callback: Listener) -> Unsubscribe:
        """Call ``callback(session_id)`` after each committed delete (on the wrapper's thread)."""
        return self._store.on_session_deleted(callback)

    def on_session_expired(self, callback: Listener) -> Unsubscribe:
        """Call ``callback(session)`` once when a session is found expired."""
        return self._store.on_session_expired(callback)

    def on_backup_created(self, callback: Listener) -> Unsubscribe:
        """Call ``callback(backup)`` after each backup is written."""
        return self._store.on_backup_created(callback)

    create_session = _blocking(SessionStore.create_session)
    get_or_create_session = _blocking(SessionStore.get_or_create_session)
    fork_session = _blocking(SessionStore.fork_session)
    get_session = _blocking(SessionStore.get_session)
    require_session = _blocking(SessionStore.require_session)
    get_session_header = _blocking(SessionStore.get_session_header)
    get_interactions = _blocking(SessionStore.get_interactions)
    has_session = _blocking(SessionStore.has_session)
    update_session = _blocking(SessionStore.update_session)
    append_interactions = _blocking(SessionStore.append_interactions)
    delete_session = _blocking(SessionStore.delete_session)
    list_sessions = _blocking(SessionStore.list_sessions)
    list_session_headers = _blocking(SessionStore.list_session_headers)
    count_sessions = _blocking(SessionStore.count_sessions)
    search_sessions = _blocking(SessionStore.search_sessions)
    get_sessions_by_processor = _blocking(SessionStore.get_sessions_by_processor)
    get_active_sessions = _blocking(SessionStore.get_active_sessions)
    get_expired_sessions = _blocking(SessionStore.get_expired_sessions)
    set_session_expiration = _blocking(SessionStore.set_session_expiration)
    extend_session_expiration = _blocking(SessionStore.extend_session_expiration)
    refresh_session = _blocking(SessionStore.refresh_session)
    expire_sessions = _blocking(SessionStore.expire_sessions)
    cleanup_expired_sessions = _blocking(SessionStore.cleanup_expired_sessions)
    create_backup = _blocking(SessionStore.create_backup)
    list_backups = _blocking(SessionStore.list_backups)
    get_backup = _blocking(SessionStore.get_backup)
    delete_backup = _blocking(SessionStore.delete_backup)
    verify_backup = _blocking(SessionStore.verify_backup)
    restore_from_backup = _blocking(SessionStore.restore_from_backup)
    export_sessions = _blocking(SessionStore.export_sessions)
    import_sessions = _blocking(SessionStore.import_sessions)
    get_stats = _blocking(SessionStore.get_stats)
    health_check = _blocking(SessionStore.health_check)
    check = _blocking(SessionStore.check)
    optimize = _blocking(SessionStore.optimize)
    rotate_key = _blocking(SessionStore.rotate_key)
    key_status = _blocking(SessionStore.key_status)


class SyncSessionPersistenceManager(_Blocking):
    """A :class:`~session_persistence.SessionPersistenceManager` as plain blocking calls.

    ``with SyncSessionPersistenceManager(config) as manager:`` opens and closes it. It has the
    manager's methods, blocking (managed sessions, queries, stats, ``update_config``, and every
    store method), plus blocking counterparts of :class:`DefaultSession`'s persistence calls:
    :meth:`persist` and :meth:`load_from_persistence`. A ``DefaultSession``'s mutators
    (``add_interaction``, ...) are already plain calls; with auto-persistence on, the manager
    writes the change shortly after, on its own thread.

    Args:
        config: As for the manager.
    """

    def __init__(self, config: SessionPersistenceConfig | None = None) -> None:
        self._manager = SessionPersistenceManager(config)
        self._loop = _LoopThread("session-persistence-sync-manager")

    def __repr__(self) -> str:
        return f"<SyncSessionPersistenceManager {self._manager.config.store_type}>"

    def _target(self) -> SessionStore:
        return self._manager.store

    def _wrapped(self) -> SessionPersistenceManager:
        return self._manager

    @property
    def manager(self) -> SessionPersistenceManager:
        """The async manager (for async code and listeners, on the wrapper's thread)."""
        return self._manager

    @property
    def config(self) -> SessionPersistenceConfig:
        """The manager's configuration."""
        return self._manager.config

    @property
    def is_initialized(self) -> bool:
        """True between :meth:`initialize` and :meth:`shutdown`."""
        return self._manager.is_initialized

    @property
    def managed_sessions(self) -> list[DefaultSession]:
        """The sessions this manager manages."""
        return self._manager.managed_sessions

    def initialize(self) -> None:
        """Open the store and start background persistence (on the wrapper's thread)."""
        self._loop.run(self._manager.initialize, keep=True)

    def shutdown(self) -> None:
        """Flush every unsaved managed session, close the store, stop the thread.

        Raises:
            UnsavedChangesError: As for the manager (the store is closed anyway).
        """
        try:
            self._loop.run(self._manager.shutdown)
        finally:
            self._loop.stop()

    def persist(self, session: DefaultSession, *, recreate: bool = False) -> str | None:
        """Blocking :meth:`DefaultSession.persist` (the session must be managed here)."""
        return self._run(lambda: session.persist(recreate=recreate))

    def load_from_persistence(self, session: DefaultSession, session_id: str | None = None) -> bool:
        """Blocking :meth:`DefaultSession.load_from_persistence`."""
        return self._run(lambda: session.load_from_persistence(session_id))

    def mark_session_for_persistence(self, session_id: str) -> bool:
        """Write the managed session(s) of this record soon (see the manager)."""
        return self._loop.run(
            lambda: _returning(self._manager.mark_session_for_persistence, session_id)
        )

    def on_session_created(self, callback: Listener) -> Unsubscribe:
        """Call ``callback(session)`` after each committed create (on the wrapper's thread)."""
        return self._manager.on_session_created(callback)

    def on_session_updated(self, callback: Listener) -> Unsubscribe:
        """Call ``callback(new, old)`` after each committed update (on the wrapper's thread)."""
        return self._manager.on_session_updated(callback)

    def on_session_deleted(self, callback: Listener) -> Unsubscribe:
        """Call ``callback(session_id)`` after each committed delete (on the wrapper's thread)."""
        return self._manager.on_session_deleted(callback)

    def on_session_expired(self, callback: Listener) -> Unsubscribe:
        """Call ``callback(session)`` once when a session is found expired."""
        return self._manager.on_session_expired(callback)

    def on_session_recreated(self, callback: Listener) -> Unsubscribe:
        """Call ``callback(session)`` when an expired managed session is written back."""
        return self._manager.on_session_recreated(callback)

    def on_backup_created(self, callback: Listener) -> Unsubscribe:
        """Call ``callback(backup)`` after each backup is written."""
        return self._manager.on_backup_created(callback)

    create_managed_session = _blocking(SessionPersistenceManager.create_managed_session)
    get_or_create_managed_session = _blocking(
        SessionPersistenceManager.get_or_create_managed_session
    )
    load_managed_session = _blocking(SessionPersistenceManager.load_managed_session)
    require_managed_session = _blocking(SessionPersistenceManager.require_managed_session)
    persist_session = _blocking(SessionPersistenceManager.persist_session)
    unmanage_session = _blocking(SessionPersistenceManager.unmanage_session)
    find_sessions = _blocking(SessionPersistenceManager.find_sessions)
    find_session_headers = _blocking(SessionPersistenceManager.find_session_headers)
    get_session_summary = _blocking(SessionPersistenceManager.get_session_summary)
    bulk_update_sessions = _blocking(SessionPersistenceManager.bulk_update_sessions)
    update_config = _blocking(SessionPersistenceManager.update_config)
    create_session = _blocking(SessionPersistenceManager.create_session)
    get_or_create_session = _blocking(SessionPersistenceManager.get_or_create_session)
    fork_session = _blocking(SessionPersistenceManager.fork_session)
    fork_managed_session = _blocking(SessionPersistenceManager.fork_managed_session)
    get_session = _blocking(SessionPersistenceManager.get_session)
    require_session = _blocking(SessionPersistenceManager.require_session)
    get_session_header = _blocking(SessionPersistenceManager.get_session_header)
    get_interactions = _blocking(SessionPersistenceManager.get_interactions)
    has_session = _blocking(SessionPersistenceManager.has_session)
    update_session = _blocking(SessionPersistenceManager.update_session)
    append_interactions = _blocking(SessionPersistenceManager.append_interactions)
    delete_session = _blocking(SessionPersistenceManager.delete_session)
    list_sessions = _blocking(SessionPersistenceManager.list_sessions)
    list_session_headers = _blocking(SessionPersistenceManager.list_session_headers)
    count_sessions = _blocking(SessionPersistenceManager.count_sessions)
    search_sessions = _blocking(SessionPersistenceManager.search_sessions)
    get_sessions_by_processor = _blocking(SessionPersistenceManager.get_sessions_by_processor)
    get_active_sessions = _blocking(SessionPersistenceManager.get_active_sessions)
    get_expired_sessions = _blocking(SessionPersistenceManager.get_expired_sessions)
    set_session_expiration = _blocking(SessionPersistenceManager.set_session_expiration)
    extend_session_expiration = _blocking(SessionPersistenceManager.extend_session_expiration)
    refresh_session = _blocking(SessionPersistenceManager.refresh_session)
    expire_sessions = _blocking(SessionPersistenceManager.expire_sessions)
    cleanup_expired_sessions = _blocking(SessionPersistenceManager.cleanup_expired_sessions)
    create_backup = _blocking(SessionPersistenceManager.create_backup)
    list_backups = _blocking(SessionPersistenceManager.list_backups)
    get_backup = _blocking(SessionPersistenceManager.get_backup)
    delete_backup = _blocking(SessionPersistenceManager.delete_backup)
    verify_backup = _blocking(SessionPersistenceManager.verify_backup)
    restore_from_backup = _blocking(SessionPersistenceManager.restore_from_backup)
    export_sessions = _blocking(SessionPersistenceManager.export_sessions)
    import_sessions = _blocking(SessionPersistenceManager.import_sessions)
    check = _blocking(SessionPersistenceManager.check)
    get_stats = _blocking(SessionPersistenceManager.get_stats)
    health_check = _blocking(SessionPersistenceManager.health_check)
    optimize = _blocking(SessionPersistenceManager.optimize)
    rotate_key = _blocking(SessionPersistenceManager.rotate_key)
    key_status = _blocking(SessionPersistenceManager.key_status)


async def _returning(function: Callable[..., R], *args: Any) -> R:
    """Run a plain function on the loop (for manager methods that touch loop state)."""
    return function(*args)
