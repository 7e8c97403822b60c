"""session_persistence.sync: blocking wrappers, checked by the whole conformance suite.

The conformance suite is async; :class:`AsyncOverSync` turns a :class:`SyncSessionStore` back
into the async API by running each blocking call in a worker thread (``asyncio.to_thread``),
so the suite drives the blocking wrapper from many threads at once, the way threaded web
servers do.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from session_persistence import (
    FileSystemSessionStore,
    InMemorySessionStore,
    InvalidInputError,
    SessionExistsError,
    SessionFilter,
    SessionPersistenceConfig,
    SessionStoreConfig,
    StoreClosedError,
)
from session_persistence.sync import (
    SyncSessionPersistenceManager,
    SyncSessionStore,
    SyncTransaction,
)
from session_persistence.testing import StoreConformance, interaction, session_object
from session_persistence.transactions import Transaction

_BLOCKING = [
    name
    for name in dir(SyncSessionStore)
    if not name.startswith("_")
    and name
    not in {
        "transaction",
        "begin_transaction",
        "with_transaction",
        "iter_sessions",
        "store",
        "is_initialized",
        "config",
        "codec",
        "store_type",
        "is_expired",
    }
    and not name.startswith("on_")
]
_END = object()


_TX_METHODS = [
    "commit",
    "rollback",
    "get_session",
    "has_session",
    "create_session",
    "get_or_create_session",
    "update_session",
    "append_interactions",
    "delete_session",
    "set_session_expiration",
    "extend_session_expiration",
    "refresh_session",
]


class AsyncTransactionOverSync(Transaction):
    """A SyncTransaction as the async Transaction API (each call in a worker thread).

    A Transaction subclass only so the suite's ``isinstance`` checks hold; nothing of the
    base runs: every method is the blocking one, in a thread.
    """

    def __init__(self, tx: SyncTransaction) -> None:  # no super().__init__: a pure proxy
        self._sync_tx = tx
        self.transaction_id = tx.transaction_id
        self.started_at = tx.started_at
        for name in _TX_METHODS:
            setattr(self, name, AsyncOverSync._threaded(getattr(tx, name)))

    @property
    def is_active(self) -> bool:
        return self._sync_tx.is_active


class _TransactionBlock:
    """``async with shim.transaction()``: the blocking ``with`` block, entered in this task."""

    def __init__(self, sync: SyncSessionStore) -> None:
        self._manager = sync.transaction()

    async def __aenter__(self) -> AsyncTransactionOverSync:
        # Entered in the caller's context (not a worker's copy), so the calls made in the
        # block, in worker threads that copy this context, join the transaction.
        return AsyncTransactionOverSync(self._manager.__enter__())

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        return self._manager.__exit__(*exc_info)


class AsyncOverSync:
    """The async store API over a SyncSessionStore (a shim for the conformance suite)."""

    def __init__(self, sync: SyncSessionStore) -> None:
        self._sync = sync
        for name in _BLOCKING:
            setattr(self, name, self._threaded(getattr(sync, name)))

    @staticmethod
    def _threaded(blocking: Callable[..., Any]) -> Callable[..., Any]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(blocking, *args, **kwargs)

        return call

    def __getattr__(self, name: str) -> Any:
        if name.startswith("on_") or name in {
            "is_initialized",
            "config",
            "codec",
            "store_type",
            "is_expired",
        }:
            return getattr(self._sync, name)
        if name == "_record_error":  # a test hook of the monitoring conformance tests
            return self._sync.store._record_error
        raise AttributeError(name)

    def transaction(self) -> _TransactionBlock:
        return _TransactionBlock(self._sync)

    async def begin_transaction(self) -> AsyncTransactionOverSync:
        return AsyncTransactionOverSync(await asyncio.to_thread(self._sync.begin_transaction))

    async def with_transaction(self, operation: Callable[[Any], Any]) -> Any:
        async with self.transaction() as tx:
            return await operation(tx)

    async def iter_sessions(self, filter: SessionFilter | None = None) -> AsyncIterator[Any]:
        iterator = self._sync.iter_sessions(filter)
        context = contextvars.copy_context()
        while True:
            item = await asyncio.to_thread(context.run, next, iterator, _END)
            if item is _END:
                return
            yield item


class TestSyncOverMemoryConformance(StoreConformance):
    def make_store(self, config: SessionStoreConfig, path: Path) -> Any:
        return AsyncOverSync(SyncSessionStore(InMemorySessionStore(config)))


class TestSyncOverFileSystemConformance(StoreConformance):
    def make_store(self, config: SessionStoreConfig, path: Path) -> Any:
        return AsyncOverSync(SyncSessionStore(FileSystemSessionStore(path, config=config)))


# -- the blocking API used as a blocking caller would ----------------------------------------


def test_many_threads_get_or_create_one_session(tmp_path: Path) -> None:
    """32 threads calling get_or_create with one id at once: one session, one creator."""
    with SyncSessionStore(FileSystemSessionStore(tmp_path / "store")) as store:
        barrier = threading.Barrier(32)
        created: list[bool] = []

        def worker() -> None:
            barrier.wait()
            created.append(store.get_or_create_session("chat-1")[1])

        threads = [threading.Thread(target=worker) for _ in range(32)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(created) == 1
        assert store.count_sessions() == 1


def test_threads_appending_lose_nothing(tmp_path: Path) -> None:
    """8 threads appending 25 interactions each to one session: all 200 are stored."""
    with SyncSessionStore(FileSystemSessionStore(tmp_path / "store")) as store:
        created = store.create_session(session_object())

        def worker(n: int) -> None:
            for i in range(25):
                store.append_interactions(created.session_id, interaction(f"{n}:{i}"))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stored = store.require_session(created.session_id)
        assert len(stored.interactions) == 200
        assert stored.version == 201


def test_transaction_block_commits_or_rolls_back() -> None:
    """`with store.transaction()`: calls in the block join it; an exception undoes them."""
    with SyncSessionStore(InMemorySessionStore()) as store:
        with store.transaction() as tx:
            store.create_session(session_object(), session_id="a")
            tx.create_session(session_object(), session_id="b")
            assert store.has_session("a")
            other: list[bool] = []
            thread = threading.Thread(target=lambda: other.append(store.has_session("a")))
            thread.start()
            thread.join()
            assert other == [False]  # another thread does not see the uncommitted change
        assert store.has_session("a")
        assert store.has_session("b")
        with pytest.raises(RuntimeError), store.transaction():
            store.create_session(session_object(), session_id="c")
            raise RuntimeError("undo")
        assert not store.has_session("c")
        assert store.with_transaction(lambda tx: tx.get_or_create_session("a")[1]) is False


def test_iter_sessions_is_a_plain_iterator() -> None:
    """iter_sessions yields sessions in a for loop; stopping early leaves nothing running."""
    with SyncSessionStore(InMemorySessionStore()) as store:
        for i in range(5):
            store.create_session(session_object(), session_id=f"s{i}")
        assert [s.session_id for s in store.iter_sessions()] == [f"s{i}" for i in range(5)]
        for session in store.iter_sessions():
            assert session.session_id == "s0"
            break


def test_sync_manager_reads_slices_and_headers() -> None:
    """The blocking manager has get_interactions, list_session_headers, find_session_headers."""
    config = SessionPersistenceConfig(store_type="memory", auto_persist_enabled=False)
    with SyncSessionPersistenceManager(config) as manager:
        created = manager.create_session(session_object(interactions=4))
        tail = manager.get_interactions(created.session_id, limit=1, newest_first=True)
        assert tail == created.interactions[-1:]
        assert [h.session_id for h in manager.list_session_headers()] == [created.session_id]
        headers = manager.find_session_headers(has_interactions=True)
        assert [h.interaction_count for h in headers] == [4]


def test_errors_and_closed_store() -> None:
    """Errors surface as the async API raises them; a closed wrapper says so."""
    sync = SyncSessionStore(InMemorySessionStore())
    with sync as store:
        store.create_session(session_object(), session_id="x")
        with pytest.raises(SessionExistsError):
            store.create_session(session_object(), session_id="x")
    with pytest.raises(StoreClosedError):
        sync.get_session("x")
    with pytest.raises(InvalidInputError):
        SyncSessionStore(object())  # type: ignore[arg-type]


def test_a_listener_calling_the_wrapper_gets_a_clear_error() -> None:
    """A listener (on the wrapper's thread) calling the blocking wrapper is refused, not hung."""
    with SyncSessionStore(InMemorySessionStore()) as store:
        seen: list[str] = []

        def listener(session: Any) -> None:
            try:
                store.get_session(session.session_id)
            except InvalidInputError as error:
                seen.append(str(error))

        store.on_session_created(listener)
        store.create_session(session_object())
        assert seen
        assert "wrapper.store" in seen[0]


def test_sync_manager_persists_from_threads(tmp_path: Path) -> None:
    """The blocking manager: sessions changed in threads are persisted, in the background too."""
    config = SessionPersistenceConfig(
        store_type="filesystem", filesystem_base_dir=tmp_path / "store", auto_persist_delay=0
    )
    with SyncSessionPersistenceManager(config) as manager:
        chats = [manager.get_or_create_managed_session(f"chat-{i}") for i in range(4)]
        assert manager.get_or_create_managed_session("chat-0") is chats[0]

        def worker(n: int) -> None:
            for i in range(10):
                chats[n].add_interaction(interaction(f"{n}:{i}"))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        deadline = time.monotonic() + 60  # generous: bounds a hang, measures nothing
        while chats[3].has_unsaved_changes and time.monotonic() < deadline:
            time.sleep(0.01)  # written in the background: scheduled from this thread
        assert not chats[3].has_unsaved_changes
        manager.persist(chats[0])
        assert len(manager.require_session("chat-0").interactions) == 10
        chats[1].add_interaction(interaction("more"))
        assert manager.mark_session_for_persistence("chat-1")
        assert manager.load_from_persistence(chats[2])
    with SyncSessionPersistenceManager(config) as manager:  # shutdown flushed the rest
        counts = [len(manager.require_session(f"chat-{i}").interactions) for i in range(4)]
        assert counts == [10, 11, 10, 10]


def test_a_call_after_shutdown_leaves_no_loop_thread() -> None:
    """A blocking call on a shut-down wrapper raises, and stops the loop it had to start."""

    def loops() -> int:
        return sum(t.name.startswith("session-persistence-sync") for t in threading.enumerate())

    before = loops()
    for _ in range(3):
        with SyncSessionStore(InMemorySessionStore()) as sync:
            pass
        with pytest.raises(StoreClosedError):
            sync.get_session("x")
    assert loops() == before
