"""Moving sessions: ``export``, ``import`` and ``migrate``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from ..manager import copy_sessions
from ..models import SessionFilter
from ._common import merge_options, print_restore, require_file, restore_options
from ._group import cli, command
from ._support import Exit, Output, StoreSpec, open_store

__all__ = ["export_command", "import_command", "migrate_command"]


@cli.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--include-expired", is_flag=True, help="Also export expired sessions.")
@click.option("--processor", multiple=True, help="Only this processor's sessions (repeatable).")
@click.option(
    "--sealed", is_flag=True, help="Seal each session line with the active key (needs the keys)."
)
@command
async def export_command(
    file: Path,
    include_expired: bool,
    processor: tuple[str, ...],
    sealed: bool,
    *,
    spec: StoreSpec,
    output: Output,
) -> int:
    """Write sessions to FILE as JSON Lines (the file appears only when complete).

    The lines are readable JSON unless --sealed is given, even from a sealed store.
    """
    flt = SessionFilter(processor_id=list(processor) or None, include_expired=include_expired)
    async with open_store(spec, read_only=True) as store:
        with output.progress("exporting") as progress:
            count = await store.export_sessions(file, flt, progress=progress, sealed=sealed)
    if output.json:
        output.emit({"exported": count, "file": str(file)})
    else:
        output.out.print(f"exported {count} session(s) to {escape(str(file))}")
    return 0


@cli.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@merge_options
@command
async def import_command(
    file: Path, strategy: str, dry_run: bool, *, spec: StoreSpec, output: Output
) -> int:
    """Read sessions exported by any store (validated before anything is written).

    Creates the store if it does not exist yet, once the file has passed validation.
    """
    require_file(file)
    options = restore_options(strategy, dry_run)
    if not dry_run and not spec.exists():
        # Validate into an empty stand-in first (as --dry-run does): a file that is refused
        # must not leave an empty store, or its directories, behind.
        async with open_store(spec, dry_run=True) as empty:
            await empty.import_sessions(file, restore_options(strategy, True))
    async with open_store(spec, create=True, dry_run=dry_run) as store:
        with output.progress("importing") as progress:
            result = await store.import_sessions(file, options, progress=progress)
    return print_restore(output, result, f"import of {file}")


@cli.command("migrate")
@click.option("--to", "target_text", required=True, metavar="TYPE:PATH", help="The new store.")
@command
async def migrate_command(target_text: str, *, spec: StoreSpec, output: Output) -> int:
    """Copy every session (expired too) into another, empty store; then compare counts.

    The source is only read; the target is opened with the source's keys. Exit 1 if the
    counts differ.
    """
    # The target gets the source's keys: a sealed store's sessions stay sealed when moved.
    target = dataclasses.replace(StoreSpec.parse(target_text), keyring=spec.keyring)
    if target.same_as(spec):
        raise click.UsageError(f"--to {target} is the store being migrated")
    everything = SessionFilter(include_expired=True)
    async with (
        open_store(spec, read_only=True) as source,
        open_store(target, create=True) as destination,
    ):
        with output.progress("exporting") as exported, output.progress("importing") as imported:
            copied = await copy_sessions(
                source, destination, str(target), export_progress=exported, import_progress=imported
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
        if not match:
            output.out.print(
                "a session the source cannot read is not copied (nor moved: the source is only "
                "read); run 'session-persistence check' on the source to see what it is"
            )
    return 0 if match else int(Exit.PROBLEMS)
