"""SessionPersistenceManager: every method, every option's effect, store switches."""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from session_persistence import (
    ConfigurationError,
    DefaultSession,
    FileSystemSessionStore,
    InMemorySessionStore,
    InvalidInputError,
    InvalidUpdateError,
    MigrationError,
    SessionFilter,
    SessionNotFoundError,
    SessionPersistenceConfig,
    SessionPersistenceManager,
    SessionStore,
    SessionStoreConfig,
    SessionTooLargeError,
    SQLiteSessionStore,
    StoreClosedError,
    StoreIOError,
)
from session_persistence.testing import FakeClock, interaction, session_object

EVERYTHING = SessionFilter(include_expired=True)


def memory(**options: Any) -> SessionPersistenceConfig:
    return SessionPersistenceConfig(store_type="memory", **options)


@pytest.fixture
async def manager() -> AsyncIterator[SessionPersistenceManager]:
    """A manager on an in-memory store, background persistence off (tests persist)."""
    async with SessionPersistenceManager(memory(auto_persist_enabled=False)) as opened:
        yield opened


async def version_of(manager: SessionPersistenceManager, session: DefaultSession) -> int:
    assert session.session_id is not None
    header = await manager.get_session_header(session.session_id)
    assert header is not None
    return header.version


async def wait_until_saved(session: DefaultSession, within: float = 60.0) -> None:
    async with asyncio.timeout(within):
        while session.has_unsaved_changes:  # noqa: ASYNC110 - written by background tasks
            await asyncio.sleep(0.01)


def state(session: DefaultSession) -> str:
    return session.state  # a plain str: lets mypy follow a state that changes across awaits


# == lifecycle ===================================================================================


async def test_lifecycle_and_closed_errors(tmp_path: Path) -> None:
    """initialize/shutdown are idempotent; a closed manager raises StoreClosedError."""
    manager = SessionPersistenceManager(
        SessionPersistenceConfig(filesystem_base_dir=tmp_path / "s")
    )
    assert not manager.is_initialized
    with pytest.raises(StoreClosedError):
        _ = manager.store
    with pytest.raises(StoreClosedError):
        await manager.count_sessions()
    await manager.initialize()
    await manager.initialize()
    assert isinstance(manager.store, FileSystemSessionStore)
    await manager.shutdown()
    await manager.shutdown()
    assert not manager.is_initialized
    health = await manager.health_check()
    assert not health.healthy
    with pytest.raises(ConfigurationError):
        SessionPersistenceManager({"store_type": "memory"})  # type: ignore[arg-type]


async def test_shutdown_flushes_and_never_deletes(tmp_path: Path) -> None:
    """Unsaved changes are written at shutdown; reopening finds everything."""
    config = SessionPersistenceConfig(
        filesystem_base_dir=tmp_path, auto_persist_interval=3600, auto_persist_delay=3600
    )
    async with SessionPersistenceManager(config) as manager:
        session = await manager.create_managed_session(session_object())
        for i in range(5):
            session.add_interaction(interaction(f"m{i}"))
        assert session.has_unsaved_changes
    assert not session.has_unsaved_changes
    async with SessionPersistenceManager(config) as manager:
        assert session.session_id is not None
        stored = await manager.get_session(session.session_id)
        assert stored is not None
        assert len(stored.interactions) == 5


async def test_a_custom_store_opened_by_the_user_stays_open() -> None:
    """store_type='custom' uses the instance; the manager closes only what it opened."""
    store = InMemorySessionStore()
    await store.initialize()
    config = SessionPersistenceConfig(store_type="custom", custom_store=store)
    async with SessionPersistenceManager(config) as manager:
        assert manager.store is store
        await manager.create_session(session_object())
    assert store.is_initialized  # not the manager's to close, and nothing was wiped
    assert await store.count_sessions() == 1
    await store.shutdown()
    unopened = InMemorySessionStore()
    async with SessionPersistenceManager(
        SessionPersistenceConfig(store_type="custom", custom_store=unopened)
    ):
        assert unopened.is_initialized
    assert not unopened.is_initialized


# == managed sessions ============================================================================


async def test_create_and_load_managed_sessions(manager: SessionPersistenceManager) -> None:
    """create_managed_session stores at once; load_managed_session returns the same object."""
    session = await manager.create_managed_session(
        session_object("p"), metadata={"k": 1}, tags=["t"], expires_at=None
    )
    assert session.session_id is not None
    stored = await manager.get_session(session.session_id)
    assert stored is not None
    assert (stored.metadata, stored.tags, stored.expires_at) == ({"k": 1}, ["t"], None)
    assert await manager.load_managed_session(session.session_id) is session
    default = await manager.create_managed_session()
    assert default.processor_id == "default"
    other = await manager.create_session(session_object("q", interactions=2))
    loaded = await manager.load_managed_session(other.session_id)
    assert loaded is not None
    assert loaded.interactions == other.interactions
    assert loaded in manager.managed_sessions
    assert await manager.load_managed_session("01JABCDEFGHJKMNPQRSTVWXYZ0") is None


async def test_persist_session_adopts_and_refuses_foreign_sessions(
    manager: SessionPersistenceManager,
) -> None:
    """persist_session writes a session (adopting it); another manager's is refused."""
    session = DefaultSession(session_object(interactions=1))
    session_id = await manager.persist_session(session)
    assert await manager.has_session(session_id)
    assert session in manager.managed_sessions
    with pytest.raises(InvalidInputError):
        await manager.persist_session("not a session")  # type: ignore[arg-type]
    async with SessionPersistenceManager(memory()) as other:
        foreign = DefaultSession(persistence_manager=other)
        with pytest.raises(InvalidInputError, match="another manager"):
            await manager.persist_session(foreign)


async def test_mark_for_persistence_writes_without_auto_persist(
    manager: SessionPersistenceManager,
) -> None:
    """mark_session_for_persistence schedules a write even with auto-persistence off."""
    session = await manager.create_managed_session(session_object(), auto_persist=False)
    session.add_interaction(interaction())
    await asyncio.sleep(0.3)
    assert session.has_unsaved_changes  # nothing writes it on its own
    assert session.session_id is not None
    assert manager.mark_session_for_persistence(session.session_id)
    await wait_until_saved(session)
    assert not manager.mark_session_for_persistence("01JABCDEFGHJKMNPQRSTVWXYZ0")


async def test_unmanage_flushes_or_drops(manager: SessionPersistenceManager) -> None:
    """unmanage_session writes pending changes by default; flush=False drops them."""
    kept = await manager.create_managed_session(session_object())
    dropped = await manager.create_managed_session(session_object())
    for session in (kept, dropped):
        session.add_interaction(interaction())
    assert kept.session_id is not None
    assert dropped.session_id is not None
    assert await manager.unmanage_session(kept.session_id)
    assert await manager.unmanage_session(dropped.session_id, flush=False)
    assert not await manager.unmanage_session(kept.session_id)
    assert manager.managed_sessions == []
    assert await version_of(manager, kept) == 2
    assert await version_of(manager, dropped) == 1


# == queries, summaries, bulk ====================================================================


async def test_require_session_and_require_managed_session(
    manager: SessionPersistenceManager,
) -> None:
    """The manager's require_* return what exists and raise SessionNotFoundError otherwise."""
    stored = await manager.create_session(session_object("r"))
    assert (await manager.require_session(stored.session_id)).processor_id == "r"
    managed = await manager.require_managed_session(stored.session_id, auto_persist=False)
    assert managed.session_id == stored.session_id
    assert await manager.require_managed_session(stored.session_id) is managed
    for call in (manager.require_session, manager.require_managed_session):
        with pytest.raises(SessionNotFoundError):
            await call("01JABCDEFGHJKMNPQRSTVWXYZ0")


async def test_headers_and_history_slices(manager: SessionPersistenceManager) -> None:
    """find_session_headers selects as find_sessions does; get_interactions reads a slice."""
    first = await manager.create_session(session_object("a", interactions=3), tags=["x"])
    await manager.create_session(session_object("b"))
    second = await manager.create_session(session_object("a"), tags=["x"])
    for arguments in ({}, {"processor_id": "a"}, {"tags": ["x"], "limit": 1}):
        headers = await manager.find_session_headers(**arguments)
        sessions = await manager.find_sessions(**arguments)
        assert [h.session_id for h in headers] == [s.session_id for s in sessions]
    found = await manager.find_session_headers(processor_id="a", has_interactions=True)
    assert [(h.session_id, h.interaction_count) for h in found] == [(first.session_id, 3)]
    listed = await manager.list_session_headers(SessionFilter(processor_id="a"))
    assert [h.session_id for h in listed] == [first.session_id, second.session_id]
    tail = await manager.get_interactions(first.session_id, limit=2, newest_first=True)
    assert tail == first.interactions[:0:-1]
    assert await manager.get_interactions(second.session_id) == []
    assert await manager.get_interactions("01JABCDEFGHJKMNPQRSTVWXYZ0") is None
    with pytest.raises(InvalidInputError):
        await manager.get_interactions(first.session_id, offset=-1)


async def test_find_sessions_and_summary() -> None:
    """find_sessions filters and sorts by recency; summaries cover expired sessions too."""
    clock = FakeClock()
    config = memory(
        auto_persist_enabled=False,
        store_config=SessionStoreConfig(default_session_ttl=100, clock=clock),
    )
    async with SessionPersistenceManager(config) as manager:
        old = await manager.create_session(session_object("a", interactions=1), tags=["x"])
        clock.advance(50)
        new = await manager.create_session(session_object("a"), tags=["x"])
        await manager.create_session(session_object("b", interactions=1))
        found = await manager.find_sessions(processor_id="a", tags=["x"])
        assert [s.session_id for s in found] == [new.session_id, old.session_id]
        with_interactions = await manager.find_sessions(processor_id="a", has_interactions=True)
        assert [s.session_id for s in with_interactions] == [old.session_id]
        since = await manager.find_sessions(since=clock.now - timedelta(seconds=1), limit=1)
        assert len(since) == 1
        assert await manager.find_sessions(until=clock.now - timedelta(seconds=60)) == []
        managed = await manager.load_managed_session(new.session_id)
        assert managed is not None
        managed.add_interaction(interaction())
        clock.advance(60)  # `old` is now past its TTL
        summary = await manager.get_session_summary(old.session_id)
        assert summary is not None
        assert summary.is_expired
        assert summary.age == timedelta(seconds=110)
        assert summary.interaction_count == 1
        assert not summary.is_managed
        live = await manager.get_session_summary(new.session_id)
        assert live is not None
        assert live.is_managed
        assert live.has_unsaved_changes
        assert not live.is_expired
        assert live.time_since_update == timedelta(seconds=60)
        assert await manager.get_session_summary("01JABCDEFGHJKMNPQRSTVWXYZ0") is None
        await managed.persist()


async def test_bulk_update_is_all_or_nothing() -> None:
    """bulk_update_sessions updates every match in one transaction, or none of them."""
    config = memory(
        auto_persist_enabled=False, store_config=SessionStoreConfig(max_session_bytes=6000)
    )
    async with SessionPersistenceManager(config) as manager:
        ids = [(await manager.create_session(session_object("p"))).session_id for _ in range(3)]
        await manager.create_session(session_object("q"))
        result = await manager.bulk_update_sessions(
            SessionFilter(processor_id="p"), {"tags": ["migrated"], "metadata": {"v": 2}}
        )
        assert result.updated_count == 3
        assert sorted(result.session_ids) == sorted(ids)
        for session_id in ids:
            stored = await manager.get_session(session_id)
            assert stored is not None
            assert stored.tags == ["migrated"]
        # One session too big for the update: nothing changes anywhere.
        await manager.append_interactions(ids[0], *[interaction("x" * 300) for _ in range(6)])
        before = {s.session_id: s.version for s in await manager.list_sessions()}
        with pytest.raises(SessionTooLargeError):
            await manager.bulk_update_sessions(
                SessionFilter(processor_id="p"), {"metadata": {"blob": "y" * 1500}}
            )
        assert {s.session_id: s.version for s in await manager.list_sessions()} == before
        with pytest.raises(InvalidUpdateError):
            await manager.bulk_update_sessions(SessionFilter(), {"version": 9})
        with pytest.raises(InvalidInputError):
            await manager.bulk_update_sessions({"processor_id": "p"}, {"tags": []})  # type: ignore[arg-type]


async def test_bulk_update_sessions_returns_errors() -> None:
    """Seed 003's bulkUpdateSessions result: errors, one line per session not updated.

    Empty when every session was updated. All-or-nothing by default (a failure raises and
    changes nothing, as above); with atomic=False the sessions that can take the update
    take it, in one transaction, and the others are named in ``errors``.
    """
    config = memory(
        auto_persist_enabled=False, store_config=SessionStoreConfig(max_session_bytes=6000)
    )
    async with SessionPersistenceManager(config) as manager:
        ids = [(await manager.create_session(session_object("p"))).session_id for _ in range(3)]
        done = await manager.bulk_update_sessions(SessionFilter(processor_id="p"), {"tags": ["a"]})
        assert (done.updated_count, done.errors) == (3, [])
        await manager.append_interactions(ids[1], *[interaction("x" * 300) for _ in range(6)])
        big = {"metadata": {"blob": "y" * 1500}}
        partial = await manager.bulk_update_sessions(
            SessionFilter(processor_id="p"), big, atomic=False
        )
        assert partial.updated_count == 2
        assert sorted(partial.session_ids) == sorted([ids[0], ids[2]])
        assert len(partial.errors) == 1
        assert partial.errors[0].startswith(f"{ids[1]}: ")
        assert "max_session_bytes" in partial.errors[0]
        versions = {s.session_id: s.version for s in await manager.list_sessions()}
        assert versions == {ids[0]: 3, ids[1]: 3, ids[2]: 3}  # create, tags, blob / append
        with pytest.raises(InvalidUpdateError):  # a bad update is nobody's error: it raises
            await manager.bulk_update_sessions(SessionFilter(), {"version": 9}, atomic=False)


# == monitoring ==================================================================================


async def test_stats_count_persists_and_errors(
    manager: SessionPersistenceManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """get_stats adds persist counts, last time, errors, managed and unsaved figures."""
    session = await manager.create_managed_session(session_object("p"))
    stats = await manager.get_stats()
    assert (stats.total_sessions, stats.store_type) == (1, "memory")
    assert (stats.persist_count, stats.error_count, stats.last_persist_time) == (0, 0, None)
    session.add_interaction(interaction())
    await session.persist()

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise StoreIOError("disk on fire")

    monkeypatch.setattr(manager.store, "append_interactions", broken)
    session.add_interaction(interaction())
    with pytest.raises(StoreIOError):
        await session.persist()
    stats = await manager.get_stats()
    assert stats.persist_count == 1
    assert stats.error_count == 1
    assert stats.last_persist_time is not None
    assert (stats.managed_sessions, stats.unsaved_sessions) == (1, 1)
    assert stats.sessions_needing_attention == []
    assert stats.auto_persist_enabled is False
    monkeypatch.undo()
    await session.persist()


async def test_health_uses_a_sliding_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """A persist failure makes the manager unhealthy for the error window only."""
    clock = FakeClock()
    config = memory(
        auto_persist_enabled=False,
        store_config=SessionStoreConfig(health_error_window=30, clock=clock),
    )
    async with SessionPersistenceManager(config) as manager:
        session = await manager.create_managed_session(session_object())
        assert (await manager.health_check()).healthy

        async def broken(*args: Any, **kwargs: Any) -> Any:
            raise StoreIOError("disk on fire")

        monkeypatch.setattr(manager.store, "append_interactions", broken)
        session.add_interaction(interaction())
        with pytest.raises(StoreIOError):
            await session.persist()
        health = await manager.health_check()
        assert not health.healthy
        assert "failed persist" in health.issues[0]
        assert health.details["manager_recent_errors"] == 1
        clock.advance(31)
        assert (await manager.health_check()).healthy
        monkeypatch.undo()
        await session.persist()


async def test_sessions_needing_attention_show_in_health(
    manager: SessionPersistenceManager,
) -> None:
    """A managed session whose record was deleted is reported until resolved."""
    session = await manager.create_managed_session(session_object())
    assert session.session_id is not None
    await manager.delete_session(session.session_id)
    assert state(session) == "missing"  # the manager listens to deletions
    health = await manager.health_check()
    assert not health.healthy
    assert "need attention" in health.issues[-1]
    assert (await manager.get_stats()).sessions_needing_attention == [session.session_id]
    await session.persist(recreate=True)
    assert (await manager.health_check()).healthy


async def test_optimize_flushes_then_maintains(manager: SessionPersistenceManager) -> None:
    """optimize() writes unsaved managed sessions, then runs the store's maintenance."""
    session = await manager.create_managed_session(session_object())
    session.add_interaction(interaction())
    result = await manager.optimize()
    assert not session.has_unsaved_changes
    assert result.operations_performed[0] == "wrote unsaved managed sessions"
    assert any("expired" in op for op in result.operations_performed)


# == delegation and events =======================================================================


def test_every_store_method_is_on_the_manager() -> None:
    """Everything public on SessionStore is offered by the manager, with its docs."""
    for name, member in inspect.getmembers(SessionStore):
        if name.startswith("_") or not callable(member) or name in ("is_expired",):
            continue
        assert hasattr(SessionPersistenceManager, name), name
        delegated = getattr(SessionPersistenceManager, name)
        if hasattr(delegated, "__wrapped__"):  # delegated as is, not extended by the manager
            assert delegated.__doc__ == member.__doc__


async def test_delegated_calls_reach_the_store(manager: SessionPersistenceManager) -> None:
    """A sample of delegated methods, transactions and iteration run on the current store."""
    created = await manager.create_session(session_object())
    await manager.append_interactions(created.session_id, interaction())
    async with manager.transaction():
        await manager.update_session(created.session_id, {"tags": ["a"]})
        await manager.create_session(session_object())
    assert await manager.count_sessions() == 2
    assert [s.session_id async for s in manager.iter_sessions()] == [
        created.session_id,
        (await manager.list_sessions())[1].session_id,
    ]
    assert len(await manager.search_sessions("a")) >= 1
    backup = await manager.create_backup()
    assert [b.backup_id for b in await manager.list_backups()] == [backup.backup_id]
    assert await manager.delete_session(created.session_id)


async def test_listeners_follow_store_switches(tmp_path: Path) -> None:
    """Listeners registered on the manager fire on whichever store is current."""
    seen: list[str] = []
    async with SessionPersistenceManager(memory()) as manager:
        unsubscribe = manager.on_session_created(lambda s: seen.append(s.processor_id))
        manager.on_session_updated(lambda new, old: seen.append("updated"))
        manager.on_session_deleted(lambda sid: seen.append("deleted"))
        manager.on_session_expired(lambda s: seen.append("expired"))
        manager.on_backup_created(lambda b: seen.append("backup"))
        await manager.create_session(session_object("one"))
        await manager.update_config(store_type="filesystem", filesystem_base_dir=tmp_path)
        created = await manager.create_session(session_object("two"))
        await manager.update_session(created.session_id, {"tags": ["x"]})
        await manager.create_backup()
        await manager.delete_session(created.session_id)
        unsubscribe()
        await manager.create_session(session_object("three"))
        assert seen == ["one", "two", "updated", "backup", "deleted"]
        with pytest.raises(TypeError):
            manager.on_session_created("not callable")  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="unregister"):
            await manager.update_config(enable_event_listeners=False)


async def test_disabled_event_listeners() -> None:
    """enable_event_listeners=False: no manager listeners, a lost record found at write."""
    async with SessionPersistenceManager(
        memory(enable_event_listeners=False, auto_persist_enabled=False)
    ) as manager:
        with pytest.raises(ConfigurationError) as caught:
            manager.on_session_created(print)
        assert caught.value.option == "enable_event_listeners"
        session = await manager.create_managed_session(session_object())
        assert session.session_id is not None
        await manager.delete_session(session.session_id)
        assert state(session) == "saved"  # nobody told it
        session.add_interaction(interaction())
        with pytest.raises(Exception, match="not found"):
            await session.persist()
        assert state(session) == "missing"
        session.set_persistence_manager(None)


# == auto-persistence ============================================================================


async def test_a_burst_of_100_interactions_becomes_few_writes(tmp_path: Path) -> None:
    """100 interactions added in a burst are all stored, in a handful of writes."""
    config = SessionPersistenceConfig(filesystem_base_dir=tmp_path, auto_persist_delay=0.05)
    async with SessionPersistenceManager(config) as manager:
        session = await manager.create_managed_session(session_object())
        for i in range(100):
            session.add_interaction(interaction(f"m{i}"))
            if i % 10 == 0:
                await asyncio.sleep(0)  # a realistic burst yields now and then
        await wait_until_saved(session)
        writes = await version_of(manager, session) - 1  # every write adds one version
        assert 1 <= writes <= 3
        assert (await manager.get_stats()).persist_count == writes
        assert session.session_id is not None
        stored = await manager.get_session(session.session_id)
        assert stored is not None
        assert [i.request.event["content"] for i in stored.interactions] == [
            f"m{i}" for i in range(100)
        ]


async def test_auto_persist_delay_is_the_debounce_window() -> None:
    """Changes spaced 10 ms apart: one write with a 300 ms window, about one each with none."""
    for delay, expected in ((0.3, range(1, 2)), (0.0, range(3, 6))):
        async with SessionPersistenceManager(memory(auto_persist_delay=delay)) as manager:
            session = await manager.create_managed_session(session_object())
            for i in range(5):
                session.add_interaction(interaction(f"m{i}"))
                await asyncio.sleep(0.01)
            await wait_until_saved(session)
            writes = await version_of(manager, session) - 1
            assert writes in expected


async def test_interval_flush_without_on_interaction() -> None:
    """auto_persist_on_interaction=False: changes wait for the interval flush."""
    config = memory(auto_persist_on_interaction=False, auto_persist_interval=0.2)
    async with SessionPersistenceManager(config) as manager:
        session = await manager.create_managed_session(session_object())
        session.add_interaction(interaction())
        await asyncio.sleep(0.05)
        assert session.has_unsaved_changes  # not prompt
        await wait_until_saved(session)


async def test_on_interaction_is_prompt_with_a_long_interval() -> None:
    """auto_persist_on_interaction=True writes within the delay, not the (long) interval."""
    config = memory(auto_persist_interval=3600, auto_persist_delay=0.01)
    async with SessionPersistenceManager(config) as manager:
        session = await manager.create_managed_session(session_object())
        session.add_interaction(interaction())
        await wait_until_saved(session)  # far below the 3,600 s interval


async def test_auto_persist_disabled_writes_only_on_request() -> None:
    """auto_persist_enabled=False: no background writes; persist() and shutdown still write."""
    config = memory(auto_persist_enabled=False, auto_persist_interval=0.05)
    store = InMemorySessionStore()
    await store.initialize()
    custom = SessionPersistenceConfig(
        store_type="custom",
        custom_store=store,
        auto_persist_enabled=False,
        auto_persist_interval=0.05,
    )
    for cfg in (config, custom):
        async with SessionPersistenceManager(cfg) as manager:
            session = await manager.create_managed_session(session_object())
            session.add_interaction(interaction())
            await asyncio.sleep(0.3)
            assert session.has_unsaved_changes
            assert (await manager.get_stats()).persist_count == 0
        assert not session.has_unsaved_changes  # shutdown wrote it
    assert session.session_id is not None
    stored = await store.get_session(session.session_id)
    assert stored is not None
    assert len(stored.interactions) == 1
    await store.shutdown()


async def test_background_failures_are_retried_and_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failing store is retried with backoff; the change lands once it recovers."""
    async with SessionPersistenceManager(memory(auto_persist_delay=0.01)) as manager:
        session = await manager.create_managed_session(session_object())
        store = manager.store
        real = store.append_interactions
        failures = 3

        async def flaky(*args: Any, **kwargs: Any) -> Any:
            nonlocal failures
            if failures:
                failures -= 1
                raise StoreIOError("transient")
            return await real(*args, **kwargs)

        monkeypatch.setattr(store, "append_interactions", flaky)
        session.add_interaction(interaction("kept"))
        await wait_until_saved(session)
        stats = await manager.get_stats()
        assert stats.error_count == 3
        assert stats.persist_count == 1
        assert session.session_id is not None
        stored = await manager.get_session(session.session_id)
        assert stored is not None
        assert len(stored.interactions) == 1


async def test_store_options_take_effect(tmp_path: Path) -> None:
    """default_session_ttl, auto cleanup, durability, paths: each changes the store opened."""
    clock = FakeClock()
    config = SessionPersistenceConfig(
        store_type="sqlite",
        sqlite_path=tmp_path / "db" / "s.db",
        durability="process",
        store_config=SessionStoreConfig(clock=clock),
        default_session_ttl=10,
        auto_cleanup_enabled=True,
        cleanup_interval=0.05,
    )
    async with SessionPersistenceManager(config) as manager:
        assert isinstance(manager.store, SQLiteSessionStore)
        assert manager.store.durability == "process"
        assert "s.db" in os.listdir(tmp_path / "db")
        created = await manager.create_session(session_object())
        assert created.expires_at == clock.now + timedelta(seconds=10)
        clock.advance(11)
        async with asyncio.timeout(60):
            while await manager.count_sessions(EVERYTHING):  # noqa: ASYNC110 - cleanup timer
                await asyncio.sleep(0.02)
    async with SessionPersistenceManager(
        SessionPersistenceConfig(filesystem_base_dir=tmp_path / "fs", durability="process")
    ) as manager:
        assert isinstance(manager.store, FileSystemSessionStore)
        assert manager.store.durability == "process"
        assert "fs" in os.listdir(tmp_path)


# == update_config and store switches ============================================================


async def test_switching_stores_keeps_every_session(tmp_path: Path) -> None:
    """Memory -> filesystem -> sqlite keeps every session, expired ones included, exactly."""
    clock = FakeClock()
    store_config = SessionStoreConfig(default_session_ttl=100, clock=clock)
    async with SessionPersistenceManager(
        memory(store_config=store_config, auto_persist_enabled=False)
    ) as manager:
        for i in range(20):
            await manager.create_session(
                session_object(f"p{i % 3}", interactions=i % 4), metadata={"i": i}, tags=[f"t{i}"]
            )
        clock.advance(60)
        for _ in range(5):
            await manager.create_session(session_object("late"), expires_at=None)
        clock.advance(60)  # the first 20 are expired now
        managed = await manager.create_managed_session(session_object("managed"))
        managed.add_interaction(interaction("unsaved before the switch"))
        before = [s async for s in manager.iter_sessions(EVERYTHING)]
        assert len(before) == 26
        assert sum(1 for s in before if manager.store.is_expired(s)) == 20

        await manager.update_config(store_type="filesystem", filesystem_base_dir=tmp_path / "fs")
        assert isinstance(manager.store, FileSystemSessionStore)
        await manager.update_config(store_type="sqlite", sqlite_path=tmp_path / "s.db")
        assert isinstance(manager.store, SQLiteSessionStore)
        after = [s async for s in manager.iter_sessions(EVERYTHING)]
        by_id = {s.session_id: s for s in before}
        assert len(after) == 26
        assert set(by_id) == {s.session_id for s in after}
        for session in after:
            if session.session_id == managed.session_id:
                assert len(session.interactions) == 1  # flushed before the switch
            else:
                assert session == by_id[session.session_id]  # every field, exactly
        managed.add_interaction(interaction("after the switch"))
        await managed.persist()
        assert await version_of(manager, managed) == 3
    assert manager.config.store_type == "sqlite"


async def test_a_failed_switch_changes_nothing(tmp_path: Path) -> None:
    """A target too small, or not empty, or unopenable: the old store stays, untouched."""
    async with SessionPersistenceManager(memory(auto_persist_enabled=False)) as manager:
        for _ in range(10):
            await manager.create_session(session_object(interactions=1))
        old_store = manager.store
        before = [s async for s in manager.iter_sessions(EVERYTHING)]
        old_config = manager.config

        small = SessionStoreConfig(max_sessions=5, restore_batch_size=2)
        with pytest.raises(MigrationError) as caught:
            await manager.update_config(
                store_type="sqlite", sqlite_path=tmp_path / "small.db", store_config=small
            )
        assert "sqlite:" in (caught.value.target or "")
        assert manager.store is old_store
        assert manager.config == old_config
        assert [s async for s in manager.iter_sessions(EVERYTHING)] == before
        async with SQLiteSessionStore(tmp_path / "small.db") as left:
            assert await left.count_sessions(EVERYTHING) == 0  # what was copied is gone

        async with FileSystemSessionStore(tmp_path / "busy") as busy:
            await busy.create_session(session_object())
        with pytest.raises(MigrationError, match="already holds 1"):
            await manager.update_config(
                store_type="filesystem", filesystem_base_dir=tmp_path / "busy"
            )
        blocker = tmp_path / "file"
        blocker.write_text("not a directory")
        with pytest.raises(MigrationError, match="cannot open"):
            await manager.update_config(store_type="filesystem", filesystem_base_dir=blocker)
        with pytest.raises(ConfigurationError):
            await manager.update_config(store_type="mongo")
        with pytest.raises(ConfigurationError, match="inside a transaction"):
            async with manager.transaction():
                await manager.update_config(store_type="sqlite", sqlite_path=tmp_path / "t.db")
        assert manager.store is old_store
        assert [s async for s in manager.iter_sessions(EVERYTHING)] == before


async def test_update_config_without_a_store_switch(tmp_path: Path) -> None:
    """Persistence options change in place; a closed manager just takes the new config."""
    manager = SessionPersistenceManager(SessionPersistenceConfig(filesystem_base_dir=tmp_path))
    await manager.update_config(auto_persist_interval=0.05, auto_persist_on_interaction=False)
    async with manager:
        store = manager.store
        session = await manager.create_managed_session(session_object())
        session.add_interaction(interaction())
        await wait_until_saved(session)  # by the 50 ms interval
        await manager.update_config(
            SessionPersistenceConfig(filesystem_base_dir=str(tmp_path), auto_persist_delay=0)
        )
        assert manager.store is store  # same place, same options: no migration
        session.add_interaction(interaction())
        await wait_until_saved(session)


async def test_a_manager_persists_sessions_changed_before_it_opened() -> None:
    """Changes made before initialize() are written once the manager opens."""
    store = InMemorySessionStore()
    await store.initialize()
    stored = await store.create_session(session_object())
    manager = SessionPersistenceManager(
        SessionPersistenceConfig(store_type="custom", custom_store=store, auto_persist_delay=0)
    )
    session = DefaultSession(session_object(), session_id=stored.session_id)
    session.set_persistence_manager(manager, auto_persist=True)
    session.add_interaction(interaction())
    async with manager:
        await wait_until_saved(session)
    await store.shutdown()


async def test_object_passed_in_is_not_aliased(manager: SessionPersistenceManager) -> None:
    """The object given to create_managed_session is copied."""
    obj = session_object(interactions=1)
    session = await manager.create_managed_session(obj)
    obj.interactions.append(interaction("caller"))
    assert len(session.interactions) == 1
