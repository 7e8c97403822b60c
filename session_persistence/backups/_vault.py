"""Where backup files live: a directory on disk, or this process's memory.

Both vaults hold the same bytes (the format of :mod:`._format`), so listing, verifying and
restoring work identically. Backup ids are checked before they touch a path: a ULID, or the
session-id alphabet, never a ``/`` or ``..``.

**Writing a backup to a directory** (:meth:`DirectoryVault.write`):

1. write the whole file to ``.<id>.<random>.tmp`` in the backup directory and ``fsync`` it;
2. rename it to ``<id>.backup``;
3. ``fsync`` the directory.

A crash before 2 leaves only a temp file (removed by the next :meth:`DirectoryVault.sweep`);
after 2 the backup is complete, and after 3 its name survives power loss too. A backup is
never visible half-written.

A step that *fails* (``ENOSPC``, ``EIO``) leaves nothing: the temp file is removed, and if
only step 3 failed, the renamed backup is removed again, so a write that raised never leaves
a backup that looks made (should that removal be lost to a power cut, what comes back is a
complete backup, not a partial one).
"""

from __future__ import annotations

import abc
import contextlib
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

from .._fileio import FileIO
from .._ids import is_valid_session_id
from ..errors import BackupError
from ._format import MAX_HEADER_BYTES

__all__ = ["DirectoryVault", "MemoryVault", "Vault", "check_backup_id"]

_SUFFIX = ".backup"


def check_backup_id(backup_id: object) -> str:
    """Return ``backup_id`` if it can name a backup.

    Raises:
        BackupError: It is not a string of ``[A-Za-z0-9_-]{1,128}`` (ULIDs are).
    """
    if not is_valid_session_id(backup_id):
        raise BackupError(f"invalid backup id {backup_id!r}: expected a backup's ULID")
    assert isinstance(backup_id, str)
    return backup_id


class Vault(abc.ABC):
    """A place that keeps backup files by id. Methods are synchronous (run in a thread)."""

    @abc.abstractmethod
    def write(self, backup_id: str, data: bytes) -> None:
        """Store a complete backup atomically (never visible half-written)."""

    @abc.abstractmethod
    def read(self, backup_id: str) -> bytes:
        """Return a backup's bytes. Raises BackupError if there is no such backup."""

    @abc.abstractmethod
    def head(self, backup_id: str) -> tuple[bytes, int]:
        """Return the start of a backup (at least its two header lines) and its size."""

    @abc.abstractmethod
    def ids(self) -> list[str]:
        """Return the ids of the stored backups, oldest first."""

    @abc.abstractmethod
    def delete(self, backup_id: str) -> bool:
        """Delete a backup; return whether it existed."""

    @abc.abstractmethod
    def quarantine(self, backup_id: str, reason: str) -> str:
        """Set a damaged backup aside (it is no longer listed); return what was done."""

    def sweep(self) -> None:  # noqa: B027 - nothing to do for most vaults
        """Remove leftovers of interrupted writes."""

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where the backups are, for messages and stats."""


class MemoryVault(Vault):
    """Backups kept in this process's memory (the in-memory store's default)."""

    def __init__(self) -> None:
        self._backups: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def write(self, backup_id: str, data: bytes) -> None:
        """Keep the backup."""
        with self._lock:
            self._backups[backup_id] = data

    def read(self, backup_id: str) -> bytes:
        """Return the backup's bytes."""
        with self._lock:
            try:
                return self._backups[backup_id]
            except KeyError:
                raise BackupError(f"no backup {backup_id}", backup_id) from None

    def head(self, backup_id: str) -> tuple[bytes, int]:
        """Return the backup's header bytes and size."""
        data = self.read(backup_id)
        return data[:MAX_HEADER_BYTES], len(data)

    def ids(self) -> list[str]:
        """Return the backups' ids, oldest first."""
        with self._lock:
            return sorted(self._backups)

    def delete(self, backup_id: str) -> bool:
        """Forget the backup."""
        with self._lock:
            return self._backups.pop(backup_id, None) is not None

    def quarantine(self, backup_id: str, reason: str) -> str:
        """Drop the damaged backup: memory has no place to keep it aside."""
        self.delete(backup_id)
        return f"deleted the damaged in-memory backup ({reason})"

    @property
    def location(self) -> str:
        """``"memory"``."""
        return "memory"


class DirectoryVault(Vault):
    """Backups as files in a directory (created ``0700``; files ``0600`` by default)."""

    def __init__(
        self,
        directory: Path,
        *,
        durable: bool = True,
        file_mode: int = 0o600,
        dir_mode: int = 0o700,
        io: FileIO | None = None,
    ) -> None:
        self._dir = directory
        self._durable = durable
        self._file_mode = file_mode
        self._dir_mode = dir_mode
        self._io = io or FileIO()  # a store's own seam anchors its backups/ (no link followed)

    def _path(self, backup_id: str) -> Path:
        return self._dir / f"{backup_id}{_SUFFIX}"

    def write(self, backup_id: str, data: bytes) -> None:
        """Write the file: temp → fsync → rename → fsync the directory (see the module doc).

        Raises:
            OSError: A step failed (a full disk); nothing of this backup is left.
        """
        self._dir.mkdir(mode=self._dir_mode, parents=True, exist_ok=True)
        path = self._path(backup_id)
        self._io.replace_file(
            path, data, temp_dir=self._dir, mode=self._file_mode, durable=self._durable
        )
        if not self._durable:
            return
        try:
            self._io.fsync_dir(self._dir)
        except OSError:
            # The caller is told the backup failed, so it must not stay listed.
            with contextlib.suppress(OSError):
                self._io.unlink(path)
            raise

    def read(self, backup_id: str) -> bytes:
        """Return the backup file's bytes (never following a symlink)."""
        try:
            return self._io.read_file(self._path(backup_id))
        except FileNotFoundError:
            raise BackupError(f"no backup {backup_id} in {self._dir}", backup_id) from None
        except OSError as exc:
            raise BackupError(f"cannot read backup {backup_id}: {exc}", backup_id) from exc

    def head(self, backup_id: str) -> tuple[bytes, int]:
        """Read only the start of the file (the header), and its size."""
        try:
            fd = self._io.open_read(self._path(backup_id))
        except FileNotFoundError:
            raise BackupError(f"no backup {backup_id} in {self._dir}", backup_id) from None
        except OSError as exc:
            raise BackupError(f"cannot read backup {backup_id}: {exc}", backup_id) from exc
        try:
            size = self._io.size(fd)
            data = b""
            while data.count(b"\n") < 2 and len(data) < min(size, MAX_HEADER_BYTES):
                piece = self._io.read_at(fd, 8192, len(data))
                if not piece:
                    break
                data += piece
            return data, size
        finally:
            self._io.close(fd)

    def ids(self) -> list[str]:
        """Return the ids of the ``*.backup`` files with valid names, oldest first."""
        try:
            names = self._io.listdir(self._dir)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            stem = name[: -len(_SUFFIX)]
            if name.endswith(_SUFFIX) and is_valid_session_id(stem):
                found.append(stem)
        return sorted(found)

    def delete(self, backup_id: str) -> bool:
        """Remove the file; return whether it existed."""
        if not self._io.unlink(self._path(backup_id)):
            return False
        if self._durable:
            self._io.fsync_dir(self._dir)
        return True

    def quarantine(self, backup_id: str, reason: str) -> str:
        """Move the file into ``quarantine/`` of the backup directory, beside a ``.reason``."""
        folder = self._dir / "quarantine"
        folder.mkdir(mode=self._dir_mode, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        target = folder / f"{backup_id}{_SUFFIX}.{stamp}.{os.urandom(3).hex()}"
        self._io.rename(self._path(backup_id), target)
        note = f"{reason}\nfrom: {self._path(backup_id)}\nat: {datetime.now(UTC).isoformat()}\n"
        self._io.replace_file(
            target.with_name(target.name + ".reason"),
            note.encode(),
            temp_dir=folder,
            mode=self._file_mode,
            durable=self._durable,
        )
        if self._durable:
            self._io.fsync_dir(folder)
            self._io.fsync_dir(self._dir)
        return f"moved to {target}"

    def sweep(self) -> None:
        """Remove temp files left by a write that a crash interrupted."""
        try:
            names = self._io.listdir(self._dir)
        except FileNotFoundError:
            return
        for name in names:
            if name.startswith(".") and name.endswith(".tmp"):
                self._io.unlink(self._dir / name)

    @property
    def location(self) -> str:
        """The directory."""
        return str(self._dir)
