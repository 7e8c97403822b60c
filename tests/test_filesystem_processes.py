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

import orjson
import pytest

from session_persistence import FileSystemSessionStore
from session_persistence.testing import session_object

CHILD = str(Path(__file__).with_name("fs_child.py"))
# 12 kills in the default run (each spawns a writer process, ~0.5 s); `make test-slow` and
# `make crash-test` run 1,000.
CRASH_RUNS = int(os.environ.get("SP_CRASH_RUNS", "12"))


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


async def check_store(root: Path, lines: list[dict[str, Any]]) -> None:
    """Every acknowledged write is present; the group transaction is all-or-nothing."""
    ready = next(line for line in lines if line["kind"] == "ready")
    ids: dict[str, str] = ready["ids"]
    acked: dict[str, int] = {}
    tx = None
    for line in lines:
        if line["kind"] == "write":
            acked[line["name"]] = line["version"]
        elif line["kind"] == "tx":
            tx = line["tx"]
    async with FileSystemSessionStore(root, watch=False) as store:
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
    assert not os.listdir(root / "tmp"), "temp files left behind"


async def test_sigkill_at_random_moments_loses_no_acknowledged_write(tmp_path: Path) -> None:
    """A writer SIGKILLed at random moments never loses an acknowledged write or half a tx."""
    root = tmp_path / "store"
    rng = random.Random(os.environ.get("SP_CRASH_SEED", "crash"))
    for run in range(CRASH_RUNS):
        lines: list[dict[str, Any]] = []
        child = spawn("crash", str(root), str(rng.randrange(1 << 30)))
        pump = read_lines(child, lines)
        deadline = time.monotonic() + 30
        while not lines and time.monotonic() < deadline and child.poll() is None:  # noqa: ASYNC110 - filled by a thread
            await asyncio.sleep(0.005)
        assert lines, child.stderr.read().decode() if child.stderr else "child failed"
        await asyncio.sleep(rng.uniform(0.0, 0.25))
        child.send_signal(signal.SIGKILL)
        child.wait()
        pump.join()
        assert child.stdout is not None
        assert child.stderr is not None
        child.stdout.close()
        child.stderr.close()
        assert child.returncode == -signal.SIGKILL, f"run {run}: the child exited by itself"
        await check_store(root, lines)


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
    """The crash test at length (``make crash-test`` runs it 1,000 times)."""
    monkeypatch.setattr(sys.modules[__name__], "CRASH_RUNS", max(CRASH_RUNS, 1000))
    await test_sigkill_at_random_moments_loses_no_acknowledged_write(tmp_path)
