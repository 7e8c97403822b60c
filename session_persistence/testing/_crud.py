"""Conformance: create, read, update, delete, appends, versions, copies and input checks."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from ulid import ULID

from ..errors import (
    InvalidInputError,
    InvalidSessionIdError,
    InvalidUpdateError,
    SerializationError,
    SessionConflictError,
    SessionNotFoundError,
    StoreClosedError,
)
from ..models import Interaction, InteractionMessage, SessionObject, SessionUpdate
from ..stores.base import SessionStore
from ._base import FakeClock, StoreTestBase, interaction, session_object


class CrudConformance(StoreTestBase):
    """Create, get, has, update, delete, append; versions; no aliasing; bad input."""

    async def test_create_returns_version_one_with_generated_ulid(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        """A new session has version 1, a ULID id, and all timestamps set to now."""
        created = await store.create_session(session_object(), metadata={"k": 1}, tags=["t"])
        assert created.version == 1
        assert str(ULID.from_str(created.session_id)) == created.session_id
        assert created.created_at == created.updated_at == created.last_accessed_at == clock.now
        assert created.metadata == {"k": 1}
        assert created.tags == ["t"]

    async def test_ids_are_monotonic(self, store: SessionStore) -> None:
        """Sessions created in a burst get strictly increasing ids."""
        ids = [(await store.create_session(session_object())).session_id for _ in range(50)]
        assert ids == sorted(ids)
        assert len(set(ids)) == 50

    async def test_get_round_trips_every_field(self, store: SessionStore) -> None:
        """What get returns equals what create returned, ULIDs and sets included."""
        obj = session_object(interactions=3)
        created = await store.create_session(obj, metadata={"nested": {"a": [1, 2]}})
        fetched = await store.get_session(created.session_id)
        assert fetched is not None
        assert fetched.interactions == obj.interactions
        assert isinstance(fetched.activity_id, ULID)
        assert fetched.activity_id == obj.activity_id
        assert fetched.interactions[0].request.recipients == {"assistant"}
        assert fetched.metadata == created.metadata
        assert fetched.version == created.version

    async def test_get_missing_returns_none_and_has_is_false(self, store: SessionStore) -> None:
        """A session that never existed is None for get and False for has."""
        assert await store.get_session("01J0000000000000000000MISS") is None
        assert await store.has_session("nothing-here") is False

    async def test_require_session_returns_the_session_or_raises(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        """require_session returns what get_session would, or raises SessionNotFoundError."""
        created = await store.create_session(session_object(interactions=1), expires_at=None)
        required = await store.require_session(created.session_id)
        assert required == await store.get_session(created.session_id)
        with pytest.raises(SessionNotFoundError) as missing:
            await store.require_session("01J0000000000000000000MISS")
        assert missing.value.session_id == "01J0000000000000000000MISS"
        short = await store.create_session(session_object(), expires_at=clock.now + timedelta(1))
        clock.advance(2 * 86400)
        with pytest.raises(SessionNotFoundError):
            await store.require_session(short.session_id)  # expired: invisible, as for get
        with pytest.raises(InvalidSessionIdError):
            await store.require_session("../x")
        async with store.transaction():
            staged = await store.create_session(session_object())
            assert (await store.require_session(staged.session_id)).version == 1

    async def test_returned_sessions_do_not_alias_stored_state(self, store: SessionStore) -> None:
        """Mutating a returned session, or the object passed in, never changes the store."""
        obj = session_object(interactions=1)
        metadata = {"inner": {"x": 1}}
        created = await store.create_session(obj, metadata=metadata, tags=["a"])
        obj.interactions.append(interaction("sneaky"))
        obj.interactions[0].request.event["content"] = "changed"
        metadata["inner"]["x"] = 2
        created.metadata["inner"]["x"] = 3
        created.tags.append("b")
        created.interactions[0].responses.clear()
        fetched = await store.get_session(created.session_id)
        assert fetched is not None
        fetched.interactions[0].request.recipients.add("mallory")  # type: ignore[union-attr]
        again = await store.get_session(created.session_id)
        assert again is not None
        assert len(again.interactions) == 1
        assert again.interactions[0].request.event["content"] == "message 0"
        assert again.interactions[0].request.recipients == {"assistant"}
        assert len(again.interactions[0].responses) == 1
        assert again.metadata == {"inner": {"x": 1}}
        assert again.tags == ["a"]

    async def test_returned_interactions_are_a_list_of_the_callers_own(
        self, store: SessionStore
    ) -> None:
        """Every list operation on a read's interactions works and changes nothing stored."""
        created = await store.create_session(session_object(interactions=3))
        await store.optimize()  # (a store with a read cache serves the next reads from it)
        for use in ("extend self", "iadd self", "slice", "pop", "sort", "reverse", "setslice"):
            got = await store.get_session(created.session_id)
            assert got is not None
            items = got.interactions
            if use == "extend self":
                items.extend(items)
            elif use == "iadd self":
                items += items
            elif use == "slice":
                items[-1:][0].request.event["content"] = "changed"
            elif use == "pop":
                items.pop(0).request.event["content"] = "changed"
            elif use == "sort":
                items.sort(key=lambda i: -len(str(i.request.event)))
            elif use == "reverse":
                items.reverse()
            else:
                items[:] = items[1:]
            for item in items:
                item.request.event["content"] = "changed"
            again = await store.get_session(created.session_id)
            assert again is not None
            assert [i.request.event["content"] for i in again.interactions] == [
                "message 0", "message 1", "message 2"]  # fmt: skip

    async def test_update_bumps_version_and_replaces_fields(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        """Each update bumps the version by one; metadata and tags are replaced."""
        created = await store.create_session(session_object(), metadata={"a": 1}, tags=["x"])
        clock.advance(5)
        updated = await store.update_session(
            created.session_id, {"metadata": {"b": 2}, "tags": ["y"]}
        )
        assert updated.version == 2
        assert updated.metadata == {"b": 2}
        assert updated.tags == ["y"]
        assert updated.updated_at == clock.now
        assert updated.created_at == created.created_at
        again = await store.update_session(created.session_id, SessionUpdate(tags=["z"]))
        assert again.version == 3

    async def test_update_can_merge_metadata(self, store: SessionStore) -> None:
        """With merge_metadata the given keys are merged into the stored metadata."""
        created = await store.create_session(session_object(), metadata={"a": 1, "b": 1})
        updated = await store.update_session(
            created.session_id, {"metadata": {"b": 2, "c": 3}, "merge_metadata": True}
        )
        assert updated.metadata == {"a": 1, "b": 2, "c": 3}

    async def test_update_interactions_and_expiry(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        """An update can replace the interactions and expires_at."""
        created = await store.create_session(session_object(interactions=2))
        when = clock.now + timedelta(days=2)
        updated = await store.update_session(
            created.session_id, {"interactions": [interaction("only")], "expires_at": when}
        )
        assert [i.request.event["content"] for i in updated.interactions] == ["only"]
        assert updated.expires_at == when

    @pytest.mark.parametrize(
        "key", ["session_id", "version", "created_at", "processor_id", "updated_at", "bogus"]
    )
    async def test_update_rejects_forbidden_fields(self, store: SessionStore, key: str) -> None:
        """Updating any field but interactions/metadata/tags/expires_at is refused, unchanged."""
        created = await store.create_session(session_object())
        with pytest.raises(InvalidUpdateError) as info:
            await store.update_session(created.session_id, {key: "x", "tags": ["t"]})
        assert key in info.value.fields
        assert isinstance(info.value, ValueError)
        fetched = await store.get_session(created.session_id)
        assert fetched is not None
        assert fetched.version == 1
        assert fetched.tags == []

    async def test_update_rejects_wrongly_typed_values(self, store: SessionStore) -> None:
        """A wrongly typed value is refused with InvalidUpdateError naming the field."""
        created = await store.create_session(session_object())
        with pytest.raises(InvalidUpdateError) as info:
            await store.update_session(created.session_id, {"tags": "not-a-list"})
        assert info.value.fields == ["tags"]

    async def test_update_missing_session_raises_not_found(self, store: SessionStore) -> None:
        """Updating a session that does not exist raises SessionNotFoundError (a LookupError)."""
        with pytest.raises(SessionNotFoundError) as info:
            await store.update_session("missing", {"tags": []})
        assert isinstance(info.value, LookupError)
        assert info.value.session_id == "missing"

    async def test_expected_version_mismatch_raises_and_changes_nothing(
        self, store: SessionStore
    ) -> None:
        """A stale expected_version raises SessionConflictError with expected and actual."""
        created = await store.create_session(session_object())
        await store.update_session(created.session_id, {"tags": ["v2"]})
        with pytest.raises(SessionConflictError) as info:
            await store.update_session(created.session_id, {"tags": ["stale"]}, expected_version=1)
        assert (info.value.expected, info.value.actual) == (1, 2)
        assert info.value.session_id == created.session_id
        fetched = await store.get_session(created.session_id)
        assert fetched is not None
        assert fetched.tags == ["v2"]
        ok = await store.update_session(created.session_id, {"tags": ["v3"]}, expected_version=2)
        assert ok.version == 3

    async def test_concurrent_expected_version_writers_exactly_one_wins(
        self, store: SessionStore
    ) -> None:
        """Many writers with the same expected version: exactly one succeeds."""
        created = await store.create_session(session_object())

        async def attempt(n: int) -> bool:
            try:
                await store.update_session(
                    created.session_id, {"metadata": {"winner": n}}, expected_version=1
                )
            except SessionConflictError:
                return False
            return True

        results = await asyncio.gather(*(attempt(n) for n in range(20)))
        assert sum(results) == 1
        fetched = await store.get_session(created.session_id)
        assert fetched is not None
        assert fetched.version == 2

    async def test_concurrent_increments_with_retry_lose_no_update(
        self, store: SessionStore
    ) -> None:
        """50 coroutines incrementing a counter with expected_version and retry end exact."""
        created = await store.create_session(session_object(), metadata={"n": 0})

        async def increment() -> None:
            while True:
                current = await store.get_session(created.session_id)
                assert current is not None
                try:
                    await store.update_session(
                        created.session_id,
                        {"metadata": {"n": current.metadata["n"] + 1}},
                        expected_version=current.version,
                    )
                    return
                except SessionConflictError:
                    await asyncio.sleep(0)

        await asyncio.gather(*(increment() for _ in range(50)))
        final = await store.get_session(created.session_id)
        assert final is not None
        assert final.metadata["n"] == 50
        assert final.version == 51

    async def test_concurrent_merges_without_version_lose_nothing(
        self, store: SessionStore
    ) -> None:
        """Concurrent merge_metadata updates without expected_version all land."""
        created = await store.create_session(session_object())
        await asyncio.gather(
            *(
                store.update_session(
                    created.session_id, {"metadata": {f"k{n}": n}, "merge_metadata": True}
                )
                for n in range(30)
            )
        )
        final = await store.get_session(created.session_id)
        assert final is not None
        assert final.metadata == {f"k{n}": n for n in range(30)}
        assert final.version == 31

    async def test_append_adds_in_order_and_bumps_version(self, store: SessionStore) -> None:
        """append_interactions appends in order, bumps the version once per call."""
        created = await store.create_session(session_object(interactions=1))
        header = await store.append_interactions(
            created.session_id, interaction("a"), interaction("b")
        )
        assert header.version == 2
        assert header.interaction_count == 3
        header = await store.append_interactions(created.session_id, interaction("c"))
        assert header.version == 3
        fetched = await store.get_session(created.session_id)
        assert fetched is not None
        contents = [i.request.event["content"] for i in fetched.interactions]
        assert contents == ["message 0", "a", "b", "c"]

    async def test_concurrent_appends_lose_nothing(self, store: SessionStore) -> None:
        """Appends from many coroutines all land, each exactly once."""
        created = await store.create_session(session_object())
        await asyncio.gather(
            *(
                store.append_interactions(created.session_id, interaction(f"m{n}"))
                for n in range(40)
            )
        )
        fetched = await store.get_session(created.session_id)
        assert fetched is not None
        contents = sorted(i.request.event["content"] for i in fetched.interactions)
        assert contents == sorted(f"m{n}" for n in range(40))
        assert fetched.version == 41

    async def test_append_with_stale_version_conflicts(self, store: SessionStore) -> None:
        """append_interactions honours expected_version."""
        created = await store.create_session(session_object())
        await store.append_interactions(created.session_id, interaction())
        with pytest.raises(SessionConflictError):
            await store.append_interactions(created.session_id, interaction(), expected_version=1)

    async def test_append_to_missing_session_raises_not_found(self, store: SessionStore) -> None:
        """Appending to a session that does not exist raises SessionNotFoundError."""
        with pytest.raises(SessionNotFoundError):
            await store.append_interactions("missing", interaction())

    async def test_appended_interactions_are_copied(self, store: SessionStore) -> None:
        """Mutating an interaction after appending it does not change the store."""
        created = await store.create_session(session_object())
        item = interaction("original")
        await store.append_interactions(created.session_id, item)
        item.request.event["content"] = "mutated"
        fetched = await store.get_session(created.session_id)
        assert fetched is not None
        assert fetched.interactions[0].request.event["content"] == "original"

    async def test_delete_returns_whether_it_existed(self, store: SessionStore) -> None:
        """delete_session returns True once, then False; the session is gone."""
        created = await store.create_session(session_object())
        assert await store.delete_session(created.session_id) is True
        assert await store.delete_session(created.session_id) is False
        assert await store.get_session(created.session_id) is None
        assert await store.count_sessions() == 0

    @pytest.mark.parametrize(
        "bad_id",
        ["../x", "a/b", "", "a\x00b", "x" * 10_000, "with space", "dot.dot", "..", "é"],
    )
    async def test_hostile_ids_are_rejected_everywhere(
        self, store: SessionStore, bad_id: str
    ) -> None:
        """Ids that are not ULIDs or [A-Za-z0-9_-]{1,128} raise InvalidSessionIdError."""
        calls = [
            store.get_session(bad_id),
            store.has_session(bad_id),
            store.update_session(bad_id, {"tags": []}),
            store.append_interactions(bad_id, interaction()),
            store.delete_session(bad_id),
            store.set_session_expiration(bad_id, None),
        ]
        for call in calls:
            with pytest.raises(InvalidSessionIdError):
                await call

    async def test_non_string_id_is_rejected(self, store: SessionStore) -> None:
        """A non-str id raises InvalidSessionIdError, a ValueError."""
        with pytest.raises(InvalidSessionIdError) as info:
            await store.get_session(123)  # type: ignore[arg-type]
        assert isinstance(info.value, ValueError)

    async def test_unserializable_value_names_its_path_and_writes_nothing(
        self, store: SessionStore
    ) -> None:
        """An unserializable event raises SerializationError with its path; nothing stored."""
        bad = SessionObject(
            processor_id="p",
            activity_id=ULID(),
            request_id=ULID(),
            interactions=[
                interaction("fine"),
                Interaction(request=InteractionMessage(event={"payload": object()})),
            ],
        )
        with pytest.raises(SerializationError) as info:
            await store.create_session(bad)
        assert info.value.path == "interactions[1].request.event.payload"
        assert await store.count_sessions(None) == 0

    async def test_too_deeply_nested_value_is_a_serialization_error(
        self, store: SessionStore
    ) -> None:
        """A value nested too deeply for JSON raises SerializationError; nothing is stored."""
        deep: dict[str, object] = {}
        cursor = deep
        for _ in range(300):
            cursor["a"] = {}
            cursor = cursor["a"]  # type: ignore[assignment]
        with pytest.raises(SerializationError):
            await store.create_session(session_object(), metadata=deep)
        assert await store.count_sessions() == 0

    async def test_unserializable_update_changes_nothing(self, store: SessionStore) -> None:
        """An update with an unserializable metadata value fails and leaves version 1."""
        created = await store.create_session(session_object(), metadata={"ok": True})
        with pytest.raises(SerializationError) as info:
            await store.update_session(created.session_id, {"metadata": {"bad": {"x": object()}}})
        assert info.value.path == "metadata.bad.x"
        with pytest.raises(SerializationError):
            await store.append_interactions(
                created.session_id, Interaction(request=InteractionMessage(event=object()))
            )
        fetched = await store.get_session(created.session_id)
        assert fetched is not None
        assert fetched.version == 1
        assert fetched.metadata == {"ok": True}

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"metadata": {1: "x"}}, "metadata"),
            ({"tags": "abc"}, "tags"),
            ({"tags": [1]}, "tags"),
            ({"expires_at": "tomorrow"}, "expires_at"),
        ],
    )
    async def test_create_rejects_malformed_arguments(
        self, store: SessionStore, kwargs: dict[str, object], message: str
    ) -> None:
        """Malformed create arguments raise InvalidInputError naming the argument."""
        with pytest.raises(InvalidInputError, match=message):
            await store.create_session(session_object(), **kwargs)  # type: ignore[arg-type]
        assert await store.count_sessions() == 0

    async def test_create_rejects_non_session_object(self, store: SessionStore) -> None:
        """create_session needs a SessionObject with a processor id."""
        with pytest.raises(InvalidInputError):
            await store.create_session({"processor_id": "p"})  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError):
            await store.create_session(SessionObject("", ULID(), ULID()))
        with pytest.raises(InvalidInputError, match="activity_id"):
            await store.create_session(SessionObject("p", 123, ULID()))  # type: ignore[arg-type]

    async def test_closed_store_refuses_calls(self, store: SessionStore) -> None:
        """After shutdown, every call raises StoreClosedError; initialize reopens."""
        created = await store.create_session(session_object())
        await store.shutdown()
        assert store.is_initialized is False
        with pytest.raises(StoreClosedError):
            await store.get_session(created.session_id)
        with pytest.raises(StoreClosedError):
            await store.create_session(session_object())
        await store.initialize()
        assert store.is_initialized is True
