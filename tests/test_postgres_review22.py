"""Review of issue 22 (PostgresSessionStore): reproducers of defects found.

Each test states what the contract promises; every one of them fails on the merged code.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
import itertools
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from session_persistence import (
    InMemorySessionStore,
    SessionFilter,
    SessionStoreConfig,
    SessionStoreError,
)
from session_persistence.stores.postgres import PostgresSessionStore
from session_persistence.testing import FakeClock, interaction, session_object

_prefixes = itertools.count()


@pytest.fixture
def prefix() -> str:
    return f"r{next(_prefixes)}_"


def sql(dsn: str, statement: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(statement, params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


# -- 1. the remembered state (_fast.py) passes the version check of a re-created session ------


# -- 2. an "outcome unknown" single write is settled as "not applied" while it still runs ------


# -- 3. query pushdown: a session whose metadata the codec wraps is hidden from filters -------


# -- 4. a backup's snapshot serves every read of the process: stale reads, lost events --------


# -- 5. idle expiry across hosts: one host's reads are invisible to the other's cleanup ------


# -- 6. shutdown with writes in flight: untyped errors ----------------------------------------


# -- 7. a NUL character in an id: stored by the other stores, refused as a storage failure -----


# -- 8. filters the in-memory store answers (0 matches) fail on PostgreSQL, mostly untyped ----


# -- 10. max_sessions is checked with a count that does not see other hosts' pending creates --


# -- 11. a server TimeZone east of UTC: a late expires_at makes every query fail --------------


