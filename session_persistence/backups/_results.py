"""The backup engine's small pieces: restore plans, their totals, progress, header metadata."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from ..errors import InvalidInputError
from ..models import PersistedSession, ProgressCallback, RestoreOptions, RestoreResult
from ..ops import PutOp

__all__ = ["Plan", "add_results", "backup_metadata", "counting", "restore_options"]


@dataclass(slots=True)
class Plan:
    """What one restore batch does: the writes, and which sessions they create or replace."""

    ops: list[PutOp]
    created: list[PersistedSession]
    replaced: list[str]
    skipped: int


def counting(progress: ProgressCallback | None, total: int | None) -> Callable[[int], None] | None:
    """Turn ``progress(done, total)`` into ``advance(count)``, which adds ``count`` to done."""
    if progress is None:
        return None
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        progress(done, total)

    return advance


def restore_options(options: RestoreOptions | None) -> RestoreOptions:
    if options is None:
        return RestoreOptions()
    if not isinstance(options, RestoreOptions):
        raise InvalidInputError("options must be a RestoreOptions")
    return options


def backup_metadata(header: Any, size: int) -> dict[str, Any]:
    fields = header.fields
    return {
        "store_type": fields["store_type"],
        "session_count": header.session_count,
        "size_bytes": size,
        "checksum": f"sha256:{header.digest}",
        "format": fields["format"],
        "compressed": header.compressed,
        "sealed_with": header.sealed_with,
        "include_expired": fields["include_expired"],
        "filter": fields.get("filter"),
        "skipped_damaged": list(fields.get("skipped_damaged", [])),
        "metadata": dict(fields["metadata"]),
    }


def add_results(total: RestoreResult, parts: Iterable[Plan | RestoreResult]) -> RestoreResult:
    restored, skipped, overwritten = (
        total.restored_count,
        total.skipped_count,
        total.overwritten_count,
    )
    errors = list(total.errors)
    for part in parts:
        if isinstance(part, Plan):
            restored += len(part.created)
            skipped += part.skipped
            overwritten += len(part.replaced)
        else:
            restored += part.restored_count
            skipped += part.skipped_count
            overwritten += part.overwritten_count
            errors.extend(part.errors)
    return replace(
        total,
        restored_count=restored,
        skipped_count=skipped,
        overwritten_count=overwritten,
        errors=errors,
    )
