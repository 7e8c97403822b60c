"""A real, small, full filesystem for disk-full tests: a tmpfs mounted in the test's temp dir."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def mounted_tmpfs(where: Path, size: str = "2m") -> Iterator[Path]:
    """Mount a tmpfs of ``size`` at ``where`` (the test is skipped, with why, if it cannot)."""
    where.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as exc:
        pytest.skip(f"cannot run mount: {exc}")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a {size} tmpfs (needs root): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def fill(directory: Path, leave: int = 0) -> Path:
    """Write a file until the filesystem has no byte left, then free ``leave`` bytes."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 16, 1 << 12, 1):
            with pytest.raises(OSError, match="No space left") as info:
                while True:
                    os.write(fd, b"\0" * size)
            assert info.value.errno == errno.ENOSPC
        if leave:
            os.ftruncate(fd, os.fstat(fd).st_size - leave)
    finally:
        os.close(fd)
    return filler
