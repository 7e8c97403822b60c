"""The background checkpoint: writers go on while it runs; a fault at any step loses nothing.

The checkpointer thread is paused at its k-th file-system step (every k in turn) while the
writer keeps writing into the next generation; then the checkpoint crashes there (with or
without losing unsynced data: the power-loss model of :mod:`simulated_disk`), or meets an I/O
error and retries. Reopening must show exactly the acknowledged state, with a tidy store.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest
from simulated_disk import SimulatedCrash, SimulatedDisk

from session_persistence import FileSystemSessionStore
from session_persistence.testing import interaction, session_object

State = dict[str, tuple[int, int, int]]  # name -> (version, interactions, metadata n)


class PausingDisk(SimulatedDisk):
    """Pauses the checkpointer thread before its ``pause_at``-th step, then crashes or fails."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.pause_at: int | None = None
        self.armed = False  # count the checkpointer's steps from here on
        self.outcome = "crash"  # or "eio", or "go" (only late)
        self.checkpointer_steps = 0
        self.paused = threading.Event()
        self.resume = threading.Event()

    def _step(self, name: str) -> None:
        if self.armed and threading.current_thread().name.startswith("checkpointer"):
            self.checkpointer_steps += 1
            if self.checkpointer_steps == self.pause_at:
                self.paused.set()
                self.resume.wait(30)
                if self.outcome == "crash":
                    self.crashed = True
                    raise SimulatedCrash(f"checkpointer crashed before its step: {name}")
                if self.outcome == "eio":
                    raise OSError(5, f"injected EIO in the checkpointer: {name}")
                # "go": the checkpoint goes on, late
        super()._step(name)


NEVER = 1 << 40


def make_store(root: Path, disk: SimulatedDisk | None = None) -> FileSystemSessionStore:
    # Checkpoints only when the test asks (see close_generation), so exactly one runs.
    # One checkpoint thread: the checkpointer's steps come in the same order every run.
    return FileSystemSessionStore(
        root, checkpoint_bytes=NEVER, checkpoint_threads=1, watch=False, _io=disk
    )


class Model:
    """Writes through the store and remembers what each acknowledged write leads to."""

    def __init__(self, store: FileSystemSessionStore) -> None:
        self.store = store
        self.ids: dict[str, str] = {}
        self.acked: State = {}

    async def create(self, name: str, interactions: int = 0) -> None:
        created = await self.store.create_session(
            session_object(interactions=interactions), metadata={"name": name, "n": 0}
        )
        self.ids[name] = created.session_id
        self.acked[name] = (1, interactions, 0)

    async def append(self, name: str) -> None:
        header = await self.store.append_interactions(self.ids[name], interaction(name * 50))
        _, count, n = self.acked[name]
        self.acked[name] = (header.version, count + 1, n)

    async def bump(self, name: str) -> None:
        version, count, n = self.acked[name]
        await self.store.update_session(self.ids[name], {"metadata": {"name": name, "n": n + 1}})
        self.acked[name] = (version + 1, count, n + 1)

    async def delete(self, name: str) -> None:
        await self.store.delete_session(self.ids[name])
        del self.acked[name]


async def state_of(store: FileSystemSessionStore) -> State:
    found: State = {}
    for session in await store.list_sessions():
        full = await store.get_session(session.session_id)
        assert full is not None
        found[session.metadata["name"]] = (
            full.version,
            len(full.interactions),
            full.metadata["n"],
        )
    return found


async def run(root: Path, disk: PausingDisk) -> Model:
    """Fill a generation, close it (its checkpoint pauses), and write on meanwhile."""
    store = make_store(root, disk)
    await store.initialize()
    assert store._checkpointer is not None
    model = Model(store)
    for name in ("a", "b", "c"):
        await model.create(name, 1)
    await store.optimize()  # every session has a base file
    disk.armed = True
    for _ in range(3):
        await model.append("a")
    await model.bump("b")
    await model.delete("c")
    await model.create("d")
    store._checkpoint_bytes = 1  # the next write closes the generation: a checkpoint starts
    await model.append("a")
    store._checkpoint_bytes = NEVER
    if disk.pause_at is not None:
        assert await asyncio.to_thread(disk.paused.wait, 30), "the checkpointer never paused"
    if not store._write_mutex.locked():  # (else it paused in its last step, under the lock)
        # The checkpoint of the closed generation is under way: the writer is not held up.
        await model.append("a")
        await model.bump("d")
        await model.append("b")
        await model.create("e", 2)
        await model.delete("a")
        assert await state_of(store) == model.acked  # reads see the closed generation too
    disk.resume.set()
    return model


def abandon(store: FileSystemSessionStore) -> None:
    store._is_open = False
    if store._checkpointer is not None:
        store._checkpointer.stop()
    for fd in (store._fd, store._flock._fd, store._ckpt_lock._fd):
        if fd is not None:
            os.close(fd)
    store._fd = store._flock._fd = store._ckpt_lock._fd = None


async def checkpointer_steps(root: Path) -> int:
    async with make_store(root):
        pass
    disk = PausingDisk(root)
    model = await run(root, disk)
    await asyncio.to_thread(model.store._checkpointer.settle)  # type: ignore[union-attr]
    steps = disk.checkpointer_steps
    await model.store.shutdown()
    return steps


@pytest.fixture
def steps(tmp_path: Path) -> int:
    count = asyncio.run(checkpointer_steps(tmp_path / "count"))
    assert count > 8  # files, fsyncs, the index delta, the checkpointed marker, ...
    return count


@pytest.mark.parametrize("outcome", ["crash", "power-loss", "eio"])
async def test_a_fault_at_every_step_of_the_background_checkpoint_loses_nothing(
    tmp_path: Path, steps: int, outcome: str
) -> None:
    for step in range(1, steps + 1):
        root = tmp_path / f"{outcome}-{step}"
        async with make_store(root):
            pass
        disk = PausingDisk(root)
        disk.pause_at, disk.outcome = step, "eio" if outcome == "eio" else "crash"
        model = await run(root, disk)
        store = model.store
        assert store._checkpointer is not None
        if outcome == "eio":
            await asyncio.to_thread(store._checkpointer.settle)  # retried after the error
            assert store._closing is None, f"step {step}: the retry did not finish"
            assert await state_of(store) == model.acked
            await store.shutdown()
        else:
            await asyncio.to_thread(store._checkpointer._thread.join, 30)  # it died there
            abandon(store)
            if outcome == "power-loss":
                disk.power_loss()
        async with make_store(root) as reopened:
            found = await state_of(reopened)
            assert found == model.acked, f"{outcome} at checkpointer step {step}: {found}"
            assert reopened._checkpointer is not None
            await asyncio.to_thread(reopened._checkpointer.settle)
            report = await reopened.check()
            assert report.problems == [], f"{outcome} at step {step}: {report.problems}"
            assert os.listdir(root / "tmp") == []
            assert os.listdir(root / "quarantine") == []
        async with make_store(root) as again:  # and once more, after its own checkpoint
            assert await state_of(again) == model.acked


async def test_writes_and_reads_go_on_while_a_checkpoint_is_held_up(tmp_path: Path) -> None:
    """A checkpoint stuck on a slow disk holds no writer: they finish, and read back right."""
    root = tmp_path / "store"
    async with make_store(root):
        pass
    disk = PausingDisk(root)
    disk.pause_at, disk.outcome = 3, "eio"
    model = await run(root, disk)  # (it writes and reads while the checkpoint is paused)
    store = model.store
    assert store._checkpointer is not None
    await asyncio.to_thread(store._checkpointer.settle)
    await store.shutdown()
    async with make_store(root) as reopened:
        assert await state_of(reopened) == model.acked


async def test_a_dead_checkpointer_makes_the_store_unhealthy(tmp_path: Path) -> None:
    """If the checkpointer thread dies, health_check says so; writes stay durable."""
    root = tmp_path / "store"
    async with make_store(root):
        pass
    disk = PausingDisk(root)
    disk.pause_at, disk.outcome = 1, "crash"
    disk.armed = True
    store = make_store(root, disk)
    await store.initialize()
    assert store._checkpointer is not None
    created = await store.create_session(session_object())
    store._checkpoint_bytes = 1
    resumed = asyncio.to_thread(disk.resume.set)
    await store.append_interactions(created.session_id, interaction())  # closes: a checkpoint
    await resumed
    await asyncio.to_thread(store._checkpointer._thread.join, 30)
    disk.crashed = False  # only the thread died; the process lives on
    health = await store.health_check()
    assert not health.healthy
    assert any("checkpointer stopped" in issue for issue in health.issues)
    store._checkpoint_bytes = NEVER
    await store.append_interactions(created.session_id, interaction())
    abandon(store)
    async with make_store(root) as reopened:
        again = await reopened.get_session(created.session_id)
        assert again is not None
        assert len(again.interactions) == 2


async def test_writers_held_by_a_late_checkpoint_go_on_when_it_finishes(tmp_path: Path) -> None:
    """Past the backlog limit a writer waits for the checkpoint, without blocking its end.

    (The waiting writer once held the write mutex that the checkpoint takes to record that it
    finished: both waited until lock_timeout.)
    """
    root = tmp_path / "store"
    async with make_store(root):
        pass
    disk = PausingDisk(root)
    disk.pause_at, disk.outcome, disk.armed = 1, "go", True
    store = FileSystemSessionStore(
        root, checkpoint_bytes=2000, checkpoint_threads=1, lock_timeout=60, watch=False, _io=disk
    )
    await store.initialize()
    try:
        created = await store.create_session(session_object())
        while not store._backlogged():  # the checkpoint is paused: the journal runs ahead
            await store.append_interactions(created.session_id, interaction("x" * 200))
        assert disk.paused.is_set()
        waiting = asyncio.ensure_future(
            store.append_interactions(created.session_id, interaction("held"))
        )
        await asyncio.sleep(0.05)
        assert not waiting.done()  # held by the backlog
        disk.resume.set()
        header = await asyncio.wait_for(waiting, 20)  # not lock_timeout (60 s)
        again = await store.get_session(created.session_id)
        assert again is not None
        assert again.version == header.version
    finally:
        disk.resume.set()
        await store.shutdown()
