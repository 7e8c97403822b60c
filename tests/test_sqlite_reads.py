"""SQLite store: point reads run on the caller's thread, and never wait there for a lock."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from session_persistence import SessionStoreConfig, SQLiteSessionStore, StoreCorruptionError
from session_persistence.stores.sqlite import _reader
from session_persistence.testing import FakeClock, session_object


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "sessions.db"


def count_calls(store: SQLiteSessionStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    call = store._call

    async def counted(fn: Any, *args: Any) -> Any:
        calls.append(fn.__name__)
        return await call(fn, *args)

    monkeypatch.setattr(store, "_call", counted)
    return calls


async def test_point_reads_hand_nothing_to_the_worker(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """get_session, get_session_header and has_session read without a worker call."""
    async with SQLiteSessionStore(db_path, watch=False) as store:
        session = await store.create_session(session_object(interactions=3), metadata={"k": 1})
        calls = count_calls(store, monkeypatch)
        got = await store.get_session(session.session_id)
        assert got is not None
        assert got.interactions == session.interactions
        assert got.metadata == {"k": 1}
        assert await store.get_session_header(session.session_id) is not None
        assert await store.has_session(session.session_id)
        assert await store.get_session("01JD5ZQ7N4W3X8Y9Z0A1B2C3D4") is None
        assert calls == []


async def test_a_read_records_the_access_without_a_write(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The returned session shows the read; the database gets it with the next write."""
    clock = FakeClock()
    async with SQLiteSessionStore(db_path, SessionStoreConfig(clock=clock), watch=False) as store:
        session = await store.create_session(session_object())
        clock.advance(60)
        calls = count_calls(store, monkeypatch)
        got = await store.get_session(session.session_id)
        assert got is not None
        assert got.last_accessed_at == clock.now
        header = await store.get_session_header(session.session_id)
        assert header is not None
        assert header.last_accessed_at == clock.now
        assert calls == []


async def test_expired_sessions_are_not_returned_nor_touched(db_path: Path) -> None:
    """An expired session reads as None and its last access stays as it was."""
    clock = FakeClock()
    async with SQLiteSessionStore(db_path, SessionStoreConfig(clock=clock), watch=False) as store:
        session = await store.create_session(session_object(), expires_at=clock.now)
        clock.advance(5)
        assert await store.get_session(session.session_id) is None
        header = await store.get_session_header(session.session_id)
        assert header is not None
        assert header.last_accessed_at == session.last_accessed_at


async def test_a_read_refused_a_lock_goes_through_the_worker(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read the loop's reader is refused goes to the worker, which waits for the lock.

    (SQLite refuses a WAL reader during WAL recovery or a truncating checkpoint.)
    """
    async with SQLiteSessionStore(db_path, watch=False) as store:
        session = await store.create_session(session_object(interactions=2), metadata={"v": 1})
        assert store._reader is not None

        def refused(*args: Any) -> Any:
            raise _reader.Busy("database is locked")

        monkeypatch.setattr(store._reader, "session_rows", refused)
        monkeypatch.setattr(store._reader, "header_row", refused)
        calls = count_calls(store, monkeypatch)
        got = await store.get_session(session.session_id)
        assert got is not None
        assert got.metadata == {"v": 1}
        assert got.interactions == session.interactions
        assert await store.has_session(session.session_id)
        assert calls == ["_session_rows_sync", "_headers_sync"]


async def test_reads_inside_a_backup_snapshot_use_it(db_path: Path) -> None:
    """While a backup holds its read snapshot, point reads come from that snapshot."""
    async with SQLiteSessionStore(db_path, watch=False) as store:
        session = await store.create_session(session_object(), metadata={"v": 1})
        async with store._frozen():
            other = sqlite3.connect(db_path, isolation_level=None)
            try:
                other.execute("UPDATE sessions SET metadata = '{\"v\":2}'")
            finally:
                other.close()
            frozen = await store._load(session.session_id)
        after = await store._load(session.session_id)
        assert frozen is not None
        assert frozen.metadata == {"v": 1}
        assert after is not None
        assert after.metadata == {"v": 2}


async def test_a_history_slice_reads_only_its_rows(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """get_interactions decodes only the slice's rows, on the loop's reader (no worker call)."""
    async with SQLiteSessionStore(db_path, watch=False) as store:
        session = await store.create_session(session_object(interactions=6))
        other = sqlite3.connect(db_path, isolation_level=None)
        try:
            other.execute("UPDATE interactions SET data = 'not json' WHERE seq = 1")
        finally:
            other.close()
        calls = count_calls(store, monkeypatch)
        tail = await store.get_interactions(session.session_id, limit=3, newest_first=True)
        assert tail == session.interactions[:2:-1]
        assert (
            await store.get_interactions(session.session_id, offset=2) == (session.interactions[2:])
        )
        assert calls == []
        with pytest.raises(StoreCorruptionError, match=r"interactions\[1\]"):
            await store.get_interactions(session.session_id, limit=2)
        with pytest.raises(StoreCorruptionError):
            await store.get_session(session.session_id)


async def test_a_history_slice_missing_rows_is_damage(db_path: Path) -> None:
    """Rows fewer than interaction_count says the slice holds: StoreCorruptionError."""
    async with SQLiteSessionStore(db_path, watch=False) as store:
        session = await store.create_session(session_object(interactions=4))
        other = sqlite3.connect(db_path, isolation_level=None)
        try:
            other.execute("DELETE FROM interactions WHERE seq = 3")
        finally:
            other.close()
        assert len(await store.get_interactions(session.session_id, limit=2) or []) == 2
        with pytest.raises(StoreCorruptionError, match="interaction_count is 4"):
            await store.get_interactions(session.session_id, offset=2)


async def test_a_history_slice_refused_a_lock_goes_through_the_worker(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slice the loop's reader is refused is read by the worker; a backup's snapshot too."""
    async with SQLiteSessionStore(db_path, watch=False) as store:
        session = await store.create_session(session_object(interactions=3))
        assert store._reader is not None

        def refused(*args: Any) -> Any:
            raise _reader.Busy("database is locked")

        monkeypatch.setattr(store._reader, "run", refused)
        calls = count_calls(store, monkeypatch)
        got = await store.get_interactions(session.session_id, offset=1, limit=1)
        assert got == session.interactions[1:2]
        assert calls == ["_read_on_worker"]
        monkeypatch.undo()
        async with store._frozen():
            other = sqlite3.connect(db_path, isolation_level=None)
            try:
                other.execute("DELETE FROM interactions WHERE seq = 2")
                other.execute("UPDATE sessions SET interaction_count = 2")
            finally:
                other.close()
            frozen = await store.get_interactions(session.session_id)
        assert frozen == session.interactions
        assert await store.get_interactions(session.session_id) == session.interactions[:2]
