"""Child processes for the SQLite multi-process tests: ``python sqlite_child.py <mode> <db> ...``.

``counter DB SESSION N``: increment the session's ``metadata["n"]`` N times with
``expected_version``, retrying conflicts; append one interaction per increment; print a JSON
line with the counts.
``crash DB``: write forever, printing one JSON line per acknowledged write, until killed.
``first-open DIR ROUNDS NAME PEERS``: for each round ``k``, wait until ``PEERS`` processes are
ready (a file barrier in ``DIR``), then open the fresh file ``DIR/k.db``, create a session and
shut down; print one JSON line with the rounds that failed and why.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from pathlib import Path

import orjson

from session_persistence import SessionConflictError, SQLiteSessionStore
from session_persistence.testing import interaction, session_object


def report(**fields: object) -> None:
    sys.stdout.buffer.write(orjson.dumps(fields) + b"\n")
    sys.stdout.buffer.flush()


async def counter(path: str, session_id: str, times: int, name: str) -> None:
    conflicts = 0
    async with SQLiteSessionStore(path, busy_timeout=30) as store:
        for i in range(times):
            while True:
                current = await store.get_session(session_id)
                assert current is not None
                try:
                    await store.update_session(
                        session_id,
                        {"metadata": {"n": current.metadata["n"] + 1}},
                        expected_version=current.version,
                    )
                    break
                except SessionConflictError:
                    conflicts += 1
            await store.append_interactions(session_id, interaction(f"{name}-{i}"))
    report(kind="done", name=name, increments=times, conflicts=conflicts)


async def crash(path: str) -> None:
    async with SQLiteSessionStore(path) as store:
        session = await store.create_session(session_object("crash"), expires_at=None)
        report(kind="ready", id=session.session_id)
        for i in itertools.count():
            header = await store.append_interactions(session.session_id, interaction(str(i)))
            updated = await store.update_session(
                session.session_id, {"metadata": {"i": i}, "merge_metadata": True}
            )
            report(kind="write", i=i, count=header.interaction_count, version=updated.version)


def barrier(folder: Path, name: str, peers: int) -> None:
    """Wait until ``peers`` processes have reached this barrier (each leaves a file)."""
    folder.mkdir(exist_ok=True)
    (folder / name).touch()
    deadline = time.monotonic() + 60
    while len(list(folder.iterdir())) < peers:
        if time.monotonic() > deadline:
            raise SystemExit(f"{name}: the other processes never reached {folder}")
        time.sleep(0.0005)


async def first_open(folder: str, rounds: int, name: str, peers: int) -> None:
    failed: list[str] = []
    for k in range(rounds):
        barrier(Path(folder) / f"ready-{k}", name, peers)
        try:
            async with SQLiteSessionStore(Path(folder) / f"{k}.db") as store:
                await store.create_session(session_object(name), expires_at=None)
        except Exception as exc:
            failed.append(f"round {k}: {type(exc).__name__}: {exc}")
    report(kind="done", name=name, failed=failed)


def main() -> None:
    mode, path, *rest = sys.argv[1:]
    if mode == "counter":
        asyncio.run(counter(path, rest[0], int(rest[1]), rest[2]))
    elif mode == "crash":
        asyncio.run(crash(path))
    elif mode == "first-open":
        asyncio.run(first_open(path, int(rest[0]), rest[1], int(rest[2])))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
