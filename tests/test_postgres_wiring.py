"""The PostgreSQL store from configuration: environment, manager and command-line tool."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from _postgres import create_database
from click.testing import CliRunner, Result
from psycopg.conninfo import conninfo_to_dict

from session_persistence import (
    SessionPersistenceConfig,
    SessionPersistenceManager,
    SessionQueryOptions,
    SQLiteSessionStore,
)
from session_persistence.cli import cli
from session_persistence.cli._support import StoreSpec
from session_persistence.stores.postgres import PostgresSessionStore
from session_persistence.testing import session_object


@pytest.fixture
def dsn(postgres_server: str, request: pytest.FixtureRequest) -> str:
    """An empty database of its own for each test (the tools use the default prefix sp_)."""
    return create_database(postgres_server, f"sp_wiring_{request.node.name[5:40].lower()}")


def uri(dsn: str) -> str:
    """The same database as a ``postgresql://`` URI (a Unix socket as the host parameter)."""
    parts = conninfo_to_dict(dsn)
    return f"postgresql://{parts['user']}@/{parts['dbname']}?host={parts['host']}"


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_the_environment_names_a_postgres_store(dsn: str) -> None:
    """SESSION_STORE_TYPE=postgres with SESSION_STORE_DSN, or SESSION_STORE_PATH."""
    by_dsn = SessionPersistenceConfig.from_env(
        {"SESSION_STORE_TYPE": "postgres", "SESSION_STORE_DSN": dsn}
    )
    assert (by_dsn.store_type, by_dsn.postgres_dsn) == ("postgres", dsn)
    by_path = SessionPersistenceConfig.from_env(
        {"SESSION_STORE_TYPE": "postgres", "SESSION_STORE_PATH": dsn}
    )
    assert by_path.postgres_dsn == dsn
    secret = SessionPersistenceConfig(
        store_type="postgres", postgres_dsn="postgresql://me:hunter2@db/x"
    )
    assert "hunter2" not in secret.store_location()
    spec = StoreSpec.parse(None, {"SESSION_STORE_TYPE": "postgres", "SESSION_STORE_DSN": dsn})
    assert (spec.kind, spec.dsn) == ("postgres", dsn)
    assert StoreSpec.parse("postgres://u:pw@h/db", {}).dsn == "postgres://u:pw@h/db"
    assert str(StoreSpec.parse("postgres://u:pw@h/db", {})) == "postgres://u:***@h/db"


async def test_a_manager_opens_and_migrates_into_a_postgres_store(dsn: str, tmp_path: Path) -> None:
    """``store_type="postgres"`` works; ``update_config`` moves a SQLite store's sessions in."""
    config = SessionPersistenceConfig(store_type="sqlite", sqlite_path=tmp_path / "s.db")
    async with SessionPersistenceManager(config) as manager:
        session = await manager.create_managed_session(session_object("m", interactions=2))
        await session.persist()
        await manager.update_config(store_type="postgres", postgres_dsn=dsn)
        assert isinstance(manager.store, PostgresSessionStore)
        moved = await manager.store.get_session(session.session_id or "")
        assert moved is not None
        assert len(moved.interactions) == 2
    async with SessionPersistenceManager(
        SessionPersistenceConfig(store_type="postgres", postgres_dsn=dsn)
    ) as manager:
        assert await manager.store.count_sessions() == 1


def test_the_cli_lists_and_migrates_into_postgres(dsn: str, tmp_path: Path) -> None:
    """``--store postgres://...`` works, and ``migrate --to postgres://...`` is lossless."""
    source = tmp_path / "source.db"

    async def make() -> list[Any]:
        async with SQLiteSessionStore(source) as store:
            made = [
                await store.create_session(session_object("p", interactions=i), tags=[f"t{i}"])
                for i in range(3)
            ]
            return sorted(made, key=lambda s: s.session_id)

    made = asyncio.run(make())
    target = uri(dsn)
    missing = run("ls", "--store", target)
    assert missing.exit_code != 0
    assert "no store" in missing.stderr
    result = run("migrate", "--to", target, "--json", "--store", f"sqlite:{source}")
    assert result.exit_code == 0, result.stderr
    assert orjson.loads(result.stdout)["match"] is True
    listed = run("ls", "--json", "--store", target)
    assert listed.exit_code == 0, listed.stderr
    assert sorted(row["session_id"] for row in orjson.loads(listed.stdout)["sessions"]) == [
        s.session_id for s in made
    ]

    async def read() -> list[Any]:
        async with PostgresSessionStore(dsn) as store:
            found = await store.list_sessions(options=SessionQueryOptions(sort_by="session_id"))
            return list(found)  # (listing is not an access: last_accessed_at as stored)

    assert asyncio.run(read()) == made  # ids, versions, timestamps and contents kept
    stats = run("stats", "--json", "--store", f"postgres:{dsn}")
    assert stats.exit_code == 0, stats.stderr


CREATE = """
import asyncio, sys
from session_persistence.stores.postgres import PostgresSessionStore
from session_persistence import SessionObject

async def main():
    async with PostgresSessionStore(sys.argv[1], watch=False) as store:
        session = await store.create_session(SessionObject("writer", "a", "r"))
        print(session.session_id, flush=True)

asyncio.run(main())
"""


def test_watch_shows_another_process_writing_to_postgres(dsn: str) -> None:
    """``watch`` on a PostgreSQL store prints a session another process creates."""
    asyncio.run(_create_tables(dsn))
    watcher = subprocess.Popen(
        [sys.executable, "-m", "session_persistence", "watch", "--json", "--count", "1",
         "--timeout", "60", "--store", uri(dsn)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert watcher.stderr is not None
        assert watcher.stdout is not None
        ready = watcher.stderr.readline()
        assert ready.startswith("watching "), ready
        writer = subprocess.run(
            [sys.executable, "-c", CREATE, dsn], capture_output=True, text=True, check=True
        )
        event = orjson.loads(watcher.stdout.readline())
        assert (event["event"], event["session_id"]) == ("created", writer.stdout.strip())
        assert watcher.wait(timeout=30) == 0
    finally:
        watcher.kill()
        watcher.communicate()


async def _create_tables(dsn: str) -> None:
    async with PostgresSessionStore(dsn):
        pass


@pytest.mark.parametrize(("required", "outcome"), [("0", "1 skipped"), ("1", "1 error")])
def test_without_postgresql_the_tests_skip_loudly_unless_required(
    tmp_path: Path, required: str, outcome: str
) -> None:
    """No binaries: a skip saying so; with SP_REQUIRE_POSTGRES=1 (as .ci/run sets), an error."""
    env = {
        **os.environ,
        "SP_POSTGRES_BIN": str(tmp_path),  # no initdb there
        "SP_REQUIRE_POSTGRES": required,
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    env.pop("SP_POSTGRES_DSN", None)
    test = f"{Path(__file__).with_name('test_postgres_store.py')}::test_tables_read_well_in_psql"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "--no-cov", "-p", "no:cacheprovider", test],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parent.parent,
        check=False,
    )
    assert outcome in done.stdout, done.stdout
    if required == "0":
        assert "NO POSTGRESQL" in done.stdout
        assert done.returncode == 0
    else:
        assert "SP_REQUIRE_POSTGRES=1" in done.stdout
        assert done.returncode != 0
