"""Child process for the get-or-create tests: ``python keyed_child.py <kind> <path> <id> <go>``.

Waits until the file ``<go>`` exists (so every child starts at once), then runs 25 coroutines
that call ``get_or_create_session`` with one id, and prints one JSON line: how many of them
created it, and the session ids they got back.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import orjson

from session_persistence import FileSystemSessionStore, SQLiteSessionStore
from session_persistence.stores.base import SessionStore


def open_store(kind: str, path: str) -> SessionStore:
    if kind == "filesystem":
        return FileSystemSessionStore(path, watch=False)
    return SQLiteSessionStore(path)


async def main(kind: str, path: str, session_id: str, go: str) -> None:
    async with open_store(kind, path) as store:
        while not Path(go).exists():  # noqa: ASYNC110, ASYNC240 - another process's signal
            await asyncio.sleep(0.001)
        results = await asyncio.gather(
            *(store.get_or_create_session(session_id) for _ in range(25))
        )
    created = sum(1 for _, was_created in results if was_created)
    ids = sorted({session.session_id for session, _ in results})
    sys.stdout.buffer.write(orjson.dumps({"created": created, "ids": ids}) + b"\n")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
