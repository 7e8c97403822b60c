"""Cross-process locks on descriptors the store keeps open.

``flock`` on a descriptor opened once costs about a microsecond; reopening the lock file for
each write (as ``filelock`` does) cost about 150 µs. The lock belongs to the open file
description, so it is released when the holder calls :meth:`ProcessLock.release`, closes the
store, or dies (the kernel drops it with the last descriptor): a killed process never leaves a
stale lock. Within a process the store serializes its own threads (``_write_mutex``) before
taking the lock, so one descriptor per lock is enough.

A lock that is held elsewhere is polled with a short, growing sleep (0.1 ms up to 2 ms), so a
waiter takes over within about a millisecond of the release, until ``timeout`` has passed.
"""

from __future__ import annotations

import errno
import fcntl
import time
from pathlib import Path

from ..._fileio import FileIO
from ...errors import StoreLockTimeoutError

__all__ = ["ProcessLock"]

_FIRST_WAIT = 0.0001
_LONGEST_WAIT = 0.002


class ProcessLock:
    """An exclusive ``flock`` on a kept descriptor of ``path``, with a timeout.

    Args:
        io: The store's file seam (the lock file is opened relative to the anchored directory,
            never through a link).
        path: The lock file (created ``mode`` if missing; never deleted).
        timeout: Seconds to wait before :class:`StoreLockTimeoutError`.
        what: How the timeout message names this lock.
    """

    def __init__(self, io: FileIO, path: Path, *, timeout: float, mode: int, what: str) -> None:
        self._io = io
        self._path = path
        self._timeout = timeout
        self._mode = mode
        self._what = what
        self._fd: int | None = None
        self.held = False

    def acquire(self) -> None:
        """Take the lock, waiting up to ``timeout``.

        Raises:
            StoreLockTimeoutError: Another process held it for the whole ``timeout``.
            OSError: The lock file cannot be opened.
        """
        if self._fd is None:
            self._fd = self._io.open_append(self._path, self._mode)
        if not self._try():
            deadline = time.monotonic() + self._timeout
            wait = _FIRST_WAIT
            while not self._try():
                if time.monotonic() >= deadline:
                    raise StoreLockTimeoutError(
                        f"another process has held {self._what} on {self._path.parent} for "
                        f"over {self._timeout:g}s; retry, or raise lock_timeout"
                    )
                time.sleep(wait)
                wait = min(wait * 2, _LONGEST_WAIT)
        self.held = True

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; never wait."""
        if self._fd is None:
            self._fd = self._io.open_append(self._path, self._mode)
        self.held = self._try()
        return self.held

    def _try(self) -> bool:
        assert self._fd is not None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        return True

    def release(self) -> None:
        """Release the lock (the descriptor stays open for the next acquire)."""
        if self.held:
            self.held = False
            assert self._fd is not None
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Release the lock and close the descriptor."""
        if self._fd is not None:
            self.release()
            self._io.close(self._fd)
            self._fd = None
