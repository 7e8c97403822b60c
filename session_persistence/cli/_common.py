"""Helpers the commands share: times, previews, JSON shapes, merge options, backups."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson
from rich.markup import escape

from ..models import BackupInfo, PersistedSession, RestoreOptions, RestoreResult, SessionHeader
from ..stores.base import SessionStore
from ._support import Exit, NotFoundError, Output

__all__ = [
    "STRATEGIES",
    "backup_json",
    "backup_source",
    "header_json",
    "known_backup",
    "merge_options",
    "print_restore",
    "require_file",
    "restore_json",
    "restore_options",
    "short",
    "to_json",
    "ulid_upper",
    "when",
]


STRATEGIES = ("skip_existing", "overwrite", "update_newer")


def when(value: datetime | None, *, short: bool = False) -> str:
    """A UTC time for tables (``short``: to the minute)."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M" if short else "%Y-%m-%d %H:%M:%S")


def header_json(store: SessionStore, header: SessionHeader | PersistedSession) -> dict[str, Any]:
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


def short(value: Any, width: int = 60) -> str:
    """A one-line preview: an event's text field if it has one, else its compact JSON."""
    if isinstance(value, dict):
        for key in ("content", "text", "message", "prompt", "query"):
            if isinstance(value.get(key), str):
                value = value[key]
                break
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= width else text[: width - 1] + "…"


def to_json(value: Any) -> str:
    return orjson.dumps(value).decode()


def backup_json(info: BackupInfo) -> dict[str, Any]:
    return {
        "backup_id": info.backup_id,
        "created_at": info.created_at,
        "session_count": info.session_count,
        "size_bytes": info.size_bytes,
        "store_type": info.store_type,
        "compressed": info.compressed,
        "sealed_with": info.sealed_with,
        "format": info.format,
    }


def restore_json(result: RestoreResult) -> dict[str, Any]:
    return {
        "restored": result.restored_count,
        "overwritten": result.overwritten_count,
        "skipped": result.skipped_count,
        "errors": result.errors,
        "dry_run": result.dry_run,
    }


def print_restore(output: Output, result: RestoreResult, what: str) -> int:
    if output.json:
        output.emit(restore_json(result))
    else:
        verb = "would restore" if result.dry_run else "restored"
        output.out.print(
            f"{what}: {verb} {result.restored_count}, overwrote {result.overwritten_count}, "
            f"skipped {result.skipped_count} existing"
        )
        for error in result.errors:
            output.err.print(f"[bold red]error:[/] {escape(error)}")
    return int(Exit.REFUSED) if result.errors else 0


def merge_options(command: Callable[..., None]) -> Callable[..., None]:
    """``--strategy`` and ``--dry-run``, shared by ``backup restore`` and ``import``."""
    command = click.option("--dry-run", is_flag=True, help="Validate and report; write nothing.")(
        command
    )
    return click.option(
        "--strategy",
        type=click.Choice(STRATEGIES),
        default="skip_existing",
        show_default=True,
        help="What to do with sessions that exist already.",
    )(command)


def restore_options(strategy: str, dry_run: bool) -> RestoreOptions:
    return RestoreOptions(merge_strategy=strategy, dry_run=dry_run)  # type: ignore[arg-type]


def require_file(path: Path) -> None:
    if not path.is_file():
        raise NotFoundError(f"no file {path}")


# A ULID in any case: 26 Crockford base32 digits, the first at most 7.
_ANY_CASE_ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}", re.IGNORECASE)


def ulid_upper(text: str) -> str:
    """``text`` in upper case if it is a ULID in any case (as ids are stored), else as is."""
    return text.upper() if _ANY_CASE_ULID.fullmatch(text) else text


def backup_source(argument: str) -> str | Path:
    """A backup id (a ULID, in any case), or a file when it names one (``/`` or ``.backup``)."""
    if os.sep in argument or "/" in argument or argument.endswith(".backup"):
        path = Path(argument)
        if not path.is_file():
            raise NotFoundError(f"no backup file {argument}")
        return path
    return ulid_upper(argument)


async def known_backup(store: SessionStore, backup_id: str) -> None:
    if backup_id not in await store._backups.ids():
        where = store._backups.vault.location
        raise NotFoundError(
            f"no backup {backup_id} in {where}; 'session-persistence backup list' shows them"
        )
