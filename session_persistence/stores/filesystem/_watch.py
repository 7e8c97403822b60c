"""Noticing other processes' writes: a watchdog observer on ``journal/``, and mount detection."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

__all__ = ["JournalWatcher", "network_filesystem"]

logger = logging.getLogger(__name__)

_NETWORK_FILESYSTEMS = frozenset(
    {
        "9p",
        "afs",
        "ceph",
        "cifs",
        "fuse.glusterfs",
        "fuse.sshfs",
        "glusterfs",
        "gpfs",
        "lustre",
        "ncpfs",
        "nfs",
        "nfs4",
        "smb3",
        "smbfs",
        "sshfs",
    }
)


class _Handler(FileSystemEventHandler):
    def __init__(self, notify: Callable[[], None]) -> None:
        self._notify = notify

    def on_any_event(self, event: FileSystemEvent) -> None:
        self._notify()


class JournalWatcher:
    """Calls ``notify`` (from a watchdog thread) whenever ``journal/`` changes.

    If the platform's observer cannot start (inotify limits, unsupported filesystem) the
    watcher reports mode ``"polling"`` and the store relies on its poll interval alone.
    """

    def __init__(self, directory: Path, notify: Callable[[], None]) -> None:
        self._directory = directory
        self._notify = notify
        self._observer: Observer | None = None  # type: ignore[valid-type]
        self.mode = "polling"

    def start(self) -> None:
        """Start the observer, or stay in polling mode if it cannot start."""
        observer = Observer()
        try:
            observer.schedule(_Handler(self._notify), str(self._directory), recursive=False)
            observer.start()
        except OSError as exc:
            logger.warning("cannot watch %s (%s); polling instead", self._directory, exc)
            return
        self._observer = observer
        self.mode = "watchdog"

    def stop(self) -> None:
        """Stop and join the observer thread."""
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join()


def network_filesystem(path: Path) -> str | None:
    """Return the type of the network filesystem holding ``path``, or ``None`` if local.

    Reads ``/proc/self/mounts`` (Linux); elsewhere returns ``None``.
    """
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as mounts:
            lines = mounts.read().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best, best_type = "", None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point = fields[1].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, fields[2]
    return best_type if best_type in _NETWORK_FILESYSTEMS else None
