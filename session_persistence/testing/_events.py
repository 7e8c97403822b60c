"""Conformance: event listeners."""

from __future__ import annotations

import logging

import pytest

from ..errors import SessionConflictError
from ..models import PersistedSession
from ..stores.base import SessionStore
from ._base import StoreTestBase, interaction, session_object


class EventConformance(StoreTestBase):
    """Once per committed change, after commit, with copies; errors isolated; unsubscribe."""

    async def test_created_updated_deleted_fire_once_each(self, store: SessionStore) -> None:
        """Each committed change fires its event exactly once, with the right payload."""
        log: list[tuple[str, object]] = []
        store.on_session_created(lambda s: log.append(("created", s.session_id)))
        store.on_session_updated(
            lambda new, old: log.append(("updated", (new.version, old.version)))
        )
        store.on_session_deleted(lambda sid: log.append(("deleted", sid)))
        created = await store.create_session(session_object())
        await store.update_session(created.session_id, {"tags": ["a"]})
        await store.append_interactions(created.session_id, interaction())
        await store.delete_session(created.session_id)
        assert log == [
            ("created", created.session_id),
            ("updated", (2, 1)),
            ("updated", (3, 2)),
            ("deleted", created.session_id),
        ]

    async def test_updated_event_carries_new_and_old_state(self, store: SessionStore) -> None:
        """The updated listener receives the new and the previous session."""
        pairs: list[tuple[PersistedSession, PersistedSession]] = []
        store.on_session_updated(lambda new, old: pairs.append((new, old)))
        created = await store.create_session(session_object(interactions=1))
        await store.append_interactions(created.session_id, interaction("two"))
        new, old = pairs[0]
        assert len(new.interactions) == 2
        assert len(old.interactions) == 1

    async def test_listeners_get_copies(self, store: SessionStore) -> None:
        """A listener mutating its session affects neither other listeners nor the store."""
        seen: list[PersistedSession] = []

        def vandal(session: PersistedSession) -> None:
            session.tags.append("vandalised")
            session.metadata["x"] = "changed"

        store.on_session_created(vandal)
        store.on_session_created(seen.append)
        created = await store.create_session(session_object(), metadata={"x": 1}, tags=["t"])
        assert seen[0].tags == ["t"]
        assert seen[0].metadata == {"x": 1}
        fetched = await store.get_session(created.session_id)
        assert fetched is not None
        assert fetched.tags == ["t"]

    async def test_failing_listener_does_not_fail_the_write(
        self, store: SessionStore, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An exception in a listener is logged; the write and later listeners proceed."""
        after: list[str] = []

        def broken(session: PersistedSession) -> None:
            raise RuntimeError("listener bug")

        async def broken_async(session: PersistedSession) -> None:
            raise ValueError("async listener bug")

        store.on_session_created(broken)
        store.on_session_created(broken_async)
        store.on_session_created(lambda s: after.append(s.session_id))
        with caplog.at_level(logging.ERROR, logger="session_persistence.events"):
            created = await store.create_session(session_object())
        assert after == [created.session_id]
        assert await store.has_session(created.session_id)
        assert "listener bug" in caplog.text

    async def test_async_listeners_are_awaited(self, store: SessionStore) -> None:
        """Coroutine listeners run to completion before the write returns."""
        done: list[str] = []

        async def listener(session_id: str) -> None:
            done.append(session_id)

        store.on_session_deleted(listener)
        created = await store.create_session(session_object())
        await store.delete_session(created.session_id)
        assert done == [created.session_id]

    async def test_unsubscribe_stops_delivery(self, store: SessionStore) -> None:
        """Calling the returned function removes the listener; calling it twice is harmless."""
        seen: list[str] = []
        unsubscribe = store.on_session_created(lambda s: seen.append(s.session_id))
        await store.create_session(session_object())
        unsubscribe()
        unsubscribe()
        await store.create_session(session_object())
        assert len(seen) == 1

    async def test_transaction_fires_net_events(self, store: SessionStore) -> None:
        """A transaction fires one event per session for its net effect."""
        log: list[str] = []
        store.on_session_created(lambda s: log.append("created"))
        store.on_session_updated(
            lambda new, old: log.append(f"updated v{old.version}->v{new.version}")
        )
        existing = await store.create_session(session_object())
        log.clear()
        async with store.transaction():
            temp = await store.create_session(session_object())
            await store.delete_session(temp.session_id)  # created and deleted: no event
            await store.update_session(existing.session_id, {"tags": ["a"]})
            await store.update_session(existing.session_id, {"tags": ["b"]})
        assert log == ["updated v1->v3"]

    async def test_failed_write_fires_nothing(self, store: SessionStore) -> None:
        """A write that fails (conflict) fires no event."""
        log: list[object] = []
        store.on_session_updated(lambda new, old: log.append(new))
        created = await store.create_session(session_object())
        with pytest.raises(SessionConflictError):
            await store.update_session(created.session_id, {"tags": []}, expected_version=9)
        assert log == []
