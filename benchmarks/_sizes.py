"""How much of everything a run does, and the helpers every workload module shares."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _measure import Result
from _targets import Target

__all__ = ["CHILD", "Sizes", "Workload", "child", "opened", "per_round"]

CHILD = str(Path(__file__).with_name("_child.py"))


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much of everything: ``quick`` runs every workload small, ``full`` for the record."""

    rounds: int  # alternating rounds for latency workloads (each side runs one chunk a round)
    ops: int  # timed operations per latency workload and side, over all rounds
    big_ops: int  # for 100 KB updates
    warm_reads: int
    cold_reads: int
    appends_at: tuple[int, ...]
    history_at: tuple[int, ...]  # exchanges held in the agents-SDK comparisons
    history_reads: int  # reads after a write, per side and size
    stores_of: tuple[int, ...]  # sessions in the query and open workloads
    query_reps: int
    open_reps: int
    each_writer: int  # updates per coroutine in the concurrency workload
    process_writes: int  # updates per writer process per round
    process_rounds: int
    sustained_s: float  # how long each side of the sustained-writes workload runs in all
    sustained_rounds: int
    stall_sessions: int  # sessions the sustained writers update
    watch_events: int  # sessions created while another process watches
    wal_updates: int  # updates measured between two checkpoints, per round

    @classmethod
    def pick(cls, quick: bool) -> Sizes:
        """The quick sizes or the full ones."""
        if quick:
            return cls(
                rounds=4,
                ops=20,
                big_ops=8,
                warm_reads=400,
                cold_reads=4,
                appends_at=(10, 100, 1_000),
                history_at=(10, 1_000),
                history_reads=4,
                stores_of=(1_000,),
                query_reps=5,
                open_reps=1,
                each_writer=4,
                process_writes=20,
                process_rounds=1,
                sustained_s=2.0,
                sustained_rounds=2,
                stall_sessions=500,
                watch_events=3,
                wal_updates=10,
            )
        return cls(
            rounds=20,
            ops=1_000,
            big_ops=100,
            warm_reads=40_000,
            cold_reads=40,
            appends_at=(10, 1_000, 10_000),
            history_at=(10, 10_000),
            history_reads=40,
            stores_of=(10_000, 100_000),
            query_reps=30,
            open_reps=3,
            each_writer=30,
            process_writes=300,
            process_rounds=6,
            sustained_s=30.0,
            sustained_rounds=3,
            stall_sessions=5_000,
            watch_events=30,
            wal_updates=50,
        )


Workload = Callable[[Path, Sizes], Awaitable[list[Result]]]


def per_round(total: int, rounds: int) -> int:
    """Operations per chunk so that ``rounds`` chunks make about ``total`` (at least one)."""
    return max(1, total // rounds)


@asynccontextmanager
async def opened(targets: Iterable[Target]) -> AsyncIterator[None]:
    """Open every target (every side is open before the first round); close them all after."""
    async with AsyncExitStack() as stack:
        for target in targets:
            await target.open()
            stack.push_async_callback(target.close)
        yield


def child(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``_child.py`` with ``args`` in a fresh interpreter; return the JSON it printed."""
    done = subprocess.run(
        [sys.executable, CHILD, *args],
        capture_output=True,
        text=True,
        check=True,
        env=None if env is None else {**os.environ, **env},
    )
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed
