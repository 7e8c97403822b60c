"""Conformance: expiry is handled the same way by every method; TTL, idle timeout, cleanup."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from ..errors import SessionNotFoundError
from ..models import PersistedSession, SessionFilter
from ..stores.base import SessionStore
from ._base import FakeClock, StoreTestBase, interaction, session_object


class ExpiryConformance(StoreTestBase):
    """Expired sessions are invisible unless asked for; expire once; cleanup; revive."""

    async def test_default_ttl_applies_and_none_never_expires(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        """Without expires_at the default TTL (1 h) applies; expires_at=None never expires."""
        default = await store.create_session(session_object())
        never = await store.create_session(session_object(), expires_at=None)
        assert default.expires_at == clock.now + timedelta(hours=1)
        assert never.expires_at is None

    async def test_ttl_none_means_no_default_expiry(self, open_store: Callable[..., Any]) -> None:
        """default_session_ttl=None creates sessions that never expire."""
        store = await open_store(default_session_ttl=None)
        created = await store.create_session(session_object())
        assert created.expires_at is None

    async def test_expired_sessions_are_invisible_everywhere(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        """At expires_at <= now, get/has/update/append/list/count/search no longer see it."""
        live = await store.create_session(session_object(), tags=["findme"])
        doomed = await store.create_session(
            session_object(), tags=["findme"], expires_at=clock.now + timedelta(seconds=30)
        )
        clock.advance(30)  # exactly at expires_at: expired
        assert await store.get_session(doomed.session_id) is None
        assert await store.has_session(doomed.session_id) is False
        with pytest.raises(SessionNotFoundError):
            await store.update_session(doomed.session_id, {"tags": []})
        with pytest.raises(SessionNotFoundError):
            await store.append_interactions(doomed.session_id, interaction())
        with pytest.raises(SessionNotFoundError):
            await store.refresh_session(doomed.session_id)
        assert [s.session_id for s in await store.list_sessions()] == [live.session_id]
        assert await store.count_sessions() == 1
        assert [s.session_id for s in await store.search_sessions("findme")] == [live.session_id]
        everything = SessionFilter(include_expired=True)
        assert await store.count_sessions(everything) == 2
        assert {s.session_id for s in await store.list_sessions(everything)} == {
            live.session_id,
            doomed.session_id,
        }
        found = await store.search_sessions("findme", include_expired=True)
        assert len(found) == 2
        assert [s.session_id for s in await store.get_expired_sessions()] == [doomed.session_id]

    async def test_expire_sessions_reports_each_once(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        """expire_sessions reports a newly expired session once and fires the event once."""
        fired: list[PersistedSession] = []
        store.on_session_expired(fired.append)
        created = await store.create_session(
            session_object(), expires_at=clock.now + timedelta(seconds=5)
        )
        assert await store.expire_sessions() == []
        clock.advance(5)
        assert await store.expire_sessions() == [created.session_id]
        assert await store.expire_sessions() == []
        assert [s.session_id for s in fired] == [created.session_id]
        # Still stored until cleanup.
        assert await store.count_sessions(SessionFilter(include_expired=True)) == 1

    async def test_cleanup_deletes_expired_and_fires_events(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        """cleanup_expired_sessions deletes only expired sessions and returns the count."""
        deleted: list[str] = []
        expired: list[str] = []
        store.on_session_deleted(deleted.append)
        store.on_session_expired(lambda s: expired.append(s.session_id))
        keep = await store.create_session(session_object(), expires_at=None)
        gone = [
            await store.create_session(
                session_object(), expires_at=clock.now + timedelta(seconds=1)
            )
            for _ in range(3)
        ]
        clock.advance(2)
        assert await store.cleanup_expired_sessions() == 3
        assert sorted(deleted) == sorted(s.session_id for s in gone)
        assert sorted(expired) == sorted(s.session_id for s in gone)
        assert await store.count_sessions(SessionFilter(include_expired=True)) == 1
        assert await store.has_session(keep.session_id)
        assert await store.cleanup_expired_sessions() == 0

    async def test_extend_and_set_expiration_revive(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        """An expired session not yet cleaned up can be revived by extend or set expiration."""
        created = await store.create_session(
            session_object(), expires_at=clock.now + timedelta(seconds=10)
        )
        clock.advance(60)
        assert await store.get_session(created.session_id) is None
        revived = await store.extend_session_expiration(created.session_id, 120)
        assert revived.expires_at == clock.now + timedelta(seconds=120)
        assert revived.version == 2
        assert await store.get_session(created.session_id) is not None
        clock.advance(300)
        assert await store.get_session(created.session_id) is None
        again = await store.set_session_expiration(created.session_id, None)
        assert again.expires_at is None
        assert await store.has_session(created.session_id)

    async def test_extend_live_session_adds_to_current_expiry(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        """Extending a live session adds to its current expiry; never-expiring stays so."""
        created = await store.create_session(
            session_object(), expires_at=clock.now + timedelta(hours=1)
        )
        extended = await store.extend_session_expiration(created.session_id, timedelta(hours=2))
        assert extended.expires_at == clock.now + timedelta(hours=3)
        never = await store.create_session(session_object(), expires_at=None)
        same = await store.extend_session_expiration(never.session_id, 60)
        assert same.expires_at is None
        assert same.version == 1

    async def test_refresh_restarts_ttl(self, store: SessionStore, clock: FakeClock) -> None:
        """refresh_session bumps updated_at and restarts the default TTL."""
        created = await store.create_session(session_object())
        clock.advance(1800)
        refreshed = await store.refresh_session(created.session_id)
        assert refreshed.updated_at == clock.now
        assert refreshed.expires_at == clock.now + timedelta(hours=1)
        assert refreshed.version == 2

    async def test_revived_session_can_expire_and_be_reported_again(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        """A revived session that expires again is reported again."""
        created = await store.create_session(
            session_object(), expires_at=clock.now + timedelta(seconds=1)
        )
        clock.advance(2)
        assert await store.expire_sessions() == [created.session_id]
        await store.extend_session_expiration(created.session_id, 10)
        clock.advance(20)
        assert await store.expire_sessions() == [created.session_id]

    async def test_idle_timeout_expires_unread_sessions(
        self, open_store: Callable[..., Any], clock: FakeClock
    ) -> None:
        """With idle_timeout, a session not read or written for that long is expired."""
        store = await open_store(idle_timeout=60, default_session_ttl=None)
        read = await store.create_session(session_object())
        idle = await store.create_session(session_object())
        for _ in range(3):
            clock.advance(40)
            fetched = await store.get_session(read.session_id)
            assert fetched is not None
            assert fetched.version == 1  # reads do not bump the version
        assert await store.get_session(idle.session_id) is None
        assert await store.count_sessions() == 1
        assert await store.cleanup_expired_sessions() == 1
        assert await store.has_session(read.session_id)

    async def test_expired_session_can_still_be_deleted(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        """delete_session removes an expired session and reports that it existed."""
        created = await store.create_session(session_object(), expires_at=clock.now)
        assert await store.delete_session(created.session_id) is True
        assert await store.count_sessions(SessionFilter(include_expired=True)) == 0
