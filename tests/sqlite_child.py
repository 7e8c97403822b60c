"""Child processes for the SQLite multi-process tests: ``python sqlite_child.py <mode> <db> ...``.

``counter DB SESSION N``: increment the session's ``metadata["n"]`` N times with
``expected_version``, retrying conflicts; append one interaction per increment; print a JSON
line with the counts.
``crash DB``: write forever, printing one JSON line per acknowledged write, until killed.
"""

from __future__ import annotations

import asyncio
import itertools
import sys

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


def main() -> None:
    mode, path, *rest = sys.argv[1:]
    if mode == "counter":
        asyncio.run(counter(path, rest[0], int(rest[1]), rest[2]))
    elif mode == "crash":
        asyncio.run(crash(path))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
