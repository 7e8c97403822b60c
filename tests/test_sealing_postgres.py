"""Sealing on the PostgreSQL store: nothing in clear at rest, rotation online, damage, keys.

Every test runs on the run's throwaway server (tests/_postgres.py), each in tables of its own.
The plaintext scans read every file of that server's directory (data, WAL, log): they need
the server the tests started (with ``SP_POSTGRES_DSN`` they are skipped: its files are not
here).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _postgres import PostgresServer
from _sealing import COMPRESSION, K1, K2, KEYS, MIGRATING, hits

from session_persistence import (
    BackupOptions,
    SessionFilter,
    SessionStoreConfig,
    StoreCorruptionError,
)
from session_persistence.errors import SealingKeyError, UnsealedRecordError
from session_persistence.models import PersistedSession
from session_persistence.sealing import Key, Keyring
from session_persistence.stores.postgres import PostgresSessionStore
from session_persistence.testing import interaction, session_object

_prefixes = itertools.count()


@pytest.fixture
def prefix() -> str:
    return f"seal{next(_prefixes)}_"


def sql(dsn: str, statement: str, *params: object) -> list[tuple[Any, ...]]:
    """One statement on a connection of its own, as an operator would run it in psql."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(statement, params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def sealed(**changes: Any) -> SessionStoreConfig:
    return SessionStoreConfig(encryption=KEYS, **changes)


def raw(dsn: str, p: str) -> list[tuple[Any, ...]]:
    """Every stored value of a table set, as text (to show nothing changed)."""
    return sql(
        dsn,
        f"SELECT s.session_id, s.version, s.updated_at, s.metadata::text, "
        f"(SELECT json_agg(i.data ORDER BY i.seq)::text FROM {p}interactions i "
        f"WHERE i.session_id = s.session_id) FROM {p}sessions s ORDER BY s.session_id",
    )


def same(a: PersistedSession, b: PersistedSession) -> bool:
    """The same content, version and write times (``last_accessed_at`` moves on reads)."""
    return (a.version, a.metadata, a.tags, a.interactions, a.updated_at, a.created_at) == (
        b.version,
        b.metadata,
        b.tags,
        b.interactions,
        b.updated_at,
        b.created_at,
    )


async def write_marked(store: PostgresSessionStore, marker: str) -> list[str]:
    """Sessions holding ``marker`` in metadata and interactions, by every write path."""
    ids = []
    for n in range(3):
        session = await store.create_session(
            session_object("p"), metadata={"secret": f"{marker} {n}"}, tags=["t"]
        )
        ids.append(session.session_id)
        await store.append_interactions(session.session_id, interaction(f"{marker} said {n}"))
        await store.update_session(
            session.session_id,
            {"metadata": {"secret": f"{marker} again", "n": n}, "merge_metadata": True},
        )
        current = await store.require_session(session.session_id)
        await store.update_session(
            session.session_id,
            {"interactions": [*current.interactions[:1], interaction(f"{marker} rewrote")]},
        )

    async def in_transaction(tx: Any) -> None:
        await tx.update_session(ids[0], {"metadata": {"secret": f"{marker} in tx"}})
        await tx.append_interactions(ids[1], interaction(f"{marker} in tx"))

    await store.with_transaction(in_transaction)
    return ids


# -- no plaintext at rest ------------------------------------------------------------------------


@pytest.mark.parametrize("seal", [True, False], ids=["sealed", "plain"])
async def test_no_plaintext_at_rest(
    postgres_cluster: PostgresServer | None,
    postgres_dsn: str,
    prefix: str,
    seal: bool,
    tmp_path: Path,
) -> None:
    """No file of the server, nor a backup or a notification, holds a marker written sealed.

    The marker is in metadata and interactions, written by every write path; without
    sealing the same scan finds it (so the scan can fail).
    """
    if postgres_cluster is None:
        pytest.skip("SP_POSTGRES_DSN names a server whose files are not on this machine")
    marker = f"plain-marker-{uuid.uuid4().hex}"
    backups = tmp_path / "backups"
    config = sealed() if seal else SessionStoreConfig()
    config = dataclasses.replace(config, backup_dir=backups)
    heard: list[str] = []
    with psycopg.connect(postgres_dsn, autocommit=True) as listener:
        listener.execute(f"LISTEN {prefix}events")
        async with PostgresSessionStore(postgres_dsn, config, table_prefix=prefix) as store:
            ids = await write_marked(store, marker)
            await store.create_backup()
            await store.create_backup(BackupOptions(compress=True))
            sql(postgres_dsn, "CHECKPOINT")  # (the tables' pages too, not only the WAL)
            found_open = hits(marker.encode(), postgres_cluster.root, backups)
            session = await store.require_session(ids[0])
            assert session.metadata["secret"] == f"{marker} in tx"
        heard = [note.payload for note in listener.notifies(timeout=0.5)]
    sql(postgres_dsn, "CHECKPOINT")
    found_closed = hits(marker.encode(), postgres_cluster.root, backups)
    assert len(heard) >= 10
    if seal:
        assert found_open == []
        assert found_closed == []
    else:
        assert found_open
        assert found_closed
    assert not [note for note in heard if marker in note]  # (never: headers only)


async def test_header_columns_stay_clear(postgres_dsn: str, prefix: str) -> None:
    """Queries on the clear columns see them; metadata and rows are sealed JSON strings."""
    async with PostgresSessionStore(postgres_dsn, sealed(), table_prefix=prefix) as store:
        session = await store.create_session(
            session_object("proc-x", interactions=2), metadata={"a": 1}, tags=["red"]
        )
    rows = sql(
        postgres_dsn,
        f"SELECT processor_id, tags::text, version, interaction_count, metadata::text "
        f"FROM {prefix}sessions",
    )
    assert rows[0][:4] == ("proc-x", '["red"]', 1, 2)
    assert rows[0][4].startswith('"$sp1:k1:')
    items = sql(postgres_dsn, f"SELECT data::text FROM {prefix}interactions ORDER BY seq")
    assert len(items) == 2
    assert all(text.startswith('"$sp1:k1:') for (text,) in items)
    status = await _status(postgres_dsn, prefix, sealed())
    assert status == {"k1": 3}
    del session


async def _status(dsn: str, p: str, config: SessionStoreConfig) -> dict[str | None, int]:
    async with PostgresSessionStore(dsn, config, table_prefix=p) as store:
        return dict((await store.key_status()).records)


def _meta(n: int) -> dict[str, Any]:
    return {"team": "ab"[n % 2], "n": n, "name": f"name-{n}", "pad": "x" * 80}


# -- reads: filters and search ---------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        SessionStoreConfig(encryption=MIGRATING),
        SessionStoreConfig(compression=COMPRESSION),
        SessionStoreConfig(encryption=MIGRATING, compression=COMPRESSION),
    ],
    ids=["sealed", "compressed", "both"],
)
async def test_metadata_filters_and_search(
    postgres_dsn: str, prefix: str, config: SessionStoreConfig
) -> None:
    """Metadata filters and text search find the right sessions, sealed or compressed.

    Sessions written before sealing was turned on are found too (a mixed table set, read
    with ``accept_unsealed``).
    """
    teams: dict[str, str] = {}
    async with PostgresSessionStore(postgres_dsn, table_prefix=prefix) as plain:
        for n in range(4):
            s = await plain.create_session(
                session_object("p"),
                metadata=_meta(n),
            )
            teams[s.session_id] = "ab"[n % 2]
    async with PostgresSessionStore(postgres_dsn, config, table_prefix=prefix) as store:
        for n in range(4, 10):
            s = await store.create_session(
                session_object("p"),
                metadata=_meta(n),
            )
            await store.append_interactions(s.session_id, interaction(f"needle-{n} in a row"))
            teams[s.session_id] = "ab"[n % 2]
        want_a = sorted(sid for sid, team in teams.items() if team == "a")
        found = await store.list_sessions(SessionFilter(metadata={"team": "a"}))
        assert sorted(s.session_id for s in found) == want_a
        assert await store.count_sessions(SessionFilter(metadata={"team": "a"})) == len(want_a)
        both = await store.list_sessions(SessionFilter(metadata={"team": "b", "n": 7}))
        assert [s.metadata["n"] for s in both] == [7]
        headers = await store.list_session_headers(SessionFilter(metadata={"n": 2}))
        assert [h.metadata["team"] for h in headers] == ["a"]
        assert await store.list_sessions(SessionFilter(metadata={"team": "c"})) == []
        found = await store.search_sessions("NAME-7")
        assert [s.metadata["n"] for s in found] == [7]
        found = await store.search_sessions("name-2")  # (written before sealing)
        assert [s.metadata["n"] for s in found] == [2]
        found = await store.search_sessions("needle-5", search_interactions=True)
        assert [s.metadata["n"] for s in found] == [5]
        assert await store.search_sessions("needle-5") == []  # (interactions not asked)


# -- rotation ----------------------------------------------------------------------------------


async def test_rotation_under_load(postgres_dsn: str, prefix: str) -> None:
    """rotate_key("k2") while this store and another (another host) keep writing.

    Afterwards only k2 seals anything, every session is exactly as the writers left it,
    sessions nobody wrote keep their version and times, and K2 alone reads it all.
    """
    config = sealed()
    other_config = SessionStoreConfig(encryption=Keyring(K2, K1))  # (a host given k2 first)
    async with (
        PostgresSessionStore(postgres_dsn, config, table_prefix=prefix) as store,
        PostgresSessionStore(postgres_dsn, other_config, table_prefix=prefix) as other,
    ):
        ids = []
        for n in range(100):
            s = await store.create_session(
                session_object("p", interactions=3), metadata={"n": n}, tags=[f"t{n % 3}"]
            )
            ids.append(s.session_id)
        before = {sid: await store.require_session(sid) for sid in ids}
        assert (await store.key_status()).records == {"k1": 400}
        busy = ids[:20]
        stop = asyncio.Event()
        counts: dict[str, int] = dict.fromkeys(busy, 0)

        async def writer(writing: PostgresSessionStore, mine: list[str]) -> None:
            while not stop.is_set():
                for sid in mine:
                    counts[sid] += 1
                    await writing.update_session(
                        sid, {"metadata": {"count": counts[sid]}, "merge_metadata": True}
                    )
                    await writing.append_interactions(sid, interaction(f"w{counts[sid]}"))
                await asyncio.sleep(0)

        tasks = [
            asyncio.create_task(writer(store, busy[:10])),
            asyncio.create_task(writer(other, busy[10:])),
        ]
        seen: list[tuple[int, int | None]] = []
        await asyncio.sleep(0.05)
        report = await store.rotate_key("k2", progress=lambda d, t: seen.append((d, t)))
        await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*tasks)
        assert report.key_id == "k2"
        assert report.records_resealed >= 320  # (at least the 80 sessions nobody wrote)
        assert seen[-1][0] == seen[-1][1]
        assert seen[-1][0] >= 100
        # (a write of this store sealed just before the switch is caught by another pass)
        status = await store.key_status()
        assert status.records.keys() == {"k2"}
        assert status.active_key == "k2"
        assert all(counts[sid] > 0 for sid in busy)
        final = {sid: await store.require_session(sid) for sid in ids}
    for sid in ids:
        if sid in counts:
            assert final[sid].metadata == {"n": ids.index(sid), "count": counts[sid]}
            assert len(final[sid].interactions) == 3 + counts[sid]
        else:
            assert same(final[sid], before[sid])
    alone = SessionStoreConfig(encryption=Keyring(K2))
    async with PostgresSessionStore(postgres_dsn, alone, table_prefix=prefix) as reader:
        for sid in ids:
            assert same(await reader.require_session(sid), final[sid])
        assert len(await reader.list_sessions(SessionFilter(metadata={"n": 5}))) == 1


async def test_rotation_of_a_store_written_unsealed(postgres_dsn: str, prefix: str) -> None:
    """Once sealing is turned on, a rotation seals values written unsealed or compressed.

    Their sessions' versions and times do not change.
    """
    async with PostgresSessionStore(postgres_dsn, table_prefix=prefix) as plain:
        ids = [
            (
                await plain.create_session(session_object("p", interactions=2), metadata={"n": n})
            ).session_id
            for n in range(40)
        ]
    compressed = SessionStoreConfig(compression=COMPRESSION)
    async with PostgresSessionStore(postgres_dsn, compressed, table_prefix=prefix) as store:
        big = {"text": "y" * 500}
        ids.append((await store.create_session(session_object("p"), metadata=big)).session_id)
        before = {sid: await store.require_session(sid) for sid in ids}
        records = (await store.key_status()).records
        assert records == {None: 41 + 80}
    async with PostgresSessionStore(postgres_dsn, sealed(), table_prefix=prefix) as store:
        with pytest.raises(UnsealedRecordError):  # (a sealed store takes no record in clear)
            await store.get_session(ids[0])
    migrating = SessionStoreConfig(encryption=MIGRATING)
    async with PostgresSessionStore(postgres_dsn, migrating, table_prefix=prefix) as store:
        report = await store.rotate_key("k2")
        assert report.records_resealed == 121
        assert (await store.key_status()).records == {"k2": 121}
        again = await store.rotate_key("k2")  # (nothing left: a rerun finds nothing)
        assert again.records_resealed == 0
    alone = SessionStoreConfig(encryption=Keyring(K2))
    async with PostgresSessionStore(postgres_dsn, alone, table_prefix=prefix) as reader:
        for sid in ids:
            assert same(await reader.require_session(sid), before[sid])


_CHILD = """
import asyncio, sys, time
sys.path.insert(0, {tests!r})
from _sealing import KEYS
from session_persistence import SessionStoreConfig
from session_persistence.stores.postgres import PostgresSessionStore

async def main():
    config = SessionStoreConfig(encryption=KEYS)
    async with PostgresSessionStore({dsn!r}, config, table_prefix={prefix!r}) as store:
        def progress(done, total):
            print(done, total, flush=True)
            if done:
                time.sleep(60)  # (a batch committed: the parent kills us here)
        await store.rotate_key("k2", progress=progress)
        print("finished", flush=True)

asyncio.run(main())
"""


def _kill_after_first_batch(code: str) -> int:
    """Run the child; SIGKILL it once it reports a committed batch; return its status."""
    with subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    ) as child:
        assert child.stdout is not None
        try:
            for line in child.stdout:
                if line[0].isdigit() and int(line.split()[0]) > 0:
                    child.send_signal(signal.SIGKILL)
                    break
        finally:
            child.kill()
        return child.wait()


async def test_rotation_killed_midway_then_rerun(postgres_dsn: str, prefix: str) -> None:
    """A process rotating keys is SIGKILLed after its first batch; a rerun finishes.

    In between every session reads (old and new keys mixed).
    """
    async with PostgresSessionStore(postgres_dsn, sealed(), table_prefix=prefix) as store:
        ids = [
            (
                await store.create_session(session_object("p", interactions=1), metadata={"n": n})
            ).session_id
            for n in range(150)
        ]
        before = {sid: await store.require_session(sid) for sid in ids}
    code = _CHILD.format(tests=str(Path(__file__).parent), dsn=postgres_dsn, prefix=prefix)
    killed = await asyncio.to_thread(_kill_after_first_batch, code)
    assert killed == -signal.SIGKILL
    mixed = await _status(postgres_dsn, prefix, sealed())
    assert mixed.get("k1", 0) > 0  # (killed midway)
    assert mixed.get("k2", 0) > 0
    async with PostgresSessionStore(postgres_dsn, sealed(), table_prefix=prefix) as store:
        for sid in ids:
            assert same(await store.require_session(sid), before[sid])
        await store.rotate_key("k2")
        assert (await store.key_status()).records == {"k2": 300}
    alone = SessionStoreConfig(encryption=Keyring(K2))
    async with PostgresSessionStore(postgres_dsn, alone, table_prefix=prefix) as reader:
        for sid in ids:
            assert same(await reader.require_session(sid), before[sid])


# -- damage and keys -----------------------------------------------------------------------------


def _flip(text: str) -> str:
    """One byte of a sealed value's ciphertext changed (still a valid JSON string)."""
    at = len(text) - 8
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]


async def test_tampered_value_is_damage_for_that_session_alone(
    postgres_dsn: str, prefix: str
) -> None:
    """One byte changed in a sealed value is damage, for its session alone.

    One session's metadata and another's interaction row: reading either raises
    StoreCorruptionError naming it; the others read; check() reports both and repair sets
    them aside.
    """
    async with PostgresSessionStore(postgres_dsn, sealed(), table_prefix=prefix) as store:
        a, b, c = [
            (
                await store.create_session(session_object("p", interactions=2), metadata={"n": n})
            ).session_id
            for n in range(3)
        ]
        ((meta,),) = sql(
            postgres_dsn, f"SELECT metadata::text FROM {prefix}sessions WHERE session_id = %s", a
        )
        sql(postgres_dsn, f"UPDATE {prefix}sessions SET metadata = %s::json "
            "WHERE session_id = %s", _flip(meta), a)  # fmt: skip
        ((item,),) = sql(
            postgres_dsn,
            f"SELECT data::text FROM {prefix}interactions WHERE session_id = %s AND seq = 1",
            b,
        )
        sql(postgres_dsn, f"UPDATE {prefix}interactions SET data = %s::json "
            "WHERE session_id = %s AND seq = 1", _flip(item), b)  # fmt: skip
    async with PostgresSessionStore(postgres_dsn, sealed(), table_prefix=prefix) as store:
        for damaged in (a, b):
            with pytest.raises(StoreCorruptionError, match=damaged):
                await store.get_session(damaged)
        with pytest.raises(StoreCorruptionError, match=a):
            await store.get_session_header(a)
        assert (await store.require_session(c)).metadata == {"n": 2}
        assert [s.session_id for s in await store.list_sessions(SessionFilter(metadata={"n": 2}))]
        report = await store.check()
        assert sorted(p.target for p in report.problems) == sorted([a, b])
        await store.check(repair=True)
        assert await store.get_session(a) is None
        assert await store.get_session(b) is None
        assert (await store.require_session(c)).metadata == {"n": 2}


async def test_a_row_moved_to_another_position_fails(postgres_dsn: str, prefix: str) -> None:
    """Sealed rows are bound to their position: swapping two rows is damage, not a reorder."""
    async with PostgresSessionStore(postgres_dsn, sealed(), table_prefix=prefix) as store:
        sid = (await store.create_session(session_object("p", interactions=2))).session_id
    sql(postgres_dsn, f"UPDATE {prefix}interactions SET seq = 1 - seq + 10 WHERE session_id = %s",
        sid)  # fmt: skip
    sql(postgres_dsn, f"UPDATE {prefix}interactions SET seq = seq - 10 WHERE session_id = %s", sid)
    async with PostgresSessionStore(postgres_dsn, sealed(), table_prefix=prefix) as store:
        with pytest.raises(StoreCorruptionError, match=sid):
            await store.get_session(sid)


@pytest.mark.parametrize(
    "keyring",
    [Keyring(K2), Keyring(Key("k1", bytes(32)), K2), None],
    ids=["missing-key", "wrong-secret", "no-keyring"],
)
async def test_missing_or_wrong_key_changes_nothing(
    postgres_dsn: str, prefix: str, keyring: Keyring | None
) -> None:
    """Without the sealing key (or with another secret under its id): SealingKeyError.

    On every read of those sessions, never treated as damage; every stored value is left as
    it was.
    """
    async with PostgresSessionStore(postgres_dsn, sealed(), table_prefix=prefix) as store:
        sid = (
            await store.create_session(session_object("p", interactions=2), metadata={"n": 1})
        ).session_id
    before = raw(postgres_dsn, prefix)
    config = SessionStoreConfig(encryption=keyring)
    async with PostgresSessionStore(postgres_dsn, config, table_prefix=prefix) as store:
        with pytest.raises(SealingKeyError):
            await store.get_session(sid)
        with pytest.raises(SealingKeyError):
            await store.get_session_header(sid)
        with pytest.raises(SealingKeyError):
            await store.update_session(sid, {"metadata": {"n": 2}})
        with pytest.raises(SealingKeyError):
            await store.append_interactions(sid, interaction("more"))
        with pytest.raises(SealingKeyError):
            await store.list_sessions(SessionFilter(metadata={"n": 1}))
        with pytest.raises(SealingKeyError):
            await store.check(repair=True)
        if keyring is not None:
            with pytest.raises(SealingKeyError):
                await store.rotate_key(keyring.active)
    assert raw(postgres_dsn, prefix) == before
    assert sql(postgres_dsn, f"SELECT count(*) FROM {prefix}quarantine") == [(0,)]


async def test_follower_delivers_sealed_sessions(postgres_dsn: str, prefix: str) -> None:
    """Another store's events carry the opened session (notifications carry headers only)."""
    heard: list[PersistedSession] = []
    async with (
        PostgresSessionStore(postgres_dsn, sealed(), table_prefix=prefix) as watcher,
        PostgresSessionStore(postgres_dsn, sealed(), table_prefix=prefix) as writer,
    ):
        watcher.on_session_created(heard.append)
        await watcher.following()
        await writer.create_session(session_object("p", interactions=1), metadata={"k": "v"})
        for _ in range(200):
            if heard:
                break
            await asyncio.sleep(0.01)
    assert [s.metadata for s in heard] == [{"k": "v"}]
