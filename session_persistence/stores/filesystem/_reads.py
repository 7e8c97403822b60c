"""Reads of a filesystem store: from the journal's state in memory, the read cache, or files.

A read first catches up with the journal (one ``fstat``; new lines are applied), so it never
returns data older than a write another process has finished. Then:

* a session whose latest state is a whole document in the journal (a put since its files were
  last written) is served from memory, with the appends after it;
* a session read recently and unchanged since (or only appended to: the cache follows
  appends, see :mod:`._cache`) is served from the read cache;
* otherwise its files are read, and the appends the journal holds beyond them (in the current
  generation, and in a closed one whose checkpoint has not finished) are applied on top,
  matched by version. Files that do not match the journal may be mid-checkpoint: they are
  read again. Files that fail their checksum or do not parse are damage at once; files that
  still do not match while this process holds the checkpoint lock and the store lock (nothing
  can be moving them then) are proven damage too. Damage is set aside (``quarantine/``, and a
  journal line so every process forgets the session) and reported with
  :class:`StoreCorruptionError`; an ``OSError`` is never taken for damage.

Returned sessions are the caller's own: what the store keeps is only ever lent
(:func:`lend_session`: metadata and tags copied, interactions copied as they are read); a
session decoded from its files is kept in the cache and lent too (or, if anything changed
while it was read, handed over as it is and not kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import orjson

from ..._copy import lend_session
from ...documents import document_to_session
from ...errors import StoreCorruptionError
from ...models import PersistedSession, SessionFilter, SessionHeader, SessionQueryOptions
from ...query import Search, is_expired
from ._commit import JournalWriter
from ._files import OnDisk, extend
from ._format import Append, BadFile
from ._replay import Pending

__all__ = ["SessionReads"]

_READ_ATTEMPTS = 50


class _Moved(enum.Enum):
    """What ``_read_matching`` returns when the files do not match the index."""

    MOVED = enum.auto()


class SessionReads(JournalWriter):
    """Mixed into the store: serves reads from memory, the read cache and the files."""

    _read_only: bool
    _freezing: bool
    _idle: timedelta | None

    if TYPE_CHECKING:

        def _exclusive(self) -> contextlib.AbstractContextManager[None]: ...
        def _journal_removal(self, session_id: str, reason: str) -> None: ...
        def _now(self) -> datetime: ...

    async def _get_header(self, session_id: str) -> SessionHeader | None:
        with self._lock:
            self._catch_up(locked=False)
            return self._index.get(session_id)

    async def _scan(self) -> Sequence[SessionHeader]:
        with self._lock:
            self._catch_up(locked=False)
            return list(self._index.values())

    async def _scan_for(self, flt: SessionFilter) -> Sequence[SessionHeader]:
        # Exactly what flt selects (expired ones too: the caller judges expiry and overlays a
        # transaction's changes), headers built for those only.
        wide = dataclasses.replace(flt, include_expired=True)
        with self._lock:
            self._catch_up(locked=False)
            index = self._index
            return index.headers(index.select(wide, self._now(), self._idle))

    async def _query(
        self,
        flt: SessionFilter,
        options: SessionQueryOptions,
        now: datetime,
        search: Search | None = None,
    ) -> list[SessionHeader] | None:
        if search is not None:
            return None  # (the base searches what _scan_for selects)
        with self._lock:
            self._catch_up(locked=False)
            index = self._index
            return index.headers(index.page(index.select(flt, now, self._idle), options))

    async def _count(self, flt: SessionFilter, now: datetime) -> int | None:
        with self._lock:
            self._catch_up(locked=False)
            return self._index.count(flt, now, self._idle)

    async def _expired_headers(self, now: datetime) -> Sequence[SessionHeader]:
        with self._lock:
            self._catch_up(locked=False)
            return self._index.expired(now, self._idle)

    async def _session_count(self) -> int:
        with self._lock:
            self._catch_up(locked=False)
            return len(self._index)

    def _touch(self, session_id: str, when: datetime) -> None:
        with self._lock:
            self._index.touch(session_id, when)

    def _lookup(
        self, session_id: str, *, locked: bool = False
    ) -> tuple[SessionHeader | None, PersistedSession | None, list[Append]]:
        """Catch up; return the header, the session if memory serves it, and pending appends.

        Called with ``_lock`` held (and the store lock too if ``locked``).
        """
        self._catch_up(locked=locked)
        return self._lookup_here(session_id)

    def _lookup_here(
        self, session_id: str
    ) -> tuple[SessionHeader | None, PersistedSession | None, list[Append]]:
        """:meth:`_lookup` without catching up first (the caller just did)."""
        header = self._index.get(session_id)
        if header is None:
            return None, None, []
        pending = self._pending.get(session_id)
        if pending is None or pending.doc is None:
            # Changes of a closed generation whose checkpoint has not finished come first.
            older = None if self._closing is None else self._closing.get(session_id)
            if older is not None:
                if older.doc is not None and older.session is None:  # decoded once, then kept
                    older.session = document_to_session(orjson.loads(older.doc), self._codec)
                appends = older.appends if pending is None else older.appends + pending.appends
                pending = Pending(older.doc, older.session, appends)
        if pending is None:
            return header, None, []
        if pending.doc is not None:
            return header, self._from_pending(pending, header), []
        return header, None, list(pending.appends)

    async def _load(self, session_id: str) -> PersistedSession | None:
        """Serve from memory (pending changes, then the read cache), else read the files.

        A warm read is one lookup and a lent copy (see :func:`lend_session`); a cold one is a
        thread hop and a decode.
        """
        with self._lock:
            self._catch_up(locked=False)
            if session_id not in self._index:
                return None
            found = self._warm(session_id)
            if found is not None:
                return found
            changes = self._changes
        return await self._cold(session_id, changes)

    async def _load_live(self, session_id: str, now: datetime) -> PersistedSession | None:
        # get_session's read: one catch-up and one index lookup, expiry, the touch, and a warm
        # read, under one hold of the lock.
        with self._lock:
            self._catch_up(locked=False)
            header = self._index.get(session_id)
            if header is None or is_expired(header, now, self._idle):
                return None
            self._index.touch(session_id, now)
            found = self._warm(session_id)
            if found is not None:
                return found
            changes = self._changes
        return await self._cold(session_id, changes)

    def _warm(self, session_id: str) -> PersistedSession | None:
        """The session from memory (``_lock`` held, caught up), or ``None``: read its files."""
        header, session, _ = self._lookup_here(session_id)
        if header is None or session is not None:
            return session
        cached = self._read_cache.get(session_id, header.version)
        if cached is None:
            return None
        return lend_session(cached, header.last_accessed_at)

    async def _cold(self, session_id: str, changes: int) -> PersistedSession | None:
        found = await asyncio.to_thread(self._load_from_files, session_id)
        if found is None:
            return None
        with self._lock:
            if self._changes == changes:  # nothing changed while we read: still current
                self._read_cache.keep(found, self._index[session_id].size_bytes)
                return lend_session(found)
        return found

    def _from_pending(self, pending: Pending, header: SessionHeader) -> PersistedSession:
        assert pending.doc is not None
        if pending.session is None:  # another process's put: decoded once, then kept
            pending.session = document_to_session(orjson.loads(pending.doc), self._codec)
        session = lend_session(pending.session, header.last_accessed_at)
        if not pending.appends:
            return session
        for append in pending.appends:
            session = extend(session, append, self._codec)
        return dataclasses.replace(session, last_accessed_at=header.last_accessed_at)

    def _load_from_files(self, session_id: str) -> PersistedSession | None:
        """Read a session's files, retrying while other processes' checkpoints move them.

        Files that fail their checksum or do not parse are damage at once. Files that parse
        but do not match the journal may just be mid-checkpoint; once they still do not match
        with the store lock held (no checkpoint can run then), that is proven damage too.
        Damage is set aside (quarantined, and journaled so every process forgets the session)
        and reported with :class:`StoreCorruptionError`; an ``OSError`` propagates as is.
        """
        for attempt in range(_READ_ATTEMPTS):
            found = self._read_matching(session_id, locked=False)
            if found is not _Moved.MOVED:
                return found
            # A checkpoint in another process moved the files under us: look again.
            time.sleep(0.0005 * min(attempt, 20))
        if self._freezing or self._read_only:
            # A backup holds every lock, so nothing can be moving the files: they are damaged,
            # and the next read after the backup sets them aside. Read-only, we never lock.
            raise self._damaged(session_id, "its files do not match the journal", moved=False)
        with self._exclusive():
            found = self._read_matching(session_id, locked=True)
        if found is _Moved.MOVED:  # (_read_matching sets proven damage aside when locked)
            raise AssertionError("unreachable")  # pragma: no cover
        return found

    def _read_matching(self, session_id: str, *, locked: bool) -> PersistedSession | _Moved | None:
        """Read the session's files; return ``_Moved.MOVED`` if they do not match the index.

        With the store lock held (``locked``) a mismatch is damage: it is set aside.
        """
        with self._lock:
            header, cached, appends = self._lookup(session_id, locked=locked)
        if header is None or cached is not None:
            return cached
        try:
            on_disk = self._files.read(session_id)
        except BadFile as exc:
            raise self._set_aside_bad(session_id, str(exc), locked=locked) from exc
        if on_disk is not None:
            session = self._with_appends(on_disk, appends)
            if session is not None and (
                session.version == header.version and session.created_at == header.created_at
            ):
                return dataclasses.replace(session, last_accessed_at=header.last_accessed_at)
        if not locked:
            return _Moved.MOVED
        problem = "its base file is missing" if on_disk is None else on_disk.tail_problem
        reason = f"its files do not match the journal ({problem or 'versions differ'})"
        raise self._set_aside_bad(session_id, reason, locked=True)

    def _set_aside_bad(self, session_id: str, reason: str, *, locked: bool) -> Exception:
        """Set a damaged session aside (unless inspecting); return the error to raise."""
        if self._read_only or self._freezing:
            return self._damaged(session_id, reason, moved=False)
        if locked:
            self._set_aside_locked(session_id, reason)
        else:
            self._quarantine_bad(session_id, reason)
        return self._damaged(session_id, reason, moved=True)

    def _damaged(self, session_id: str, reason: str, *, moved: bool) -> StoreCorruptionError:
        self._damage.sessions[session_id] = reason
        where = "it was moved to quarantine/" if moved else "nothing was moved"
        return StoreCorruptionError(
            f"session {session_id} is damaged ({reason}); {where}. Restore it from a backup, "
            "or run 'check --repair' to set it aside",
            str(self._files.base(session_id)),
        )

    def _with_appends(self, on_disk: OnDisk, appends: list[Append]) -> PersistedSession | None:
        session, version = on_disk.session, on_disk.header.version
        for append in appends:
            if append.header.version <= version:
                continue  # already in the tail
            if append.expected != version:
                return None
            session = extend(session, append, self._codec)
            version = append.header.version
        return session

    def _quarantine_bad(self, session_id: str, reason: str) -> None:
        """Move a damaged base aside and journal its removal, so every process forgets it."""
        with self._exclusive():
            self._set_aside_locked(session_id, reason)

    def _set_aside_locked(self, session_id: str, reason: str) -> str | None:
        """With the store lock: if the session is still damaged, quarantine and forget it.

        Returns what was done, or ``None`` if the session was deleted, rewritten or repaired
        meanwhile.
        """
        if self._problem_locked(session_id) is None:
            return None
        target = self._files.set_aside(session_id, reason)
        self._journal_removal(session_id, reason)
        if target is None:
            return "removed from the store (its file was missing)"
        return f"moved to {target} and removed from the store"

    def _problem_locked(self, session_id: str) -> str | None:
        """With the store lock: what is wrong with a session's files, or ``None``.

        No checkpoint can run meanwhile, so files that do not match the journal are damaged.
        """
        with self._lock:
            header, cached, appends = self._lookup(session_id, locked=True)
        if header is None or cached is not None:
            return None  # deleted, or its latest state is a whole document in the journal
        try:
            on_disk = self._files.read(session_id)
        except BadFile as exc:
            return f"damaged: {exc}"
        if on_disk is None:
            return "its base file is missing"
        session = self._with_appends(on_disk, appends)
        if session is not None and (
            session.version == header.version and session.created_at == header.created_at
        ):
            return None
        return f"its files do not match the journal ({on_disk.tail_problem or 'versions differ'})"
