"""DefaultSession: protocol, dirty tracking, append-only writes, conflicts (seed 003 cases)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from ulid import ULID

from session_persistence import (
    DefaultSession,
    Interaction,
    InteractionMessage,
    InvalidInputError,
    InvalidUpdateError,
    SerializationError,
    SessionConflictError,
    SessionFilter,
    SessionNotFoundError,
    SessionObject,
    SessionPersistenceConfig,
    SessionPersistenceManager,
    SessionStoreConfig,
    UnsavedChangesError,
)
from session_persistence.testing import FakeClock, interaction, session_object


@pytest.fixture
async def manager() -> AsyncIterator[SessionPersistenceManager]:
    """A manager on an in-memory store, background persistence off (tests persist)."""
    config = SessionPersistenceConfig(store_type="memory", auto_persist_enabled=False)
    async with SessionPersistenceManager(config) as opened:
        yield opened


def state(session: DefaultSession) -> str:
    return session.state  # a plain str: lets mypy follow a state that changes across awaits


def texts(interactions: list[Any]) -> list[str]:
    return [i.request.event["content"] for i in interactions]


async def stored_texts(manager: SessionPersistenceManager, session_id: str | None) -> list[str]:
    assert session_id is not None
    stored = await manager.get_session(session_id)
    assert stored is not None
    return texts(stored.interactions)


# == seed 003 cases ==============================================================================


def test_persistence_id_is_none_until_persisted_or_given() -> None:
    """A new session has no persistence id; one bound in the constructor reports it."""
    assert DefaultSession().session_id is None
    bound = DefaultSession(session_object(), session_id="01JABCDEFGHJKMNPQRSTVWXYZ0")
    assert bound.session_id == "01JABCDEFGHJKMNPQRSTVWXYZ0"


async def test_persist_without_a_manager_returns_none_and_load_returns_false() -> None:
    """Without a manager, persist() is None and load_from_persistence() is False."""
    session = DefaultSession(session_object(interactions=2))
    assert await session.persist() is None
    assert await session.load_from_persistence("01JABCDEFGHJKMNPQRSTVWXYZ0") is False
    assert session.has_unsaved_changes


async def test_persist_then_load_into_a_fresh_session(manager: SessionPersistenceManager) -> None:
    """A persisted session loads into a fresh DefaultSession with ids, ULIDs and order intact."""
    obj = session_object("weather", interactions=3)
    session = DefaultSession(obj, persistence_manager=manager)
    session_id = await session.persist()
    assert session_id is not None
    assert session.session_id == session_id
    assert not session.has_unsaved_changes

    fresh = DefaultSession(persistence_manager=manager)
    assert await fresh.load_from_persistence(session_id) is True
    assert fresh.processor_id == "weather"
    assert fresh.activity_id == obj.activity_id
    assert isinstance(fresh.request_id, ULID)
    assert fresh.interactions == obj.interactions
    assert fresh.session_id == session_id
    assert not fresh.has_unsaved_changes
    assert await fresh.load_from_persistence("01JABCDEFGHJKMNPQRSTVWXYZ0") is False


async def test_persistence_metadata_and_enhanced_info(manager: SessionPersistenceManager) -> None:
    """get_persistence_metadata reports id, state, version, counts and the stored fields."""
    session = await manager.create_managed_session(
        session_object(), metadata={"user": 7}, tags=["vip"], auto_persist=False
    )
    info = session.get_persistence_metadata()
    assert info["session_id"] == session.session_id
    assert info["state"] == "saved"
    assert info["is_persisted"] is True
    assert info["version"] == 1
    assert info["metadata"] == {"user": 7}
    assert info["tags"] == ["vip"]
    assert info["has_manager"] is True
    assert info["auto_persistence_enabled"] is False
    session.add_interaction(interaction("one"))
    info = session.get_persistence_metadata()
    assert info["state"] == "unsaved"
    assert info["unsaved_interactions"] == 1
    await session.persist()
    info = session.get_persistence_metadata()
    assert info["version"] == 2
    assert info["persist_count"] == 1
    assert info["last_persisted_at"] is not None
    assert info["last_error"] is None


async def test_get_persistence_metadata_carries_the_seed_keys(
    manager: SessionPersistenceManager,
) -> None:
    """Seed 003's getPersistenceMetadata keys: session_type, auto_persistence_enabled, ...

    ... and interactions_count, beside this library's own names for the same values.
    """
    session = DefaultSession(session_object(interactions=2))
    info = session.get_persistence_metadata()
    assert info["session_type"] == "DefaultSession"
    assert info["auto_persistence_enabled"] is False
    assert info["interactions_count"] == info["interaction_count"] == 2
    session.set_persistence_manager(manager, auto_persist=True)
    session.add_interaction(interaction("three"))
    info = session.get_persistence_metadata()
    assert info["auto_persistence_enabled"] is info["auto_persist_enabled"] is True
    assert info["interactions_count"] == 3

    class ChatSession(DefaultSession):
        pass

    assert ChatSession().get_persistence_metadata()["session_type"] == "ChatSession"
    await session.persist()


# == one vocabulary, and the old spellings ========================================================


async def test_old_spellings_still_work_and_warn(manager: SessionPersistenceManager) -> None:
    """Every name replaced by session_id/auto_persist works, with a DeprecationWarning."""
    stored = await manager.create_session(session_object())
    with pytest.warns(DeprecationWarning, match="session_id"):
        bound = DefaultSession(session_object(), persistence_session_id=stored.session_id)
    assert bound.session_id == stored.session_id
    with pytest.warns(DeprecationWarning, match="DefaultSession.session_id"):
        assert bound.persistence_session_id == stored.session_id
    with pytest.warns(DeprecationWarning, match="auto_persist"):
        auto = DefaultSession(persistence_manager=manager, enable_auto_persistence=True)
    assert auto.is_auto_persist_enabled
    with pytest.warns(DeprecationWarning, match="is_auto_persist_enabled"):
        assert auto.is_auto_persistence_enabled
    with pytest.warns(DeprecationWarning, match="set_auto_persist"):
        auto.set_auto_persistence(False)
    assert not auto.is_auto_persist_enabled
    with pytest.warns(DeprecationWarning, match="auto_persist"):
        auto.set_persistence_manager(manager, enable_auto=True)
    assert auto.is_auto_persist_enabled
    info = auto.get_persistence_metadata()
    with pytest.warns(DeprecationWarning, match="'session_id'"):
        assert info["persistence_session_id"] is None
    with pytest.warns(DeprecationWarning, match="'session_id'"):
        assert info.get("persistence_session_id") is None
    assert info["session_id"] is None
    with pytest.warns(DeprecationWarning, match="auto_persist"):
        managed = await manager.create_managed_session(enable_auto_persist=False)
    assert not managed.is_auto_persist_enabled
    assert managed.session_id is not None
    manager_two = managed.session_id
    await manager.unmanage_session(manager_two)
    with pytest.warns(DeprecationWarning, match="auto_persist"):
        loaded = await manager.load_managed_session(manager_two, enable_auto_persist=False)
    assert loaded is not None
    assert not loaded.is_auto_persist_enabled
    auto.set_persistence_manager(None)


# == the Sentient protocol and the local view ====================================================


async def test_session_protocol_and_copies() -> None:
    """processor_id/activity_id/request_id and get_interactions(); nothing aliases the caller."""
    obj = session_object("proc", interactions=2)
    session = DefaultSession(obj)
    obj.interactions[0].request.event["content"] = "changed by caller"
    seen = [i async for i in session.get_interactions()]
    assert texts(seen) == ["message 0", "message 1"]
    seen[0].request.event["content"] = "changed by reader"
    assert texts(session.interactions) == ["message 0", "message 1"]
    assert (session.processor_id, session.activity_id) == ("proc", obj.activity_id)
    assert session.request_id == obj.request_id
    assert session.session_object == SessionObject(
        "proc", obj.activity_id, obj.request_id, session.interactions
    )
    assert "proc" in repr(session)
    default = DefaultSession()
    assert default.processor_id == "default"
    assert isinstance(default.activity_id, ULID)
    with pytest.raises(InvalidInputError):
        DefaultSession({"processor_id": "x"})  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        default.add_interaction("hello")  # type: ignore[arg-type]


def test_remove_clear_and_update_session_object() -> None:
    """Local mutations: remove by index or value, clear, replace fields; bad keys refused."""
    session = DefaultSession(session_object(interactions=4))
    assert session.remove_interaction(0)
    assert not session.remove_interaction(10)
    assert session.remove_interaction(session.interactions[-1])
    assert not session.remove_interaction(interaction("absent"))
    assert texts(session.interactions) == ["message 1", "message 2"]
    session.clear_interactions()
    assert session.interactions == []
    session.update_session_object({"processor_id": "renamed", "interactions": [interaction()]})
    assert session.processor_id == "renamed"
    replacement = session_object("other", interactions=1)
    session.update_session_object(replacement)
    assert session.activity_id == replacement.activity_id
    with pytest.raises(InvalidUpdateError) as caught:
        session.update_session_object({"session_id": "x"})
    assert caught.value.fields == ["session_id"]
    with pytest.raises(InvalidUpdateError):
        session.update_session_object({"interactions": ["not an interaction"]})
    with pytest.raises(InvalidUpdateError):
        session.update_session_object(["processor_id"])  # type: ignore[arg-type]


async def test_ids_of_a_persisted_session_cannot_change(
    manager: SessionPersistenceManager,
) -> None:
    """Changing processor_id of a stored record is refused, not silently dropped."""
    session = DefaultSession(session_object(), persistence_manager=manager)
    await session.persist()
    with pytest.raises(InvalidUpdateError, match="create a new session"):
        session.update_session_object({"processor_id": "else"})
    session.update_session_object({"processor_id": session.processor_id})  # unchanged: fine


# == dirty tracking and what a persist writes ====================================================


async def test_dirty_tracking_and_append_only_writes(
    manager: SessionPersistenceManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only new interactions are appended; a session with nothing new writes nothing."""
    session = DefaultSession(session_object(interactions=50), persistence_manager=manager)
    assert state(session) == "new"
    assert session.has_unsaved_changes
    session_id = await session.persist()
    assert state(session) == "saved"
    calls: list[tuple[str, int]] = []
    store = manager.store
    append, update = store.append_interactions, store.update_session

    async def spy_append(sid: str, *items: Any, **kw: Any) -> Any:
        calls.append(("append", len(items)))
        return await append(sid, *items, **kw)

    async def spy_update(sid: str, updates: Any, **kw: Any) -> Any:
        calls.append(("update", len(updates["interactions"])))
        return await update(sid, updates, **kw)

    monkeypatch.setattr(store, "append_interactions", spy_append)
    monkeypatch.setattr(store, "update_session", spy_update)
    await session.persist()
    assert calls == []  # nothing changed, nothing written
    session.add_interaction(interaction("new 1"))
    session.add_interaction(interaction("new 2"))
    assert session.has_unsaved_changes
    await session.persist()
    assert calls == [("append", 2)]
    session.update_session_object({"interactions": [*session.interactions, interaction("new 3")]})
    await session.persist()
    assert calls[-1] == ("append", 1)
    session.remove_interaction(0)
    await session.persist()
    assert calls[-1] == ("update", 52)
    assert (await stored_texts(manager, session_id))[-1] == "new 3"
    assert len(await stored_texts(manager, session_id)) == 52


async def test_values_that_cannot_be_stored_fail_typed_and_write_nothing(
    manager: SessionPersistenceManager,
) -> None:
    """A looping event is refused when added; an over-long int when persisted; nothing written."""
    session = DefaultSession(session_object(interactions=1), persistence_manager=manager)
    session_id = await session.persist()
    looped: dict[str, Any] = {}
    looped["self"] = looped
    with pytest.raises(SerializationError) as info:
        session.add_interaction(Interaction(request=InteractionMessage(event={"a": looped})))
    assert info.value.path == "interactions[1].request.event.a.self"
    assert not session.has_unsaved_changes
    huge = 10 ** (sys.get_int_max_str_digits() + 10)
    session.add_interaction(Interaction(request=InteractionMessage(event={"n": huge})))
    with pytest.raises(SerializationError) as info:
        await session.persist()
    assert info.value.path == "interactions[1].request.event.n"
    assert session.has_unsaved_changes
    assert session_id is not None
    stored = await manager.get_session(session_id)
    assert stored is not None
    assert stored.version == 1
    assert len(stored.interactions) == 1
    await manager.unmanage_session(session_id, flush=False)


async def test_one_record_per_session(manager: SessionPersistenceManager) -> None:
    """Persisting many times, with changes in between, never creates a second record."""
    session = DefaultSession(session_object(), persistence_manager=manager)
    ids = set()
    for i in range(5):
        session.add_interaction(interaction(f"m{i}"))
        ids.add(await session.persist())
        if i % 2:
            session.remove_interaction(0)
            ids.add(await session.persist())
    assert len(ids) == 1
    assert await manager.count_sessions(SessionFilter(include_expired=True)) == 1


async def test_two_sessions_on_one_record_lose_nothing(
    manager: SessionPersistenceManager,
) -> None:
    """Two DefaultSessions appending to one record concurrently lose nothing, keep order."""
    first = DefaultSession(session_object(), persistence_manager=manager)
    session_id = await first.persist()
    second = DefaultSession(persistence_manager=manager)
    assert session_id is not None
    assert await second.load_from_persistence(session_id)

    async def writer(session: DefaultSession, name: str) -> None:
        for i in range(20):
            session.add_interaction(interaction(f"{name}{i}"))
            await session.persist()
            await asyncio.sleep(0)

    await asyncio.gather(writer(first, "a"), writer(second, "b"))
    stored = await stored_texts(manager, session_id)
    assert sorted(stored) == sorted([f"a{i}" for i in range(20)] + [f"b{i}" for i in range(20)])
    assert [t for t in stored if t[0] == "a"] == [f"a{i}" for i in range(20)]
    await first.load_from_persistence()
    await second.persist()  # nothing new: already in the store's order after its last reload
    assert texts(first.interactions) == stored
    assert texts(second.interactions)[: len(stored)] == stored[: len(second.interactions)]


async def test_additions_while_persisting_are_kept(manager: SessionPersistenceManager) -> None:
    """An interaction added while a persist is in flight stays unsaved, then is written."""
    session = DefaultSession(session_object(), persistence_manager=manager)
    await session.persist()
    session.add_interaction(interaction("first"))
    in_flight = asyncio.ensure_future(session.persist())
    await asyncio.sleep(0)
    session.add_interaction(interaction("second"))
    await in_flight
    await session.persist()
    assert await stored_texts(manager, session.session_id) == ["first", "second"]
    assert not session.has_unsaved_changes


async def test_a_rewrite_meeting_another_writer_is_a_conflict(
    manager: SessionPersistenceManager,
) -> None:
    """remove_interaction after someone else appended: SessionConflictError, nothing lost."""
    session = DefaultSession(session_object(interactions=2), persistence_manager=manager)
    session_id = await session.persist()
    assert session_id is not None
    await manager.append_interactions(session_id, interaction("theirs"))
    session.remove_interaction(0)
    with pytest.raises(SessionConflictError):
        await session.persist()
    assert state(session) == "conflict"
    assert session.has_unsaved_changes
    assert "SessionConflictError" in session.get_persistence_metadata()["last_error"]
    assert await stored_texts(manager, session_id) == ["message 0", "message 1", "theirs"]
    # Resolve by taking the stored state, then redo the change.
    assert await session.load_from_persistence()
    assert state(session) == "saved"
    session.remove_interaction(0)
    await session.persist()
    assert await stored_texts(manager, session_id) == ["message 1", "theirs"]


async def test_a_deleted_record_is_never_silently_recreated(
    manager: SessionPersistenceManager,
) -> None:
    """Persist to a deleted record raises SessionNotFoundError; recreate=True makes one new."""
    session = DefaultSession(session_object(interactions=1), persistence_manager=manager)
    old_id = await session.persist()
    assert old_id is not None
    await manager.delete_session(old_id)
    session.add_interaction(interaction("after delete"))
    for _ in range(2):
        with pytest.raises(SessionNotFoundError):
            await session.persist()
    assert state(session) == "missing"
    assert await manager.count_sessions(SessionFilter(include_expired=True)) == 0
    new_id = await session.persist(recreate=True)
    assert new_id not in (None, old_id)
    assert state(session) == "saved"
    assert await stored_texts(manager, new_id) == ["message 0", "after delete"]
    assert await manager.count_sessions(SessionFilter(include_expired=True)) == 1


async def test_an_expired_record_is_reported_missing_without_recreate_expired() -> None:
    """With recreate_expired off, an expired record is not written to (and no duplicate made)."""
    clock = FakeClock()
    config = SessionPersistenceConfig(
        store_type="memory",
        store_config=SessionStoreConfig(default_session_ttl=60, clock=clock),
        auto_persist_enabled=False,
        recreate_expired=False,
    )
    manager = SessionPersistenceManager(config)
    await manager.initialize()
    session = await manager.create_managed_session(session_object())
    clock.advance(61)
    session.add_interaction(interaction())
    with pytest.raises(SessionNotFoundError):
        await session.persist()
    assert state(session) == "missing"
    assert await manager.count_sessions(SessionFilter(include_expired=True)) == 1
    # Shutdown says which changes it could not save rather than dropping them quietly.
    with pytest.raises(UnsavedChangesError) as caught:
        await manager.shutdown()
    assert caught.value.session_ids == [session.session_id]
    assert not manager.is_initialized


async def test_binding_by_id_checks_the_stored_prefix(manager: SessionPersistenceManager) -> None:
    """A session bound by id appends what follows the stored interactions, or conflicts."""
    stored = await manager.create_session(session_object(interactions=2))
    local = SessionObject(stored.processor_id, stored.activity_id, stored.request_id)
    local.interactions = [*stored.interactions, interaction("local")]
    session = DefaultSession(local, persistence_manager=manager, session_id=stored.session_id)
    assert state(session) == "unsaved"
    await session.persist()
    assert await stored_texts(manager, stored.session_id) == ["message 0", "message 1", "local"]
    stranger = DefaultSession(
        session_object(interactions=1),
        persistence_manager=manager,
        session_id=stored.session_id,
    )
    with pytest.raises(SessionConflictError, match="load_from_persistence"):
        await stranger.persist()
    absent = DefaultSession(
        session_object(interactions=1),
        persistence_manager=manager,
        session_id="01JABCDEFGHJKMNPQRSTVWXYZ0",
    )
    with pytest.raises(SessionNotFoundError):
        await absent.persist()
    empty = DefaultSession(persistence_manager=manager, session_id=stored.session_id)
    assert not empty.has_unsaved_changes
    for failed in (stranger, absent):
        failed.set_persistence_manager(None)  # let go of the unsaveable changes


async def test_auto_persistence_switches(manager: SessionPersistenceManager) -> None:
    """set_auto_persist and set_persistence_manager turn background writes on and off."""
    session = DefaultSession(session_object())
    assert not session.is_auto_persist_enabled
    session.set_auto_persist(True)
    assert not session.is_auto_persist_enabled  # no manager yet
    session.set_persistence_manager(manager, auto_persist=True)
    assert session.is_auto_persist_enabled
    assert session in manager.managed_sessions
    session.set_persistence_manager(None)
    assert session not in manager.managed_sessions
    assert not session.is_auto_persist_enabled
