"""Conformance: filters, sorting, pagination, search and iteration."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from ulid import ULID

from ..errors import InvalidInputError
from ..models import (
    Interaction,
    InteractionMessage,
    SessionFilter,
    SessionObject,
    SessionQueryOptions,
)
from ..stores.base import SessionStore
from ._base import FakeClock, StoreTestBase, interaction, session_object


class QueryConformance(StoreTestBase):
    """Every filter field, sort-then-paginate, search over nested metadata."""

    async def _ids(self, store: SessionStore, flt: SessionFilter) -> set[str]:
        return {s.session_id for s in await store.list_sessions(flt)}

    async def test_filter_by_ids_single_and_list(self, store: SessionStore) -> None:
        """processor/activity/request ids filter by one value or any of a list."""
        a = await store.create_session(session_object("p1"))
        b = await store.create_session(session_object("p2"))
        c = await store.create_session(session_object("p3"))
        assert await self._ids(store, SessionFilter(processor_id="p1")) == {a.session_id}
        assert await self._ids(store, SessionFilter(processor_id=["p1", "p3"])) == {
            a.session_id,
            c.session_id,
        }
        assert await self._ids(store, SessionFilter(activity_id=b.activity_id)) == {b.session_id}
        # A ULID and its string form name the same id.
        assert await self._ids(store, SessionFilter(request_id=str(c.request_id))) == {c.session_id}
        assert await self._ids(store, SessionFilter(request_id=[a.request_id, "nope"])) == {
            a.session_id
        }
        assert await store.count_sessions(SessionFilter(processor_id="zzz")) == 0

    async def test_filter_by_time_ranges(self, store: SessionStore, clock: FakeClock) -> None:
        """created/updated/expires after and before are strict bounds."""
        first = await store.create_session(
            session_object(), expires_at=clock.now + timedelta(hours=5)
        )
        t1 = clock.advance(10)
        second = await store.create_session(session_object(), expires_at=None)
        clock.advance(10)
        await store.update_session(first.session_id, {"tags": ["touched"]})
        assert await self._ids(store, SessionFilter(created_after=t1)) == set()
        assert await self._ids(store, SessionFilter(created_before=t1)) == {first.session_id}
        assert await self._ids(store, SessionFilter(created_after=first.created_at)) == {
            second.session_id
        }
        assert await self._ids(store, SessionFilter(updated_after=t1)) == {first.session_id}
        assert await self._ids(store, SessionFilter(updated_before=t1)) == set()
        just_after = t1 + timedelta(seconds=1)
        assert await self._ids(store, SessionFilter(updated_before=just_after)) == {
            second.session_id
        }
        in_two_hours = clock.now + timedelta(hours=2)
        # Never-expiring sessions expire "after" any time and "before" none.
        assert await self._ids(store, SessionFilter(expires_after=in_two_hours)) == {
            first.session_id,
            second.session_id,
        }
        assert await self._ids(
            store, SessionFilter(expires_before=clock.now + timedelta(hours=6))
        ) == {first.session_id}

    async def test_filter_by_interactions(self, store: SessionStore) -> None:
        """has_interactions and interaction_count_min/max select by interaction count."""
        none = await store.create_session(session_object(interactions=0))
        two = await store.create_session(session_object(interactions=2))
        five = await store.create_session(session_object(interactions=5))
        assert await self._ids(store, SessionFilter(has_interactions=False)) == {none.session_id}
        assert await self._ids(store, SessionFilter(has_interactions=True)) == {
            two.session_id,
            five.session_id,
        }
        assert await self._ids(store, SessionFilter(interaction_count_min=2)) == {
            two.session_id,
            five.session_id,
        }
        assert await self._ids(
            store, SessionFilter(interaction_count_min=1, interaction_count_max=4)
        ) == {two.session_id}
        await store.append_interactions(none.session_id, interaction())
        assert await self._ids(store, SessionFilter(interaction_count_max=1)) == {none.session_id}

    async def test_filter_by_nested_metadata_value(self, store: SessionStore) -> None:
        """Every given metadata key must be present and equal, nested values by value."""
        a = await store.create_session(
            session_object(), metadata={"user": {"id": 7, "roles": ["admin"]}, "tier": "gold"}
        )
        await store.create_session(session_object(), metadata={"user": {"id": 8}, "tier": "gold"})
        await store.create_session(session_object(), metadata={"tier": 1})
        flt = SessionFilter(metadata={"user": {"id": 7, "roles": ["admin"]}, "tier": "gold"})
        assert await self._ids(store, flt) == {a.session_id}
        assert await store.count_sessions(SessionFilter(metadata={"tier": "gold"})) == 2
        assert await store.count_sessions(SessionFilter(metadata={"missing": None})) == 0
        # 1 and True, 1 and 1.0 are different values here.
        assert await store.count_sessions(SessionFilter(metadata={"tier": True})) == 0

    async def test_filter_by_tags_any_and_all(self, store: SessionStore) -> None:
        """Filter tags is any-of, tags_all is all-of, and both can combine."""
        a = await store.create_session(session_object(), tags=["red", "big"])
        b = await store.create_session(session_object(), tags=["red"])
        c = await store.create_session(session_object(), tags=["blue", "big"])
        assert await self._ids(store, SessionFilter(tags=["red", "blue"])) == {
            a.session_id,
            b.session_id,
            c.session_id,
        }
        assert await self._ids(store, SessionFilter(tags_all=["red", "big"])) == {a.session_id}
        assert await self._ids(store, SessionFilter(tags=["blue"], tags_all=["big"])) == {
            c.session_id
        }
        assert await self._ids(store, SessionFilter(tags=["green"])) == set()

    async def test_sort_then_paginate(self, store: SessionStore, clock: FakeClock) -> None:
        """Results are sorted over all matches first, then offset and limit apply."""
        created = []
        for n in range(7):
            clock.advance(1)
            created.append(await store.create_session(session_object(), metadata={"n": n}))
        page = await store.list_sessions(
            None, SessionQueryOptions(sort_by="created_at", sort_order="desc", offset=2, limit=3)
        )
        assert [s.metadata["n"] for s in page] == [4, 3, 2]
        clock.advance(1)
        await store.update_session(created[0].session_id, {"tags": ["new"]})
        newest = await store.list_sessions(
            None, SessionQueryOptions(sort_by="updated_at", sort_order="desc", limit=1)
        )
        assert newest[0].session_id == created[0].session_id
        by_id = await store.list_sessions(None, SessionQueryOptions(sort_by="session_id"))
        assert [s.session_id for s in by_id] == sorted(s.session_id for s in created)
        by_activity = await store.list_sessions(None, SessionQueryOptions(sort_by="activity_id"))
        assert [str(s.activity_id) for s in by_activity] == sorted(
            str(s.activity_id) for s in created
        )
        assert await store.list_sessions(None, SessionQueryOptions(offset=10)) == []

    async def test_sort_by_expiry_puts_never_expiring_last(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        """Sorting by expires_at ascending lists never-expiring sessions after dated ones."""
        never = await store.create_session(session_object(), expires_at=None)
        late = await store.create_session(
            session_object(), expires_at=clock.now + timedelta(days=2)
        )
        soon = await store.create_session(
            session_object(), expires_at=clock.now + timedelta(days=1)
        )
        ordered = await store.list_sessions(None, SessionQueryOptions(sort_by="expires_at"))
        assert [s.session_id for s in ordered] == [
            soon.session_id,
            late.session_id,
            never.session_id,
        ]

    @pytest.mark.parametrize(
        "kwargs",
        [{"limit": -1}, {"offset": -2}, {"sort_by": "version"}, {"sort_order": "up"}],
    )
    async def test_bad_query_options_are_rejected(self, kwargs: dict[str, object]) -> None:
        """Invalid options raise InvalidInputError at construction."""
        with pytest.raises(InvalidInputError):
            SessionQueryOptions(**kwargs)  # type: ignore[arg-type]

    async def test_naive_filter_datetime_is_rejected(self) -> None:
        """Filter datetimes must be timezone-aware."""
        with pytest.raises(InvalidInputError):
            SessionFilter(created_after=datetime(2030, 1, 1))

    async def test_search_over_ids_tags_and_nested_metadata(self, store: SessionStore) -> None:
        """search_sessions matches case-insensitively in ids, tags and nested metadata values."""
        a = await store.create_session(
            session_object("Alpha-Processor"), metadata={"user": {"email": "Ada@Example.com"}}
        )
        b = await store.create_session(session_object(), tags=["VIP-customer"])
        c = await store.create_session(session_object(), metadata={"deep": [{"x": ["needle!"]}]})
        assert [s.session_id for s in await store.search_sessions("alpha")] == [a.session_id]
        assert [s.session_id for s in await store.search_sessions("ada@example")] == [a.session_id]
        assert [s.session_id for s in await store.search_sessions("vip")] == [b.session_id]
        assert [s.session_id for s in await store.search_sessions("NEEDLE")] == [c.session_id]
        assert [s.session_id for s in await store.search_sessions(a.session_id.lower())] == [
            a.session_id
        ]
        assert await store.search_sessions("nothing-matches-this") == []

    async def test_search_interactions_only_when_asked(self, store: SessionStore) -> None:
        """Interaction text is searched only with search_interactions=True."""
        obj = SessionObject(
            processor_id="p",
            activity_id=ULID(),
            request_id=ULID(),
            interactions=[],
        )
        created = await store.create_session(obj)
        await store.append_interactions(
            created.session_id,
            interaction("What is the Capital of France?"),
        )
        assert await store.search_sessions("capital of france") == []
        found = await store.search_sessions("capital of france", search_interactions=True)
        assert [s.session_id for s in found] == [created.session_id]
        msg = InteractionMessage(event="x", sender="Agent-Smith")
        other = await store.create_session(session_object())
        await store.append_interactions(other.session_id, Interaction(request=msg))
        found = await store.search_sessions("agent-smith", search_interactions=True)
        assert [s.session_id for s in found] == [other.session_id]

    async def test_search_paginates(self, store: SessionStore) -> None:
        """search_sessions applies sort and limit to its matches."""
        for n in range(5):
            await store.create_session(session_object(), tags=[f"group-{n % 2}"])
        assert len(await store.search_sessions("group", SessionQueryOptions(limit=3))) == 3
        assert len(await store.search_sessions("group-1")) == 2

    async def test_search_rejects_empty_query(self, store: SessionStore) -> None:
        """An empty search query is an error rather than a match-everything."""
        with pytest.raises(InvalidInputError):
            await store.search_sessions("")

    async def test_iter_and_by_processor(self, store: SessionStore) -> None:
        """iter_sessions yields every selected session oldest first; by-processor selects."""
        made = [await store.create_session(session_object(f"p{n % 2}")) for n in range(6)]
        seen = [s.session_id async for s in store.iter_sessions()]
        assert seen == [s.session_id for s in made]
        only = [s.session_id async for s in store.iter_sessions(SessionFilter(processor_id="p1"))]
        assert only == [s.session_id for s in made if s.processor_id == "p1"]
        by_processor = await store.get_sessions_by_processor("p0")
        assert {s.session_id for s in by_processor} == {
            s.session_id for s in made if s.processor_id == "p0"
        }
        assert len(await store.get_active_sessions()) == 6
