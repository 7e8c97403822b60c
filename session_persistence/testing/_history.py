"""Conformance: partial history reads (``get_interactions``) and header listings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from ..errors import InvalidInputError, InvalidSessionIdError, StoreClosedError
from ..models import Interaction, SessionFilter, SessionQueryOptions, SessionUpdate
from ..stores.base import SessionStore
from ._base import FakeClock, StoreTestBase, interaction, session_object

_MISSING = "01J0000000000000000000MISS"


def _texts(interactions: Sequence[Interaction] | None) -> list[str] | None:
    if interactions is None:
        return None
    return [item.request.event["content"] for item in interactions]


def _expected(count: int, offset: int, limit: int | None, newest_first: bool) -> list[str]:
    """The slice as SQL's ``ORDER BY seq [DESC] LIMIT limit OFFSET offset`` gives it."""
    texts = [f"message {i}" for i in range(count)]
    if newest_first:
        texts.reverse()
    texts = texts[offset:]
    return texts if limit is None else texts[:limit]


class HistoryConformance(StoreTestBase):
    """Slices of a history read like ``get_session``; header listings match ``list_sessions``."""

    async def test_slices_at_every_edge(self, store: SessionStore) -> None:
        """Every offset/limit/order slice equals the same slice of the whole history."""
        created = await store.create_session(session_object(interactions=7))
        whole = await store.get_interactions(created.session_id)
        assert _texts(whole) == _expected(7, 0, None, False)
        for newest_first in (False, True):
            for offset in (0, 1, 3, 6, 7, 8, 100):
                for limit in (None, 0, 1, 2, 6, 7, 50):
                    got = await store.get_interactions(
                        created.session_id, offset=offset, limit=limit, newest_first=newest_first
                    )
                    assert _texts(got) == _expected(7, offset, limit, newest_first), (
                        offset,
                        limit,
                        newest_first,
                    )

    async def test_equals_what_get_session_returns(self, store: SessionStore) -> None:
        """The interactions are equal to get_session's, field for field (ids, sets, order)."""
        created = await store.create_session(session_object(interactions=4))
        session = await store.require_session(created.session_id)
        assert await store.get_interactions(created.session_id) == session.interactions
        tail = await store.get_interactions(created.session_id, limit=2, newest_first=True)
        assert tail == session.interactions[:-3:-1]

    async def test_empty_history_is_not_a_missing_session(self, store: SessionStore) -> None:
        """An existing session with no interactions gives [], a missing one None."""
        created = await store.create_session(session_object())
        assert await store.get_interactions(created.session_id) == []
        assert await store.get_interactions(created.session_id, newest_first=True, limit=3) == []
        assert await store.get_interactions(_MISSING) is None
        assert await store.get_interactions(_MISSING, limit=1, newest_first=True) is None

    async def test_after_appends(self, store: SessionStore) -> None:
        """Appended interactions (still in a journal, on a store that keeps one) are read."""
        created = await store.create_session(session_object(interactions=2))
        for i in range(2, 6):
            await store.append_interactions(created.session_id, interaction(f"message {i}"))
        await store.append_interactions(
            created.session_id, interaction("message 6"), interaction("message 7")
        )
        assert _texts(await store.get_interactions(created.session_id)) == _expected(
            8, 0, None, False
        )
        tail = await store.get_interactions(created.session_id, limit=3, newest_first=True)
        assert _texts(tail) == ["message 7", "message 6", "message 5"]
        middle = await store.get_interactions(created.session_id, offset=1, limit=3)
        assert _texts(middle) == ["message 1", "message 2", "message 3"]

    async def test_after_an_update_that_rewrote_the_history(self, store: SessionStore) -> None:
        """A rewrite (shorter, then longer) is what the next slice reads."""
        created = await store.create_session(session_object(interactions=6))
        await store.append_interactions(created.session_id, interaction("message 6"))
        shorter = [interaction("message 0"), interaction("rewritten")]
        await store.update_session(created.session_id, {"interactions": shorter})
        assert _texts(await store.get_interactions(created.session_id)) == [
            "message 0",
            "rewritten",
        ]
        assert _texts(await store.get_interactions(created.session_id, offset=1)) == ["rewritten"]
        assert await store.get_interactions(created.session_id, offset=2) == []
        assert _texts(
            await store.get_interactions(created.session_id, limit=1, newest_first=True)
        ) == ["rewritten"]
        longer = [interaction(f"message {i}") for i in range(9)]
        await store.update_session(created.session_id, SessionUpdate(interactions=longer))
        await store.append_interactions(created.session_id, interaction("message 9"))
        for newest_first in (False, True):
            got = await store.get_interactions(
                created.session_id, offset=2, limit=4, newest_first=newest_first
            )
            assert _texts(got) == _expected(10, 2, 4, newest_first)

    async def test_results_are_the_callers_own(self, store: SessionStore) -> None:
        """Changing what was returned changes neither the store nor a later read."""
        created = await store.create_session(session_object(interactions=3))
        got = await store.get_interactions(created.session_id, limit=2, newest_first=True)
        assert got is not None
        got[0].request.event["content"] = "changed"
        got[0].responses.clear()
        got.clear()
        again = await store.get_interactions(created.session_id, limit=2, newest_first=True)
        assert _texts(again) == ["message 2", "message 1"]
        assert again is not None
        assert len(again[0].responses) == 1
        session = await store.require_session(created.session_id)
        assert _texts(session.interactions) == _expected(3, 0, None, False)

    async def test_inside_a_transaction_reads_its_own_writes(self, store: SessionStore) -> None:
        """Inside a transaction, staged appends, rewrites, creates and deletes are seen."""
        kept = await store.create_session(session_object(interactions=2))
        doomed = await store.create_session(session_object(interactions=1))
        async with store.transaction():
            await store.append_interactions(kept.session_id, interaction("message 2"))
            tail = await store.get_interactions(kept.session_id, limit=2, newest_first=True)
            assert _texts(tail) == ["message 2", "message 1"]
            await store.delete_session(doomed.session_id)
            assert await store.get_interactions(doomed.session_id) is None
            new = await store.create_session(session_object(interactions=3))
            assert _texts(await store.get_interactions(new.session_id, offset=2)) == ["message 2"]
            await store.update_session(kept.session_id, {"interactions": []})
            assert await store.get_interactions(kept.session_id) == []
            assert await store.get_interactions(kept.session_id, newest_first=True) == []
        assert await store.get_interactions(kept.session_id) == []
        assert await store.get_interactions(doomed.session_id) is None

    async def test_a_rolled_back_transaction_leaves_the_history(self, store: SessionStore) -> None:
        """What a rolled-back transaction staged is not read after it."""
        created = await store.create_session(session_object(interactions=2))
        with pytest.raises(RuntimeError):
            async with store.transaction():
                await store.append_interactions(created.session_id, interaction("message 2"))
                assert len(await store.get_interactions(created.session_id) or []) == 3
                raise RuntimeError("roll back")
        assert _texts(await store.get_interactions(created.session_id)) == _expected(
            2, 0, None, False
        )

    async def test_expired_session_reads_as_missing(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        """A session past expires_at gives None, as get_session does, until it is revived."""
        created = await store.create_session(session_object(interactions=2), expires_at=clock.now)
        assert await store.get_session(created.session_id) is None
        assert await store.get_interactions(created.session_id) is None
        assert await store.get_interactions(created.session_id, limit=1, newest_first=True) is None
        await store.extend_session_expiration(created.session_id, 60)
        assert len(await store.get_interactions(created.session_id) or []) == 2

    async def test_a_read_is_an_access(
        self, open_store: Callable[..., Any], clock: FakeClock
    ) -> None:
        """Under idle_timeout, reading a slice keeps a session alive as get_session does."""
        store: SessionStore = await open_store(idle_timeout=60, default_session_ttl=None)
        read = await store.create_session(session_object(interactions=3))
        idle = await store.create_session(session_object(interactions=3))
        for _ in range(3):
            clock.advance(40)
            tail = await store.get_interactions(read.session_id, limit=1, newest_first=True)
            assert _texts(tail) == ["message 2"]
        header = await store.get_session_header(read.session_id)
        assert header is not None
        assert header.last_accessed_at == clock.now
        assert header.version == 1  # a read writes nothing
        assert await store.get_interactions(idle.session_id, limit=1) is None
        assert await store.has_session(read.session_id)

    async def test_a_read_does_not_move_a_sliding_expiry(
        self, open_store: Callable[..., Any], clock: FakeClock
    ) -> None:
        """As with get_session, a read neither bumps the version nor slides the expiry."""
        store: SessionStore = await open_store(default_session_ttl=1.0)
        created = await store.create_session(session_object(interactions=2))
        clock.advance(0.5)
        assert len(await store.get_interactions(created.session_id, limit=1) or []) == 1
        header = await store.get_session_header(created.session_id)
        assert header is not None
        assert (header.version, header.expires_at) == (1, created.expires_at)
        clock.advance(0.6)
        assert await store.get_interactions(created.session_id) is None

    @pytest.mark.parametrize(
        ("arguments", "word"),
        [
            ({"offset": -1}, "offset"),
            ({"offset": 1.5}, "offset"),
            ({"offset": True}, "offset"),
            ({"offset": None}, "offset"),
            ({"limit": -1}, "limit"),
            ({"limit": 2.0}, "limit"),
            ({"limit": False}, "limit"),
            ({"limit": "3"}, "limit"),
            ({"newest_first": 1}, "newest_first"),
            ({"newest_first": None}, "newest_first"),
        ],
    )
    async def test_bad_arguments_are_refused(
        self, store: SessionStore, arguments: dict[str, Any], word: str
    ) -> None:
        """A bad offset, limit or order raises InvalidInputError naming it, for any id."""
        created = await store.create_session(session_object(interactions=1))
        for session_id in (created.session_id, _MISSING):
            with pytest.raises(InvalidInputError, match=word):
                await store.get_interactions(session_id, **arguments)
        with pytest.raises(InvalidSessionIdError):
            await store.get_interactions("../escape")

    async def test_closed_store_refuses(self, store: SessionStore) -> None:
        """After shutdown, both reads raise StoreClosedError."""
        created = await store.create_session(session_object())
        await store.shutdown()
        with pytest.raises(StoreClosedError):
            await store.get_interactions(created.session_id)
        with pytest.raises(StoreClosedError):
            await store.list_session_headers()

    async def test_headers_list_what_list_sessions_lists(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        """Same sessions, order and pages as list_sessions; counts and sizes as the header's."""
        ids = []
        for i in range(6):
            created = await store.create_session(
                session_object("even" if i % 2 == 0 else "odd", interactions=i),
                metadata={"i": i},
                tags=["t"] if i < 3 else [],
            )
            ids.append(created.session_id)
            clock.advance(1)
        await store.append_interactions(ids[1], interaction("later"))
        await store.set_session_expiration(ids[5], clock.now)
        filters = [
            None,
            SessionFilter(processor_id="even"),
            SessionFilter(tags=["t"]),
            SessionFilter(has_interactions=True),
            SessionFilter(include_expired=True),
            SessionFilter(metadata={"i": 4}),
        ]
        pages = [
            None,
            SessionQueryOptions(limit=2),
            SessionQueryOptions(offset=1, limit=3, sort_by="updated_at", sort_order="desc"),
            SessionQueryOptions(sort_by="session_id", sort_order="desc"),
        ]
        for flt in filters:
            for options in pages:
                sessions = await store.list_sessions(flt, options)
                headers = await store.list_session_headers(flt, options)
                assert [h.session_id for h in headers] == [s.session_id for s in sessions]
                for header, session in zip(headers, sessions, strict=True):
                    assert header.interaction_count == len(session.interactions)
                    assert header.version == session.version
                    assert header.metadata == session.metadata
                    stored = await store.get_session_header(header.session_id)
                    assert stored is not None
                    assert header.size_bytes == stored.size_bytes > 0

    async def test_headers_inside_a_transaction(self, store: SessionStore) -> None:
        """A transaction's staged creates, appends and deletes show in its header listing."""
        kept = await store.create_session(session_object(interactions=1))
        doomed = await store.create_session(session_object())
        async with store.transaction():
            await store.append_interactions(kept.session_id, interaction("more"))
            await store.delete_session(doomed.session_id)
            new = await store.create_session(session_object(interactions=2))
            headers = {h.session_id: h for h in await store.list_session_headers()}
            assert set(headers) == {kept.session_id, new.session_id}
            assert headers[kept.session_id].interaction_count == 2
            assert headers[new.session_id].interaction_count == 2

    async def test_header_listing_is_not_an_access(
        self, open_store: Callable[..., Any], clock: FakeClock
    ) -> None:
        """Listing headers does not refresh last_accessed_at (idle sessions still expire)."""
        store: SessionStore = await open_store(idle_timeout=60, default_session_ttl=None)
        created = await store.create_session(session_object())
        clock.advance(40)
        assert [h.session_id for h in await store.list_session_headers()] == [created.session_id]
        clock.advance(40)
        assert await store.list_session_headers() == []
        assert await store.get_interactions(created.session_id) is None
