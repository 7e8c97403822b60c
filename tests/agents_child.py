"""Child process for the Agents SDK tests: ``python agents_child.py <mode> <kind> <path> <go> <n>``.

Waits for the file ``<go>``, then on the session ``shared``: ``add`` adds ``n`` items one call
at a time (tagged with this process's id) and prints ``{"added": n}``; ``pop`` pops until the
session is empty (or ``n`` times) and prints the popped items' texts.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any, cast

import orjson

from session_persistence import FileSystemSessionStore, SQLiteSessionStore
from session_persistence.integrations.openai_agents import AgentsSession
from session_persistence.stores.base import SessionStore


def open_store(kind: str, path: str) -> SessionStore:
    if kind == "filesystem":
        return FileSystemSessionStore(path, watch=False)
    return SQLiteSessionStore(path)


async def main(mode: str, kind: str, path: str, go: str, n: int) -> None:
    async with open_store(kind, path) as store:
        session = AgentsSession("shared", store)
        while not Path(go).exists():  # noqa: ASYNC110, ASYNC240 - another process's signal
            await asyncio.sleep(0.001)
        if mode == "add":
            for i in range(n):
                item = {"role": "user", "content": f"{os.getpid()}:{i}"}
                await session.add_items([cast(Any, item)])
            result: dict[str, Any] = {"added": n}
        else:
            popped = []
            for _ in range(n):
                item = await session.pop_item()
                if item is None:
                    break
                popped.append(cast(dict[str, Any], item)["content"])
            result = {"popped": popped}
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5], int(sys.argv[5])))
