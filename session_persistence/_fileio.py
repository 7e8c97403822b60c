"""The one seam through which the library touches the files it writes.

Every open, write, fsync, rename, truncate and unlink the filesystem store performs is a method
of :class:`FileIO` (the in-memory store's snapshot and backup directories use it too). Tests
substitute a subclass to inject faults at any step: an ``OSError`` (``ENOSPC``, ``EIO``), a
crash between two steps, or the loss of everything written but not yet ``fsync``-ed (a
simulated power cut). Nothing in the filesystem store calls ``os`` directly for a file it
writes.

**Links are never followed inside a store.** A store *anchors* its directories
(:meth:`FileIO.anchor`): each is opened once with ``O_DIRECTORY | O_NOFOLLOW`` and every later
operation on a file directly inside it goes through that descriptor (``openat``, ``renameat``,
``unlinkat``, ``fstatat``), so replacing ``journal/`` or ``sessions/`` with a link while the store
is open cannot redirect a single write; :meth:`FileIO.moved_anchors` tells the store that it
happened. Every file is opened with ``O_NOFOLLOW`` and ``O_CLOEXEC``, and read only after it is
found to be a regular file (opened ``O_NONBLOCK``, so a FIFO planted in the store can never hang
a reader): anything else raises :class:`NotRegularFile`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable
from pathlib import Path

__all__ = ["FileIO", "NotRegularFile"]

_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class NotRegularFile(OSError):
    """A path names a link, a FIFO, a device, a socket or a directory where a file belongs.

    It is not an I/O failure: the store's tree holds something it never writes there, so a
    caller may treat it as damage (quarantine it, which renames and never opens it).
    """

    def __init__(self, path: Path | str, what: str) -> None:
        super().__init__(errno.EINVAL, f"not a regular file ({what})", str(path))
        self.what = what


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


class FileIO:
    """Plain POSIX file operations; subclass to observe or break them in tests.

    Subclasses that define ``__init__`` must call ``super().__init__()``.
    """

    def __init__(self) -> None:
        self._anchors: dict[Path, int] = {}
        self._root: Path | None = None

    # -- anchored directories --------------------------------------------------------------

    def anchor(
        self, root: Path, names: Iterable[str], dir_mode: int, *, create: bool = True
    ) -> None:
        """Open ``root`` and its subdirectories ``names`` (created if missing) and keep them.

        ``root`` is the caller's own path and may pass through links; the subdirectories are
        opened with ``O_NOFOLLOW`` relative to it, never through a link. Without ``create``
        (a read-only open) a missing subdirectory is left out: nothing will be written there,
        and a read of it finds nothing (a copy of a store may have dropped empty directories).

        Raises:
            NotRegularFile: A subdirectory is a link, a file or anything but a directory.
            OSError: Opening or creating one failed.
        """
        self.release()
        root_fd = os.open(root, _DIRECTORY)
        self._anchors[Path(root)] = root_fd
        self._root = Path(root)
        for name in names:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, dir_mode, dir_fd=root_fd)
            try:
                fd = os.open(name, _DIRECTORY | os.O_NOFOLLOW, dir_fd=root_fd)
            except FileNotFoundError:
                if create:
                    raise
                continue
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                mode = os.stat(name, dir_fd=root_fd, follow_symlinks=False).st_mode
                raise NotRegularFile(Path(root) / name, _kind(mode)) from exc
            self._anchors[Path(root) / name] = fd

    def moved_anchors(self) -> list[Path]:
        """Return the anchored subdirectories no longer found at their path (moved or swapped).

        Operations keep going to the directory that was anchored, never to what replaced it.
        """
        if self._root is None:
            return []
        root_fd = self._anchors[self._root]
        moved = []
        for path, fd in self._anchors.items():
            if path == self._root:
                continue
            mine = os.fstat(fd)
            try:
                found = os.stat(path.name, dir_fd=root_fd, follow_symlinks=False)
            except FileNotFoundError:
                moved.append(path)
                continue
            if (found.st_dev, found.st_ino) != (mine.st_dev, mine.st_ino):
                moved.append(path)
        return moved

    def release(self) -> None:
        """Close every anchored directory."""
        anchors, self._anchors, self._root = self._anchors, {}, None
        for fd in anchors.values():
            os.close(fd)

    def _at(self, path: Path) -> tuple[int | None, str | Path]:
        """``(dir_fd, name)`` for a file in an anchored directory, else ``(None, path)``."""
        fd = self._anchors.get(path.parent)
        if fd is None:
            return None, path
        return fd, path.name

    def listdir(self, path: Path) -> list[str]:
        """Return the names in a directory (through its anchor when it has one)."""
        fd = self._anchors.get(Path(path))
        return os.listdir(path if fd is None else fd)

    def lstat(self, path: Path) -> os.stat_result:
        """``lstat`` a path (never following a final link)."""
        fd, name = self._at(path)
        return os.stat(name, dir_fd=fd, follow_symlinks=False)

    def exists(self, path: Path) -> bool:
        """Return whether anything (a link included) is at ``path``."""
        try:
            self.lstat(path)
        except FileNotFoundError:
            return False
        return True

    # -- primitives ------------------------------------------------------------------------

    def open_append(self, path: Path, mode: int) -> int:
        """Open (creating if needed) a regular file for appending and reading; return its fd.

        Raises:
            NotRegularFile: Something else is at ``path``.
        """
        return self._open_regular(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, mode)

    def open_new(self, path: Path, mode: int) -> int:
        """Create a file that must not exist yet, for writing; return its fd."""
        fd, name = self._at(path)
        return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode, dir_fd=fd)

    def open_read(self, path: Path) -> int:
        """Open an existing regular file for reading; return its fd.

        Raises:
            NotRegularFile: ``path`` is a link, a FIFO, a directory or any other non-file.
        """
        return self._open_regular(path, os.O_RDONLY, 0)

    def _open_regular(self, path: Path, flags: int, mode: int) -> int:
        dir_fd, name = self._at(path)
        try:
            # O_NONBLOCK: opening a FIFO must not wait for a writer (regular files ignore it).
            fd = os.open(name, flags | _NOFOLLOW | os.O_NONBLOCK, mode, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.EWOULDBLOCK):
                raise
            raise NotRegularFile(path, _kind(self.lstat(path).st_mode)) from exc
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise NotRegularFile(path, _kind(info.st_mode))
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
        source_fd, source_name = self._at(source)
        target_fd, target_name = self._at(target)
        os.replace(source_name, target_name, src_dir_fd=source_fd, dst_dir_fd=target_fd)

    def unlink(self, path: Path) -> bool:
        """Remove a file; return False if it did not exist."""
        fd, name = self._at(path)
        try:
            os.unlink(name, dir_fd=fd)
        except FileNotFoundError:
            return False
        return True

    def fsync_dir(self, path: Path) -> None:
        """Make the directory's entries (creates, renames, unlinks) durable."""
        anchored = self._anchors.get(Path(path))
        if anchored is not None:
            os.fsync(anchored)
            return
        fd = os.open(path, _DIRECTORY)
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
