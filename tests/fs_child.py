"""Child processes for the multi-process tests: ``python fs_child.py <mode> <store dir> [...]``.

``crash``: write forever, printing one JSON line per acknowledged write, until killed
(``crash <dir> <seed> [checkpoint_bytes]``).
``optimize``: call ``optimize()`` (a checkpoint) in a loop, printing a line after each, until
killed.
``counter``: run coroutines that increment shared counters with ``expected_version`` and
retry; print the number of successful increments.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys

import orjson
from _sealing import COMPRESSION, KEYS

from session_persistence import (
    FileSystemSessionStore,
    SessionConflictError,
    SessionStoreConfig,
)
from session_persistence.testing import interaction, session_object

GROUP = ["g0", "g1", "g2"]


def config() -> SessionStoreConfig | None:
    """Sealed and compressed when ``SP_CRASH_SEALED`` is set (the crash tests' sealed runs)."""
    if not os.environ.get("SP_CRASH_SEALED"):
        return None
    return SessionStoreConfig(encryption=KEYS, compression=COMPRESSION)


def report(**fields: object) -> None:
    sys.stdout.buffer.write(orjson.dumps(fields) + b"\n")
    sys.stdout.buffer.flush()


async def crash(root: str, seed: int, checkpoint_bytes: int = 4096) -> None:
    rng = random.Random(seed)
    async with FileSystemSessionStore(
        root, config(), checkpoint_bytes=checkpoint_bytes, watch=False
    ) as store:
        by_name = {s.metadata["name"]: s for s in await store.list_sessions()}
        for name in ["s0", "s1", "s2", "s3", *GROUP]:
            if name not in by_name:
                by_name[name] = await store.create_session(
                    session_object("crash"), expires_at=None, metadata={"name": name}
                )
        ids = {name: session.session_id for name, session in by_name.items()}
        tx = max(int(by_name[name].metadata.get("tx", 0)) for name in GROUP)
        report(kind="ready", ids=ids)
        while True:
            choice = rng.random()
            name = rng.choice(["s0", "s1", "s2", "s3"])
            if choice < 0.4:
                header = await store.append_interactions(ids[name], interaction(name))
                report(kind="write", name=name, version=header.version)
            elif choice < 0.8:
                n = rng.randrange(1 << 30)
                updated = await store.update_session(
                    ids[name], {"metadata": {"name": name, "n": n}}
                )
                report(kind="write", name=name, version=updated.version)
            else:
                tx += 1
                async with store.transaction():
                    for member in GROUP:
                        await store.update_session(
                            ids[member], {"metadata": {"name": member, "tx": tx}}
                        )
                report(kind="tx", tx=tx)


async def optimize(root: str) -> None:
    async with FileSystemSessionStore(root, config(), checkpoint_bytes=4096, watch=False) as store:
        report(kind="ready")
        rounds = 0
        while True:
            await store.optimize()
            rounds += 1
            report(kind="optimized", rounds=rounds)


async def counter(root: str, coroutines: int, increments: int) -> None:
    async with FileSystemSessionStore(root, watch=False) as store:
        sessions = sorted(s.session_id for s in await store.list_sessions())
        done = 0

        async def worker(seed: int) -> None:
            nonlocal done
            rng = random.Random(seed)
            for _ in range(increments):
                session_id = rng.choice(sessions)
                while True:
                    current = await store.get_session(session_id)
                    assert current is not None
                    count = current.metadata["count"] + 1
                    try:
                        await store.update_session(
                            session_id,
                            {"metadata": {"count": count}},
                            expected_version=current.version,
                        )
                    except SessionConflictError:
                        continue
                    done += 1
                    break

        await asyncio.gather(*(worker(random.randrange(1 << 30)) for _ in range(coroutines)))
        report(done=done)


if __name__ == "__main__":
    mode, directory = sys.argv[1], sys.argv[2]
    if mode == "crash":
        asyncio.run(crash(directory, *(int(arg) for arg in sys.argv[3:5])))
    elif mode == "optimize":
        asyncio.run(optimize(directory))
    else:
        asyncio.run(counter(directory, int(sys.argv[3]), int(sys.argv[4])))
