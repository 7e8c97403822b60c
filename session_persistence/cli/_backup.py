"""``backup create|list|verify|restore|delete``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from ..errors import BackupError, InvalidInputError
from ..models import BackupOptions, RestoreOptions
from ._common import (
    backup_json,
    backup_source,
    known_backup,
    merge_options,
    print_restore,
    restore_options,
    ulid_upper,
    when,
)
from ._group import cli, command
from ._support import NotFoundError, Output, StoreSpec, open_store
from ._tables import Column, id_table

__all__ = [
    "backup_create",
    "backup_delete",
    "backup_group",
    "backup_list",
    "backup_restore",
    "backup_verify",
]


@cli.group("backup")
def backup_group() -> None:
    """Create, list, verify, restore and delete backups."""


@backup_group.command("create")
@click.option("--include-expired", is_flag=True, help="Also back up expired sessions.")
@click.option("--compress", is_flag=True, help="Compress the backup's body (zlib).")
@command
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
        output.emit({**backup_json(info), "location": where})
    else:
        output.out.print(
            f"created backup {info.backup_id}: {info.session_count} session(s), "
            f"{info.size_bytes:,} bytes, in {escape(where)}"
        )
    return 0


@backup_group.command("list")
@command
async def backup_list(*, spec: StoreSpec, output: Output) -> int:
    """List backups, oldest first."""
    async with open_store(spec, read_only=True) as store:
        infos = await store.list_backups()
        where = store._backups.vault.location
    if output.json:
        output.emit({"location": where, "backups": [backup_json(i) for i in infos]})
        return 0
    columns = [
        Column("BACKUP"),
        Column("CREATED"),
        Column("SESSIONS", "right"),
        Column("BYTES", "right"),
        Column("COMPRESSED"),
        Column("SEALED"),
    ]
    cells = [
        [
            info.backup_id,
            when(info.created_at),
            str(info.session_count),
            f"{info.size_bytes:,}",
            "yes" if info.compressed else "no",
            "no" if info.sealed_with is None else f"key {info.sealed_with}",
        ]
        for info in infos
    ]
    table = id_table(f"backups in {where}", columns, cells, output.out.width)
    output.out.print(table)
    output.out.print(f"{len(infos)} backup(s)")
    return 0


@backup_group.command("verify")
@click.argument("backup")
@command
async def backup_verify(backup: str, *, spec: StoreSpec, output: Output) -> int:
    """Check a backup (an id, or a backup file) completely; exit 4 if it is damaged."""
    source = backup_source(backup)
    async with open_store(spec, read_only=True) as store:
        if isinstance(source, Path):
            plan = await store.restore_from_backup(source, RestoreOptions(dry_run=True))
            count = plan.restored_count + plan.skipped_count + plan.overwritten_count
            result: dict[str, Any] = {"backup": str(source), "ok": True, "session_count": count}
        else:
            await known_backup(store, source)
            info = await store.verify_backup(source)
            result = {**backup_json(info), "ok": True}
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
@merge_options
@command
async def backup_restore(
    backup: str, strategy: str, dry_run: bool, *, spec: StoreSpec, output: Output
) -> int:
    """Restore a backup (an id, or a backup file from anywhere); it is validated first."""
    source = backup_source(backup)
    options = restore_options(strategy, dry_run)
    async with open_store(spec, read_only=dry_run) as store:
        if isinstance(source, str):
            await known_backup(store, source)
        with output.progress("restoring") as progress:
            result = await store.restore_from_backup(source, options, progress=progress)
    return print_restore(output, result, f"backup {backup}")


@backup_group.command("delete")
@click.argument("backup_id")
@command
async def backup_delete(backup_id: str, *, spec: StoreSpec, output: Output) -> int:
    """Delete a backup."""
    backup_id = ulid_upper(backup_id)
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
