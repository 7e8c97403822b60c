"""Sealed records copied, replayed or planted where they do not belong (issue 23's review).

Each test was written against a defect a review found (and failed on it): a sealed store must
refuse a record in clear wherever it reads one, and a sealed record put back elsewhere, or
again, must not open as if it belonged there. Real stores in temp dirs; keys from
tests/_sealing.py.
"""

from __future__ import annotations

import shutil
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
from session_persistence.stores.filesystem._format import (
    decode_document,
    encode_document,
    index_chunk_context,
    journal_context,
)
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
    """A sealed store refuses an index whose rows are in clear, and rebuilds it.

    The first body line may hold ``"columns"`` in an earlier layout, never sealed: taken
    as it was, anyone who can write ``index.json`` (no key needed, the checksum is a CRC)
    would replace every header, metadata included.
    """
    root = tmp_path / "store"
    sid = await _one_session_full_index(root)
    head, first, chunks = _index_parts(root)
    assert len(chunks) == 1
    generation = head["generation"]
    assert isinstance(generation, int)
    context = index_chunk_context(generation, 0, 1)
    columns = orjson.loads(Envelope(KEYS, None).unwrap(chunks[0], context))
    columns["metadata"] = ['{"who":"mallory"}']
    _write_index(root, generation, {**first, "chunks": 0, "columns": columns}, [])
    async with FileSystemSessionStore(root, sealed(), watch=False) as store:
        header = await store.get_session_header(sid)
        assert header is not None
        assert header.metadata == {"who": "alice"}


async def test_filesystem_old_index_chunk_replayed_does_not_drop_a_session(
    tmp_path: Path,
) -> None:
    """An older index's chunk put back under the current generation fails authentication.

    (The generation is in clear.) Bound only to ``b"index"``, it opened: the store believed
    the session at version 1 while its files held version 2, took that for damage, and
    quarantined an intact session. Bound to its generation, number and count, it fails, and
    the index is rebuilt from the session files.
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
        context = journal_context(int(segment.stem))
        for line in segment.read_bytes().splitlines(keepends=True):
            payload = line.rstrip(b"\n").split(b" ", 1)[1]
            found.append((segment, line, opener.unwrap(payload, context)))
    return found


async def test_filesystem_old_journal_line_replayed_does_not_roll_a_session_back(
    tmp_path: Path,
) -> None:
    """A sealed journal line copied to the end of the journal is not applied again.

    Copy the line that created a session (no key needed) to the end of the current
    segment: bound only to ``b"journal"``, replay applied it as a new write and the session
    read back as created, its later update gone. Now a line copied into another generation
    fails authentication, and one that does not follow the line before it (its sequence
    number) is damage: reported and skipped.
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


async def test_filesystem_journal_line_replayed_in_its_own_generation_is_damage(
    tmp_path: Path,
) -> None:
    """A line copied to the end of its own segment opens (same generation) but is refused.

    Its sequence number does not follow the line before it: another store on the directory,
    replaying the segment, reports it as damage and skips it.
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
        assert created in segment.read_bytes()
        with segment.open("ab") as file:
            file.write(created)
        async with FileSystemSessionStore(root, sealed(), watch=False) as other:
            read = await other.get_session(sid)
            assert read is not None
            assert read.metadata == {"who": "bob"}
            health = await other.health_check()
            assert not health.healthy
            assert any("damaged" in issue for issue in health.issues), health


async def test_filesystem_check_reports_a_sealed_journal_line_replayed_before_others(
    tmp_path: Path,
) -> None:
    """``check()`` reports a replayed sealed line that the journal's replay found damaged.

    A copy of an earlier line put between two intact lines of the same segment opens (same
    generation), but replay refuses it (its sequence number does not follow): the store is
    unhealthy and keeps a copy of the segment in ``quarantine/``. ``check()`` validates each
    line on its own and reports no journal problem, only the quarantined copy (found by the
    sealed reader fuzzer, tests/test_fuzz_readers.py; seed 2, iteration 185).
    """
    root, image = tmp_path / "store", tmp_path / "image"
    async with FileSystemSessionStore(root, sealed(), watch=False) as store:
        session = await store.create_session(
            fs_session_object(interactions=1), metadata={"who": "alice"}, expires_at=None
        )
        sid = session.session_id
        await store.update_session(sid, {"metadata": {"who": "bob"}})
        await store.update_session(sid, {"metadata": {"who": "carol"}})
        shutil.copytree(root, image)  # the journal as a crash leaves it
    segment = _journal_lines(image)[-1][0]
    lines = segment.read_bytes().splitlines(keepends=True)
    puts = [line for path, line, plain in _journal_lines(image) if b'"doc"' in plain]
    assert len(puts) == 3
    assert puts[0] in lines
    lines.insert(len(lines) - 1, puts[0])  # the creation again, before the last update
    segment.write_bytes(b"".join(lines))
    async with FileSystemSessionStore(image, sealed(), watch=False) as store:
        read = await store.get_session(sid)
        assert read is not None
        assert read.metadata == {"who": "carol"}
        health = await store.health_check()
        assert not health.healthy
        report = await store.check()
        assert [p for p in report.problems if p.kind == "journal"], report


async def test_filesystem_later_sealed_line_replayed_earlier_keeps_the_intact_lines(
    tmp_path: Path,
) -> None:
    """A copy of a later sealed line put earlier in its segment does not drop the lines between.

    No key is needed to copy a line. Replay accepted the copy (its sequence number is above
    the line before it), then refused every intact line after it up to the original as "out
    of sequence": session B's creation, intact and acknowledged, was lost (reported, but
    lost), although the log says later records are recovered. Found by the sealed reader
    fuzzer (tests/test_fuzz_readers.py; seed 424242, iteration 931, and the seal-swap
    "replayed" mutations).
    """
    root, image = tmp_path / "store", tmp_path / "image"
    async with FileSystemSessionStore(root, sealed(), watch=False) as store:
        a = await store.create_session(
            fs_session_object(interactions=1), metadata={"who": "a"}, expires_at=None
        )
        b = await store.create_session(
            fs_session_object(interactions=1), metadata={"who": "b"}, expires_at=None
        )
        await store.update_session(a.session_id, {"metadata": {"who": "a2"}})
        shutil.copytree(root, image)  # the journal as a crash leaves it
    segment = _journal_lines(image)[-1][0]
    lines = segment.read_bytes().splitlines(keepends=True)
    update = lines[-1]
    assert b'"a2"' in _journal_lines(image)[-1][2]
    lines.insert(lines.index(update) - 1, update)  # before B's creation
    segment.write_bytes(b"".join(lines))
    async with FileSystemSessionStore(image, sealed(), watch=False) as store:
        read_a = await store.get_session(a.session_id)
        assert read_a is not None
        assert read_a.metadata == {"who": "a2"}
        read_b = await store.get_session(b.session_id)
        assert read_b is not None, "B's intact creation was dropped after the replayed line"
        assert read_b.metadata == {"who": "b"}
