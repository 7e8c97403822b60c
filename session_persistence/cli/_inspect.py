"""Looking at a store: ``ls``, ``show``, ``health`` (``stats`` is in ``_stats``)."""

from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from .._ids import validate_session_id
from ..documents import session_to_document
from ..models import SessionFilter, SessionQueryOptions
from ..serialization import default_codec
from ._common import header_json, short, to_json, ulid_upper, when
from ._group import cli, command
from ._maintain import inspect, problem_line, repair_advice
from ._support import Exit, NotFoundError, Output, StoreSpec, open_store, parse_when
from ._tables import Column, id_table

__all__ = ["health_command", "ls_command", "show_command"]


_SORT_FIELDS = ("created_at", "updated_at", "expires_at", "activity_id", "session_id")


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
@command
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
    # Headers only: a listing reads the index, never the sessions' histories.
    async with open_store(spec, read_only=True) as store:
        if which == "expired":
            found = await store.list_session_headers(flt, order)
            matching = [h for h in found if store.is_expired(h)]
            total, headers = len(matching), matching[:limit]
        else:
            total = await store.count_sessions(flt)
            headers = await store.list_session_headers(
                flt,
                SessionQueryOptions(
                    limit=limit, sort_by=order.sort_by, sort_order=order.sort_order
                ),
            )
        rows = [header_json(store, h) for h in headers]
    if output.json:
        output.emit({"store": str(spec), "total": total, "sessions": rows})
        return 0
    columns = [
        Column("SESSION"),
        Column("PROCESSOR"),
        Column("INTERACTIONS", "right"),
        Column("TAGS"),
        Column("UPDATED"),
        Column("EXPIRES"),
    ]
    cells = []
    for row in rows:
        expires = "never" if row["expires_at"] is None else when(row["expires_at"], short=True)
        cells.append(
            [
                row["session_id"],
                row["processor_id"],
                str(row["interaction_count"]),
                ", ".join(row["tags"]),
                when(row["updated_at"], short=True),
                expires + (" (expired)" if row["expired"] else ""),
            ]
        )
    table = id_table(str(spec), columns, cells, output.out.width)
    output.out.print(table)
    shown = f"{len(rows)} of {total} session(s)"
    output.out.print(shown + (" (raise --limit to see more)" if total > len(rows) else ""))
    return 0


@cli.command("show")
@click.argument("session_id")
@click.option("--raw", is_flag=True, help="Print the session as stored (its JSON document).")
@command
async def show_command(session_id: str, raw: bool, *, spec: StoreSpec, output: Output) -> int:
    """Show one session and its interactions."""
    async with open_store(spec, read_only=True) as store:
        # The store's own read, which validates nothing and counts no access: an operator's
        # look must not extend an idle TTL.
        session = await store._load(validate_session_id(session_id))
        if session is None and ulid_upper(session_id) != session_id:
            session = await store._load(ulid_upper(session_id))  # a ULID typed in lower case
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
    facts.add_column(overflow="fold")  # metadata may hold ids: fold it, never cut it
    for label, value in (
        ("processor", escape(session.processor_id)),
        ("activity", str(session.activity_id)),
        ("request", str(session.request_id)),
        ("version", str(session.version)),
        ("created", when(session.created_at)),
        ("updated", when(session.updated_at)),
        ("last accessed", when(session.last_accessed_at)),
        ("expires", when(session.expires_at)),
        ("tags", escape(", ".join(session.tags)) or "-"),
        ("metadata", escape(to_json(document["metadata"])) if session.metadata else "-"),
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
            f"{escape(str(r.get('sender') or '?'))}: {escape(short(r['event'], 40))}"
            for r in responses[:2]
        )
        if len(responses) > 2:
            replies += f" (+{len(responses) - 2} more)"
        table.add_row(
            str(number),
            escape(str(request.get("sender") or "-")),
            escape(short(request["event"])),
            replies or "-",
        )
    out.print(table)
    return 0


@cli.command("health")
@command
async def health_command(*, spec: StoreSpec, output: Output) -> int:
    """Run the store's health probes and its check; exit 1 when it is unhealthy."""
    async with open_store(spec, read_only=True) as store:
        status = await store.health_check()
        # The probes see only what this process has read; the check reads everything, so
        # health and check agree on a damaged session no one has read yet.
        report = await inspect(store, output)
    issues = list(status.issues)
    issues.extend(
        problem_line(problem)
        for problem in report.problems
        if not any(problem.problem in issue for issue in status.issues)  # said already
    )
    healthy = status.healthy and report.ok
    advice = repair_advice(report.problems)
    if output.json:
        output.emit(
            {
                "healthy": healthy,
                "issues": issues,
                "problems": report.problems,
                "sessions_checked": report.sessions_checked,
                "backups_checked": report.backups_checked,
                "advice": advice,
                "last_check": status.last_check,
                "details": status.details,
            }
        )
    elif healthy:
        output.out.print(f"[green]healthy[/]: {spec}")
    else:
        output.out.print(f"[bold red]unhealthy[/]: {spec}")
        for issue in issues:
            output.out.print(f"  - {escape(issue)}")
        if advice is not None:
            output.out.print(advice)
    return 0 if healthy else int(Exit.PROBLEMS)
