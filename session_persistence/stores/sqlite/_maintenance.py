"""Checking, repairing and re-sealing the SQLite store: a part of :class:`SQLiteSessionStore`.

Kept apart from :mod:`.store` for size, as a mixin whose methods run on the store (each takes
it as ``store``). ``check`` decodes every session (a sealed one opened too) and sets a damaged
one aside (:mod:`._quarantine`); a value sealed with a key the store does not hold raises
:class:`~session_persistence.errors.SealingKeyError` and is never set aside. Re-sealing and the
key census are :mod:`._seal`'s, run here in the store's transactions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from ...errors import StoreCorruptionError
from ...models import CheckProblem, ProgressCallback
from ._quarantine import save_rows
from ._seal import ResealCursor, census, reseal_step

if TYPE_CHECKING:
    from .store import SQLiteSessionStore

__all__ = ["Maintenance"]


class Maintenance:
    """``check``'s and ``rotate_key``'s backend hooks for :class:`SQLiteSessionStore`."""

    # == check =================================================================================

    async def _check_ids(self) -> list[str]:
        store = cast("SQLiteSessionStore", self)
        rows = await store._call(
            store._rows_sync, f"SELECT session_id FROM {store._prefix}sessions"
        )
        return [str(session_id) for (session_id,) in rows]

    def _rows_sync(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        store = cast("SQLiteSessionStore", self)
        return store._conn.execute(sql, params).fetchall()

    async def _check_sessions(self, session_ids: Sequence[str]) -> list[tuple[str, str]]:
        store = cast("SQLiteSessionStore", self)
        return await store._call(store._inspect_sync, session_ids)

    def _inspect_sync(self, session_ids: Sequence[str]) -> list[tuple[str, str]]:
        store = cast("SQLiteSessionStore", self)
        found = []
        for session_id in session_ids:
            problem = store._inspect_one(session_id)
            if problem is not None:
                found.append((session_id, problem))
        return found

    def _inspect_one(self, session_id: str) -> str | None:
        store = cast("SQLiteSessionStore", self)
        try:
            store._load_sync([session_id])
        except StoreCorruptionError as exc:
            return str(exc)
        return None

    async def _check_backend(self) -> list[CheckProblem]:
        store = cast("SQLiteSessionStore", self)
        rows = await store._call(store._rows_sync, "PRAGMA quick_check")
        if rows == [("ok",)]:
            return []
        found = "; ".join(str(row[0]) for row in rows[:5])
        return [
            CheckProblem(
                kind="database",
                target=store._label,
                problem=f"PRAGMA quick_check reports: {found}; restore the database from a backup",
            )
        ]

    async def _repair_backend(self, problem: CheckProblem) -> str | None:
        store = cast("SQLiteSessionStore", self)
        if problem.kind != "session":
            return None
        return await store._call(store._locked, lambda: store._set_aside(problem))

    def _set_aside(self, problem: CheckProblem) -> str | None:
        """Inside the write transaction: save a damaged row's raw columns, then delete it."""
        store = cast("SQLiteSessionStore", self)
        session_id, p = problem.target, store._prefix
        if store._inspect_one(session_id) is None:
            return None  # fine now (rewritten or deleted meanwhile)
        where = "deleted it (an in-memory database has nowhere to keep it)"
        if not store._memory:
            target = save_rows(
                store._conn,
                p,
                session_id,
                problem.problem,
                store._path.with_name(store._path.name + "-quarantine"),
                envelope=store._envelope,
                file_mode=store._file_mode,
                dir_mode=store._dir_mode,
                durable=store._durable_backups,
            )
            where = f"saved its rows to {target} and removed it from the store"
        store._conn.execute(f"DELETE FROM {p}sessions WHERE session_id = ?", (session_id,))
        store._follower.forget(session_id)
        return where

    # == sealing (see _seal.py) ==================================================================

    async def _reseal(self, key_id: str, progress: ProgressCallback) -> int:
        store = cast("SQLiteSessionStore", self)
        total = await store._call(store._count_sync, store._sql.count, [])
        progress(0, total)
        cursor = ResealCursor(key_id)
        while not cursor.finished:
            # One short write transaction per step, queued behind this process's writers
            # (the worker runs calls in order) and taking the write lock like theirs.
            done = cursor.sessions_done
            await store._call(store._locked, lambda: store._reseal_step(cursor))
            if cursor.sessions_done != done:
                progress(cursor.sessions_done, max(total, cursor.sessions_done))
        if cursor.rewritten and not store._memory:
            # The WAL still holds the pages as they were before: fold it into the file (where
            # secure_delete zeroed what was overwritten) and empty it. Best effort: a reader
            # in the way leaves it to the next checkpoint.
            await store._call(store._rows_sync, "PRAGMA wal_checkpoint(TRUNCATE)")
        return cursor.rewritten

    def _reseal_step(self, cursor: ResealCursor) -> None:
        store = cast("SQLiteSessionStore", self)
        # On a failed step (rolled back) the cursor may have moved: rotate_key is rerun then.
        reseal_step(store._conn, store._prefix, store._envelope, cursor)

    async def _key_census(self) -> dict[str | None, int]:
        store = cast("SQLiteSessionStore", self)
        return await store._call(store._snapshot_census)

    def _snapshot_census(self) -> dict[str | None, int]:
        store = cast("SQLiteSessionStore", self)
        with store._snapshot() as db:
            return census(db, store._prefix)
