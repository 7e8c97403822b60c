"""The filesystem store under injected faults: errors, crashes and power loss at every step.

A fixed single-writer workload runs against a store whose I/O seam is a
:class:`SimulatedDisk`. For every step ``n`` of the workload's write path we run it again with
a fault at step ``n`` and check the store afterwards against a model of what was acknowledged.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import tempfile
import threading
import zlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from simulated_disk import SimulatedCrash, SimulatedDisk

from session_persistence import FileSystemSessionStore, StoreIOError
from session_persistence._fileio import FileIO
from session_persistence.testing import interaction, session_object

State = dict[str, tuple[int, int, int]]  # name -> (version, interactions, n)


class Workload:
    """A deterministic sequence of writes and the state each acknowledged one leads to."""

    def __init__(self, store: FileSystemSessionStore) -> None:
        self.store = store
        self.ids: dict[str, str] = {}
        self.acked: State = {}
        self.in_flight: State | None = None  # the state had the interrupted op succeeded
        self.failures = 0

    async def _find(self, name: str) -> str:
        if name not in self.ids:
            for session in await self.store.list_sessions():
                if session.metadata.get("name") == name:
                    self.ids[name] = session.session_id
        return self.ids[name]

    async def op(self, after: State, action: Callable[[], Awaitable[Any]]) -> None:
        self.in_flight = after
        try:
            await action()
        except StoreIOError:
            # The fault is one-shot: the same write must now succeed, exactly once.
            self.failures += 1
            await action()
        self.acked, self.in_flight = after, None
        # Let a background checkpoint the write started finish, so that every run takes its
        # steps in the same order and a fault at step n hits the same operation each time.
        await settled(self.store)

    async def run(self) -> None:
        s = self.store

        async def create(name: str, interactions: int = 0) -> None:
            created = await s.create_session(
                session_object(interactions=interactions), metadata={"name": name, "n": 0}
            )
            self.ids[name] = created.session_id

        async def bump(name: str, n: int) -> None:
            await s.update_session(await self._find(name), {"metadata": {"name": name, "n": n}})

        async def append(name: str) -> None:
            await s.append_interactions(await self._find(name), interaction(name))

        async def transaction() -> None:
            a, b = await self._find("a"), await self._find("b")
            async with s.transaction():
                await s.update_session(a, {"metadata": {"name": "a", "n": 2}})
                await s.delete_session(b)
                await create("c")

        state: State = {}

        def then(**changes: tuple[int, int, int] | None) -> State:
            nonlocal state
            state = {**state, **{k: v for k, v in changes.items() if v is not None}}
            for name, value in changes.items():
                if value is None:
                    state.pop(name, None)
            return state

        await self.op(then(a=(1, 0, 0)), lambda: create("a"))
        await self.op(then(b=(1, 1, 0)), lambda: create("b", 1))
        await self.op(then(a=(2, 0, 1)), lambda: bump("a", 1))
        for count in (1, 2, 3):
            await self.op(then(a=(2 + count, count, 1)), lambda: append("a"))
        await self.op(then(a=(6, 3, 2), b=None, c=(1, 0, 0)), transaction)
        await self.op(state, s.optimize)
        for count in (1, 2):
            await self.op(then(c=(1 + count, count, 0)), lambda: append("c"))
        await self.op(then(c=(4, 2, 5)), lambda: bump("c", 5))
        await self.op(then(a=None), lambda: self._delete("a"))
        await self.op(then(d=(1, 2, 0)), lambda: create("d", 2))
        await self.op(then(d=(2, 3, 0)), lambda: append("d"))

    async def _delete(self, name: str) -> None:
        await self.store.delete_session(await self._find(name))


async def state_of(store: FileSystemSessionStore) -> State:
    result: State = {}
    for session in await store.list_sessions():
        metadata = session.metadata
        assert metadata["name"] not in result, "a failed write was applied after all"
        full = await store.get_session(session.session_id)
        assert full is not None
        assert full.version == session.version
        result[metadata["name"]] = (session.version, len(full.interactions), metadata["n"])
    return result


def make_store(root: Path, disk: SimulatedDisk | None = None) -> FileSystemSessionStore:
    # A tiny checkpoint threshold, so checkpoints (and their steps) happen inside the workload.
    # (one checkpoint thread: the steps come in the same order every run)
    return FileSystemSessionStore(
        root, checkpoint_bytes=1500, checkpoint_threads=1, watch=False, _io=disk
    )


async def settled(store: FileSystemSessionStore) -> None:
    """Wait for the store's background checkpointer to be idle (re-raising what killed it)."""
    if store._checkpointer is not None:
        await asyncio.to_thread(store._checkpointer.settle)


def abandon(store: FileSystemSessionStore) -> None:
    """Forget a store whose process 'died': close its descriptors without any I/O."""
    for task in store._tasks:
        task.cancel()
    store._is_open = False
    if store._checkpointer is not None:
        store._checkpointer.stop()  # idle or dead: it does no more I/O
    if store._fd is not None:
        os.close(store._fd)
        store._fd = None
    for lock in (store._flock, store._ckpt_lock):
        if lock._fd is not None:
            os.close(lock._fd)
            lock._fd = None


async def count_steps(root: Path) -> int:
    async with make_store(root) as store:
        pass
    disk = SimulatedDisk(root)
    store = make_store(root, disk)
    await store.initialize()
    await Workload(store).run()
    await store.shutdown()
    return disk.steps


@pytest.fixture
def fast_path(tmp_path: Path) -> Iterator[Path]:
    """A temp dir on tmpfs if there is one (the simulated disk models durability itself)."""
    if not os.path.isdir("/dev/shm"):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="sp-faults-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def total_steps(fast_path: Path) -> int:
    return asyncio.run(count_steps(fast_path / "count"))


async def run_with_fault(root: Path, step: int, kind: str) -> tuple[Workload, SimulatedDisk]:
    async with make_store(root):
        pass
    disk = SimulatedDisk(root)
    disk.fail_at, disk.fail_with = step, kind
    store = make_store(root, disk)
    workload = Workload(store)
    try:
        try:
            await store.initialize()
        except StoreIOError:  # the fault hit the open itself: fine, it said so
            return workload, disk
        await workload.run()
        await store.shutdown()
    except SimulatedCrash:
        abandon(store)
    return workload, disk


async def test_workload_has_many_steps(total_steps: int) -> None:
    """The workload exercises a real write path (journal, checkpoints, tails, bases)."""
    assert total_steps > 40


@pytest.mark.parametrize("kind", ["crash", "power-loss"])
async def test_crash_at_every_step_loses_nothing_acknowledged(
    fast_path: Path, total_steps: int, kind: str
) -> None:
    """A crash (with or without power loss) at any step loses nothing acknowledged."""
    for step in range(1, total_steps + 1):
        root = fast_path / f"{kind}-{step}"
        workload, disk = await run_with_fault(root, step, "crash")
        if kind == "power-loss":
            disk.power_loss()
        async with make_store(root) as reopened:
            found = await state_of(reopened)
            await settled(reopened)  # (a checkpoint under way has temp files)
            assert not os.listdir(root / "tmp"), f"temp files left after step {step}"
        allowed = [workload.acked] + ([workload.in_flight] if workload.in_flight else [])
        assert found in allowed, f"{kind} at step {step} ({disk.trace[-1:]}): {found}"


@pytest.mark.parametrize("error", ["enospc", "eio"])
async def test_error_at_every_step_is_typed_and_recoverable(
    fast_path: Path, total_steps: int, error: str
) -> None:
    """An OSError at any step fails only that write, typed; the store then works again."""
    for step in range(1, total_steps + 1):
        root = fast_path / f"{error}-{step}"
        workload, disk = await run_with_fault(root, step, error)
        assert not disk.crashed
        async with make_store(root) as reopened:
            assert await state_of(reopened) == workload.acked, f"{error} at step {step}"
            created = await reopened.create_session(session_object(), metadata={"name": "z"})
            assert await reopened.get_session(created.session_id) is not None


async def test_power_loss_after_acknowledged_writes_in_full_mode(tmp_path: Path) -> None:
    """With durability='full', power loss right after the last acknowledgement loses nothing."""
    root = tmp_path / "store"
    async with make_store(root):
        pass
    disk = SimulatedDisk(root)
    store = make_store(root, disk)
    await store.initialize()
    workload = Workload(store)
    await workload.run()
    abandon(store)
    disk.power_loss()
    async with make_store(root) as reopened:
        assert await state_of(reopened) == workload.acked


async def test_process_mode_does_not_fsync(tmp_path: Path) -> None:
    """durability='process' never fsyncs, yet survives the death of the process."""
    root = tmp_path / "store"
    async with FileSystemSessionStore(root, watch=False):
        pass
    disk = SimulatedDisk(root)
    store = FileSystemSessionStore(root, durability="process", watch=False, _io=disk)
    await store.initialize()
    created = await store.create_session(session_object())
    assert "fsync" not in disk.trace
    abandon(store)
    async with FileSystemSessionStore(root, watch=False) as reopened:
        assert await reopened.get_session(created.session_id) is not None


# -- a journal fsync that fails after the store lock was released ------------------------------


class WrittenAfterThenEIO(FileIO):
    """The next journal fsync fails, after 'another process' appended a line behind ours."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False
        self.foreign: bytes = b""

    def fsync(self, fd: int) -> None:
        if self.armed and os.readlink(f"/proc/self/fd/{fd}").endswith(".wal"):
            self.armed = False
            if self.foreign:
                os.write(fd, self.foreign)  # (O_APPEND: after our group's lines)
            raise OSError(errno.EIO, "injected EIO in the journal's fsync")
        super().fsync(fd)


def journal_line(record: dict[str, Any]) -> bytes:
    payload = orjson.dumps(record)
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


@pytest.mark.parametrize("followed", [False, True])
async def test_a_failed_fsync_is_cut_back_unless_another_process_wrote_after_it(
    tmp_path: Path, followed: bool
) -> None:
    """Alone at the end, a write whose fsync failed is cut back: nothing was applied.

    Followed by another process's line (the store lock is not held during the fsync), it
    cannot be cut without destroying that line: it stays, every process applies it, and the
    caller is told its outcome is unknown.
    """
    root = tmp_path / "store"
    disk = WrittenAfterThenEIO()
    async with FileSystemSessionStore(root, watch=False, _io=disk) as store:
        session = await store.create_session(session_object())
        other = await store.create_session(session_object())
        if followed:  # the next record another process would write: a delete of `other`
            disk.foreign = journal_line(
                {"seq": store._seq + 2, "ops": [{"delete": other.session_id}]}
            )
        disk.armed = True
        with pytest.raises(StoreIOError) as raised:
            await store.append_interactions(session.session_id, interaction("maybe"))
        assert ("outcome is unknown" in str(raised.value)) is followed
        assert ("nothing was applied" in str(raised.value)) is not followed
        again = await store.get_session(session.session_id)
        assert again is not None
        assert len(again.interactions) == (1 if followed else 0)
        assert (await store.get_session(other.session_id) is None) is followed
        await store.append_interactions(session.session_id, interaction("after"))
    async with FileSystemSessionStore(root, watch=False) as reopened:
        again = await reopened.get_session(session.session_id)
        assert again is not None
        assert [i.request.event["content"] for i in again.interactions] == (
            ["maybe", "after"] if followed else ["after"]
        )
        assert (await reopened.check()).problems == []


class WrittenAfterThenSlow(FileIO):
    """The next journal fsync lets 'another process' write after our lines, then takes time."""

    def __init__(self) -> None:
        super().__init__()
        self.foreign: bytes | None = None
        self.in_fsync = threading.Event()
        self.finish = threading.Event()

    def fsync(self, fd: int) -> None:
        foreign, self.foreign = self.foreign, None
        if foreign is not None and os.readlink(f"/proc/self/fd/{fd}").endswith(".wal"):
            os.write(fd, foreign)
            self.in_fsync.set()
            assert self.finish.wait(10)
        super().fsync(fd)


async def test_a_read_during_our_fsync_sees_what_another_process_finished(
    tmp_path: Path,
) -> None:
    """Another process's write that lands behind our group while we fsync is not missed."""
    root = tmp_path / "store"
    disk = WrittenAfterThenSlow()
    async with FileSystemSessionStore(root, watch=False, _io=disk) as store:
        session = await store.create_session(session_object())
        other = await store.create_session(session_object())
        disk.foreign = journal_line({"seq": store._seq + 2, "ops": [{"delete": other.session_id}]})
        writing = asyncio.ensure_future(
            store.append_interactions(session.session_id, interaction("ours"))
        )
        assert await asyncio.to_thread(disk.in_fsync.wait, 10)
        threading.Timer(0.2, disk.finish.set).start()  # our fsync ends a little later
        assert await store.get_session(other.session_id) is None  # (it waited for our group)
        await writing
        again = await store.get_session(session.session_id)
        assert again is not None
        assert len(again.interactions) == 1
