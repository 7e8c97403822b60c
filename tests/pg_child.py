"""Child processes standing in for hosts: ``python pg_child.py <mode> <dsn> <prefix> ...``.

Each child opens its own ``PostgresSessionStore`` (its own pool and listening connection), as a
process on another host would. Output is JSON lines on stdout.

``hosts DSN PREFIX NAME PEERS ROUNDS``: listen for events, print ``ready``, wait for a line on
stdin, then run 10 coroutines that each make ROUNDS increments of ``metadata["n"]`` in the
shared sessions ``counter-0..9`` (``expected_version`` and retry) and ROUNDS transfer
transactions between the shared sessions ``account-0..9``; then create ``done-NAME`` and wait
until the ``done-*`` sessions of every peer (names ``h0..h{PEERS-1}``) have been heard of.
Print a report: increments, transfers, conflicts, and what was heard from other processes.

``load DSN PREFIX NAME``: append one interaction at a time to the session NAME until stdin
closes, printing each acknowledged one (``ack``) and each failure (``error``, with its type
and message); never retries the same interaction.

``rounds DSN PREFIX``: forever, one transaction that moves 1 between two of the sessions
``acct-0..19`` and increments ``metadata["round"]`` in all twenty; print each acknowledged
round, until killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
from typing import Any

import orjson

from session_persistence import (
    SessionConflictError,
    SessionStoreError,
    TransactionError,
)
from session_persistence.stores.postgres import PostgresSessionStore
from session_persistence.testing import eventually, interaction, session_object

COUNTERS = [f"counter-{i}" for i in range(10)]
ACCOUNTS = [f"account-{i}" for i in range(10)]


def report(**fields: object) -> None:
    sys.stdout.buffer.write(orjson.dumps(fields) + b"\n")
    sys.stdout.buffer.flush()


async def hosts(dsn: str, prefix: str, name: str, peers: int, rounds: int) -> None:
    async with PostgresSessionStore(dsn, table_prefix=prefix, max_size=10) as store:
        own: set[tuple[str, int]] = set()  # (session, version) this process wrote
        heard_updates = 0
        heard_created: set[str] = set()

        def on_created(session: Any) -> None:
            heard_created.add(session.session_id)

        def on_updated(new: Any, old: Any) -> None:
            nonlocal heard_updates
            if (new.session_id, new.version) not in own:
                heard_updates += 1

        store.on_session_created(on_created)
        store.on_session_updated(on_updated)
        await store.following()
        report(kind="ready", name=name)
        await asyncio.to_thread(sys.stdin.readline)
        conflicts = 0
        transfers = 0
        moved = 0

        async def increments(worker: int) -> None:
            nonlocal conflicts
            rng = random.Random(f"{name}-{worker}")
            for _ in range(rounds):
                session_id = rng.choice(COUNTERS)
                while True:
                    current = await store.get_session(session_id)
                    assert current is not None
                    try:
                        updated = await store.update_session(
                            session_id,
                            {"metadata": {"n": current.metadata["n"] + 1}},
                            expected_version=current.version,
                        )
                        own.add((session_id, updated.version))
                        break
                    except SessionConflictError:
                        conflicts += 1

        async def transfer(worker: int) -> None:
            nonlocal conflicts, transfers, moved
            rng = random.Random(f"{name}-t{worker}")
            for _ in range(rounds):
                source, target = rng.sample(ACCOUNTS, 2)
                amount = rng.randint(1, 5)
                while True:
                    try:
                        async with store.transaction() as tx:
                            a = await tx.get_session(source)
                            b = await tx.get_session(target)
                            assert a is not None
                            assert b is not None
                            await tx.update_session(
                                source, {"metadata": {"balance": a.metadata["balance"] - amount}}
                            )
                            await tx.update_session(
                                target, {"metadata": {"balance": b.metadata["balance"] + amount}}
                            )
                        transfers += 1
                        moved += amount
                        break
                    except TransactionError:
                        conflicts += 1

        await asyncio.gather(
            *(increments(w) for w in range(5)), *(transfer(w) for w in range(5, 10))
        )
        await store.create_session(
            session_object(name), session_id=f"done-{name}", expires_at=None, metadata={"n": 0}
        )
        wanted = {f"done-h{i}" for i in range(peers)} - {f"done-{name}"}
        with contextlib.suppress(TimeoutError):  # (the report says what was heard)
            await eventually(lambda: wanted <= heard_created, within=120)
        report(
            kind="done",
            name=name,
            increments=5 * rounds,
            transfers=transfers,
            moved=moved,
            conflicts=conflicts,
            heard_updates=heard_updates,
            heard_done=sorted(heard_created & wanted),
        )


async def load(dsn: str, prefix: str, name: str) -> None:
    async with PostgresSessionStore(
        dsn, table_prefix=prefix, max_size=4, connect_timeout=1
    ) as store:
        report(kind="ready", name=name)
        stop = asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        i = 0
        while not stop.done():
            try:
                header = await store.append_interactions(name, interaction(f"{name}-{i}"))
                report(kind="ack", i=i, count=header.interaction_count)
            except SessionStoreError as exc:
                report(kind="error", i=i, type=type(exc).__name__, message=str(exc))
                await asyncio.sleep(0.01)
            i += 1
        await stop


async def rounds(dsn: str, prefix: str) -> None:
    accounts = [f"acct-{i}" for i in range(20)]
    async with PostgresSessionStore(dsn, table_prefix=prefix, max_size=2) as store:
        report(kind="ready")
        rng = random.Random()
        while True:
            source, target = rng.sample(accounts, 2)
            try:
                async with store.transaction() as tx:
                    found = {sid: await tx.get_session(sid) for sid in accounts}
                    round_ = 0
                    for sid, session in found.items():
                        assert session is not None
                        balance = session.metadata["balance"]
                        balance += -1 if sid == source else 1 if sid == target else 0
                        round_ = session.metadata["round"] + 1
                        await tx.update_session(
                            sid, {"metadata": {"balance": balance, "round": round_}}
                        )
                report(kind="ack", round=round_)
            except TransactionError:
                continue


def main() -> None:
    mode, dsn, prefix, *rest = sys.argv[1:]
    if mode == "hosts":
        asyncio.run(hosts(dsn, prefix, rest[0], int(rest[1]), int(rest[2])))
    elif mode == "load":
        asyncio.run(load(dsn, prefix, rest[0]))
    elif mode == "rounds":
        asyncio.run(rounds(dsn, prefix))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
