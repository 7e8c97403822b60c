"""Following other processes' writes: events for commits made by other connections.

While anyone listens for ``session_created``, ``session_updated`` or ``session_deleted``, a
background task asks the worker every ``poll_interval`` for ``PRAGMA data_version``, which
changes only when *another* connection commits; then one ``SELECT session_id, version`` is
compared with the versions this store last knew (its own commits keep them current, see
:meth:`Follower.remember`), and each difference fires its event. Several foreign commits to one
session between two polls fire one event with its latest state. Nothing is polled while no
listener is registered.

``known`` is read and written on the worker thread only.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ...events import EventName
from ...ops import AppendOp, DeleteOp, PutOp, WriteOp

if TYPE_CHECKING:
    from .store import SQLiteSessionStore

__all__ = ["Follower"]

logger = logging.getLogger(__name__)

_NAMES: tuple[EventName, ...] = ("session_created", "session_updated", "session_deleted")


class Follower:
    """Reports other connections' commits to one store's listeners."""

    def __init__(self, store: SQLiteSessionStore, poll_interval: float) -> None:
        self._store = store
        self._poll_interval = poll_interval
        #: The versions last seen, or ``None`` while nobody listens.
        self.known: dict[str, int] | None = None
        self._data_version = 0

    def remember(self, ops: Sequence[WriteOp]) -> None:
        """Record this store's own committed ops, so a poll does not report them as foreign."""
        if self.known is None:
            return
        for op in ops:
            if isinstance(op, DeleteOp):
                self.known.pop(op.session_id, None)
            elif isinstance(op, PutOp | AppendOp):
                self.known[op.header.session_id] = op.header.version

    def forget(self, session_id: str) -> None:
        """A session this store removed outside the ops (a repair)."""
        if self.known is not None:
            self.known.pop(session_id, None)

    def listening(self) -> None:
        """A listener was added: take the baseline now, if not following yet."""
        # Take it on the worker: the worker runs calls in order, so once any later call on
        # this store has returned, every foreign commit after it is reported.
        executor = self._store._executor
        if executor is not None and self.known is None:
            executor.submit(self._baseline)

    def _baseline(self) -> None:
        if self.known is not None:
            return  # already following (another listener came first)
        try:
            self.poll(listening=True)
        except sqlite3.Error as exc:  # the next poll tries again
            logger.warning("cannot read %s to follow other processes: %s", self._store._label, exc)

    async def run(self) -> None:
        """While anyone listens, poll for other connections' commits and fire their events."""
        store = self._store
        while True:
            await asyncio.sleep(self._poll_interval)
            listening = any(store._events.has_listeners(name) for name in _NAMES)
            if not listening and self.known is None:
                continue  # nobody listens and nothing is tracked: no hop to the worker
            try:
                changes = await store._call(self.poll, listening)
                for kind, session_id in changes:
                    if kind == "session_deleted":
                        await store._emit(kind, session_id)
                        continue
                    session = await store._load(session_id)
                    if session is None:
                        continue  # deleted again since
                    if kind == "session_created":
                        await store._emit(kind, session)
                    else:
                        await store._emit(kind, session, None)
            except Exception as exc:  # keep following; counted in health
                store._record_error(exc)
                logger.exception("following %s failed", store._label)

    def poll(self, listening: bool) -> list[tuple[EventName, str]]:
        """Return what other connections changed since the last poll (worker thread)."""
        if not listening:
            self.known = None  # nobody to tell: stop tracking
            return []
        db = self._store._conn
        (data_version,) = db.execute("PRAGMA data_version").fetchone()
        if self.known is not None and data_version == self._data_version:
            return []
        rows = db.execute(f"SELECT session_id, version FROM {self._store._prefix}sessions")
        current: dict[str, int] = dict(rows.fetchall())
        known, self.known, self._data_version = self.known, current, data_version
        if known is None:
            return []  # the first look: a baseline, nothing to report
        changes: list[tuple[EventName, str]] = [
            ("session_deleted", sid) for sid in known.keys() - current.keys()
        ]
        for sid, version in current.items():
            before = known.get(sid)
            if before is None:
                changes.append(("session_created", sid))
            elif before != version:
                changes.append(("session_updated", sid))
        return changes
