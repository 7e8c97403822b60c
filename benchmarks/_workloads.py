"""The workloads. Each returns :class:`Result` rows; ``run.py`` orders them and judges targets."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from _measure import Result, Timer, summarize
from _targets import OURS, PEERS, Ours, Target, make_target, payload

from session_persistence import (
    FileSystemSessionStore,
    SessionFilter,
    SessionQueryOptions,
    SessionStore,
    SessionStoreConfig,
    SQLiteSessionStore,
)
from session_persistence.testing import interaction, session_object

__all__ = ["WORKLOADS", "Sizes"]

CHILD = str(Path(__file__).with_name("_child.py"))


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much of everything: ``quick`` runs in well under a minute."""

    ops: int  # timed operations per latency workload
    big_ops: int  # for 100 KB updates
    warm_reads: int
    cold_reads: int
    appends_at: tuple[int, ...]
    stores_of: tuple[int, ...]  # sessions in the query and open workloads
    query_reps: int
    open_reps: int
    each_writer: int  # updates per coroutine in the concurrency workload
    process_writes: int
    sustained_s: float  # how long the sustained-writes workload runs
    watch_events: int  # sessions created while another process watches

    @classmethod
    def pick(cls, quick: bool) -> Sizes:
        """The quick sizes or the full ones."""
        if quick:
            return cls(20, 5, 500, 3, (10, 100, 1_000), (1_000,), 5, 1, 3, 20, 1.0, 3)
        return cls(
            400, 60, 20_000, 20, (10, 1_000, 10_000), (10_000, 100_000), 30, 3, 30, 300, 30.0, 30
        )


Workload = Callable[[Path, Sizes], Awaitable[list[Result]]]


async def _with(target: Target, body: Callable[[Target], Awaitable[Result]]) -> Result:
    await target.open()
    try:
        return await body(target)
    finally:
        await target.close()


# == create, update, get =========================================================================


async def creates(root: Path, sizes: Sizes) -> list[Result]:
    """Create ~1 KB documents one at a time, on every target."""
    results = []
    for name in (*OURS, *PEERS):

        async def body(target: Target, name: str = name) -> Result:
            timer = Timer()
            for salt in range(sizes.ops):
                await timer.run(lambda salt=salt: target.create(payload(1024, salt)))
            return summarize("create 1 KB", name, timer.samples)

        results.append(await _with(make_target(name, root / f"create-{len(results)}"), body))
    return results


async def updates(root: Path, sizes: Sizes) -> list[Result]:
    """Update one document of 1 KB, 10 KB and 100 KB, a different body each time."""
    results = []
    for size in (1024, 10 * 1024, 100 * 1024):
        count = sizes.big_ops if size > 10 * 1024 else sizes.ops
        for name in (*OURS, *PEERS):

            async def body(
                target: Target, name: str = name, size: int = size, count: int = count
            ) -> Result:
                key = await target.create(payload(size, 0))
                timer = Timer()
                for salt in range(1, count + 1):
                    await timer.run(
                        lambda key=key, salt=salt: target.update(key, payload(size, salt))
                    )
                return summarize(f"update {size // 1024} KB", name, timer.samples)

            where = root / f"update-{size}-{len(results)}"
            results.append(await _with(make_target(name, where), body))
    return results


async def warm_reads(root: Path, sizes: Sizes) -> list[Result]:
    """Read the same session again and again (ours: a session of 5 interactions)."""
    results = []
    for name in (*OURS, *PEERS):
        if name == "fdatasync floor":
            continue
        target = make_target(name, root / f"warm-{len(results)}")
        await target.open()
        try:
            if isinstance(target, Ours):
                created = await target.store.create_session(session_object(interactions=5))
                key = created.session_id
            else:
                key = await target.create(payload(1024, 0))
            await target.get(key)
            timer = Timer()
            for _ in range(sizes.warm_reads):
                await timer.run(lambda target=target, key=key: target.get(key))
            results.append(summarize("get warm", name, timer.samples))
        finally:
            await target.close()
    return results


async def cold_reads(root: Path, sizes: Sizes) -> list[Result]:
    """The first read of a session after (re)opening the storage; the open is not timed."""
    results = []
    for name in ("filesystem/full", "sqlite/full", "sqlite3 raw/FULL", "diskcache"):
        where = root / f"cold-{len(results)}"
        target = make_target(name, where)
        await target.open()
        keys = []
        for salt in range(50):
            if isinstance(target, Ours):
                created = await target.store.create_session(session_object(interactions=5))
                keys.append(created.session_id)
            else:
                keys.append(await target.create(payload(1024, salt)))
        await target.close()
        timer = Timer()
        rng = random.Random(7)
        for _ in range(sizes.cold_reads):
            again = make_target(name, where)  # a new instance on the same storage
            await again.open()
            key = rng.choice(keys)
            await timer.run(lambda again=again, key=key: again.get(key))
            await again.close()
        results.append(summarize("get cold", name, timer.samples))
    return results


# == appends =====================================================================================


async def appends(root: Path, sizes: Sizes) -> list[Result]:
    """Append one interaction to sessions already holding 10, 1,000 and 10,000."""
    results = []
    for name in ("filesystem/full", "filesystem/process", "sqlite/full", "memory"):
        for held in sizes.appends_at:
            target = make_target(name, root / f"append-{len(results)}")
            assert isinstance(target, Ours)
            await target.open()
            try:
                store = target.store
                created = await store.create_session(session_object(interactions=held))
                await store.optimize()  # the long history is in the file, not in memory
                timer = Timer()
                for _ in range(sizes.ops):
                    await timer.run(
                        lambda s=store, c=created: s.append_interactions(
                            c.session_id, interaction()
                        )
                    )
                results.append(summarize(f"append at {held:,}", name, timer.samples, held=held))
            finally:
                await target.close()
    return results


# == queries and opening ========================================================================


async def _populate(store: SessionStore, count: int) -> None:
    """``count`` sessions over 10 processors, every 7th tagged ``vip``, 1,000 per transaction."""
    for start in range(0, count, 1_000):
        async with store.transaction():
            for number in range(start, min(count, start + 1_000)):
                await store.create_session(
                    session_object(f"proc-{number % 10}"),
                    tags=["vip"] if number % 7 == 0 else None,
                    metadata={"n": number},
                )


def _populated(root: Path, name: str, count: int) -> Ours:
    where = root / f"store-{name.replace('/', '-')}-{count}"
    target = make_target(name, where)
    assert isinstance(target, Ours)
    return target


async def queries(root: Path, sizes: Sizes) -> list[Result]:
    """A filtered count and a sorted page of 50 on stores of 10,000 and 100,000 sessions."""
    results = []
    flt = SessionFilter(processor_id="proc-3", tags=["vip"])
    page = SessionQueryOptions(limit=50, sort_by="updated_at", sort_order="desc")
    for count in sizes.stores_of:
        for name in ("filesystem/process", "sqlite/process", "memory"):
            target = _populated(root, name, count)
            await target.open()
            try:
                store = target.store
                await _populate(store, count)
                assert await store.count_sessions() == count
                for label, query in (
                    ("count filtered", lambda s=store: s.count_sessions(flt)),
                    ("list 50 sorted", lambda s=store: s.list_sessions(flt, page)),
                ):
                    timer = Timer()
                    for _ in range(sizes.query_reps):
                        await timer.run(query)
                    results.append(summarize(f"{label} at {count:,}", name, timer.samples))
            finally:
                await target.close()
    return results


def _child(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, CHILD, *args], capture_output=True, text=True, check=True
    )
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


async def opening(root: Path, sizes: Sizes) -> list[Result]:
    """Open a store (until its first answer) in a fresh process, and its resident memory.

    Uses the stores the query workload filled. The peer is what a store without an index has
    to do: read and parse every session file.
    """
    results = []
    filled = root.parent / "query"  # run.py gives each workload root/<its name>
    for count in sizes.stores_of:
        fs = _populated(filled, "filesystem/process", count).root / "fs"
        db = _populated(filled, "sqlite/process", count).root / "sessions.db"
        for label, args in (
            ("filesystem/full", ("open", "filesystem", str(fs))),
            ("sqlite/full", ("open", "sqlite", str(db))),
            ("read+parse every file", ("readall", str(fs / "sessions"))),
        ):
            runs = [await asyncio.to_thread(_child, *args) for _ in range(sizes.open_reps)]
            for run in runs:
                assert run["sessions"] == count, run
            extra: dict[str, Any] = {"sessions": count}
            if "rss_bytes" in runs[0]:
                extra["rss_bytes_per_session"] = round(
                    sorted(r["rss_bytes"] for r in runs)[len(runs) // 2] / count, 1
                )
            samples = [r["seconds"] for r in runs]
            results.append(summarize(f"open {count:,}", label, samples, **extra))
    return results


# == transactions, concurrency, processes ======================================================


async def transactions(root: Path, sizes: Sizes) -> list[Result]:
    """One transaction updating 10 sessions; the peer: 10 upserts between BEGIN and COMMIT."""
    results = []
    reps = max(sizes.ops // 4, 5)
    for name in ("filesystem/full", "sqlite/full", "memory"):
        target = make_target(name, root / f"tx-{len(results)}")
        assert isinstance(target, Ours)
        await target.open()
        try:
            store = target.store
            keys = [await target.create(payload(512, 0)) for _ in range(10)]
            timer = Timer()
            for salt in range(1, reps + 1):

                async def commit(
                    s: SessionStore = store, salt: int = salt, keys: list[str] = keys
                ) -> None:
                    async with s.transaction():
                        for key in keys:
                            await s.update_session(key, {"metadata": payload(512, salt)})

                await timer.run(commit)
            results.append(summarize("transaction of 10", name, timer.samples))
        finally:
            await target.close()
    path = root / "tx-raw.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE kv (id TEXT PRIMARY KEY, data BLOB)")
    timer = Timer()
    for salt in range(1, reps + 1):

        def commit(salt: int = salt) -> None:
            db.execute("BEGIN IMMEDIATE")
            for key in range(10):
                db.execute(
                    "INSERT INTO kv VALUES (?, ?) "
                    "ON CONFLICT(id) DO UPDATE SET data = excluded.data",
                    (str(key), json.dumps(payload(512, salt)).encode()),
                )
            db.execute("COMMIT")

        timer.sync(commit)
    db.close()
    results.append(summarize("transaction of 10", "sqlite3 raw/FULL", timer.samples))
    return results


async def concurrency(root: Path, sizes: Sizes) -> list[Result]:
    """1, 8 and 64 coroutines each updating its own ~1 KB session; aggregate writes/s."""
    results = []
    for name in ("filesystem/full", "sqlite/full"):
        for writers in (1, 8, 64):
            target = make_target(name, root / f"conc-{len(results)}")
            assert isinstance(target, Ours)
            await target.open()
            try:
                keys = [await target.create(payload(1024, 0)) for _ in range(writers)]
                timer = Timer()

                async def writer(key: str, timer: Timer = timer, t: Ours = target) -> None:
                    for salt in range(1, sizes.each_writer + 1):
                        await timer.run(lambda salt=salt: t.update(key, payload(1024, salt)))

                start = time.perf_counter()
                await asyncio.gather(*(writer(key) for key in keys))
                elapsed = time.perf_counter() - start
                total = writers * sizes.each_writer
                results.append(
                    summarize(
                        f"{writers} concurrent writers",
                        name,
                        timer.samples,
                        ops_per_s=total / elapsed,
                    )
                )
            finally:
                await target.close()
    return results


async def processes(root: Path, sizes: Sizes) -> list[Result]:
    """1 and then 4 writer processes on one store; aggregate writes per second."""
    results = []
    for kind, path in (
        ("filesystem", root / "procs-fs"),
        ("sqlite", root / "procs-db" / "sessions.db"),
    ):
        for count in (1, 4):
            go = root / f"go-{kind}-{count}"
            command = [sys.executable, CHILD, "write", kind, str(path)]
            command += [str(sizes.process_writes), str(go)]
            children = [
                subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(count)
            ]
            while len(list(root.glob(f"{go.name}.ready.*"))) < count:
                await asyncio.sleep(0.01)  # each child has opened the store and made its session
            go.touch()
            began = time.time()
            reports = []
            for child in children:
                out, _ = await asyncio.to_thread(child.communicate)
                reports.append(json.loads(out))
            elapsed = max(r["finished"] for r in reports) - began
            total = sum(r["writes"] for r in reports)
            per_write = [elapsed / sizes.process_writes]
            results.append(
                summarize(
                    f"{count} writer process(es)",
                    f"{kind}/full",
                    per_write,
                    ops_per_s=total / elapsed,
                )
            )
        shutil.rmtree(path if kind == "filesystem" else path.parent, ignore_errors=True)
    return results


async def sqlite_same_statements(root: Path, sizes: Sizes) -> list[Result]:
    """Our SQLite store's 1 KB update against raw sqlite3 running exactly its statements.

    A traced run records the statements each update executes (reads, version check, upsert,
    interaction rows, COMMIT); they are replayed by a plain connection on a copy of the
    database as it was before the traced run, while an untraced run of the store is timed.
    """
    base = root / "same"
    base.mkdir(parents=True, exist_ok=True)
    seed = base / "seed.db"
    store = SQLiteSessionStore(seed, watch=False)
    await store.initialize()
    created = await store.create_session(session_object(interactions=5), metadata=payload(1024, 0))
    await store.shutdown()
    for copy in ("traced.db", "timed.db", "raw.db"):
        shutil.copy(seed, base / copy)

    traced = SQLiteSessionStore(base / "traced.db", watch=False)
    await traced.initialize()
    statements: list[str] = []
    await traced._call(lambda: traced._conn.set_trace_callback(statements.append))
    per_update: list[list[str]] = []
    for salt in range(1, sizes.ops + 1):
        mark = len(statements)
        await traced.update_session(created.session_id, {"metadata": payload(1024, salt)})
        per_update.append(statements[mark:])
    await traced._call(lambda: traced._conn.set_trace_callback(None))
    await traced.shutdown()

    timed = SQLiteSessionStore(base / "timed.db", watch=False)
    await timed.initialize()
    ours = Timer()
    for salt in range(1, sizes.ops + 1):
        await ours.run(
            lambda salt=salt: timed.update_session(
                created.session_id, {"metadata": payload(1024, salt)}
            )
        )
    await timed.shutdown()

    db = sqlite3.connect(base / "raw.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    raw = Timer()
    for batch in per_update:

        def replay(batch: list[str] = batch) -> None:
            for statement in batch:
                db.execute(statement).fetchall()

        raw.sync(replay)
    db.close()
    count = sum(len(b) for b in per_update) / len(per_update)
    return [
        summarize("update 1 KB, same statements", "sqlite/full", ours.samples),
        summarize(
            "update 1 KB, same statements",
            "sqlite3 raw/FULL",
            raw.samples,
            statements_per_update=round(count, 1),
        ),
    ]


async def backups(root: Path, sizes: Sizes) -> list[Result]:
    """Backups of a filesystem store, alone and with 8 writers updating meanwhile.

    Also how much a backup slows those writers: their update latency with and without one.
    """
    count = max(sizes.stores_of) // 10
    config = SessionStoreConfig(default_session_ttl=None, max_backups=3)
    async with FileSystemSessionStore(root / "store", config, watch=False) as store:
        ids = []
        for start in range(0, count, 1_000):
            async with store.transaction():
                for number in range(start, min(count, start + 1_000)):
                    made = await store.create_session(
                        session_object(interactions=3), metadata={"n": number}
                    )
                    ids.append(made.session_id)
        await store.optimize()
        alone = Timer()
        for _ in range(3):
            await alone.run(store.create_backup)
        quiet, busy, during = Timer(), Timer(), Timer()
        stop = asyncio.Event()
        current = quiet

        async def writer(offset: int) -> None:
            index = offset
            while not stop.is_set():
                timer = current
                await timer.run(
                    lambda i=index: store.update_session(ids[i % len(ids)], {"tags": [str(i)]})
                )
                index += 8

        tasks = [asyncio.create_task(writer(n)) for n in range(8)]
        await asyncio.sleep(1.0)
        current = busy
        for _ in range(3):
            await during.run(store.create_backup)
        stop.set()
        await asyncio.gather(*tasks)
    label = f"backup of {count:,}"
    return [
        summarize(label, "filesystem/full, no writers", alone.samples),
        summarize(label, "filesystem/full, 8 writers", during.samples),
        summarize("update, no backup running", "filesystem/full", quiet.samples),
        summarize("update, backups running", "filesystem/full", busy.samples),
    ]


async def _write_until(
    target: Ours, keys: list[str], offset: int, deadline: float, timer: Timer
) -> None:
    """Update sessions round-robin (every 8th from ``offset``) until the loop's ``deadline``."""
    loop = asyncio.get_running_loop()
    salt = offset
    while loop.time() < deadline:
        key = keys[salt % len(keys)]
        await timer.run(lambda key=key, salt=salt: target.update(key, payload(1024, salt)))
        salt += 8


async def sustained(root: Path, sizes: Sizes) -> list[Result]:
    """8 writers updating 1,000 sessions for a while: the tail, checkpoints included.

    Short runs never reach a checkpoint (the filesystem store writes session files once its
    journal passes 8 MB); this one runs long enough to, and reports the worst write.
    """
    results = []
    for name in ("filesystem/full", "sqlite/full"):
        target = make_target(name, root / f"sustained-{len(results)}")
        assert isinstance(target, Ours)
        await target.open()
        try:
            keys: list[str] = []
            for start in range(0, 1_000, 500):
                async with target.store.transaction():
                    for n in range(start, start + 500):
                        keys.append(await target.create(payload(1024, n)))
            timer = Timer()
            deadline = asyncio.get_running_loop().time() + sizes.sustained_s
            before = dict(getattr(target.store, "_counters", {}))
            start = time.perf_counter()
            await asyncio.gather(
                *(_write_until(target, keys, n, deadline, timer) for n in range(8))
            )
            elapsed = time.perf_counter() - start
            counters = getattr(target.store, "_counters", {})
            extra: dict[str, Any] = {"max_ms": round(max(timer.samples) * 1e3, 1)}
            if "checkpoints" in counters:
                extra["checkpoints"] = counters["checkpoints"] - before.get("checkpoints", 0)
            results.append(
                summarize(
                    f"8 writers for {sizes.sustained_s:g} s",
                    name,
                    timer.samples,
                    ops_per_s=len(timer.samples) / elapsed,
                    **extra,
                )
            )
        finally:
            await target.close()
    return results


async def watching(root: Path, sizes: Sizes) -> list[Result]:
    """How soon ``session-persistence watch`` in another process shows a session we create.

    Latency is from just before ``create_session`` is called here to the watcher's own
    timestamp of the event (both processes read the same clock).
    """
    results = []
    for kind, path in (
        ("filesystem", root / "fs"),
        ("sqlite", root / "db" / "sessions.db"),
    ):
        store: SessionStore = (
            FileSystemSessionStore(path, watch=False)
            if kind == "filesystem"
            else SQLiteSessionStore(path, watch=False)
        )
        await store.initialize()  # the store exists before the watcher looks for it
        command = [sys.executable, "-m", "session_persistence", "watch", "--json"]
        command += ["--count", str(sizes.watch_events), "--timeout", "60"]
        watcher = subprocess.Popen(
            [*command, "--store", f"{kind}:{path}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert watcher.stderr is not None
            ready = await asyncio.to_thread(watcher.stderr.readline)
            assert ready.startswith("watching"), ready
            started: dict[str, float] = {}
            for _ in range(sizes.watch_events):
                before = time.time()
                created = await store.create_session(session_object())
                started[created.session_id] = before
                await asyncio.sleep(0.05)
            out, _ = await asyncio.to_thread(watcher.communicate)
        finally:
            watcher.kill()
            await store.shutdown()
        events = [json.loads(line) for line in out.splitlines()]
        assert len(events) == sizes.watch_events, out
        latencies = [
            datetime.fromisoformat(e["at"]).timestamp() - started[e["session_id"]] for e in events
        ]
        results.append(summarize("watch sees another process's create", f"{kind}/full", latencies))
    return results


WORKLOADS: dict[str, Workload] = {
    "create": creates,
    "update": updates,
    "get-warm": warm_reads,
    "get-cold": cold_reads,
    "append": appends,
    "query": queries,
    "open": opening,
    "transaction": transactions,
    "concurrency": concurrency,
    "processes": processes,
    "sqlite-overhead": sqlite_same_statements,
    "backup": backups,
    "sustained": sustained,
    "watch": watching,
}
