"""The single-operation workloads: create, update, get, append, queries, opening, transactions.

Each returns :class:`Result` rows; ``run.py`` orders them and judges the targets. Wherever
several sides are compared they run in alternating rounds in this one process
(:func:`_measure.alternate`): all are opened first, then every round gives each a chunk.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import time
from pathlib import Path
from typing import Any

from _agents import exchanges, history_reads
from _load import (
    backups,
    concurrency,
    processes,
    sqlite_same_statements,
    sqlite_wal_bytes,
    sustained,
    watching,
)
from _measure import Result, alternate, summarize, timed
from _sizes import Sizes, Workload, child, opened, per_round
from _targets import OURS, PEERS, Ours, RawSQLite, Target, make_target, payload

from session_persistence import (
    SessionFilter,
    SessionQueryOptions,
    SessionStore,
)
from session_persistence.serialization import default_codec
from session_persistence.testing import interaction, session_object

__all__ = ["WORKLOADS"]


def _sides(root: Path, prefix: str, names: tuple[str, ...]) -> dict[str, Target]:
    return {name: make_target(name, root / f"{prefix}-{i}") for i, name in enumerate(names)}


# == create, update, get =========================================================================


async def creates(root: Path, sizes: Sizes) -> list[Result]:
    """Create ~1 KB documents one at a time, on every target, in alternating rounds."""
    targets = _sides(root, "create", (*OURS, *PEERS))
    async with opened(targets.values()):
        pooled = await alternate(
            {
                name: timed(
                    lambda i, t=t: t.create(payload(1024, i)), per_round(sizes.ops, sizes.rounds)
                )
                for name, t in targets.items()
            },
            sizes.rounds,
        )
    return [summarize("create 1 KB", name, p.samples) for name, p in pooled.items()]


async def updates(root: Path, sizes: Sizes) -> list[Result]:
    """Update one document of 1 KB, 10 KB and 100 KB, a different body each time."""
    results = []
    for size in (1024, 10 * 1024, 100 * 1024):
        count = sizes.big_ops if size > 10 * 1024 else sizes.ops
        targets = _sides(root, f"update-{size}", (*OURS, *PEERS))
        async with opened(targets.values()):
            keys = {name: await t.create(payload(size, 0)) for name, t in targets.items()}
            pooled = await alternate(
                {
                    name: timed(
                        lambda i, t=t, k=keys[name], size=size: t.update(k, payload(size, i)),
                        per_round(count, sizes.rounds),
                    )
                    for name, t in targets.items()
                },
                sizes.rounds,
            )
        results += [
            summarize(f"update {size // 1024} KB", name, p.samples) for name, p in pooled.items()
        ]
    return results


class _SessionDocument(RawSQLite):
    """Raw ``sqlite3`` holding our 5-interaction session's document: point SELECT + orjson."""

    def __init__(self, root: Path, document: bytes) -> None:
        super().__init__(root, "FULL")
        self.name = "sqlite3 SELECT+orjson, same session"
        self.document = document

    async def open(self) -> None:
        """Create the table and store the document under one key."""
        await super().open()
        assert self.db is not None
        self.db.execute("INSERT INTO kv VALUES ('s', ?)", (self.document,))


async def warm_reads(root: Path, sizes: Sizes) -> list[Result]:
    """Read the same session again and again (ours: a session of 5 interactions).

    The fair peer for ours is raw ``sqlite3`` selecting the same session's encoded document
    (the codec's JSON of the whole session) by key and decoding it with ``orjson.loads``.
    """
    names = tuple(n for n in (*OURS, *PEERS) if n != "fdatasync floor")
    targets = _sides(root, "warm", names)
    template = session_object(interactions=5)
    async with opened(targets.values()):
        keys = {}
        for name, target in targets.items():
            if isinstance(target, Ours):
                created = await target.store.create_session(template)
                keys[name] = created.session_id
            else:
                keys[name] = await target.create(payload(1024, 0))
        ours = targets["filesystem/full"]
        assert isinstance(ours, Ours)
        stored = await ours.store.get_session(keys["filesystem/full"])
        document = default_codec.dumps(dataclasses.asdict(stored))
        raw = _SessionDocument(root / "warm-doc", document)
        targets[raw.name], keys[raw.name] = raw, "s"
        await raw.open()
        try:
            for name, target in targets.items():
                await target.get(keys[name])  # warm
            pooled = await alternate(
                {
                    name: timed(
                        lambda _i, t=t, k=keys[name]: t.get(k),
                        per_round(sizes.warm_reads, sizes.rounds),
                    )
                    for name, t in targets.items()
                },
                sizes.rounds,
            )
        finally:
            await raw.close()
    return [
        summarize(
            "get warm",
            name,
            p.samples,
            **({"document_bytes": len(document)} if name == raw.name else {}),
        )
        for name, p in pooled.items()
    ]


async def cold_reads(root: Path, sizes: Sizes) -> list[Result]:
    """The first read of a session after (re)opening the storage; the open is not timed."""
    names = ("filesystem/full", "sqlite/full", "sqlite3 raw/FULL", "diskcache")
    where = {name: root / f"cold-{i}" for i, name in enumerate(names)}
    keys: dict[str, list[str]] = {}
    for name in names:
        target = make_target(name, where[name])
        await target.open()
        keys[name] = []
        for salt in range(50):
            if isinstance(target, Ours):
                created = await target.store.create_session(session_object(interactions=5))
                keys[name].append(created.session_id)
            else:
                keys[name].append(await target.create(payload(1024, salt)))
        await target.close()
    rng = random.Random(7)

    def side(name: str) -> Any:
        async def chunk(_round: int) -> list[float]:
            again = make_target(name, where[name])  # a new instance on the same storage
            await again.open()
            try:
                key = rng.choice(keys[name])
                start = time.perf_counter()
                await again.get(key)
                return [time.perf_counter() - start]
            finally:
                await again.close()

        return chunk

    pooled = await alternate({name: side(name) for name in names}, sizes.cold_reads)
    return [summarize("get cold", name, p.samples) for name, p in pooled.items()]


# == appends =====================================================================================


async def appends(root: Path, sizes: Sizes) -> list[Result]:
    """Append one interaction to sessions already holding 10, 1,000 and 10,000.

    Every store at every size is one side of the same alternating rounds, since a target
    compares the sizes with each other.
    """
    names = ("filesystem/full", "filesystem/process", "sqlite/full", "memory")
    targets: dict[tuple[str, int], Ours] = {}
    for held in sizes.appends_at:
        for i, name in enumerate(names):
            target = make_target(name, root / f"append-{held}-{i}")
            assert isinstance(target, Ours)
            targets[(name, held)] = target
    async with opened(targets.values()):
        ids = {}
        for side, target in targets.items():
            created = await target.store.create_session(session_object(interactions=side[1]))
            await target.store.optimize()  # the long history is in the file, not in memory
            ids[side] = created.session_id
        pooled = await alternate(
            {
                side: timed(
                    lambda _i, s=t.store, sid=ids[side]: s.append_interactions(sid, interaction()),
                    per_round(sizes.ops, sizes.rounds),
                )
                for side, t in targets.items()
            },
            sizes.rounds,
        )
    return [
        summarize(f"append at {held:,}", name, p.samples, held=held)
        for (name, held), p in pooled.items()
    ]


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
    """A filtered count and a sorted page of 50 on stores of 10,000 and 100,000 sessions.

    Their targets are bounds, not ratios, so the stores are filled and queried one after the
    other (three stores of 100,000 open at once would measure memory pressure instead).
    """
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
                pooled = await alternate(
                    {
                        "count filtered": timed(lambda _i, s=store: s.count_sessions(flt), 1),
                        "list 50 sorted": timed(lambda _i, s=store: s.list_sessions(flt, page), 1),
                    },
                    sizes.query_reps,
                )
                results += [
                    summarize(f"{label} at {count:,}", name, p.samples)
                    for label, p in pooled.items()
                ]
            finally:
                await target.close()
    return results


async def opening(root: Path, sizes: Sizes) -> list[Result]:
    """Open a store (until its first answer) in a fresh process, and its resident memory.

    Uses the stores the query workload filled. The peer is what a store without an index has
    to do: read and parse every session file. The three alternate, one fresh process each a
    round.
    """
    results = []
    filled = root.parent / "query"  # run.py gives each workload root/<its name>
    for count in sizes.stores_of:
        fs = _populated(filled, "filesystem/process", count).root / "fs"
        db = _populated(filled, "sqlite/process", count).root / "sessions.db"
        commands = {
            "filesystem/full": ("open", "filesystem", str(fs)),
            "sqlite/full": ("open", "sqlite", str(db)),
            "read+parse every file": ("readall", str(fs / "sessions")),
        }
        runs: dict[str, list[dict[str, Any]]] = {label: [] for label in commands}

        def side(args: tuple[str, ...], runs: list[dict[str, Any]], count: int = count) -> Any:
            async def chunk(_round: int) -> list[float]:
                run = await asyncio.to_thread(child, *args)
                assert run["sessions"] == count, run
                runs.append(run)
                return [float(run["seconds"])]

            return chunk

        pooled = await alternate(
            {label: side(args, runs[label]) for label, args in commands.items()},
            sizes.open_reps,
        )
        for label, p in pooled.items():
            extra: dict[str, Any] = {"sessions": count}
            if "rss_bytes" in runs[label][0]:
                middle = sorted(r["rss_bytes"] for r in runs[label])[len(runs[label]) // 2]
                extra["rss_bytes_per_session"] = round(middle / count, 1)
            results.append(summarize(f"open {count:,}", label, p.samples, **extra))
    return results


# == transactions ===============================================================================


class _RawTransaction(RawSQLite):
    """Raw ``sqlite3``: 10 upserts between ``BEGIN IMMEDIATE`` and ``COMMIT``."""

    async def ten(self, salt: int) -> None:
        """One transaction of ten upserts."""
        assert self.db is not None
        self.db.execute("BEGIN IMMEDIATE")
        for key in range(10):
            self.db.execute(
                "INSERT INTO kv VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET data = excluded.data",
                (str(key), json.dumps(payload(512, salt)).encode()),
            )
        self.db.execute("COMMIT")


async def transactions(root: Path, sizes: Sizes) -> list[Result]:
    """One transaction updating 10 sessions; the peer: 10 upserts between BEGIN and COMMIT."""
    reps = max(sizes.ops // 4, sizes.rounds)
    targets = _sides(root, "tx", ("filesystem/full", "sqlite/full", "memory"))
    raw = _RawTransaction(root / "tx-raw", "FULL")
    async with opened([*targets.values(), raw]):
        keys = {
            name: [await t.create(payload(512, 0)) for _ in range(10)]
            for name, t in targets.items()
        }

        def ours(name: str) -> Any:
            target = targets[name]
            assert isinstance(target, Ours)
            store = target.store

            async def commit(salt: int) -> None:
                async with store.transaction():
                    for key in keys[name]:
                        await store.update_session(key, {"metadata": payload(512, salt)})

            return commit

        sides = {name: timed(ours(name), per_round(reps, sizes.rounds)) for name in targets}
        sides["sqlite3 raw/FULL"] = timed(raw.ten, per_round(reps, sizes.rounds))
        pooled = await alternate(sides, sizes.rounds)
    return [summarize("transaction of 10", name, p.samples) for name, p in pooled.items()]


WORKLOADS: dict[str, Workload] = {
    "create": creates,
    "update": updates,
    "get-warm": warm_reads,
    "get-cold": cold_reads,
    "append": appends,
    "exchange": exchanges,
    "history": history_reads,
    "query": queries,
    "open": opening,
    "transaction": transactions,
    "concurrency": concurrency,
    "processes": processes,
    "sqlite-overhead": sqlite_same_statements,
    "sqlite-wal": sqlite_wal_bytes,
    "backup": backups,
    "sustained": sustained,
    "watch": watching,
}
