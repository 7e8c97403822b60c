"""SQLite store benchmarks, with raw sqlite3 doing the same statements in the same run.

Run: ``.venv/bin/python benchmarks/bench_sqlite.py [--quick] [--dir PATH]``

Reports median, p99 and max (never means) and ratios measured in the same run:

1. durable single-writer update of a ~1 KB session (``durability="full"``): our store vs raw
   sqlite3 running the statements the store runs (``BEGIN IMMEDIATE``, version check, upsert,
   replace the interaction rows, ``COMMIT``, same pragmas), and vs a bare one-row upsert;
2. appending one interaction to a session of 10 vs 10,000 interactions;
3. 64 concurrent writers: writes per second and the group commits that served them;
4. warm ``get_session`` of a 5-interaction session;
5. ``count_sessions`` with a filter and ``list_sessions(limit=50)`` sorted, on N sessions.
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

from bench_filesystem import sqlite_upserts, summary, timed  # benchmarks/ is on sys.path

from session_persistence import (
    SessionFilter,
    SessionQueryOptions,
    SessionStoreConfig,
    SQLiteSessionStore,
)
from session_persistence.testing import interaction, session_object


async def single_writer(path: Path, n: int) -> list[float]:
    """Durable updates of one ~1 KB session (5 interactions), one at a time."""
    samples: list[float] = []
    async with SQLiteSessionStore(path) as store:
        created = await store.create_session(
            session_object(interactions=5), metadata={"blob": "x" * 600}
        )
        for i in range(n):
            update = store.update_session(
                created.session_id, {"metadata": {"blob": f"{i:08d}" * 75}}
            )
            await timed(samples, update)
    return samples


def same_statements(path: Path, n: int) -> list[float]:
    """The peer: raw sqlite3 running the statements our store runs for that update."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute(
        "CREATE TABLE sessions (session_id TEXT PRIMARY KEY, processor_id, activity_id, "
        "request_id, ulid_ids, created_at, updated_at, last_accessed_at, expires_at, version, "
        "metadata, tags, interaction_count, size_bytes)"
    )
    db.execute(
        "CREATE TABLE interactions (session_id TEXT REFERENCES sessions ON DELETE CASCADE, "
        "seq INTEGER, data TEXT, PRIMARY KEY (session_id, seq)) WITHOUT ROWID"
    )
    rows = [
        f'{{"request":{{"event":{{"content":"message {i}"}}}},"responses":[]}}' for i in range(5)
    ]
    stamp = "2026-11-21T09:30:00.123456+00:00"
    samples = []
    for i in range(n):
        metadata = f'{{"blob":"{f"{i:08d}" * 75}"}}'
        start = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("SELECT version FROM sessions WHERE session_id = 's'").fetchone()
        db.execute(
            "INSERT INTO sessions VALUES ('s', 'p', 'a', 'r', 3, ?, ?, ?, NULL, ?, ?, '[]', 5, 900)"
            " ON CONFLICT(session_id) DO UPDATE SET updated_at = excluded.updated_at, "
            "last_accessed_at = excluded.last_accessed_at, version = excluded.version, "
            "metadata = excluded.metadata",
            (stamp, stamp, stamp, i + 1, metadata),
        )
        db.execute("DELETE FROM interactions WHERE session_id = 's'")
        db.executemany("INSERT INTO interactions VALUES ('s', ?, ?)", list(enumerate(rows)))
        db.execute("COMMIT")
        samples.append(time.perf_counter() - start)
    db.close()
    return samples


async def appends(path: Path, sizes: tuple[int, ...], n: int) -> dict[int, list[float]]:
    """Appending one interaction to sessions of each size."""
    results = {}
    async with SQLiteSessionStore(path) as store:
        for size in sizes:
            created = await store.create_session(session_object(interactions=size))
            samples: list[float] = []
            for _ in range(n):
                await timed(samples, store.append_interactions(created.session_id, interaction()))
            results[size] = samples
    return results


async def concurrent_writers(
    path: Path, writers: int, each: int
) -> tuple[list[float], dict[str, int]]:
    """``writers`` coroutines updating their own sessions at once."""
    samples: list[float] = []
    async with SQLiteSessionStore(path) as store:
        ids = [(await store.create_session(session_object())).session_id for _ in range(writers)]
        before = (await store.get_stats()).backend

        async def writer(session_id: str) -> None:
            for i in range(each):
                await timed(samples, store.update_session(session_id, {"metadata": {"i": i}}))

        start = time.perf_counter()
        await asyncio.gather(*(writer(session_id) for session_id in ids))
        elapsed = time.perf_counter() - start
        after = (await store.get_stats()).backend
    return samples, {
        "writes_per_second": round(writers * each / elapsed),
        "batches": after["batches_committed"] - before["batches_committed"],
        "commits": after["commits"] - before["commits"],
    }


async def reads_and_queries(path: Path, sessions: int, n: int) -> dict[str, list[float]]:
    """Warm get_session, and count/list queries over ``sessions`` sessions."""
    config = SessionStoreConfig(default_session_ttl=None)
    results: dict[str, list[float]] = {"get": [], "count": [], "list": []}
    async with SQLiteSessionStore(path, config, durability="process") as store:
        for start in range(0, sessions, 500):  # one commit per 500 for the fill
            async with store.transaction():
                for i in range(start, min(sessions, start + 500)):
                    obj = session_object(f"proc-{i % 10}")
                    await store.create_session(obj, metadata={"k": i % 7})
        target = await store.create_session(session_object(interactions=5))
        await store.get_session(target.session_id)
        for _ in range(n):
            await timed(results["get"], store.get_session(target.session_id))
        flt = SessionFilter(processor_id="proc-3", metadata={"k": 2})
        options = SessionQueryOptions(limit=50, sort_by="updated_at", sort_order="desc")
        for _ in range(max(5, n // 20)):
            await timed(results["count"], store.count_sessions(flt))
            await timed(results["list"], store.list_sessions(None, options))
    return results


async def main() -> None:
    """Run every workload and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    parser.add_argument("--dir", type=Path, default=None, help="where to create the databases")
    args = parser.parse_args()
    n = 60 if args.quick else 500
    big = 1_000 if args.quick else 10_000
    sessions = 2_000 if args.quick else 100_000
    base = Path(tempfile.mkdtemp(prefix="sp-bench-sqlite-", dir=args.dir))
    try:
        python = sys.version.split()[0]
        print(f"machine: {platform.platform()}, {os.cpu_count()} cpus, Python {python}, "
              f"SQLite {sqlite3.sqlite_version}")  # fmt: skip
        print(f"directory: {base}; durability full (synchronous=FULL) unless noted\n")

        ours = await single_writer(base / "single.db", n)
        peer = same_statements(base / "peer.db", n)
        bare = sqlite_upserts(base / "bare.db", n)
        print("1. single writer, durable update of a ~1 KB session")
        print(f"   SQLiteSessionStore        {summary(ours)}")
        print(f"   sqlite3, same statements  {summary(peer)}")
        print(f"   sqlite3, one-row upsert   {summary(bare)}")
        mine = statistics.median(ours)
        print(f"   throughput ratio vs same statements: {statistics.median(peer) / mine:.2f}x; "
              f"vs one-row upsert: {statistics.median(bare) / mine:.2f}x\n")  # fmt: skip

        results = await appends(base / "appends.db", (10, big), n)
        print(f"2. append one interaction (session of 10 vs {big:,})")
        for size, samples in results.items():
            print(f"   {size:>6,} interactions  {summary(samples)}")
        ratio = statistics.median(results[big]) / statistics.median(results[10])
        print(f"   time ratio ({big:,} / 10, median): {ratio:.2f}\n")

        samples, counters = await concurrent_writers(
            base / "concurrent.db", 64, 10 if args.quick else 30
        )
        print("3. 64 concurrent writers")
        print(f"   per write  {summary(samples)}")
        speedup = counters["writes_per_second"] * mine
        print(f"   {counters['writes_per_second']} writes/s ({speedup:.2f}x the single writer); "
              f"{counters['batches']} writes in {counters['commits']} commits\n")  # fmt: skip

        figures = await reads_and_queries(base / "queries.db", sessions, n * 10)
        get = statistics.median(figures["get"])
        print(f"4. warm get_session (5 interactions): {summary(figures['get'])}, "
              f"{1 / get:,.0f}/s\n")  # fmt: skip
        print(f"5. queries on {sessions:,} sessions")
        print(f"   count_sessions(filter)        {summary(figures['count'])}")
        print(f"   list_sessions(50, sorted)     {summary(figures['list'])}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
