"""Sealing the in-memory store's snapshot file: no plaintext, rotation, tamper, wrong keys.

The snapshot is one record (context ``b"snapshot"``), so "one record" here is the whole file:
a tampered or foreign-keyed snapshot stops :meth:`initialize`, and changes nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from _sealing import COMPRESSION, K1, K2, KEYS, hits, sealed

from session_persistence import (
    InMemorySessionStore,
    KeyStatus,
    PersistedSession,
    SessionFilter,
    SessionPersistenceConfig,
    SessionPersistenceManager,
    SessionStoreConfig,
    StoreCorruptionError,
)
from session_persistence._envelope import record_key
from session_persistence.errors import SealingKeyError, UnsealedRecordError
from session_persistence.sealing import Key, Keyring
from session_persistence.testing import interaction, session_object

MARKER = "zebra-quartz-7731"


def _store(path: Path, config: SessionStoreConfig | None = None) -> InMemorySessionStore:
    return InMemorySessionStore(config or SessionStoreConfig(), persistence_path=path)


def _content(session: PersistedSession | None) -> tuple[object, ...]:
    """What a session holds (reads move ``last_accessed_at``, so it is left out)."""
    assert session is not None
    return (
        session.session_id,
        session.interactions,
        session.metadata,
        session.tags,
        session.version,
        session.created_at,
        session.updated_at,
    )


async def _fill(store: InMemorySessionStore, count: int = 3) -> list[str]:
    ids = []
    for number in range(count):
        created = await store.create_session(
            session_object(interactions=1),
            metadata={"secret": f"{MARKER}-meta-{number}", "team": "red" if number else "blue"},
            tags=["kept"],
        )
        await store.append_interactions(created.session_id, interaction(f"{MARKER} said {number}"))
        ids.append(created.session_id)
    return ids


@pytest.mark.parametrize("config_name", ["sealed", "sealed_compressed", "plain"])
async def test_no_plaintext_in_the_snapshot(tmp_path: Path, config_name: str) -> None:
    """Sealed, the marker (in interactions and metadata) is nowhere on disk; plain, it is."""
    path = tmp_path / "snap" / "sessions.json"
    config = {
        "sealed": sealed(),
        "sealed_compressed": sealed(compression=COMPRESSION),
        "plain": SessionStoreConfig(),
    }[config_name]
    marker = MARKER.encode()
    async with _store(path, config) as store:
        await _fill(store)
        await store.save_snapshot()  # while open
        found_open = hits(marker, tmp_path)
    found_closed = hits(marker, tmp_path)
    assert path.is_file()
    if config_name == "plain":
        assert found_open == [path]
        assert found_closed == [path]
    else:
        assert found_open == []
        assert found_closed == []
        assert record_key(path.read_bytes()) == "k1"


async def test_sealed_snapshot_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "sessions.json"
    async with _store(path, sealed(compression=COMPRESSION)) as store:
        ids = await _fill(store)
        before = [_content(await store.get_session(i)) for i in ids]
    async with _store(path, sealed()) as again:
        after = [_content(await again.get_session(i)) for i in ids]
    assert after == before


async def test_metadata_filter_and_search_on_a_sealed_snapshot(tmp_path: Path) -> None:
    """Loaded from a sealed snapshot, filters and search see the opened sessions."""
    path = tmp_path / "sessions.json"
    async with _store(path, sealed()) as store:
        ids = await _fill(store)
    async with _store(path, sealed()) as again:
        red = await again.list_sessions(SessionFilter(metadata={"team": "red"}))
        found = await again.search_sessions(f"{MARKER}-meta-2")
        said = await again.search_sessions(f"{MARKER} said 0", search_interactions=True)
    assert sorted(s.session_id for s in red) == sorted(ids[1:])
    assert [s.session_id for s in found] == [ids[2]]
    assert [s.session_id for s in said] == [ids[0]]


async def test_rotation_with_concurrent_writers(tmp_path: Path) -> None:
    """Writers keep going during rotate_key; afterwards only k2 seals, and K2 alone reads."""
    path = tmp_path / "sessions.json"
    async with _store(path, sealed()) as store:
        ids = await _fill(store, 4)
        await store.save_snapshot()
        assert (await store.key_status()).records == {"k1": 1}
        stop = asyncio.Event()

        async def writer(session_id: str) -> int:
            written = 0
            while not stop.is_set() or written < 3:
                await store.append_interactions(session_id, interaction(f"w{written}"))
                written += 1
                await asyncio.sleep(0)
            return written

        tasks = [asyncio.create_task(writer(i)) for i in ids]
        await asyncio.sleep(0)
        seen: list[tuple[int, int | None]] = []
        report = await store.rotate_key("k2", progress=lambda d, t: seen.append((d, t)))
        stop.set()
        counts = await asyncio.gather(*tasks)
        assert report.key_id == "k2"
        assert report.records_resealed == 1
        assert report.status.records == {"k2": 1}
        assert seen
        assert seen[-1][0] == seen[-1][1]
        assert (await store.key_status()) == report.status
        assert store.config.encryption is not None
        assert store.config.encryption.active == "k2"
        expected = {i: _content(await store.get_session(i)) for i in ids}
    for session_id, count in zip(ids, counts, strict=True):
        assert len(expected[session_id][1]) == 2 + count  # type: ignore[arg-type]
    assert record_key(path.read_bytes()) == "k2"
    async with _store(path, SessionStoreConfig(encryption=Keyring(K2))) as only_k2:
        assert (await only_k2.key_status()).records == {"k2": 1}
        for session_id, session in expected.items():
            assert _content(await only_k2.get_session(session_id)) == session


async def test_rotation_of_a_snapshot_written_unsealed(tmp_path: Path) -> None:
    """Sealing turned on later: the plain snapshot reads, and rotate_key seals it."""
    path = tmp_path / "sessions.json"
    async with _store(path) as plain:
        ids = await _fill(plain)
        before = [_content(await plain.get_session(i)) for i in ids]
    before_bytes = path.read_bytes()
    with pytest.raises(UnsealedRecordError):  # a sealed store takes nothing in clear...
        await _store(path, SessionStoreConfig(encryption=Keyring(K2, K1))).initialize()
    assert path.read_bytes() == before_bytes  # ...and changes nothing
    accepting = Keyring(K2, K1, accept_unsealed=True)  # unless told the store was plain
    async with _store(path, SessionStoreConfig(encryption=accepting)) as store:
        assert (await store.key_status()).records == {None: 1}
        assert [_content(await store.get_session(i)) for i in ids] == before
        report = await store.rotate_key()
        assert report.key_id == "k2"
        assert report.records_resealed == 1
        assert report.status.records == {"k2": 1}
        assert MARKER.encode() not in path.read_bytes()
        again = await store.rotate_key("k2")  # nothing left to re-seal
        assert again.records_resealed == 0
    async with _store(path, SessionStoreConfig(encryption=Keyring(K2))) as only_k2:
        assert [_content(await only_k2.get_session(i)) for i in ids] == before


async def test_rotation_without_a_snapshot_file(tmp_path: Path) -> None:
    async with _store(tmp_path / "never.json", sealed()) as store:
        report = await store.rotate_key("k2")
        assert report.records_resealed == 0
        assert report.status.records == {}
    async with InMemorySessionStore(sealed()) as no_path:
        assert (await no_path.rotate_key("k2")).records_resealed == 0
        assert (await no_path.key_status()).records == {}


async def test_a_tampered_snapshot_is_damage(tmp_path: Path) -> None:
    """One byte changed in the sealed snapshot: StoreCorruptionError naming it; file kept."""
    path = tmp_path / "sessions.json"
    async with _store(path, sealed()) as store:
        await _fill(store)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle] = ord("A") if data[middle] != ord("A") else ord("B")
    path.write_bytes(bytes(data))
    with pytest.raises(StoreCorruptionError, match="failed authentication") as caught:
        await _store(path, sealed()).initialize()
    assert caught.value.path == str(path)
    assert path.read_bytes() == bytes(data)


@pytest.mark.parametrize(
    "keyring",
    [
        Keyring(K2),  # the key is missing
        Keyring(Key("k1", bytes(32))),  # another secret under the id k1
        None,  # no keyring at all
    ],
    ids=["missing", "wrong-secret", "no-keyring"],
)
async def test_a_snapshot_under_another_key_changes_nothing(
    tmp_path: Path, keyring: Keyring | None
) -> None:
    path = tmp_path / "sessions.json"
    async with _store(path, sealed()) as store:
        await _fill(store)
    before = path.read_bytes()
    config = dataclasses.replace(SessionStoreConfig(), encryption=keyring)
    with pytest.raises(SealingKeyError) as caught:
        await _store(path, config).initialize()
    assert caught.value.key_id == "k1"
    assert path.read_bytes() == before
    async with _store(
        path, SessionStoreConfig(encryption=KEYS)
    ) as right:  # still readable with the key
        assert await right.count_sessions() == 3


async def test_the_manager_delegates_rotation_and_status(tmp_path: Path) -> None:
    path = tmp_path / "sessions.json"
    store = _store(path, sealed())
    config = SessionPersistenceConfig(store_type="custom", custom_store=store)
    async with SessionPersistenceManager(config) as manager:
        await manager.create_session(session_object(interactions=1), metadata={"m": MARKER})
        await store.save_snapshot()
        assert (await manager.key_status()).records == {"k1": 1}
        seen: list[tuple[int, int | None]] = []
        report = await manager.rotate_key("k2", progress=lambda d, t: seen.append((d, t)))
        assert report.key_id == "k2"
        assert report.status == KeyStatus(active_key="k2", records={"k2": 1})
        assert seen
        assert (await manager.key_status()).active_key == "k2"
    assert SessionPersistenceManager.rotate_key.__doc__ == InMemorySessionStore.rotate_key.__doc__
    assert SessionPersistenceManager.key_status.__doc__ == InMemorySessionStore.key_status.__doc__
    assert record_key(path.read_bytes()) == "k2"
