"""Single-operation writes: a plain update, append or delete without a ``Transaction``.

A plain ``store.update_session(...)`` outside any transaction touches one session. It used to
run in an implicit :class:`~session_persistence.transactions.Transaction`: read the header,
load the session, stage, then commit the batch, each a separate store call. Here the same
staging steps (the functions :mod:`session_persistence.transactions` defines once for both
paths) are packed into a *build*: a pure function from the session's stored state to the op
that writes it. The store runs it through :meth:`SessionStore._apply_single`, which a backend may
implement as one atomic step (read, version check and write under its write lock); see that
method for the contract.

A build is called once per attempt (again if the default implementation's write conflicts), so
it resets what it records (the event to fire) every time it is called.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .._copy import clone_session
from ..errors import SessionConflictError, SessionNotFoundError
from ..events import EventName
from ..models import Interaction, PersistedSession, SessionHeader, SessionUpdate
from ..ops import AppendOp, DeleteOp, PutOp, WriteOp
from ..query import is_expired
from ..transactions import (
    appended_header,
    encode_appended,
    encode_session,
    next_state,
    update_changes,
)

if TYPE_CHECKING:
    from .base import SessionStore

__all__ = ["AppendBuild", "DeleteBuild", "OneWrite", "UpdateBuild", "write_one"]

T = TypeVar("T")


class OneWrite(Generic[T]):
    """A single-operation build: its session, what it reads, the build, what it fires."""

    #: Whether the build needs the whole stored session, not only its header.
    load: bool = False

    def __init__(self, store: SessionStore, session_id: str) -> None:
        self.store = store
        self.session_id = session_id
        self.event: tuple[EventName, tuple[Any, ...]] | None = None

    def _live(self, header: SessionHeader | None, expected: int | None) -> SessionHeader:
        """The stored header, which must exist, be live and match ``expected`` (if given)."""
        store = self.store
        if header is None or is_expired(header, store._now(), store._idle):
            raise SessionNotFoundError(self.session_id)
        if expected is not None and header.version != expected:
            raise SessionConflictError(self.session_id, expected, header.version)
        return header

    def __call__(
        self, header: SessionHeader | None, session: PersistedSession | None
    ) -> tuple[WriteOp | None, T]:
        """Return the op that writes this change to the stored state, and the result."""
        raise NotImplementedError


class UpdateBuild(OneWrite[PersistedSession]):
    """``update_session``: the stored session with ``update`` applied, as one ``PutOp``."""

    load = True

    def __init__(
        self, store: SessionStore, session_id: str, update: SessionUpdate, expected: int | None
    ) -> None:
        super().__init__(store, session_id)
        self.update = update
        self.expected = expected

    def __call__(
        self, header: SessionHeader | None, session: PersistedSession | None
    ) -> tuple[WriteOp | None, PersistedSession]:
        self.event = None
        self._live(header, self.expected)
        assert session is not None, "load=True: the store passes the stored session"
        if self.update.is_empty:
            return None, clone_session(session)
        new = next_state(self.store, session, update_changes(session, self.update))
        data, new_header = encode_session(self.store, new)
        if self.store._events.has_listeners("session_updated"):
            self.event = ("session_updated", (new, session))
        return PutOp(new, new_header, data, session.version), clone_session(new)


class AppendBuild(OneWrite[SessionHeader]):
    """``append_interactions``: one ``AppendOp`` built from the stored header alone."""

    def __init__(
        self,
        store: SessionStore,
        session_id: str,
        interactions: Sequence[Interaction],
        expected: int | None,
    ) -> None:
        super().__init__(store, session_id)
        self.interactions = interactions
        self.expected = expected
        # The old and new sessions are only needed for an update listener.
        self.load = store._events.has_listeners("session_updated")

    def __call__(
        self, header: SessionHeader | None, session: PersistedSession | None
    ) -> tuple[WriteOp | None, SessionHeader]:
        self.event = None
        header = self._live(header, self.expected)
        if not self.interactions:
            return None, header
        new, encoded = encode_appended(self.store, header, self.interactions)
        after = appended_header(self.store, header, new, encoded)
        if session is not None:
            current = dataclasses.replace(
                session,
                interactions=session.interactions + new,
                version=after.version,
                updated_at=after.updated_at,
                last_accessed_at=after.last_accessed_at,
                expires_at=after.expires_at,  # (an append slides a session on the default TTL)
            )
            self.event = ("session_updated", (current, session))
        op = AppendOp(self.session_id, tuple(new), tuple(encoded), after, header.version)
        return op, after


class DeleteBuild(OneWrite[bool]):
    """``delete_session``: a ``DeleteOp`` if the session is stored (expired or not)."""

    def __call__(
        self, header: SessionHeader | None, session: PersistedSession | None
    ) -> tuple[WriteOp | None, bool]:
        if header is None:
            self.event = None
            return None, False
        self.event = ("session_deleted", (self.session_id,))
        return DeleteOp(self.session_id, header.version), True


#: As for implicit transactions (``SessionStore._write``).
_MAX_ATTEMPTS = 50


async def write_one(store: SessionStore, build: OneWrite[T], *, retry: bool = True) -> T:
    """Run a single-operation write through ``store._apply_single``, then fire its event.

    Without ``expected_version`` (``retry``), a conflict is retried on the fresh state, with
    randomized backoff, as an implicit transaction is.
    """
    attempt = 0
    while True:
        await store._gate.enter()  # a backup's freeze holds writers here
        try:
            with store._storage_errors("writing to the store failed: {}; nothing was applied"):
                result = await store._apply_single(
                    build.session_id,
                    build,
                    load=build.load,
                    max_sessions=store.config.max_sessions,
                )
            break
        except SessionConflictError:
            attempt += 1
            if not retry or attempt >= _MAX_ATTEMPTS:
                raise
            store._conflicts += 1
        finally:
            store._gate.leave()
        await asyncio.sleep(random.uniform(0, min(0.0005 * 2**attempt, 0.02)))
    if build.event is not None:
        event, args = build.event
        if event == "session_deleted":
            store._reported_expired.pop(build.session_id, None)
        await store._emit(event, *args)
    return result
