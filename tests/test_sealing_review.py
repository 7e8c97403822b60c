"""Defects found reviewing sealing at rest (issue 23): each test fails on the code reviewed.

Real stores in temp dirs; keys and helpers from tests/_sealing.py.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest
from _sealing import KEYS, sealed
from ulid import ULID

from session_persistence import (
    FileSystemSessionStore,
    Interaction,
    InteractionMessage,
    SessionObject,
    SQLiteSessionStore,
    StoreCorruptionError,
)
from session_persistence._envelope import Envelope
from session_persistence.errors import UnsealedRecordError
from session_persistence.stores.filesystem._format import decode_document, encode_document
from session_persistence.testing import session_object as fs_session_object


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
    assert isinstance(text, str)
    assert "planted" in text
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


# -- filesystem: the index snapshot ---------------------------------------------------------


def _index_parts(root: Path) -> tuple[dict[str, object], dict[str, object], list[bytes]]:
    """index.json's head, its first body line (in clear) and its chunk lines (sealed)."""
    head, body = decode_document((root / "index.json").read_bytes(), "index")
    first, *chunks = body.split(b"\n")
    return head, orjson.loads(first), chunks


def _write_index(
    root: Path, generation: int, first: dict[str, object], chunks: list[bytes]
) -> None:
    body = b"\n".join([orjson.dumps(first), *chunks])
    (root / "index.json").write_bytes(encode_document("index", body, generation=generation))


async def _one_session_full_index(root: Path) -> str:
    """A sealed store holding one session, its index written whole (rotate_key does that)."""
    async with FileSystemSessionStore(root, sealed(), watch=False) as store:
        session = await store.create_session(
            fs_session_object(interactions=1), metadata={"who": "alice"}
        )
        await store.rotate_key()
    return session.session_id


async def test_filesystem_index_refuses_columns_in_clear(tmp_path: Path) -> None:
    """A sealed store must refuse an index whose rows are in clear, as it refuses clear lines.

    ``IndexFiles._read_base`` takes ``"columns"`` from the first body line (an earlier
    layout, never sealed) without ``refuse_clear``: anyone who can write ``index.json``
    (no key needed, the checksum is a CRC) replaces every header, metadata included.
    """
    root = tmp_path / "store"
    sid = await _one_session_full_index(root)
    head, first, chunks = _index_parts(root)
    assert len(chunks) == 1
    columns = orjson.loads(Envelope(KEYS, None).unwrap(chunks[0], b"index"))
    columns["metadata"] = ['{"who":"mallory"}']
    generation = head["generation"]
    assert isinstance(generation, int)
    _write_index(root, generation, {**first, "chunks": 0, "columns": columns}, [])
    async with FileSystemSessionStore(root, sealed(), watch=False) as store:
        header = await store.get_session_header(sid)
        assert header is not None
        assert header.metadata == {"who": "alice"}


async def test_filesystem_old_index_chunk_replayed_does_not_drop_a_session(
    tmp_path: Path,
) -> None:
    """A sealed index chunk opens under any generation (its context is just ``b"index"``).

    Put back the chunk of an older index under the current generation (the generation is
    in clear): the store believes the session is at version 1 while its files hold version
    2, takes that for damage, quarantines the session and journals its removal. A replayed
    record should fail authentication instead (bind the chunk to its generation and number).
    """
    root = tmp_path / "store"
    sid = await _one_session_full_index(root)
    _, _, old_chunks = _index_parts(root)
    async with FileSystemSessionStore(root, sealed(), watch=False) as store:
        await store.update_session(sid, {"metadata": {"who": "bob"}})
        await store.rotate_key()  # the index written whole again, at a later generation
    head, first, chunks = _index_parts(root)
    assert chunks != old_chunks
    generation = head["generation"]
    assert isinstance(generation, int)
    _write_index(root, generation, first, old_chunks)
    async with FileSystemSessionStore(root, sealed(), watch=False) as store:
        try:
            session = await store.get_session(sid)
        except StoreCorruptionError:
            session = None
        assert not list((root / "quarantine").glob(f"{sid}*")), "a valid session was set aside"
        assert session is not None
        assert session.metadata == {"who": "bob"}


# -- filesystem: journal lines ---------------------------------------------------------------


def _journal_lines(root: Path) -> list[tuple[Path, bytes, bytes]]:
    """Every framed journal line: its segment, the line (newline included), its plain record."""
    opener = Envelope(KEYS, None)
    found = []
    for segment in sorted((root / "journal").glob("*.wal")):
        for line in segment.read_bytes().splitlines(keepends=True):
            payload = line.rstrip(b"\n").split(b" ", 1)[1]
            found.append((segment, line, opener.unwrap(payload, b"journal")))
    return found


async def test_filesystem_old_journal_line_replayed_does_not_roll_a_session_back(
    tmp_path: Path,
) -> None:
    """A sealed journal line opens wherever it is put (its context is just ``b"journal"``).

    Copy the line that created a session (captured earlier, no key needed) to the end of
    the current segment: replay applies it as a new write, and the session reads back as
    it was created, its later update gone. A replayed record should fail authentication
    (bind a line to its generation and sequence number), be reported and skipped.
    """
    root = tmp_path / "store"
    async with FileSystemSessionStore(root, sealed(), watch=False) as store:
        session = await store.create_session(
            fs_session_object(interactions=1), metadata={"who": "alice"}, expires_at=None
        )
        sid = session.session_id
        (created,) = [line for _, line, plain in _journal_lines(root) if b'"doc"' in plain]
        await store.update_session(sid, {"metadata": {"who": "bob"}})
    segment = _journal_lines(root)[-1][0]
    with segment.open("ab") as file:
        file.write(created)
    async with FileSystemSessionStore(root, sealed(), watch=False) as store:
        try:
            read = await store.get_session(sid)
        except StoreCorruptionError:
            read = None
        assert read is not None
        assert read.metadata == {"who": "bob"}
        assert read.version == 2
