"""SQLite store: the write path's shape (worker calls, rows written, errors in a group)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from session_persistence import (
    Interaction,
    InteractionMessage,
    SessionConflictError,
    SessionNotFoundError,
    SessionStoreConfig,
    SessionTooLargeError,
    SQLiteSessionStore,
)
from session_persistence.testing import session_object


def message(content: str) -> Interaction:
    return Interaction(request=InteractionMessage(event={"content": content}, sender="user"))


class Calls:
    """Counts the store's hand-offs to its worker thread."""

    def __init__(self, store: SQLiteSessionStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        call = store._call

        async def counted(fn: Any, *args: Any) -> Any:
            self.count += 1
            return await call(fn, *args)

        monkeypatch.setattr(store, "_call", counted)

    def take(self) -> int:
        count, self.count = self.count, 0
        return count


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "sessions.db"


async def test_each_plain_write_is_one_worker_call(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """create, update, append and delete each hand one call to the worker (read included)."""
    async with SQLiteSessionStore(db_path, watch=False) as store:
        calls = Calls(store, monkeypatch)
        session = await store.create_session(session_object(interactions=2))
        assert calls.take() == 1
        await store.update_session(session.session_id, {"metadata": {"a": 1}})
        assert calls.take() == 1
        await store.append_interactions(session.session_id, message("x"))
        assert calls.take() == 1
        with pytest.raises(SessionConflictError):
            await store.update_session(session.session_id, {"tags": ["t"]}, expected_version=1)
        assert calls.take() == 1
        assert await store.delete_session(session.session_id)
        assert calls.take() == 1


async def test_an_update_writes_only_the_rows_that_changed(db_path: Path) -> None:
    """Metadata alone writes the session's row; a changed tail rewrites only the tail."""
    async with SQLiteSessionStore(db_path, watch=False) as store:
        session = await store.create_session(session_object(interactions=5))
        sid = session.session_id

        async def changes(write: Any) -> int:
            before = await store._call(lambda: store._conn.total_changes)
            await write
            after = await store._call(lambda: store._conn.total_changes)
            return int(after - before)

        assert await changes(store.update_session(sid, {"metadata": {"k": "v"}})) == 1
        kept = session.interactions[:3]
        update = {"interactions": [*kept, message("new 3")]}
        # The row, two old rows deleted (seq >= 3), one inserted.
        assert await changes(store.update_session(sid, update)) == 1 + 2 + 1
        assert await changes(store.append_interactions(sid, message("a"), message("b"))) == 3
        got = await store.get_session(sid)
        assert got is not None
        assert [i.request.event["content"] for i in got.interactions[3:]] == ["new 3", "a", "b"]
        assert got.interactions[:3] == kept


async def test_a_refused_write_fails_alone_in_its_group_commit(db_path: Path) -> None:
    """Writes committed together: a missing session or an oversized value fails only itself."""
    config = SessionStoreConfig(max_session_bytes=4096)
    async with SQLiteSessionStore(db_path, config, watch=False) as store:
        sessions = [await store.create_session(session_object()) for _ in range(3)]
        await store.delete_session(sessions[0].session_id)
        commits = store._commits
        # Hold the worker until all four are queued, so they share one commit.
        held = threading.Event()
        assert store._executor is not None
        holding = asyncio.get_running_loop().run_in_executor(store._executor, held.wait)
        writes = asyncio.gather(
            store.update_session(sessions[0].session_id, {"tags": ["gone"]}),
            store.update_session(sessions[1].session_id, {"metadata": {"x": "y" * 5000}}),
            store.update_session(sessions[2].session_id, {"tags": ["kept"]}),
            store.append_interactions(sessions[2].session_id, message("kept too")),
            return_exceptions=True,
        )
        for _ in range(10_000):  # the writers run up to their hand-off, then wait
            if len(store._queue) == 4:
                break
            await asyncio.sleep(0.001)
        assert len(store._queue) == 4
        held.set()
        await holding
        results = await writes
        assert isinstance(results[0], SessionNotFoundError)
        assert isinstance(results[1], SessionTooLargeError)
        assert not isinstance(results[2], BaseException)
        assert not isinstance(results[3], BaseException)
        assert store._commits == commits + 1
        second = await store.get_session(sessions[1].session_id)
        third = await store.get_session(sessions[2].session_id)
        assert second is not None
        assert (second.metadata, second.version) == ({}, 1)
        assert third is not None
        assert (third.tags, third.version) == (["kept"], 3)
        assert [i.request.event["content"] for i in third.interactions] == ["kept too"]


async def test_updates_inside_a_transaction_still_join_it(db_path: Path) -> None:
    """A plain call inside ``store.transaction()`` is staged there, not written at once."""
    async with SQLiteSessionStore(db_path, watch=False) as store:
        session = await store.create_session(session_object())
        with pytest.raises(RuntimeError):
            async with store.transaction():
                await store.update_session(session.session_id, {"tags": ["staged"]})
                await store.append_interactions(session.session_id, message("staged"))
                assert await store.delete_session(session.session_id)
                raise RuntimeError("roll back")
        got = await store.get_session(session.session_id)
        assert got is not None
        assert (got.tags, got.interactions, got.version) == ([], [], 1)
