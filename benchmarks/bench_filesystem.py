"""Filesystem store benchmarks, with raw sqlite3 measured in the same run as the peer.

Run: ``.venv/bin/python benchmarks/bench_filesystem.py [--quick] [--dir PATH]``

Reports median, p99 and max per operation (never means), the ratio to the peer, and the machine
and durability mode beside the figures. The workloads (issue 3):

1. durable single-writer updates of a ~1 KB session vs sqlite3 WAL ``synchronous=FULL`` upserts;
2. 64 concurrent writers (group commit: fsyncs per acknowledged write);
3. appending one interaction to a session of 10 vs 10,000 interactions;
4. opening and counting a store of 100,000 sessions (from the index snapshot, and rebuilt).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from session_persistence import FileSystemSessionStore
from session_persistence.stores.filesystem._watch import network_filesystem
from session_persistence.testing import interaction, session_object


def summary(samples: list[float]) -> str:
    """Median, p99 and max of latency samples, in milliseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"median {statistics.median(ordered) * 1e3:8.3f} ms  p99 {p99 * 1e3:8.3f} ms  "
        f"max {ordered[-1] * 1e3:8.3f} ms  (n={len(ordered)})"
    )


async def timed(samples: list[float], coroutine: object) -> None:
    """Await ``coroutine`` and record how long it took."""
    start = time.perf_counter()
    await coroutine  # type: ignore[misc]
    samples.append(time.perf_counter() - start)


async def single_writer(root: Path, n: int) -> list[float]:
    """Durable updates of one ~1 KB session, one at a time."""
    samples: list[float] = []
    async with FileSystemSessionStore(root, watch=False) as store:
        created = await store.create_session(session_object(), metadata={"blob": "x" * 600})
        for i in range(n):
            await timed(
                samples,
                store.update_session(created.session_id, {"metadata": {"blob": f"{i:08d}" * 75}}),
            )
    return samples


def sqlite_upserts(path: Path, n: int) -> list[float]:
    """The peer: raw sqlite3 upserts of a ~1 KB row in WAL mode with synchronous=FULL."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("CREATE TABLE sessions (id TEXT PRIMARY KEY, data BLOB, version INT)")
    samples = []
    for i in range(n):
        data = (f"{i:08d}" * 128).encode()
        start = time.perf_counter()
        connection.execute(
            "INSERT INTO sessions VALUES ('s', ?, 1) ON CONFLICT(id) DO UPDATE "
            "SET data = excluded.data, version = version + 1",
            (data,),
        )
        samples.append(time.perf_counter() - start)
    connection.close()
    return samples


async def concurrent_writers(
    root: Path, writers: int, each: int
) -> tuple[list[float], dict[str, int]]:
    """``writers`` coroutines updating their own sessions at once; group-commit counters."""
    samples: list[float] = []
    async with FileSystemSessionStore(root, watch=False) as store:
        ids = [(await store.create_session(session_object())).session_id for _ in range(writers)]
        before = dict(store._counters)

        async def writer(session_id: str) -> None:
            for i in range(each):
                await timed(samples, store.update_session(session_id, {"metadata": {"i": i}}))

        start = time.perf_counter()
        await asyncio.gather(*(writer(session_id) for session_id in ids))
        elapsed = time.perf_counter() - start
        counters = {k: store._counters[k] - before[k] for k in before}
    counters["writes_per_second"] = round(writers * each / elapsed)
    return samples, counters


async def appends(root: Path, sizes: tuple[int, ...], n: int) -> dict[int, list[float]]:
    """Appending one interaction to sessions of each size."""
    results = {}
    async with FileSystemSessionStore(root, watch=False) as store:
        for size in sizes:
            created = await store.create_session(session_object(interactions=size))
            await store.optimize()  # the long history is in its file, not pending in memory
            samples: list[float] = []
            for _ in range(n):
                await timed(samples, store.append_interactions(created.session_id, interaction()))
            results[size] = samples
    return results


async def open_and_count(root: Path, sessions: int) -> dict[str, float]:
    """Time initialize() + count_sessions() from the snapshot, then with a rebuild."""
    async with FileSystemSessionStore(root, durability="process", watch=False) as store:
        for _ in range(sessions):
            await store.create_session(session_object(), metadata={"k": "v"})
    figures = {}
    for label in ("snapshot", "rebuild"):
        if label == "rebuild":
            (root / "index.json").unlink()
        start = time.perf_counter()
        store = FileSystemSessionStore(root, watch=False)
        await store.initialize()
        count = await store.count_sessions()
        figures[label] = time.perf_counter() - start
        assert count == sessions
        await store.shutdown()
    return figures


async def main() -> None:
    """Run every workload and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    parser.add_argument("--dir", type=Path, default=None, help="where to create the stores")
    args = parser.parse_args()
    n = 60 if args.quick else 500
    sessions = 2_000 if args.quick else 100_000
    big = 1_000 if args.quick else 10_000
    base = Path(tempfile.mkdtemp(prefix="sp-bench-", dir=args.dir))
    try:
        python = sys.version.split()[0]
        print(f"machine: {platform.platform()}, {os.cpu_count()} cpus, Python {python}")
        print(f"directory: {base} (network fs: {network_filesystem(base) or 'no'})")
        print("durability: full (fsync before acknowledging) unless noted\n")

        ours = await single_writer(base / "single", n)
        peer = sqlite_upserts(base / "peer.db", n)
        print("1. single writer, durable update of a ~1 KB session")
        print(f"   filesystem store  {summary(ours)}")
        print(f"   sqlite3 WAL FULL  {summary(peer)}")
        ratio = statistics.median(ours) / statistics.median(peer)
        print(f"   ratio (ours / sqlite3, median): {ratio:.2f}\n")

        samples, counters = await concurrent_writers(
            base / "concurrent", 64, 10 if args.quick else 30
        )
        print("2. 64 concurrent writers")
        print(f"   per write         {summary(samples)}")
        print(
            f"   {counters['writes_per_second']} writes/s; {counters['batches']} writes "
            f"in {counters['commits']} group commits with {counters['fsyncs']} fsyncs\n"
        )

        results = await appends(base / "appends", (10, big), n)
        print(f"3. append one interaction (session of 10 vs {big:,})")
        for size, samples in results.items():
            print(f"   {size:>6,} interactions  {summary(samples)}")
        ratio = statistics.median(results[big]) / statistics.median(results[10])
        print(f"   ratio ({big:,} / 10, median): {ratio:.2f}\n")

        figures = await open_and_count(base / "large", sessions)
        print(f"4. open + count a store of {sessions:,} sessions")
        print(f"   from the index snapshot  {figures['snapshot'] * 1e3:9.1f} ms")
        print(f"   rebuilt from files       {figures['rebuild'] * 1e3:9.1f} ms")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
