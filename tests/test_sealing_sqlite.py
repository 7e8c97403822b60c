"""SQLiteSessionStore sealed at rest (issue 23): no plaintext, rotation, damage, missing keys.

Real databases in temp dirs; the keys and the plaintext scan are tests/_sealing.py's.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from _sealing import COMPRESSION, K1, K2, MIGRATING, hits, sealed
from ulid import ULID

from session_persistence import (
    BackupOptions,
    Interaction,
    InteractionMessage,
    SessionFilter,
    SessionObject,
    SessionStoreConfig,
    SQLiteSessionStore,
    StoreCorruptionError,
)
from session_persistence._envelope import Envelope
from session_persistence.errors import SealingKeyError, UnsealedRecordError
from session_persistence.models import PersistedSession
from session_persistence.sealing import Key, Keyring
from session_persistence.stores.sqlite import _seal

MARKER = "zebra-quartz-4711"


def message(content: str) -> Interaction:
    return Interaction(request=InteractionMessage(event={"content": content}, sender="user"))


def session_object(*contents: str, processor_id: str = "p") -> SessionObject:
    return SessionObject(
        processor_id=processor_id,
        activity_id=ULID(),
        request_id=ULID(),
        interactions=[message(content) for content in contents],
    )


def rows(path: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def run_sql(path: Path, sql: str, *params: object) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute(sql, params)
    finally:
        db.close()


def content(session: PersistedSession | None) -> Any:
    """What a session holds, without the read-refreshed ``last_accessed_at``."""
    assert session is not None
    return (
        session.version,
        session.updated_at,
        session.metadata,
        session.tags,
        [item.request.event for item in session.interactions],
    )


async def write_marked(store: SQLiteSessionStore) -> list[str]:
    """Sessions holding MARKER in interactions and metadata, by every write path."""
    a = await store.create_session(
        session_object(f"tell {MARKER}", "x" * 200), metadata={"secret": MARKER}, tags=["t"]
    )
    b = await store.create_session(session_object("hello"))
    await store.update_session(b.session_id, {"metadata": {"note": f"about {MARKER}"}})
    await store.append_interactions(b.session_id, message(f"later {MARKER}"))
    c = await store.create_session(session_object())
    await store.update_session(
        c.session_id, {"interactions": [message(f"{MARKER} {i}") for i in range(3)]}
    )
    return [a.session_id, b.session_id, c.session_id]


# -- 2. no plaintext at rest -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "found"),
    [
        (sealed(), False),
        (sealed(compression=COMPRESSION), False),
        (SessionStoreConfig(), True),  # the same test finds the marker when not sealed
    ],
    ids=["sealed", "sealed_compressed", "plain"],
)
async def test_no_plaintext_at_rest(
    tmp_path: Path, config: SessionStoreConfig, found: bool
) -> None:
    """No marker in the database, its -wal and -shm, the quarantine or backups, if sealed.

    Two backups are taken, one compressed.
    """
    folder = tmp_path / "data"
    path = folder / "sessions.db"
    marker = MARKER.encode()
    config = dataclasses.replace(config, backup_dir=folder / "backups")
    async with SQLiteSessionStore(path, config, durability="process") as store:
        ids = await write_marked(store)
        await store.create_backup()
        await store.create_backup(BackupOptions(compress=True))
        assert len(list((folder / "backups").iterdir())) == 2
        assert (await store.get_session(ids[0])).metadata == {"secret": MARKER}  # type: ignore[union-attr]
        assert bool(hits(marker, folder)) is found  # while open: the WAL holds the writes
        # A damaged session set aside by a repair: its rows go out as they are stored.
        run_sql(
            path,
            "UPDATE interactions SET data = data || 'x' WHERE session_id = ? AND seq = 1",
            ids[0],
        )
        report = await store.check(repair=True)
        assert [p.target for p in report.problems] == [ids[0]]
    assert list((folder / "sessions.db-quarantine").glob("*.json"))
    assert bool(hits(marker, folder)) is found


async def test_sealing_turned_on_later_leaves_no_plaintext_after_rotation(tmp_path: Path) -> None:
    """Plain rows re-sealed by rotate_key: the overwritten plaintext is zeroed, the WAL emptied."""
    folder = tmp_path / "data"
    path = folder / "sessions.db"
    async with SQLiteSessionStore(path) as store:
        ids = await write_marked(store)
    assert hits(MARKER.encode(), folder)
    with pytest.raises(UnsealedRecordError):
        async with SQLiteSessionStore(path, sealed()) as store:
            await store.get_session(ids[0])
    async with SQLiteSessionStore(path, SessionStoreConfig(encryption=MIGRATING)) as store:
        before = [content(await store.get_session(sid)) for sid in ids]
        report = await store.rotate_key("k1")
        assert report.status.records == {"k1": 3 + 7}  # 3 metadata values, 7 interaction rows
        assert [content(await store.get_session(sid)) for sid in ids] == before
        assert not hits(MARKER.encode(), folder)
    assert not hits(MARKER.encode(), folder)


# -- 3. rotation -------------------------------------------------------------------------------


async def test_rotation_under_concurrent_writers(tmp_path: Path) -> None:
    """rotate_key('k2') while writers run: only k2 left, every session as its writer left it."""
    path = tmp_path / "sessions.db"
    size = _seal.RECORDS_PER_STEP * 2 + 17  # one session spans several re-sealing steps
    async with SQLiteSessionStore(path, sealed(compression=COMPRESSION)) as store:
        long = await store.create_session(
            session_object(*[f"m{i}" for i in range(size)]), metadata={"kind": "long"}
        )
        others = [
            await store.create_session(session_object("a", "b"), metadata={"n": n})
            for n in range(_seal.SESSIONS_PER_STEP * 2 + 5)  # several ranges of sessions
        ]
        # a metadata value per session, and its interaction rows
        assert (await store.key_status()).records == {"k1": 1 + size + 3 * len(others)}
        ids = [long.session_id, *[s.session_id for s in others]]
        left: dict[str, Any] = {}
        rotation_done = asyncio.Event()
        writes = 0

        async def writer(mine: list[str], number: int) -> None:
            nonlocal writes
            turn = 0
            while not rotation_done.is_set() or turn < 3:
                sid = mine[turn % len(mine)]
                if turn % 2:
                    await store.append_interactions(sid, message(f"w{number}-{turn}"))
                else:
                    await store.update_session(sid, {"metadata": {"writer": number, "turn": turn}})
                turn += 1
                writes += 1
                await asyncio.sleep(0)

        progress: list[tuple[int, int | None]] = []

        async def rotate() -> Any:
            try:
                return await store.rotate_key(
                    "k2", progress=lambda done, total: progress.append((done, total))
                )
            finally:
                rotation_done.set()

        writers = [writer(ids[n::4], n) for n in range(4)]
        report, *_ = await asyncio.gather(rotate(), *writers)
        assert writes > 12  # writers ran during the rotation, not only after it
        assert report.records_resealed > 0
        assert progress[-1] == (len(ids), len(ids))
        assert report.status.records.keys() == {"k2"}
        assert (await store.key_status()).records.keys() == {"k2"}
        for sid in ids:
            left[sid] = content(await store.get_session(sid))
    async with SQLiteSessionStore(path, SessionStoreConfig(encryption=Keyring(K2))) as store:
        for sid in ids:
            assert content(await store.get_session(sid)) == left[sid]
        got = await store.get_interactions(long.session_id, offset=size - 3, limit=2)
        assert [item.request.event for item in got or []] == [
            {"content": f"m{size - 3}"},
            {"content": f"m{size - 2}"},
        ]


async def test_rotation_changes_no_version_or_timestamp(tmp_path: Path) -> None:
    """Re-sealing rewrites values only: versions and timestamps stay; a rerun is a no-op."""
    path = tmp_path / "sessions.db"
    async with SQLiteSessionStore(path, sealed()) as store:
        ids = [
            (await store.create_session(session_object("x", "y"), metadata={"i": i})).session_id
            for i in range(5)
        ]
    header = "SELECT session_id, version, created_at, updated_at, expires_at, tags FROM sessions"
    before = rows(path, header)
    async with SQLiteSessionStore(path, sealed()) as store:
        first = await store.rotate_key("k2")
        assert first.records_resealed == 5 * 3
        again = await store.rotate_key("k2")
        assert again.records_resealed == 0
        assert (await store.key_status()).records == {"k2": 15}
        for sid in ids:
            assert (await store.get_session(sid)).version == 1  # type: ignore[union-attr]
    after = rows(path, header)
    assert [r[:5] for r in after] == [r[:5] for r in before]
    assert [r[5] for r in after] == [r[5] for r in before]


async def test_rotation_of_a_store_written_unsealed_and_compressed(tmp_path: Path) -> None:
    """Plain and compressed-only values count as ``None`` and are all sealed by a rotation."""
    path = tmp_path / "sessions.db"
    async with SQLiteSessionStore(path) as store:
        plain = await store.create_session(session_object("p" * 10), metadata={"a": 1})
    config = SessionStoreConfig(compression=COMPRESSION)
    async with SQLiteSessionStore(path, config) as store:
        packed = await store.create_session(session_object("z" * 300), metadata={"b": "y" * 80})
        assert (await store.key_status()).records == {None: 4}
    async with SQLiteSessionStore(path, SessionStoreConfig(encryption=MIGRATING)) as store:
        status = await store.key_status()
        assert status.records == {None: 4}
        assert status.active_key == "k1"
        await store.create_session(session_object("new"))
        assert (await store.key_status()).records == {None: 4, "k1": 2}
        report = await store.rotate_key()
        assert report.records_resealed == 4
        assert report.status.records == {"k1": 6}
        before = [content(await store.get_session(s.session_id)) for s in (plain, packed)]
    async with SQLiteSessionStore(path, SessionStoreConfig(encryption=Keyring(K1))) as store:
        after = [content(await store.get_session(s.session_id)) for s in (plain, packed)]
    assert after == before


# -- 4. tampering --------------------------------------------------------------------------------


def flip(text: str) -> str:
    """``text`` (a wrapped value) with one byte of its sealed body changed, still base64."""
    head, _, body = text.rpartition(":")
    raw = bytearray(base64.b64decode(body))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}:{base64.b64encode(bytes(raw)).decode()}"


@pytest.mark.parametrize("where", ["interaction", "metadata", "moved"])
async def test_a_tampered_value_is_damage_for_that_session_alone(
    tmp_path: Path, where: str
) -> None:
    path = tmp_path / "sessions.db"
    async with SQLiteSessionStore(path, sealed()) as store:
        bad = await store.create_session(session_object("one", "two", "three"), metadata={"k": "v"})
        good = await store.create_session(session_object("fine"), metadata={"k": "v"})
    if where == "interaction":
        [(data,)] = rows(path, "SELECT data FROM interactions WHERE session_id = ? AND seq = 1",
                         bad.session_id)  # fmt: skip
        run_sql(path, "UPDATE interactions SET data = ? WHERE session_id = ? AND seq = 1",
                flip(data), bad.session_id)  # fmt: skip
    elif where == "metadata":
        [(meta,)] = rows(path, "SELECT metadata FROM sessions WHERE session_id = ?", bad.session_id)
        run_sql(path, "UPDATE sessions SET metadata = ? WHERE session_id = ?",
                flip(meta), bad.session_id)  # fmt: skip
    else:  # an intact row copied to another position fails its context
        run_sql(
            path,
            "UPDATE interactions SET data = (SELECT data FROM interactions WHERE session_id = ?1 "
            "AND seq = 0) WHERE session_id = ?1 AND seq = 2",
            bad.session_id,
        )
    async with SQLiteSessionStore(path, sealed()) as store:
        with pytest.raises(StoreCorruptionError, match=bad.session_id):
            await store.get_session(bad.session_id)
        if where == "metadata":
            with pytest.raises(StoreCorruptionError, match=bad.session_id):
                await store.get_session_header(bad.session_id)
            with pytest.raises(StoreCorruptionError, match=bad.session_id):
                await store.list_sessions(SessionFilter(metadata={"k": "v"}))
        else:
            with pytest.raises(StoreCorruptionError, match=bad.session_id):
                await store.get_interactions(bad.session_id, offset=1)
            assert await store.get_interactions(bad.session_id, limit=1) is not None
            # search skips a damaged row rather than failing everyone's search
            assert [
                s.session_id for s in await store.search_sessions("fine", search_interactions=True)
            ] == [good.session_id]
        assert content(await store.get_session(good.session_id))[4] == [{"content": "fine"}]
        await store.update_session(good.session_id, {"metadata": {"k": "w"}})
        report = await store.check()
        assert [p.target for p in report.problems] == [bad.session_id]
        assert "failed authentication" in report.problems[0].problem


# -- 5. missing key, wrong secret ------------------------------------------------------------------


def everything(path: Path) -> list[Any]:
    return rows(path, "SELECT * FROM sessions ORDER BY session_id") + rows(
        path, "SELECT * FROM interactions ORDER BY session_id, seq"
    )


@pytest.mark.parametrize(
    "keyring",
    [Keyring(K2), Keyring(Key("k1", bytes(32))), None],
    ids=["missing_key", "wrong_secret", "no_keyring"],
)
async def test_a_key_not_held_raises_and_changes_nothing(
    tmp_path: Path, keyring: Keyring | None
) -> None:
    path = tmp_path / "sessions.db"
    async with SQLiteSessionStore(path, SessionStoreConfig(encryption=Keyring(K1))) as store:
        session = await store.create_session(session_object("a", "b"), metadata={"k": "v"})
    before = everything(path)
    config = SessionStoreConfig(encryption=keyring)
    async with SQLiteSessionStore(path, config) as store:
        sid = session.session_id
        for read in (
            store.get_session(sid),
            store.get_session_header(sid),
            store.get_interactions(sid, limit=1),
            store.list_sessions(),
            store.list_sessions(SessionFilter(metadata={"k": "v"})),
            store.search_sessions("zzz"),
            store.update_session(sid, {"metadata": {"k": "w"}}),
            store.append_interactions(sid, message("c")),
            store.check(repair=True),
        ):
            with pytest.raises(SealingKeyError):
                await read
        if keyring is not None and keyring.key("k1") is None:
            with pytest.raises(SealingKeyError):  # re-sealing must open the k1 values first
                await store.rotate_key()
        elif keyring is not None:  # values already under the id "k1" are not re-sealed
            assert (await store.rotate_key()).records_resealed == 0
    assert everything(path) == before
    assert not (tmp_path / "sessions.db-quarantine").exists()


# -- 6. filters and search -----------------------------------------------------------------------


@pytest.mark.parametrize("compression", [None, COMPRESSION], ids=["sealed", "sealed_compressed"])
async def test_metadata_filters_and_search_on_a_sealed_store(
    tmp_path: Path, compression: Any
) -> None:
    path = tmp_path / "sessions.db"
    async with SQLiteSessionStore(path, sealed(compression=compression)) as store:
        made = {}
        for name, meta, said in [
            ("a", {"plan": "pro", "seats": 3, "trial": False, "ref": None}, "hello there"),
            ("b", {"plan": "free", "seats": 3, "trial": True, "nested": {"x": 1.5}}, "bonjour"),
            ("c", {"plan": "pro", "seats": 4, "note": "Needle in metadata"}, "hola"),
            ("d", {}, "a needle in the chat"),
        ]:
            made[name] = (
                await store.create_session(session_object(said), metadata=meta)
            ).session_id

        async def ids(flt: SessionFilter) -> set[str]:
            found = {s.session_id for s in await store.list_sessions(flt)}
            assert await store.count_sessions(flt) == len(found)
            return {name for name, sid in made.items() if sid in found}

        assert await ids(SessionFilter(metadata={"plan": "pro"})) == {"a", "c"}
        assert await ids(SessionFilter(metadata={"plan": "pro", "seats": 3})) == {"a"}
        assert await ids(SessionFilter(metadata={"trial": True})) == {"b"}
        assert await ids(SessionFilter(metadata={"ref": None})) == {"a"}
        assert await ids(SessionFilter(metadata={"nested": {"x": 1.5}})) == {"b"}  # in Python
        assert await ids(SessionFilter(metadata={"plan": "gold"})) == set()

        async def search(needle: str, interactions: bool = False) -> set[str]:
            found = await store.search_sessions(needle, search_interactions=interactions)
            return {name for name, sid in made.items() if sid in {s.session_id for s in found}}

        assert await search("NEEDLE") == {"c"}
        assert await search("needle", interactions=True) == {"c", "d"}
        assert await search("bonjour", interactions=True) == {"b"}
        assert await search("bonjour") == set()
    stored = rows(path, "SELECT metadata FROM sessions") + rows(
        path, "SELECT data FROM interactions"
    )
    assert all(value.startswith("$sp1:k1:") for (value,) in stored)


async def test_a_put_that_keeps_values_does_not_rewrite_them(tmp_path: Path) -> None:
    """Unchanged sealed values are compared opened, so they are kept, not re-sealed."""
    path = tmp_path / "sessions.db"
    async with SQLiteSessionStore(path, sealed()) as store:
        session = await store.create_session(
            session_object("a", "b", "c"), metadata={"k": "v"}, tags=["x"]
        )
        before = everything(path)
        await store.update_session(session.session_id, {"tags": ["y"]})
        after = everything(path)
        assert after[0][10] == before[0][10]  # the metadata value, byte for byte
        assert after[1:] == before[1:]  # every interaction row
        items = [*session.interactions[:2], message("d")]
        await store.update_session(session.session_id, {"interactions": items})
        changed = everything(path)[1:]
        assert changed[:2] == before[1:3]
        assert changed[2] != before[3]
        got = await store.get_session(session.session_id)
        assert [i.request.event for i in got.interactions] == [  # type: ignore[union-attr]
            {"content": "a"}, {"content": "b"}, {"content": "d"}
        ]  # fmt: skip


async def test_a_plain_row_set_aside_by_a_sealed_store_is_sealed_on_the_way_out(
    tmp_path: Path,
) -> None:
    """Quarantine writes no plaintext: a row still plain at rest is sealed in the saved file."""
    path = tmp_path / "sessions.db"
    async with SQLiteSessionStore(path) as store:
        bad = await store.create_session(
            session_object(f"said {MARKER}", "two"), metadata={"m": MARKER}
        )
    run_sql(path, "UPDATE interactions SET data = '[' WHERE session_id = ? AND seq = 1",
            bad.session_id)  # fmt: skip
    async with SQLiteSessionStore(path, SessionStoreConfig(encryption=MIGRATING)) as store:
        report = await store.check(repair=True)
        assert [p.target for p in report.problems] == [bad.session_id]
    [saved] = (tmp_path / "sessions.db-quarantine").glob("*.json")
    assert MARKER.encode() not in saved.read_bytes()
    found = orjson.loads(saved.read_bytes())
    assert [item["data"][:8] for item in found["interactions"]] == ["$sp1:k1:"] * 2
    # Sealed with the contexts the table used: the keyring opens them as the store would.
    envelope = _seal_envelope()
    assert orjson.loads(
        _seal.open_meta(envelope, bad.session_id, found["session"]["metadata"])
    ) == {"m": MARKER}
    assert _seal.open_item(envelope, bad.session_id, 1, found["interactions"][1]["data"]) == "["


def _seal_envelope() -> Envelope:
    return Envelope(sealed().encryption, None)


async def test_a_sealed_store_zeroes_what_it_deletes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """secure_delete: a plain session deleted by a sealed store leaves no bytes in the file."""
    connect = sqlite3.connect

    def without_secure_delete(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        # As SQLite builds without SQLITE_SECURE_DELETE (Debian's has it on by default).
        db = connect(*args, **kwargs)
        db.execute("PRAGMA secure_delete = 0")
        return db

    folder = tmp_path / "data"
    path = folder / "sessions.db"
    async with SQLiteSessionStore(path) as store:
        gone = await store.create_session(
            session_object(*[f"{MARKER} {i}" for i in range(50)]), metadata={"m": MARKER}
        )
        await store.create_session(session_object("stays"))
    assert hits(MARKER.encode(), folder)
    # (only now: slack left by the plain store's own page splits is a VACUUM's business)
    monkeypatch.setattr(sqlite3, "connect", without_secure_delete)
    async with SQLiteSessionStore(path, SessionStoreConfig(encryption=MIGRATING)) as store:
        assert await store.delete_session(gone.session_id)
    assert not hits(MARKER.encode(), folder)


# A child that re-seals with k2, reporting each step's progress and then pausing, so the
# parent can SIGKILL it in the middle of the rotation.
_ROTATE_CHILD = """
import asyncio, sys, time
sys.path.insert(0, sys.argv[2])
from _sealing import sealed
from session_persistence import SQLiteSessionStore

def progress(done, total):
    print(done, total, flush=True)
    if done:
        time.sleep(0.3)

async def main():
    async with SQLiteSessionStore(sys.argv[1], sealed()) as store:
        await store.rotate_key("k2", progress=progress)
    print("finished", flush=True)

asyncio.run(main())
"""


async def test_a_rotation_killed_midway_leaves_everything_readable_and_a_rerun_finishes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sessions.db"
    async with SQLiteSessionStore(path, sealed(), durability="process") as store:
        ids = [
            (
                await store.create_session(
                    session_object(*[f"{n}-{i}" for i in range(5)]), metadata={"n": n}
                )
            ).session_id
            for n in range(_seal.SESSIONS_PER_STEP * 4)
        ]
        before = {sid: content(await store.get_session(sid)) for sid in ids}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _ROTATE_CHILD,
        str(path),
        str(Path(__file__).parent),
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    while True:
        line = (await asyncio.wait_for(child.stdout.readline(), 60)).decode().split()
        assert line, "the child died"
        assert line[0] != "finished", "the rotation finished before it could be killed"
        if int(line[0]) > 0:
            break  # one range re-sealed, the next not yet begun: kill it here
    child.send_signal(signal.SIGKILL)
    await child.wait()
    async with SQLiteSessionStore(path, sealed()) as store:
        halfway = (await store.key_status()).records
        assert halfway.keys() == {"k1", "k2"}  # killed in the middle
        assert {sid: content(await store.get_session(sid)) for sid in ids} == before
        report = await store.rotate_key("k2")
        assert report.records_resealed == halfway["k1"]
        assert report.status.records == {"k2": sum(halfway.values())}
    async with SQLiteSessionStore(path, SessionStoreConfig(encryption=Keyring(K2))) as store:
        assert {sid: content(await store.get_session(sid)) for sid in ids} == before
