"""The backup part of the store contract: the public methods, delegating to :class:`Backups`.

Kept apart from :mod:`.base` only for size. The work is written once in
:mod:`session_persistence.backups`; see its module docstring for how a snapshot stays
consistent while writes continue and how a restore is validated.
"""

from __future__ import annotations

import os

from ..backups import Backups, PathOrStream
from ..models import (
    BackupInfo,
    BackupOptions,
    ProgressCallback,
    RestoreOptions,
    RestoreResult,
    SessionBackup,
    SessionFilter,
)

__all__ = ["BackupMethods"]


class BackupMethods:
    """Backups, restore, export and import: mixed into :class:`SessionStore`."""

    _backups: Backups

    def _writable(self) -> None:  # (SessionStore's)
        raise NotImplementedError

    async def create_backup(self, options: BackupOptions | None = None) -> SessionBackup:
        """Take a consistent snapshot of the selected sessions and store it as one backup.

        Writers keep going during the backup, except for a short pause at its end while what
        changed meanwhile is re-read; each transaction is wholly in or wholly out. The file is
        written atomically (temp file, fsync, rename) under the store's backup directory (the
        in-memory store keeps it in memory unless ``backup_dir`` is set). Older backups beyond
        ``max_backups`` are then deleted, and ``backup_created`` fires.

        Raises:
            InvalidInputError: ``options`` is malformed.
            StoreIOError: The backup could not be written (a full disk, an I/O error; the
                cause is kept); no backup file is left and no older backup was deleted.
        """
        self._writable()
        return await self._backups.create(options)

    async def list_backups(self) -> list[BackupInfo]:
        """Return every backup's header, oldest first (reads no sessions)."""
        return await self._backups.list_all()

    async def get_backup(self, backup_id: str) -> SessionBackup:
        """Read, verify and return a whole backup.

        Raises:
            BackupError: No such backup, or it is damaged (checksum, format, a record).
        """
        return await self._backups.get(backup_id)

    async def delete_backup(self, backup_id: str) -> bool:
        """Delete a backup; return whether it existed.

        Raises:
            BackupError: ``backup_id`` is not a valid backup id.
        """
        self._writable()
        return await self._backups.delete(backup_id)

    async def verify_backup(self, backup_id: str) -> BackupInfo:
        """Check a backup's checksum and parse every record in it; return its header.

        Raises:
            BackupError: It is missing or damaged; the message says what is wrong.
        """
        return await self._backups.verify(backup_id)

    async def restore_from_backup(
        self,
        backup_or_id: SessionBackup | str | os.PathLike[str],
        options: RestoreOptions | None = None,
        *,
        progress: ProgressCallback | None = None,
    ) -> RestoreResult:
        """Put a backup's sessions back, with their original ids, versions and timestamps.

        The whole backup is validated before anything is written. It is then applied as one
        atomic batch, or, when it holds more than ``restore_batch_size`` sessions, in atomic
        batches of that size (a failure stops at a batch boundary and is reported in
        ``errors``). Events fire for what was written. Not part of an enclosing transaction.

        Args:
            backup_or_id: A :class:`SessionBackup`, a backup id (``str``), or a backup file's
                path as a :class:`~pathlib.Path` (e.g. a copy from another host).
            options: The merge strategy (an existing session, expired or not, counts as
                existing) and ``dry_run``.
            progress: Called as ``progress(done, total)`` after each batch is applied.

        Raises:
            BackupError: The backup is missing, damaged or hostile, or restoring it would pass
                ``max_sessions``; nothing was written.
        """
        return await self._backups.restore(backup_or_id, options, progress)

    async def export_sessions(
        self,
        path_or_stream: PathOrStream,
        filter: SessionFilter | None = None,
        *,
        progress: ProgressCallback | None = None,
        sealed: bool = False,
    ) -> int:
        """Write the selected sessions as JSON Lines, streaming; return how many.

        A path is written to a temp file and renamed into place when complete. Memory use does
        not grow with the number of sessions. Expired sessions are included only if
        ``filter.include_expired``. By default an export is readable JSON, even from a store
        that seals its records: pass ``sealed=True`` to seal each session line.

        Args:
            path_or_stream: A file path, or a binary stream to write to.
            filter: Which sessions (default: every unexpired one).
            progress: Called as ``progress(done, total)`` as sessions are written; ``total``
                is counted first, so it can be off by sessions written meanwhile.
            sealed: Seal each session line with the keyring's active key (context
                ``b"export"``; compressed first if the store compresses). The header names
                the key; :meth:`import_sessions` on a store holding that key reads it.

        Raises:
            ConfigurationError: ``sealed=True`` on a store without a keyring.
            StoreIOError: Writing failed (a full disk, an I/O error; the cause is kept). A
                path is then left as it was, with no temp file beside it, unless only the
                final sync of its directory failed: the message then says it is complete.
        """
        return await self._backups.export(path_or_stream, filter, progress, sealed)

    async def import_sessions(
        self,
        path_or_stream: PathOrStream,
        options: RestoreOptions | None = None,
        *,
        progress: ProgressCallback | None = None,
    ) -> RestoreResult:
        """Read sessions exported by any store and apply them like a restore, streaming.

        A path (or seekable stream) is validated completely, including ``max_sessions``,
        before anything is written; it is then applied in atomic batches of
        ``restore_batch_size``. A stream that cannot seek is validated batch by batch, so a
        damaged line stops the import after the batches before it.

        Args:
            path_or_stream: A file path, or a binary stream to read from.
            options: The merge strategy and ``dry_run``, as for a restore.
            progress: Called as ``progress(done, total)`` after each batch; ``total`` is
                ``None`` for a stream that cannot seek (it is not known in advance).

        Raises:
            BackupError: The file is not a valid export, a sealed line fails authentication,
                or it would pass ``max_sessions``.
            SealingKeyError: A line is sealed with a key the store's keyring lacks.
        """
        return await self._backups.import_(path_or_stream, options, progress)
