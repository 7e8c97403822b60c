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
        "| target | needs | measured | met |",
        "|---|---|---|---|",
    ]
    for goal in document["targets"]:
        if "skipped" in goal:
            lines.append(f"| {goal['target']} | {goal['requirement']} | not run | - |")
            continue
        measured = f"{goal['measured']:,}{goal['unit']}"
        lines.append(
            f"| {goal['target']} | {goal['requirement']} | {measured} | "
            f"{'yes' if goal['met'] else '**no**'} |"
        )
    lines += [
        "",
        "## Results",
        "",
        "Medians and p99 over the repetitions (n); throughput is 1/median except for the",
        "concurrency and process workloads, where it is writes over elapsed time.",
        "",
        "| workload | target | n | median ms | p99 ms | ops/s | also |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in document["results"]:
        also = ", ".join(f"{key.replace('_', ' ')} {value:,}" for key, value in
                         row.get("extra", {}).items())  # fmt: skip
        lines.append(
            f"| {row['workload']} | {row['target']} | {row['n']} | {row['median_ms']:.3f} | "
            f"{row['p99_ms']:.3f} | {row['ops_per_s']:,.0f} | {also} |"
        )
    lines += ["", f"![throughput and p99 per workload and target]({chart.name})", ""]
    path.write_text("\n".join(lines))
