"""PostgreSQL ``check(repair=True)`` racing a writer (found reviewing issue 23; it failed then).

The run's throwaway server (tests/conftest.py); keys from tests/_sealing.py.
"""

from __future__ import annotations

import itertools
from typing import Any

import psycopg
from _sealing import KEYS

from session_persistence import SessionStoreConfig
from session_persistence.stores.postgres import PostgresSessionStore
from session_persistence.stores.postgres._repair import quarantine
from session_persistence.testing import session_object

_prefixes = itertools.count()


def sql(dsn: str, statement: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(statement, params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def _flip(text: str) -> str:
    at = len(text) - 8
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]


async def test_repair_does_not_delete_a_session_rewritten_after_its_inspection(
    postgres_dsn: str,
) -> None:
    """A repair must not delete a session another writer replaced after it was inspected.

    ``_repair.quarantine`` inspects the session (``_load``) outside the transaction that
    copies and deletes it, and the DELETE checks nothing: a session replaced meanwhile by
    another writer (deleted and created again under its id, acknowledged) is deleted too.

    SQLite re-inspects inside its write transaction (``_set_aside``); PostgreSQL should lock
    the row (``FOR UPDATE``) and re-inspect, or delete only the version it inspected.
    """
    prefix = f"review{next(_prefixes)}_"
    config = SessionStoreConfig(encryption=KEYS)
    async with PostgresSessionStore(postgres_dsn, config, table_prefix=prefix) as store:
        sid = (await store.create_session(session_object("p", interactions=2))).session_id
        ((item,),) = sql(
            postgres_dsn,
            f"SELECT data::text FROM {prefix}interactions WHERE session_id = %s AND seq = 1",
            sid,
        )
        sql(
            postgres_dsn,
            f"UPDATE {prefix}interactions SET data = %s::json WHERE session_id = %s AND seq = 1",
            _flip(item),
            sid,
        )
        (problem,) = (await store.check()).problems
        assert problem.target == sid
        inspect = store._load

        async def inspect_then_another_writer(session_id: str) -> Any:
            try:
                return await inspect(session_id)
            finally:
                async with PostgresSessionStore(postgres_dsn, config, table_prefix=prefix) as other:
                    await other.delete_session(sid)
                    await other.create_session(
                        session_object("p", interactions=1), session_id=sid, metadata={"new": 1}
                    )

        store._load = inspect_then_another_writer  # type: ignore[method-assign]
        try:
            await quarantine(store, problem)
        finally:
            store._load = inspect  # type: ignore[method-assign]
        session = await store.get_session(sid)
        assert session is not None, "an acknowledged session was deleted by the repair"
        assert session.metadata == {"new": 1}
