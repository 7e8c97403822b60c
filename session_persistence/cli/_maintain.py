"""Checking and cleaning: ``check`` (``--repair``) and ``cleanup``."""

from __future__ import annotations

import dataclasses
from typing import Any

import click
from rich.markup import escape

from ..models import CheckProblem, CheckReport
from ..stores.base import SessionStore
from ._group import cli, command
from ._support import Exit, Output, StoreSpec, open_store

__all__ = [
    "check_command",
    "cleanup_command",
    "inspect",
    "problem_line",
    "repair_advice",
]


@cli.command("check")
@click.option(
    "--repair", is_flag=True, help="Set aside what can be repaired and say what was done."
)
@command
async def check_command(repair: bool, *, spec: StoreSpec, output: Output) -> int:
    """Verify every session, the store's own files and every backup.

    Without --repair nothing is changed; with it, the store is opened for writing only if a
    problem found is one a repair acts on. Exit 1 when problems remain.
    """
    async with open_store(spec, read_only=True) as store:
        report = await inspect(store, output)
    if repair and any(problem.repairable for problem in report.problems):
        # Opened to change it only now, when there is something a repair acts on; the check
        # runs again, as things may have changed since the look.
        async with open_store(spec) as store:
            with output.progress("repairing") as progress:
                report = await store.check(repair=True, progress=progress)
    elif repair:
        report = dataclasses.replace(report, repair=True)  # nothing to act on: nothing opened
    if output.json:
        output.emit({**_report_json(report), "store": str(spec)})
    else:
        _print_report(output, report)
    if repair:
        return int(Exit.PROBLEMS) if report.unresolved else 0
    return 0 if report.ok else int(Exit.PROBLEMS)


async def inspect(store: SessionStore, output: Output) -> CheckReport:
    """Run the store's check without repairing (on a read-only open it changes nothing)."""
    with output.progress("checking") as progress:
        return await store.check(progress=progress)


def problem_line(problem: CheckProblem) -> str:
    """One problem as ``check`` and ``health`` print it (plain text)."""
    return f"{problem.kind} {problem.target}: {problem.problem}"


def repair_advice(problems: list[CheckProblem]) -> str | None:
    """What to run about ``problems`` (not yet repaired), or ``None`` if no repair applies."""
    count = sum(problem.repairable for problem in problems)
    if not count:
        return None
    if count == len(problems):
        return "run 'check --repair' to set aside what is damaged"
    return f"run 'check --repair' to set aside the {count} it can; the others need an operator"


def _report_json(report: CheckReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "sessions_checked": report.sessions_checked,
        "backups_checked": report.backups_checked,
        "repair": report.repair,
        "problems": report.problems,
        "repairable": sum(
            problem.repairable for problem in report.unresolved
        ),  # what --repair would act on
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
    done = len(report.problems) - left
    summary = f"{checked}: {len(report.problems)} problem(s)"
    if report.repair and done:
        summary += f", {done} repaired, {left} need an operator"
    elif report.repair:
        summary += ", nothing to repair: each needs an operator (what to do is above)"
    else:
        advice = repair_advice(report.problems)
        summary += f"; {advice}" if advice else ", which need an operator (what to do is above)"
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
