"""Conformance: sessions under the caller's own ids, and atomic get-or-create."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from ulid import ULID

from ..errors import InvalidSessionIdError, SessionExistsError, TransactionError
from ..models import SessionFilter
from ..stores.base import SessionStore
from ._base import FakeClock, StoreTestBase, interaction, session_object


class KeyedConformance(StoreTestBase):
    """``create_session(session_id=...)`` and ``get_or_create_session``."""

    async def test_caller_id_is_stored_and_returned_as_given(self, store: SessionStore) -> None:
        """A caller's id comes back exactly as given, from create, get and list."""
        created = await store.create_session(session_object(), session_id="chat_42-A")
        assert created.session_id == "chat_42-A"
        assert created.version == 1
        fetched = await store.get_session("chat_42-A")
        assert fetched is not None
        assert fetched.session_id == "chat_42-A"
        assert [s.session_id for s in await store.list_sessions()] == ["chat_42-A"]
        ulid = str(ULID())
        assert (await store.create_session(session_object(), session_id=ulid)).session_id == ulid

    @pytest.mark.parametrize("bad", ["", "a/b", "../x", "a" * 129, "sp ace", 7])
    async def test_bad_caller_id_is_refused(self, store: SessionStore, bad: Any) -> None:
        """An id outside the id rule is an InvalidSessionIdError and stores nothing."""
        with pytest.raises(InvalidSessionIdError):
            await store.create_session(session_object(), session_id=bad)
        with pytest.raises(InvalidSessionIdError):
            await store.get_or_create_session(bad)
        assert await store.count_sessions(SessionFilter(include_expired=True)) == 0

    async def test_taken_id_raises_session_exists(self, store: SessionStore) -> None:
        """Creating under a live session's id raises SessionExistsError and changes nothing."""
        first = await store.create_session(session_object(interactions=1), session_id="taken")
        with pytest.raises(SessionExistsError) as info:
            await store.create_session(session_object(), session_id="taken")
        assert info.value.session_id == "taken"
        assert "get_or_create_session" in str(info.value)
        stored = await store.get_session("taken")
        assert stored is not None
        assert stored.version == first.version
        assert stored.interactions == first.interactions

    async def test_expired_id_is_replaced_with_rising_version(
        self, open_store: Any, clock: FakeClock
    ) -> None:
        """An expired session's id can be created again; its version keeps rising."""
        store: SessionStore = await open_store(default_session_ttl=10.0)
        created_events: list[str] = []
        store.on_session_created(lambda s: created_events.append(s.session_id))
        await store.create_session(session_object(interactions=2), session_id="chat")
        await store.append_interactions("chat", interaction("more"))
        clock.advance(11)
        assert await store.get_session("chat") is None
        again = await store.create_session(session_object(), session_id="chat")
        assert again.version == 3
        assert again.interactions == []
        assert created_events == ["chat", "chat"]
        assert (await store.require_session("chat")).version == 3

    async def test_get_or_create_creates_once_then_gets(self, store: SessionStore) -> None:
        """The first call creates (True); later calls return that session (False)."""
        obj = session_object(interactions=1)
        first, created = await store.get_or_create_session("thread-1", obj, metadata={"k": 1})
        assert created
        assert first.session_id == "thread-1"
        assert first.interactions == obj.interactions
        assert first.metadata == {"k": 1}
        await store.append_interactions("thread-1", interaction("second"))
        again, created_again = await store.get_or_create_session(
            "thread-1", session_object(), metadata={"other": True}
        )
        assert not created_again
        assert again.version == 2
        assert again.metadata == {"k": 1}
        assert len(again.interactions) == 2

    async def test_get_or_create_without_object_uses_documented_defaults(
        self, store: SessionStore
    ) -> None:
        """With no session object: processor "default", activity_id the id (a ULID if one)."""
        plain, _ = await store.get_or_create_session("chat-7")
        assert plain.processor_id == "default"
        assert plain.activity_id == "chat-7"
        assert isinstance(plain.request_id, ULID)
        ulid = ULID()
        keyed, _ = await store.get_or_create_session(str(ulid))
        assert keyed.activity_id == ulid
        assert isinstance(keyed.activity_id, ULID)

    async def test_concurrent_get_or_create_makes_exactly_one(self, store: SessionStore) -> None:
        """100 coroutines with one id: one session, one creator, all see the same session."""
        created_events: list[str] = []
        store.on_session_created(lambda s: created_events.append(s.session_id))
        results = await asyncio.gather(
            *(
                store.get_or_create_session("activity-1", session_object(), metadata={"caller": i})
                for i in range(100)
            )
        )
        assert sum(created for _, created in results) == 1
        assert {session.session_id for session, _ in results} == {"activity-1"}
        winner = next(session for session, created in results if created)
        assert all(session.metadata == winner.metadata for session, _ in results)
        assert await store.count_sessions(SessionFilter(include_expired=True)) == 1
        assert created_events == ["activity-1"]

    async def test_concurrent_lookup_or_create_for_many_chats(self, store: SessionStore) -> None:
        """10 chats, 10 callers each, at once: exactly 10 sessions."""
        chats = [f"chat-{i}" for i in range(10)]
        await asyncio.gather(
            *(store.get_or_create_session(chat) for chat in chats for _ in range(10))
        )
        assert sorted(s.session_id for s in await store.list_sessions()) == sorted(chats)

    async def test_get_or_create_joins_a_transaction(self, store: SessionStore) -> None:
        """Inside a transaction the creation is staged and rolls back with it."""
        with pytest.raises(RuntimeError):
            async with store.transaction():
                _, created = await store.get_or_create_session("tx-chat")
                assert created
                assert await store.has_session("tx-chat")
                _, again = await store.get_or_create_session("tx-chat")
                assert not again
                raise RuntimeError("roll back")
        assert not await store.has_session("tx-chat")

    async def test_transaction_creating_a_taken_id_conflicts(self, store: SessionStore) -> None:
        """Two transactions creating one id: the second to commit fails, nothing is lost."""
        tx_a = await store.begin_transaction()
        tx_b = await store.begin_transaction()
        await tx_a.create_session(session_object(interactions=1), session_id="race")
        await tx_b.create_session(session_object(interactions=2), session_id="race")
        await tx_a.commit()
        with pytest.raises(TransactionError):
            await tx_b.commit()
        stored = await store.require_session("race")
        assert len(stored.interactions) == 1
