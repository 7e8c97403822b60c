"""PostgresSessionStore against failures and other stores: timeouts, lost connections, events.

Everything runs against the run's real server (``postgres_dsn``); connections are broken the
way a server restart or a network failure breaks them, with ``pg_terminate_backend``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import psycopg_pool
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from session_persistence import (
    SessionConflictError,
    SessionFilter,
    SessionStoreError,
    StoreClosedError,
    StoreIOError,
    StoreLockTimeoutError,
)
from session_persistence.stores.postgres import PostgresSessionStore
from session_persistence.testing import eventually, interaction, session_object

_prefixes = itertools.count()


@pytest.fixture
def prefix() -> str:
    return f"f{next(_prefixes)}_"


def sql(dsn: str, statement: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(statement, params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def terminate_others(dsn: str) -> int:
    """Close every other connection to the database, as a server restart does."""
    rows = sql(
        dsn,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    return int(rows[0][0])


# -- timeouts ----------------------------------------------------------------------------------


async def test_a_row_locked_past_lock_timeout_is_a_typed_error(
    postgres_dsn: str, prefix: str
) -> None:
    """A write waiting longer than ``lock_timeout`` raises ``StoreLockTimeoutError``; no change."""
    async with PostgresSessionStore(postgres_dsn, table_prefix=prefix, lock_timeout=0.2) as store:
        session = await store.create_session(session_object(), metadata={"n": 0})
        async with await psycopg.AsyncConnection.connect(postgres_dsn) as holder:
            await holder.execute(
                f"SELECT 1 FROM {prefix}sessions WHERE session_id = %s FOR UPDATE",  # type: ignore[arg-type]
                (session.session_id,),
            )
            with pytest.raises(StoreLockTimeoutError, match="lock_timeout") as info:
                await store.update_session(session.session_id, {"metadata": {"n": 1}})
            assert isinstance(info.value, TimeoutError)
            await holder.rollback()
        got = await store.get_session(session.session_id)
        assert got is not None
        assert got.metadata == {"n": 0}
        assert got.version == 1


async def test_a_statement_past_statement_timeout_is_a_typed_error(
    postgres_dsn: str, prefix: str
) -> None:
    """A statement cancelled by ``statement_timeout`` raises ``StoreIOError`` naming it."""
    async with PostgresSessionStore(
        postgres_dsn, table_prefix=prefix, lock_timeout=None, statement_timeout=0.2
    ) as store:
        session = await store.create_session(session_object())
        async with await psycopg.AsyncConnection.connect(postgres_dsn) as holder:
            await holder.execute(
                f"SELECT 1 FROM {prefix}sessions WHERE session_id = %s FOR UPDATE",  # type: ignore[arg-type]
                (session.session_id,),
            )
            with pytest.raises(StoreIOError, match="statement_timeout"):
                await store.append_interactions(session.session_id, interaction("late"))
            await holder.rollback()
        got = await store.get_session(session.session_id)
        assert got is not None
        assert got.interactions == []


# -- lost connections --------------------------------------------------------------------------


async def test_connections_dropped_while_idle_are_replaced_without_an_error(
    postgres_dsn: str, prefix: str
) -> None:
    """After the server drops every pooled connection, reads and writes just work."""
    async with PostgresSessionStore(postgres_dsn, table_prefix=prefix, min_size=2) as store:
        session = await store.create_session(session_object())
        assert terminate_others(postgres_dsn) >= 1
        await store.update_session(session.session_id, {"tags": ["after"]})
        assert terminate_others(postgres_dsn) >= 1
        got = await store.get_session(session.session_id)
        assert got is not None
        assert got.tags == ["after"]
        assert await store.count_sessions() == 1


class _CommitCutter(psycopg.AsyncConnection[Any]):
    """A connection that loses itself just before sending ``COMMIT`` (when armed)."""

    armed: bool = False
    dsn: str = ""

    async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        if query == "COMMIT" and _CommitCutter.armed:
            _CommitCutter.armed = False
            pid = self.info.backend_pid
            sql(_CommitCutter.dsn, "SELECT pg_terminate_backend(%s)", pid)
        return await super().execute(query, params, **kwargs)


async def test_a_connection_lost_during_commit_says_the_outcome_is_unknown(
    postgres_dsn: str, prefix: str
) -> None:
    """A transaction's ``COMMIT`` on a lost connection: ``StoreIOError`` saying so."""
    async with (
        _cutting_pool(postgres_dsn) as pool,
        PostgresSessionStore(pool=pool, table_prefix=prefix) as store,
    ):
        session = await store.create_session(session_object(), metadata={"n": 0})
        _CommitCutter.armed = True
        with pytest.raises(StoreIOError, match="outcome is unknown") as info:
            async with store.transaction():
                await store.update_session(
                    session.session_id, {"metadata": {"n": 1}}, expected_version=1
                )
        assert "expected_version" in str(info.value)
        assert not _CommitCutter.armed
        # The retry the message advises: here the server never saw COMMIT.
        got = await store.get_session(session.session_id)
        assert got is not None
        assert got.metadata == {"n": 0}
        await store.update_session(session.session_id, {"metadata": {"n": 1}}, expected_version=1)
        with pytest.raises(SessionConflictError):
            await store.update_session(
                session.session_id, {"metadata": {"n": 2}}, expected_version=1
            )


async def test_a_single_write_lost_in_flight_is_settled_from_the_stored_version(
    postgres_dsn: str, prefix: str
) -> None:
    """A plain update whose connection dies before COMMIT: found not applied, sent again."""
    async with (
        _cutting_pool(postgres_dsn) as pool,
        PostgresSessionStore(pool=pool, table_prefix=prefix) as store,
    ):
        session = await store.create_session(session_object(), metadata={"n": 0})
        await store.update_session(session.session_id, {"metadata": {"n": 1}})
        _CommitCutter.armed = True
        updated = await store.update_session(
            session.session_id, {"metadata": {"n": 2}}, expected_version=2
        )
        assert not _CommitCutter.armed  # the connection was cut
        assert updated.version == 3
        got = await store.get_session(session.session_id)
        assert got is not None
        assert (got.version, got.metadata) == (3, {"n": 2})  # applied exactly once


@contextlib.asynccontextmanager
async def _cutting_pool(dsn: str) -> AsyncIterator[psycopg_pool.AsyncConnectionPool[Any]]:
    _CommitCutter.dsn = dsn
    _CommitCutter.armed = False
    pool = psycopg_pool.AsyncConnectionPool(
        dsn, min_size=1, max_size=2, connection_class=_CommitCutter, open=False
    )
    await pool.open(wait=True)
    try:
        yield pool
    finally:
        await pool.close()


# -- several stores on one table set -----------------------------------------------------------


class _Proxy:
    """A Unix-socket relay in front of the server; ``cut()`` drops the client side only.

    That is a network failure as the client sees it: the server's backend is not told, so a
    statement it is running (here: waiting for a row lock) goes on and commits.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.dir = tempfile.mkdtemp(prefix="spx-", dir="/tmp")
        self.clients: list[asyncio.StreamWriter] = []
        self.servers: list[asyncio.StreamWriter] = []
        self.server: asyncio.AbstractServer | None = None
        self.refuse = False  # drop new connections at once (the network is down)

    async def start(self) -> None:
        self.server = await asyncio.start_unix_server(self._serve, f"{self.dir}/.s.PGSQL.5432")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_unix_connection(self.upstream)
        self.clients.append(writer)
        self.servers.append(up_writer)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()

        with contextlib.suppress(asyncio.CancelledError):  # (the loop's end: no noise)
            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def cut(self) -> None:
        for writer in self.clients:
            writer.transport.abort()
        self.clients.clear()

    async def close(self) -> None:
        self.cut()
        for writer in self.servers:
            writer.transport.abort()
        if self.server is not None:
            self.server.close()
        await asyncio.sleep(0.05)  # the relays see their sockets closed and end
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.asynccontextmanager
async def proxied(dsn: str) -> AsyncIterator[tuple[_Proxy, str]]:
    params = conninfo_to_dict(dsn)
    port = params.get("port") or "5432"
    proxy = _Proxy(f"{params['host']}/.s.PGSQL.{port}")
    await proxy.start()
    try:
        yield proxy, make_conninfo(dsn, host=proxy.dir, port="5432")
    finally:
        await proxy.close()


async def _waiting_on_a_lock(dsn: str, besides: int | None = None) -> int:
    """The pid of a backend waiting for a lock (not ``besides``), once there is one."""
    for _ in range(500):
        rows = sql(
            dsn,
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> %s",
            besides or 0,
        )
        if rows:
            return int(rows[0][0])
        await asyncio.sleep(0.01)
    raise AssertionError("no backend waiting on a lock")


async def test_an_append_lost_in_flight_is_not_applied_twice(
    postgres_dsn: str, prefix: str
) -> None:
    """The connection drops while the append waits for a row lock another host holds.

    The stored version is still the expected one (the append has not run yet), but the
    server's backend goes on waiting and would commit once the lock is released: the store
    must end that backend before it decides "not applied" and sends the append again.
    """
    async with (
        proxied(postgres_dsn) as (proxy, via_proxy),
        PostgresSessionStore(via_proxy, table_prefix=prefix) as store,
    ):
        session = await store.create_session(session_object("p"))
        sid = session.session_id
        await store.append_interactions(sid, interaction("one"))  # remembered: v2
        locker = await psycopg.AsyncConnection.connect(postgres_dsn)
        try:
            await locker.execute(
                f"SELECT 1 FROM {prefix}sessions WHERE session_id = %s FOR UPDATE", (sid,)
            )
            task = asyncio.create_task(store.append_interactions(sid, interaction("two")))
            first = await _waiting_on_a_lock(postgres_dsn)
            proxy.cut()  # the network drops; the server's backend goes on waiting
            await _waiting_on_a_lock(postgres_dsn, besides=first)  # sent again
            await locker.commit()  # the other host's transaction ends
            header = await task
        finally:
            await locker.close()
        got = await store.get_session(sid)
        assert got is not None
        contents = [i.request.event.get("content") for i in got.interactions]
        assert contents == ["one", "two"], (contents, header.version)


async def test_every_store_hears_the_others_writes_and_catches_up_after_a_drop(
    postgres_dsn: str, prefix: str
) -> None:
    """Created, updated and deleted events reach another store; missed ones after a drop too."""
    async with (
        PostgresSessionStore(postgres_dsn, table_prefix=prefix) as writer,
        PostgresSessionStore(postgres_dsn, table_prefix=prefix) as reader,
    ):
        events: list[tuple[str, str, int | None]] = []
        reader.on_session_created(lambda s: events.append(("created", s.session_id, s.version)))
        reader.on_session_updated(
            lambda new, old: events.append(("updated", new.session_id, new.version))
        )
        reader.on_session_deleted(lambda sid: events.append(("deleted", sid, None)))
        own: list[str] = []
        writer.on_session_created(lambda s: own.append(s.session_id))
        await reader.following()
        # (each write waits for its event: events carry the latest state, so a session
        # created and deleted before the reader reads it is reported as deleted only)
        first = await writer.create_session(session_object(), session_id="first")
        await eventually(lambda: len(events) == 1)
        await writer.append_interactions(first.session_id, interaction("one"))
        await eventually(lambda: len(events) == 2)
        await writer.delete_session(first.session_id)
        await eventually(lambda: len(events) == 3)
        assert events == [
            ("created", "first", 1),
            ("updated", "first", 2),
            ("deleted", "first", None),
        ]
        assert own == ["first"]  # a store hears its own writes once, at commit
        # The listening connection drops; writes made meanwhile are reported on reconnect.
        events.clear()
        terminate_others(postgres_dsn)
        await eventually(lambda: reader._follower.reconnecting, within=10)
        unhealthy = await reader.health_check()
        assert any("reconnecting" in issue for issue in unhealthy.issues), unhealthy.issues
        await writer.create_session(session_object(), session_id="while-down")
        await reader.following()
        await eventually(lambda: ("created", "while-down", 1) in events)
        await writer.update_session("while-down", {"tags": ["x"]})
        await eventually(lambda: ("updated", "while-down", 2) in events)
        health = await reader.health_check()
        assert not any("reconnecting" in issue for issue in health.issues), health.issues


async def test_a_session_replaced_while_the_listener_was_down_is_reported(
    postgres_dsn: str, prefix: str
) -> None:
    """While A's listening connection is down, B deletes "x" and creates a new "x" (v1 again).

    A's catch-up must tell the new session from the one it knew (same id and version, another
    created_at) and report the deletion, then the new session.
    """
    async with (
        proxied(postgres_dsn) as (proxy, via_proxy),
        PostgresSessionStore(postgres_dsn, table_prefix=prefix, listen_dsn=via_proxy) as a,
        PostgresSessionStore(postgres_dsn, table_prefix=prefix) as b,
    ):
        events: list[tuple[str, Any]] = []
        a.on_session_created(lambda s: events.append(("created", s.metadata)))
        a.on_session_updated(lambda new, old: events.append(("updated", new.metadata)))
        a.on_session_deleted(lambda sid: events.append(("deleted", sid)))
        await a.following()
        await b.create_session(session_object("p"), session_id="x", metadata={"gen": 1})
        for _ in range(200):
            if events:
                break
            await asyncio.sleep(0.01)
        assert events == [("created", {"gen": 1})]
        events.clear()
        proxy.refuse = True
        proxy.cut()  # A's listening connection drops and cannot reconnect for now
        for _ in range(500):
            if a._follower.reconnecting:
                break
            await asyncio.sleep(0.01)
        await b.delete_session("x")
        await b.create_session(session_object("p"), session_id="x", metadata={"gen": 2})
        proxy.refuse = False
        await a.following()
        await eventually(lambda: len(events) >= 2, within=10)
        assert events == [("deleted", "x"), ("created", {"gen": 2})]


async def test_get_or_create_across_stores_creates_exactly_once(
    postgres_dsn: str, prefix: str
) -> None:
    """Eight stores (as on eight hosts) race to get-or-create one id: one creates it."""
    stores = [PostgresSessionStore(postgres_dsn, table_prefix=prefix) for _ in range(8)]
    await asyncio.gather(*(store.initialize() for store in stores))
    try:
        for round_ in range(5):
            results = await asyncio.gather(
                *(store.get_or_create_session(f"chat-{round_}") for store in stores)
            )
            assert sum(created for _, created in results) == 1
            assert len({session.request_id for session, _ in results}) == 1
        assert await stores[0].count_sessions(SessionFilter()) == 5
    finally:
        await asyncio.gather(*(store.shutdown() for store in stores))


async def test_check_repair_sets_a_damaged_row_aside_in_the_quarantine_table(
    postgres_dsn: str, prefix: str
) -> None:
    """A row that does not decode is reported, then moved to ``{prefix}quarantine``."""
    async with PostgresSessionStore(postgres_dsn, table_prefix=prefix) as store:
        good = await store.create_session(session_object())
        bad = await store.create_session(session_object(interactions=1))
        sql(postgres_dsn, f"UPDATE {prefix}sessions SET metadata = '[1]' WHERE session_id = %s",
            bad.session_id)  # fmt: skip
        report = await store.check()
        assert [p.target for p in report.problems] == [bad.session_id]
        repaired = await store.check(repair=True)
        assert "quarantine" in (repaired.problems[0].action or "")
        assert [s.session_id for s in await store.list_sessions()] == [good.session_id]
        stats = await store.get_stats()
        assert stats.backend["quarantined"] == 1
    rows = sql(postgres_dsn, f"SELECT session_id, session->>'metadata' FROM {prefix}quarantine")
    assert rows == [(bad.session_id, "[1]")]


async def test_writes_in_flight_at_shutdown_fail_with_typed_errors(
    postgres_dsn: str, prefix: str
) -> None:
    """Writers still running when ``shutdown()`` closes the pool get the library's errors.

    ``StoreClosedError`` (or ``StoreIOError``), never ``AssertionError('used before _open or
    after _close')`` or ``psycopg_pool.PoolClosed``.
    """
    store = PostgresSessionStore(postgres_dsn, table_prefix=prefix, max_size=4)
    await store.initialize()
    ids = [(await store.create_session(session_object("p"))).session_id for _ in range(8)]

    async def writer(session_id: str) -> None:
        for i in range(3000):
            await store.append_interactions(session_id, interaction(f"m{i}"))

    tasks = [asyncio.create_task(writer(session_id)) for session_id in ids]
    await asyncio.sleep(0.3)
    await store.shutdown()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    untyped = sorted(
        {
            f"{type(r).__name__}: {r}"
            for r in results
            if isinstance(r, BaseException) and not isinstance(r, SessionStoreError)
        }
    )
    assert untyped == []
    assert all(isinstance(r, StoreClosedError | StoreIOError) for r in results)
