"""Workloads under load, and the SQLite store against raw ``sqlite3``.

Concurrent writers, writer processes, sustained writes (stalls), backups, watching; the
SQLite store's statements and WAL bytes against raw ``sqlite3``.

Compared sides run in alternating rounds (:func:`_measure.alternate`), except where a side is
a bound rather than a peer (backups, watch).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from _measure import Result, Timer, alternate, summarize, timed
from _sizes import CHILD, Sizes, opened, per_round
from _targets import Ours, RawSQLite, Target, make_target, payload

from session_persistence import (
    FileSystemSessionStore,
    SessionStore,
    SessionStoreConfig,
    SQLiteSessionStore,
)
from session_persistence.testing import session_object

__all__ = [
    "backups",
    "concurrency",
    "processes",
    "sqlite_same_statements",
    "sqlite_wal_bytes",
    "sustained",
    "watching",
]


# == concurrency ================================================================================


async def concurrency(root: Path, sizes: Sizes) -> list[Result]:
    """1, 8 and 64 coroutines each updating its own ~1 KB session; aggregate writes/s.

    In the same alternating rounds, the single-writer peers the 64-writer targets compare
    with: ``diskcache.Cache.set`` and raw ``sqlite3`` WAL ``FULL`` upserts of the same bodies,
    one at a time. Our sides' throughput is their writes over the summed wall time of their
    chunks. A peer's is 1/median of its write times, its rate when nothing disturbs it (the
    figure the issue quotes); its writes over wall time, which its slow tail (WAL
    checkpoints, a busy disk) pulls down, are in ``writes_per_s_wall``. So the comparison
    errs against us, never for us.
    """
    targets: dict[tuple[int, str], Target] = {}
    for name in ("filesystem/full", "sqlite/full"):
        for writers in (1, 8, 64):
            targets[(writers, name)] = make_target(name, root / f"conc-{name[:2]}-{writers}")
    peers = {name: make_target(name, root / f"conc-{i}") for i, name in
             enumerate(("diskcache", "sqlite3 raw/FULL"))}  # fmt: skip
    peer_ops = max(20, 16 * sizes.each_writer)
    async with opened([*targets.values(), *peers.values()]):
        keys = {
            side: [await t.create(payload(1024, 0)) for _ in range(side[0])]
            for side, t in targets.items()
        }
        peer_keys = {name: await t.create(payload(1024, 0)) for name, t in peers.items()}
        salts = dict.fromkeys(targets, 0)

        def crowd(side: tuple[int, str]) -> Any:
            target = targets[side]

            async def chunk(_round: int) -> list[float]:
                timer = Timer()
                base = salts[side]
                salts[side] += sizes.each_writer

                async def writer(key: str) -> None:
                    for salt in range(base + 1, base + sizes.each_writer + 1):
                        await timer.run(lambda salt=salt: target.update(key, payload(1024, salt)))

                await asyncio.gather(*(writer(key) for key in keys[side]))
                return timer.samples

            return chunk

        sides: dict[str, Any] = {f"{w}|{name}": crowd((w, name)) for (w, name) in targets}
        for name, peer in peers.items():
            sides[name] = timed(
                lambda i, t=peer, k=peer_keys[name]: t.update(k, payload(1024, i)), peer_ops
            )
        pooled = await alternate(sides, max(2, sizes.rounds // 2))
    results = []
    for label, p in pooled.items():
        if "|" in label:
            writers, name = label.split("|")
            workload = f"{writers} concurrent writers"
            results.append(summarize(workload, name, p.samples, ops_per_s=p.ops_per_s))
        else:
            wall = round(p.ops_per_s, 1)
            results.append(
                summarize("one writer, 1 KB updates", label, p.samples, writes_per_s_wall=wall)
            )
    return results


# == writer processes ===========================================================================


async def _process_round(
    kind: str, path: Path, count: int, writes: int, go: Path
) -> list[dict[str, Any]]:
    """Start ``count`` writer processes on a fresh store at ``path``; start them together."""
    command = [sys.executable, CHILD, "write", kind, str(path), str(writes), str(go)]
    children = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(count)]
    try:
        while len(list(go.parent.glob(f"{go.name}.ready.*"))) < count:
            if any(c.poll() is not None for c in children):
                break  # a child died before it was ready; its report says why
            await asyncio.sleep(0.01)  # each child has opened the store and made its session
        go.touch()
        began = time.time()
        reports = []
        for process in children:
            out, _ = await asyncio.to_thread(process.communicate)
            report = json.loads(out) if out.strip() else {"errors": ["no report"], "failed": 1}
            report["began"] = began
            reports.append(report)
        return reports
    finally:
        for process in children:
            if process.poll() is None:
                process.kill()


async def processes(root: Path, sizes: Sizes) -> list[Result]:
    """1 and then 4 writer processes on one store; aggregate writes per second.

    The two sides alternate round by round. Each round starts on a fresh store that all its
    processes open at the same instant (so concurrent first opens, schema creation included,
    are exercised too). A child counts every failed open or write, and separately those whose
    message says the database was locked; any failure fails the SQLite target.
    """
    results = []
    for kind in ("filesystem", "sqlite"):
        figures: dict[int, dict[str, Any]] = {
            n: {"writes": 0, "elapsed": 0.0, "samples": [], "failed": 0, "locked": 0, "why": []}
            for n in (1, 4)
        }

        def side(count: int, kind: str = kind, figures: dict[int, Any] = figures) -> Any:
            async def chunk(round_: int) -> list[float]:
                where = root / f"{kind}-{count}-{round_}"
                where.mkdir(parents=True)
                path = where / "fs" if kind == "filesystem" else where / "sessions.db"
                reports = await _process_round(
                    kind, path, count, sizes.process_writes, where / "go"
                )
                mine = figures[count]
                finished = [r["finished"] for r in reports if "finished" in r]
                mine["elapsed"] += (max(finished) if finished else time.time()) - reports[0][
                    "began"
                ]
                for report in reports:
                    mine["writes"] += report.get("writes", 0)
                    mine["samples"] += report.get("durations", [])
                    mine["failed"] += report.get("failed", 0)
                    mine["locked"] += report.get("locked", 0)
                    mine["why"] += report.get("errors", [])[:3]
                shutil.rmtree(where, ignore_errors=True)
                return []

            return chunk

        await alternate({str(n): side(n) for n in (1, 4)}, sizes.process_rounds)
        for count, mine in figures.items():
            samples = mine["samples"] or [0.0]
            results.append(
                summarize(
                    f"{count} writer process(es)",
                    f"{kind}/full",
                    samples,
                    ops_per_s=mine["writes"] / mine["elapsed"] if mine["elapsed"] > 0 else 0.0,
                    failed=mine["failed"],
                    locked_errors=mine["locked"],
                    **({"first_errors": mine["why"][:3]} if mine["why"] else {}),
                )
            )
    return results


# == the SQLite store against raw sqlite3 ======================================================


async def sqlite_same_statements(root: Path, sizes: Sizes) -> list[Result]:
    """Our SQLite store's 1 KB update against raw sqlite3 running exactly its statements.

    A traced run records the statements each update executes (reads, version check, upsert,
    interaction rows, COMMIT); they are replayed by a plain connection on a copy of the
    database as it was before the traced run, alternating round by round with an untraced
    run of the store. (The trace callback is set through the store's private ``_call`` and
    ``_conn``: the public API has no statement trace, and this is the only way to see them.)
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

    count = per_round(sizes.ops, sizes.rounds) * sizes.rounds
    traced = SQLiteSessionStore(base / "traced.db", watch=False)
    await traced.initialize()
    statements: list[str] = []
    await traced._call(lambda: traced._conn.set_trace_callback(statements.append))
    per_update: list[list[str]] = []
    for salt in range(1, count + 1):
        mark = len(statements)
        await traced.update_session(created.session_id, {"metadata": payload(1024, salt)})
        per_update.append(statements[mark:])
    await traced._call(lambda: traced._conn.set_trace_callback(None))
    await traced.shutdown()

    timed_store = SQLiteSessionStore(base / "timed.db", watch=False)
    await timed_store.initialize()
    db = sqlite3.connect(base / "raw.db", isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")

        async def replay(salt: int) -> None:
            for statement in per_update[salt - 1]:
                db.execute(statement).fetchall()

        async def ours(salt: int) -> None:
            await timed_store.update_session(created.session_id, {"metadata": payload(1024, salt)})

        pooled = await alternate(
            {
                "sqlite/full": timed(ours, per_round(sizes.ops, sizes.rounds)),
                "sqlite3 raw/FULL": timed(replay, per_round(sizes.ops, sizes.rounds)),
            },
            sizes.rounds,
        )
    finally:
        db.close()
        await timed_store.shutdown()
    statements_per_update = round(sum(len(b) for b in per_update) / len(per_update), 1)
    return [
        summarize("update 1 KB, same statements", "sqlite/full", pooled["sqlite/full"].samples),
        summarize(
            "update 1 KB, same statements",
            "sqlite3 raw/FULL",
            pooled["sqlite3 raw/FULL"].samples,
            statements_per_update=statements_per_update,
        ),
    ]


def _wal(path: Path) -> tuple[int, bytes]:
    """The WAL file's size and its salts (they change whenever the WAL restarts)."""
    wal = path.with_name(path.name + "-wal")
    try:
        with open(wal, "rb") as file:
            header = file.read(32)
        return wal.stat().st_size, header[16:24]
    except FileNotFoundError:
        return 0, b""


async def sqlite_wal_bytes(root: Path, sizes: Sizes) -> list[Result]:
    """WAL bytes per 1 KB update: our SQLite store against one raw ``sqlite3`` upsert.

    Measured from the growth of each database's ``-wal`` file between two checkpoints: each
    round first truncates the WAL (ours through the public ``optimize()``, which runs
    ``wal_checkpoint(TRUNCATE)``; raw: the same pragma), makes one untimed update (it writes
    the WAL header), then times ``wal_updates`` updates and takes the file's growth. A round
    whose WAL salts changed meanwhile (an automatic checkpoint restarted the WAL, so the file
    stopped growing) is discarded and counted. The two sides alternate rounds.
    """
    ours = make_target("sqlite/full", root / "wal-ours")
    raw = RawSQLite(root / "wal-raw", "FULL")
    assert isinstance(ours, Ours)
    paths = {"sqlite/full": root / "wal-ours" / "sessions.db", raw.name: raw.root / "raw-FULL.db"}
    async with opened([ours, raw]):
        keys = {
            "sqlite/full": await ours.create(payload(1024, 0)),
            raw.name: await raw.create(payload(1024, 0)),
        }
        targets: dict[str, Target] = {"sqlite/full": ours, raw.name: raw}
        per_update: dict[str, list[float]] = {name: [] for name in targets}
        discarded = dict.fromkeys(targets, 0)
        salt = 0

        def side(name: str) -> Any:
            async def chunk(_round: int) -> list[float]:
                nonlocal salt
                target = targets[name]
                if target is ours:
                    await ours.store.optimize()
                else:
                    assert raw.db is not None
                    raw.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
                salt += 1
                await target.update(keys[name], payload(1024, salt))
                size, salts = _wal(paths[name])
                timer = Timer()
                for _ in range(sizes.wal_updates):
                    salt += 1
                    await timer.run(lambda s=salt: target.update(keys[name], payload(1024, s)))
                grown, after = _wal(paths[name])
                if after != salts or grown < size:
                    discarded[name] += 1
                else:
                    per_update[name].append((grown - size) / sizes.wal_updates)
                return timer.samples

            return chunk

        pooled = await alternate({name: side(name) for name in targets}, sizes.rounds)
    results = []
    for name, p in pooled.items():
        extra: dict[str, Any] = {"discarded_rounds": discarded[name]}
        if per_update[name]:
            extra["wal_bytes_per_update"] = round(statistics.median(per_update[name]), 1)
        results.append(summarize("WAL growth, 1 KB updates", name, p.samples, **extra))
    return results


# == sustained writes: stalls ===================================================================


async def sustained(root: Path, sizes: Sizes) -> list[Result]:
    """8 writers updating ~2 KB sessions (5,000 in a full run) for a while: the tail.

    Long enough to cross checkpoints at the store's default threshold; reports p99.9, the
    worst write and (filesystem store) how many checkpoints ran, from ``get_stats()``'s
    backend counters. The filesystem and SQLite stores alternate in rounds of
    ``sustained_s / sustained_rounds`` seconds each.
    """
    rounds = sizes.sustained_rounds
    names = ("filesystem/full", "sqlite/full")
    targets = {name: make_target(name, root / f"sustained-{i}") for i, name in enumerate(names)}
    async with opened(targets.values()):
        keys: dict[str, list[str]] = {}
        before: dict[str, int] = {}
        for name, target in targets.items():
            assert isinstance(target, Ours)
            keys[name] = []
            for start in range(0, sizes.stall_sessions, 500):
                async with target.store.transaction():
                    for n in range(start, min(sizes.stall_sessions, start + 500)):
                        keys[name].append(await target.create(payload(2048, n)))
            stats = await target.store.get_stats()
            before[name] = stats.backend.get("checkpoints", -1)

        def side(name: str) -> Any:
            target = targets[name]

            async def writer(offset: int, deadline: float, timer: Timer) -> None:
                loop = asyncio.get_running_loop()
                salt = offset
                while loop.time() < deadline:
                    key = keys[name][salt % len(keys[name])]
                    await timer.run(lambda k=key, s=salt: target.update(k, payload(2048, s)))
                    salt += 8

            async def chunk(round_: int) -> list[float]:
                timer = Timer()
                deadline = asyncio.get_running_loop().time() + sizes.sustained_s / rounds
                base = round_ * 1_000_003
                await asyncio.gather(*(writer(base + n, deadline, timer) for n in range(8)))
                return timer.samples

            return chunk

        pooled = await alternate({name: side(name) for name in names}, rounds)
        results = []
        for name, p in pooled.items():
            target = targets[name]
            assert isinstance(target, Ours)
            stats = await target.store.get_stats()
            extra: dict[str, Any] = {"sessions": sizes.stall_sessions}
            if before[name] >= 0:
                extra["checkpoints"] = stats.backend["checkpoints"] - before[name]
            results.append(
                summarize(
                    f"8 writers for {sizes.sustained_s:g} s",
                    name,
                    p.samples,
                    ops_per_s=p.ops_per_s,
                    **extra,
                )
            )
    return results


# == backups and watching (bounds, not peers) ===================================================


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
