"""SQLite store: several processes at once on one database file (real subprocesses)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson

CHILD = str(Path(__file__).with_name("sqlite_child.py"))


def spawn(*args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, CHILD, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )


async def test_four_processes_opening_a_fresh_file_at_once_all_succeed(tmp_path: Path) -> None:
    """4 processes open the same new file at the same instant, 50 times: every open succeeds.

    Each round's file is new, so the processes race to create the schema and to put the file
    in WAL mode.
    """
    rounds, peers = 50, 4
    children = [
        spawn("first-open", str(tmp_path), str(rounds), f"p{i}", str(peers)) for i in range(peers)
    ]
    outputs = [await asyncio.to_thread(child.communicate, timeout=300) for child in children]
    failed: list[str] = []
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err.decode()
        report = orjson.loads(out)
        failed += [f"{report['name']} {line}" for line in report["failed"]]
    assert failed == []
    for k in range(rounds):
        db = sqlite3.connect(tmp_path / f"{k}.db")
        try:
            assert db.execute("SELECT count(*) FROM sessions").fetchone() == (peers,)
        finally:
            db.close()
