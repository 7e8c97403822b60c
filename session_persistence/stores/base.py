"""``SessionStore``: the narrow core each backend implements, and the wide API built on it.

A backend implements six primitives, documented on the abstract methods below:

* ``_open()`` / ``_close()`` — acquire and release resources;
* ``_load(id)`` — point read of a whole session (a copy the caller owns);
* ``_get_header(id)`` — point read of a session's header (no interactions);
* ``_scan()`` — every stored session's header, from an index (never by parsing sessions);
* ``_apply(ops)`` — one atomic, version-checked write of a batch of operations;

and may implement ``_apply_single(id, build)``, a single-operation write in one step.

Everything else — CRUD, appends, filtering, search, sorting, pagination, expiry rules, limits,
id validation, transactions (ambient, savepoints, optimistic validation), events, stats, health
and optimize — is written here once (with the mixins beside this module, kept apart for size:
:mod:`._keyed`, :mod:`._history` for partial reads and header listings, :mod:`._monitoring`,
:mod:`._backup_methods`), so every backend behaves the same and passes the same conformance
suite (:mod:`session_persistence.testing`).

Every write is version-checked. Inside a transaction, a call is staged and committed with it.
Outside one, a plain ``update_session``, ``append_interactions`` or ``delete_session`` is a
*single-operation write* (:mod:`._single`): the staging steps a transaction uses, packed into a
pure *build* from the stored state to one op, which :meth:`SessionStore._apply_single` runs
(a backend may do the read, the check and the write in one step; the default reads, builds and
applies). When the caller gave no ``expected_version`` and another writer got in between, the
write is retried on the fresh state (so ``merge_metadata`` or appends never lose a concurrent
change); when the caller did give one, the conflict is raised. Other writes (expiry changes,
``refresh_session``) run in a short implicit transaction.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import contextlib
import dataclasses
import logging
import random
import warnings
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterator,
    Mapping,
    Sequence,
)
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

from .._copy import clone_session
from .._envelope import Envelope, compression_of
from .._fileio import FileIO
from .._gate import WriteGate
from .._ids import validate_session_id
from ..backups import Backups
from ..config import SessionStoreConfig, seconds
from ..errors import (
    ConfigurationError,
    InvalidInputError,
    SessionConflictError,
    SessionLimitError,
    SessionNotFoundError,
    SessionTooLargeError,
    StoreClosedError,
    StoreCorruptionError,
    StoreIOError,
    StoreLockTimeoutError,
    StoreReadOnlyError,
)
from ..events import EventBus, EventName, Listener, Unsubscribe
from ..models import (
    UNSET,
    Interaction,
    PersistedSession,
    ProgressCallback,
    SessionFilter,
    SessionHeader,
    SessionObject,
    SessionQueryOptions,
    SessionUpdate,
    Unset,
)
from ..ops import DeleteOp, PutOp, WriteOp
from ..query import (
    Search,
    compile_filter,
    is_expired,
    matches_search,
    sort_and_page,
)
from ..query import search_interactions as search_interactions_of
from ..serialization import Codec, default_codec
from ..transactions import (
    Transaction,
    TransactionContext,
    _checked_expected,
    ambient_transaction,
    encode_session,
    new_session,
    outside_transaction,
)
from ._backup_methods import BackupMethods
from ._history import HistoryMethods
from ._keyed import KeyedMethods
from ._monitoring import MonitoringMethods
from ._sealing import SealingMethods
from ._single import AppendBuild, DeleteBuild, UpdateBuild, write_one

__all__ = ["SessionStore"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_MAX_WRITE_ATTEMPTS = 50
_CLEANUP_BATCH = 500


class SessionStore(
    KeyedMethods, HistoryMethods, MonitoringMethods, BackupMethods, SealingMethods, abc.ABC
):
    """The store contract: the whole public API, over a narrow abstract core.

    Stores are async context managers: ``async with store:`` initializes and shuts down.
    Every I/O method is ``async``. Returned sessions are the caller's own copies.

    Args:
        config: Options (TTL, limits, cleanup, clock); may also be given to :meth:`initialize`.
        codec: The serialization codec (defaults to the process-wide one, where
            ``register_*`` adds user types).
    """

    #: Name of the backend, reported by stats.
    store_type: ClassVar[str] = "custom"

    #: Whether backup and export files are fsynced (a backend without durability says no).
    _durable_backups: bool = True

    #: The I/O seam for the files written beside the backend's own storage (backups, exports
    #: to a path). A backend with its own seam (the filesystem store's ``_io=``) sets it in its
    #: constructor, so tests inject faults into those files the same way.
    _io: FileIO = FileIO()
    #: Opened to inspect only: nothing on disk changes (see the filesystem store's ``read_only``).
    _read_only: bool = False

    def _writable(self) -> None:
        """Raise :class:`StoreReadOnlyError` if the store was opened read-only."""
        if self._read_only:
            raise StoreReadOnlyError(
                f"{self!r} was opened read-only (to inspect it); open it without read_only "
                "to change it"
            )

    def __init__(
        self, config: SessionStoreConfig | None = None, *, codec: Codec | None = None
    ) -> None:
        if config is not None and not isinstance(config, SessionStoreConfig):
            raise ConfigurationError("config", "must be a SessionStoreConfig")
        self._config = config or SessionStoreConfig()
        self._codec = codec or default_codec
        self._events = EventBus()
        self._is_open = False
        self._tasks: list[asyncio.Task[None]] = []
        self._reported_expired: dict[str, int] = {}
        self._errors: collections.deque[tuple[datetime, str]] = collections.deque(maxlen=1000)
        self._conflicts = 0
        self._gate = WriteGate()
        self._backups = Backups(self)
        self._resolve_config()

    def _resolve_config(self) -> None:
        self._ttl: timedelta | None = self._config.ttl()
        # Sliding expiry: see session_persistence._expiry.slid_expiry.
        self._sliding = self._config.expiry_mode == "sliding"
        self._idle: timedelta | None = self._config.idle()
        self._now: Callable[[], datetime] = self._config.clock
        self._envelope = Envelope(self._config.encryption, compression_of(self._config.compression))

    def _use_active_key(self, key_id: str) -> None:
        """Seal new records with ``key_id`` from now on (``rotate_key``'s first step)."""
        self._envelope.activate(key_id)
        self._config = dataclasses.replace(self._config, encryption=self._envelope.keyring)

    @property
    def config(self) -> SessionStoreConfig:
        """The store's configuration."""
        return self._config

    @property
    def codec(self) -> Codec:
        """The codec this store serializes with."""
        return self._codec

    # == the narrow core: what a backend implements ==============================================

    @abc.abstractmethod
    async def _open(self) -> None:
        """Acquire resources and recover state; called once by :meth:`initialize`."""

    @abc.abstractmethod
    async def _close(self) -> None:
        """Flush and release resources; called once by :meth:`shutdown`. Never deletes data."""

    @abc.abstractmethod
    async def _load(self, session_id: str) -> PersistedSession | None:
        """Return the stored session (expired or not) or ``None``.

        The result must be the caller's own object: the base may hand it to users, who may
        mutate it, so it must share no mutable state with what the backend keeps.
        """

    @abc.abstractmethod
    async def _get_header(self, session_id: str) -> SessionHeader | None:
        """Return the latest committed header of a session (expired or not) or ``None``."""

    @abc.abstractmethod
    async def _scan(self) -> Sequence[SessionHeader]:
        """Return the headers of every stored session (expired ones too).

        Must be answered from an index, not by reading every session, and be a snapshot: later
        writes must not change the returned sequence.
        """

    @abc.abstractmethod
    async def _apply(self, ops: Sequence[WriteOp], *, max_sessions: int | None) -> None:
        """Apply a batch atomically: all of it, durably, or none of it.

        Every op's ``expected`` version is checked against the latest committed state inside
        the same atomic step (across processes, for a store that several may open); on a
        mismatch raise ``SessionConflictError`` and apply nothing
        (:func:`session_persistence.ops.check_versions` helps). If ``max_sessions`` is set and
        the batch would leave more sessions than that, raise ``SessionLimitError`` and apply
        nothing. Storage failures raise ``OSError`` or ``StoreIOError``; nothing may be
        acknowledged that is not durable by the backend's stated guarantee.
        """

    async def _apply_single(
        self,
        session_id: str,
        build: Callable[[SessionHeader | None, PersistedSession | None], tuple[WriteOp | None, T]],
        *,
        load: bool,
        max_sessions: int | None,
    ) -> T:
        """Optional: read one session, build its op from what was read, and apply it.

        The single-operation write path (a plain ``update_session``, ``append_interactions``
        or ``delete_session``, no transaction). ``build(header, session)`` is a pure function
        from the session's stored state to ``(op, result)``: ``header`` is its latest
        committed header (``None``: absent; with this process's recorded reads, as
        :meth:`_get_header` returns it), ``session`` its whole stored state if ``load`` (else
        ``None``; ``None`` too when absent); ``op`` is what to apply (``None``: nothing to
        write) and ``result`` what to return.

        What ``build`` may do: read the clock, validate, encode and size-check (on whatever
        thread calls it), and raise the caller's typed errors (``SessionNotFoundError``,
        ``SessionConflictError`` for a stale ``expected_version``, ``SerializationError``,
        ``SessionTooLargeError``...). It never does I/O, never awaits and never calls the
        store. It may be called more than once (a store may retry); each call starts afresh.
        ``session`` and ``header`` become the caller's (they go to listeners): pass copies
        nothing else shares.

        What the store must guarantee: ``op`` is applied only if the session is still at the
        version ``build`` saw, atomically and durably as :meth:`_apply` does (the op's own
        ``expected`` says so: the version read), checking ``max_sessions`` as :meth:`_apply`
        does; an exception from ``build`` applies nothing and reaches the caller unchanged;
        storage failures raise ``OSError`` or ``StoreIOError``.

        A backend that can do it all in one step overrides this: it calls ``build`` where it
        holds its write lock (or inside its write transaction), after reading the state there,
        so no other writer can come in between and no conflict can arise (the SQLite store:
        one call on its connection's thread). The default reads with :meth:`_get_header` and
        :meth:`_load`, builds on the event loop and applies with :meth:`_apply`; a write that
        came in between surfaces as ``SessionConflictError`` and the caller retries.
        """
        header = await self._get_header(session_id)
        session = None
        if load and header is not None:
            session = await self._load(session_id)
            actual = None if session is None else session.version
            if actual != header.version:  # written in between: the caller retries
                raise SessionConflictError(session_id, header.version, actual)
        op, result = build(header, session)
        if op is not None:
            await self._apply([op], max_sessions=max_sessions)
        return result

    def _touch(self, session_id: str, when: datetime) -> None:
        """Record a read at ``when`` in ``last_accessed_at`` (best effort, no durable write).

        Later ``_load``, ``_get_header`` and ``_scan`` results must show the recorded time, as
        idle expiry is judged from them. The default does nothing: a backend that does not
        override it does not support ``idle_timeout``.
        """

    async def _session_count(self) -> int:
        """Return how many sessions are stored (expired ones too)."""
        return len(await self._scan())

    async def _backend_stats(self) -> dict[str, Any]:
        """Return backend-specific figures for :meth:`get_stats`."""
        return {}

    async def _probe(self) -> list[str]:
        """Run the backend's health probes; return one sentence per problem found."""
        return []

    async def _optimize_backend(self) -> list[str]:
        """Do backend maintenance; return one line per operation performed."""
        return []

    async def _reseal(self, key_id: str, progress: ProgressCallback) -> int:
        """Re-seal every record at rest not sealed with ``key_id``; see :mod:`._sealing`.

        The default has nothing at rest to re-seal (a store that keeps nothing on disk).
        """
        progress(0, 0)
        return 0

    async def _key_census(self) -> Mapping[str | None, int]:
        """Count records at rest per sealing key (``None``: unsealed); see :mod:`._sealing`."""
        return {}

    async def _query(
        self,
        flt: SessionFilter,
        options: SessionQueryOptions,
        now: datetime,
        search: Search | None = None,
    ) -> list[SessionHeader] | None:
        """Push a query down to the backend, or return ``None`` to let the base answer it.

        Return the headers that ``flt`` selects at ``now`` (live ones only, unless
        ``flt.include_expired``) and, if given, that ``search`` finds, sorted and paginated
        by ``options`` exactly as :func:`~session_persistence.query.sort_and_page` would.
        Never called inside a transaction (its overlay needs :meth:`_scan`).
        """
        return None

    async def _scan_for(self, flt: SessionFilter) -> Sequence[SessionHeader]:
        """Optional: the headers of at least every session ``flt`` can select.

        A backend with a secondary index (the filesystem store indexes ``processor_id``)
        returns fewer than :meth:`_scan`; the filter is applied to what it returns anyway.
        """
        return await self._scan()

    async def _count(self, flt: SessionFilter, now: datetime) -> int | None:
        """Push a count down to the backend, or return ``None`` to count :meth:`_scan`."""
        return None

    async def _expired_headers(self, now: datetime) -> Sequence[SessionHeader]:
        """Return the headers of every session expired at ``now`` (a backend may push down)."""
        return [h for h in await self._scan() if self._expired(h, now)]

    async def _load_many(self, session_ids: Sequence[str]) -> list[PersistedSession | None]:
        """Load several sessions (``None`` for each missing one); a backend may batch it.

        A session found damaged is ``None`` too, so one damaged session never hides the
        others from a listing: the error is counted for :meth:`health_check`, and the
        backend has set the damage aside or reports it.
        """
        loaded: list[PersistedSession | None] = []
        for session_id in session_ids:
            try:
                loaded.append(await self._load(session_id))
            except StoreCorruptionError as exc:
                self._record_error(exc)
                logger.error("leaving damaged session %s out: %s", session_id, exc)
                loaded.append(None)
        return loaded

    @contextlib.asynccontextmanager
    async def _frozen(self) -> AsyncIterator[None]:
        """Hold off every writer while the block runs; reads inside see one committed instant.

        The default holds off this process's writers (every write passes ``_apply_batch``),
        which is enough for a store no other process writes. A backend that processes share
        must override it to exclude them too (and call this one).
        """
        async with self._gate.frozen():
            yield

    def _default_backup_dir(self) -> Path | None:
        """Where backups go when ``backup_dir`` is not configured (``None``: in memory)."""
        return None

    # == lifecycle ===============================================================================

    @property
    def is_initialized(self) -> bool:
        """True between :meth:`initialize` and :meth:`shutdown`."""
        return self._is_open

    async def initialize(self, config: SessionStoreConfig | None = None) -> None:
        """Open the store (recovering any state it keeps) and start its background tasks.

        Args:
            config: Replaces the configuration given to the constructor.

        Raises:
            ConfigurationError: ``config`` is invalid, or the store is already open with a
                different configuration.
            StoreIOError: The storage could not be opened.
        """
        if self._is_open:
            if config is not None and config != self._config:
                raise ConfigurationError(
                    "config", "the store is already open; shut it down to change its config"
                )
            return
        if config is not None:
            if not isinstance(config, SessionStoreConfig):
                raise ConfigurationError("config", "must be a SessionStoreConfig")
            self._config = config
            self._resolve_config()
        self._gate = WriteGate()  # bound to this event loop
        try:
            await self._open()
        except OSError as exc:
            raise StoreIOError(f"cannot open the store: {exc}") from exc
        try:
            await asyncio.to_thread(self._backups.open)
        except OSError as exc:
            await self._close()
            raise StoreIOError(f"cannot open the backup directory: {exc}") from exc
        self._is_open = True
        if self._config.auto_cleanup_enabled:
            self._spawn(self._cleanup_loop, "cleanup")
        if self._config.backup_enabled:
            self._spawn(self._backups.timed_loop, "backups")

    async def shutdown(self) -> None:
        """Stop background tasks, flush, and close. Never deletes data. Idempotent."""
        if not self._is_open:
            return
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await self._close()
        finally:
            self._is_open = False

    async def __aenter__(self) -> Self:
        await self.initialize()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    def __del__(self) -> None:
        if getattr(self, "_is_open", False):
            warnings.warn(
                f"{type(self).__name__} was not shut down; call 'await store.shutdown()' "
                "or use 'async with store:'",
                ResourceWarning,
                stacklevel=2,
                source=self,
            )

    def _ensure_open(self) -> None:
        if not self._is_open:
            raise StoreClosedError()

    def _spawn(self, body: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        """Run ``body`` in a background task that :meth:`shutdown` cancels."""
        task = asyncio.get_running_loop().create_task(body(), name=f"{type(self).__name__}.{name}")
        self._tasks.append(task)

    async def _cleanup_loop(self) -> None:
        interval = seconds(self._config.cleanup_interval)
        while True:
            await asyncio.sleep(interval)
            try:
                removed = await self.cleanup_expired_sessions()
            except Exception as exc:  # keep the timer alive; the error is counted and logged
                self._record_error(exc)
                logger.exception("background cleanup failed; retrying in %.1fs", interval)
            else:
                if removed:
                    logger.debug("background cleanup removed %d expired sessions", removed)

    # == guarded access to the core ==============================================================

    def _record_error(self, error: BaseException) -> None:
        self._errors.append((self._now(), f"{type(error).__name__}: {error}"))

    @contextlib.contextmanager
    def _storage_errors(self, failed: str) -> Iterator[None]:
        """Count storage errors for health; a bare ``OSError`` becomes ``StoreIOError``.

        ``failed`` says what failed; ``{}`` in it is replaced by the error.
        """
        try:
            yield
        except (StoreIOError, StoreCorruptionError, StoreLockTimeoutError) as exc:
            self._record_error(exc)
            raise
        except OSError as exc:
            self._record_error(exc)
            raise StoreIOError(failed.format(exc)) from exc

    async def _read_header(self, session_id: str) -> SessionHeader | None:
        with self._storage_errors(f"reading session {session_id} failed: {{}}"):
            return await self._get_header(session_id)

    async def _read_session(self, session_id: str) -> PersistedSession | None:
        with self._storage_errors(f"reading session {session_id} failed: {{}}"):
            return await self._load(session_id)

    async def _apply_batch(self, ops: Sequence[WriteOp]) -> None:
        await self._gate.enter()  # a backup's freeze holds writers here
        try:
            with self._storage_errors("writing to the store failed: {}; nothing was applied"):
                await self._apply(ops, max_sessions=self._config.max_sessions)
        except SessionConflictError:
            self._conflicts += 1
            raise
        finally:
            self._gate.leave()

    async def _write(
        self, stage: Callable[[Transaction], Awaitable[T]], *, retry: bool = True
    ) -> T:
        """Run ``stage`` in the ambient transaction, or in implicit ones until it commits."""
        self._ensure_open()
        tx = ambient_transaction()
        if tx is not None and tx.store is self:
            return await stage(tx)
        attempt = 0
        while True:
            tx = Transaction(self, implicit=True)
            try:
                result = await stage(tx)
                await tx.commit()
            except SessionConflictError:
                attempt += 1
                if not retry or attempt >= _MAX_WRITE_ATTEMPTS:
                    raise
                # Randomized backoff keeps many contending writers from retrying in lockstep.
                await asyncio.sleep(random.uniform(0, min(0.0005 * 2**attempt, 0.02)))
            else:
                return result

    def _joined(self) -> Transaction | None:
        tx = ambient_transaction()
        return tx if tx is not None and tx.store is self else None

    def _check_size(self, session_id: str | None, size: int) -> None:
        if size > self._config.max_session_bytes:
            raise SessionTooLargeError(session_id, size, self._config.max_session_bytes)

    async def _ensure_capacity(self, pending_creates: int) -> None:
        limit = self._config.max_sessions
        if limit is None:
            return
        if await self._session_count() + pending_creates <= limit:
            return
        await self._remove_expired()
        if await self._session_count() + pending_creates > limit:
            raise SessionLimitError(limit)

    def _expired(self, header: SessionHeader | PersistedSession, now: datetime) -> bool:
        return is_expired(header, now, self._idle)

    # == CRUD ====================================================================================

    async def create_session(
        self,
        session_object: SessionObject,
        *,
        session_id: str | None = None,
        expires_at: datetime | Unset | None = UNSET,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
    ) -> PersistedSession:
        """Store a new session and return it (``version`` 1, a new monotonic ULID id).

        Args:
            session_object: The processor's ids and interactions (copied).
            session_id: The caller's own id (a ULID or ``[A-Za-z0-9_-]{1,128}``), stored and
                returned as given; left out, a new monotonic ULID. An expired session not yet
                cleaned up under that id is replaced (the new one's ``version`` continues
                from it); :meth:`get_or_create_session` takes an existing one instead.
            expires_at: When it expires; ``None`` for never; left out, ``default_session_ttl``
                from now.
            metadata: Free-form data (copied).
            tags: Labels.

        Raises:
            InvalidInputError: A malformed argument.
            InvalidSessionIdError: ``session_id`` is not a valid id.
            SessionExistsError: A live session already has ``session_id``.
            SerializationError: A value cannot be serialized (``.path`` says where).
            SessionTooLargeError: Over ``max_session_bytes``.
            SessionLimitError: The store is full even after removing expired sessions.
        """
        self._ensure_open()
        if session_id is not None:
            # The caller's id may be taken (or held by an expired record): a read, then a
            # version-checked create, in a transaction.
            validate_session_id(session_id)
            return await self._write(
                lambda tx: tx.create_session(
                    session_object,
                    session_id=session_id,
                    expires_at=expires_at,
                    metadata=metadata,
                    tags=tags,
                )
            )
        tx = self._joined()
        if tx is not None:
            return await tx.create_session(
                session_object, expires_at=expires_at, metadata=metadata, tags=tags
            )
        # A new id cannot conflict: no read, no build, one batch of one op.
        session = new_session(self, session_object, expires_at, metadata, tags)
        data, header = encode_session(self, session)
        await self._ensure_capacity(1)
        await self._apply_batch([PutOp(session, header, data, None)])
        await self._emit("session_created", session)
        return clone_session(session)

    async def get_session(self, session_id: str) -> PersistedSession | None:
        """Return the session, or ``None`` if it does not exist or has expired.

        Refreshes ``last_accessed_at`` (without changing ``version``).

        Raises:
            InvalidSessionIdError: ``session_id`` is not a valid id.
        """
        self._ensure_open()
        tx = self._joined()
        if tx is not None:
            return await tx.get_session(session_id)
        session_id = validate_session_id(session_id)
        with self._storage_errors(f"reading session {session_id} failed: {{}}"):
            return await self._load_live(session_id, self._now())

    async def _load_live(self, session_id: str, now: datetime) -> PersistedSession | None:
        """Optional: :meth:`get_session`'s read: the session if stored and live at ``now``.

        Records the read (:meth:`_touch`) only for a live session, and returns it with that
        read in ``last_accessed_at``. The default judges expiry from the header (an index
        lookup) before loading; a backend that reads a whole session as cheaply as a header
        overrides it to read once.
        """
        header = await self._get_header(session_id)
        if header is None or self._expired(header, now):
            return None
        # The touch is then visible in what _load returns, so nothing is copied twice.
        self._touch(session_id, now)
        return await self._load(session_id)

    async def require_session(self, session_id: str) -> PersistedSession:
        """Return the session, which must exist: :meth:`get_session` without the ``None``.

        For code that expects the session to be there, such as a request carrying its id: the
        result needs no check (``mypy --strict`` is satisfied), and a missing session is an
        error that says which.

        Raises:
            SessionNotFoundError: No such session, or it has expired.
            InvalidSessionIdError: ``session_id`` is not a valid id.
        """
        session = await self.get_session(session_id)
        if session is None:
            raise SessionNotFoundError(session_id)
        return session

    async def has_session(self, session_id: str) -> bool:
        """Return whether the session exists and has not expired."""
        self._ensure_open()
        tx = self._joined()
        if tx is not None:
            return await tx.has_session(session_id)
        header = await self._read_header(validate_session_id(session_id))
        return header is not None and not self._expired(header, self._now())

    async def get_session_header(self, session_id: str) -> SessionHeader | None:
        """Return a session's header (no interactions), expired or not; ``None`` if absent.

        Cheap (an index lookup on stores that keep one) and not an access: it does not
        refresh ``last_accessed_at``. Expired sessions are returned until cleanup removes
        them; check with ``header.expires_at`` or the manager's ``get_session_summary``.

        Raises:
            InvalidSessionIdError: ``session_id`` is not a valid id.
        """
        self._ensure_open()
        session_id = validate_session_id(session_id)
        header = await self._read_header(session_id)
        tx = self._joined()
        if tx is not None:
            seen = tx._overlay([] if header is None else [header])
            header = next((h for h in seen if h.session_id == session_id), None)
        return header

    def is_expired(self, header: SessionHeader | PersistedSession) -> bool:
        """Whether a session (or its header) counts as expired now, by this store's rules.

        Both ``expires_at`` and ``idle_timeout`` count.
        """
        return self._expired(header, self._now())

    async def update_session(
        self,
        session_id: str,
        updates: SessionUpdate | Mapping[str, Any],
        *,
        expected_version: int | None = None,
    ) -> PersistedSession:
        """Change a session's ``interactions``, ``metadata``, ``tags`` or ``expires_at``.

        Args:
            session_id: The session.
            updates: A :class:`SessionUpdate` or a dict with only those keys (plus
                ``merge_metadata=True`` to merge metadata instead of replacing it).
            expected_version: If given, the update applies only if the stored version is
                this one, atomically (across processes too).

        Returns:
            The updated session (``version`` + 1).

        Raises:
            InvalidUpdateError: Another key (``session_id``, ``version``, ...) or a bad value.
            SessionNotFoundError: No such session, or it has expired.
            SessionConflictError: ``expected_version`` differs from the stored version.
            SerializationError, SessionTooLargeError: As for :meth:`create_session`.
        """
        self._ensure_open()
        tx = self._joined()
        if tx is not None:
            return await tx.update_session(session_id, updates, expected_version=expected_version)
        update = SessionUpdate.coerce(updates)
        _checked_expected(expected_version)
        build = UpdateBuild(self, validate_session_id(session_id), update, expected_version)
        return await write_one(self, build, retry=expected_version is None)

    async def append_interactions(
        self, session_id: str, *interactions: Interaction, expected_version: int | None = None
    ) -> SessionHeader:
        """Append interactions without rewriting the session's history.

        The cost does not grow with the number of interactions already stored (on backends
        that support it; see each store's docs).

        Returns:
            The session's new header (``version``, ``interaction_count``, timestamps).

        Raises:
            SessionNotFoundError: No such session, or it has expired.
            SessionConflictError: ``expected_version`` differs from the stored version.
            SerializationError, SessionTooLargeError: As for :meth:`create_session`.
        """
        self._ensure_open()
        tx = self._joined()
        if tx is not None:
            return await tx.append_interactions(
                session_id, *interactions, expected_version=expected_version
            )
        _checked_expected(expected_version)
        build = AppendBuild(self, validate_session_id(session_id), interactions, expected_version)
        return await write_one(self, build, retry=expected_version is None)

    async def delete_session(self, session_id: str) -> bool:
        """Delete a session (expired or not). Return whether it existed.

        Raises:
            InvalidSessionIdError: ``session_id`` is not a valid id.
            StoreIOError: The storage failed (never reported as ``False``).
        """
        self._ensure_open()
        tx = self._joined()
        if tx is not None:
            return await tx.delete_session(session_id)
        build = DeleteBuild(self, validate_session_id(session_id))
        return await write_one(self, build)

    # == queries =================================================================================

    async def _matching(self, flt: SessionFilter) -> list[SessionHeader]:
        """Headers of the sessions ``flt`` selects, as the current transaction sees them."""
        self._ensure_open()
        headers: Sequence[SessionHeader] = await self._scan_for(flt)
        tx = self._joined()
        if tx is not None:
            headers = tx._overlay(headers)
        matches = compile_filter(flt)
        if flt.include_expired:
            return [h for h in headers if matches(h)]
        now, idle = self._now(), self._idle
        return [h for h in headers if matches(h) and not is_expired(h, now, idle)]

    async def _sessions_for(self, headers: Sequence[SessionHeader]) -> list[PersistedSession]:
        tx = self._joined()
        if tx is not None:
            loaded = [await tx._peek(header.session_id) for header in headers]
        else:
            with self._storage_errors("reading sessions failed: {}"):
                loaded = await self._load_many([header.session_id for header in headers])
        # A session deleted since the headers were read is left out.
        return [session for session in loaded if session is not None]

    async def _selected(
        self, flt: SessionFilter, options: SessionQueryOptions, search: Search | None = None
    ) -> list[SessionHeader]:
        """Headers selected by ``flt`` (and ``search``), sorted and paginated by ``options``."""
        self._ensure_open()
        if self._joined() is None:
            pushed = await self._query(flt, options, self._now(), search)
            if pushed is not None:
                return pushed
        headers = await self._matching(flt)
        if search is not None:
            headers = await self._search_headers(headers, search)
        return sort_and_page(headers, options)

    async def _search_headers(
        self, headers: list[SessionHeader], search: Search
    ) -> list[SessionHeader]:
        found = [h for h in headers if matches_search(h, search.needle)]
        if search.interactions:
            seen = {h.session_id for h in found}
            rest = {h.session_id: h for h in headers if h.session_id not in seen}
            for session in await self._sessions_for(list(rest.values())):
                if search_interactions_of(session.interactions, search.needle):
                    found.append(rest[session.session_id])
        return found

    async def list_sessions(
        self, filter: SessionFilter | None = None, options: SessionQueryOptions | None = None
    ) -> list[PersistedSession]:
        """Return the sessions ``filter`` selects, sorted, then paginated by ``options``.

        Expired sessions are left out unless ``filter.include_expired``.
        """
        page = await self._selected(filter or SessionFilter(), options or SessionQueryOptions())
        return await self._sessions_for(page)

    async def count_sessions(self, filter: SessionFilter | None = None) -> int:
        """Return how many sessions ``filter`` selects (expired ones only if it says so)."""
        flt = filter or SessionFilter()
        self._ensure_open()
        if self._joined() is None:
            pushed = await self._count(flt, self._now())
            if pushed is not None:
                return pushed
        return len(await self._matching(flt))

    async def search_sessions(
        self,
        query: str,
        options: SessionQueryOptions | None = None,
        *,
        search_interactions: bool = False,
        include_expired: bool = False,
    ) -> list[PersistedSession]:
        """Case-insensitive search over ids, tags and metadata values (nested too).

        Args:
            query: The text to find.
            options: Sorting and pagination of the results.
            search_interactions: Also search the interactions' events, senders and recipients
                (reads every candidate session).
            include_expired: Also search expired sessions.

        Raises:
            InvalidInputError: ``query`` is not a non-empty string.
        """
        if not isinstance(query, str) or not query:
            raise InvalidInputError("the search query must be a non-empty string")
        page = await self._selected(
            SessionFilter(include_expired=include_expired),
            options or SessionQueryOptions(),
            Search(query.lower(), interactions=search_interactions),
        )
        return await self._sessions_for(page)

    async def iter_sessions(
        self, filter: SessionFilter | None = None
    ) -> AsyncIterator[PersistedSession]:
        """Yield the selected sessions one at a time, oldest first (memory stays flat)."""
        for header in await self._selected(filter or SessionFilter(), SessionQueryOptions()):
            for session in await self._sessions_for([header]):
                yield session

    async def get_sessions_by_processor(self, processor_id: str) -> list[PersistedSession]:
        """Return the live sessions of one processor, oldest first."""
        return await self.list_sessions(SessionFilter(processor_id=processor_id))

    async def get_active_sessions(self) -> list[PersistedSession]:
        """Return every session that has not expired, oldest first."""
        return await self.list_sessions()

    async def get_expired_sessions(self) -> list[PersistedSession]:
        """Return every expired session not yet cleaned up, oldest first."""
        self._ensure_open()
        tx = self._joined()
        if tx is None:
            expired = await self._expired_headers(self._now())
        else:
            now = self._now()
            headers = tx._overlay(await self._scan())
            expired = [h for h in headers if self._expired(h, now)]
        return await self._sessions_for(sort_and_page(expired, SessionQueryOptions()))

    # == expiry ==================================================================================

    async def set_session_expiration(
        self, session_id: str, expires_at: datetime | None
    ) -> PersistedSession:
        """Set when a session expires (``None``: never). Revives an expired session.

        Raises:
            SessionNotFoundError: No such session (already cleaned up).
        """
        return await self._write(lambda tx: tx.set_session_expiration(session_id, expires_at))

    async def extend_session_expiration(
        self, session_id: str, by: float | timedelta
    ) -> PersistedSession:
        """Push expiry back: ``expires_at = max(expires_at, now) + by``. Revives if expired.

        A session that never expires is returned unchanged.
        """
        return await self._write(lambda tx: tx.extend_session_expiration(session_id, by))

    async def refresh_session(self, session_id: str) -> PersistedSession:
        """Mark a live session as updated now and restart its default TTL (if it expires).

        Raises:
            SessionNotFoundError: No such session, or it has expired (use
                :meth:`extend_session_expiration` to revive one).
        """
        return await self._write(lambda tx: tx.refresh_session(session_id))

    async def expire_sessions(self) -> list[str]:
        """Report sessions that have expired since the last call; fire ``session_expired``.

        Each expiry is reported once per store instance (a revived session that expires again
        is reported again). Expired sessions stay stored until :meth:`cleanup_expired_sessions`.

        Returns:
            The ids newly found expired.
        """
        self._ensure_open()
        expired = await self._expired_headers(self._now())
        # Forget what is no longer expired (deleted or revived): it is reported again if it
        # expires again.
        still = {h.session_id for h in expired}
        for session_id in [s for s in self._reported_expired if s not in still]:
            del self._reported_expired[session_id]
        fresh = [h for h in expired if self._reported_expired.get(h.session_id) != h.version]
        for header in fresh:  # mark all before awaiting, so concurrent calls report once
            self._reported_expired[header.session_id] = header.version
        if self._events.has_listeners("session_expired"):
            for session in await self._sessions_for(fresh):
                await self._emit("session_expired", session)
        return [h.session_id for h in fresh]

    async def cleanup_expired_sessions(self) -> int:
        """Delete every expired session and return how many were deleted.

        Fires ``session_expired`` for those not yet reported, then ``session_deleted``.
        """
        self._ensure_open()
        await self.expire_sessions()
        return len(await self._remove_expired())

    async def _remove_expired(self) -> list[str]:
        """Delete expired sessions in atomic batches; skip any revived meanwhile."""
        expired = await self._expired_headers(self._now())
        removed: list[str] = []
        for start in range(0, len(expired), _CLEANUP_BATCH):
            chunk = expired[start : start + _CLEANUP_BATCH]
            try:
                await self._apply_batch([DeleteOp(h.session_id, h.version) for h in chunk])
                removed.extend(h.session_id for h in chunk)
            except SessionConflictError:
                # Someone changed one of them (perhaps revived it): go one by one.
                for header in chunk:
                    try:
                        await self._apply_batch([DeleteOp(header.session_id, header.version)])
                        removed.append(header.session_id)
                    except SessionConflictError:
                        continue
        for session_id in removed:
            self._reported_expired.pop(session_id, None)
            await self._emit("session_deleted", session_id)
        return removed

    # == transactions ============================================================================

    def transaction(self) -> TransactionContext:
        """Open a transaction: ``async with store.transaction() as tx: ...``.

        Store calls made inside the block (in this task, or tasks it starts there) join the
        transaction. It commits when the block exits normally and rolls back on an exception.
        Nested, it is a savepoint.
        """
        self._ensure_open()
        return TransactionContext(self)

    async def begin_transaction(self) -> Transaction:
        """Start an explicit transaction: use its methods, then ``commit()`` or ``rollback()``.

        Unlike :meth:`transaction`, it does not capture calls made on the store itself.
        """
        self._ensure_open()
        return Transaction(self)

    async def with_transaction(self, operation: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run ``operation(tx)`` in a transaction and return its result.

        Store calls inside ``operation`` join the transaction; it commits if ``operation``
        returns and rolls back if it raises.
        """
        async with self.transaction() as tx:
            return await operation(tx)

    # == events ==================================================================================

    async def _emit(self, event: EventName, *args: Any) -> None:
        """Deliver an event outside any transaction: a listener never joins the writer's."""
        with outside_transaction():
            await self._events.emit(event, *args)

    def _listening(self) -> None:
        """Hook: a created/updated/deleted listener was added (a store may start following)."""

    def on_session_created(self, callback: Listener) -> Unsubscribe:
        """Call ``callback(session)`` after each committed create. Returns an unsubscriber."""
        unsubscribe = self._events.subscribe("session_created", callback)
        self._listening()
        return unsubscribe

    def on_session_updated(self, callback: Listener) -> Unsubscribe:
        """Call ``callback(new, old)`` after each committed update (net, per transaction)."""
        unsubscribe = self._events.subscribe("session_updated", callback)
        self._listening()
        return unsubscribe

    def on_session_deleted(self, callback: Listener) -> Unsubscribe:
        """Call ``callback(session_id)`` after each committed delete (cleanup included)."""
        unsubscribe = self._events.subscribe("session_deleted", callback)
        self._listening()
        return unsubscribe

    def on_session_expired(self, callback: Listener) -> Unsubscribe:
        """Call ``callback(session)`` once when a session is found expired."""
        return self._events.subscribe("session_expired", callback)

    def on_backup_created(self, callback: Listener) -> Unsubscribe:
        """Call ``callback(backup)`` after each backup is written."""
        return self._events.subscribe("backup_created", callback)

    def __repr__(self) -> str:
        state = "open" if self._is_open else "closed"
        return f"<{type(self).__name__} {state}>"
