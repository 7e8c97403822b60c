"""Work that must run in a process of its own (fresh memory, or several writers at once).

``python _child.py open KIND PATH``
    open the store, answer one query; print the seconds until it answered, the resident
    memory the open added and the process's peak resident memory.
``python _child.py readall DIR``
    read and parse every ``*.json`` file in DIR (what a store without an index does to open).
``python _child.py write KIND PATH COUNT GO``
    open the store and create one's own ~1 KB session, touch ``GO.ready.<pid>``, wait for the
    file GO to exist, then update that session COUNT times; print when it started and
    finished, each write's seconds, and every failure (counted, never raised: a failed open
    or write is a figure, and ``locked`` counts those saying the database was locked).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from _measure import rss_bytes
from _targets import payload

from session_persistence import FileSystemSessionStore, SessionStore, SQLiteSessionStore
from session_persistence.testing import session_object


def build(kind: str, path: str) -> SessionStore:
    """A closed store of ``kind`` (``filesystem`` or ``sqlite``, full durability) at ``path``."""
    if kind == "filesystem":
        return FileSystemSessionStore(path, watch=False)
    return SQLiteSessionStore(path, watch=False)


async def open_store(kind: str, path: str) -> dict[str, float]:
    """Seconds from nothing to the first answered query, and the memory it took."""
    before = rss_bytes()
    start = time.perf_counter()
    store = build(kind, path)
    await store.initialize()
    count = await store.count_sessions()
    seconds = time.perf_counter() - start
    grown = rss_bytes() - before
    peak = rss_bytes("VmHWM")
    await store.shutdown()
    return {"seconds": seconds, "rss_bytes": grown, "peak_rss_bytes": peak, "sessions": count}


def read_all(directory: str) -> dict[str, float]:
    """Seconds to read and parse every session file."""
    start = time.perf_counter()
    count = 0
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.endswith(".json"):
                with open(entry.path, "rb") as file:
                    data = file.read()
                orjson.loads(data[data.index(b"\n") + 1 :])  # head line, then the document
                count += 1
    return {"seconds": time.perf_counter() - start, "sessions": count}


async def write(kind: str, path: str, count: int, go: str) -> dict[str, Any]:
    """Update one's own session ``count`` times, starting when ``go`` appears."""
    errors: list[str] = []
    store: SessionStore | None = build(kind, path)
    session_id = ""
    try:
        await store.initialize()
        session_id = (
            await store.create_session(session_object(), metadata=payload(1024, 0))
        ).session_id
    except Exception as exc:  # a failed open is a figure of the run, not a crash of it
        errors.append(f"open: {type(exc).__name__}: {exc}")
        store = None
    Path(f"{go}.ready.{os.getpid()}").touch()
    while not os.path.exists(go):
        await asyncio.sleep(0.001)
    started = time.time()
    durations: list[float] = []
    if store is not None:
        for salt in range(1, count + 1):
            begin = time.perf_counter()
            try:
                await store.update_session(session_id, {"metadata": payload(1024, salt)})
            except Exception as exc:
                errors.append(f"write: {type(exc).__name__}: {exc}")
                continue
            durations.append(time.perf_counter() - begin)
    finished = time.time()
    if store is not None:
        await store.shutdown()
    return {
        "started": started,
        "finished": finished,
        "writes": len(durations),
        "durations": durations,
        "failed": len(errors),
        "locked": sum("locked" in e.lower() for e in errors),
        "errors": errors[:5],
    }


def main(argv: list[str]) -> None:
    """Dispatch on the first argument; print one JSON object."""
    mode = argv[0]
    result: dict[str, Any]
    if mode == "open":
        result = asyncio.run(open_store(argv[1], argv[2]))
    elif mode == "readall":
        result = read_all(argv[1])
    elif mode == "write":
        result = asyncio.run(write(argv[1], argv[2], int(argv[3]), argv[4]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
