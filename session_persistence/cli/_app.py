"""The commands of ``session-persistence``. See ``docs/cli.md`` for each with its output."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sys
import traceback
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson
from rich.markup import escape
from rich.table import Table

from .._ids import validate_session_id
from .._version import __version__
from ..documents import session_to_document
from ..errors import BackupError, InvalidInputError
from ..manager import copy_sessions
from ..models import (
    BackupInfo,
    BackupOptions,
    CheckReport,
    PersistedSession,
    RestoreOptions,
    RestoreResult,
    SessionFilter,
    SessionHeader,
    SessionQueryOptions,
)
from ..serialization import default_codec
from ..stores.base import SessionStore
from ._support import (
    DEFAULT_STORE,
    Exit,
    NotFoundError,
    Output,
    StoreSpec,
    describe_error,
    exit_code_for,
    open_store,
    parse_when,
)

__all__ = ["cli", "main"]

_STORE_HELP = (
    "The store: filesystem:DIRECTORY or sqlite:FILE. Default: SESSION_STORE_TYPE and "
    f"SESSION_STORE_PATH, else {DEFAULT_STORE}."
)
_SORT_FIELDS = ("created_at", "updated_at", "expires_at", "activity_id", "session_id")
_STRATEGIES = ("skip_existing", "overwrite", "update_newer")


class _Context:
    """What the group's options give every command."""

    def __init__(self, store: str | None, debug: bool) -> None:
        self.store = store
        self.debug = debug


def _command(body: Callable[..., Coroutine[Any, Any, int | None]]) -> Callable[..., None]:
    """Give a command ``--store`` and ``--json``, run it, and turn errors into exit codes."""

    @click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
    @click.option("--store", "store_text", metavar="TYPE:PATH", help=_STORE_HELP)
    @functools.wraps(body)
    def run(*args: Any, **kwargs: Any) -> None:
        context = click.get_current_context().find_object(_Context) or _Context(None, False)
        as_json = bool(kwargs.pop("as_json"))
        store_text = kwargs.pop("store_text")
        output = Output(json=as_json)
        try:
            spec = StoreSpec.parse(store_text if store_text is not None else context.store)
            code = asyncio.run(body(*args, spec=spec, output=output, **kwargs))
        except KeyboardInterrupt:
            output.fail("interrupted", Exit.INTERRUPTED)
        except click.ClickException as error:  # a bad --store, variable or value: one line
            output.fail(error.format_message(), Exit.USAGE)
        except Exception as error:
            if context.debug:
                traceback.print_exc()
            code = exit_code_for(error)
            message = describe_error(error)
            if code == Exit.INTERNAL:
                message = (
                    f"internal error: {type(error).__name__}: {message} (run with --debug for "
                    "the traceback, and please report it)"
                )
            output.fail(message, code)
        sys.exit(int(code or 0))

    return run


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="session-persistence")
@click.option("--store", "store_text", metavar="TYPE:PATH", help=_STORE_HELP)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, store_text: str | None, debug: bool) -> None:
    """Inspect, check, clean, back up, restore, export, import, migrate and watch a store.

    Every command takes --store (or reads SESSION_STORE_TYPE/SESSION_STORE_PATH) and --json.
    Exit codes: 0 ok, 1 problems found, 2 usage, 3 not found, 4 damaged or refused data,
    5 storage unavailable, 6 refused by the store's state, 70 internal error.
    """
    ctx.obj = _Context(store_text, debug)
    _quiet_logs(debug)


def _quiet_logs(debug: bool) -> None:
    """The library's log lines go to stderr with --debug; otherwise the output says it all."""
    package = logging.getLogger("session_persistence")
    package.handlers = [h for h in package.handlers if h.get_name() != "session-persistence-cli"]
    handler: logging.Handler = logging.StreamHandler() if debug else logging.NullHandler()
    handler.set_name("session-persistence-cli")
    if debug:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        package.setLevel(logging.INFO)
    package.addHandler(handler)
    package.propagate = not debug


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line (the ``session-persistence`` console script)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="session-persistence")


# == helpers =====================================================================================


def _when(value: datetime | None, *, short: bool = False) -> str:
    """A UTC time for tables (``short``: to the minute)."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M" if short else "%Y-%m-%d %H:%M:%S")


def _header_json(store: SessionStore, header: SessionHeader | PersistedSession) -> dict[str, Any]:
    return {
        "session_id": header.session_id,
        "processor_id": header.processor_id,
        "activity_id": str(header.activity_id),
        "request_id": str(header.request_id),
        "created_at": header.created_at,
        "updated_at": header.updated_at,
        "last_accessed_at": header.last_accessed_at,
        "expires_at": header.expires_at,
        "expired": store.is_expired(header),
        "version": header.version,
        "interaction_count": (
            header.interaction_count
            if isinstance(header, SessionHeader)
            else len(header.interactions)
        ),
        "tags": list(header.tags),
        "metadata": dict(header.metadata),
    }


def _short(value: Any, width: int = 60) -> str:
    """A one-line preview: an event's text field if it has one, else its compact JSON."""
    if isinstance(value, dict):
        for key in ("content", "text", "message", "prompt", "query"):
            if isinstance(value.get(key), str):
                value = value[key]
                break
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= width else text[: width - 1] + "…"


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _backup_json(info: BackupInfo) -> dict[str, Any]:
    return {
        "backup_id": info.backup_id,
        "created_at": info.created_at,
        "session_count": info.session_count,
        "size_bytes": info.size_bytes,
        "store_type": info.store_type,
        "compressed": info.compressed,
        "format": info.format,
    }


def _restore_json(result: RestoreResult) -> dict[str, Any]:
    return {
        "restored": result.restored_count,
        "overwritten": result.overwritten_count,
        "skipped": result.skipped_count,
        "errors": result.errors,
        "dry_run": result.dry_run,
    }


def _print_restore(output: Output, result: RestoreResult, what: str) -> int:
    if output.json:
        output.emit(_restore_json(result))
    else:
        verb = "would restore" if result.dry_run else "restored"
        output.out.print(
            f"{what}: {verb} {result.restored_count}, overwrote {result.overwritten_count}, "
            f"skipped {result.skipped_count} existing"
        )
        for error in result.errors:
            output.err.print(f"[bold red]error:[/] {escape(error)}")
    return int(Exit.REFUSED) if result.errors else 0


def _merge_options(command: Callable[..., None]) -> Callable[..., None]:
    """``--strategy`` and ``--dry-run``, shared by ``backup restore`` and ``import``."""
    command = click.option("--dry-run", is_flag=True, help="Validate and report; write nothing.")(
        command
    )
    return click.option(
        "--strategy",
        type=click.Choice(_STRATEGIES),
        default="skip_existing",
        show_default=True,
        help="What to do with sessions that exist already.",
    )(command)


def _restore_options(strategy: str, dry_run: bool) -> RestoreOptions:
    return RestoreOptions(merge_strategy=strategy, dry_run=dry_run)  # type: ignore[arg-type]


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise NotFoundError(f"no file {path}")


def _backup_source(argument: str) -> str | Path:
    """A backup id, or a file when it names one (a path separator or ``.backup``)."""
    if os.sep in argument or "/" in argument or argument.endswith(".backup"):
        path = Path(argument)
        if not path.is_file():
            raise NotFoundError(f"no backup file {argument}")
        return path
    return argument


async def _known_backup(store: SessionStore, backup_id: str) -> None:
    if backup_id not in await store._backups.ids():
        where = store._backups.vault.location
        raise NotFoundError(
            f"no backup {backup_id} in {where}; 'session-persistence backup list' shows them"
        )


# == inspecting ==================================================================================


@cli.command("ls")
@click.option("--processor", multiple=True, help="Only this processor's sessions (repeatable).")
@click.option("--tag", multiple=True, help="Only sessions with this tag (repeat: any of them).")
@click.option("--since", help="Created at or after: ISO 8601, or an age (30m, 2h, 7d).")
@click.option("--until", help="Created before: ISO 8601, or an age.")
@click.option("--expired", "which", flag_value="expired", help="Only expired sessions.")
@click.option("--all", "which", flag_value="all", help="Active and expired sessions.")
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True)
@click.option("--sort", type=click.Choice(_SORT_FIELDS), default="updated_at", show_default=True)
@click.option("--asc", is_flag=True, help="Ascending order (default: descending).")
@_command
async def ls_command(
    *,
    processor: tuple[str, ...],
    tag: tuple[str, ...],
    since: str | None,
    until: str | None,
    which: str | None,
    limit: int,
    sort: str,
    asc: bool,
    spec: StoreSpec,
    output: Output,
) -> int:
    """List sessions, newest activity first, with filters."""
    flt = SessionFilter(
        processor_id=list(processor) or None,
        tags=list(tag) or None,
        created_after=parse_when(since, "--since") if since else None,
        created_before=parse_when(until, "--until") if until else None,
        include_expired=which in ("expired", "all"),
    )
    order = SessionQueryOptions(sort_by=sort, sort_order="asc" if asc else "desc")  # type: ignore[arg-type]
    async with open_store(spec) as store:
        if which == "expired":
            matching = [s for s in await store.list_sessions(flt, order) if store.is_expired(s)]
            total, sessions = len(matching), matching[:limit]
        else:
            total = await store.count_sessions(flt)
            sessions = await store.list_sessions(
                flt,
                SessionQueryOptions(
                    limit=limit, sort_by=order.sort_by, sort_order=order.sort_order
                ),
            )
        rows = [_header_json(store, s) for s in sessions]
    if output.json:
        output.emit({"store": str(spec), "total": total, "sessions": rows})
        return 0
    table = Table(
        title=f"{spec}", title_justify="left", box=None, header_style="bold", pad_edge=False
    )
    table.add_column("SESSION", no_wrap=True, min_width=26)  # ids are never cut
    table.add_column("PROCESSOR", no_wrap=True, overflow="ellipsis", min_width=9)
    table.add_column("INTERACTIONS", justify="right", no_wrap=True)
    table.add_column("TAGS", overflow="fold")
    table.add_column("UPDATED", no_wrap=True, min_width=16)
    table.add_column("EXPIRES", no_wrap=True, min_width=16)
    for row in rows:
        expires = "never" if row["expires_at"] is None else _when(row["expires_at"], short=True)
        table.add_row(
            row["session_id"],
            escape(row["processor_id"]),
            str(row["interaction_count"]),
            escape(", ".join(row["tags"])),
            _when(row["updated_at"], short=True),
            expires + (" (expired)" if row["expired"] else ""),
        )
    output.out.print(table)
    shown = f"{len(rows)} of {total} session(s)"
    output.out.print(shown + (" (raise --limit to see more)" if total > len(rows) else ""))
    return 0


@cli.command("show")
@click.argument("session_id")
@click.option("--raw", is_flag=True, help="Print the session as stored (its JSON document).")
@_command
async def show_command(session_id: str, raw: bool, *, spec: StoreSpec, output: Output) -> int:
    """Show one session and its interactions."""
    async with open_store(spec) as store:
        # The store's own read, which validates nothing and counts no access: an operator's
        # look must not extend an idle TTL.
        session = await store._load(validate_session_id(session_id))
        if session is None:
            raise NotFoundError(f"no session {session_id} in {spec}")
        expired = store.is_expired(session)
    document = session_to_document(session, default_codec)
    if raw or output.json:
        output.emit(document)
        return 0
    out = output.out
    out.print(f"[bold]session {session.session_id}[/]" + (" [red](expired)[/]" if expired else ""))
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim")
    facts.add_column()
    for label, value in (
        ("processor", escape(session.processor_id)),
        ("activity", str(session.activity_id)),
        ("request", str(session.request_id)),
        ("version", str(session.version)),
        ("created", _when(session.created_at)),
        ("updated", _when(session.updated_at)),
        ("last accessed", _when(session.last_accessed_at)),
        ("expires", _when(session.expires_at)),
        ("tags", escape(", ".join(session.tags)) or "-"),
        ("metadata", escape(_json(document["metadata"])) if session.metadata else "-"),
    ):
        facts.add_row(label, value)
    out.print(facts)
    table = Table(box=None, header_style="bold", title_justify="left")
    table.title = f"{len(session.interactions)} interaction(s)"
    for column in ("#", "FROM", "REQUEST", "RESPONSES"):
        table.add_column(column, justify="right" if column == "#" else "left")
    for number, item in enumerate(document["interactions"], start=1):
        request = item["request"]
        responses = item.get("responses", [])
        replies = "; ".join(
            f"{escape(str(r.get('sender') or '?'))}: {escape(_short(r['event'], 40))}"
            for r in responses[:2]
        )
        if len(responses) > 2:
            replies += f" (+{len(responses) - 2} more)"
        table.add_row(
            str(number),
            escape(str(request.get("sender") or "-")),
            escape(_short(request["event"])),
            replies or "-",
        )
    out.print(table)
    return 0


@cli.command("stats")
@_command
async def stats_command(*, spec: StoreSpec, output: Output) -> int:
    """Counts, sizes, ages and the backend's figures."""
    async with open_store(spec) as store:
        stats = await store.get_stats()
    if output.json:
        output.emit(stats)
        return 0
    table = Table(title=str(spec), title_justify="left", box=None, show_header=False)
    table.add_column(style="dim")
    table.add_column()
    for label, value in (
        ("sessions", stats.total_sessions),
        ("active", stats.active_sessions),
        ("expired", stats.expired_sessions),
        ("stored bytes", f"{stats.storage_size_bytes:,}"),
        ("oldest", _when(stats.oldest_session)),
        ("newest", _when(stats.newest_session)),
    ):
        table.add_row(label, str(value))
    for processor, count in sorted(stats.sessions_by_processor.items()):
        table.add_row(f"  {escape(processor)}", str(count))
    for key, figure in stats.backend.items():
        shown = _json(figure) if isinstance(figure, list | dict) else str(figure)
        table.add_row(key.replace("_", " "), escape(shown))
    output.out.print(table)
    return 0


@cli.command("health")
@_command
async def health_command(*, spec: StoreSpec, output: Output) -> int:
    """Run the store's health probes; exit 1 when it is unhealthy."""
    async with open_store(spec) as store:
        status = await store.health_check()
    if output.json:
        output.emit(status)
    elif status.healthy:
        output.out.print(f"[green]healthy[/]: {spec}")
    else:
        output.out.print(f"[bold red]unhealthy[/]: {spec}")
        for issue in status.issues:
            output.out.print(f"  - {escape(issue)}")
    return 0 if status.healthy else int(Exit.PROBLEMS)


# == checking and cleaning =======================================================================


@cli.command("check")
@click.option("--repair", is_flag=True, help="Quarantine what is damaged and say what was done.")
@_command
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
@_command
async def cleanup_command(dry_run: bool, *, spec: StoreSpec, output: Output) -> int:
    """Remove expired sessions."""
    async with open_store(spec) as store:
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


# == backups =====================================================================================


@cli.group("backup")
def backup_group() -> None:
    """Create, list, verify, restore and delete backups."""


@backup_group.command("create")
@click.option("--include-expired", is_flag=True, help="Also back up expired sessions.")
@click.option("--compress", is_flag=True, help="Compress the backup's body (zlib).")
@_command
async def backup_create(
    include_expired: bool, compress: bool, *, spec: StoreSpec, output: Output
) -> int:
    """Take a consistent backup of the store (writers keep going)."""
    options = BackupOptions(include_expired=include_expired, compress=compress)
    async with open_store(spec) as store:
        backup = await store.create_backup(options)
        info = await store.verify_backup(backup.backup_id)
        where = store._backups.vault.location
    if output.json:
        output.emit({**_backup_json(info), "location": where})
    else:
        output.out.print(
            f"created backup {info.backup_id}: {info.session_count} session(s), "
            f"{info.size_bytes:,} bytes, in {escape(where)}"
        )
    return 0


@backup_group.command("list")
@_command
async def backup_list(*, spec: StoreSpec, output: Output) -> int:
    """List backups, oldest first."""
    async with open_store(spec) as store:
        infos = await store.list_backups()
        where = store._backups.vault.location
    if output.json:
        output.emit({"location": where, "backups": [_backup_json(i) for i in infos]})
        return 0
    table = Table(title=f"backups in {escape(where)}", title_justify="left", box=None)
    for column in ("BACKUP", "CREATED", "SESSIONS", "BYTES", "COMPRESSED"):
        table.add_column(column, justify="right" if column in ("SESSIONS", "BYTES") else "left")
    for info in infos:
        table.add_row(
            info.backup_id,
            _when(info.created_at),
            str(info.session_count),
            f"{info.size_bytes:,}",
            "yes" if info.compressed else "no",
        )
    output.out.print(table)
    output.out.print(f"{len(infos)} backup(s)")
    return 0


@backup_group.command("verify")
@click.argument("backup")
@_command
async def backup_verify(backup: str, *, spec: StoreSpec, output: Output) -> int:
    """Check a backup (an id, or a backup file) completely; exit 4 if it is damaged."""
    source = _backup_source(backup)
    async with open_store(spec) as store:
        if isinstance(source, Path):
            plan = await store.restore_from_backup(source, RestoreOptions(dry_run=True))
            count = plan.restored_count + plan.skipped_count + plan.overwritten_count
            result: dict[str, Any] = {"backup": str(source), "ok": True, "session_count": count}
        else:
            await _known_backup(store, source)
            info = await store.verify_backup(source)
            result = {**_backup_json(info), "ok": True}
    if output.json:
        output.emit(result)
    else:
        output.out.print(
            f"[green]ok[/]: backup {escape(backup)} is intact "
            f"({result['session_count']} session(s))"
        )
    return 0


@backup_group.command("restore")
@click.argument("backup")
@_merge_options
@_command
async def backup_restore(
    backup: str, strategy: str, dry_run: bool, *, spec: StoreSpec, output: Output
) -> int:
    """Restore a backup (an id, or a backup file from anywhere); it is validated first."""
    source = _backup_source(backup)
    options = _restore_options(strategy, dry_run)
    async with open_store(spec) as store:
        if isinstance(source, str):
            await _known_backup(store, source)
        with output.progress("restoring") as progress:
            result = await store.restore_from_backup(source, options, progress=progress)
    return _print_restore(output, result, f"backup {backup}")


@backup_group.command("delete")
@click.argument("backup_id")
@_command
async def backup_delete(backup_id: str, *, spec: StoreSpec, output: Output) -> int:
    """Delete a backup."""
    async with open_store(spec) as store:
        try:
            deleted = await store.delete_backup(backup_id)
        except BackupError as error:
            raise InvalidInputError(str(error)) from error
        if not deleted:
            raise NotFoundError(f"no backup {backup_id} in {store._backups.vault.location}")
    if output.json:
        output.emit({"deleted": backup_id})
    else:
        output.out.print(f"deleted backup {backup_id}")
    return 0


# == moving sessions =============================================================================


@cli.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--include-expired", is_flag=True, help="Also export expired sessions.")
@click.option("--processor", multiple=True, help="Only this processor's sessions (repeatable).")
@_command
async def export_command(
    file: Path,
    include_expired: bool,
    processor: tuple[str, ...],
    *,
    spec: StoreSpec,
    output: Output,
) -> int:
    """Write sessions to FILE as JSON Lines (the file appears only when complete)."""
    flt = SessionFilter(processor_id=list(processor) or None, include_expired=include_expired)
    async with open_store(spec) as store:
        with output.progress("exporting") as progress:
            count = await store.export_sessions(file, flt, progress=progress)
    if output.json:
        output.emit({"exported": count, "file": str(file)})
    else:
        output.out.print(f"exported {count} session(s) to {escape(str(file))}")
    return 0


@cli.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_merge_options
@_command
async def import_command(
    file: Path, strategy: str, dry_run: bool, *, spec: StoreSpec, output: Output
) -> int:
    """Read sessions exported by any store (validated before anything is written).

    Creates the store if it does not exist yet.
    """
    _require_file(file)
    options = _restore_options(strategy, dry_run)
    async with open_store(spec, create=True, dry_run=dry_run) as store:
        with output.progress("importing") as progress:
            result = await store.import_sessions(file, options, progress=progress)
    return _print_restore(output, result, f"import of {file}")


@cli.command("migrate")
@click.option("--to", "target_text", required=True, metavar="TYPE:PATH", help="The new store.")
@_command
async def migrate_command(target_text: str, *, spec: StoreSpec, output: Output) -> int:
    """Copy every session (expired too) into another, empty store; then compare counts.

    The source is only read. Exit 1 if the counts differ.
    """
    target = StoreSpec.parse(target_text)
    if target.kind == spec.kind and target.path.resolve() == spec.path.resolve():
        raise click.UsageError(f"--to {target} is the store being migrated")
    everything = SessionFilter(include_expired=True)
    async with open_store(spec) as source, open_store(target, create=True) as destination:
        with output.progress("exporting") as exported, output.progress("importing") as imported:
            copied = await copy_sessions(
                source,
                destination,
                str(target),
                export_progress=exported,
                import_progress=imported,
            )
        counts = (
            await source.count_sessions(everything),
            await destination.count_sessions(everything),
        )
    match = counts[0] == counts[1]
    if output.json:
        output.emit(
            {
                "from": str(spec),
                "to": str(target),
                "copied": copied,
                "source_count": counts[0],
                "target_count": counts[1],
                "match": match,
            }
        )
    else:
        table = Table(box=None, header_style="bold")
        for column in ("STORE", "SESSIONS"):
            table.add_column(column)
        table.add_row(f"{spec} (source)", str(counts[0]))
        table.add_row(f"{target} (target)", str(counts[1]))
        output.out.print(table)
        verdict = "[green]counts match[/]" if match else "[bold red]counts differ[/]"
        output.out.print(f"copied {copied} session(s); {verdict}")
    return 0 if match else int(Exit.PROBLEMS)


# == watching ====================================================================================


@cli.command("watch")
@click.option(
    "--timeout",
    "stop_after",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Stop after SECONDS.",
)
@click.option("--count", type=click.IntRange(min=1), help="Stop after N events.")
@_command
async def watch_command(
    stop_after: float | None, count: int | None, *, spec: StoreSpec, output: Output
) -> int:
    """Print events as they happen, including other processes' writes (Ctrl-C stops)."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def event(kind: str, session: PersistedSession | None, session_id: str) -> None:
        item: dict[str, Any] = {"at": datetime.now(UTC), "event": kind, "session_id": session_id}
        if session is not None:
            item.update(
                processor_id=session.processor_id,
                version=session.version,
                interaction_count=len(session.interactions),
            )
        queue.put_nowait(item)

    async with open_store(spec, watch=True) as store:
        store.on_session_created(lambda s: event("created", s, s.session_id))
        store.on_session_updated(lambda new, old: event("updated", new, new.session_id))
        store.on_session_deleted(lambda sid: event("deleted", None, sid))
        store.on_session_expired(lambda s: event("expired", s, s.session_id))
        await store.count_sessions()  # following from here on
        output.err.print(f"watching {spec} (Ctrl-C to stop)")
        seen = 0
        loop = asyncio.get_running_loop()
        deadline = None if stop_after is None else loop.time() + stop_after
        while count is None or seen < count:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                break
            try:
                async with asyncio.timeout(left):
                    item = await queue.get()
            except TimeoutError:
                break
            seen += 1
            if output.json:
                output.line(item)
                continue
            details = ""
            if "processor_id" in item:
                details = (
                    f" processor={escape(item['processor_id'])} version={item['version']} "
                    f"interactions={item['interaction_count']}"
                )
            stamp = item["at"].astimezone().strftime("%H:%M:%S.%f")[:-3]
            output.out.print(f"{stamp} {item['event']:<8} {item['session_id']}{details}")
    return 0
