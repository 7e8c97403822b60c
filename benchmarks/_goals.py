"""The targets: each a figure derived from one run's results, compared with the issue's bound.

Every ratio is between two sides measured in the same run, in alternating rounds. A goal
whose figures were not measured (a workload not chosen, or a figure the run could not take)
is reported as skipped with the reason, never as met.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from _agents import PEER
from _measure import Result
from _sizes import Sizes

__all__ = ["Figures", "Goal", "goals"]

FS = "filesystem/full"
SQL = "sqlite/full"
RAW = "sqlite3 raw/FULL"
SAME_DOC = "sqlite3 SELECT+orjson, same session"
PG = "postgres/full"

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}


class Figures:
    """Look results up by workload and target."""

    def __init__(self, results: list[Result]) -> None:
        self._by = {(r.workload, r.target): r for r in results}

    def get(self, workload: str, target: str) -> Result:
        """The result, or KeyError naming what is missing."""
        try:
            return self._by[(workload, target)]
        except KeyError:
            raise KeyError(f"no result for {workload!r} on {target!r}") from None


#: A goal's measurement: the figure, and the two sides (or the figure) in words.
Measure = Callable[[Figures], tuple[float, str]]


@dataclass(frozen=True, slots=True)
class Goal:
    """A performance target: a figure derived from results, compared with a bound."""

    issue: str
    name: str
    needs: tuple[str, ...]  # the workloads it reads
    measure: Measure
    op: str  # how the figure must compare with the bound: >=, >, <= or <
    bound: float
    unit: str = "×"
    note: str = ""  # e.g. the goal beyond the bound

    @property
    def requirement(self) -> str:
        """The bound in words, e.g. ``>= 0.5`` and the unit."""
        return f"{self.op} {self.bound:,g}{self.unit}" + (f" ({self.note})" if self.note else "")

    def judge(self, figures: Figures) -> dict[str, Any]:
        """The measured figure, the sides it came from, and whether it meets the bound."""
        head = {"issue": self.issue, "target": self.name, "requirement": self.requirement}
        try:
            value, detail = self.measure(figures)
        except KeyError as missing:
            return {**head, "skipped": str(missing.args[0] if missing.args else missing)}
        return {
            **head,
            "measured": round(value, 3),
            "unit": self.unit,
            "detail": detail,
            "met": _OPS[self.op](value, self.bound),
        }


def _tput(workload: str, ours: str, peer: str, peer_workload: str | None = None) -> Measure:
    """Our throughput over the peer's (higher is better)."""

    def measure(f: Figures) -> tuple[float, str]:
        a, b = f.get(workload, ours), f.get(peer_workload or workload, peer)
        return a.ops_per_s / b.ops_per_s, f"{a.ops_per_s:,.0f}/s vs {b.ops_per_s:,.0f}/s"

    return measure


def _time(workload: str, ours: str, peer: str, peer_workload: str | None = None) -> Measure:
    """Our median time over the peer's (lower is better)."""

    def measure(f: Figures) -> tuple[float, str]:
        a, b = f.get(workload, ours), f.get(peer_workload or workload, peer)
        return a.median_ms / b.median_ms, f"{a.median_ms:,.3f} ms vs {b.median_ms:,.3f} ms"

    return measure


def _field(workload: str, target: str, name: str, scale: float = 1.0) -> Measure:
    """A figure of one result: ``median_ms``, ``p999_ms``, ``max_ms``, ``ops_per_s`` or extra."""

    def measure(f: Figures) -> tuple[float, str]:
        r = f.get(workload, target)
        value = getattr(r, name) if hasattr(r, name) else r.extra[name]
        shown = {k: v for k, v in r.extra.items() if k in ("checkpoints", "sessions", "held")}
        also = ", ".join(f"{k} {v:,}" for k, v in shown.items())
        return float(value) * scale, f"{workload}, {target}" + (f" ({also})" if also else "")

    return measure


def _extra_ratio(workload: str, ours: str, peer: str, name: str) -> Measure:
    """An extra figure of ours over the peer's (e.g. WAL bytes per update)."""

    def measure(f: Figures) -> tuple[float, str]:
        try:
            a = float(f.get(workload, ours).extra[name])
            b = float(f.get(workload, peer).extra[name])
        except KeyError:
            raise KeyError(f"{name} not measured for {workload!r} (see discarded_rounds)") from None
        return a / b, f"{a:,.0f} vs {b:,.0f} bytes"

    return measure


def _zero_failures(workload: str, target: str) -> Measure:
    def measure(f: Figures) -> tuple[float, str]:
        r = f.get(workload, target)
        detail = f"{r.extra['failed']} failed, {r.extra['locked_errors']} 'locked'"
        if r.extra.get("first_errors"):
            detail += f"; first: {r.extra['first_errors'][0]}"
        return float(r.extra["failed"]), detail

    return measure


def _last_block_time(f: Figures) -> tuple[float, str]:
    """The last growth block's seconds over the first's (the issue's test); names the slowest."""
    blocks = f.get("growth", FS).extra["blocks"]
    first, last = blocks[0]["seconds"], blocks[-1]["seconds"]
    slowest = max(blocks, key=lambda b: b["seconds"])
    return last / first, (
        f"block 1: {first:,} s, block {len(blocks)}: {last:,} s; "
        f"slowest: block {slowest['block']}, {slowest['seconds']:,} s"
    )


def _bytes_spread(f: Figures) -> tuple[float, str]:
    """The most bytes written per session in any growth block over the fewest in any."""
    blocks = f.get("growth", FS).extra["blocks"]
    most = max(blocks, key=lambda b: b["bytes_per_session"])
    least = min(blocks, key=lambda b: b["bytes_per_session"])
    return most["bytes_per_session"] / least["bytes_per_session"], (
        f"most: block {most['block']}, {most['bytes_per_session']:,} B; "
        f"fewest: block {least['block']}, {least['bytes_per_session']:,} B"
    )


def goals(sizes: Sizes, scale: dict[str, int] | None = None) -> list[Goal]:
    """The issues' targets, on the largest sizes this run measured."""
    most = max(sizes.appends_at)
    deepest, shallow = max(sizes.history_at), min(sizes.history_at)
    biggest = f"{max(sizes.stores_of):,}"
    x = ("exchange",)
    hist = ("history",)
    listed = [
        # -- issue 18: the filesystem store's write side --------------------------------------
        Goal("18", "single-writer durable 1 KB update vs raw sqlite3 WAL FULL upserts",
             ("update",), _tput("update 1 KB", FS, RAW), ">=", 0.5,
             note="the goal is 1.0×, the fsync floor"),
        Goal("18", f"append one exchange at {shallow:,} vs {PEER}.add_items (time)", x,
             _time(f"append one exchange at {shallow:,}", FS, PEER), "<", 1.0),
        Goal("18", f"append one exchange at {deepest:,} vs {PEER}.add_items (time)", x,
             _time(f"append one exchange at {deepest:,}", FS, PEER), "<", 1.0),
        Goal("18", "64 concurrent writers vs diskcache.Cache.set", ("concurrency",),
             _tput("64 concurrent writers", FS, "diskcache", "one writer, 1 KB updates"),
             ">=", 1.0),
        Goal("18", "64 concurrent writers vs single-writer raw sqlite3 FULL", ("concurrency",),
             _tput("64 concurrent writers", FS, RAW, "one writer, 1 KB updates"), ">=", 3.0),
        Goal("18", "4 writer processes vs 1 (aggregate writes/s)", ("processes",),
             _tput("4 writer process(es)", FS, FS, "1 writer process(es)"), ">=", 1.0),
        Goal("18", f"no stalls: worst write, 8 writers for {sizes.sustained_s:g} s",
             ("sustained",), _field(f"8 writers for {sizes.sustained_s:g} s", FS, "max_ms"),
             "<=", 100, unit=" ms"),
        Goal("18", f"no stalls: p99.9 write, 8 writers for {sizes.sustained_s:g} s",
             ("sustained",), _field(f"8 writers for {sizes.sustained_s:g} s", FS, "p999_ms"),
             "<=", 25, unit=" ms"),
        Goal("18", f"append at {most:,} interactions vs at 10 (time)", ("append",),
             _time(f"append at {most:,}", FS, FS, "append at 10"), "<=", 1.5),
        # -- issue 19: the filesystem store's read side ---------------------------------------
        Goal("19", f"open a {biggest}-session store vs reading and parsing every file (time)",
             ("query", "open"), _time(f"open {biggest}", FS, "read+parse every file"),
             "<=", 0.25),
        Goal("19", f"resident index memory per session, {biggest} sessions", ("query", "open"),
             _field(f"open {biggest}", FS, "rss_bytes_per_session"), "<=", 1024,
             unit=" bytes"),
        Goal("19", "warm get_session of a 5-interaction session", ("get-warm",),
             _field("get warm", FS, "ops_per_s"), ">=", 100_000, unit="/s"),
        Goal("19", "warm get_session vs raw sqlite3 point SELECT + orjson.loads", ("get-warm",),
             _tput("get warm", FS, SAME_DOC), ">=", 0.5),
        Goal("19", f"read {deepest:,} exchanges after a write vs {PEER}.get_items (time)", hist,
             _time(f"read history after a write at {deepest:,}", FS, PEER), "<=", 1.0),
        Goal("19", f"read {shallow:,} exchanges after a write vs {PEER}.get_items (time)", hist,
             _time(f"read history after a write at {shallow:,}", FS, PEER), "<=", 1.0),
        Goal("19", f"count_sessions with a filter, {biggest} sessions", ("query",),
             _field(f"count filtered at {biggest}", "filesystem/process", "median_ms"),
             "<=", 20, unit=" ms"),
        Goal("19", f"list_sessions(limit=50) sorted, {biggest} sessions", ("query",),
             _field(f"list 50 sorted at {biggest}", "filesystem/process", "median_ms"),
             "<=", 20, unit=" ms"),
        # -- issue 21: the SQLite store --------------------------------------------------------
        Goal("21", "SQLite store update_session of 1 KB vs raw sqlite3 WAL FULL upsert",
             ("update",), _tput("update 1 KB", SQL, RAW), ">=", 0.9),
        Goal("21", "SQLite store vs raw sqlite3 running the same statements",
             ("sqlite-overhead",), _tput("update 1 KB, same statements", SQL, RAW), ">=", 0.9),
        Goal("21", "SQLite store WAL bytes per 1 KB update vs the raw upsert's", ("sqlite-wal",),
             _extra_ratio("WAL growth, 1 KB updates", SQL, RAW, "wal_bytes_per_update"),
             "<=", 2.0),
        Goal("21", "SQLite store get_session vs raw sqlite3 point SELECT + orjson.loads",
             ("get-warm",), _tput("get warm", SQL, SAME_DOC), ">=", 0.5),
        Goal("21", f"SQLite store: append one exchange at {shallow:,} vs {PEER} (time)", x,
             _time(f"append one exchange at {shallow:,}", SQL, PEER), "<", 1.0),
        Goal("21", f"SQLite store: append one exchange at {deepest:,} vs {PEER} (time)", x,
             _time(f"append one exchange at {deepest:,}", SQL, PEER), "<", 1.0),
        Goal("21", "SQLite store, 4 writer processes: failed opens or writes ('locked')",
             ("processes",), _zero_failures("4 writer process(es)", SQL), "<=", 0, unit=""),
        Goal("21", "SQLite store, 4 writer processes vs 1 (aggregate writes/s)", ("processes",),
             _tput("4 writer process(es)", SQL, SQL, "1 writer process(es)"), ">=", 1.0),
        # -- issue 23: sealing at rest and compression ----------------------------------------
        Goal("23", "sealing: durable 1 KB update on the filesystem store, sealed vs plain (time)",
             ("sealing",), _time("update 1 KB (sealing)", FS + " sealed", FS), "<=", 1.25),
        *(
            Goal("23", f"compression: bytes on disk of a {deepest:,}-exchange session, {alg} vs "
                 "plain", ("sealing",),
                 _extra_ratio(f"read history of {deepest:,} (compression)", f"{FS} {alg}", FS,
                              "bytes_on_disk"), "<", 1.0)
            for alg in ("zstd", "zlib")
        ),
        *(
            Goal("23", f"compression: reading a {deepest:,}-exchange session from the disk, "
                 f"{alg} vs plain (time)", ("sealing",),
                 _time(f"read history of {deepest:,} (compression)", f"{FS} {alg}", FS),
                 "<", 1.0)
            for alg in ("zstd", "zlib")
        ),
        Goal("23", "sealing: durable 1 KB update on the PostgreSQL store, sealed vs plain (time)",
             ("postgres",), _time("update 1 KB, one writer (PostgreSQL)", PG + " sealed", PG),
             "<=", 1.25),
        # -- issue 22: the PostgreSQL store ----------------------------------------------------
        Goal("22", "PostgreSQL store update_session vs raw psycopg, one version-checked UPDATE "
             "per transaction", ("postgres",),
             _tput("update 1 KB, one writer (PostgreSQL)", PG, "psycopg raw"), ">=", 0.8),
        Goal("22", "PostgreSQL store: 32 concurrent writers vs one writer (aggregate writes/s)",
             ("postgres",), _tput("32 concurrent writers (PostgreSQL)", PG, PG,
                                  "1 concurrent writers (PostgreSQL)"), ">=", 4.0),
        # -- issue 7: watch ---------------------------------------------------------------------
        Goal("7", "watch in another process shows a created session (p99), filesystem store",
             ("watch",), _field("watch sees another process's create", FS, "p99_ms"),
             "<=", 1000, unit=" ms"),
        Goal("7", "watch in another process shows a created session (p99), SQLite store",
             ("watch",), _field("watch sees another process's create", SQL, "p99_ms"),
             "<=", 1000, unit=" ms"),
    ]  # fmt: skip
    if scale is not None:
        total = f"{scale['blocks'] * scale['block']:,}"
        listed += [
            Goal("18", f"growth to {total} sessions: last block's time vs the first's",
                 ("growth",), _last_block_time, "<=", 1.5),
            Goal("18", f"growth to {total} sessions: bytes written per session, most vs fewest "
                 "in any block", ("growth",), _bytes_spread, "<=", 1.25,
                 note="flat: every block within 25%"),
            Goal("19", f"open {total} sessions to the first query", ("growth",),
                 _field(f"open {total}", FS, "median_ms", 1e-3), "<=", 3, unit=" s"),
            Goal("19", f"open {total} sessions: peak resident memory", ("growth",),
                 _field(f"open {total}", FS, "peak_rss_bytes", 1 / 2**20), "<=", 1024,
                 unit=" MiB"),
        ]  # fmt: skip
    return listed
