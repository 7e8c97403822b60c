"""The manager's sessions keyed by the caller's id: create and get-or-create, managed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from session_persistence import (
    DefaultSession,
    InvalidInputError,
    SessionExistsError,
    SessionFilter,
    SessionPersistenceConfig,
    SessionPersistenceManager,
)
from session_persistence.testing import interaction, session_object


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[SessionPersistenceManager]:
    """A manager on a filesystem store, background persistence off (tests persist)."""
    config = SessionPersistenceConfig(
        store_type="filesystem", filesystem_base_dir=tmp_path / "store", auto_persist_enabled=False
    )
    async with SessionPersistenceManager(config) as opened:
        yield opened


async def test_create_managed_session_with_caller_id(manager: SessionPersistenceManager) -> None:
    """create_managed_session(session_id=...) stores under that id; a taken id is refused."""
    session = await manager.create_managed_session(session_object("p"), session_id="chat-1")
    assert session.session_id == "chat-1"
    session.add_interaction(interaction("hi"))
    assert await session.persist() == "chat-1"
    assert len((await manager.require_session("chat-1")).interactions) == 1
    with pytest.raises(SessionExistsError):
        await manager.create_managed_session(session_id="chat-1")


async def test_get_or_create_managed_session(manager: SessionPersistenceManager) -> None:
    """The first call creates the record; later ones return the same managed object."""
    first = await manager.get_or_create_managed_session("thread-9", session_object("p"))
    assert first.session_id == "thread-9"
    assert first.processor_id == "p"
    assert await manager.get_or_create_managed_session("thread-9") is first
    first.add_interaction(interaction("one"))
    await first.persist()
    stored, created = await manager.get_or_create_session("thread-9")
    assert not created
    assert len(stored.interactions) == 1


async def test_concurrent_get_or_create_managed_makes_one(
    manager: SessionPersistenceManager,
) -> None:
    """100 concurrent calls for 10 chats: 10 records, one managed object per chat."""
    chats = [f"chat-{i}" for i in range(10)]
    sessions = await asyncio.gather(
        *(manager.get_or_create_managed_session(chat) for chat in chats for _ in range(10))
    )
    assert await manager.count_sessions(SessionFilter(include_expired=True)) == 10
    by_chat: dict[str | None, set[int]] = {}
    for session in sessions:
        by_chat.setdefault(session.session_id, set()).add(id(session))
    assert sorted(by_chat, key=str) == sorted(chats)
    assert all(len(objects) == 1 for objects in by_chat.values())


async def test_fork_a_default_session_with_unsaved_changes(
    manager: SessionPersistenceManager,
) -> None:
    """DefaultSession.fork persists first, then branches into a new managed session."""
    session = await manager.get_or_create_managed_session("main", session_object("p"))
    session.add_interaction(interaction("one"))
    session.add_interaction(interaction("two"))
    branch = await session.fork(up_to=1, new_session_id="main-branch")
    assert not session.has_unsaved_changes
    assert branch.session_id == "main-branch"
    assert branch in manager.managed_sessions
    assert [i.request.event["content"] for i in branch.interactions] == ["one"]
    branch.add_interaction(interaction("alternative"))
    await branch.persist()
    stored = await manager.require_session("main-branch")
    assert stored.metadata["forked_from"] == {"session_id": "main", "version": 2, "interactions": 1}
    assert len(stored.interactions) == 2
    assert len((await manager.require_session("main")).interactions) == 2
    by_id = await manager.fork_managed_session("main")
    assert len(by_id.interactions) == 2


async def test_fork_needs_a_manager_of_its_own(manager: SessionPersistenceManager) -> None:
    """A session with no manager, or another manager's, cannot be forked through it."""
    with pytest.raises(InvalidInputError):
        await DefaultSession(session_object()).fork()
    async with SessionPersistenceManager(
        SessionPersistenceConfig(store_type="memory", auto_persist_enabled=False)
    ) as other:
        foreign = await other.create_managed_session()
        with pytest.raises(InvalidInputError):
            await manager.fork_managed_session(foreign)
