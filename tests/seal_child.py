"""Child process of the rotation crash test: ``python seal_child.py <store dir>``.

Opens the store sealed with k1 (tests/_sealing.py's keys), starts four writers appending to
the first four sessions, then calls ``rotate_key("k2")``. Prints one JSON line per
acknowledged append (``{"kind": "write", "id", "version"}``) and per progress step
(``{"kind": "progress", "done", "total"}``) until it is killed.
"""

from __future__ import annotations

import asyncio
import sys

import orjson
from _sealing import KEYS

from session_persistence import FileSystemSessionStore, SessionStoreConfig
from session_persistence.testing import interaction


def report(**fields: object) -> None:
    sys.stdout.buffer.write(orjson.dumps(fields) + b"\n")
    sys.stdout.buffer.flush()


async def write(store: FileSystemSessionStore, session_id: str) -> None:
    while True:
        header = await store.append_interactions(session_id, interaction("during rotation"))
        report(kind="write", id=session_id, version=header.version)
        await asyncio.sleep(0.002)


async def main(root: str) -> None:
    config = SessionStoreConfig(encryption=KEYS, default_session_ttl=None)
    async with FileSystemSessionStore(root, config, watch=False, checkpoint_bytes=16384) as store:
        ids = sorted(header.session_id for header in await store.list_session_headers())
        writers = [asyncio.create_task(write(store, session_id)) for session_id in ids[:4]]
        await asyncio.sleep(0.05)
        await store.rotate_key(
            "k2", progress=lambda done, total: report(kind="progress", done=done, total=total)
        )
        report(kind="rotated")
        await asyncio.gather(*writers)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
