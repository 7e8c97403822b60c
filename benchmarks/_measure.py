"""Timing, summaries and the environment a run was measured in.

Every figure is a distribution (median and p99 over repetitions, never a mean) and every target
is a ratio between two figures measured in the same run, because the machine is shared and
noisy: a slow minute slows both sides of a ratio.

The sides a target compares run in **alternating rounds** (:func:`alternate`): every side is
opened first; then in round *r* each side runs one chunk of operations, in an order rotated by
one place every round; the samples of all rounds are pooled per side. A noisy window then falls
on every side alike instead of on whichever ran during it.
"""

from __future__ import annotations

import os
import platform
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "Pooled",
    "Result",
    "Timer",
    "alternate",
    "environment",
    "rss_bytes",
    "summarize",
    "timed",
]


@dataclass(slots=True)
class Result:
    """One workload on one target: latency distribution and throughput."""

    workload: str
    target: str
    n: int
    median_ms: float
    p99_ms: float
    ops_per_s: float
    extra: dict[str, Any] = field(default_factory=dict)
    p999_ms: float = 0.0
    max_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "workload": self.workload,
            "target": self.target,
            "n": self.n,
            "median_ms": round(self.median_ms, 4),
            "p99_ms": round(self.p99_ms, 4),
            "p999_ms": round(self.p999_ms, 4),
            "max_ms": round(self.max_ms, 4),
            "ops_per_s": round(self.ops_per_s, 1),
            **({"extra": self.extra} if self.extra else {}),
        }


def summarize(
    workload: str,
    target: str,
    samples: list[float],
    *,
    ops_per_s: float | None = None,
    **extra: Any,
) -> Result:
    """Median, p99, p99.9 and worst of per-operation seconds.

    Throughput is 1/median unless ``ops_per_s`` gives a measured one.
    """
    ordered = sorted(samples)
    median = statistics.median(ordered)
    throughput = ops_per_s if ops_per_s is not None else (1 / median if median > 0 else 0.0)
    return Result(
        workload,
        target,
        len(ordered),
        median * 1e3,
        _quantile(ordered, 0.99) * 1e3,
        throughput,
        extra,
        p999_ms=_quantile(ordered, 0.999) * 1e3,
        max_ms=ordered[-1] * 1e3,
    )


def _quantile(ordered: list[float], q: float) -> float:
    """The sample at rank ``q`` of sorted ``ordered`` (nearest rank, no interpolation)."""
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass(slots=True)
class Pooled:
    """One side's samples pooled over every round, and the wall time its chunks took."""

    samples: list[float] = field(default_factory=list)
    ops: int = 0
    elapsed: float = 0.0

    @property
    def ops_per_s(self) -> float:
        """Operations over the summed wall time of this side's chunks."""
        return self.ops / self.elapsed if self.elapsed > 0 else 0.0


#: One side's chunk for round ``r``: runs its operations, returns each one's seconds.
Chunk = Callable[[int], Awaitable[list[float]]]


async def alternate(sides: dict[Any, Chunk], rounds: int) -> dict[Any, Pooled]:
    """Run every side's chunk in each of ``rounds`` rounds, rotating the order every round.

    Round ``r`` starts with side ``r % len(sides)``, so over the rounds each side runs first,
    in the middle and last equally often. Each chunk's wall time is added to its side's
    ``elapsed``; its samples (one per operation) are pooled.
    """
    names = list(sides)
    pooled = {name: Pooled() for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            samples = await sides[name](r)
            pooled[name].elapsed += time.perf_counter() - start
            pooled[name].samples.extend(samples)
            pooled[name].ops += len(samples)
    return pooled


def timed(operation: Callable[[int], Awaitable[Any]], per_round: int) -> Chunk:
    """A chunk timing ``per_round`` calls of ``operation(i)`` one by one (``i`` counts on)."""
    counter = 0

    async def chunk(_round: int) -> list[float]:
        nonlocal counter
        samples = []
        for _ in range(per_round):
            counter += 1
            start = time.perf_counter()
            await operation(counter)
            samples.append(time.perf_counter() - start)
        return samples

    return chunk


class Timer:
    """Collects the duration of each timed call."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    async def run(self, operation: Callable[[], Awaitable[Any]]) -> Any:
        """Await ``operation()`` and record how long it took."""
        start = time.perf_counter()
        result = await operation()
        self.samples.append(time.perf_counter() - start)
        return result

    def sync(self, operation: Callable[[], Any]) -> Any:
        """Call ``operation()`` and record how long it took."""
        start = time.perf_counter()
        result = operation()
        self.samples.append(time.perf_counter() - start)
        return result


def rss_bytes(field: str = "VmRSS") -> int:
    """This process's resident memory (``VmHWM``: its peak), from /proc (Linux), else 0."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _mount(path: Path) -> dict[str, str]:
    """The filesystem type and mount options of the mount holding ``path`` (Linux)."""
    best: tuple[str, str, str] = ("", "unknown", "")
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return {"type": "unknown", "options": ""}
    resolved = str(path.resolve())
    for line in mounts:
        parts = line.split()
        if len(parts) < 4:
            continue
        point = parts[1]
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, parts[2], parts[3])
    return {"mount_point": best[0], "type": best[1], "options": best[2]}


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment(directory: Path, mode: str) -> dict[str, Any]:
    """What a reader needs to judge the figures: machine, versions, disk, mode."""
    import sqlite3

    return {
        "machine": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "packages": {
            name: _version(name)
            for name in (
                "session-persistence",
                "orjson",
                "python-ulid",
                "filelock",
                "watchdog",
                "diskcache",
                "matplotlib",
                "openai-agents",
            )
        },
        "directory": str(directory),
        "filesystem": _mount(directory),
        "durability": "full (fsync before a write is acknowledged) unless a target says process",
        "mode": mode,
    }
