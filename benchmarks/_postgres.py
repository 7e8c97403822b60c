"""The PostgreSQL store (issue 22) against raw psycopg, on a server the benchmark starts itself.

The server is a throwaway cluster made with ``initdb`` and started with ``pg_ctl`` in a temp
directory, on a Unix socket, exactly as the tests make theirs (``tests/_postgres.py``), but
with ``fsync = on``: ``durability="full"`` means the WAL is flushed before a commit returns,
and the figures should say what that costs on this disk. ``SP_POSTGRES_DSN`` points the
benchmark at another server instead.

Two workloads, each side in alternating rounds in this one process (``_measure.alternate``):

* **one writer**: ``update_session`` of a ~1 KB metadata document on one session, against raw
  psycopg doing the equivalent by hand on one connection: one version-checked ``UPDATE kv SET
  data = %s, version = version + 1 WHERE id = %s AND version = %s`` per transaction (``BEGIN``,
  the ``UPDATE``, ``COMMIT``), on a table with the same ``json`` column type.
* **concurrent writers**: 1 and 32 coroutines, each updating its own session through one store
  (a pool of 32 connections); aggregate writes over the wall time of the chunks. Where the
  time goes: ``client_cpu_share`` (this process's CPU seconds over wall seconds: 1.0 is one
  core busy all the time), ``server_cpu_share`` (the same for every server process, read from
  ``/proc``), and ``cpu_ms_per_write`` (both, per write). ``cores`` over ``cpu_ms_per_write``
  bounds the throughput any number of writers can reach on this machine.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import psycopg
from _measure import Result, Timer, alternate, summarize, timed
from _sizes import Sizes, per_round
from _targets import payload

from session_persistence import Key, Keyring, SessionStoreConfig
from session_persistence.stores.postgres import PostgresSessionStore
from session_persistence.testing import session_object


def _server_module() -> Any:
    """``tests/_postgres.py``: the benchmark starts its server as the tests do."""
    path = Path(__file__).resolve().parent.parent / "tests" / "_postgres.py"
    spec = importlib.util.spec_from_file_location("sp_tests_postgres", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_server = _server_module()

__all__ = ["postgres"]

OURS = "postgres/full"
SEALED = "postgres/full sealed"
SEALING_KEYS = Keyring(Key("bench", bytes(range(32))))
RAW = "psycopg raw"
ONE_WRITER = "update 1 KB, one writer (PostgreSQL)"
WRITERS = 32


@asynccontextmanager
async def _database() -> AsyncIterator[tuple[str, Path | None]]:
    """A fresh database on a throwaway server (or ``SP_POSTGRES_DSN``'s), and its data dir."""
    given = os.environ.get("SP_POSTGRES_DSN")
    if given:
        yield _server.create_database(given, "sp_bench"), None
        return
    with _server.throwaway_server(fsync=True) as server:
        yield server.create_database("sp_bench"), server.data


def _server_cpu(data: Path | None) -> float:
    """CPU seconds used so far by the server's processes (the postmaster's children), Linux.

    0.0 when unknown (an external server, or no /proc).
    """
    if data is None:
        return 0.0
    try:
        postmaster = int((data / "postmaster.pid").read_text().split()[0])
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # (gone meanwhile)
            pid, ppid = int(stat.parent.name), int(fields[1])
            if postmaster in (pid, ppid):
                total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / ticks
    except (OSError, ValueError, IndexError):
        return 0.0


class _Raw:
    """Raw psycopg: one version-checked UPDATE per transaction, by hand."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.version = 1

    async def open(self) -> None:
        self.conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        await self.conn.execute(
            "CREATE TABLE kv (id text PRIMARY KEY, version bigint NOT NULL, data json NOT NULL)"
        )
        await self.conn.execute(
            "INSERT INTO kv VALUES ('k', 1, %s::json)", (orjson.dumps(payload(1024, 0)).decode(),)
        )

    async def update(self, salt: int) -> None:
        body = orjson.dumps(payload(1024, salt)).decode()
        async with self.conn.transaction():
            cursor = await self.conn.execute(
                "UPDATE kv SET data = %s::json, version = version + 1 "
                "WHERE id = %s AND version = %s",
                (body, "k", self.version),
            )
            if cursor.rowcount != 1:
                raise RuntimeError("version conflict in the raw side: nobody else writes")
        self.version += 1

    async def close(self) -> None:
        await self.conn.close()


async def postgres(root: Path, sizes: Sizes) -> list[Result]:
    """Both workloads (see the module documentation); nothing if no server can be had."""
    try:
        async with _database() as (dsn, data):
            return [*await _one_writer(dsn, sizes), *await _concurrent(dsn, data, sizes)]
    except _server.PostgresUnavailable as exc:
        print(f"[postgres] skipped: {exc}", file=sys.stderr)
        return []


async def _one_writer(dsn: str, sizes: Sizes) -> list[Result]:
    """One writer: ours, ours sealed (issue 23) and raw psycopg, in alternating rounds."""
    config = SessionStoreConfig(default_session_ttl=None)
    sealed = dataclasses.replace(config, encryption=SEALING_KEYS)
    raw = _Raw(dsn)
    await raw.open()
    try:
        async with (
            PostgresSessionStore(dsn, config, table_prefix="one_", watch=False) as store,
            PostgresSessionStore(dsn, sealed, table_prefix="sealed_", watch=False) as locked,
        ):
            sides = {}
            for name, each in ((OURS, store), (SEALED, locked)):
                created = await each.create_session(
                    session_object("bench"), metadata=payload(1024, 0)
                )

                async def ours(salt: int, each: Any = each, sid: str = created.session_id) -> None:
                    await each.update_session(sid, {"metadata": payload(1024, salt)})

                sides[name] = ours
            count = per_round(sizes.ops, sizes.rounds)
            pooled = await alternate(
                {name: timed(side, count) for name, side in sides.items()}
                | {RAW: timed(raw.update, count)},
                sizes.rounds,
            )
    finally:
        await raw.close()
    return [summarize(ONE_WRITER, name, p.samples) for name, p in pooled.items()]


async def _concurrent(dsn: str, data: Path | None, sizes: Sizes) -> list[Result]:
    config = SessionStoreConfig(default_session_ttl=None)
    each = max(4, sizes.each_writer)
    async with PostgresSessionStore(
        dsn, config, table_prefix="conc_", min_size=WRITERS, max_size=WRITERS, watch=False
    ) as store:
        keys = {
            writers: [
                (
                    await store.create_session(session_object("bench"), metadata=payload(1024, 0))
                ).session_id
                for _ in range(writers)
            ]
            for writers in (1, WRITERS)
        }
        salts = dict.fromkeys(keys, 0)
        cpu: dict[int, float] = dict.fromkeys(keys, 0.0)
        server_cpu: dict[int, float] = dict.fromkeys(keys, 0.0)

        def crowd(writers: int) -> Any:
            async def chunk(_round: int) -> list[float]:
                timer = Timer()
                base = salts[writers]
                salts[writers] += each
                # One writer does as many writes as the crowd, so both chunks last about
                # as long whatever the ratio (and a noisy moment weighs on both alike).
                repeat = each * (WRITERS if writers == 1 else 1)

                async def writer(key: str) -> None:
                    for salt in range(base + 1, base + repeat + 1):
                        await timer.run(
                            lambda salt=salt: store.update_session(
                                key, {"metadata": payload(1024, salt)}
                            )
                        )

                started, on_server = time.process_time(), _server_cpu(data)
                await asyncio.gather(*(writer(key) for key in keys[writers]))
                cpu[writers] += time.process_time() - started
                server_cpu[writers] += _server_cpu(data) - on_server
                return timer.samples

            return chunk

        pooled = await alternate(
            {writers: crowd(writers) for writers in keys}, max(2, sizes.rounds // 2)
        )
    return [
        summarize(
            f"{writers} concurrent writers (PostgreSQL)",
            OURS,
            p.samples,
            ops_per_s=p.ops_per_s,
            client_cpu_share=round(cpu[writers] / p.elapsed, 3) if p.elapsed else 0.0,
            server_cpu_share=round(server_cpu[writers] / p.elapsed, 3) if p.elapsed else 0.0,
            cpu_ms_per_write=round(1000 * (cpu[writers] + server_cpu[writers]) / p.ops, 3)
            if p.ops
            else 0.0,
            cores=os.cpu_count(),
            load_average=round(os.getloadavg()[0], 2),
        )
        for writers, p in pooled.items()
    ]
