"""Benchmarks: this project's stores against the peers a user would pick instead.

Run ``make bench`` (full), ``make bench-quick`` (every workload small; ``make test`` runs it so
the harness cannot rot) or ``make bench-scale`` (growth to a million sessions, then opening
them), or ``python benchmarks/run.py [--quick | --scale] [--only WORKLOAD ...] [--out DIR]
[--dir DIR]``.

The sides a target compares run in alternating rounds in this one process (``_measure``).
Writes ``<out>/<date>-<machine>[-quick|-scale].json`` (environment, every result, every target
with its figure, the sides it came from and its verdict), the same as a Markdown report, and a
PNG chart of throughput and p99 per workload and target. ``docs/benchmarks.md`` explains the
method and what the figures mean.
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
from datetime import UTC, datetime
from pathlib import Path

from _goals import Figures, goals
from _measure import Result, environment
from _postgres import postgres
from _report import write_chart, write_markdown
from _scale import growth, scale_settings
from _sealing import SEALING
from _sizes import Sizes, Workload
from _workloads import WORKLOADS

RESULTS = Path(__file__).with_name("results")
ALL: dict[str, Workload] = {**WORKLOADS, **SEALING, "postgres": postgres}


async def run(args: argparse.Namespace) -> Path:
    """Run the chosen workloads; write JSON, Markdown and the chart; return the JSON path."""
    sizes = Sizes.pick(args.quick)
    workloads: dict[str, Workload] = {"growth": growth} if args.scale else ALL
    scale = scale_settings() if args.scale else None
    mode = "scale" if args.scale else ("quick" if args.quick else "full")
    chosen = [name for name in (args.only or list(workloads)) if name in workloads]
    if "open" in chosen and "query" not in chosen:
        chosen.insert(chosen.index("open"), "query")  # open reads the stores query fills
    scratch = Path(tempfile.mkdtemp(prefix="sp-bench-", dir=args.dir))
    results: list[Result] = []
    timings: dict[str, float] = {}
    try:
        env = environment(scratch, mode)
        for name in chosen:
            started = time.perf_counter()
            print(f"[{name}] ...", file=sys.stderr, flush=True)
            results.extend(await workloads[name](scratch / name, sizes))
            timings[name] = round(time.perf_counter() - started, 2)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    figures = Figures(results)
    judged = [g.judge(figures) for g in goals(sizes, scale) if set(g.needs) <= set(chosen)]
    stamp = datetime.now(UTC)
    document = {
        "run_at": stamp.isoformat(),
        "environment": env,
        "sizes": {**dataclasses.asdict(sizes), **({"scale": scale} if scale else {})},
        "seconds_per_workload": timings,
        "results": [r.as_dict() for r in results],
        "targets": judged,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if mode == "full" else f"-{mode}"
    base = out / f"{stamp:%Y-%m-%d}-{env['machine']}{suffix}"
    path = base.with_suffix(".json")
    path.write_text(json.dumps(document, indent=2) + "\n")
    chart = write_chart(results, base.with_suffix(".png"))
    write_markdown(document, base.with_suffix(".md"), chart)
    for goal in judged:
        verdict = "skipped" if "skipped" in goal else ("met" if goal["met"] else "MISSED")
        shown = goal.get("measured", "-")
        why = goal.get("detail", goal.get("skipped"))
        print(f"{verdict:>7}  [{goal['issue']}] {goal['target']}: {shown}{goal.get('unit', '')}"
              f" (needs {goal['requirement']}; {why})")  # fmt: skip
    print(f"wrote {path}, {base.with_suffix('.md')}, {chart}")
    return path


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    runs = parser.add_mutually_exclusive_group()
    runs.add_argument("--quick", action="store_true", help="every workload, small")
    runs.add_argument(
        "--scale",
        action="store_true",
        help="only the growth run (SP_BENCH_SCALE_BLOCK sessions x SP_BENCH_SCALE_BLOCKS)",
    )
    parser.add_argument("--only", nargs="+", choices=[*ALL, "growth"], help="these workloads")
    parser.add_argument("--out", default=str(RESULTS), help="where results go")
    parser.add_argument("--dir", default=None, help="where the stores are created (a temp dir)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
