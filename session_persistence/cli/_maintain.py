"""Checking and cleaning: ``check`` (``--repair``) and ``cleanup``."""

from __future__ import annotations

from typing import Any

import click
from rich.markup import escape

from ..models import CheckReport
from ._group import cli, command
from ._support import Exit, Output, StoreSpec, open_store

__all__ = ["check_command", "cleanup_command"]


@cli.command("check")
@click.option("--repair", is_flag=True, help="Quarantine what is damaged and say what was done.")
@command
async def check_command(repair: bool, *, spec: StoreSpec, output: Output) -> int:
    """Verify every session, the store's own files and every backup.

    Without --repair nothing is changed. Exit 1 when problems remain.
    """
    async with open_store(spec) as store:
        with output.progress("checking") as progress:
            report = await store.check(repair=repair, progress=progress)
    if output.json:
        output.emit({**_report_json(report), "store": str(spec)})
    else:
        _print_report(output, report)
    if repair:
        return int(Exit.PROBLEMS) if report.unresolved else 0
    return 0 if report.ok else int(Exit.PROBLEMS)


def _report_json(report: CheckReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "sessions_checked": report.sessions_checked,
        "backups_checked": report.backups_checked,
        "repair": report.repair,
        "problems": report.problems,
        "unresolved": len(report.unresolved),
    }


def _print_report(output: Output, report: CheckReport) -> None:
    checked = f"checked {report.sessions_checked} session(s) and {report.backups_checked} backup(s)"
    if report.ok:
        output.out.print(f"[green]ok[/]: {checked}, no problems")
        return
    for problem in report.problems:
        output.out.print(
            f"[bold]{problem.kind}[/] {escape(problem.target)}: {escape(problem.problem)}"
        )
        if problem.action is not None:
            output.out.print(f"  [green]repaired[/]: {escape(problem.action)}")
    left = len(report.unresolved)
    summary = f"{checked}: {len(report.problems)} problem(s)"
    if report.repair:
        summary += f", {len(report.problems) - left} repaired, {left} need an operator"
    else:
        summary += "; run 'check --repair' to quarantine what is damaged"
    output.out.print(summary)


@cli.command("cleanup")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@command
async def cleanup_command(dry_run: bool, *, spec: StoreSpec, output: Output) -> int:
    """Remove expired sessions."""
    async with open_store(spec, read_only=dry_run) as store:
        if dry_run:
            expired = await store.get_expired_sessions()
            ids = [s.session_id for s in expired]
        else:
            ids = []
            removed = await store.cleanup_expired_sessions()
    if output.json:
        key = "would_remove" if dry_run else "removed"
        output.emit({key: len(ids) if dry_run else removed, "session_ids": ids, "dry_run": dry_run})
    elif dry_run:
        output.out.print(f"would remove {len(ids)} expired session(s)")
        for session_id in ids:
            output.out.print(f"  {session_id}")
    else:
        output.out.print(f"removed {removed} expired session(s)")
    return 0
