"""Backup benchmark: how long a backup takes, and how long writers wait for it.

Run: ``.venv/bin/python benchmarks/bench_backup.py [--sessions N] [--dir PATH]``

A filesystem store (``durability="full"``) of N sessions (default 10,000, checkpointed into
session files) takes backups while 8 coroutines keep updating sessions. Reported: the backup's
duration, and the update latency (median, p99, max) with and without a backup running, so the
writers' pause shows as the difference in max. (A journal checkpoint, which the updates trigger
every 8 MiB, also holds writers off while it writes session files; it shows in max too.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from bench_filesystem import summary  # run as a script: benchmarks/ is on sys.path

from session_persistence import FileSystemSessionStore, SessionStoreConfig
from session_persistence.testing import session_object


async def run(sessions: int, directory: Path) -> None:
    """Fill a store, then time backups against concurrent writers."""
    config = SessionStoreConfig(default_session_ttl=None, max_backups=3)
    async with FileSystemSessionStore(directory / "store", config, watch=False) as store:
        ids = []
        async with store.transaction():
            for index in range(sessions):
                made = await store.create_session(
                    session_object(interactions=3), metadata={"i": index}
                )
                ids.append(made.session_id)
        await store.optimize()
        started = time.perf_counter()
        await store.create_backup()
        alone = time.perf_counter() - started
        latencies: list[float] = []
        stop = asyncio.Event()

        async def writer(offset: int) -> None:
            index = offset
            while not stop.is_set():
                started = time.perf_counter()
                await store.update_session(ids[index % len(ids)], {"tags": [str(index)]})
                latencies.append(time.perf_counter() - started)
                index += 8

        tasks = [asyncio.create_task(writer(n)) for n in range(8)]
        await asyncio.sleep(2.0)
        quiet = list(latencies)
        latencies.clear()
        durations = []
        for _ in range(3):
            started = time.perf_counter()
            backup = await store.create_backup()
            durations.append(time.perf_counter() - started)
        stop.set()
        await asyncio.gather(*tasks)
        print(f"store: {sessions:,} sessions, durability=full, {os.cpu_count()} CPUs")
        print(f"backup with no writers: {alone:.2f}s")
        print(f"backup of {len(backup.sessions):,} sessions: "
              f"{', '.join(f'{d:.2f}s' for d in durations)} "
              f"({backup.metadata['size_bytes']:,} bytes)")  # fmt: skip
        print(f"updates without a backup: {summary(quiet)}")
        print(f"updates during backups:   {summary(latencies)}")


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        asyncio.run(run(args.sessions, Path(directory)))


if __name__ == "__main__":
    main()
