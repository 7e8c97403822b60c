"""The monitoring part of the store contract: stats, health, ``check`` and ``optimize``.

Kept apart from :mod:`.base` only for size; mixed into :class:`SessionStore`. Everything
here reads through the narrow core (``_scan``, ``_load``) and the backend's hooks
(``_probe``, ``_backend_stats``, ``_optimize_backend``, and the ``check`` hooks below, which a
backend overrides to verify and repair its own storage).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from ..config import seconds
from ..errors import BackupError, SealingKeyError, SerializationError, StoreCorruptionError
from ..models import (
    CheckProblem,
    CheckReport,
    HealthStatus,
    OptimizeResult,
    ProgressCallback,
    StoreStats,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .base import SessionStore

__all__ = ["MonitoringMethods"]

logger = logging.getLogger("session_persistence.stores.base")

_CHECK_CHUNK = 256


class MonitoringMethods:
    """Stats, health, check and optimize: mixed into :class:`SessionStore`."""

    async def get_stats(self) -> StoreStats:
        """Return counts, sizes and backend figures, computed from the index."""
        store = cast("SessionStore", self)
        store._ensure_open()
        headers = await store._scan()
        now = store._now()
        expired = sum(1 for h in headers if store._expired(h, now))
        by_processor: dict[str, int] = {}
        for header in headers:
            by_processor[header.processor_id] = by_processor.get(header.processor_id, 0) + 1
        created = [h.created_at for h in headers]
        backend = {
            "store_type": store.store_type,
            "conflicts": store._conflicts,
            "recent_errors": len(store._recent_errors(now)),
            **await store._backups.stats(),
            **await store._backend_stats(),
        }
        return StoreStats(
            total_sessions=len(headers),
            active_sessions=len(headers) - expired,
            expired_sessions=expired,
            sessions_by_processor=by_processor,
            storage_size_bytes=sum(h.size_bytes for h in headers),
            oldest_session=min(created, default=None),
            newest_session=max(created, default=None),
            backend=backend,
        )

    def _recent_errors(self, now: datetime) -> list[tuple[datetime, str]]:
        store = cast("SessionStore", self)
        since = now - timedelta(seconds=seconds(store._config.health_error_window))
        return [error for error in store._errors if error[0] > since]

    async def health_check(self) -> HealthStatus:
        """Run real probes: the store is open, the backend's own checks, recent error rate.

        Errors older than ``health_error_window`` no longer count, so one old failure does
        not make the store unhealthy forever.
        """
        store = cast("SessionStore", self)
        now = store._now()
        issues: list[str] = []
        details: dict[str, Any] = {"store_type": store.store_type}
        if not store._is_open:
            issues.append("the store is not initialized")
        else:
            issues.extend(store._backups.problems())
            try:
                issues.extend(await store._probe())
            except Exception as exc:
                store._record_error(exc)
                issues.append(f"health probe failed: {type(exc).__name__}: {exc}")
        recent = store._recent_errors(now)
        details["recent_errors"] = len(recent)
        details["error_window_seconds"] = seconds(store._config.health_error_window)
        if len(recent) >= store._config.health_error_threshold:
            issues.append(
                f"{len(recent)} storage error(s) in the last "
                f"{details['error_window_seconds']:g}s; latest: {recent[-1][1]}"
            )
        return HealthStatus(healthy=not issues, issues=issues, last_check=now, details=details)

    async def check(
        self, *, repair: bool = False, progress: ProgressCallback | None = None
    ) -> CheckReport:
        """Verify every stored session, the backend's own files, and every backup.

        Each session is read back from storage and validated (checksums, format, ids), without
        the side effects of a normal read: nothing is moved or counted as an access. The
        backend then checks its own structures (the filesystem store: stray files, the index
        snapshot, the journal and ``quarantine/``; SQLite: ``PRAGMA quick_check``), and every
        backup's checksum and records are verified. Other writers keep going meanwhile.

        With ``repair``, what can be repaired is: a damaged session is moved aside (to
        ``quarantine/`` on the filesystem store, to ``<database>-quarantine/`` on SQLite, as
        found) and removed from the store, in every process; a damaged backup is moved to
        ``quarantine/`` in the backup directory. Each problem's ``action`` says what was done.
        Nothing is ever repaired by rewriting data, so a repair loses only what was already
        unreadable, and keeps it for an operator to inspect.

        Args:
            repair: Set damaged things aside, as above.
            progress: Called as ``progress(done, total)`` while sessions and backups are
                checked (on the event loop).

        Raises:
            StoreClosedError: The store is not open.
        """
        store = cast("SessionStore", self)
        store._ensure_open()
        ids = await store._check_ids()
        backup_ids = await store._backups.ids()
        total = len(ids) + len(backup_ids)
        problems: list[CheckProblem] = []
        done = 0
        for start in range(0, len(ids), _CHECK_CHUNK):
            chunk = ids[start : start + _CHECK_CHUNK]
            for session_id, problem in await store._check_sessions(chunk):
                problems.append(
                    CheckProblem(
                        kind="session", target=session_id, problem=problem, repairable=True
                    )
                )
            done += len(chunk)
            if progress is not None:
                progress(done, total)
        problems.extend(await store._check_backend())
        for backup_id in backup_ids:
            try:
                await store._backups.verify(backup_id)
            except BackupError as exc:
                problems.append(
                    CheckProblem(kind="backup", target=backup_id, problem=str(exc), repairable=True)
                )
            except SealingKeyError as exc:  # intact, only not readable here: never set aside
                problems.append(
                    CheckProblem(
                        kind="backup",
                        target=backup_id,
                        problem=f"cannot be verified with this store's keys: {exc}",
                        repairable=False,
                    )
                )
            done += 1
            if progress is not None:
                progress(done, total)
        if repair:
            problems = [await store._repair_one(problem) for problem in problems]
        return CheckReport(
            sessions_checked=len(ids),
            backups_checked=len(backup_ids),
            problems=problems,
            repair=repair,
        )

    async def _repair_one(self, problem: CheckProblem) -> CheckProblem:
        store = cast("SessionStore", self)
        action: str | None
        if problem.kind == "backup":
            if not problem.repairable:
                return problem  # (a backup this store cannot open is not damaged)
            try:
                action = await store._backups.quarantine(problem.target, problem.problem)
            except (BackupError, OSError) as exc:
                action = None
                logger.error("cannot set backup %s aside: %s", problem.target, exc)
        else:
            action = await store._repair_backend(problem)
        return dataclasses.replace(problem, action=action)

    async def _check_ids(self) -> list[str]:
        """Hook: the ids of every stored session, read without validating the sessions."""
        store = cast("SessionStore", self)
        return [header.session_id for header in await store._scan()]

    async def _check_sessions(self, session_ids: Sequence[str]) -> list[tuple[str, str]]:
        """Hook: read back and validate these sessions; return ``(id, problem)`` pairs.

        The default loads each one; a backend overrides it to read without side effects.
        """
        store = cast("SessionStore", self)
        found = []
        for session_id in session_ids:
            try:
                await store._load(session_id)
            except (StoreCorruptionError, SerializationError) as exc:
                found.append((session_id, str(exc)))
        return found

    async def _check_backend(self) -> list[CheckProblem]:
        """Hook: check the backend's own structures (files, journal, database)."""
        return []

    async def _repair_backend(self, problem: CheckProblem) -> str | None:
        """Hook: repair one problem (not a backup's); return what was done, or ``None``."""
        return None

    async def optimize(self) -> OptimizeResult:
        """Remove expired sessions and run the backend's maintenance."""
        store = cast("SessionStore", self)
        store._ensure_open()
        started = time.perf_counter()
        removed = await store.cleanup_expired_sessions()
        operations = [f"removed {removed} expired session(s)"]
        with store._storage_errors("optimizing the store failed: {}; nothing was lost"):
            pruned = await store._backups.rotate()
            if pruned:
                operations.append(f"deleted {len(pruned)} backup(s) beyond max_backups")
            operations.extend(await store._optimize_backend())
        return OptimizeResult(
            operations_performed=operations,
            performance_impact={
                "expired_removed": removed,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            },
        )
