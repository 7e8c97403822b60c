"""The in-memory store: the conformance suite, plus its snapshot file."""

from __future__ import annotations

import gc
from pathlib import Path

import orjson
import pytest
from _sealing import variant

from session_persistence import (
    ConfigurationError,
    InMemorySessionStore,
    SessionStoreConfig,
    StoreCorruptionError,
)
from session_persistence.testing import FakeClock, StoreConformance, eventually, session_object


class TestInMemoryConformance(StoreConformance):
    def make_store(self, config: SessionStoreConfig, path: Path) -> InMemorySessionStore:
        return InMemorySessionStore(config)


class _SealedSnapshotConformance(StoreConformance):
    """The suite with a snapshot file, under one of the sealing variants."""

    variant_name = ""

    def make_store(self, config: SessionStoreConfig, path: Path) -> InMemorySessionStore:
        return InMemorySessionStore(
            variant(config, self.variant_name), persistence_path=path / "snapshot.json"
        )


class TestInMemorySealedConformance(_SealedSnapshotConformance):
    variant_name = "sealed"


class TestInMemoryCompressedConformance(_SealedSnapshotConformance):
    variant_name = "compressed"


class TestInMemorySealedCompressedConformance(_SealedSnapshotConformance):
    variant_name = "sealed_compressed"


async def test_snapshot_survives_restart(tmp_path: Path) -> None:
    """Sessions saved to persistence_path at shutdown are loaded by the next store."""
    path = tmp_path / "snap" / "sessions.json"
    async with InMemorySessionStore(persistence_path=path) as store:
        created = await store.create_session(
            session_object(interactions=2), metadata={"dev_mode": True}, tags=["keep"]
        )
    assert path.exists()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    async with InMemorySessionStore(persistence_path=path) as again:
        loaded = await again.get_session(created.session_id)
    assert loaded is not None
    assert loaded.interactions == created.interactions
    assert loaded.metadata == {"dev_mode": True}
    assert loaded.version == created.version


async def test_snapshot_keeps_read_times(tmp_path: Path) -> None:
    """A read's last_accessed_at is in the snapshot, so idle expiry survives a restart."""
    path = tmp_path / "sessions.json"
    clock = FakeClock()
    config = SessionStoreConfig(clock=clock, idle_timeout=100)
    async with InMemorySessionStore(config, persistence_path=path) as store:
        created = await store.create_session(session_object())
        clock.advance(60)
        assert await store.get_session(created.session_id) is not None
    clock.advance(60)  # 120 s after creation, 60 s after the read
    async with InMemorySessionStore(config, persistence_path=path) as again:
        loaded = await again.get_session(created.session_id)
    assert loaded is not None


async def test_snapshot_timer_writes_periodically(tmp_path: Path) -> None:
    """With persistence_interval the snapshot is also written in the background."""
    path = tmp_path / "sessions.json"
    async with InMemorySessionStore(persistence_path=path, persistence_interval=0.05) as store:
        await store.create_session(session_object())
        await eventually(path.exists)
        stats = await store.get_stats()
        assert stats.backend["snapshots_written"] >= 1


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[]",
        b'{"kind": "something-else", "format": 1, "sessions": []}',
        b'{"kind": "session-persistence-memory-snapshot", "format": 99, "sessions": []}',
        b'{"kind": "session-persistence-memory-snapshot", "format": 1, "sessions": [{"x": 1}]}',
    ],
)
async def test_corrupt_snapshot_is_refused_and_left_alone(tmp_path: Path, content: bytes) -> None:
    """A bad snapshot makes initialize fail with StoreCorruptionError; the file is untouched."""
    path = tmp_path / "sessions.json"
    path.write_bytes(content)
    store = InMemorySessionStore(persistence_path=path)
    with pytest.raises(StoreCorruptionError) as info:
        await store.initialize()
    assert str(path) in str(info.value)
    assert path.read_bytes() == content
    assert not store.is_initialized


async def test_snapshot_with_hostile_session_id_is_refused(tmp_path: Path) -> None:
    """A snapshot naming a session '../../etc/x' is refused."""
    path = tmp_path / "sessions.json"
    async with InMemorySessionStore(persistence_path=path) as store:
        await store.create_session(session_object())
    document = orjson.loads(path.read_bytes())
    document["sessions"][0]["session_id"] = "../../etc/x"
    path.write_bytes(orjson.dumps(document))
    with pytest.raises(StoreCorruptionError, match="invalid session id"):
        await InMemorySessionStore(persistence_path=path).initialize()


async def test_orphan_temp_files_are_removed_at_open(tmp_path: Path) -> None:
    """A temp file left by a crash mid-snapshot is removed at the next initialize."""
    path = tmp_path / "sessions.json"
    orphan = tmp_path / ".sessions.json.0123456789abcdef.tmp"
    orphan.write_bytes(b"half")
    async with InMemorySessionStore(persistence_path=path):
        pass
    assert not orphan.exists()


def test_interval_without_path_is_a_configuration_error() -> None:
    """persistence_interval needs persistence_path."""
    with pytest.raises(ConfigurationError) as info:
        InMemorySessionStore(persistence_interval=10)
    assert info.value.option == "persistence_interval"


async def test_unclosed_store_warns() -> None:
    """A store garbage-collected while open emits ResourceWarning."""
    store = InMemorySessionStore()
    await store.initialize()

    def drop() -> None:
        nonlocal store
        del store
        gc.collect()

    with pytest.warns(ResourceWarning, match="not shut down"):
        drop()
