"""Conformance: forking a session (branching a conversation)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ..errors import InvalidInputError, SessionExistsError, SessionNotFoundError
from ..stores.base import SessionStore
from ._base import FakeClock, StoreTestBase, interaction, session_object


class ForkConformance(StoreTestBase):
    """``fork_session``: a prefix of one consistent version, in a new session."""

    async def test_fork_copies_everything_by_default(self, store: SessionStore) -> None:
        """A fork has the source's ids, interactions, metadata, tags, and forked_from."""
        source = await store.create_session(
            session_object(interactions=3), metadata={"topic": "billing"}, tags=["vip"]
        )
        fork = await store.fork_session(source.session_id)
        assert fork.session_id != source.session_id
        assert fork.version == 1
        assert (fork.processor_id, fork.activity_id, fork.request_id) == (
            source.processor_id,
            source.activity_id,
            source.request_id,
        )
        assert fork.interactions == source.interactions
        assert fork.tags == ["vip"]
        assert fork.metadata == {
            "topic": "billing",
            "forked_from": {
                "session_id": source.session_id,
                "version": source.version,
                "interactions": 3,
            },
        }
        assert await store.require_session(fork.session_id) == fork
        assert (await store.require_session(source.session_id)).version == source.version

    async def test_fork_up_to_and_chosen_id(self, store: SessionStore) -> None:
        """up_to copies the first interactions; new_session_id, metadata and tags apply."""
        source = await store.create_session(session_object(interactions=4))
        await store.append_interactions(source.session_id, interaction("five"))
        fork = await store.fork_session(
            source.session_id, up_to=2, new_session_id="branch-1", metadata={}, tags=["b"]
        )
        assert fork.session_id == "branch-1"
        stored = await store.require_session(source.session_id)
        assert fork.interactions == stored.interactions[:2]
        assert fork.metadata["forked_from"] == {
            "session_id": source.session_id,
            "version": 2,
            "interactions": 2,
        }
        assert fork.tags == ["b"]
        empty = await store.fork_session(source.session_id, up_to=0)
        assert empty.interactions == []
        with pytest.raises(SessionExistsError):
            await store.fork_session(source.session_id, new_session_id="branch-1")

    @pytest.mark.parametrize("bad", [-1, 6, 1.5, True, "2"])
    async def test_bad_up_to_is_refused(self, store: SessionStore, bad: Any) -> None:
        """up_to outside 0..len (or not an int) is an InvalidInputError; nothing is created."""
        source = await store.create_session(session_object(interactions=5))
        with pytest.raises(InvalidInputError):
            await store.fork_session(source.session_id, up_to=bad)
        assert await store.count_sessions() == 1

    async def test_missing_or_expired_source_is_not_found(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        """Forking a session that does not exist, or has expired, raises SessionNotFoundError."""
        with pytest.raises(SessionNotFoundError):
            await store.fork_session("no-such-session")
        source = await store.create_session(session_object(), expires_at=clock.now)
        with pytest.raises(SessionNotFoundError):
            await store.fork_session(source.session_id)

    async def test_fork_during_concurrent_appends_is_a_prefix(self, store: SessionStore) -> None:
        """Forks taken while others append are prefixes of the source, at the version named."""
        source = await store.create_session(session_object())
        forks: list[Any] = []

        async def append(writer: int) -> None:
            for i in range(20):
                await store.append_interactions(source.session_id, interaction(f"{writer}:{i}"))

        async def fork_repeatedly() -> None:
            for _ in range(10):
                forks.append(await store.fork_session(source.session_id))
                await asyncio.sleep(0)

        await asyncio.gather(*(append(w) for w in range(3)), fork_repeatedly(), fork_repeatedly())
        final = await store.require_session(source.session_id)
        assert len(final.interactions) == 60
        for fork in forks:
            origin = fork.metadata["forked_from"]
            count = origin["interactions"]
            assert len(fork.interactions) == count
            assert fork.interactions == final.interactions[:count]
            assert origin["version"] == count + 1  # created with none, one append per version

    async def test_fork_joins_a_transaction(self, store: SessionStore) -> None:
        """Inside a transaction the fork is staged and rolls back with it."""
        source = await store.create_session(session_object(interactions=1))
        with pytest.raises(RuntimeError):
            async with store.transaction():
                await store.append_interactions(source.session_id, interaction("staged"))
                fork = await store.fork_session(source.session_id)
                assert len(fork.interactions) == 2  # the transaction's own view
                raise RuntimeError("roll back")
        assert await store.count_sessions() == 1
