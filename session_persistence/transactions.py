"""Transactions: staged changes that commit as one atomic, version-checked batch.

A plain ``store.update_session(...)`` outside a transaction is a single-operation write (see
:mod:`session_persistence.stores._single`, which reuses the staging steps defined at the end of
this module); a few other writes run in a short *implicit* transaction of their own.
``async with store.transaction() as tx:`` opens an
explicit one, and while the block runs, the transaction is *ambient* (held in a
:mod:`contextvars` variable), so calls made on the store itself in that task (or in tasks it
starts inside the block) join it. That is what makes the seed's pattern atomic for real::

    async with store.transaction():
        a = await store.create_session(obj_a)   # staged, not yet visible to others
        b = await store.create_session(obj_b)
    # both committed here, in one batch, or neither

How a transaction works:

* Nothing reaches the backend until commit. Each change is validated, encoded and size-checked
  when it is made, so a bad value fails at its own call and stages nothing.
* The first time a session is touched, the transaction records the version it saw. Reads inside
  the transaction see its own staged writes.
* At commit, the staged state becomes one batch of operations (:mod:`session_persistence.ops`),
  each carrying the version first seen; sessions only read get a ``CheckOp``. The backend
  applies the batch atomically and only if every version still matches (optimistic
  concurrency). Otherwise nothing is applied and :class:`~session_persistence.errors.
  TransactionError` is raised (cause ``SessionConflictError``, ``.conflicts`` = changed ids).
* An exception in the block rolls everything back. A nested ``store.transaction()`` is a
  *savepoint*: an exception inside it undoes only the nested block's changes.
* Events are derived from the net effect of the transaction and fire only after it commits.
* Staging is serialized by a lock, so tasks sharing one transaction cannot interleave halfway
  through an operation.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ulid import ULID

from ._copy import clone_interactions, clone_session, clone_value
from ._expiry import slid_expiry
from ._ids import new_session_id, validate_session_id
from .documents import header_of, interaction_to_json, session_to_document
from .errors import (
    InvalidInputError,
    SessionConflictError,
    SessionExistsError,
    SessionNotFoundError,
    TransactionError,
)
from .events import EventName
from .models import (
    UNSET,
    Interaction,
    PersistedSession,
    SessionHeader,
    SessionObject,
    SessionUpdate,
    Unset,
    as_timedelta,
)
from .ops import AppendOp, CheckOp, DeleteOp, PutOp, WriteOp
from .query import is_expired
from .serialization import dump_json

if TYPE_CHECKING:
    from .stores.base import SessionStore

__all__ = ["Transaction", "default_session_object"]

_ambient: contextvars.ContextVar[Transaction | None] = contextvars.ContextVar(
    "session_persistence_transaction", default=None
)


def ambient_transaction() -> Transaction | None:
    """Return the transaction the current context runs in, if any."""
    return _ambient.get()


@contextlib.contextmanager
def outside_transaction() -> Iterator[None]:
    """Run a block with no ambient transaction (for listeners and background work)."""
    token = _ambient.set(None)
    try:
        yield
    finally:
        _ambient.reset(token)


@dataclasses.dataclass(slots=True)
class _Entry:
    """What a transaction knows about one session.

    Two modes. *Append-only* (``rewrite`` false): the stored base, possibly plus interactions in
    ``appended``; ``session`` (if loaded) is the base state. *Rewrite*: ``session`` is the whole
    current state and ``data`` its encoded document.
    """

    expected: int | None  # the stored version when first seen (None: absent)
    header: SessionHeader | None  # current state's header (None: absent or deleted)
    session: PersistedSession | None = None
    base: PersistedSession | None = None  # the stored state, once loaded
    appended: list[Interaction] = dataclasses.field(default_factory=list)
    appended_json: list[bytes] = dataclasses.field(default_factory=list)
    data: bytes | None = None
    dirty: bool = False
    rewrite: bool = False
    # A create under a caller's id that replaced an expired (or in-transaction deleted)
    # record: its net effect is reported as a creation, not an update.
    recreated: bool = False
    # The stored expiry when first seen, and whether this transaction set one explicitly.
    # At commit, a session that has expired since is not written unless its expiry was set:
    # a write slides a live session's expiry, it never revives an expired one.
    stored_expiry: datetime | None = None
    expiry_set: bool = False

    def copy(self) -> _Entry:
        return dataclasses.replace(
            self, appended=list(self.appended), appended_json=list(self.appended_json)
        )


class _State:
    """Staging shared by a transaction and its savepoints."""

    def __init__(self) -> None:
        self.entries: dict[str, _Entry] = {}
        self.lock = asyncio.Lock()

    def snapshot(self) -> dict[str, _Entry]:
        return {session_id: entry.copy() for session_id, entry in self.entries.items()}

    def restore(self, snapshot: dict[str, _Entry]) -> None:
        self.entries = {session_id: entry.copy() for session_id, entry in snapshot.items()}


class Transaction:
    """A unit of work over one store: commits as one atomic, durable batch, or not at all.

    Obtain one with ``store.transaction()`` (an async context manager that also makes it
    ambient), ``await store.begin_transaction()`` (explicit: call its methods, then
    :meth:`commit` or :meth:`rollback`), or ``store.with_transaction(fn)``.

    Attributes:
        transaction_id: A ULID string naming the transaction (in errors and logs).
        started_at: When it began (UTC).
    """

    def __init__(
        self,
        store: SessionStore,
        *,
        parent: Transaction | None = None,
        implicit: bool = False,
    ) -> None:
        self._store = store
        self._parent = parent
        self._implicit = implicit
        self._active = True
        self._state: _State = parent._state if parent is not None else _State()
        self._snapshot = self._state.snapshot() if parent is not None else None
        self.transaction_id = new_session_id()
        self.started_at: datetime = store._now()

    # -- state -----------------------------------------------------------------------------

    @property
    def is_active(self) -> bool:
        """True until the transaction (or, for a savepoint, its parent) commits or rolls back."""
        return self._active and (self._parent is None or self._parent.is_active)

    @property
    def store(self) -> SessionStore:
        """The store this transaction writes to."""
        return self._store

    def _ensure_active(self) -> None:
        if not self.is_active:
            raise TransactionError(
                f"transaction {self.transaction_id} has already finished; start a new one",
                transaction_id=self.transaction_id,
            )

    async def commit(self) -> None:
        """Apply every staged change atomically, then fire events.

        For a savepoint, releases it: its changes stay staged in the parent.

        Raises:
            TransactionError: A session changed since this transaction first saw it (cause
                ``SessionConflictError``, ``.conflicts`` lists the ids) or the transaction has
                already finished. Nothing was applied.
            StoreIOError: The storage failed; nothing was applied.
        """
        self._ensure_active()
        if self._parent is not None:
            self._active = False
            return
        async with self._state.lock:
            self._ensure_active()
            try:
                emit = await self._apply()
            finally:
                self._active = False
        await emit()

    async def rollback(self) -> None:
        """Discard the staged changes (for a savepoint: only those made since it began).

        Raises:
            TransactionError: The transaction has already finished.
        """
        self._ensure_active()
        async with self._state.lock:
            if self._snapshot is not None:
                self._state.restore(self._snapshot)
            else:
                self._state.entries.clear()
            self._active = False

    async def _apply(self) -> Callable[[], Awaitable[None]]:
        """Build and apply the batch; return the coroutine function that fires events."""
        entries = self._state.entries
        ops: list[WriteOp] = [self._op_for(session_id, e) for session_id, e in entries.items()]
        if not any(isinstance(op, PutOp | AppendOp | DeleteOp) for op in ops):
            return _no_events
        self._check_still_live()
        events = await self._events()
        try:
            await self._store._apply_batch(ops)
        except SessionConflictError as error:
            if self._implicit:
                raise
            conflicts = await self._changed_sessions()
            raise TransactionError(
                f"transaction {self.transaction_id} conflicts with concurrent changes to "
                f"{', '.join(conflicts) or error.session_id}; nothing was applied, retry it",
                transaction_id=self.transaction_id,
                conflicts=conflicts or [error.session_id],
            ) from error
        for session_id, entry in entries.items():
            if entry.dirty and entry.header is None:
                self._store._reported_expired.pop(session_id, None)
        return events

    def _check_still_live(self) -> None:
        """Refuse to commit a write to a session that expired after this transaction saw it.

        Its expiry was slid when the write was staged; writing it now would bring back a
        session that readers no longer see and cleanup may have reported expired.
        """
        now = self._store._now()
        for session_id, entry in self._state.entries.items():
            expiry = entry.stored_expiry
            if (
                entry.dirty
                and entry.expected is not None
                and entry.header is not None
                and not entry.expiry_set
                and not entry.recreated
                and expiry is not None
                and expiry <= now
            ):
                error = SessionNotFoundError(session_id)
                if self._implicit:
                    raise error
                raise TransactionError(
                    f"session {session_id} expired before transaction {self.transaction_id} "
                    "committed; nothing was applied",
                    transaction_id=self.transaction_id,
                    conflicts=[session_id],
                ) from error

    async def _events(self) -> Callable[[], Awaitable[None]]:
        """Work out, before commit, the events the net effect will fire after it."""
        store = self._store
        calls: list[tuple[EventName, tuple[Any, ...]]] = []
        want_updates = store._events.has_listeners("session_updated")
        for session_id, entry in self._state.entries.items():
            if not entry.dirty:
                continue
            if (entry.expected is None or entry.recreated) and entry.header is not None:
                calls.append(("session_created", (entry.session,)))
            elif entry.expected is not None and entry.header is None:
                calls.append(("session_deleted", (session_id,)))
            elif entry.expected is not None and want_updates:
                new = await self._current(session_id, entry)
                old = await self._base(session_id, entry)
                calls.append(("session_updated", (new, old)))

        async def fire() -> None:
            for event, args in calls:
                await store._emit(event, *args)

        return fire

    async def _changed_sessions(self) -> list[str]:
        """Ids of the sessions whose stored version is no longer the one first seen."""
        changed = []
        for session_id, entry in self._state.entries.items():
            header = await self._store._read_header(session_id)
            if (None if header is None else header.version) != entry.expected:
                changed.append(session_id)
        return changed

    def _overlay(self, headers: Sequence[SessionHeader]) -> list[SessionHeader]:
        """Return the committed ``headers`` with this transaction's staged changes applied."""
        staged = {sid: e.header for sid, e in self._state.entries.items() if e.dirty}
        out = []
        for header in headers:
            if header.session_id in staged:
                replacement = staged.pop(header.session_id)
                if replacement is not None:
                    out.append(replacement)
            else:
                out.append(header)
        out.extend(header for header in staged.values() if header is not None)
        return out

    @staticmethod
    def _op_for(session_id: str, entry: _Entry) -> WriteOp:
        if not entry.dirty:
            return CheckOp(session_id, entry.expected)
        if entry.header is None:
            if entry.expected is None:
                return CheckOp(session_id, None)
            return DeleteOp(session_id, entry.expected)
        if entry.rewrite:
            assert entry.session is not None
            assert entry.data is not None
            return PutOp(entry.session, entry.header, entry.data, entry.expected)
        assert entry.expected is not None
        return AppendOp(
            session_id,
            tuple(entry.appended),
            tuple(entry.appended_json),
            entry.header,
            entry.expected,
        )

    # -- reading ---------------------------------------------------------------------------

    async def _entry(self, session_id: str) -> _Entry:
        entry = self._state.entries.get(session_id)
        if entry is None:
            header = await self._store._read_header(session_id)
            entry = _Entry(
                expected=None if header is None else header.version,
                header=header,
                stored_expiry=None if header is None else header.expires_at,
            )
            self._state.entries[session_id] = entry
        return entry

    async def _base(self, session_id: str, entry: _Entry) -> PersistedSession:
        """Return the stored state this transaction is based on (loading it once)."""
        if entry.base is None:
            loaded = await self._store._read_session(session_id)
            actual = None if loaded is None else loaded.version
            if actual != entry.expected:
                self._conflict(SessionConflictError(session_id, entry.expected, actual))
            assert loaded is not None
            entry.base = loaded
        return entry.base

    async def _current(self, session_id: str, entry: _Entry) -> PersistedSession:
        """Return the current (staged) state of a session that exists in this transaction."""
        if entry.rewrite:
            assert entry.session is not None
            return entry.session
        base = await self._base(session_id, entry)
        if not entry.dirty:
            return base
        header = entry.header
        assert header is not None
        return dataclasses.replace(
            base,
            interactions=base.interactions + entry.appended,
            version=header.version,
            updated_at=header.updated_at,
            last_accessed_at=header.last_accessed_at,
            expires_at=header.expires_at,
        )

    def _conflict(self, error: SessionConflictError) -> None:
        if self._implicit:
            raise error
        raise TransactionError(
            f"session {error.session_id} changed under transaction {self.transaction_id}; "
            "roll back and retry",
            transaction_id=self.transaction_id,
            conflicts=[error.session_id],
        ) from error

    def _visible(self, entry: _Entry, *, include_expired: bool = False) -> bool:
        header = entry.header
        if header is None:
            return False
        return include_expired or not is_expired(header, self._store._now(), self._store._idle)

    async def _live(self, session_id: str, *, include_expired: bool = False) -> _Entry:
        entry = await self._entry(validate_session_id(session_id))
        if not self._visible(entry, include_expired=include_expired):
            raise SessionNotFoundError(session_id)
        return entry

    async def get_session(self, session_id: str) -> PersistedSession | None:
        """Return a copy of the session as this transaction sees it, or ``None``.

        Raises:
            InvalidSessionIdError: ``session_id`` is not a valid id.
        """
        async with self._guard():
            entry = await self._entry(validate_session_id(session_id))
            if not self._visible(entry):
                return None
            return clone_session(await self._current(session_id, entry))

    async def _peek(self, session_id: str) -> PersistedSession | None:
        """Return a copy of the session as staged, expired or not (for queries)."""
        async with self._guard():
            entry = await self._entry(validate_session_id(session_id))
            if entry.header is None:
                return None
            return clone_session(await self._current(session_id, entry))

    async def has_session(self, session_id: str) -> bool:
        """Return whether the session exists (and is not expired) in this transaction."""
        async with self._guard():
            return self._visible(await self._entry(validate_session_id(session_id)))

    # -- writing ---------------------------------------------------------------------------

    async def create_session(
        self,
        session_object: SessionObject,
        *,
        session_id: str | None = None,
        expires_at: datetime | Unset | None = UNSET,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
    ) -> PersistedSession:
        """Stage a new session; see :meth:`SessionStore.create_session`."""
        if session_id is not None:
            validate_session_id(session_id)
        async with self._guard():
            return await self._create(session_object, session_id, expires_at, metadata, tags)

    async def get_or_create_session(
        self,
        session_id: str,
        session_object: SessionObject | None = None,
        *,
        expires_at: datetime | Unset | None = UNSET,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
    ) -> tuple[PersistedSession, bool]:
        """Return the live session ``session_id``, or stage it; see the store's method."""
        validate_session_id(session_id)
        async with self._guard():
            entry = await self._entry(session_id)
            if self._visible(entry):
                return clone_session(await self._current(session_id, entry)), False
            obj = default_session_object(session_id) if session_object is None else session_object
            return await self._create(obj, session_id, expires_at, metadata, tags), True

    async def _create(
        self,
        session_object: SessionObject,
        session_id: str | None,
        expires_at: datetime | Unset | None,
        metadata: Mapping[str, Any] | None,
        tags: Sequence[str] | None,
    ) -> PersistedSession:
        """Stage a new session (the caller holds the guard)."""
        store = self._store
        session = new_session(
            store, session_object, expires_at, metadata, tags, session_id=session_id
        )
        if session_id is None:
            entry = _Entry(expected=None, header=None)
            session_id = session.session_id
        else:
            # A caller's id: taken if a live session has it. An expired one not yet cleaned
            # up is replaced (it is already gone to every reader); the version check at
            # commit makes that atomic against a writer reviving it meanwhile.
            entry = await self._entry(session_id)
            if self._visible(entry):
                raise SessionExistsError(
                    session_id,
                    f"session {session_id!r} already exists; use get_or_create_session() "
                    "to take it, or choose another id",
                )
            if entry.expected is not None:
                # A replaced record's versions keep rising, so no reader (or another
                # process's cache) can take the new session for the old one.
                session = dataclasses.replace(session, version=entry.expected + 1)
        before = entry.copy()
        self._stage_rewrite(entry, session)
        if store.config.max_sessions is not None and entry.expected is None:
            # (counting is O(staged): only if needed)
            pending = sum(
                1
                for sid, e in self._state.entries.items()
                if e.expected is None and e.header and sid != session_id
            )
            try:
                await store._ensure_capacity(pending + 1)
            except BaseException:
                if session_id in self._state.entries:
                    self._state.entries[session_id] = before
                raise
        entry.recreated = entry.expected is not None
        self._state.entries[session_id] = entry
        return clone_session(session)

    async def update_session(
        self,
        session_id: str,
        updates: SessionUpdate | Mapping[str, Any],
        *,
        expected_version: int | None = None,
    ) -> PersistedSession:
        """Stage an update; see :meth:`SessionStore.update_session`."""
        update = SessionUpdate.coerce(updates)
        _checked_expected(expected_version)
        async with self._guard():
            entry = await self._live(session_id)
            _check_version(session_id, entry, expected_version)
            current = await self._current(session_id, entry)
            if update.is_empty:
                return clone_session(current)
            return self._stage_change(entry, current, update_changes(current, update))

    async def append_interactions(
        self,
        session_id: str,
        *interactions: Interaction,
        expected_version: int | None = None,
    ) -> SessionHeader:
        """Stage appended interactions; see :meth:`SessionStore.append_interactions`."""
        _checked_expected(expected_version)
        async with self._guard():
            entry = await self._live(session_id)
            _check_version(session_id, entry, expected_version)
            header = entry.header
            assert header is not None
            if not interactions:
                return header
            new, encoded = encode_appended(self._store, header, interactions)
            if entry.rewrite:
                assert entry.session is not None
                current = entry.session
                changes = {"interactions": current.interactions + new}
                self._stage_change(entry, current, changes)
                assert entry.header is not None
                return entry.header
            entry.header = appended_header(self._store, header, new, encoded)
            entry.appended.extend(new)
            entry.appended_json.extend(encoded)
            entry.dirty = True
            return entry.header

    async def delete_session(self, session_id: str) -> bool:
        """Stage a deletion; see :meth:`SessionStore.delete_session`."""
        async with self._guard():
            entry = await self._entry(validate_session_id(session_id))
            if entry.header is None:
                return False
            entry.header = None
            entry.session = None
            entry.data = None
            entry.appended = []
            entry.appended_json = []
            entry.rewrite = False
            entry.dirty = True
            return True

    async def set_session_expiration(
        self, session_id: str, expires_at: datetime | None
    ) -> PersistedSession:
        """Stage a new expiry (may revive an expired session not yet cleaned up)."""
        expiry = _checked_expiry(expires_at)
        async with self._guard():
            entry = await self._live(session_id, include_expired=True)
            current = await self._current(session_id, entry)
            return self._stage_change(entry, current, {"expires_at": expiry})

    async def extend_session_expiration(
        self, session_id: str, by: float | timedelta
    ) -> PersistedSession:
        """Stage ``expires_at = max(expires_at, now) + by``; a never-expiring session is kept.

        An expired session that is not yet cleaned up is revived.
        """
        delta = as_timedelta(by, "by")
        async with self._guard():
            entry = await self._live(session_id, include_expired=True)
            current = await self._current(session_id, entry)
            if current.expires_at is None:
                return clone_session(current)
            start = max(current.expires_at, self._store._now())
            return self._stage_change(entry, current, {"expires_at": start + delta})

    async def refresh_session(self, session_id: str) -> PersistedSession:
        """Stage a refresh: ``updated_at`` = now and, for a session that expires, a fresh TTL."""
        async with self._guard():
            entry = await self._live(session_id)
            current = await self._current(session_id, entry)
            changes: dict[str, Any] = {}
            ttl = self._store._ttl
            now = self._store._now()  # one reading: expires_at - updated_at must be the TTL
            if current.expires_at is not None and ttl is not None:
                changes["expires_at"] = max(current.expires_at, now + ttl)
            return self._stage_change(entry, current, changes, now)

    def _stage_change(
        self,
        entry: _Entry,
        current: PersistedSession,
        changes: dict[str, Any],
        now: datetime | None = None,
    ) -> PersistedSession:
        if "expires_at" in changes:
            entry.expiry_set = True  # an explicit expiry may revive; a slide may not
        new = next_state(self._store, current, changes, now)
        self._stage_rewrite(entry, new)
        return clone_session(new)

    def _stage_rewrite(self, entry: _Entry, session: PersistedSession) -> None:
        """Validate, encode and size-check ``session``, then make it the entry's state."""
        data, entry.header = encode_session(self._store, session)
        entry.session = session
        entry.data = data
        entry.appended = []
        entry.appended_json = []
        entry.rewrite = True
        entry.dirty = True

    def _guard(self) -> _OpGuard:
        return _OpGuard(self)


class _OpGuard:
    """Serializes staging and refuses work on a finished transaction."""

    __slots__ = ("_tx",)

    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    async def __aenter__(self) -> None:
        self._tx._store._ensure_open()
        self._tx._ensure_active()
        await self._tx._state.lock.acquire()
        if not self._tx.is_active:
            self._tx._state.lock.release()
            self._tx._ensure_active()

    async def __aexit__(self, *exc_info: object) -> None:
        self._tx._state.lock.release()


async def _no_events() -> None:
    return None


class TransactionContext:
    """``async with store.transaction() as tx``: commits on success, rolls back on error.

    Inside an active transaction of the same store, opens a savepoint instead.
    """

    def __init__(self, store: SessionStore) -> None:
        self._store = store
        self._tx: Transaction | None = None
        self._token: contextvars.Token[Transaction | None] | None = None

    async def __aenter__(self) -> Transaction:
        self._store._ensure_open()
        outer = _ambient.get()
        parent = outer if outer is not None and outer.store is self._store else None
        if parent is not None:
            parent._ensure_active()
        self._tx = Transaction(self._store, parent=parent)
        self._token = _ambient.set(self._tx)
        return self._tx

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        assert self._tx is not None
        assert self._token is not None
        # Leave the ambient context first: listeners fired by commit must not join it.
        _ambient.reset(self._token)
        if not self._tx.is_active:
            return
        if exc_type is None:
            await self._tx.commit()
        else:
            await self._tx.rollback()


# -- the staging steps, written once (a transaction and a store's single-op writes use them) ------


def new_session(
    store: SessionStore,
    session_object: SessionObject,
    expires_at: datetime | Unset | None,
    metadata: Mapping[str, Any] | None,
    tags: Sequence[str] | None,
    *,
    session_id: str | None = None,
) -> PersistedSession:
    """Validate a create's arguments and return the new session (version 1).

    ``session_id``: the caller's (validated by the caller); left out, a new monotonic ULID.
    """
    obj = _checked_session_object(session_object)
    now = store._now()
    if isinstance(expires_at, Unset):
        expires = None if store._ttl is None else now + store._ttl
    else:
        expires = _checked_expiry(expires_at)
    return PersistedSession(
        session_id=new_session_id() if session_id is None else session_id,
        processor_id=obj.processor_id,
        activity_id=obj.activity_id,
        request_id=obj.request_id,
        interactions=clone_interactions(obj.interactions),
        created_at=now,
        updated_at=now,
        expires_at=expires,
        last_accessed_at=now,
        metadata=_checked_metadata(metadata),
        tags=_checked_tags(tags),
        version=1,
    )


def update_changes(current: PersistedSession, update: SessionUpdate) -> dict[str, Any]:
    """Return the fields ``update`` changes in ``current`` (copied; metadata merged if asked)."""
    changes: dict[str, Any] = {}
    if not isinstance(update.interactions, Unset):
        changes["interactions"] = clone_interactions(list(update.interactions))
    if not isinstance(update.metadata, Unset):
        fresh = clone_value(dict(update.metadata), "metadata")
        changes["metadata"] = {**current.metadata, **fresh} if update.merge_metadata else fresh
    if not isinstance(update.tags, Unset):
        changes["tags"] = list(update.tags)
    if not isinstance(update.expires_at, Unset):
        changes["expires_at"] = update.expires_at
    return changes


def next_state(
    store: SessionStore,
    current: PersistedSession,
    changes: dict[str, Any],
    now: datetime | None = None,
) -> PersistedSession:
    """Return ``current`` with ``changes``, its version + 1 and its write timestamps ``now``.

    A write is use: a session on the default TTL slides (see :func:`slid_expiry`). ``now``:
    the clock reading the changes were computed from (read here if not given), so that an
    expiry set to now + TTL keeps the session sliding.
    """
    if now is None:
        now = store._now()
    if "expires_at" not in changes:
        changes["expires_at"] = slid_expiry(current, now, store._ttl, sliding=store._sliding)
    return dataclasses.replace(
        current, **changes, version=current.version + 1, updated_at=now, last_accessed_at=now
    )


def encode_session(store: SessionStore, session: PersistedSession) -> tuple[bytes, SessionHeader]:
    """Validate, encode and size-check ``session``; return its document and header.

    Raises:
        SerializationError: A value cannot be encoded.
        SessionTooLargeError: The document is over ``max_session_bytes``.
    """
    data = dump_json(session_to_document(session, store._codec))
    store._check_size(session.session_id, len(data))
    return data, header_of(session, len(data))


def encode_appended(
    store: SessionStore, header: SessionHeader, interactions: Sequence[Interaction]
) -> tuple[list[Interaction], list[bytes]]:
    """Copy and encode interactions appended after ``header``'s last one."""
    codec = store._codec
    first = header.interaction_count
    new = clone_interactions(list(interactions), first)
    encoded = [
        dump_json(interaction_to_json(item, codec, f"interactions[{first + i}]"))
        for i, item in enumerate(new)
    ]
    return new, encoded


def appended_header(
    store: SessionStore,
    header: SessionHeader,
    new: Sequence[Interaction],
    encoded: Sequence[bytes],
) -> SessionHeader:
    """Return the header after appending ``encoded`` to ``header``'s session (size-checked)."""
    now = store._now()
    size = header.size_bytes + sum(len(item) + 1 for item in encoded)
    store._check_size(header.session_id, size)
    return dataclasses.replace(
        header,
        version=header.version + 1,
        expires_at=slid_expiry(header, now, store._ttl, sliding=store._sliding),
        updated_at=now,
        last_accessed_at=now,
        interaction_count=header.interaction_count + len(new),
        size_bytes=size,
    )


def default_session_object(session_id: str) -> SessionObject:
    """The session object ``get_or_create_session`` uses when the caller gives none.

    Processor ``"default"``; ``activity_id`` is the session id (as a ``ULID`` when it is one, as
    a chat id usually is in the Sentient framework), ``request_id`` a new ULID.
    """
    activity: ULID | str = session_id
    with contextlib.suppress(ValueError):
        parsed = ULID.from_str(session_id)
        if str(parsed) == session_id:
            activity = parsed
    return SessionObject(processor_id="default", activity_id=activity, request_id=ULID())


def _checked_session_object(value: object) -> SessionObject:
    if not isinstance(value, SessionObject):
        raise InvalidInputError(
            f"expected a SessionObject, got {type(value).__name__}; build one with "
            "SessionObject(processor_id=..., activity_id=..., request_id=...)"
        )
    if not isinstance(value.processor_id, str) or not value.processor_id:
        raise InvalidInputError("processor_id must be a non-empty str")
    for name in ("activity_id", "request_id"):
        if type(getattr(value, name)) not in (ULID, str):
            raise InvalidInputError(f"{name} must be a ULID or a str")
    if not isinstance(value.interactions, list):
        raise InvalidInputError("interactions must be a list of Interaction")
    return value


def _checked_expiry(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidInputError(f"expires_at must be a timezone-aware datetime or None: {value!r}")
    return value


def _checked_metadata(value: Mapping[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise InvalidInputError("metadata must be a dict with str keys")
    copied: dict[str, Any] = clone_value(dict(value), "metadata")
    return copied


def _checked_tags(value: Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str | bytes) or not all(isinstance(tag, str) for tag in value):
        raise InvalidInputError("tags must be a list of str")
    return list(value)


def _checked_expected(expected_version: object) -> None:
    if expected_version is not None and (
        not isinstance(expected_version, int) or isinstance(expected_version, bool)
    ):
        raise InvalidInputError(f"expected_version must be an int or None: {expected_version!r}")


def _check_version(session_id: str, entry: _Entry, expected: int | None) -> None:
    assert entry.header is not None
    if expected is not None and entry.header.version != expected:
        raise SessionConflictError(session_id, expected, entry.header.version)
