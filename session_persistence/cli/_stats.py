"""``stats``: counts, sizes, ages and the backend's figures, as a person reads them.

``--json`` prints :class:`~session_persistence.StoreStats` as the library returns it. The table
shows the same figures for people: a dash where there is no value, ``none`` for an empty list,
SQLite's pragmas by name (``FULL``, not ``2``), byte counts with separators. It leaves out the
counters a store keeps per process (commits, fsyncs, conflicts, ...): the tool's own process has
just opened the store, so they would always read 0. The last backup is read from the backups on
disk instead of from this process's memory.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from ._common import when
from ._group import cli, command
from ._support import Output, StoreSpec, open_store

__all__ = ["figure_text", "stats_command"]

# Backend figures that count what this process did since it opened the store.
_PER_PROCESS = frozenset(
    {
        "backup_failures",
        "backups_created",
        "batches",
        "batches_committed",
        "checkpoints",
        "commits",
        "conflicts",
        "fsyncs",
        "last_backup_at",
        "pending_sessions",
        "recent_errors",
        "watching",
    }
)
_SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def figure_text(key: str, value: Any) -> str:
    """One backend figure as a person reads it."""
    if key == "synchronous" and value in _SYNCHRONOUS:
        return _SYNCHRONOUS[value]
    if key == "journal_mode" and isinstance(value, str):
        return value.upper()
    if key == "foreign_keys" and value in (0, 1):
        return "on" if value else "off"
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) and key.endswith("_bytes"):
        return f"{value:,}"
    if isinstance(value, list | tuple | set | dict):
        return ", ".join(str(item) for item in value) if value else "none"
    return str(value)


@cli.command("stats")
@command
async def stats_command(*, spec: StoreSpec, output: Output) -> int:
    """Counts, sizes, ages and the backend's figures."""
    async with open_store(spec, read_only=True) as store:
        stats = await store.get_stats()
        backups = await store.list_backups()
    if output.json:
        output.emit(stats)
        return 0
    table = Table(title=str(spec), title_justify="left", box=None, show_header=False)
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in (
        ("sessions", stats.total_sessions),
        ("active", stats.active_sessions),
        ("expired", stats.expired_sessions),
        ("stored bytes", f"{stats.storage_size_bytes:,}"),
        ("oldest", when(stats.oldest_session)),
        ("newest", when(stats.newest_session)),
    ):
        table.add_row(label, str(value))
    for processor, count in sorted(stats.sessions_by_processor.items()):
        table.add_row(f"  {escape(processor)}", str(count))
    backend = dict(stats.backend)
    if "migrated_from" in backend and backend["migrated_from"] == backend.get("schema_version"):
        backend["migrated_from"] = None  # opened at the current schema: nothing was migrated
    for key, value in backend.items():
        if key in _PER_PROCESS:
            continue
        table.add_row(key.replace("_", " "), escape(figure_text(key, value)))
        if key == "backups":
            newest = max((info.created_at for info in backups), default=None)
            table.add_row("last backup", when(newest))
    output.out.print(table)
    return 0
