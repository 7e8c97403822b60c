"""The Markdown report and the PNG chart of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _measure import Result

__all__ = ["write_chart", "write_markdown"]


def write_chart(results: list[Result], path: Path) -> Path:
    """Throughput (log scale) and p99 latency per workload and target, as horizontal bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results if r.ops_per_s > 0]
    labels = [f"{r.workload} · {r.target}" for r in rows]
    colours = ["tab:blue" if _ours(r.target) else "tab:gray" for r in rows]
    height = max(4.0, 0.22 * len(rows) + 1.5)
    figure, (left, right) = plt.subplots(1, 2, figsize=(16, height), sharey=True)
    positions = range(len(rows))
    left.barh(positions, [r.ops_per_s for r in rows], color=colours)
    left.set_xscale("log")
    left.set_xlabel("operations per second (log; higher is better)")
    right.barh(positions, [r.p99_ms for r in rows], color=colours)
    right.set_xscale("log")
    right.set_xlabel("p99 latency, ms (log; lower is better)")
    left.set_yticks(list(positions), labels, fontsize=7)
    left.invert_yaxis()
    figure.suptitle("session-persistence (blue) and peers (grey), measured in the same run")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _ours(target: str) -> bool:
    return target.split("/", maxsplit=1)[0] in ("filesystem", "sqlite", "memory")


def _shown(value: Any) -> str:
    """A figure with thousands separators; text as it is; a list as its first item."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        if isinstance(value, list):
            return f"{value[0]!s} (+{len(value) - 1} more)" if value else "none"
        return str(value).replace("|", "/")
    return f"{value:,}"


def write_markdown(document: dict[str, Any], path: Path, chart: Path) -> None:
    """The environment, the targets with their ratios, then every result."""
    env = document["environment"]
    lines = [
        f"# Benchmark run {document['run_at']} ({env['mode']})",
        "",
        "## Environment",
        "",
        "| | |",
        "|---|---|",
        f"| machine | {env['machine']} ({env['platform']}, {env['cpu_count']} CPUs) |",
        f"| Python, SQLite | {env['python']}, {env['sqlite']} |",
        f"| filesystem | {env['filesystem'].get('type')} on {env['filesystem'].get('mount_point')}"
        f" ({env['filesystem'].get('options')}) |",
        f"| durability | {env['durability']} |",
        "| packages | "
        + ", ".join(f"{name} {version}" for name, version in env["packages"].items())
        + " |",
        "",
        "## Targets",
        "",
        "Each ratio is between sides measured in this run in alternating rounds.",
        "",
        "| issue | target | needs | measured | from | met |",
        "|---|---|---|---|---|---|",
    ]
    for goal in document["targets"]:
        if "skipped" in goal:
            lines.append(
                f"| {goal['issue']} | {goal['target']} | {goal['requirement']} | not measured |"
                f" {goal['skipped']} | - |"
            )
            continue
        measured = f"{goal['measured']:,}{goal['unit']}"
        lines.append(
            f"| {goal['issue']} | {goal['target']} | {goal['requirement']} | {measured} | "
            f"{goal['detail']} | {'yes' if goal['met'] else '**no**'} |"
        )
    lines += [
        "",
        "## Results",
        "",
        "Medians, p99, p99.9 and worst over the repetitions (n), pooled over the rounds;",
        "throughput is 1/median except for the concurrency, process and sustained workloads,",
        "where it is writes over the wall time of that side's chunks.",
        "",
        "| workload | target | n | median ms | p99 ms | p99.9 ms | max ms | ops/s | also |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in document["results"]:
        extra = {k: v for k, v in row.get("extra", {}).items() if k != "blocks"}
        also = ", ".join(f"{key.replace('_', ' ')} {_shown(value)}" for key, value in
                         extra.items())  # fmt: skip
        lines.append(
            f"| {row['workload']} | {row['target']} | {row['n']} | {row['median_ms']:.3f} | "
            f"{row['p99_ms']:.3f} | {row['p999_ms']:.3f} | {row['max_ms']:.3f} | "
            f"{row['ops_per_s']:,.0f} | {also} |"
        )
    for row in document["results"]:
        blocks = row.get("extra", {}).get("blocks")
        if blocks:
            lines += [
                "",
                f"### {row['workload']}, {row['target']}: per block "
                f"(bytes written: {row['extra']['bytes_from']})",
                "",
                "| block | sessions | seconds | bytes written per session "
                "| journal + index on disk |",
                "|---:|---:|---:|---:|---:|",
            ]
            lines += [
                f"| {b['block']} | {b['sessions']:,} | {b['seconds']:,} | "
                f"{b['bytes_per_session']:,} | {b['journal_and_index_bytes_on_disk']:,} |"
                for b in blocks
            ]
    lines += ["", f"![throughput and p99 per workload and target]({chart.name})", ""]
    path.write_text("\n".join(lines))
