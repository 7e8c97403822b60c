"""A :class:`FileIO` that counts steps, injects faults and models what survives a power cut.

The power-loss model is deliberately harsh: a file's content survives only as of its last
``fsync``, and a directory's entries (creates, renames, unlinks) only as of the directory's
last ``fsync``. Everything else is dropped, including a renamed file whose directory was not
synced (it reverts to the old file) and a new file whose directory was not synced (it vanishes).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from session_persistence._fileio import FileIO


class SimulatedCrash(BaseException):
    """The process 'died' at this step: nothing after it runs."""


class SimulatedDisk(FileIO):
    """Counts every mutating step; raises at ``fail_at``; can drop un-fsynced data."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        self.steps = 0
        self.fail_at: int | None = None
        self.fail_with: str = "crash"  # or "enospc" / "eio"
        self.crashed = False
        self.trace: list[str] = []
        self._content: dict[int, bytes] = {}
        self._entries: dict[Path, dict[str, int]] = {}
        self.mark_everything_durable()

    # -- faults ------------------------------------------------------------------------------

    def _step(self, name: str) -> None:
        if self.crashed:
            raise SimulatedCrash(name)
        self.steps += 1
        self.trace.append(name)
        if self.fail_at is not None and self.steps == self.fail_at:
            if self.fail_with == "crash":
                self.crashed = True
                raise SimulatedCrash(f"crash before step {self.steps}: {name}")
            code = errno.ENOSPC if self.fail_with == "enospc" else errno.EIO
            raise OSError(code, f"injected {os.strerror(code)} at step {self.steps}: {name}")

    def open_append(self, path: Path, mode: int) -> int:
        self._step(f"open_append {path.name}")
        return super().open_append(path, mode)

    def open_new(self, path: Path, mode: int) -> int:
        self._step(f"open_new {path.name}")
        return super().open_new(path, mode)

    def write(self, fd: int, data: bytes) -> None:
        if self.fail_at == self.steps + 1 and self.fail_with == "crash" and len(data) > 1:
            super().write(fd, data[: len(data) // 2])  # a torn write: half of it got out
        self._step("write")
        super().write(fd, data)

    def fsync(self, fd: int) -> None:
        self._step("fsync")
        super().fsync(fd)
        info = os.fstat(fd)
        reader = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY)  # fd may be write-only
        try:
            self._content[info.st_ino] = os.pread(reader, info.st_size, 0)
        finally:
            os.close(reader)

    def truncate(self, fd: int, size: int) -> None:
        self._step("truncate")
        super().truncate(fd, size)

    def rename(self, source: Path, target: Path) -> None:
        self._step(f"rename {source.name} -> {target.name}")
        super().rename(source, target)

    def unlink(self, path: Path) -> bool:
        self._step(f"unlink {path.name}")
        return super().unlink(path)

    def fsync_dir(self, path: Path) -> None:
        self._step(f"fsync_dir {path.name}")
        super().fsync_dir(path)
        self._entries[Path(path)] = self._listing(Path(path))

    def close(self, fd: int) -> None:
        os.close(fd)  # closing is not a step: a crash closes everything anyway

    # -- power loss --------------------------------------------------------------------------

    @staticmethod
    def _listing(directory: Path) -> dict[str, int]:
        return {
            entry.name: entry.inode()
            for entry in os.scandir(directory)
            if entry.is_file(follow_symlinks=False)
        }

    def mark_everything_durable(self) -> None:
        """Treat the current state of every file under ``root`` as synced."""
        for directory, _dirs, files in os.walk(self.root):
            path = Path(directory)
            self._entries[path] = self._listing(path)
            for name in files:
                info = os.lstat(path / name)
                self._content[info.st_ino] = (path / name).read_bytes()

    def power_loss(self) -> None:
        """Drop everything not made durable by an fsync of the file and of its directory."""
        for directory, durable in self._entries.items():
            for name, _inode in self._listing(directory).items():
                if name not in durable:
                    os.unlink(directory / name)
            for name, inode in durable.items():
                data = self._content.get(inode, b"")
                target = directory / name
                temp = directory / f".{name}.powerloss"
                temp.write_bytes(data)
                os.chmod(temp, 0o600)
                os.replace(temp, target)
        self.crashed = False
        self.fail_at = None
