"""The manager and expiry: sliding expiry keeps a chat alive; an expired one is written back."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from session_persistence import (
    FileSystemSessionStore,
    PersistedSession,
    SessionNotFoundError,
    SessionPersistenceConfig,
    SessionPersistenceManager,
    SessionStoreConfig,
)
from session_persistence.testing import FakeClock, interaction, session_object

Opener = Callable[..., Any]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def open_manager(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Callable[..., Any]]:
    """Open a manager on a filesystem store with a 1 s TTL and the fake clock."""
    opened: list[SessionPersistenceManager] = []

    async def open_(**options: Any) -> SessionPersistenceManager:
        store_options = {"default_session_ttl": 1.0, "clock": clock}
        store_options.update(options.pop("store", {}))
        config = SessionPersistenceConfig(
            store_type="filesystem",
            filesystem_base_dir=tmp_path / f"store-{len(opened)}",
            store_config=SessionStoreConfig(**store_options),
            auto_persist_enabled=False,
            **options,
        )
        manager = SessionPersistenceManager(config)
        await manager.initialize()
        opened.append(manager)
        return manager

    yield open_
    for manager in opened:
        if manager.is_initialized:
            await manager.shutdown()


async def test_a_chat_persisted_every_0_6s_outlives_a_1s_ttl(
    open_manager: Opener, clock: FakeClock
) -> None:
    """Persisting every 0.6 s with a 1 s TTL for 5 s never fails, nor does shutdown."""
    manager: SessionPersistenceManager = await open_manager()
    session = await manager.create_managed_session(session_object())
    recreated: list[str] = []
    manager.on_session_recreated(lambda s: recreated.append(s.session_id))
    for turn in range(9):
        clock.advance(0.6)
        session.add_interaction(interaction(f"turn {turn}"))
        await session.persist()
    assert recreated == []  # it never expired: the writes slid its expiry
    assert session.session_id is not None
    stored = await manager.require_session(session.session_id)
    assert len(stored.interactions) == 9
    session.add_interaction(interaction("last"))
    await manager.shutdown()  # flushes without UnsavedChangesError


async def test_an_expired_managed_session_is_written_back_under_its_id(
    open_manager: Opener, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A record that expired anyway is recreated with the whole local history, with an event."""
    manager: SessionPersistenceManager = await open_manager()
    session = await manager.create_managed_session(
        session_object(interactions=2), expires_at=clock.now + timedelta(seconds=1)
    )
    session_id = session.session_id
    assert session_id is not None
    recreated: list[PersistedSession] = []
    manager.on_session_recreated(recreated.append)
    clock.advance(2)
    assert await manager.get_session(session_id) is None
    session.add_interaction(interaction("after expiry"))
    with caplog.at_level(logging.WARNING):
        assert await session.persist() == session_id
    assert "had expired while in use" in caplog.text
    assert [s.session_id for s in recreated] == [session_id]
    stored = await manager.require_session(session_id)
    assert len(stored.interactions) == 3
    assert stored.expires_at == clock.now + timedelta(seconds=1)
    assert session.state == "saved"


async def test_a_session_cleaned_up_after_expiry_is_written_back(
    open_manager: Opener, clock: FakeClock
) -> None:
    """Even after cleanup deleted the expired record, the next persist writes it back."""
    manager: SessionPersistenceManager = await open_manager()
    session = await manager.create_managed_session(session_object(interactions=1))
    assert session.session_id is not None
    clock.advance(5)
    assert await manager.cleanup_expired_sessions() == 1
    assert session.state == "saved"  # not flagged missing: it expired, it was not deleted
    session.add_interaction(interaction("back"))
    await session.persist()
    stored = await manager.require_session(session.session_id)
    assert len(stored.interactions) == 2


async def test_recreate_expired_off_reports_the_loss(
    open_manager: Opener, clock: FakeClock
) -> None:
    """With recreate_expired=False, persisting to an expired record raises as before."""
    manager: SessionPersistenceManager = await open_manager(recreate_expired=False)
    session = await manager.create_managed_session(session_object())
    clock.advance(2)
    session.add_interaction(interaction())
    with pytest.raises(SessionNotFoundError):
        await session.persist()
    assert session.state == "missing"
    assert session.session_id is not None
    await manager.unmanage_session(session.session_id, flush=False)


async def test_a_deleted_record_is_never_recreated(open_manager: Opener, clock: FakeClock) -> None:
    """A record deleted while live stays deleted: persist raises SessionNotFoundError."""
    manager: SessionPersistenceManager = await open_manager()
    session = await manager.create_managed_session(session_object())
    assert session.session_id is not None
    assert await manager.delete_session(session.session_id)
    session.add_interaction(interaction())
    with pytest.raises(SessionNotFoundError):
        await session.persist()
    assert session.state == "missing"
    await manager.unmanage_session(session.session_id, flush=False)


async def test_a_record_deleted_after_others_slid_it_is_never_recreated(
    open_manager: Opener, clock: FakeClock
) -> None:
    """The expiry this session last saw is stale once other writers slide the record.

    Deleted while live (but after that stale expiry), it must stay deleted.
    """
    manager: SessionPersistenceManager = await open_manager(store={"default_session_ttl": 10.0})
    session = await manager.create_managed_session(session_object())
    session_id = session.session_id
    assert session_id is not None
    store = manager.store
    for _ in range(3):  # another writer keeps the chat alive past what this session saw
        clock.advance(5)
        await store.append_interactions(session_id, interaction("from elsewhere"))
    assert await store.delete_session(session_id)  # a user deletes it while it is live
    session.add_interaction(interaction())
    with pytest.raises(SessionNotFoundError):
        await session.persist()
    assert not await store.has_session(session_id)
    await manager.unmanage_session(session_id, flush=False)


async def test_expiry_mode_reaches_the_store(open_manager: Opener, clock: FakeClock) -> None:
    """expiry_mode="fixed" on the manager makes the store's default expiry fixed."""
    manager: SessionPersistenceManager = await open_manager(expiry_mode="fixed")
    assert manager.store.config.expiry_mode == "fixed"
    session = await manager.create_managed_session(session_object())
    clock.advance(0.6)
    session.add_interaction(interaction())
    await session.persist()
    clock.advance(0.6)
    assert session.session_id is not None
    assert not await manager.has_session(session.session_id)


async def test_a_slid_expiry_survives_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    """The expiry an append moved is what the filesystem store holds after reopening."""
    config = SessionStoreConfig(default_session_ttl=1.0, clock=clock)
    async with FileSystemSessionStore(tmp_path / "fs", config=config) as store:
        created = await store.create_session(session_object())
        clock.advance(0.7)
        header = await store.append_interactions(created.session_id, interaction())
    async with FileSystemSessionStore(tmp_path / "fs", config=config) as store:
        reopened = await store.require_session(created.session_id)
        assert reopened.expires_at == header.expires_at == clock.now + timedelta(seconds=1)
