"""``CopyOnRead``: what a read returns never aliases what the store keeps, however it is used."""

from __future__ import annotations

import copy
import dataclasses
import gc
import pickle
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from session_persistence._copy import CopyOnRead, lend_session, no_gc_pauses
from session_persistence.models import Interaction, PersistedSession
from session_persistence.serialization import default_codec
from session_persistence.testing import interaction, session_object


def _kept(count: int = 4) -> list[Interaction]:
    return [interaction(f"turn {n}") for n in range(count)]


def _ids(items: list[Interaction]) -> set[int]:
    return {id(item) for item in items} | {id(item.request.event) for item in items}


USES: dict[str, Callable[[CopyOnRead], Any]] = {
    "index": lambda lent: [lent[0], lent[-1], lent[2]],
    "slice": lambda lent: lent[1:3],
    "iterate": lambda lent: list(iter(lent)),
    "reversed": lambda lent: list(reversed(lent)),
    "list": list,
    "tuple": tuple,
    "sorted key": lambda lent: sorted(lent, key=lambda i: str(i.request.event["content"])),
    "unpack": lambda lent: [*lent],
    "copy method": lambda lent: lent.copy(),
    "copy.copy": copy.copy,
    "copy.deepcopy": copy.deepcopy,
    "pickle": lambda lent: pickle.loads(pickle.dumps(lent)),
    "add": lambda lent: lent + [],  # noqa: RUF005 - the operator is what is tested
    "radd": lambda lent: [] + lent,  # noqa: RUF005
    "mul": lambda lent: lent * 2,
    "pop": lambda lent: [lent.pop(), lent.pop(0)],
    "asdict-like": lambda lent: type(lent)(x for x in lent),
    "for": lambda lent: [item for item in lent],  # noqa: C416 - the for loop is tested
}


@pytest.mark.parametrize("use", sorted(USES))
def test_nothing_handed_out_is_the_stores(use: str) -> None:
    """Every way of getting items out of the list gives copies, equal to the kept ones."""
    kept = _kept()
    snapshot = copy.deepcopy(kept)
    lent = CopyOnRead.lend(kept)
    assert lent == kept
    assert len(lent) == len(kept)
    out = USES[use](lent)
    assert type(out) is not CopyOnRead  # whatever is made from it is a plain list
    items = [
        x for x in (out if isinstance(out, list | tuple) else [out]) if isinstance(x, Interaction)
    ]
    assert items
    assert not _ids(items) & _ids(kept)
    for item in items:
        item.request.event["content"] = "changed"
        item.responses.clear()
    assert kept == snapshot  # the store's objects are untouched


def test_edits_keep_the_marks_in_step() -> None:
    """Appends, inserts, deletes and assignments copy nothing twice and alias nothing."""
    kept = _kept(6)
    lent = CopyOnRead.lend(kept)
    new = interaction("new")
    lent.append(new)
    lent.insert(0, interaction("first"))
    lent.insert(-100, interaction("very first"))
    del lent[3]
    lent[2] = interaction("replaced")
    lent.extend([interaction("x")])
    lent += [interaction("y")]
    lent.remove(kept[4])
    assert lent[-3] is new  # the caller's own item stays what it was
    contents = [item.request.event["content"] for item in lent]
    assert contents == ["very first", "first", "replaced", "turn 2", "turn 3", "turn 5",
                        "new", "x", "y"]  # fmt: skip
    assert not _ids(list(lent)) & _ids(kept)
    lent.clear()
    assert lent == []
    lent.append(new)
    assert lent[0] is new


def test_a_lent_session_is_the_callers() -> None:
    """lend_session copies metadata and tags at once and interactions as they are read."""
    now = datetime(2030, 1, 1, tzinfo=UTC)
    obj = session_object(interactions=3)
    kept = PersistedSession(
        session_id="s", processor_id=obj.processor_id, activity_id=obj.activity_id,
        request_id=obj.request_id, interactions=obj.interactions, created_at=now,
        updated_at=now, expires_at=None, last_accessed_at=now, metadata={"a": [1]},
        tags=["t"], version=1,
    )  # fmt: skip
    lent = lend_session(kept)
    assert lent == kept
    as_dict = dataclasses.asdict(lent)  # (builds type(x)(...) of each list)
    assert type(as_dict["interactions"]) is list
    assert default_codec.dumps(as_dict) == default_codec.dumps(dataclasses.asdict(kept))
    lent.metadata["a"].append(2)
    lent.tags.append("u")
    lent.interactions[0].request.event["content"] = "changed"
    assert kept.metadata == {"a": [1]}
    assert kept.tags == ["t"]
    assert kept.interactions[0].request.event["content"] != "changed"


def test_a_slice_copies_only_its_items() -> None:
    """A history's tail costs its own items, not the whole history."""
    kept = _kept(1000)
    lent = CopyOnRead.lend(kept)
    tail = lent[-3:]
    assert type(tail) is list
    assert [item.request.event["content"] for item in tail] == ["turn 997", "turn 998", "turn 999"]
    assert not _ids(tail) & _ids(kept)
    assert lent._shared is not None
    assert lent._shared.count(0) == 3  # the rest is still the store's, uncopied
    assert lent[::500] == [kept[0], kept[500]]


def test_extending_a_list_with_itself() -> None:
    """Reading itself while extending (which copies the rest first) keeps the marks right."""
    kept = _kept()
    lent = CopyOnRead.lend(kept)
    lent.extend(lent)
    assert len(lent) == 8
    lent += lent
    assert len(lent) == 16
    assert not _ids(list(lent)) & _ids(kept)


@pytest.mark.parametrize("method", ["index", "count", "contains", "eq", "lt"])
def test_comparisons_hand_the_other_operand_copies(method: str) -> None:
    """Comparing calls the other side's __eq__ with our items: they must be copies."""
    kept = _kept()
    lent = CopyOnRead.lend(kept)
    seen: list[object] = []

    class Probe:
        def __eq__(self, other: object) -> bool:
            seen.append(other)
            return False

        def __lt__(self, other: object) -> bool:
            seen.append(other)
            return False

        __gt__ = __lt__
        __hash__ = object.__hash__

    probe: Any = Probe()
    if method == "index":
        with pytest.raises(ValueError, match="not in list"):
            lent.index(probe)
    elif method == "count":
        assert lent.count(probe) == 0
    elif method == "contains":
        assert probe not in lent
    elif method == "eq":
        assert lent != [probe] * len(kept)
    else:
        assert not lent < [probe]
    assert seen
    assert not {id(s) for s in seen} & _ids(kept)


def test_an_item_appended_behind_its_back_is_the_callers() -> None:
    """C code appending without the list's methods (heapq does) leaves an unmarked item."""
    lent = CopyOnRead.lend(_kept(2))
    mine = interaction("mine")
    list.append(lent, mine)
    assert lent[2] is mine
    assert len(list(lent)) == 3


def test_overlapping_gc_pauses_leave_the_collector_on() -> None:
    """The first pause in turns the collector off and the last out back on, in any order."""
    first, second = no_gc_pauses(), no_gc_pauses()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # (the one that turned it off leaves first)
    assert not gc.isenabled()
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_gc_pauses_in_many_threads_leave_the_collector_on() -> None:
    """Four threads pausing 2,000 times each, switching as often as Python lets them."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)

    def worker() -> None:
        for _ in range(2000):
            with no_gc_pauses():
                pass

    try:
        for _ in range(20):
            threads = [threading.Thread(target=worker) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert gc.isenabled()
    finally:
        sys.setswitchinterval(old)
        gc.enable()
