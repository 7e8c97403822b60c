"""PostgresSessionStore: the conformance suite on a real server, and PostgreSQL specifics."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _sealing import variant
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg.conninfo import make_conninfo

from session_persistence import (
    ConfigurationError,
    InMemorySessionStore,
    Interaction,
    InteractionMessage,
    SessionFilter,
    SessionObject,
    SessionQueryOptions,
    SessionStoreConfig,
    StoreCorruptionError,
    StoreIOError,
)
from session_persistence.stores.base import SessionStore
from session_persistence.stores.postgres import PostgresSessionStore
from session_persistence.stores.postgres._schema import SCHEMA_VERSION
from session_persistence.testing import (
    FakeClock,
    StoreConformance,
    eventually,
    interaction,
    session_object,
)

_prefixes = itertools.count()


def fresh_prefix() -> str:
    """A table prefix no other store of this run uses: each store starts empty."""
    return f"t{next(_prefixes)}_"


class TestPostgresConformance(StoreConformance):
    @pytest.fixture(autouse=True)
    def _database(self, postgres_dsn: str) -> None:
        self.dsn = postgres_dsn

    def make_store(self, config: SessionStoreConfig, path: Path) -> PostgresSessionStore:
        if config.backup_dir is None:
            config = dataclasses.replace(config, backup_dir=path / "backups")
        return PostgresSessionStore(self.dsn, config, table_prefix=fresh_prefix())


class TestPostgresBouncerModeConformance(StoreConformance):
    """PgBouncer-safe settings: no prepared statements, settings per transaction only."""

    @pytest.fixture(autouse=True)
    def _database(self, postgres_dsn: str) -> None:
        self.dsn = postgres_dsn

    def make_store(self, config: SessionStoreConfig, path: Path) -> PostgresSessionStore:
        if config.backup_dir is None:
            config = dataclasses.replace(config, backup_dir=path / "backups")
        return PostgresSessionStore(
            self.dsn, config, table_prefix=fresh_prefix(), pgbouncer=True, durability="process"
        )


class _SealingVariant(StoreConformance):
    """The conformance suite with one of the sealing variants (see tests/_sealing.py)."""

    variant_name = ""

    @pytest.fixture(autouse=True)
    def _database(self, postgres_dsn: str) -> None:
        self.dsn = postgres_dsn

    def make_store(self, config: SessionStoreConfig, path: Path) -> PostgresSessionStore:
        if config.backup_dir is None:
            config = dataclasses.replace(config, backup_dir=path / "backups")
        config = variant(config, self.variant_name)
        return PostgresSessionStore(self.dsn, config, table_prefix=fresh_prefix())


class TestPostgresSealedConformance(_SealingVariant):
    variant_name = "sealed"


class TestPostgresCompressedConformance(_SealingVariant):
    variant_name = "compressed"


class TestPostgresSealedCompressedConformance(_SealingVariant):
    variant_name = "sealed_compressed"


# -- helpers ---------------------------------------------------------------------------------


def sql(dsn: str, statement: str, *params: object) -> list[tuple[Any, ...]]:
    """Run one statement on a connection of its own, as an operator would with psql."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(statement, params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def message(content: str) -> Interaction:
    return Interaction(request=InteractionMessage(event={"content": content}, sender="user"))


@pytest.fixture
def prefix() -> str:
    return fresh_prefix()


# -- schema and migrations ---------------------------------------------------------------------


async def test_tables_read_well_in_psql(postgres_dsn: str, prefix: str) -> None:
    """One row per session, one per interaction in order, timestamps and JSON as written."""
    async with PostgresSessionStore(postgres_dsn, table_prefix=prefix) as store:
        session = await store.create_session(
            session_object("p", interactions=2), metadata={"plan": "pro"}, tags=["a"]
        )
        await store.append_interactions(session.session_id, message("third"))
    rows = sql(
        postgres_dsn,
        f"SELECT processor_id, version, metadata::text, tags::text, interaction_count "
        f"FROM {prefix}sessions",
    )
    assert rows == [("p", 2, '{"plan":"pro"}', '["a"]', 3)]
    seqs = sql(postgres_dsn, f"SELECT seq, data->'request'->'event'->>'content' "
               f"FROM {prefix}interactions ORDER BY seq")  # fmt: skip
    assert seqs == [(0, "message 0"), (1, "message 1"), (2, "third")]
    assert sql(postgres_dsn, f"SELECT version FROM {prefix}schema") == [(SCHEMA_VERSION,)]


async def test_many_stores_opening_at_once_migrate_exactly_once(
    postgres_dsn: str, prefix: str
) -> None:
    """Twelve stores initialize the same new table set at once: all open, one schema row."""
    stores = [PostgresSessionStore(postgres_dsn, table_prefix=prefix) for _ in range(12)]
    await asyncio.gather(*(store.initialize() for store in stores))
    try:
        created = await asyncio.gather(
            *(store.create_session(session_object(f"p{i}")) for i, store in enumerate(stores))
        )
        assert await stores[0].count_sessions() == len(created)
        assert sql(postgres_dsn, f"SELECT version FROM {prefix}schema") == [(SCHEMA_VERSION,)]
    finally:
        await asyncio.gather(*(store.shutdown() for store in stores))


async def test_tables_of_a_newer_schema_are_refused(postgres_dsn: str, prefix: str) -> None:
    """A table set migrated by a newer library is not opened (and not touched)."""
    async with PostgresSessionStore(postgres_dsn, table_prefix=prefix):
        pass
    sql(postgres_dsn, f"UPDATE {prefix}schema SET version = {SCHEMA_VERSION + 1}")
    store = PostgresSessionStore(postgres_dsn, table_prefix=prefix)
    with pytest.raises(StoreCorruptionError, match="newer than this library"):
        await store.initialize()
    assert not store.is_initialized


async def test_version_1_tables_are_migrated_with_an_incarnation_per_row(
    postgres_dsn: str, prefix: str
) -> None:
    """Tables written at schema version 1 get the incarnation column, one number per row."""
    async with PostgresSessionStore(postgres_dsn, table_prefix=prefix) as store:
        for n in range(3):
            await store.create_session(session_object("p"), session_id=f"s{n}")
    sql(postgres_dsn, f"ALTER TABLE {prefix}sessions DROP COLUMN incarnation")
    sql(postgres_dsn, f"DROP SEQUENCE {prefix}incarnations")
    sql(postgres_dsn, f"UPDATE {prefix}schema SET version = 1")
    async with PostgresSessionStore(postgres_dsn, table_prefix=prefix) as store:
        rows = sql(postgres_dsn, f"SELECT incarnation FROM {prefix}sessions")
        assert len({row[0] for row in rows}) == 3
        await store.append_interactions("s0", interaction("after"))
        await store.create_session(session_object("p"), session_id="s3")
    assert sql(postgres_dsn, f"SELECT version FROM {prefix}schema") == [(SCHEMA_VERSION,)]
    assert (
        len({row[0] for row in sql(postgres_dsn, f"SELECT incarnation FROM {prefix}sessions")}) == 4
    )


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"table_prefix": "Bad-Prefix"}, "table_prefix"),
        ({"durability": "none"}, "durability"),
        ({"max_size": 0}, "max_size"),
        ({"lock_timeout": -1}, "lock_timeout"),
        ({"statement_timeout": 0}, "statement_timeout"),
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, Any], option: str) -> None:
    """Each invalid option raises ``ConfigurationError`` naming it."""
    with pytest.raises(ConfigurationError) as info:
        PostgresSessionStore("", **kwargs)
    assert info.value.option == option


async def test_an_unreachable_server_is_a_store_io_error(tmp_path: Path) -> None:
    """No server at the address: ``initialize`` raises ``StoreIOError`` within the timeout."""
    store = PostgresSessionStore(f"host={tmp_path} dbname=none", connect_timeout=1)
    with pytest.raises(StoreIOError, match="no connection"):
        await store.initialize()


# -- values JSON operators cannot parse ---------------------------------------------------------


async def test_nul_characters_round_trip_and_filters_still_answer(
    postgres_dsn: str, prefix: str
) -> None:
    """A NUL in metadata, tags and events is stored exactly; filters over such rows work."""
    async with (
        PostgresSessionStore(postgres_dsn, table_prefix=prefix) as store,
        InMemorySessionStore() as memory,
    ):
        for target in (store, memory):
            obj = session_object("p")
            obj.interactions = [message("a\x00b")]
            await target.create_session(
                obj, session_id="nul", metadata={"k": "x\x00y", "n": 1}, tags=["t\x00"]
            )
            await target.create_session(session_object("p"), session_id="plain",
                                        metadata={"k": "v", "n": 1}, tags=["t"])  # fmt: skip
        got = await store.get_session("nul")
        assert got is not None
        assert got.metadata == {"k": "x\x00y", "n": 1}
        assert got.tags == ["t\x00"]
        assert got.interactions[0].request.event == {"content": "a\x00b"}
        for flt in (
            SessionFilter(metadata={"k": "x\x00y"}),
            SessionFilter(metadata={"n": 1}),
            SessionFilter(metadata={"k": "v"}),
            SessionFilter(tags=["t\x00"]),
            SessionFilter(tags_all=["t"]),
        ):
            want = [s.session_id for s in await memory.list_sessions(flt)]
            assert [s.session_id for s in await store.list_sessions(flt)] == want, flt
            assert await store.count_sessions(flt) == len(want)


# -- SQL pushdown matches the reference ----------------------------------------------------------


async def test_queries_pushed_to_sql_match_the_in_memory_store(
    postgres_dsn: str, prefix: str, tmp_path: Path
) -> None:
    """Filters, sorting, pagination, counts and search give the reference store's answers."""
    clock = FakeClock()
    config = SessionStoreConfig(clock=clock, idle_timeout=500)
    rng = random.Random(7)
    async with (
        PostgresSessionStore(postgres_dsn, config, table_prefix=prefix) as pg,
        InMemorySessionStore(config) as memory,
    ):
        await fill(pg, memory, clock, rng, tmp_path)
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
            SessionFilter(metadata={"flag": 1}),
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
            SessionQueryOptions(sort_by="session_id", sort_order="desc", limit=4, offset=1),
        ]
        for flt in filters:
            assert await pg.count_sessions(flt) == await memory.count_sessions(flt), flt
            for opt in options:
                want = [s.session_id for s in await memory.list_sessions(flt, opt)]
                got = [s.session_id for s in await pg.list_sessions(flt, opt)]
                assert got == want, (flt, opt)
        for needle in ("émile-3", "RED", "ünï", "message 2", "proc-0", "true", "2030-"):
            for interactions in (False, True):
                want = [s.session_id for s in await memory.search_sessions(
                    needle, search_interactions=interactions, include_expired=True)]  # fmt: skip
                got = [s.session_id for s in await pg.search_sessions(
                    needle, search_interactions=interactions, include_expired=True)]  # fmt: skip
                assert got == want, needle
        want_expired = [s.session_id for s in await memory.get_expired_sessions()]
        assert [s.session_id for s in await pg.get_expired_sessions()] == want_expired


async def fill(
    pg: SessionStore, memory: SessionStore, clock: FakeClock, rng: random.Random, folder: Path
) -> None:
    """Sixty varied sessions in ``pg``, copied exactly into ``memory``; some read since."""
    for i in range(60):
        obj = session_object(f"proc-{i % 3}", interactions=i % 4)
        metadata = {"k": i % 5, "s": f"Émile-{i % 7}", "flag": i % 2 == 0,
                    "nested": {"deep": [i % 3]}, "f": i / 4, "none": None}  # fmt: skip
        tags = rng.sample(["red", "green", "blue", "Ünïcode"], rng.randint(0, 3))
        expires = None if i % 6 == 0 else clock.now + timedelta(seconds=rng.randint(1, 900))
        session_id = None if i % 5 else f"Id-{rng.randint(0, 10**6)}-{i}"  # mixed-case ids
        await pg.create_session(
            obj, session_id=session_id, metadata=metadata, tags=tags, expires_at=expires
        )
        clock.advance(rng.randint(0, 20))
    export = folder / "all.jsonl"
    await pg.export_sessions(export, SessionFilter(include_expired=True))
    await memory.import_sessions(export)
    for session in (await pg.list_sessions(SessionFilter(include_expired=True)))[::9]:
        await pg.get_session(session.session_id)  # recorded reads: idle expiry
        await memory.get_session(session.session_id)


_sort_keys = st.sampled_from(
    ["created_at", "updated_at", "expires_at", "activity_id", "session_id"]
)
_filters = st.builds(
    SessionFilter,
    processor_id=st.none() | st.lists(st.sampled_from(["proc-0", "proc-1", "proc-2"]), max_size=2),
    metadata=st.none()
    | st.dictionaries(
        st.sampled_from(["k", "s", "flag", "none", "f", "missing"]),
        st.integers(0, 4) | st.booleans() | st.none() | st.sampled_from(["Émile-1", "x"]),
        max_size=2,
    ),
    tags=st.none() | st.lists(st.sampled_from(["red", "green", "blue", "Ünïcode"]), max_size=2),
    tags_all=st.none() | st.lists(st.sampled_from(["red", "green", "blue"]), max_size=2),
    has_interactions=st.none() | st.booleans(),
    interaction_count_min=st.none() | st.integers(0, 3),
    include_expired=st.booleans(),
)
_options = st.builds(
    SessionQueryOptions,
    limit=st.none() | st.integers(0, 10),
    offset=st.integers(0, 20),
    sort_by=_sort_keys,
    sort_order=st.sampled_from(["asc", "desc"]),
)


def test_random_queries_match_the_in_memory_store(postgres_dsn: str, tmp_path: Path) -> None:
    """Property: any filter and page over the same sessions gives the reference's answer."""
    clock = FakeClock()
    config = SessionStoreConfig(clock=clock)
    loop = asyncio.new_event_loop()
    pg = PostgresSessionStore(postgres_dsn, config, table_prefix=fresh_prefix())
    memory = InMemorySessionStore(config)
    try:
        loop.run_until_complete(pg.initialize())
        loop.run_until_complete(memory.initialize())
        loop.run_until_complete(fill(pg, memory, clock, random.Random(3), tmp_path))

        @settings(max_examples=150)
        @given(flt=_filters, opt=_options)
        def check(flt: SessionFilter, opt: SessionQueryOptions) -> None:
            want = loop.run_until_complete(memory.list_sessions(flt, opt))
            got = loop.run_until_complete(pg.list_sessions(flt, opt))
            assert [s.session_id for s in got] == [s.session_id for s in want]
            count = loop.run_until_complete(pg.count_sessions(flt))
            assert count == loop.run_until_complete(memory.count_sessions(flt))

        check()
    finally:
        loop.run_until_complete(pg.shutdown())
        loop.run_until_complete(memory.shutdown())
        loop.close()


# -- damage, maintenance and monitoring ---------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("metadata", "'[1, 2]'", "metadata"),
        ("tags", "'[1]'", "tags"),
        ("interaction_count", "-1", "interaction_count"),
        ("version", "0", "version"),
        ("session_id", "'../../etc/passwd'", "session"),
    ],
)
async def test_damaged_columns_are_reported(
    postgres_dsn: str, prefix: str, column: str, value: str, reason: str
) -> None:
    """Each kind of damaged column raises ``StoreCorruptionError``, whichever read finds it."""
    async with PostgresSessionStore(postgres_dsn, table_prefix=prefix) as store:
        await store.create_session(session_object(interactions=1))
        sql(postgres_dsn, f"ALTER TABLE {prefix}interactions DROP CONSTRAINT "
            f"{prefix}interactions_session_id_fkey")  # fmt: skip
        sql(postgres_dsn, f"UPDATE {prefix}sessions SET {column} = {value}")
        with pytest.raises(StoreCorruptionError, match=reason):
            await store.list_sessions(SessionFilter(include_expired=True))
        with pytest.raises(StoreCorruptionError):
            await store.get_stats()


async def test_an_interaction_count_that_disagrees_with_the_rows_is_reported(
    postgres_dsn: str, prefix: str
) -> None:
    """A session whose rows do not number ``interaction_count`` is never returned short."""
    async with PostgresSessionStore(postgres_dsn, table_prefix=prefix) as store:
        session = await store.create_session(session_object(interactions=3))
        sql(postgres_dsn, f"DELETE FROM {prefix}interactions WHERE seq = 1")
        with pytest.raises(StoreCorruptionError, match="3 but 2 interaction rows"):
            await store.get_session(session.session_id)
        # A listing leaves it out (counted for health) rather than failing for the others.
        other = await store.create_session(session_object())
        listed = await store.list_sessions()
        assert [s.session_id for s in listed] == [other.session_id]


async def test_stats_health_and_optimize_report_the_database(
    postgres_dsn: str, prefix: str
) -> None:
    """Backend figures come from the server; optimize vacuums and analyzes both tables."""
    clock = FakeClock()
    config = SessionStoreConfig(clock=clock, idle_timeout=60)
    async with PostgresSessionStore(postgres_dsn, config, table_prefix=prefix) as store:
        kept = await store.create_session(session_object(interactions=2))
        await store.create_session(session_object(), expires_at=clock.now + timedelta(seconds=5))
        clock.advance(30)
        await store.get_session(kept.session_id)  # a recorded read keeps it from idling out
        clock.advance(40)
        stats = await store.get_stats()
        assert stats.backend["schema_version"] == SCHEMA_VERSION
        assert stats.backend["database_bytes"] > 0
        assert stats.backend["table_prefix"] == prefix
        assert stats.total_sessions == 2
        health = await store.health_check()
        assert health.healthy, health.issues
        result = await store.optimize()
        assert result.performance_impact["expired_removed"] == 1
        assert any("VACUUM" in line for line in result.operations_performed)
        # The recorded read reached the database before the idle judgement was made there.
        assert await store.count_sessions() == 1
    with pytest.raises(ConfigurationError):
        PostgresSessionStore(5)  # type: ignore[arg-type]


async def test_a_batch_too_big_for_one_notification_is_caught_up_whole(
    postgres_dsn: str, prefix: str
) -> None:
    """300 sessions created in one transaction: another store hears every one."""
    async with (
        PostgresSessionStore(postgres_dsn, table_prefix=prefix) as writer,
        PostgresSessionStore(postgres_dsn, table_prefix=prefix) as reader,
    ):
        heard: set[str] = set()
        reader.on_session_created(lambda s: heard.add(s.session_id))
        await reader.following()
        async with writer.transaction():
            made = [await writer.create_session(session_object()) for _ in range(300)]
        await eventually(lambda: len(heard) == 300)
        assert heard == {s.session_id for s in made}


async def test_many_recorded_reads_are_written_in_the_background(
    postgres_dsn: str, prefix: str
) -> None:
    """Past 1,000 pending reads, ``last_accessed_at`` reaches the database by itself."""
    clock = FakeClock()
    async with PostgresSessionStore(
        postgres_dsn, SessionStoreConfig(clock=clock), table_prefix=prefix
    ) as store:
        async with store.transaction():
            made = [await store.create_session(session_object()) for _ in range(1000)]
        clock.advance(10)
        for session in made:
            await store.get_session(session.session_id)

        def written() -> bool:
            rows = sql(postgres_dsn, f"SELECT count(*) FROM {prefix}sessions "
                       "WHERE last_accessed_at > created_at")  # fmt: skip
            return bool(rows[0][0] == 1000)

        await eventually(written)


# -- what a store remembers of its writes (_fast.py) ----------------------------------------------


async def test_a_remembered_state_does_not_overwrite_a_recreated_session(
    postgres_dsn: str, prefix: str
) -> None:
    """A remembers x at v3; B deletes x and creates it again (same id) up to v3.

    A's next write is built from what A remembers, expecting version 3, which the new
    session also has: the check pins the incarnation too, so A re-reads and appends to B's.
    """
    async with (
        PostgresSessionStore(postgres_dsn, table_prefix=prefix) as a,
        PostgresSessionStore(postgres_dsn, table_prefix=prefix) as b,
    ):
        obj = session_object("p")
        obj.interactions = [interaction("a0"), interaction("a1")]
        await a.create_session(obj, session_id="x", metadata={"owner": "a"})
        await a.update_session("x", {"metadata": {"owner": "a", "n": 1}})  # v2, remembered
        await a.append_interactions("x", interaction("a2"))  # v3, remembered by A
        # host B: delete and re-create under the same id, then two writes: v3 again
        assert await b.delete_session("x")
        await b.create_session(session_object("p"), session_id="x", metadata={"owner": "b"})
        await b.append_interactions("x", interaction("b0"))
        await b.append_interactions("x", interaction("b1"))  # v3, interactions b0, b1
        # host A appends one interaction: must land after b0, b1
        await a.append_interactions("x", interaction("a3"))
        got = await b.get_session("x")
        assert got is not None
        contents = [i.request.event.get("content") for i in got.interactions]
        assert contents == ["b0", "b1", "a3"], contents


async def test_a_remembered_state_does_not_bring_back_a_deleted_sessions_metadata(
    postgres_dsn: str, prefix: str
) -> None:
    """The same with an update: A's merge must not be built on the deleted session's metadata."""
    async with (
        PostgresSessionStore(postgres_dsn, table_prefix=prefix) as a,
        PostgresSessionStore(postgres_dsn, table_prefix=prefix) as b,
    ):
        await a.create_session(session_object("p"), session_id="y", metadata={"old": 1})
        await a.update_session("y", {"metadata": {"old": 2}})  # v2, remembered by A
        await b.delete_session("y")
        await b.create_session(session_object("p"), session_id="y", metadata={"new": 1})
        await b.update_session("y", {"tags": ["b"]})  # v2 again
        await a.update_session("y", {"metadata": {"a": 1}, "merge_metadata": True})
        got = await b.get_session("y")
        assert got is not None
        assert got.metadata == {"new": 1, "a": 1}, got.metadata


# -- backups -----------------------------------------------------------------------------------


async def test_reads_and_events_during_a_backups_frozen_step_see_other_hosts_writes(
    postgres_dsn: str, prefix: str
) -> None:
    """Only the backup's own reads use its ``REPEATABLE READ`` snapshot.

    While ``_frozen`` (a backup's last step) holds the snapshot, a ``get_session`` from
    another task must see what another host committed since, and the event follower must
    load that host's new session for its ``session_created``.
    """
    async with (
        PostgresSessionStore(postgres_dsn, table_prefix=prefix) as a,
        PostgresSessionStore(postgres_dsn, table_prefix=prefix) as b,
    ):
        created: list[str] = []
        a.on_session_created(lambda session: created.append(session.session_id))
        await a.following()
        wanted: asyncio.Queue[str] = asyncio.Queue()

        async def caller() -> bool:  # a request handler: its own task, not the backup's
            return await a.get_session(await wanted.get()) is not None

        reader = asyncio.create_task(caller())
        async with a._frozen():  # what create_backup() holds for its final re-read
            session = await b.create_session(session_object("p"))
            assert await a.get_session(session.session_id) is None  # the backup's own view
            await wanted.put(session.session_id)
            seen_during = await reader
            await eventually(lambda: created == [session.session_id], within=10)
        assert seen_during


# -- filters ------------------------------------------------------------------------------------


async def test_metadata_filters_match_the_in_memory_store_whatever_the_other_keys(
    postgres_dsn: str, prefix: str
) -> None:
    """A "$" key in metadata makes the codec store it as ``{"$esc": {...}}``.

    The SQL filter must look inside that wrapper, or ``metadata -> 'plan'`` is NULL and the
    session is never returned.
    """
    metadata = {"$ref": "doc-1", "plan": "pro"}
    async with (
        PostgresSessionStore(postgres_dsn, table_prefix=prefix) as store,
        InMemorySessionStore() as memory,
    ):
        for target in (store, memory):
            await target.create_session(session_object("p"), session_id="s1", metadata=metadata)
        flt = SessionFilter(metadata={"plan": "pro"})
        want = [s.session_id for s in await memory.list_sessions(flt)]
        assert want == ["s1"]
        assert [s.session_id for s in await store.list_sessions(flt)] == want
        assert await store.count_sessions(flt) == 1


# -- time zones ---------------------------------------------------------------------------------


@pytest.mark.parametrize("pgbouncer", [False, True], ids=["pooled", "pgbouncer-mode"])
async def test_a_late_expiry_reads_back_whatever_the_servers_time_zone(
    postgres_dsn: str, prefix: str, pgbouncer: bool
) -> None:
    """Timestamps are read in UTC whatever the server's (or connection's) TimeZone.

    psycopg returns a timestamptz in the connection's zone; 9999-12-31 23:00 UTC is year
    10000 in Tokyo, which Python cannot hold, and every read that met the row failed.
    """
    dsn = make_conninfo(postgres_dsn, options="-c timezone=Asia/Tokyo")
    async with PostgresSessionStore(dsn, table_prefix=prefix, pgbouncer=pgbouncer) as store:
        await store.create_session(session_object("p"))
        late = await store.create_session(
            session_object("p"), expires_at=datetime(9999, 12, 31, 23, 0, tzinfo=UTC)
        )
        got = await store.get_session(late.session_id)
        assert got is not None
        assert len(await store.list_sessions()) == 2


# -- idle expiry across hosts -------------------------------------------------------------------


async def test_a_session_read_on_one_host_is_not_cleaned_up_as_idle_by_another(
    postgres_dsn: str, prefix: str
) -> None:
    """idle_timeout 60 s; host B reads the session every 30 s (store clock).

    Host A's cleanup judges idleness from the database's ``last_accessed_at``: B must write
    its recorded reads on time (a quarter of idle_timeout), not only once 1,000 are pending
    or at shutdown, or A deletes a session B is using.
    """
    clock = FakeClock()
    config = SessionStoreConfig(idle_timeout=60, clock=clock)
    async with (
        PostgresSessionStore(postgres_dsn, config, table_prefix=prefix) as a,
        PostgresSessionStore(postgres_dsn, config, table_prefix=prefix) as b,
    ):
        session = await a.create_session(session_object("p"), expires_at=None)
        for _ in range(4):  # two minutes of B reading it every 30 s
            clock.advance(30)
            assert await b.get_session(session.session_id) is not None
        removed = await a.cleanup_expired_sessions()
        assert removed == 0, "host A deleted a session host B read 0 s ago"
        assert await b.get_session(session.session_id) is not None


@pytest.mark.parametrize(
    "flt",
    [
        SessionFilter(metadata={"k": "\ud800"}),  # (orjson cannot encode it)
        SessionFilter(tags=["\ud800"]),
        SessionFilter(tags_all=["t", "\ud800"]),
        SessionFilter(processor_id="\ud800"),  # (nor UTF-8)
        SessionFilter(processor_id=["p\x00", "\udfff"]),
    ],
    ids=["metadata-surrogate", "tag-surrogate", "tags-all-surrogate", "id-surrogate", "id-nul"],
)
async def test_filters_with_odd_strings_answer_as_the_in_memory_store(
    postgres_dsn: str, prefix: str, flt: SessionFilter
) -> None:
    """A string no stored session can hold matches nothing, as in memory (no error)."""
    async with PostgresSessionStore(postgres_dsn, table_prefix=prefix) as store:
        await store.create_session(session_object("p"), metadata={"k": "v"}, tags=["t"])
        assert await store.count_sessions(flt) == 0
        assert await store.list_sessions(flt) == []


async def test_a_nul_character_in_the_ids_is_stored_as_on_the_other_stores(
    postgres_dsn: str, prefix: str
) -> None:
    r"""Ids with NUL (which ``text`` cannot hold) are kept, found and sorted as in memory.

    The in-memory and SQLite stores keep ``processor_id='p\x00q'``; so must this store, or
    such sessions cannot be migrated or restored into PostgreSQL.
    """
    ids = ["a", "a\x00", "a\x01", "a\x01\x01", "a\x01\x02", "a\x02", "a\x00b"]
    async with (
        PostgresSessionStore(postgres_dsn, table_prefix=prefix) as store,
        InMemorySessionStore() as memory,
    ):
        for target in (store, memory):
            for n, activity in enumerate(ids):
                obj = SessionObject("p\x00q", activity, "r\x01")
                await target.create_session(obj, session_id=f"s{n}")
        got = await store.get_session("s1")
        assert got is not None
        assert (got.processor_id, got.activity_id, got.request_id) == ("p\x00q", "a\x00", "r\x01")
        options = SessionQueryOptions(sort_by="activity_id")
        for flt in (
            SessionFilter(processor_id="p\x00q"),
            SessionFilter(activity_id=["a\x01", "a\x00b"]),
            SessionFilter(request_id="r\x01\x02"),
        ):
            want = [s.activity_id for s in await memory.list_sessions(flt, options)]
            assert [s.activity_id for s in await store.list_sessions(flt, options)] == want
