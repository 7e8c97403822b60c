"""The one seam through which the library touches the files it writes.

Every open, write, fsync, rename, truncate and unlink the filesystem store performs is a method
of :class:`FileIO` (the in-memory store's snapshot and backup directories use it too). Tests
substitute a subclass to inject faults at any step: an ``OSError`` (``ENOSPC``, ``EIO``), a
crash between two steps, or the loss of everything written but not yet ``fsync``-ed (a
simulated power cut). Nothing in the filesystem store calls ``os`` directly for a file it
writes.

Every file is opened with ``O_NOFOLLOW`` (a symlink planted inside the store is refused, never
followed) and ``O_CLOEXEC``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["FileIO"]

_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


class FileIO:
    """Plain POSIX file operations; subclass to observe or break them in tests."""

    def open_append(self, path: Path, mode: int) -> int:
        """Open (creating if needed) a file for appending and reading; return its fd."""
        return os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | _NOFOLLOW, mode)

    def open_new(self, path: Path, mode: int) -> int:
        """Create a file that must not exist yet, for writing; return its fd."""
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode)

    def open_read(self, path: Path) -> int:
        """Open an existing regular file for reading; return its fd.

        Raises:
            OSError: ``ELOOP`` for a symlink, ``EINVAL`` for anything but a regular file.
        """
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(22, "not a regular file", str(path))
        return fd

    def write(self, fd: int, data: bytes) -> None:
        """Write all of ``data`` at the file's position (looping over short writes)."""
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    def read_at(self, fd: int, size: int, offset: int) -> bytes:
        """Read up to ``size`` bytes at ``offset``."""
        chunks = []
        while size > 0:
            chunk = os.pread(fd, size, offset)
            if not chunk:
                break
            chunks.append(chunk)
            size -= len(chunk)
            offset += len(chunk)
        return b"".join(chunks)

    def size(self, fd: int) -> int:
        """Return the file's current size."""
        return os.fstat(fd).st_size

    def fsync(self, fd: int) -> None:
        """Make the file's data and size durable.

        ``fdatasync`` where the platform has it: it flushes the data and the size (everything
        needed to read the file back) and skips timestamps, saving a journal commit per call.
        """
        if hasattr(os, "fdatasync"):
            os.fdatasync(fd)
        else:  # pragma: no cover - macOS, Windows
            os.fsync(fd)

    def truncate(self, fd: int, size: int) -> None:
        """Cut the file to ``size`` bytes."""
        os.ftruncate(fd, size)

    def close(self, fd: int) -> None:
        """Close a descriptor."""
        os.close(fd)

    def rename(self, source: Path, target: Path) -> None:
        """Atomically replace ``target`` with ``source`` (same filesystem)."""
        os.replace(source, target)

    def unlink(self, path: Path) -> bool:
        """Remove a file; return False if it did not exist."""
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        return True

    def fsync_dir(self, path: Path) -> None:
        """Make the directory's entries (creates, renames, unlinks) durable."""
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- composites, written once over the primitives above --------------------------------

    def read_file(self, path: Path) -> bytes:
        """Return a regular file's whole content (symlinks refused)."""
        fd = self.open_read(path)
        try:
            return self.read_at(fd, self.size(fd), 0)
        finally:
            self.close(fd)

    def replace_file(
        self, path: Path, data: bytes, *, temp_dir: Path, mode: int, durable: bool
    ) -> None:
        """Replace ``path`` with ``data`` so that a crash leaves the old file or the new one.

        Order: write a uniquely named temp file in ``temp_dir`` (same filesystem) → fsync it
        → rename it over ``path`` → (the caller fsyncs ``path``'s directory when the rename
        itself must survive power loss). With ``durable=False`` nothing is fsynced: the result
        survives a killed process, not a power cut.
        """
        temp = temp_dir / f".{path.name}.{os.urandom(8).hex()}.tmp"
        fd = self.open_new(temp, mode)
        try:
            self.write(fd, data)
            if durable:
                self.fsync(fd)
        except BaseException:
            self.close(fd)
            self.unlink(temp)
            raise
        self.close(fd)
        try:
            self.rename(temp, path)
        except BaseException:
            self.unlink(temp)
            raise
