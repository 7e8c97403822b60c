"""The scale run (``make bench-scale``, never part of ``make bench``): growth to a million.

Creates ``SP_BENCH_SCALE_BLOCKS`` blocks (default 10) of ``SP_BENCH_SCALE_BLOCK`` sessions
(default 100,000) in one filesystem store with ``durability="full"`` and the default
checkpoint threshold, 1,000 sessions per transaction, and times each block. Then opens the
store in a fresh process to its first query (time, peak resident memory).

Bytes written per session come from ``/proc/self/io``'s ``wchar``: every byte this process
passed to ``write()`` during the block, so journal, index snapshot *and* the session files
checkpoints wrote; it is what the disk is asked to take. Beside it, each block records the
on-disk size of everything in the store but its ``sessions/`` directory (the journal and the
index snapshot) at the block's end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

from _measure import Result, summarize
from _sizes import Sizes, child

from session_persistence import FileSystemSessionStore
from session_persistence.testing import session_object

__all__ = ["growth", "scale_settings"]


def scale_settings() -> dict[str, int]:
    """The block size and count, from the environment (to try the run small)."""
    return {
        "block": int(os.environ.get("SP_BENCH_SCALE_BLOCK", "100000")),
        "blocks": int(os.environ.get("SP_BENCH_SCALE_BLOCKS", "10")),
    }


def _wchar() -> int:
    """Bytes this process has written (``/proc/self/io``), or -1 where there is none."""
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def _outside_sessions(root: Path) -> int:
    """On-disk bytes of everything in the store directory but ``sessions/``."""
    total = 0
    for directory, folders, files in os.walk(root):
        if Path(directory) == root and "sessions" in folders:
            folders.remove("sessions")
        for name in files:
            with contextlib.suppress(FileNotFoundError):  # a checkpoint removed it meanwhile
                total += os.stat(os.path.join(directory, name)).st_size
    return total


async def growth(root: Path, sizes: Sizes) -> list[Result]:
    """Create the blocks, then open the store in a fresh process."""
    settings = scale_settings()
    block, count = settings["block"], settings["blocks"]
    path = root / "fs"
    blocks: list[dict[str, Any]] = []
    number = 0
    async with FileSystemSessionStore(path, watch=False) as store:
        for index in range(count):
            written, start = _wchar(), time.perf_counter()
            for first in range(0, block, 1_000):
                async with store.transaction():
                    for _ in range(min(1_000, block - first)):
                        await store.create_session(
                            session_object(f"proc-{number % 10}"), metadata={"n": number}
                        )
                        number += 1
            seconds = time.perf_counter() - start
            written = _wchar() - written
            blocks.append(
                {
                    "block": index + 1,
                    "sessions": number,
                    "seconds": round(seconds, 2),
                    "bytes_per_session": round(written / block, 1),
                    "journal_and_index_bytes_on_disk": _outside_sessions(path),
                }
            )
            print(f"  block {index + 1}/{count}: {blocks[-1]}", file=sys.stderr, flush=True)
    results = [
        summarize(
            "growth",
            "filesystem/full",
            [b["seconds"] for b in blocks],
            ops_per_s=number / sum(b["seconds"] for b in blocks),
            block=block,
            blocks=blocks,
            bytes_from="/proc/self/io wchar",
        )
    ]
    runs = [await asyncio.to_thread(child, "open", "filesystem", str(path))
            for _ in range(sizes.open_reps)]  # fmt: skip
    for run in runs:
        assert run["sessions"] == number, run
    middle = len(runs) // 2
    results.append(
        summarize(
            f"open {number:,}",
            "filesystem/full",
            [r["seconds"] for r in runs],
            sessions=number,
            peak_rss_bytes=sorted(r["peak_rss_bytes"] for r in runs)[middle],
            rss_bytes_per_session=round(sorted(r["rss_bytes"] for r in runs)[middle] / number, 1),
        )
    )
    return results
