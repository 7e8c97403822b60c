"""Conformance: max_sessions and max_session_bytes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from ..errors import SessionLimitError, SessionTooLargeError
from ..models import SessionFilter
from ._base import FakeClock, StoreTestBase, interaction, session_object


class LimitsConformance(StoreTestBase):
    """The store refuses to grow past its limits, with typed errors, changing nothing."""

    async def test_max_sessions_refuses_when_full(self, open_store: Callable[..., Any]) -> None:
        """At max_sessions live sessions, create raises SessionLimitError."""
        store = await open_store(max_sessions=3)
        for _ in range(3):
            await store.create_session(session_object())
        with pytest.raises(SessionLimitError) as info:
            await store.create_session(session_object())
        assert info.value.limit == 3
        assert await store.count_sessions() == 3

    async def test_max_sessions_cleans_expired_first(
        self, open_store: Callable[..., Any], clock: FakeClock
    ) -> None:
        """A full store removes expired sessions before refusing a create."""
        store = await open_store(max_sessions=2)
        await store.create_session(session_object(), expires_at=clock.now + timedelta(seconds=1))
        await store.create_session(session_object())
        clock.advance(5)
        await store.create_session(session_object())
        assert await store.count_sessions(SessionFilter(include_expired=True)) == 2

    async def test_max_sessions_counts_a_transactions_creates(
        self, open_store: Callable[..., Any]
    ) -> None:
        """Creates staged in one transaction count against the limit; none land if it fails."""
        store = await open_store(max_sessions=2)
        with pytest.raises(SessionLimitError):
            async with store.transaction():
                for _ in range(3):
                    await store.create_session(session_object())
        assert await store.count_sessions() == 0

    async def test_max_session_bytes_on_create_update_and_append(
        self, open_store: Callable[..., Any]
    ) -> None:
        """A session whose encoding would exceed max_session_bytes is refused, unchanged."""
        store = await open_store(max_session_bytes=4096)
        with pytest.raises(SessionTooLargeError) as info:
            await store.create_session(session_object(), metadata={"blob": "x" * 5000})
        assert info.value.limit == 4096
        assert info.value.size > 4096
        created = await store.create_session(session_object(), metadata={"small": 1})
        with pytest.raises(SessionTooLargeError):
            await store.update_session(created.session_id, {"metadata": {"blob": "y" * 5000}})
        with pytest.raises(SessionTooLargeError):
            for _ in range(100):
                await store.append_interactions(created.session_id, interaction("z" * 200))
        fetched = await store.get_session(created.session_id)
        assert fetched is not None
        assert fetched.metadata == {"small": 1}
        assert len(fetched.interactions) < 100
