"""Benchmarks: this project's stores against the peers a user would pick instead.

Run ``make bench`` (full) or ``make bench-quick`` (under a minute; ``make test`` runs it so the
harness cannot rot), or ``python benchmarks/run.py [--quick] [--only WORKLOAD ...] [--out DIR]
[--dir DIR]``.

Writes ``<out>/<date>-<machine>.json`` (environment, every result, every target with its
ratio), the same as a Markdown report, and a PNG chart of throughput and p99 per workload and
target. ``docs/benchmarks.md`` explains the method and what the figures mean.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _measure import Result, environment
from _report import write_chart, write_markdown
from _workloads import WORKLOADS, Sizes

RESULTS = Path(__file__).with_name("results")


class Figures:
    """Look results up by workload and target."""

    def __init__(self, results: list[Result]) -> None:
        self._by = {(r.workload, r.target): r for r in results}

    def get(self, workload: str, target: str) -> Result:
        """The result, or KeyError naming what is missing."""
        return self._by[(workload, target)]


@dataclass(frozen=True, slots=True)
class Goal:
    """A performance target: a figure derived from results, compared with a bound."""

    name: str
    requirement: str
    needs: tuple[str, ...]  # workloads it reads
    measure: Callable[[Figures], float]
    bound: float
    at_most: bool = False  # True: the figure must be <= bound (else >=)
    unit: str = "×"

    def judge(self, figures: Figures) -> dict[str, Any]:
        """The measured figure and whether it meets the bound."""
        try:
            value = self.measure(figures)
        except KeyError as missing:
            return {"target": self.name, "requirement": self.requirement, "skipped": str(missing)}
        met = value <= self.bound if self.at_most else value >= self.bound
        return {
            "target": self.name,
            "requirement": self.requirement,
            "measured": round(value, 3),
            "unit": self.unit,
            "met": met,
        }


def goals(sizes: Sizes) -> list[Goal]:
    """The issue's targets, on the largest sizes this run measured."""
    fs = "filesystem/full"
    most = max(sizes.appends_at)
    biggest = f"{max(sizes.stores_of):,}"

    def tput(f: Figures, workload: str, target: str) -> float:
        return f.get(workload, target).ops_per_s

    def median(f: Figures, workload: str, target: str) -> float:
        return f.get(workload, target).median_ms

    return [
        Goal(
            "single-writer durable update of 1 KB vs raw sqlite3 WAL FULL upserts",
            ">= 1.0×",
            ("update",),
            lambda f: tput(f, "update 1 KB", fs) / tput(f, "update 1 KB", "sqlite3 raw/FULL"),
            1.0,
        ),
        Goal(
            "64 concurrent writers vs single-writer sqlite3 FULL",
            ">= 3×",
            ("concurrency", "update"),
            lambda f: (
                tput(f, "64 concurrent writers", fs) / tput(f, "update 1 KB", "sqlite3 raw/FULL")
            ),
            3.0,
        ),
        Goal(
            "64 concurrent writers vs diskcache sets",
            ">= 1.0×",
            ("concurrency", "update"),
            lambda f: tput(f, "64 concurrent writers", fs) / tput(f, "update 1 KB", "diskcache"),
            1.0,
        ),
        Goal(
            f"append at {most:,} interactions vs at 10 (time)",
            "<= 1.5×",
            ("append",),
            lambda f: median(f, f"append at {most:,}", fs) / median(f, "append at 10", fs),
            1.5,
            at_most=True,
        ),
        Goal(
            "warm get_session of a 5-interaction session",
            ">= 50,000/s",
            ("get-warm",),
            lambda f: tput(f, "get warm", fs),
            50_000,
            unit="/s",
        ),
        Goal(
            f"open a {biggest}-session store vs reading and parsing every file (time)",
            "<= 0.25×",
            ("query", "open"),
            lambda f: (
                median(f, f"open {biggest}", fs)
                / median(f, f"open {biggest}", "read+parse every file")
            ),
            0.25,
            at_most=True,
        ),
        Goal(
            f"resident index memory per session, {biggest} sessions",
            "<= 1,024 bytes",
            ("query", "open"),
            lambda f: float(f.get(f"open {biggest}", fs).extra["rss_bytes_per_session"]),
            1024,
            at_most=True,
            unit=" bytes",
        ),
        Goal(
            f"count_sessions with a filter, {biggest} sessions",
            "<= 20 ms",
            ("query",),
            lambda f: median(f, f"count filtered at {biggest}", "filesystem/process"),
            20,
            at_most=True,
            unit=" ms",
        ),
        Goal(
            f"list_sessions(limit=50) sorted, {biggest} sessions",
            "<= 20 ms",
            ("query",),
            lambda f: median(f, f"list 50 sorted at {biggest}", "filesystem/process"),
            20,
            at_most=True,
            unit=" ms",
        ),
        Goal(
            "4 writer processes vs 1 (aggregate writes/s)",
            ">= 1.0×",
            ("processes",),
            lambda f: tput(f, "4 writer process(es)", fs) / tput(f, "1 writer process(es)", fs),
            1.0,
        ),
        Goal(
            "watch in another process shows a created session (p99), filesystem store",
            "<= 1,000 ms",
            ("watch",),
            lambda f: f.get("watch sees another process's create", fs).p99_ms,
            1000,
            at_most=True,
            unit=" ms",
        ),
        Goal(
            "watch in another process shows a created session (p99), SQLite store",
            "<= 1,000 ms",
            ("watch",),
            lambda f: f.get("watch sees another process's create", "sqlite/full").p99_ms,
            1000,
            at_most=True,
            unit=" ms",
        ),
        Goal(
            "SQLite store vs raw sqlite3 running the same statements",
            ">= 0.9×",
            ("sqlite-overhead",),
            lambda f: (
                tput(f, "update 1 KB, same statements", "sqlite/full")
                / tput(f, "update 1 KB, same statements", "sqlite3 raw/FULL")
            ),
            0.9,
        ),
    ]


async def run(args: argparse.Namespace) -> Path:
    """Run the chosen workloads; write JSON, Markdown and the chart; return the JSON path."""
    sizes = Sizes.pick(args.quick)
    chosen = args.only or list(WORKLOADS)
    if "open" in chosen and "query" not in chosen:
        chosen.insert(chosen.index("open"), "query")  # open reads the stores query fills
    scratch = Path(tempfile.mkdtemp(prefix="sp-bench-", dir=args.dir))
    results: list[Result] = []
    timings: dict[str, float] = {}
    try:
        env = environment(scratch, "quick" if args.quick else "full")
        for name in chosen:
            started = time.perf_counter()
            print(f"[{name}] ...", file=sys.stderr, flush=True)
            results.extend(await WORKLOADS[name](scratch / name, sizes))
            timings[name] = round(time.perf_counter() - started, 2)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    figures = Figures(results)
    judged = [g.judge(figures) for g in goals(sizes) if set(g.needs) <= set(chosen)]
    stamp = datetime.now(UTC)
    document = {
        "run_at": stamp.isoformat(),
        "environment": env,
        "sizes": dataclasses.asdict(sizes),
        "seconds_per_workload": timings,
        "results": [r.as_dict() for r in results],
        "targets": judged,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = out / f"{stamp:%Y-%m-%d}-{env['machine']}{'-quick' if args.quick else ''}"
    path = base.with_suffix(".json")
    path.write_text(json.dumps(document, indent=2) + "\n")
    chart = write_chart(results, base.with_suffix(".png"))
    write_markdown(document, base.with_suffix(".md"), chart)
    for goal in judged:
        verdict = "skipped" if "skipped" in goal else ("met" if goal["met"] else "MISSED")
        shown = goal.get("measured", "-")
        print(f"{verdict:>7}  {goal['target']}: {shown}{goal.get('unit', '')} "
              f"(needs {goal['requirement']})")  # fmt: skip
    print(f"wrote {path}, {base.with_suffix('.md')}, {chart}")
    return path


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: under a minute")
    parser.add_argument("--only", nargs="+", choices=list(WORKLOADS), help="these workloads")
    parser.add_argument("--out", default=str(RESULTS), help="where results go")
    parser.add_argument("--dir", default=None, help="where the stores are created (a temp dir)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
