"""Conformance: expiry that follows use (sliding) and explicit expiry that stays fixed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from ..errors import TransactionError
from ..models import SessionFilter
from ..stores.base import SessionStore
from ._base import FakeClock, StoreTestBase, interaction, session_object


class _TickingClock(FakeClock):
    """A clock that moves a microsecond at every reading, as a real one does."""

    def __call__(self) -> datetime:
        self.now += timedelta(microseconds=1)
        return self.now


class SlidingExpiryConformance(StoreTestBase):
    """Writes move a default-TTL session's expiry; explicit expiry and fixed mode do not."""

    async def test_written_session_outlives_its_ttl_while_idle_one_expires(
        self, open_store: Any, clock: FakeClock
    ) -> None:
        """A session written every 0.6 s with a 1 s TTL lives 5 s; an idle one expires."""
        store: SessionStore = await open_store(default_session_ttl=1.0)
        busy = await store.create_session(session_object())
        idle = await store.create_session(session_object())
        writes: list[Callable[[], Awaitable[object]]] = [
            lambda: store.append_interactions(busy.session_id, interaction("turn")),
            lambda: store.update_session(busy.session_id, {"metadata": {"turn": 1}}),
            lambda: store.update_session(
                busy.session_id, {"metadata": {"more": 2}, "merge_metadata": True}
            ),
        ]
        for step in range(9):  # 9 x 0.6 s = 5.4 s
            clock.advance(0.6)
            await writes[step % len(writes)]()
            assert await store.has_session(busy.session_id)
        assert not await store.has_session(idle.session_id)
        assert await store.get_session(idle.session_id) is None
        stored = await store.require_session(busy.session_id)
        assert stored.expires_at == clock.now + timedelta(seconds=1)
        clock.advance(1.0)
        assert not await store.has_session(busy.session_id)
        expired = await store.list_sessions(SessionFilter(include_expired=True))
        assert {s.session_id for s in expired} == {busy.session_id, idle.session_id}

    async def test_writes_in_a_transaction_slide_too(
        self, open_store: Any, clock: FakeClock
    ) -> None:
        """Appends and updates staged in a transaction move expiry to now + TTL (as staged)."""
        store: SessionStore = await open_store(default_session_ttl=10.0)
        created = await store.create_session(session_object())
        clock.advance(8)
        async with store.transaction():
            await store.append_interactions(created.session_id, interaction("a"))
            await store.update_session(created.session_id, {"tags": ["x"]})
        stored = await store.require_session(created.session_id)
        assert stored.expires_at == clock.now + timedelta(seconds=10)

    async def test_explicit_expiry_stays_fixed(self, open_store: Any, clock: FakeClock) -> None:
        """A session created with expires_at keeps it however often it is written."""
        store: SessionStore = await open_store(default_session_ttl=1.0)
        deadline = clock.now + timedelta(seconds=3)
        created = await store.create_session(session_object(), expires_at=deadline)
        for _ in range(4):
            clock.advance(0.6)
            header = await store.append_interactions(created.session_id, interaction())
            assert header.expires_at == deadline
        clock.advance(0.6)  # 3.0 s
        assert not await store.has_session(created.session_id)

    async def test_set_session_expiration_fixes_a_sliding_session(
        self, open_store: Any, clock: FakeClock
    ) -> None:
        """After set_session_expiration, writes no longer move the expiry."""
        store: SessionStore = await open_store(default_session_ttl=1.0)
        created = await store.create_session(session_object())
        deadline = clock.now + timedelta(seconds=2.5)
        await store.set_session_expiration(created.session_id, deadline)
        for _ in range(3):
            clock.advance(0.6)
            updated = await store.update_session(created.session_id, {"tags": ["t"]})
            assert updated.expires_at == deadline
        clock.advance(0.8)
        assert not await store.has_session(created.session_id)

    async def test_never_expiring_session_stays_so(self, open_store: Any, clock: FakeClock) -> None:
        """A session created with expires_at=None never gets an expiry from a write."""
        store: SessionStore = await open_store(default_session_ttl=1.0)
        created = await store.create_session(session_object(), expires_at=None)
        clock.advance(5)
        header = await store.append_interactions(created.session_id, interaction())
        assert header.expires_at is None

    async def test_fixed_mode_expires_one_ttl_after_creation(
        self, open_store: Any, clock: FakeClock
    ) -> None:
        """With expiry_mode="fixed", writes do not move the default expiry."""
        store: SessionStore = await open_store(default_session_ttl=1.0, expiry_mode="fixed")
        created = await store.create_session(session_object())
        clock.advance(0.6)
        header = await store.append_interactions(created.session_id, interaction())
        assert header.expires_at == created.expires_at
        clock.advance(0.6)
        assert not await store.has_session(created.session_id)

    async def test_reads_do_not_write(self, open_store: Any, clock: FakeClock) -> None:
        """Reading a sliding session neither changes its version nor its expiry."""
        store: SessionStore = await open_store(default_session_ttl=1.0)
        created = await store.create_session(session_object())
        clock.advance(0.5)
        fetched = await store.require_session(created.session_id)
        assert (fetched.version, fetched.expires_at) == (1, created.expires_at)

    async def test_refresh_puts_a_session_on_the_default_ttl(
        self, open_store: Any, clock: FakeClock
    ) -> None:
        """refresh_session restarts the TTL, and later writes then slide it."""
        store: SessionStore = await open_store(default_session_ttl=1.0)
        created = await store.create_session(
            session_object(), expires_at=clock.now + timedelta(seconds=0.5)
        )
        clock.advance(0.4)
        await store.refresh_session(created.session_id)
        clock.advance(0.9)
        await store.append_interactions(created.session_id, interaction())
        stored = await store.require_session(created.session_id)
        assert stored.expires_at == clock.now + timedelta(seconds=1)

    async def test_an_append_moves_the_expiry(self, open_store: Any, clock: FakeClock) -> None:
        """An append (which does not rewrite the history) slides the stored expiry."""
        store: SessionStore = await open_store(default_session_ttl=1.0)
        created = await store.create_session(session_object(interactions=2))
        clock.advance(0.7)
        header = await store.append_interactions(created.session_id, interaction("3"))
        assert header.expires_at == clock.now + timedelta(seconds=1)
        stored = await store.get_session_header(created.session_id)
        assert stored is not None
        assert stored.expires_at == header.expires_at
        clock.advance(0.7)
        session = await store.require_session(created.session_id)
        assert session.expires_at == header.expires_at
        assert len(session.interactions) == 3

    async def test_a_write_staged_before_expiry_does_not_revive_it(
        self, open_store: Any, clock: FakeClock
    ) -> None:
        """A transaction that commits after the session expired fails; it stays expired."""
        store: SessionStore = await open_store(default_session_ttl=10.0)
        created = await store.create_session(session_object())
        clock.advance(9.5)
        tx = await store.begin_transaction()
        await tx.append_interactions(created.session_id, interaction("late"))
        clock.advance(1.0)  # the session expires before the commit
        with pytest.raises(TransactionError):
            await tx.commit()
        assert not await store.has_session(created.session_id)
        assert await store.cleanup_expired_sessions() == 1

    async def test_refresh_keeps_a_session_sliding_with_a_moving_clock(
        self, open_store: Any
    ) -> None:
        """refresh_session reads the clock once: the session still slides afterwards."""
        clock = _TickingClock()
        store: SessionStore = await open_store(default_session_ttl=60.0, clock=clock)
        created = await store.create_session(session_object())
        refreshed = await store.refresh_session(created.session_id)
        assert refreshed.expires_at is not None
        assert refreshed.expires_at - refreshed.updated_at == timedelta(seconds=60)
        clock.advance(30)
        header = await store.append_interactions(created.session_id, interaction())
        assert header.expires_at is not None
        assert header.expires_at - header.updated_at == timedelta(seconds=60)

    async def test_an_append_event_shows_the_slid_expiry(
        self, open_store: Any, clock: FakeClock
    ) -> None:
        """The new state given to on_session_updated after an append has the new expiry."""
        store: SessionStore = await open_store(default_session_ttl=10.0)
        created = await store.create_session(session_object())
        seen: list[Any] = []
        store.on_session_updated(lambda new, old: seen.append(new))
        clock.advance(5)
        header = await store.append_interactions(created.session_id, interaction())
        assert seen
        assert seen[-1].expires_at == header.expires_at == clock.now + timedelta(seconds=10)
