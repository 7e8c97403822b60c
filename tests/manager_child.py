"""Child processes for the manager tests: ``python manager_child.py <mode> <dir> ...``.

``append DIR SESSION NAME N``: load the session through a manager on the filesystem store in
DIR and add N interactions ``NAME-i`` through its DefaultSession, auto-persisted, with short
pauses so the two children's writes interleave; shut down; print a JSON line.
``crash DIR``: create a managed session, then add interactions forever, printing one JSON
line after each ``persist()`` returns, until killed.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import sys

import orjson

from session_persistence import SessionPersistenceConfig, SessionPersistenceManager
from session_persistence.testing import interaction, session_object


def report(**fields: object) -> None:
    sys.stdout.buffer.write(orjson.dumps(fields) + b"\n")
    sys.stdout.buffer.flush()


async def append(root: str, session_id: str, name: str, times: int) -> None:
    config = SessionPersistenceConfig(filesystem_base_dir=root, auto_persist_delay=0.002)
    async with SessionPersistenceManager(config) as manager:
        session = await manager.load_managed_session(session_id)
        assert session is not None
        for i in range(times):
            session.add_interaction(interaction(f"{name}-{i}"))
            await asyncio.sleep(random.uniform(0, 0.01))
    report(kind="done", name=name, persists=session.get_persistence_metadata()["persist_count"])


async def crash(root: str) -> None:
    config = SessionPersistenceConfig(filesystem_base_dir=root, auto_persist_delay=3600)
    async with SessionPersistenceManager(config) as manager:
        session = await manager.create_managed_session(session_object("crash"), expires_at=None)
        report(kind="ready", id=session.session_id)
        for i in itertools.count():
            session.add_interaction(interaction(str(i)))
            if i % 3 == 0:
                session.add_interaction(interaction(f"{i}b"))
            await session.persist()
            report(kind="persisted", i=i)


def main() -> None:
    mode, root, *rest = sys.argv[1:]
    if mode == "append":
        session_id, name, times = rest
        asyncio.run(append(root, session_id, name, int(times)))
    elif mode == "crash":
        asyncio.run(crash(root))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
