"""PostgresSessionStore with several processes standing in for hosts (real subprocesses).

Each child (``tests/pg_child.py``) opens its own store: its own pool, its own listening
connection, as a process on another host would. The server is the run's throwaway one.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from _postgres import PostgresServer

from session_persistence import SessionFilter, SessionStoreConfig
from session_persistence.stores.postgres import PostgresSessionStore
from session_persistence.testing import session_object

CHILD = str(Path(__file__).with_name("pg_child.py"))
_prefixes = itertools.count()


@pytest.fixture
def prefix() -> str:
    return f"h{next(_prefixes)}_"


def sql(dsn: str, statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(statement)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def spawn(*args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, CHILD, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


async def read_line(child: subprocess.Popen[bytes]) -> dict[str, Any]:
    assert child.stdout is not None
    line = await asyncio.to_thread(child.stdout.readline)
    if not line:
        err = child.stderr.read().decode() if child.stderr else ""
        raise AssertionError(f"child ended early: {err}")
    parsed: dict[str, Any] = orjson.loads(line)
    return parsed


def close(child: subprocess.Popen[bytes]) -> None:
    for stream in (child.stdin, child.stdout, child.stderr):
        if stream is not None:
            stream.close()


async def test_four_hosts_keep_counters_exact_totals_whole_and_hear_each_other(
    postgres_dsn: str, prefix: str
) -> None:
    """4 processes x 10 coroutines: exact counters, a preserved total, every host heard."""
    peers, rounds = 4, 12
    async with PostgresSessionStore(postgres_dsn, table_prefix=prefix) as store:
        for i in range(10):
            await store.create_session(session_object("counter"), session_id=f"counter-{i}",
                                       metadata={"n": 0}, expires_at=None)  # fmt: skip
            await store.create_session(session_object("bank"), session_id=f"account-{i}",
                                       metadata={"balance": 100}, expires_at=None)  # fmt: skip
    children = [
        spawn("hosts", postgres_dsn, prefix, f"h{i}", str(peers), str(rounds)) for i in range(peers)
    ]
    try:
        for child in children:
            assert (await read_line(child))["kind"] == "ready"
        for child in children:  # all listening: go
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            child.stdin.flush()
        reports = [await read_line(child) for child in children]
        for child in children:
            assert await asyncio.to_thread(child.wait, 120) == 0
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
            close(child)
    async with PostgresSessionStore(postgres_dsn, table_prefix=prefix) as store:
        counters = await store.list_sessions(SessionFilter(processor_id="counter"))
        accounts = await store.list_sessions(SessionFilter(processor_id="bank"))
    assert sum(s.metadata["n"] for s in counters) == sum(r["increments"] for r in reports)
    assert sum(r["increments"] for r in reports) == peers * 5 * rounds
    for session in counters:  # each increment is one version
        assert session.version == session.metadata["n"] + 1
    assert sum(s.metadata["balance"] for s in accounts) == 1000
    assert sum(r["transfers"] for r in reports) == peers * 5 * rounds
    assert sum(s.version - 1 for s in accounts) == 2 * peers * 5 * rounds
    for r in reports:
        others = sorted(f"done-h{i}" for i in range(peers) if f"h{i}" != r["name"])
        assert r["heard_done"] == others, r
        assert r["heard_updates"] > 0, r


async def test_a_server_restart_under_load_fails_writes_typed_then_recovers(
    postgres_cluster: PostgresServer | None, postgres_dsn: str, prefix: str
) -> None:
    """A server restart mid-load: typed errors, then writes resume; every ack is stored.

    The server stays down longer than the writers' ``connect_timeout``, so writes in flight
    and writes started meanwhile fail (with typed errors); afterwards the pools reconnect by
    themselves. A write whose connection is cut but which the server never committed is
    settled from the stored version and sent again, so it may succeed without an error.
    """
    if postgres_cluster is None:
        pytest.skip("SP_POSTGRES_DSN names an external server: this test restarts its own")
    names = [f"load-{i}" for i in range(3)]
    async with PostgresSessionStore(postgres_dsn, table_prefix=prefix) as store:
        for name in names:
            await store.create_session(session_object(name), session_id=name, expires_at=None)
    children = [spawn("load", postgres_dsn, prefix, name) for name in names]
    lines: dict[str, list[dict[str, Any]]] = {name: [] for name in names}

    async def collect(name: str, child: subprocess.Popen[bytes]) -> None:
        while True:
            assert child.stdout is not None
            line = await asyncio.to_thread(child.stdout.readline)
            if not line:
                return
            lines[name].append(orjson.loads(line))

    readers = [asyncio.create_task(collect(n, c)) for n, c in zip(names, children, strict=True)]
    try:

        def acks(name: str) -> int:
            return sum(1 for x in lines[name] if x["kind"] == "ack")

        await wait_for(lambda: all(acks(n) >= 20 for n in names))
        # Down for 2 s: longer than the writers' connect_timeout (1 s), so writes fail.
        await asyncio.to_thread(postgres_cluster.restart, "fast", down_for=2.0)
        after = {n: acks(n) for n in names}
        await wait_for(lambda: all(acks(n) >= after[n] + 20 for n in names))
        for child in children:
            assert child.stdin is not None
            child.stdin.close()
        for child in children:
            assert await asyncio.to_thread(child.wait, 60) == 0
        await asyncio.gather(*readers)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
            close(child)
    errors = [x for name in names for x in lines[name] if x["kind"] == "error"]
    assert errors, "the restart interrupted no write: the load was too light to test it"
    assert {e["type"] for e in errors} <= {"StoreIOError", "StoreLockTimeoutError"}, errors
    async with PostgresSessionStore(postgres_dsn, table_prefix=prefix) as store:
        for name in names:
            session = await store.get_session(name)
            assert session is not None
            stored = [i.request.event["content"] for i in session.interactions]
            acked = [f"{name}-{x['i']}" for x in lines[name] if x["kind"] == "ack"]
            assert set(acked) <= set(stored)
            refused = [
                f"{name}-{x['i']}"
                for x in lines[name]
                if x["kind"] == "error" and "nothing was applied" in x["message"]
            ]
            assert not set(refused) & set(stored)
            assert len(stored) == len(set(stored))  # none applied twice


async def test_a_client_killed_mid_transaction_leaves_nothing_half_applied(
    postgres_dsn: str, prefix: str
) -> None:
    """SIGKILL during 20-session transactions: every session at one round; total kept.

    Kills go on (up to 20) until the server has rolled back at least two transactions that
    a killed client left open (``pg_stat_database.xact_rollback``): kills that land between
    transactions prove nothing.
    """
    accounts = [f"acct-{i}" for i in range(20)]
    async with PostgresSessionStore(postgres_dsn, table_prefix=prefix) as store:
        for sid in accounts:
            await store.create_session(
                session_object("bank"),
                session_id=sid,
                metadata={"balance": 50, "round": 0},
                expires_at=None,
            )
    rng = random.Random()
    first = rollbacks(postgres_dsn)
    kills = 0
    while kills < 20 and not (kills >= 3 and rollbacks(postgres_dsn) - first >= 2):
        kills += 1
        child = spawn("rounds", postgres_dsn, prefix)
        try:
            assert (await read_line(child))["kind"] == "ready"
            last = 0
            for _ in range(rng.randint(3, 30)):
                last = (await read_line(child))["round"]
            await asyncio.sleep(rng.uniform(0, 0.01))
            child.send_signal(signal.SIGKILL)
            await asyncio.to_thread(child.wait)
        finally:
            close(child)
        async with PostgresSessionStore(postgres_dsn, table_prefix=prefix) as store:
            sessions = await store.list_sessions(SessionFilter(processor_id="bank"))
        rounds = {s.metadata["round"] for s in sessions}
        assert len(rounds) == 1, rounds  # all or nothing of every transaction
        assert rounds.pop() >= last
        assert sum(s.metadata["balance"] for s in sessions) == 50 * 20
    await wait_for(lambda: rollbacks(postgres_dsn) - first >= 1, within=10)


def rollbacks(dsn: str) -> int:
    """Transactions the server rolled back in this database (a killed client's included)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


async def wait_for(condition: Any, within: float = 120) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_max_sessions_holds_across_hosts(postgres_dsn: str, prefix: str) -> None:
    """Eight stores (each its own pool, as hosts) create at once with ``max_sessions=3``.

    Under READ COMMITTED each batch's ``count(*)`` misses the others' uncommitted rows:
    without a lock around count and insert more than three are stored.
    """
    config = SessionStoreConfig(max_sessions=3)
    stores = [PostgresSessionStore(postgres_dsn, config, table_prefix=prefix) for _ in range(8)]
    await asyncio.gather(*(store.initialize() for store in stores))
    try:
        await asyncio.gather(
            *(store.create_session(session_object("p")) for store in stores),
            return_exceptions=True,
        )
        assert len(sql(postgres_dsn, f"SELECT 1 FROM {prefix}sessions")) <= 3
    finally:
        await asyncio.gather(*(store.shutdown() for store in stores))
