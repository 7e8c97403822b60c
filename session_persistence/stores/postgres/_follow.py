"""Events from every host: ``LISTEN``/``NOTIFY`` on a channel named by the table prefix.

Every batch a store commits ends with ``pg_notify('{prefix}events', payload)`` inside its
transaction, so the notification is delivered when (and only if) the batch commits. The
payload is JSON: ``{"o": origin, "c": [[kind, session_id, version, created], ...]}``
(``kind``: ``c`` created, ``u`` updated, ``d`` deleted, whose version and ``created`` are
``null``; ``created``: the session's ``created_at`` in microseconds since the epoch), or
``{"o": origin, "all": true}`` when the list would pass PostgreSQL's 8,000-byte payload
limit. ``origin`` is a random token per store instance, so a store ignores its own
notifications (its listeners heard those at commit).

While anyone listens for ``session_created``, ``session_updated`` or ``session_deleted``, a
:class:`Follower` keeps one dedicated connection (outside the pool: a pooled connection is
shared and cannot hold a ``LISTEN``). On connecting it runs ``LISTEN`` and *then* reads every
session's version and ``created_at``, so nothing committed after that read is missed: a
notification for a version already seen is dropped. It compares that read with what it knew
before (none the first time), which is how it catches up after a lost connection: each
difference fires its event, as the SQLite store does after ``data_version`` changes. A
session is identified by its id *and* its ``created_at``: versions restart at 1 when an id is
deleted and created again, so a session replaced while the connection was down (same id,
perhaps the same version) fires ``session_deleted`` and then ``session_created``. It then
fires an event per notification, with the session's latest state (several commits to one
session may fire one event). The connection is retried with a growing pause (up to 5 s)
when it fails, and each failure is counted for ``health_check()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
import psycopg

from ...events import EventName
from ...ops import AppendOp, CheckOp, DeleteOp, PutOp, WriteOp

if TYPE_CHECKING:
    from .store import PostgresSessionStore

__all__ = ["Follower", "payload"]

logger = logging.getLogger(__name__)

_NAMES: tuple[EventName, ...] = ("session_created", "session_updated", "session_deleted")
_MAX_PAYLOAD = 7900  # PostgreSQL refuses payloads of 8000 bytes or more
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

#: A session as the follower knows it: its version and its ``created_at`` (see :func:`stamp`).
Seen = tuple[int, int]


def stamp(moment: datetime) -> int:
    """``created_at`` as whole microseconds since the epoch (a naive time is UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND


def payload(origin: str, ops: Sequence[WriteOp]) -> str | None:
    """The notification for a committed batch (``None``: it changed nothing)."""
    changes: list[list[Any]] = []
    for op in ops:
        if isinstance(op, CheckOp):
            continue
        if isinstance(op, DeleteOp):
            changes.append(["d", op.session_id, None, None])
        else:
            assert isinstance(op, PutOp | AppendOp)
            kind = "c" if isinstance(op, PutOp) and op.expected is None else "u"
            h = op.header
            changes.append([kind, h.session_id, h.version, stamp(h.created_at)])
    if not changes:
        return None
    text = orjson.dumps({"o": origin, "c": changes}).decode()
    if len(text.encode()) > _MAX_PAYLOAD:
        text = orjson.dumps({"o": origin, "all": True}).decode()
    return text


class Follower:
    """Reports other stores' commits (any host) to one store's listeners."""

    def __init__(self, store: PostgresSessionStore) -> None:
        self._store = store
        #: This store's token in notifications.
        self.origin = secrets.token_hex(8)
        #: The sessions last seen, or ``None`` before the first connection.
        self.known: dict[str, Seen] | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._conn: psycopg.AsyncConnection[tuple[Any, ...]] | None = None

    def remember(self, ops: Sequence[WriteOp]) -> None:
        """Record this store's own committed ops, so a catch-up does not report them."""
        if self.known is None:
            return
        for op in ops:
            if isinstance(op, DeleteOp):
                self.known.pop(op.session_id, None)
            elif isinstance(op, PutOp | AppendOp):
                h = op.header
                self.known[h.session_id] = (h.version, stamp(h.created_at))

    def forget(self, session_id: str) -> None:
        """A session this store removed outside the ops (a repair)."""
        if self.known is not None:
            self.known.pop(session_id, None)

    def listening(self) -> None:
        """A listener was added: start following, if not yet."""
        if self._task is None and self._store._pool is not None:
            self._ready = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"{self._store!r}.follow"
            )

    @property
    def reconnecting(self) -> bool:
        """Whether following has started but its connection is not up (for health)."""
        return self._task is not None and not self._task.done() and not self._ready.is_set()

    async def ready(self) -> None:
        """Wait until the listening connection is up and has read its baseline."""
        await self._ready.wait()

    async def stop(self) -> None:
        """Stop following and close the listening connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def _run(self) -> None:
        store = self._store
        pause = 0.05
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # reconnect after a pause; counted in health
                self._ready.clear()
                store._record_error(exc)
                logger.warning(
                    "following %s failed (%s); reconnecting in %.2fs", store.label, exc, pause
                )
                conn, self._conn = self._conn, None
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
            else:
                pause = 0.05

    async def _follow(self) -> None:
        store = self._store
        conn = await store._connect_listener()
        self._conn = conn
        await conn.execute(f"LISTEN {store.channel}")
        # LISTEN first, then read: a commit after the read is notified; one before is in it.
        await self._catch_up(await self._versions(conn))
        self._ready.set()
        async for note in conn.notifies():
            await self._handle(note.payload)

    def _versions_sql(self) -> str:
        return (
            "SELECT session_id, version, created_at AT TIME ZONE 'UTC' "
            f"FROM {self._store.prefix}sessions"
        )

    async def _versions(self, conn: psycopg.AsyncConnection[tuple[Any, ...]]) -> dict[str, Seen]:
        cursor = await conn.execute(self._versions_sql())
        return _seen(await cursor.fetchall())

    async def _catch_up(self, current: dict[str, Seen]) -> None:
        self._store._known.clear()  # (what this store remembers may be out of date)
        known, self.known = self.known, current
        if known is None:
            return  # the first look: a baseline, nothing to report
        for sid in known.keys() - current.keys():
            await self._store._emit("session_deleted", sid)
        for sid, seen in current.items():
            before = known.get(sid)
            if before is not None and before[1] != seen[1]:  # replaced: deleted, then created
                await self._store._emit("session_deleted", sid)
                before = None
            if before is None:
                await self._fire("session_created", sid)
            elif before != seen:
                await self._fire("session_updated", sid)

    async def _handle(self, text: str) -> None:
        try:
            note = orjson.loads(text)
            origin, changes = note["o"], note.get("c")
        except (orjson.JSONDecodeError, TypeError, KeyError):
            logger.warning("ignoring a malformed notification on %s", self._store.channel)
            return
        if origin == self.origin:
            return  # our own commit: its events fired when it committed
        if changes is None:  # too many changes for one payload: compare everything
            # (read through the pool: the listening connection is busy in notifies())
            rows = await self._store._rows(self._versions_sql())
            await self._catch_up(_seen(rows))
            return
        known = self.known
        assert known is not None
        for change in changes:
            kind, sid, version = change[:3]
            created_at = change[3] if len(change) > 3 else None  # (older writers: none)
            self._store._known.pop(sid, None)  # another store wrote it (see _fast.py)
            if kind == "d":
                if known.pop(sid, None) is not None:
                    await self._store._emit("session_deleted", sid)
                continue
            before = known.get(sid)
            if before is not None and created_at is not None and before[1] != created_at:
                await self._store._emit("session_deleted", sid)  # a replaced session
                known.pop(sid, None)
                before = None
            if before is not None and before[0] >= version:
                continue  # already seen (in the baseline, or a later notification)
            if created_at is None:
                created_at = before[1] if before is not None else 0
            known[sid] = (version, created_at)
            created = before is None and kind == "c"
            await self._fire("session_created" if created else "session_updated", sid)

    async def _fire(self, kind: EventName, session_id: str) -> None:
        store = self._store
        if not any(store._events.has_listeners(name) for name in _NAMES):
            return
        try:
            session = await store._load(session_id)
        except Exception as exc:  # a damaged row: reading it reports it; keep following
            store._record_error(exc)
            logger.error("cannot read session %s for its event: %s", session_id, exc)
            return
        if session is None:
            return  # deleted again since; its own notification follows
        if kind == "session_created":
            await store._emit(kind, session)
        else:
            await store._emit(kind, session, None)


def _seen(rows: Sequence[tuple[Any, ...]]) -> dict[str, Seen]:
    """``session_id, version, created_at`` rows as the follower knows them."""
    return {str(sid): (int(version), stamp(created)) for sid, version, created in rows}
