"""Defects found reviewing sealing at rest (issue 23): each test fails on the code reviewed.

Real stores in temp dirs; keys and helpers from tests/_sealing.py.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from _sealing import sealed
from ulid import ULID

from session_persistence import (
    Interaction,
    InteractionMessage,
    SessionObject,
    SQLiteSessionStore,
)
from session_persistence.errors import UnsealedRecordError


def message(content: str) -> Interaction:
    return Interaction(request=InteractionMessage(event={"content": content}, sender="user"))


def session_object(*contents: str) -> SessionObject:
    return SessionObject(
        processor_id="p",
        activity_id=ULID(),
        request_id=ULID(),
        interactions=[message(content) for content in contents],
    )


def run_sql(path: Path, sql: str, *params: object) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute(sql, params)
    finally:
        db.close()


async def plain_row(path: Path, content: str) -> str:
    """The stored JSON of one interaction, as a store without sealing writes it."""
    async with SQLiteSessionStore(path) as store:
        session = await store.create_session(session_object(content))
    db = sqlite3.connect(path)
    try:
        (text,) = db.execute(
            "SELECT data FROM interactions WHERE session_id = ?", (session.session_id,)
        ).fetchone()
    finally:
        db.close()
    assert isinstance(text, str) and "planted" in text
    return text


# -- SQLite: a history slice takes an interaction row in clear --------------------------------


async def test_sqlite_history_slice_refuses_a_row_in_clear(tmp_path: Path) -> None:
    """A sealed store (no accept_unsealed) must not return a planted plain interaction row.

    ``get_session`` refuses it (UnsealedRecordError); ``get_interactions`` reads a window
    through ``_history.decode_slice``, which passes a value not starting with ``$`` through
    without ``refuse_clear``.
    """
    path = tmp_path / "sessions.db"
    async with SQLiteSessionStore(path, sealed()) as store:
        session = await store.create_session(session_object("a", "b", "c"))
        sid = session.session_id
    planted = await plain_row(tmp_path / "plain.db", "planted")
    run_sql(path, "UPDATE interactions SET data = ? WHERE session_id = ? AND seq = 1", planted, sid)
    async with SQLiteSessionStore(path, sealed()) as store:
        with pytest.raises(UnsealedRecordError):
            await store.get_session(sid)
        with pytest.raises(UnsealedRecordError):
            await store.get_interactions(sid, offset=1, limit=1)
