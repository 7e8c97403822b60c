"""Managers in real processes: two appending to one session, SIGKILL after persist()."""

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

from session_persistence import FileSystemSessionStore
from session_persistence.testing import session_object

CHILD = str(Path(__file__).with_name("manager_child.py"))


def spawn(*args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, CHILD, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )


def texts(session: Any) -> list[str]:
    return [i.request.event["content"] for i in session.interactions]


async def test_two_processes_appending_through_default_sessions(tmp_path: Path) -> None:
    """Two managers in two processes append to one session: all land, each in its order."""
    async with FileSystemSessionStore(tmp_path, watch=False) as store:
        created = await store.create_session(session_object("shared"), expires_at=None)
    children = [spawn("append", str(tmp_path), created.session_id, name, "40") for name in "ab"]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err.decode()
    async with FileSystemSessionStore(tmp_path, watch=False) as store:
        stored = await store.get_session(created.session_id)
    assert stored is not None
    got = texts(stored)
    assert len(got) == 80
    for name in "ab":
        assert [t for t in got if t.startswith(name)] == [f"{name}-{i}" for i in range(40)]
    assert stored.version <= 81  # appends, never a rewrite per interaction


async def test_sigkill_after_persist_loses_nothing(tmp_path: Path) -> None:
    """What persist() acknowledged survives a SIGKILL at a random moment (3 runs)."""
    rng = random.Random("manager-crash")
    for run in range(3):
        root = tmp_path / f"run{run}"
        child = spawn("crash", str(root))
        lines: list[dict[str, Any]] = []

        def pump(process: subprocess.Popen[bytes] = child, into: list[Any] = lines) -> None:
            assert process.stdout is not None
            for line in process.stdout:
                if line.endswith(b"\n"):
                    into.append(orjson.loads(line))

        thread = threading.Thread(target=pump, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while len(lines) < 3 and time.monotonic() < deadline and child.poll() is None:  # noqa: ASYNC110 - filled by a thread
            await asyncio.sleep(0.005)
        await asyncio.sleep(rng.uniform(0.0, 0.2))
        child.send_signal(signal.SIGKILL)
        child.wait()
        thread.join()
        assert child.stdout is not None
        assert child.stderr is not None
        child.stdout.close()
        child.stderr.close()
        assert child.returncode == -signal.SIGKILL, f"run {run}: the child exited by itself"
        session_id = lines[0]["id"]
        acked = [line["i"] for line in lines if line["kind"] == "persisted"]
        assert acked, "nothing was persisted before the kill"
        async with FileSystemSessionStore(root, watch=False) as store:
            stored = await store.get_session(session_id)
        assert stored is not None
        got = texts(stored)
        expected = []
        for i in range(acked[-1] + 1):
            expected += [str(i), f"{i}b"] if i % 3 == 0 else [str(i)]
        assert got[: len(expected)] == expected  # every acknowledged interaction, in order
        assert len(got) - len(expected) <= 2  # at most the persist in flight at the kill
