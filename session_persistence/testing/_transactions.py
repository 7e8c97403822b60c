"""Conformance: atomic transactions, ambient joining, optimistic validation, savepoints."""

from __future__ import annotations

import asyncio
import contextvars
from datetime import timedelta

import pytest

from ..errors import SessionConflictError, TransactionError
from ..models import PersistedSession, SessionFilter
from ..stores.base import SessionStore
from ..transactions import Transaction
from ._base import FakeClock, StoreTestBase, interaction, session_object


class TransactionConformance(StoreTestBase):
    """All or nothing; reads see own writes; conflicts abort; savepoints; events after."""

    async def test_two_creates_commit_together(self, store: SessionStore) -> None:
        """Store calls inside transaction() join it and commit together on exit."""
        async with store.transaction() as tx:
            a = await store.create_session(session_object())
            b = await tx.create_session(session_object())
            assert tx.is_active
        assert not tx.is_active
        assert await store.has_session(a.session_id)
        assert await store.has_session(b.session_id)

    async def test_exception_rolls_back_everything(self, store: SessionStore) -> None:
        """An exception in the block leaves no trace of its writes."""
        existing = await store.create_session(session_object(), tags=["before"])
        with pytest.raises(RuntimeError):
            async with store.transaction():
                await store.create_session(session_object())
                await store.create_session(session_object())
                await store.update_session(existing.session_id, {"tags": ["during"]})
                await store.append_interactions(existing.session_id, interaction())
                raise RuntimeError("boom")
        assert await store.count_sessions() == 1
        fetched = await store.get_session(existing.session_id)
        assert fetched is not None
        assert fetched.tags == ["before"]
        assert fetched.version == 1
        assert fetched.interactions == []

    async def test_writes_are_invisible_outside_until_commit(self, store: SessionStore) -> None:
        """Another task sees nothing of a transaction until it commits."""
        seen_inside: list[int] = []
        release = asyncio.Event()
        staged = asyncio.Event()

        async def writer() -> None:
            async with store.transaction():
                await store.create_session(session_object())
                staged.set()
                await release.wait()

        async def reader() -> None:
            await staged.wait()
            async with asyncio.timeout(5):
                seen_inside.append(await _count_outside(store))
            release.set()

        await asyncio.gather(writer(), reader())
        assert seen_inside == [0]
        assert await store.count_sessions() == 1

    async def test_reads_see_own_writes(self, store: SessionStore) -> None:
        """Inside a transaction, get/has/list/count/search see its staged changes."""
        existing = await store.create_session(session_object(), tags=["old"])
        async with store.transaction() as tx:
            created = await store.create_session(session_object(), tags=["fresh"])
            await store.update_session(existing.session_id, {"tags": ["changed"]})
            await tx.append_interactions(existing.session_id, interaction("inside"))
            assert await store.has_session(created.session_id)
            got = await store.get_session(existing.session_id)
            assert got is not None
            assert got.tags == ["changed"]
            assert [i.request.event["content"] for i in got.interactions] == ["inside"]
            assert await store.count_sessions() == 2
            assert [s.session_id for s in await store.search_sessions("fresh")] == [
                created.session_id
            ]
            await store.delete_session(created.session_id)
            assert await tx.get_session(created.session_id) is None
            assert await store.count_sessions() == 1

    async def test_conflicting_concurrent_write_aborts_commit(self, store: SessionStore) -> None:
        """If a session the transaction touched changes meanwhile, commit fails; nothing lands."""
        a = await store.create_session(session_object())
        b = await store.create_session(session_object())
        with pytest.raises(TransactionError) as info:
            async with store.transaction() as tx:
                await store.update_session(a.session_id, {"tags": ["tx"]})
                await store.create_session(session_object(), tags=["tx-created"])
                await tx.get_session(b.session_id)  # read set
                await _outside(store.update_session(b.session_id, {"tags": ["other"]}))
        assert isinstance(info.value.__cause__, SessionConflictError)
        assert info.value.conflicts == [b.session_id]
        assert info.value.transaction_id is not None
        fetched = await store.get_session(a.session_id)
        assert fetched is not None
        assert fetched.tags == []
        assert await store.search_sessions("tx-created") == []

    async def test_begin_commit_and_rollback(self, store: SessionStore) -> None:
        """begin_transaction gives an explicit transaction; rollback discards it."""
        tx = await store.begin_transaction()
        assert isinstance(tx, Transaction)
        created = await tx.create_session(session_object())
        assert await store.has_session(created.session_id) is False
        await tx.commit()
        assert await store.has_session(created.session_id)
        tx2 = await store.begin_transaction()
        await tx2.delete_session(created.session_id)
        await tx2.rollback()
        assert await store.has_session(created.session_id)

    async def test_finished_transaction_refuses_use(self, store: SessionStore) -> None:
        """Using a committed or rolled-back transaction raises TransactionError."""
        tx = await store.begin_transaction()
        await tx.commit()
        with pytest.raises(TransactionError):
            await tx.create_session(session_object())
        with pytest.raises(TransactionError):
            await tx.commit()
        with pytest.raises(TransactionError):
            await tx.rollback()

    async def test_with_transaction_returns_result_and_is_atomic(self, store: SessionStore) -> None:
        """with_transaction(fn): the seed's pattern, atomic for real."""

        async def make_two(tx: Transaction) -> tuple[PersistedSession, PersistedSession]:
            first = await store.create_session(session_object())
            second = await store.create_session(session_object())
            return first, second

        first, second = await store.with_transaction(make_two)
        assert await store.count_sessions() == 2

        async def fail(tx: Transaction) -> None:
            await store.create_session(session_object())
            raise ValueError("nope")

        with pytest.raises(ValueError, match="nope"):
            await store.with_transaction(fail)
        assert await store.count_sessions() == 2
        assert first.session_id != second.session_id

    async def test_savepoint_rolls_back_only_inner_block(self, store: SessionStore) -> None:
        """A nested transaction() is a savepoint: its failure undoes only its own changes."""
        async with store.transaction():
            outer = await store.create_session(session_object(), tags=["outer"])
            with pytest.raises(KeyError):
                async with store.transaction():
                    await store.create_session(session_object(), tags=["inner"])
                    await store.update_session(outer.session_id, {"tags": ["inner-change"]})
                    raise KeyError("inner")
            kept = await store.create_session(session_object(), tags=["after"])
            got = await store.get_session(outer.session_id)
            assert got is not None
            assert got.tags == ["outer"]
        assert await store.has_session(outer.session_id)
        assert await store.has_session(kept.session_id)
        assert await store.search_sessions("inner") == []
        assert await store.count_sessions() == 2

    async def test_savepoint_success_stays_staged_in_parent(self, store: SessionStore) -> None:
        """A savepoint that exits normally keeps its changes; a parent failure drops them."""
        with pytest.raises(RuntimeError):
            async with store.transaction():
                async with store.transaction():
                    await store.create_session(session_object())
                assert await store.count_sessions() == 1
                raise RuntimeError
        assert await store.count_sessions() == 0

    async def test_events_fire_only_after_commit(self, store: SessionStore) -> None:
        """Listeners see nothing during the transaction and nothing at all after rollback."""
        created: list[str] = []
        store.on_session_created(lambda s: created.append(s.session_id))
        with pytest.raises(RuntimeError):
            async with store.transaction():
                await store.create_session(session_object())
                raise RuntimeError
        assert created == []
        async with store.transaction():
            made = await store.create_session(session_object())
            assert created == []
        assert created == [made.session_id]

    async def test_tasks_started_inside_join_the_transaction(self, store: SessionStore) -> None:
        """Tasks gathered inside the block join it, so their writes commit or roll back too."""
        with pytest.raises(RuntimeError):
            async with store.transaction():
                await asyncio.gather(*(store.create_session(session_object()) for _ in range(5)))
                raise RuntimeError
        assert await store.count_sessions() == 0

    async def test_reads_inside_can_include_expired(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        """list_sessions(include_expired=True) inside a transaction returns expired ones too."""
        expired = await store.create_session(session_object(), expires_at=clock.now)
        live = await store.create_session(session_object(), expires_at=clock.now + timedelta(1))
        async with store.transaction():
            found = await store.list_sessions(SessionFilter(include_expired=True))
            assert {s.session_id for s in found} == {expired.session_id, live.session_id}
            assert [s.session_id for s in await store.get_expired_sessions()] == [
                expired.session_id
            ]

    async def test_listeners_never_join_the_writers_transaction(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        """A listener fired while a transaction is ambient writes outside it, without deadlock."""
        audit: list[str] = []

        async def on_deleted(session_id: str) -> None:
            made = await store.create_session(session_object("audit"), tags=[session_id])
            audit.append(made.session_id)

        store.on_session_deleted(on_deleted)
        await store.create_session(session_object(), expires_at=clock.now)
        with pytest.raises(RuntimeError):
            async with store.transaction():
                # Cleanup runs (and fires on_deleted) while this transaction is ambient.
                await store.cleanup_expired_sessions()
                await store.create_session(session_object())
                raise RuntimeError("roll back the transaction, not the listener's write")
        assert len(audit) == 1
        assert await store.count_sessions(SessionFilter(processor_id="audit")) == 1
        assert await store.count_sessions(SessionFilter(include_expired=True)) == 1

    async def test_transaction_ids_and_start_time(self, store: SessionStore) -> None:
        """A transaction exposes a ULID id and its start time."""
        async with store.transaction() as tx:
            assert len(tx.transaction_id) == 26
            assert tx.started_at is not None


async def _count_outside(store: SessionStore) -> int:
    """Count from a fresh task context, outside any ambient transaction."""
    return await _outside(store.count_sessions())


async def _outside(awaitable: object) -> int:
    async def run() -> int:
        return await awaitable  # type: ignore[misc,no-any-return]

    # A task created from an empty context does not inherit the ambient transaction.
    task = asyncio.get_running_loop().create_task(run(), context=contextvars.Context())
    return await task
