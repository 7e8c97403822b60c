"""Conformance: values that cannot be stored are refused with ``SerializationError``.

A value that contains itself, nests deeper than JSON can be written (orjson stops at 254
levels), or is an int too long for Python's int/str conversion limit must fail with a
:class:`~session_persistence.errors.SerializationError` naming where it sits in the session,
never with a ``RecursionError`` or ``ValueError``, and nothing may be written: whichever
way the value enters (create, update, append, a transaction).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest

from ..errors import SerializationError
from ..models import Interaction, InteractionMessage, SessionFilter, SessionObject
from ..stores.base import SessionStore
from ._base import StoreTestBase, interaction, session_object


def _self_dict() -> Any:
    looped: dict[str, Any] = {"x": 1}
    looped["self"] = looped
    return looped


def _self_list() -> Any:
    looped: list[Any] = [1]
    looped.append(looped)
    return looped


def _nested_lists(levels: int) -> Any:
    root: list[Any] = []
    cursor = root
    for _ in range(levels - 1):
        inner: list[Any] = []
        cursor.append(inner)
        cursor = inner
    return root


def _nested_dicts(levels: int) -> Any:
    root: dict[str, Any] = {}
    cursor = root
    for _ in range(levels - 1):
        inner: dict[str, Any] = {}
        cursor["d"] = inner
        cursor = inner
    return root


def _huge_int() -> Any:
    limit = sys.get_int_max_str_digits()
    if limit == 0:
        pytest.skip("this interpreter has no int/str conversion limit")
    return 10 ** (limit + 10)


#: name -> (build the value, a word its error message must contain)
BAD_VALUES: dict[str, tuple[Callable[[], Any], str]] = {
    "self-referencing-dict": (_self_dict, "itself"),
    "self-referencing-list": (_self_list, "itself"),
    "lists-2000-deep": (lambda: _nested_lists(2000), "deep"),
    "dicts-2000-deep": (lambda: _nested_dicts(2000), "deep"),
    "int-beyond-the-digit-limit": (_huge_int, "digits"),
}

bad_value = pytest.mark.parametrize("kind", list(BAD_VALUES))

#: How deep a JSON document may nest: orjson refuses to write deeper ones.
MAX_DEPTH = 254


def _build(kind: str) -> tuple[Any, str]:
    make, word = BAD_VALUES[kind]
    return {"a": {"b": make()}}, word


def _check(error: SerializationError, where: str, word: str) -> None:
    assert error.path.startswith(where), error.path
    assert word in error.message, error.message


def _with_event(event: Any, *, in_response: bool = False) -> Interaction:
    message = InteractionMessage(event=event, sender="user")
    if in_response:
        return Interaction(request=InteractionMessage(event="ok"), responses=[message])
    return Interaction(request=message)


class ValueConformance(StoreTestBase):
    """Self-references, absurd nesting and over-long ints fail typed, with a path, unwritten."""

    @bad_value
    async def test_create_refuses_bad_metadata_and_events(
        self, store: SessionStore, kind: str
    ) -> None:
        """create_session raises SerializationError at the value's path and stores nothing."""
        value, word = _build(kind)
        with pytest.raises(SerializationError) as info:
            await store.create_session(session_object(), metadata=value)
        _check(info.value, "metadata.a.b", word)
        value, word = _build(kind)
        obj = session_object(interactions=1)
        obj.interactions.append(_with_event(value, in_response=True))
        with pytest.raises(SerializationError) as info:
            await store.create_session(obj)
        _check(info.value, "interactions[1].responses[0].event.a.b", word)
        assert await store.count_sessions(SessionFilter(include_expired=True)) == 0

    @bad_value
    async def test_update_and_append_refuse_and_change_nothing(
        self, store: SessionStore, kind: str
    ) -> None:
        """update_session and append_interactions raise at the path; version stays 1."""
        created = await store.create_session(session_object(interactions=2), metadata={"k": 1})
        value, word = _build(kind)
        with pytest.raises(SerializationError) as info:
            await store.update_session(created.session_id, {"metadata": value})
        _check(info.value, "metadata.a.b", word)
        value, word = _build(kind)
        with pytest.raises(SerializationError) as info:
            await store.update_session(
                created.session_id, {"metadata": value, "merge_metadata": True}
            )
        _check(info.value, "metadata.a.b", word)
        value, word = _build(kind)
        with pytest.raises(SerializationError) as info:
            await store.update_session(
                created.session_id, {"interactions": [interaction(), _with_event(value)]}
            )
        _check(info.value, "interactions[1].request.event.a.b", word)
        value, word = _build(kind)
        with pytest.raises(SerializationError) as info:
            await store.append_interactions(created.session_id, interaction(), _with_event(value))
        _check(info.value, "interactions[3].request.event.a.b", word)
        stored = await store.get_session(created.session_id)
        assert stored is not None
        assert stored.version == 1
        assert stored.metadata == {"k": 1}
        assert len(stored.interactions) == 2

    @bad_value
    async def test_transaction_refuses_at_the_call_and_commits_the_rest(
        self, store: SessionStore, kind: str
    ) -> None:
        """Inside a transaction the bad call raises and stages nothing; the rest commits."""
        created = await store.create_session(session_object())
        value, word = _build(kind)
        async with store.transaction() as tx:
            kept = await tx.create_session(session_object(), metadata={"kept": True})
            with pytest.raises(SerializationError) as info:
                await store.create_session(session_object(), metadata=value)
            _check(info.value, "metadata.a.b", word)
            with pytest.raises(SerializationError):
                await tx.append_interactions(created.session_id, _with_event(_build(kind)[0]))
        assert await store.count_sessions() == 2
        assert await store.get_session(kept.session_id) is not None
        stored = await store.get_session(created.session_id)
        assert stored is not None
        assert stored.version == 1
        assert stored.interactions == []

    async def test_deepest_storable_values_still_round_trip(self, store: SessionStore) -> None:
        """Metadata and events nested right up to JSON's depth limit are stored and read back."""
        # A session document is one object; metadata sits in it, an event four levels down.
        metadata = {"m": _nested_dicts(MAX_DEPTH - 2)}
        event = _nested_lists(MAX_DEPTH - 4)
        obj = SessionObject("p", "a", "r", [_with_event(event)])
        created = await store.create_session(obj, metadata=metadata)
        stored = await store.get_session(created.session_id)
        assert stored is not None
        assert stored.metadata == metadata
        assert stored.interactions[0].request.event == event

    async def test_depth_is_judged_where_the_value_lands_in_the_session(
        self, store: SessionStore
    ) -> None:
        """An event one level too deep for the session is refused on append as on create."""
        too_deep = _nested_lists(MAX_DEPTH - 3)  # fits alone, not four levels down in a session
        created = await store.create_session(session_object())
        with pytest.raises(SerializationError) as info:
            await store.append_interactions(created.session_id, _with_event(too_deep))
        assert info.value.path.startswith("interactions[0].request.event[0]")
        with pytest.raises(SerializationError):
            await store.create_session(SessionObject("p", "a", "r", [_with_event(too_deep)]))
        stored = await store.get_session(created.session_id)
        assert stored is not None
        assert stored.version == 1
        assert await store.count_sessions() == 1
