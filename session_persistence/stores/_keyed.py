"""The parts of the store contract keyed by the caller's own ids: get-or-create and forks.

Kept apart from :mod:`.base` only for size; mixed into :class:`SessionStore`. Both are written
once over the transaction machinery, so they hold on every backend:

* ``get_or_create_session`` stages a create under the caller's id with the store's "must not
  exist" expectation. Of any number of concurrent callers (coroutines, threads, processes
  sharing the store), the backend's atomic version check lets exactly one create commit; every
  other one gets a conflict, retries, and finds the session made by the winner.
* ``fork_session`` reads the source once (one committed version, as every read is) and creates
  the fork from that version's first interactions. Appends only ever add after what was read,
  so the fork is a prefix of the source at every later version too; a concurrent append is
  never half in it, and never makes the fork retry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from .._ids import validate_session_id
from ..errors import InvalidInputError
from ..models import UNSET, PersistedSession, SessionObject, Unset

if TYPE_CHECKING:
    from .base import SessionStore

__all__ = ["KeyedMethods"]


class KeyedMethods:
    """``get_or_create_session`` and ``fork_session``: mixed into :class:`SessionStore`."""

    async def get_or_create_session(
        self,
        session_id: str,
        session_object: SessionObject | None = None,
        *,
        expires_at: datetime | Unset | None = UNSET,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
    ) -> tuple[PersistedSession, bool]:
        """Return the live session with the caller's id, creating it if there is none.

        Atomic: any number of concurrent callers with one id (coroutines, threads, or
        processes sharing the store) create exactly one session, and all get it back. Use it
        to key sessions by a chat, thread or activity id.

        An expired session not yet cleaned up is replaced by the new one (its version keeps
        rising). A session found is read as :meth:`get_session` reads it (an access), and the
        other arguments are then ignored.

        Args:
            session_id: The caller's id: a ULID or ``[A-Za-z0-9_-]{1,128}``, stored as given.
            session_object: Used only to create. Left out: processor ``"default"``,
                ``activity_id`` the session id (a ``ULID`` when it is a canonical ULID string,
                else the string), ``request_id`` a new ULID.
            expires_at: Used only to create, as in :meth:`create_session`.
            metadata: Used only to create.
            tags: Used only to create.

        Returns:
            ``(session, created)``: ``created`` is true for the one caller that created it.

        Raises:
            InvalidSessionIdError: ``session_id`` is not a valid id.
            InvalidInputError, SerializationError, SessionTooLargeError, SessionLimitError:
                As for :meth:`create_session`, when it creates.
        """
        store = cast("SessionStore", self)
        validate_session_id(session_id)
        session, created = await store._write(
            lambda tx: tx.get_or_create_session(
                session_id, session_object, expires_at=expires_at, metadata=metadata, tags=tags
            )
        )
        if not created and store._joined() is None:
            store._touch(session_id, store._now())
        return session, created

    async def fork_session(
        self,
        session_id: str,
        *,
        up_to: int | None = None,
        new_session_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
    ) -> PersistedSession:
        """Branch a conversation: a new session with the source's first interactions.

        The interactions come from one consistent version of the source, even while others
        append to it: the fork is a prefix of the source. The new session has the source's
        ids (``processor_id``, ``activity_id``, ``request_id``), the default expiry, and
        ``metadata["forked_from"] = {"session_id", "version", "interactions"}`` (the source's
        id, the version copied, how many interactions were copied). Inside a transaction it
        is staged with the rest.

        Args:
            session_id: The live session to fork.
            up_to: Copy the first ``up_to`` interactions (``0`` to ``len``); all by default.
            new_session_id: The fork's id (as in :meth:`create_session`); a new ULID by
                default.
            metadata: The fork's metadata (``forked_from`` is added); the source's by default.
            tags: The fork's tags; the source's by default.

        Raises:
            SessionNotFoundError: No such session, or it has expired.
            InvalidInputError: ``up_to`` is not an int between 0 and the source's count.
            SessionExistsError: ``new_session_id`` is taken by a live session.
        """
        store = cast("SessionStore", self)
        source = await store.require_session(session_id)
        count = len(source.interactions)
        if up_to is None:
            up_to = count
        elif type(up_to) is not int or not 0 <= up_to <= count:
            raise InvalidInputError(
                f"up_to must be an int from 0 to {count} (the interactions of session "
                f"{session_id!r}), got {up_to!r}"
            )
        if metadata is not None and not isinstance(metadata, Mapping):
            raise InvalidInputError("metadata must be a dict with str keys")
        fork_metadata = dict(source.metadata if metadata is None else metadata)
        fork_metadata["forked_from"] = {
            "session_id": source.session_id,
            "version": source.version,
            "interactions": up_to,
        }
        return await store.create_session(
            SessionObject(
                source.processor_id,
                source.activity_id,
                source.request_id,
                source.interactions[:up_to],
            ),
            session_id=new_session_id,
            metadata=fork_metadata,
            tags=list(source.tags) if tags is None else tags,
        )
