"""SessionStore base behaviour the conformance suite cannot reach from outside.

Storage failures, lifecycle edge cases and cleanup races, via a fault-injecting memory store.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from pathlib import Path

import pytest

from session_persistence import (
    ConfigurationError,
    InMemorySessionStore,
    InvalidInputError,
    SessionConflictError,
    SessionStoreConfig,
    StoreIOError,
    TransactionError,
)
from session_persistence.ops import DeleteOp, WriteOp
from session_persistence.testing import FakeClock, session_object


class FaultyStore(InMemorySessionStore):
    """An in-memory store whose primitives fail on demand."""

    def __init__(self, config: SessionStoreConfig | None = None) -> None:
        super().__init__(config)
        self.fail_apply: OSError | None = None
        self.fail_reads: OSError | None = None
        self.fail_probe = False
        self.conflict_deletes: set[str] = set()
        self.batch_conflicts = 0

    async def _apply(self, ops: Sequence[WriteOp], *, max_sessions: int | None) -> None:
        if self.fail_apply is not None:
            raise self.fail_apply
        deletes = [op for op in ops if isinstance(op, DeleteOp)]
        if len(deletes) > 1 and self.batch_conflicts:
            self.batch_conflicts -= 1
            raise SessionConflictError(deletes[0].session_id, deletes[0].expected, 99)
        for op in deletes:
            if op.session_id in self.conflict_deletes:
                raise SessionConflictError(op.session_id, op.expected, 99)
        await super()._apply(ops, max_sessions=max_sessions)

    async def _load(self, session_id: str):  # type: ignore[no-untyped-def]
        if self.fail_reads is not None:
            raise self.fail_reads
        return await super()._load(session_id)

    async def _get_header(self, session_id: str):  # type: ignore[no-untyped-def]
        if self.fail_reads is not None:
            raise self.fail_reads
        return await super()._get_header(session_id)

    async def _probe(self) -> list[str]:
        if self.fail_probe:
            raise RuntimeError("probe exploded")
        return []


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(clock: FakeClock):  # type: ignore[no-untyped-def]
    async with FaultyStore(SessionStoreConfig(clock=clock)) as opened:
        yield opened


async def test_write_failure_is_a_typed_error_and_nothing_is_acknowledged(
    store: FaultyStore,
) -> None:
    """An OSError in the backend reaches the caller as StoreIOError; nothing changed."""
    created = await store.create_session(session_object(), tags=["before"])
    store.fail_apply = OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(StoreIOError) as info:
        await store.update_session(created.session_id, {"tags": ["after"]})
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.__cause__.errno == errno.ENOSPC
    with pytest.raises(StoreIOError):
        await store.create_session(session_object())
    store.fail_apply = None
    fetched = await store.get_session(created.session_id)
    assert fetched is not None
    assert fetched.tags == ["before"]
    assert await store.count_sessions() == 1


async def test_delete_failure_is_raised_not_reported_as_false(store: FaultyStore) -> None:
    """A failing delete raises StoreIOError instead of returning False."""
    created = await store.create_session(session_object())
    store.fail_apply = OSError(errno.EIO, "I/O error")
    with pytest.raises(StoreIOError):
        await store.delete_session(created.session_id)
    store.fail_apply = None
    assert await store.has_session(created.session_id)


async def test_read_failure_is_a_typed_error(store: FaultyStore) -> None:
    """An OSError while reading becomes StoreIOError, for point reads and headers alike."""
    created = await store.create_session(session_object())
    store.fail_reads = OSError(errno.EIO, "I/O error")
    with pytest.raises(StoreIOError):
        await store.get_session(created.session_id)
    with pytest.raises(StoreIOError):
        await store.has_session(created.session_id)
    store.fail_reads = None
    assert await store.get_session(created.session_id) is not None


async def test_errors_make_health_bad_until_they_age_out(
    store: FaultyStore, clock: FakeClock
) -> None:
    """Storage errors are counted in a sliding window: unhealthy now, healthy later."""
    store.fail_apply = OSError(errno.EIO, "I/O error")
    with pytest.raises(StoreIOError):
        await store.create_session(session_object())
    store.fail_apply = None
    status = await store.health_check()
    assert not status.healthy
    assert status.details["recent_errors"] == 1
    assert (await store.get_stats()).backend["recent_errors"] == 1
    clock.advance(61)
    assert (await store.health_check()).healthy


async def test_failing_probe_is_reported_not_raised(store: FaultyStore) -> None:
    """A health probe that crashes is reported as an issue."""
    store.fail_probe = True
    status = await store.health_check()
    assert not status.healthy
    assert any("probe exploded" in issue for issue in status.issues)


async def test_cleanup_skips_sessions_changed_meanwhile(
    store: FaultyStore, clock: FakeClock
) -> None:
    """If a batch delete conflicts, cleanup goes one by one and skips the changed session."""
    made = [await store.create_session(session_object(), expires_at=clock.now) for _ in range(3)]
    store.batch_conflicts = 1
    store.conflict_deletes = {made[1].session_id}
    assert await store.cleanup_expired_sessions() == 2
    store.conflict_deletes = set()
    assert await store.cleanup_expired_sessions() == 1


async def test_conflicts_are_counted_in_stats(store: FaultyStore) -> None:
    """Version conflicts show up in get_stats().backend['conflicts']."""
    created = await store.create_session(session_object())
    tx = await store.begin_transaction()
    await tx.update_session(created.session_id, {"tags": ["tx"]})
    await store.update_session(created.session_id, {"tags": ["direct"]})
    with pytest.raises(TransactionError, match="conflicts"):
        await tx.commit()
    assert (await store.get_stats()).backend["conflicts"] == 1


async def test_initialize_with_config_and_twice() -> None:
    """initialize(config) replaces the config; again with another config is refused."""
    store = InMemorySessionStore()
    config = SessionStoreConfig(max_sessions=5)
    await store.initialize(config)
    try:
        assert store.config.max_sessions == 5
        await store.initialize()  # no-op
        await store.initialize(config)  # same config: no-op
        with pytest.raises(ConfigurationError):
            await store.initialize(SessionStoreConfig(max_sessions=6))
    finally:
        await store.shutdown()
    await store.shutdown()  # idempotent


def test_constructor_rejects_a_non_config() -> None:
    """Passing something other than SessionStoreConfig is a ConfigurationError."""
    with pytest.raises(ConfigurationError):
        InMemorySessionStore({"max_sessions": 3})  # type: ignore[arg-type]


async def test_unreadable_snapshot_location_fails_initialize(tmp_path: Path) -> None:
    """A snapshot path that cannot be read makes initialize raise StoreIOError."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    store = InMemorySessionStore(persistence_path=blocker / "sessions.json")
    with pytest.raises(StoreIOError, match="cannot open"):
        await store.initialize()
    assert not store.is_initialized


async def test_snapshot_without_path_is_refused() -> None:
    """save_snapshot needs a persistence_path."""
    async with InMemorySessionStore() as store:
        with pytest.raises(InvalidInputError):
            await store.save_snapshot()


async def test_snapshot_write_failure_is_a_typed_error(tmp_path: Path) -> None:
    """A snapshot that cannot be written raises StoreIOError and is counted as an error."""
    directory = tmp_path / "snapshots"
    store = InMemorySessionStore(persistence_path=directory / "sessions.json")
    await store.initialize()
    await store.create_session(session_object())
    directory.write_text("now a file, not a directory")
    with pytest.raises(StoreIOError):
        await store.save_snapshot()
    assert not (await store.health_check()).healthy
    store._path = None  # let shutdown skip the final snapshot it cannot write
    await store.shutdown()
