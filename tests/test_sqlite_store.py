"""SQLiteSessionStore: the conformance suite on a file and in memory, and SQLite specifics."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from _sealing import variant
from ulid import ULID

from session_persistence import (
    ConfigurationError,
    InMemorySessionStore,
    Interaction,
    InteractionMessage,
    SessionConflictError,
    SessionFilter,
    SessionLimitError,
    SessionNotFoundError,
    SessionObject,
    SessionQueryOptions,
    SessionStoreConfig,
    SQLiteSessionStore,
    StoreCorruptionError,
    StoreIOError,
    StoreLockTimeoutError,
)
from session_persistence.config import Durability
from session_persistence.stores.sqlite import _schema as schema
from session_persistence.stores.sqlite._schema import SCHEMA_VERSION
from session_persistence.testing import FakeClock, StoreConformance, eventually, session_object

FIXTURES = Path(__file__).with_name("fixtures")
CHILD = str(Path(__file__).with_name("sqlite_child.py"))


class TestSQLiteFileConformance(StoreConformance):
    def make_store(self, config: SessionStoreConfig, path: Path) -> SQLiteSessionStore:
        return SQLiteSessionStore(path / "data" / "sessions.db", config)


class TestSQLiteProcessDurabilityConformance(StoreConformance):
    def make_store(self, config: SessionStoreConfig, path: Path) -> SQLiteSessionStore:
        return SQLiteSessionStore(path / "sessions.db", config, durability="process")


class TestSQLiteMemoryConformance(StoreConformance):
    def make_store(self, config: SessionStoreConfig, path: Path) -> SQLiteSessionStore:
        return SQLiteSessionStore(":memory:", config)


# Issue 23: the suite again with sealing, compression, and both (tests/_sealing.py).


class TestSQLiteSealedConformance(StoreConformance):
    def make_store(self, config: SessionStoreConfig, path: Path) -> SQLiteSessionStore:
        return SQLiteSessionStore(path / "data" / "sessions.db", variant(config, "sealed"))


class TestSQLiteCompressedConformance(StoreConformance):
    def make_store(self, config: SessionStoreConfig, path: Path) -> SQLiteSessionStore:
        return SQLiteSessionStore(path / "data" / "sessions.db", variant(config, "compressed"))


class TestSQLiteSealedCompressedConformance(StoreConformance):
    def make_store(self, config: SessionStoreConfig, path: Path) -> SQLiteSessionStore:
        return SQLiteSessionStore(
            path / "data" / "sessions.db", variant(config, "sealed_compressed")
        )


# -- helpers ---------------------------------------------------------------------------------


def rows(path: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """Run a query with a plain sqlite3 connection, as an operator would with the shell."""
    db = sqlite3.connect(path)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def run_sql(path: Path, *statements: str) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in statements:
            db.execute(statement)
    finally:
        db.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "sessions.db"


def message(content: str, sender: str = "user") -> Interaction:
    return Interaction(request=InteractionMessage(event={"content": content}, sender=sender))


# -- seed 004: the repository cases -------------------------------------------------------------


async def test_create_with_and_without_optional_fields(db_path: Path) -> None:
    """Optional fields default sensibly; given ones come back as given."""
    async with SQLiteSessionStore(db_path, SessionStoreConfig(clock=FakeClock())) as store:
        bare = await store.create_session(
            SessionObject(processor_id="p", activity_id="a", request_id="r")
        )
        full = await store.create_session(
            session_object("p", interactions=2),
            expires_at=None,
            metadata={"traits": {"plan": "pro"}},
            tags=["x"],
        )
        got_bare = await store.get_session(bare.session_id)
        got_full = await store.get_session(full.session_id)
    assert got_bare is not None
    assert got_bare == bare
    assert got_bare.metadata == {}
    assert got_bare.tags == []
    assert got_bare.interactions == []
    assert got_full is not None
    assert got_full == full
    assert got_full.expires_at is None
    assert got_full.metadata == {"traits": {"plan": "pro"}}


async def test_get_missing_session_is_none(db_path: Path) -> None:
    """A missing id is ``None``, not an error."""
    async with SQLiteSessionStore(db_path) as store:
        assert await store.get_session("no-such-session") is None


async def test_appends_keep_order_and_missing_session_raises(db_path: Path) -> None:
    """One then two appended interactions come back in order; a missing session raises."""
    async with SQLiteSessionStore(db_path) as store:
        session = await store.create_session(session_object())
        await store.append_interactions(session.session_id, message("first"))
        header = await store.append_interactions(
            session.session_id, message("second"), message("third", "assistant")
        )
        assert header.interaction_count == 3
        got = await store.get_session(session.session_id)
        assert got is not None
        assert [i.request.event["content"] for i in got.interactions] == [
            "first",
            "second",
            "third",
        ]
        assert got.interactions[2].request.sender == "assistant"
        with pytest.raises(SessionNotFoundError):
            await store.append_interactions("missing-session", message("lost"))
    assert rows(db_path, "SELECT seq FROM interactions ORDER BY seq") == [(0,), (1,), (2,)]


async def test_long_content_nested_metadata_and_fifty_interactions(db_path: Path) -> None:
    """10,000 characters, nested metadata and 50 interactions come back intact and in order."""
    long = "é" + "x" * 9_998 + "€"
    nested = {"user": {"traits": {"langs": ["en", "fr"], "score": 1.5, "ok": True}}, "n": None}
    async with SQLiteSessionStore(db_path) as store:
        session = await store.create_session(session_object(), metadata=nested, expires_at=None)
        await store.append_interactions(session.session_id, message(long))
        for i in range(49):
            await store.append_interactions(session.session_id, message(f"m{i}"))
    async with SQLiteSessionStore(db_path) as store:
        got = await store.get_session(session.session_id)
    assert got is not None
    assert got.metadata == nested
    assert got.interactions[0].request.event["content"] == long
    assert [i.request.event["content"] for i in got.interactions[1:]] == [
        f"m{i}" for i in range(49)
    ]


async def test_deleting_a_session_deletes_its_interactions(db_path: Path) -> None:
    """``ON DELETE CASCADE``: no interaction row outlives its session (checked in SQL)."""
    async with SQLiteSessionStore(db_path) as store:
        doomed = await store.create_session(session_object(interactions=3))
        kept = await store.create_session(session_object(interactions=2))
        assert await store.delete_session(doomed.session_id)
    assert rows(db_path, "SELECT count(*) FROM interactions WHERE session_id = ?",
                doomed.session_id) == [(0,)]  # fmt: skip
    assert rows(db_path, "SELECT count(*) FROM interactions WHERE session_id = ?",
                kept.session_id) == [(2,)]  # fmt: skip
    assert rows(db_path, "PRAGMA foreign_key_list(interactions)")[0][2] == "sessions"


# -- seeds 000/001: surviving a restart --------------------------------------------------------


async def test_sessions_survive_reopening_and_read_well_in_sql(db_path: Path) -> None:
    """What one instance wrote is all there in the next; the tables read as the seeds show."""
    async with SQLiteSessionStore(db_path) as store:
        written = [
            await store.create_session(
                session_object(f"proc-{i}", interactions=i),
                metadata={"dev_mode": i % 2 == 0, "config": {"model": "m", "depth": i}},
                expires_at=None,
            )
            for i in range(5)
        ]
    async with SQLiteSessionStore(db_path) as reopened:
        for session in written:
            got = await reopened.get_session(session.session_id)
            assert got is not None
            assert got.metadata == session.metadata
            assert type(got.metadata["dev_mode"]) is bool
            assert got.interactions == session.interactions
            assert got.activity_id == session.activity_id
    table = rows(db_path, "SELECT session_id, created_at, last_accessed_at FROM sessions")
    assert sorted(r[0] for r in table) == sorted(s.session_id for s in written)
    assert all(datetime.fromisoformat(r[1]).tzinfo is not None for r in table)
    assert rows(
        db_path, "SELECT json_extract(metadata, '$.dev_mode') FROM sessions ORDER BY session_id"
    ) == [(1,), (0,), (1,), (0,), (1,)]


async def test_deleted_and_idle_expired_sessions_are_gone_after_reopening(db_path: Path) -> None:
    """Deleted and idle-purged sessions do not come back; a recently read one stays."""
    clock = FakeClock()
    config = SessionStoreConfig(idle_timeout=60, default_session_ttl=None, clock=clock)
    async with SQLiteSessionStore(db_path, config) as store:
        deleted = await store.create_session(session_object())
        idle = await store.create_session(session_object())
        read = await store.create_session(session_object())
        assert await store.delete_session(deleted.session_id)
        clock.advance(45)
        assert await store.get_session(read.session_id) is not None  # refreshes its access
        clock.advance(30)
    async with SQLiteSessionStore(db_path, config) as store:
        assert await store.get_session(deleted.session_id) is None
        assert await store.get_session(idle.session_id) is None
        assert await store.get_session(read.session_id) is not None
        assert await store.cleanup_expired_sessions() == 1
    assert sorted(r[0] for r in rows(db_path, "SELECT session_id FROM sessions")) == [
        read.session_id
    ]


async def test_recorded_reads_reach_the_database_with_the_next_write(db_path: Path) -> None:
    """A read costs no write; its ``last_accessed_at`` is written with the next one."""
    clock = FakeClock()
    config = SessionStoreConfig(clock=clock)
    async with SQLiteSessionStore(db_path, config) as store:
        session = await store.create_session(session_object())
        other = await store.create_session(session_object())
        clock.advance(10)
        await store.get_session(session.session_id)
        stats = await store.get_stats()
        commits = stats.backend["commits"]
        assert rows(db_path, "SELECT last_accessed_at FROM sessions WHERE session_id = ?",
                    session.session_id)[0][0] == session.last_accessed_at.isoformat(
                        timespec="microseconds")  # fmt: skip
        await store.update_session(other.session_id, {"metadata": {"x": 1}})
        assert (await store.get_stats()).backend["commits"] == commits + 1
    assert rows(db_path, "SELECT last_accessed_at FROM sessions WHERE session_id = ?",
                session.session_id)[0][0] == clock.now.isoformat(
                    timespec="microseconds")  # fmt: skip


# -- schema and migrations ---------------------------------------------------------------------


async def test_a_version_1_database_opens_and_migrates(tmp_path: Path) -> None:
    """The schema-1 fixture migrates to the current schema, its sessions intact."""
    path = tmp_path / "old.db"
    shutil.copyfile(FIXTURES / "sqlite_v1.db", path)
    async with SQLiteSessionStore(path, SessionStoreConfig(clock=FakeClock())) as store:
        stats = await store.get_stats()
        assert stats.backend["migrated_from"] == 1
        assert stats.backend["schema_version"] == SCHEMA_VERSION == 3
        session = await store.get_session("01JD5ZQ7N4W3X8Y9Z0A1B2C3E0")
        assert session is not None
        assert session.activity_id == ULID.from_str("01JD5ZQ7N4W3X8Y9Z0A1B2C3D4")
        assert session.metadata == {
            "dev_mode": True,
            "user": {"name": "Ada", "langs": ["en", "fr"]},
        }
        assert [i.request.event["content"] for i in session.interactions] == [
            "message 0", "message 1", "message 2",
        ]  # fmt: skip
        assert session.interactions[0].responses[0].recipients == {"user"}
        assert session.version == 4
        assert await store.count_sessions(SessionFilter(has_interactions=True)) == 1
        legacy = await store.get_session("legacy-session")
        assert legacy is not None
        assert legacy.activity_id == "activity-1"
        # The backfilled size is the stored document's length, the base an append adds to.
        before = await store._get_header("legacy-session")
        assert before is not None
        assert before.size_bytes > 200
        after = await store.append_interactions("legacy-session", message("new"))
        assert after.interaction_count == 1
        assert after.size_bytes > before.size_bytes
    assert rows(path, "PRAGMA user_version") == [(3,)]
    assert rows(path, "SELECT interaction_count FROM sessions ORDER BY session_id") == [(3,), (1,)]


async def test_a_version_2_database_opens_and_migrates(tmp_path: Path) -> None:
    """The schema-2 fixture (two table sets) migrates to v3: both keep their sessions.

    Version 3 drops the indexes on the columns every write changes, in every table set.
    """
    path = tmp_path / "old.db"
    shutil.copyfile(FIXTURES / "sqlite_v2.db", path)
    async with SQLiteSessionStore(path, SessionStoreConfig(clock=FakeClock())) as store:
        assert (await store.get_stats()).backend["migrated_from"] == 2
        session = await store.get_session("01JD5ZQ7N4W3X8Y9Z0A1B2C3E0")
        assert session is not None
        assert [i.request.event["content"] for i in session.interactions] == [
            "message 0", "message 1", "message 2",
        ]  # fmt: skip
        updated = await store.update_session(session.session_id, {"tags": ["v3"]})
        assert updated.version == 5
    async with SQLiteSessionStore(path, table_prefix="other_") as other:
        assert (await other.get_stats()).backend["migrated_from"] == 3
        old = await other.get_session("v2-session")
        assert old is not None
        assert old.metadata == {"from": "v2"}
        assert [i.request.event["content"] for i in old.interactions] == ["other 0", "other 1"]
        header = await other.append_interactions("v2-session", message("new"))
        assert header.interaction_count == 3
        assert header.version == 3
    assert rows(path, "PRAGMA user_version") == [(3,)]
    indexes = {name for (name,) in rows(path, "SELECT name FROM sqlite_master WHERE type='index'")}
    for p in ("", "other_"):
        assert f"{p}sessions_updated_at" not in indexes
        assert f"{p}sessions_last_accessed_at" not in indexes
        for column in ("expires_at", "processor_id", "activity_id", "created_at"):
            assert f"{p}sessions_{column}" in indexes


async def test_a_newer_schema_is_refused_and_left_alone(db_path: Path) -> None:
    """A file from a newer library is refused with a clear error, unchanged."""
    async with SQLiteSessionStore(db_path):
        pass
    run_sql(db_path, "PRAGMA user_version = 99")
    before = await asyncio.to_thread(db_path.read_bytes)
    store = SQLiteSessionStore(db_path)
    with pytest.raises(StoreCorruptionError, match="upgrade session-persistence"):
        await store.initialize()
    assert not store.is_initialized
    assert await asyncio.to_thread(db_path.read_bytes) == before


async def test_a_file_that_is_not_a_database_is_refused(db_path: Path) -> None:
    """Garbage where the database should be: a typed error, the file untouched."""
    db_path.parent.mkdir(parents=True)
    garbage = b"this is not a database" * 100
    await asyncio.to_thread(db_path.write_bytes, garbage)
    store = SQLiteSessionStore(db_path)
    with pytest.raises(StoreCorruptionError, match="restore it from a backup"):
        await store.initialize()
    assert await asyncio.to_thread(db_path.read_bytes) == garbage


async def test_a_damaged_row_is_reported_not_returned(db_path: Path) -> None:
    """A row edited into nonsense raises ``StoreCorruptionError`` naming the session."""
    async with SQLiteSessionStore(db_path) as store:
        session = await store.create_session(session_object(interactions=2))
    run_sql(db_path, f"UPDATE interactions SET data = '{{\"oops\": 1}}' "
                     f"WHERE session_id = '{session.session_id}' AND seq = 1")  # fmt: skip
    async with SQLiteSessionStore(db_path) as store:
        with pytest.raises(StoreCorruptionError, match=session.session_id):
            await store.get_session(session.session_id)
        assert (await store.health_check()).healthy is False


async def test_table_prefixes_keep_stores_apart_in_one_file(db_path: Path) -> None:
    """Two prefixes, two independent stores in one file; a bad prefix is refused."""
    async with (
        SQLiteSessionStore(db_path, table_prefix="a_") as a,
        SQLiteSessionStore(db_path, table_prefix="b_") as b,
    ):
        await a.create_session(session_object("in-a"))
        assert await b.count_sessions() == 0
        assert [s.processor_id for s in await a.list_sessions()] == ["in-a"]
    assert rows(db_path, "SELECT count(*) FROM a_sessions") == [(1,)]
    for bad in ("1x", "a-b", "x; DROP TABLE y", "a" * 40):
        with pytest.raises(ConfigurationError, match="table_prefix"):
            SQLiteSessionStore(db_path, table_prefix=bad)


async def test_pragmas_follow_durability(tmp_path: Path) -> None:
    """WAL always; ``synchronous`` FULL for "full", NORMAL for "process"; foreign keys on."""
    modes: list[tuple[Durability, int]] = [("full", 2), ("process", 1)]
    for durability, synchronous in modes:
        async with SQLiteSessionStore(
            tmp_path / f"{durability}.db", durability=durability
        ) as store:
            figures = (await store.get_stats()).backend
        assert figures["journal_mode"] == "wal"
        assert figures["synchronous"] == synchronous
        assert figures["foreign_keys"] == 1
    with pytest.raises(ConfigurationError, match="durability"):
        SQLiteSessionStore(tmp_path / "x.db", durability="fast")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="busy_timeout"):
        SQLiteSessionStore(tmp_path / "x.db", busy_timeout=0)


async def test_files_are_private_and_the_parent_is_created(tmp_path: Path) -> None:
    """The parent directories are created; the database file is 0600."""
    path = tmp_path / "a" / "b" / "sessions.db"
    async with SQLiteSessionStore(path) as store:
        await store.create_session(session_object())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# -- concurrency -------------------------------------------------------------------------------


async def test_concurrent_writers_share_commits(db_path: Path) -> None:
    """Writers queued together commit in one transaction (group commit), all applied."""
    async with SQLiteSessionStore(db_path) as store:
        sessions = [await store.create_session(session_object()) for _ in range(8)]
        before = (await store.get_stats()).backend

        async def write(session_id: str) -> None:
            for i in range(20):
                await store.append_interactions(session_id, message(str(i)))

        await asyncio.gather(*(write(s.session_id) for s in sessions))
        after = (await store.get_stats()).backend
        assert after["batches_committed"] - before["batches_committed"] == 160
        assert after["commits"] - before["commits"] < 160
        for session in sessions:
            got = await store.get_session(session.session_id)
            assert got is not None
            assert [i.request.event["content"] for i in got.interactions] == [
                str(i) for i in range(20)
            ]


async def test_a_conflict_fails_only_its_own_batch_in_a_group(db_path: Path) -> None:
    """In one group commit, a stale ``expected_version`` fails alone; the others commit."""
    async with SQLiteSessionStore(db_path) as store:
        a = await store.create_session(session_object())
        b = await store.create_session(session_object())
        results = await asyncio.gather(
            store.update_session(a.session_id, {"tags": ["ok"]}, expected_version=1),
            store.update_session(b.session_id, {"tags": ["stale"]}, expected_version=7),
            store.update_session(a.session_id, {"metadata": {"x": 1}}),
            return_exceptions=True,
        )
        assert isinstance(results[1], SessionConflictError)
        assert not isinstance(results[0], BaseException)
        got_a = await store.get_session(a.session_id)
        got_b = await store.get_session(b.session_id)
    assert got_a is not None
    assert got_a.version == 3
    assert got_a.tags == ["ok"]
    assert got_b is not None
    assert got_b.version == 1
    assert got_b.tags == []


async def test_a_held_lock_times_out_with_a_typed_error(db_path: Path) -> None:
    """Another connection holding the write lock past ``busy_timeout``: StoreLockTimeoutError."""
    async with SQLiteSessionStore(db_path, busy_timeout=0.2) as store:
        session = await store.create_session(session_object())
        other = sqlite3.connect(db_path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreLockTimeoutError, match="busy_timeout"):
                await store.update_session(session.session_id, {"tags": ["late"]})
        finally:
            other.execute("ROLLBACK")
            other.close()
        got = await store.get_session(session.session_id)
        assert got is not None
        assert got.tags == []
        assert got.version == 1
        await store.update_session(session.session_id, {"tags": ["now"]})


def spawn(*args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, CHILD, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )


async def test_two_processes_with_expected_versions_lose_no_update(db_path: Path) -> None:
    """Two processes increment one counter with version checks: every increment lands."""
    async with SQLiteSessionStore(db_path) as store:
        session = await store.create_session(
            session_object("counter"), metadata={"n": 0}, expires_at=None
        )
    times = 60
    children = [spawn("counter", str(db_path), session.session_id, str(times), name)
                for name in ("a", "b")]  # fmt: skip
    outputs = [await asyncio.to_thread(child.communicate, timeout=120) for child in children]
    for child, (_, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err.decode()
        assert b"locked" not in err
    reports = [orjson.loads(out) for out, _ in outputs]
    async with SQLiteSessionStore(db_path) as store:
        got = await store.get_session(session.session_id)
    assert got is not None
    assert got.metadata["n"] == 2 * times
    texts = [i.request.event["content"] for i in got.interactions]
    assert len(texts) == 2 * times
    for name in ("a", "b"):  # each process's appends, in its own order
        assert [t for t in texts if t.startswith(f"{name}-")] == [
            f"{name}-{i}" for i in range(times)
        ]
    assert sum(r["increments"] for r in reports) == 2 * times


async def test_sigkill_loses_no_acknowledged_write(db_path: Path) -> None:
    """A writer killed at a random moment: every write it reported is in the file."""
    for _ in range(3):
        child = spawn("crash", str(db_path))
        assert child.stdout is not None
        lines: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while len([x for x in lines if x["kind"] == "write"]) < random.randint(5, 40):
            line = await asyncio.to_thread(child.stdout.readline)
            assert line, child.stderr.read().decode() if child.stderr else ""
            lines.append(orjson.loads(line))
            assert time.monotonic() < deadline
        child.send_signal(signal.SIGKILL)
        await asyncio.to_thread(child.wait)
        child.stdout.close()
        if child.stderr:
            child.stderr.close()
        session_id = lines[0]["id"]
        last = [x for x in lines if x["kind"] == "write"][-1]
        async with SQLiteSessionStore(db_path) as store:
            got = await store.get_session(session_id)
        assert got is not None
        assert got.interaction_count >= last["count"]
        assert got.version >= last["version"]
        assert got.metadata["i"] >= last["i"]


# -- SQL pushdown matches the reference ----------------------------------------------------------


async def test_queries_pushed_to_sql_match_the_in_memory_store(db_path: Path) -> None:
    """Filters, sorting, pagination, counts and search give the reference store's answers."""
    clock = FakeClock()
    config = SessionStoreConfig(clock=clock, idle_timeout=500)
    rng = random.Random(7)
    async with (
        SQLiteSessionStore(db_path, config) as sql_store,
        InMemorySessionStore(config) as memory,
    ):
        for i in range(60):
            obj = session_object(f"proc-{i % 3}", interactions=i % 4)
            metadata = {"k": i % 5, "s": f"Émile-{i % 7}", "flag": i % 2 == 0,
                        "nested": {"deep": [i % 3]}, "f": i / 4, "none": None}  # fmt: skip
            tags = rng.sample(["red", "green", "blue", "Ünïcode"], rng.randint(0, 3))
            expires = None if i % 6 == 0 else clock.now + timedelta(seconds=rng.randint(1, 900))
            await sql_store.create_session(obj, metadata=metadata, tags=tags, expires_at=expires)
            clock.advance(rng.randint(0, 20))
        # The reference gets the very same sessions (ids, versions, timestamps).
        export = db_path.parent / "all.jsonl"
        await sql_store.export_sessions(export, SessionFilter(include_expired=True))
        await memory.import_sessions(export)
        for session in (await sql_store.list_sessions(SessionFilter(include_expired=True)))[::9]:
            await sql_store.get_session(session.session_id)  # recorded reads: idle expiry
            await memory.get_session(session.session_id)
        clock.advance(100)
        filters = [
            SessionFilter(),
            SessionFilter(include_expired=True),
            SessionFilter(processor_id=["proc-1", "proc-2"]),
            SessionFilter(metadata={"k": 3}),
            SessionFilter(metadata={"s": "Émile-2", "flag": True}),
            SessionFilter(metadata={"none": None}),
            SessionFilter(metadata={"f": 2.5}),
            SessionFilter(metadata={"nested": {"deep": [1]}}),
            SessionFilter(metadata={"k": True}),
            SessionFilter(tags=["red", "Ünïcode"]),
            SessionFilter(tags_all=["red", "blue"]),
            SessionFilter(has_interactions=False),
            SessionFilter(interaction_count_min=2, interaction_count_max=2),
            SessionFilter(created_after=clock.now - timedelta(seconds=400)),
            SessionFilter(expires_before=clock.now + timedelta(seconds=300)),
            SessionFilter(expires_after=clock.now + timedelta(seconds=300)),
        ]
        options = [
            SessionQueryOptions(),
            SessionQueryOptions(sort_by="expires_at", sort_order="desc", limit=7, offset=2),
            SessionQueryOptions(sort_by="activity_id", limit=5),
            SessionQueryOptions(sort_by="updated_at", sort_order="desc", offset=3),
        ]
        for flt in filters:
            assert await sql_store.count_sessions(flt) == await memory.count_sessions(flt), flt
            for opt in options:
                want = [s.session_id for s in await memory.list_sessions(flt, opt)]
                got = [s.session_id for s in await sql_store.list_sessions(flt, opt)]
                assert got == want, (flt, opt)
        for needle in ("émile-3", "RED", "ünï", "message 2", "proc-0", "true", "2030-"):
            for interactions in (False, True):
                want = [s.session_id for s in await memory.search_sessions(
                    needle, search_interactions=interactions, include_expired=True)]  # fmt: skip
                got = [s.session_id for s in await sql_store.search_sessions(
                    needle, search_interactions=interactions, include_expired=True)]  # fmt: skip
                assert got == want, needle
        want_expired = [s.session_id for s in await memory.get_expired_sessions()]
        assert [s.session_id for s in await sql_store.get_expired_sessions()] == want_expired


# -- damage, failures and maintenance -----------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("metadata", "'not json'", "not valid JSON"),
        ("metadata", "'[1, 2]'", "metadata"),
        ("tags", "'[1]'", "tags"),
        ("ulid_ids", "'x'", "ulid_ids"),
        ("interaction_count", "-1", "interaction_count"),
        ("created_at", "'yesterday'", "timestamp"),
        ("version", "0", "version"),
        ("session_id", "'../../etc/passwd'", "session"),
    ],
)
async def test_damaged_columns_are_reported(
    db_path: Path, column: str, value: str, reason: str
) -> None:
    """Each kind of damaged column raises ``StoreCorruptionError``, whichever read finds it."""
    async with SQLiteSessionStore(db_path) as store:
        await store.create_session(session_object(interactions=1))
    run_sql(db_path, "PRAGMA foreign_keys = OFF",
            f"UPDATE sessions SET {column} = {value}")  # fmt: skip
    async with SQLiteSessionStore(db_path) as store:
        with pytest.raises(StoreCorruptionError, match=reason):
            await store.list_sessions(SessionFilter(include_expired=True))
        with pytest.raises(StoreCorruptionError):
            await store.get_stats()


async def test_an_interaction_count_that_disagrees_with_the_rows_is_reported(
    db_path: Path,
) -> None:
    """A session whose rows do not number ``interaction_count`` is never returned short."""
    async with SQLiteSessionStore(db_path) as store:
        session = await store.create_session(session_object(interactions=3))
    run_sql(db_path, "DELETE FROM interactions WHERE seq = 1")
    async with SQLiteSessionStore(db_path) as store:
        with pytest.raises(StoreCorruptionError, match="3 but 2 interaction rows"):
            await store.get_session(session.session_id)


async def test_a_failed_migration_leaves_the_file_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migration step that fails rolls the whole migration back: still version 1."""
    path = tmp_path / "old.db"
    shutil.copyfile(FIXTURES / "sqlite_v1.db", path)

    def broken(db: sqlite3.Connection, prefix: str) -> None:
        db.execute(f"ALTER TABLE {prefix}sessions ADD COLUMN half_done INTEGER")
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(schema, "MIGRATIONS", [schema.MIGRATIONS[0], broken])
    with pytest.raises(StoreIOError, match="disk I/O error"):
        await SQLiteSessionStore(path).initialize()
    assert rows(path, "PRAGMA user_version") == [(1,)]
    assert "half_done" not in {r[1] for r in rows(path, "PRAGMA table_info(sessions)")}
    monkeypatch.undo()
    async with SQLiteSessionStore(path) as store:
        assert await store.count_sessions(SessionFilter(include_expired=True)) == 2


async def test_a_failed_commit_fails_every_batch_in_it_and_applies_none(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A storage error inside a group commit: every writer in it gets it; nothing lands."""
    async with SQLiteSessionStore(db_path) as store:
        sessions = [await store.create_session(session_object()) for _ in range(3)]

        def failing(*args: Any) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        # Batches and single-operation writes alike.
        monkeypatch.setattr(store, "_apply_ops", failing)
        monkeypatch.setattr(store, "_apply_built", failing)
        results = await asyncio.gather(
            *(store.update_session(s.session_id, {"tags": ["lost"]}) for s in sessions),
            return_exceptions=True,
        )
        assert all(isinstance(r, StoreIOError) for r in results)
        monkeypatch.undo()
        for session in sessions:
            got = await store.get_session(session.session_id)
            assert got is not None
            assert got.tags == []
        health = await store.health_check()
        assert not health.healthy
        assert "disk I/O error" in health.issues[-1]


async def test_racing_creates_respect_max_sessions_inside_the_commit(db_path: Path) -> None:
    """Two creates that both passed the early check: the commit admits only one."""
    async with SQLiteSessionStore(db_path, SessionStoreConfig(max_sessions=1)) as store:
        results = await asyncio.gather(
            store.create_session(session_object()),
            store.create_session(session_object()),
            return_exceptions=True,
        )
        assert sum(isinstance(r, SessionLimitError) for r in results) == 1
        assert await store.count_sessions() == 1


async def test_optimize_checkpoints_and_vacuums_when_worth_it(db_path: Path) -> None:
    """After most sessions are deleted, optimize() shrinks the file."""
    async with SQLiteSessionStore(db_path) as store:
        big = {"blob": "x" * 20_000}
        ids = [(await store.create_session(session_object(), metadata=big)).session_id
               for _ in range(40)]  # fmt: skip
        for session_id in ids[:-2]:
            await store.delete_session(session_id)
        before = (await store.get_stats()).backend
        result = await store.optimize()
        after = (await store.get_stats()).backend
    assert any(op.startswith("VACUUM") for op in result.operations_performed)
    assert "checkpointed the WAL" in result.operations_performed
    assert after["database_bytes"] < before["database_bytes"] / 4
    assert after["wal_bytes"] <= before["wal_bytes"]


async def test_memory_database_keeps_backups_in_memory(tmp_path: Path) -> None:
    """``":memory:"``: no file anywhere, backups kept in memory, restore works."""
    async with SQLiteSessionStore(":memory:") as store:
        session = await store.create_session(session_object(interactions=2))
        backup = await store.create_backup()
        await store.delete_session(session.session_id)
        result = await store.restore_from_backup(backup.backup_id)
        assert result.restored_count == 1
        assert (await store.get_stats()).backend["backup_location"] == "memory"
    assert not os.listdir(tmp_path)


async def test_backups_go_beside_the_database(db_path: Path) -> None:
    """A file store's backups default to ``<database>-backups/``."""
    async with SQLiteSessionStore(db_path) as store:
        await store.create_session(session_object())
        backup = await store.create_backup()
    folder = db_path.with_name("sessions.db-backups")
    assert os.listdir(folder) == [f"{backup.backup_id}.backup"]


async def test_a_cancelled_writer_never_leaves_a_batch_behind(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write cancelled after queueing its batch is committed at shutdown, not dropped."""
    async with SQLiteSessionStore(db_path) as store:
        session = await store.create_session(session_object())
        call = store._call

        async def cancelled_before_the_worker_runs(fn: Any, *args: Any) -> Any:
            if fn == store._commit_queued:
                raise asyncio.CancelledError
            return await call(fn, *args)

        monkeypatch.setattr(store, "_call", cancelled_before_the_worker_runs)
        with pytest.raises(asyncio.CancelledError):
            await store.update_session(session.session_id, {"tags": ["t"]})
        monkeypatch.undo()
        assert len(store._queue) == 1
    async with SQLiteSessionStore(db_path) as store:
        got = await store.get_session(session.session_id)
        assert got is not None
        assert got.tags == ["t"]


# -- other processes' writes as events -----------------------------------------------------------


async def test_another_connections_writes_fire_events_once(db_path: Path) -> None:
    """Creates, updates and deletes by another connection arrive; our own are not repeated."""
    async with (
        SQLiteSessionStore(db_path, poll_interval=0.02) as watcher,
        SQLiteSessionStore(db_path, watch=False) as writer,
    ):
        events: list[tuple[str, str]] = []
        watcher.on_session_created(lambda s: events.append(("created", s.session_id)))
        watcher.on_session_updated(lambda new, old: events.append(("updated", new.session_id)))
        watcher.on_session_deleted(lambda sid: events.append(("deleted", sid)))
        await watcher.count_sessions()  # the baseline is taken before this returns

        async def until(count: int) -> None:
            await eventually(lambda: len(events) >= count)

        created = await writer.create_session(session_object())
        await until(1)
        await writer.update_session(created.session_id, {"tags": ["t"]})
        await until(2)
        own = await watcher.create_session(session_object())  # fires once, from the write itself
        await until(3)
        await writer.delete_session(created.session_id)
        await until(4)
        await asyncio.sleep(0.1)  # a few more polls: nothing is reported twice
        sid = created.session_id
        assert events == [
            ("created", sid),
            ("updated", sid),
            ("created", own.session_id),
            ("deleted", sid),
        ]


async def test_nothing_is_followed_without_listeners_or_with_watch_off(db_path: Path) -> None:
    """Without listeners no versions are tracked; watch=False never follows."""
    async with (
        SQLiteSessionStore(db_path, poll_interval=0.01) as idle,
        SQLiteSessionStore(db_path, watch=False, poll_interval=0.01) as off,
    ):
        await idle.create_session(session_object())
        events: list[str] = []
        off.on_session_created(lambda s: events.append(s.session_id))
        await idle.create_session(session_object())
        await asyncio.sleep(0.1)
        assert idle._follower.known is None
        assert events == []


def test_poll_interval_must_be_positive(db_path: Path) -> None:
    """A zero or non-number poll interval is a configuration error."""
    for bad in (0, -1, True, "1"):
        with pytest.raises(ConfigurationError, match="poll_interval"):
            SQLiteSessionStore(db_path, poll_interval=bad)  # type: ignore[arg-type]


# -- check ---------------------------------------------------------------------------------------


async def test_check_reports_damaged_rows_and_repair_keeps_them_aside(db_path: Path) -> None:
    """A damaged row is reported, never returned; repair saves its raw rows, then deletes it."""
    async with SQLiteSessionStore(db_path) as store:
        bad = await store.create_session(session_object(interactions=2))
        header_bad = await store.create_session(session_object())
        good = await store.create_session(session_object(interactions=1))
    run_sql(
        db_path,
        "PRAGMA foreign_keys = OFF",
        f"UPDATE interactions SET data = '{{\"oops\": 1}}' WHERE session_id = '{bad.session_id}'",
        f"UPDATE sessions SET created_at = 'soon' WHERE session_id = '{header_bad.session_id}'",
    )
    async with SQLiteSessionStore(db_path) as store:
        report = await store.check()
        assert report.sessions_checked == 3
        assert sorted(p.target for p in report.problems) == sorted(
            [bad.session_id, header_bad.session_id]
        )
        assert not any(p.action for p in report.problems)
        repaired = await store.check(repair=True)
        assert all(p.action and "saved its rows" in p.action for p in repaired.problems)
        assert [s.session_id for s in await store.list_sessions()] == [good.session_id]
        assert (await store.check()).ok
    saved = sorted((db_path.parent / "sessions.db-quarantine").glob("*.json"))
    assert len(saved) == 2
    documents = [orjson.loads(path.read_bytes()) for path in saved]
    by_id = {doc["session"]["session_id"]: doc for doc in documents}
    assert by_id[bad.session_id]["interactions"][0]["data"] == '{"oops": 1}'
    assert by_id[header_bad.session_id]["session"]["created_at"] == "soon"
    assert "reason" in by_id[bad.session_id]
