"""Conformance: a Hypothesis state machine driving random operations against a simple model.

Reads are checked too: ``get_interactions`` slices and ``list_session_headers`` against the
model and ``list_sessions``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from ..config import SessionStoreConfig
from ..errors import SessionConflictError, SessionNotFoundError
from ..models import SessionFilter
from ..stores.base import SessionStore
from ._base import StoreTestBase, interaction, session_object

T = TypeVar("T")


@dataclasses.dataclass
class _ModelSession:
    processor_id: str
    contents: list[str]
    metadata: dict[str, int]
    tags: list[str]
    version: int = 1


class _Abort(Exception):
    """Raised inside a transaction block to roll it back."""


class StatefulConformance(StoreTestBase):
    """Random sequences of operations leave the store equal to a dictionary model."""

    #: Subclasses may lower these for slow backends.
    stateful_settings = settings(
        max_examples=25,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )

    async def test_random_operations_match_model(self, tmp_path: Path) -> None:
        """Creates, appends, updates, conflicts, deletes and transactions match the model."""
        machine = _machine_for(self, tmp_path)
        # The machine runs its own event loop, so it runs in a worker thread.
        await asyncio.to_thread(run_state_machine_as_test, machine, settings=self.stateful_settings)


def _machine_for(suite: StoreTestBase, root: Path) -> type[RuleBasedStateMachine]:
    class StoreMachine(RuleBasedStateMachine):
        ids = Bundle("ids")

        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            self.directory = Path(tempfile.mkdtemp(dir=root))
            self.store: SessionStore = suite.make_store(
                SessionStoreConfig(default_session_ttl=None), self.directory
            )
            self.run(self.store.initialize())
            self.model: dict[str, _ModelSession] = {}
            self.counter = 0

        def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
            return self.loop.run_until_complete(coroutine)

        def teardown(self) -> None:
            self.run(self.store.shutdown())
            self.loop.close()
            shutil.rmtree(self.directory, ignore_errors=True)

        def _text(self) -> str:
            self.counter += 1
            return f"m{self.counter}"

        @rule(
            target=ids,
            processor=st.sampled_from(["p1", "p2"]),
            tags=st.lists(st.sampled_from(["a", "b", "c"]), max_size=2),
            count=st.integers(0, 2),
        )
        def create(self, processor: str, tags: list[str], count: int) -> str:
            obj = session_object(processor)
            obj.interactions = [interaction(self._text()) for _ in range(count)]
            created = self.run(self.store.create_session(obj, tags=tags, metadata={}))
            self.model[created.session_id] = _ModelSession(
                processor, [i.request.event["content"] for i in obj.interactions], {}, list(tags)
            )
            return created.session_id

        @rule(session_id=ids, count=st.integers(1, 3))
        def append(self, session_id: str, count: int) -> None:
            items = [interaction(self._text()) for _ in range(count)]
            if session_id not in self.model:
                with pytest.raises(SessionNotFoundError):
                    self.run(self.store.append_interactions(session_id, *items))
                return
            header = self.run(self.store.append_interactions(session_id, *items))
            model = self.model[session_id]
            model.contents += [i.request.event["content"] for i in items]
            model.version += 1
            assert header.version == model.version
            assert header.interaction_count == len(model.contents)

        @rule(
            session_id=ids,
            metadata=st.dictionaries(st.sampled_from(["x", "y", "z"]), st.integers(0, 9)),
            merge=st.booleans(),
        )
        def update_metadata(self, session_id: str, metadata: dict[str, int], merge: bool) -> None:
            update = {"metadata": metadata, "merge_metadata": merge}
            if session_id not in self.model:
                with pytest.raises(SessionNotFoundError):
                    self.run(self.store.update_session(session_id, update))
                return
            self.run(self.store.update_session(session_id, update))
            model = self.model[session_id]
            model.metadata = {**model.metadata, **metadata} if merge else dict(metadata)
            model.version += 1

        @rule(session_id=ids, stale=st.booleans(), tags=st.lists(st.sampled_from("abc")))
        def update_with_version(self, session_id: str, stale: bool, tags: list[str]) -> None:
            model = self.model.get(session_id)
            if model is None:
                return
            expected = model.version - 1 if stale else model.version
            if stale:
                with pytest.raises(SessionConflictError):
                    self.run(
                        self.store.update_session(
                            session_id, {"tags": tags}, expected_version=expected
                        )
                    )
                return
            self.run(
                self.store.update_session(session_id, {"tags": tags}, expected_version=expected)
            )
            model.tags = list(tags)
            model.version += 1

        @rule(session_id=ids)
        def delete(self, session_id: str) -> None:
            existed = self.run(self.store.delete_session(session_id))
            assert existed == (session_id in self.model)
            self.model.pop(session_id, None)

        @rule(session_ids=st.lists(ids, max_size=3, unique=True), fail=st.booleans())
        def transaction(self, session_ids: list[str], fail: bool) -> None:
            live = [s for s in session_ids if s in self.model]
            texts = {s: self._text() for s in live}

            async def body() -> None:
                async with self.store.transaction():
                    for session_id in live:
                        await self.store.append_interactions(
                            session_id, interaction(texts[session_id])
                        )
                    if fail:
                        raise _Abort

            try:
                self.run(body())
            except _Abort:
                return
            for session_id in live:
                self.model[session_id].contents.append(texts[session_id])
                self.model[session_id].version += 1

        @rule(
            session_id=ids,
            offset=st.integers(0, 8),
            limit=st.one_of(st.none(), st.integers(0, 8)),
            newest_first=st.booleans(),
        )
        def read_slice(
            self, session_id: str, offset: int, limit: int | None, newest_first: bool
        ) -> None:
            got = self.run(
                self.store.get_interactions(
                    session_id, offset=offset, limit=limit, newest_first=newest_first
                )
            )
            model = self.model.get(session_id)
            if model is None:
                assert got is None
                return
            wanted = model.contents[::-1] if newest_first else list(model.contents)
            wanted = wanted[offset:] if limit is None else wanted[offset : offset + limit]
            assert got is not None
            assert [i.request.event["content"] for i in got] == wanted

        @invariant()
        def store_matches_model(self) -> None:
            sessions = self.run(self.store.list_sessions(SessionFilter(include_expired=True)))
            actual = {
                s.session_id: _ModelSession(
                    s.processor_id,
                    [i.request.event["content"] for i in s.interactions],
                    s.metadata,
                    s.tags,
                    s.version,
                )
                for s in sessions
            }
            assert actual == self.model
            headers = self.run(self.store.list_session_headers(SessionFilter(include_expired=True)))
            assert [h.session_id for h in headers] == [s.session_id for s in sessions]
            assert {h.session_id: h.interaction_count for h in headers} == {
                session_id: len(model.contents) for session_id, model in self.model.items()
            }
            assert self.run(self.store.count_sessions()) == len(self.model)

    return StoreMachine
