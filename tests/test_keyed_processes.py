"""Get-or-create across processes: four processes with one id make exactly one session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from session_persistence import FileSystemSessionStore, SessionFilter, SQLiteSessionStore
from session_persistence.stores.base import SessionStore

CHILD = str(Path(__file__).with_name("keyed_child.py"))
ROOT = str(Path(__file__).resolve().parent.parent)


def _open(kind: str, path: Path) -> SessionStore:
    if kind == "filesystem":
        return FileSystemSessionStore(path, watch=False)
    return SQLiteSessionStore(path)


@pytest.mark.parametrize("kind", ["filesystem", "sqlite"])
async def test_four_processes_get_or_create_one_session(tmp_path: Path, kind: str) -> None:
    """4 processes x 25 coroutines calling get_or_create with one id: 1 session, 1 creator."""
    path = tmp_path / ("store" if kind == "filesystem" else "sessions.db")
    async with _open(kind, path):
        pass  # create the store before the children race to open it
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": ROOT}
    children = [
        subprocess.Popen(  # noqa: ASYNC220 - started at once, then waited on below
            [sys.executable, CHILD, kind, str(path), "chat-0001", str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for _ in range(4)
    ]
    go.touch()
    reports = []
    for child in children:
        out, err = child.communicate(timeout=90)
        assert child.returncode == 0, err.decode()
        reports.append(orjson.loads(out))
    assert sum(report["created"] for report in reports) == 1
    assert all(report["ids"] == ["chat-0001"] for report in reports)
    async with _open(kind, path) as store:
        sessions = await store.list_sessions(SessionFilter(include_expired=True))
        assert [s.session_id for s in sessions] == ["chat-0001"]
        assert sessions[0].version == 1
