"""The filesystem store across real processes: SIGKILL at random moments, shared counters."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import fs_child
import orjson
import pytest

from session_persistence import FileSystemSessionStore
from session_persistence.testing import session_object

CHILD = str(Path(__file__).with_name("fs_child.py"))
# Rounds of each crash test; ``make crash-test`` and ``make test-slow`` run 1,000 of each. The
# default run keeps them short (each round spawns a process, ~0.5 s); the checkpoint-heavy
# variant runs two processes a round.
CRASH_RUNS = int(os.environ.get("SP_CRASH_RUNS", "12"))
HEAVY_CRASH_RUNS = int(os.environ.get("SP_CRASH_RUNS", "5"))


def spawn(*args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, CHILD, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )


def read_lines(process: subprocess.Popen[bytes], into: list[dict[str, Any]]) -> threading.Thread:
    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.endswith(b"\n"):  # a line cut by the kill was never fully reported
                into.append(orjson.loads(line))

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


async def check_store(root: Path, lines: list[dict[str, Any]]) -> list[str]:
    """Every acknowledged write is present; the group transaction is all-or-nothing.

    Returns what is untidy after recovery: problems ``check()`` reports, and stray files
    (:func:`stray_files`) both while the recovered store is open and after it is closed.
    """
    ready = next(line for line in lines if line["kind"] == "ready")
    ids: dict[str, str] = ready["ids"]
    acked: dict[str, int] = {}
    tx = None
    for line in lines:
        if line["kind"] == "write":
            acked[line["name"]] = line["version"]
        elif line["kind"] == "tx":
            tx = line["tx"]
    async with FileSystemSessionStore(root, fs_child.config(), watch=False) as store:
        for name, version in acked.items():
            session = await store.get_session(ids[name])
            assert session is not None
            # One write may have landed after the last acknowledgement, never fewer.
            assert session.version in (version, version + 1), (name, session.version, version)
            assert len(session.interactions) <= session.version
        group = [await store.get_session(ids[name]) for name in ("g0", "g1", "g2")]
        seen = {None if s is None else s.metadata.get("tx") for s in group}
        assert len(seen) == 1, f"half-applied transaction: {seen}"
        if tx is not None:
            assert seen.pop() in (tx, tx + 1)
        if store._checkpointer is not None:  # (a checkpoint under way has temp files)
            await asyncio.to_thread(store._checkpointer.settle)
        report = await store.check()
        untidy = [f"check(): {p.kind} {p.target}: {p.problem}" for p in report.problems]
        untidy += [f"{name} (store open)" for name in stray_files(root)]
    untidy += [f"{name} (store closed)" for name in stray_files(root)]
    return untidy


def stray_files(root: Path) -> list[str]:
    """Files a recovered store should not keep.

    Anything in ``tmp/``; a journal generation other than the newest and the one before it
    (a checkpoint deletes generation g - 1 once g + 1 exists); a file in ``journal/`` that is
    not a generation; a ``.tail`` in ``sessions/`` without its ``.json``.
    """
    found = [f"tmp/{name}" for name in sorted(os.listdir(root / "tmp"))]
    generations: list[int] = []
    for name in sorted(os.listdir(root / "journal")):
        stem, _, suffix = name.partition(".")
        if suffix == "wal" and stem.isdigit():
            generations.append(int(stem))
        else:
            found.append(f"journal/{name}: not a journal generation")
    if generations:
        current = max(generations)
        found += [
            f"journal/{g:016d}.wal: older than the generation before the newest"
            for g in generations
            if g < current - 1
        ]
    names = set(os.listdir(root / "sessions"))
    for name in sorted(names):
        stem, _, suffix = name.rpartition(".")
        if suffix == "tail" and f"{stem}.json" not in names:
            found.append(f"sessions/{name}: a tail without its session file")
    return found


async def kill_at_random(processes: list[subprocess.Popen[bytes]], rng: random.Random) -> None:
    """SIGKILL each process at its own random moment within a quarter second; reap them."""
    moments = sorted((rng.uniform(0.0, 0.25), index) for index in range(len(processes)))
    waited = 0.0
    for moment, index in moments:
        await asyncio.sleep(moment - waited)
        waited = moment
        processes[index].send_signal(signal.SIGKILL)
    for process in processes:
        process.wait()


def finish(process: subprocess.Popen[bytes], pump: threading.Thread, run: int) -> None:
    """Join the output pump, close the pipes, and check the process died by SIGKILL."""
    pump.join()
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdout.close()
    with process.stderr:
        err = process.stderr.read().decode()
    assert process.returncode == -signal.SIGKILL, f"run {run}: {process.args} exited: {err}"


async def wait_ready(process: subprocess.Popen[bytes], lines: list[dict[str, Any]]) -> None:
    deadline = time.monotonic() + 30
    while not lines and time.monotonic() < deadline and process.poll() is None:  # noqa: ASYNC110 - filled by a thread
        await asyncio.sleep(0.005)
    assert lines, process.stderr.read().decode() if process.stderr else "child failed"


async def crash_rounds(root: Path, runs: int, *, checkpoint_bytes: int, optimizer: bool) -> None:
    """``runs`` rounds: start a writer (and an optimizer), SIGKILL them, check the store.

    Lost or half-applied writes fail the round at once. Untidiness (``check()`` problems,
    stray files) is collected over every round and reported together at the end, each item
    once, with the round that first showed it, so one run shows everything that happens.
    """
    rng = random.Random(os.environ.get("SP_CRASH_SEED", "crash"))
    first_seen: dict[str, int] = {}
    untidy_rounds = 0
    optimized = 0
    for run in range(runs):
        lines: list[dict[str, Any]] = []
        writer = spawn("crash", str(root), str(rng.randrange(1 << 30)), str(checkpoint_bytes))
        pumps = [read_lines(writer, lines)]
        processes = [writer]
        if optimizer:
            passes: list[dict[str, Any]] = []
            processes.append(spawn("optimize", str(root)))
            pumps.append(read_lines(processes[1], passes))
            await wait_ready(processes[1], passes)
        await wait_ready(writer, lines)
        await kill_at_random(processes, rng)
        for process, pump in zip(processes, pumps, strict=True):
            finish(process, pump, run)
        if optimizer:
            optimized += sum(1 for line in passes if line["kind"] == "optimized")
        untidy = await check_store(root, lines)
        untidy_rounds += bool(untidy)
        for item in untidy:
            first_seen.setdefault(
                item.removesuffix(" (store open)").removesuffix(" (store closed)"), run
            )
    if optimizer:
        assert optimized > 0, "the optimizer never finished an optimize() before being killed"
    assert not first_seen, (
        f"{untidy_rounds} of {runs} rounds left the store untidy after recovery; "
        f"{len(first_seen)} distinct item(s), with the round first showing each:\n"
        + "\n".join(
            f"  round {run}: {item}" for item, run in sorted(first_seen.items(), key=lambda i: i[1])
        )
    )


async def test_sigkill_at_random_moments_loses_no_acknowledged_write(tmp_path: Path) -> None:
    """A writer SIGKILLed at random moments never loses an acknowledged write or half a tx.

    After each kill, recovery leaves a store that check() finds clean, with no stray files.
    """
    await crash_rounds(tmp_path / "store", CRASH_RUNS, checkpoint_bytes=4096, optimizer=False)


async def test_sigkill_at_random_moments_sealed_and_compressed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same on a store sealed and compressed (issue 23): every record is wrapped.

    A torn wrapped line must be cut like a torn plain one, and a wrapped record must never
    be taken for damage after recovery. (``make crash-test`` runs it 1,000 times.)
    """
    monkeypatch.setenv("SP_CRASH_SEALED", "1")
    await crash_rounds(
        tmp_path / "store", max(1, CRASH_RUNS // 2), checkpoint_bytes=2048, optimizer=False
    )


async def test_sigkill_at_random_moments_with_checkpoints_and_an_optimizer(
    tmp_path: Path,
) -> None:
    """The same with checkpoints every 1 KiB and a second process looping on optimize().

    Both processes are SIGKILLed at their own random moments each round.
    """
    await crash_rounds(tmp_path / "store", HEAVY_CRASH_RUNS, checkpoint_bytes=1024, optimizer=True)


_OPEN_NEW_STORE = """
import asyncio, sys
from session_persistence import FileSystemSessionStore
async def main() -> None:
    async with FileSystemSessionStore(sys.argv[1], watch=False):
        pass
asyncio.run(main())
"""


def test_processes_creating_one_new_store_at_once_all_open_it(tmp_path: Path) -> None:
    """Processes racing to create the same store all open it (none loses its marker file)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for attempt in range(12):  # a race: each attempt gives it another chance to show
        root = tmp_path / f"store{attempt}"
        children = [
            subprocess.Popen(
                [sys.executable, "-c", _OPEN_NEW_STORE, str(root)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
            for _ in range(4)
        ]
        for child in children:
            _out, err = child.communicate(timeout=120)
            assert child.returncode == 0, err.decode()[-2000:]


async def test_processes_times_coroutines_keep_exact_counters(tmp_path: Path) -> None:
    """4 processes x 20 coroutines with expected_version and retry keep counters exact."""
    root = tmp_path / "store"
    async with FileSystemSessionStore(root, watch=False) as store:
        for _ in range(10):
            await store.create_session(
                session_object("counter"), expires_at=None, metadata={"count": 0}
            )
    children = [spawn("counter", str(root), "20", "5") for _ in range(4)]
    done = 0
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err.decode()
        done += orjson.loads(out.splitlines()[-1])["done"]
    assert done == 4 * 20 * 5
    async with FileSystemSessionStore(root, watch=False) as store:
        sessions = await store.list_sessions()
        assert sum(s.metadata["count"] for s in sessions) == done
        assert sum(s.version - 1 for s in sessions) == done


@pytest.mark.slow
async def test_sigkill_torture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both crash tests at length (``make crash-test`` runs each 1,000 times)."""
    monkeypatch.setattr(sys.modules[__name__], "CRASH_RUNS", max(CRASH_RUNS, 1000))
    monkeypatch.setattr(sys.modules[__name__], "HEAVY_CRASH_RUNS", max(HEAVY_CRASH_RUNS, 1000))
    await test_sigkill_at_random_moments_loses_no_acknowledged_write(tmp_path / "plain")
    await test_sigkill_at_random_moments_with_checkpoints_and_an_optimizer(tmp_path / "heavy")
