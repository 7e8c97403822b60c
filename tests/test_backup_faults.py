"""Backups and exports when the disk is full: a typed error, nothing half-written, then recovery.

Faults are injected through the I/O seam (:class:`FileIO`): the filesystem store takes one as
``_io=``; the SQLite store's backup writer is the same class, patched for the test. A last test
fills a real 2 MiB tmpfs (it needs root to mount one, and is skipped, saying why, otherwise).
"""

from __future__ import annotations

import asyncio
import errno
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from full_disk import fill

from session_persistence import (
    BackupOptions,
    FileSystemSessionStore,
    SessionFilter,
    SessionStore,
    SessionStoreConfig,
    SQLiteSessionStore,
    StoreIOError,
)
from session_persistence._fileio import FileIO
from session_persistence.testing import session_object

#: The FileIO steps of an atomic file write, in order; a full disk can fail any of them.
STEPS = ["open_new", "write", "fsync", "rename", "fsync_dir"]


def enospc(step: str) -> OSError:
    return OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (injected at {step})")


class FullDisk(FileIO):
    """A FileIO whose ``failing`` step raises ENOSPC (``None``: a disk with room)."""

    def __init__(self) -> None:
        super().__init__()
        self.failing: str | None = None

    def _check(self, step: str) -> None:
        if self.failing == step:
            raise enospc(step)

    def open_new(self, path: Path, mode: int) -> int:
        self._check("open_new")
        return super().open_new(path, mode)

    def write(self, fd: int, data: bytes) -> None:
        self._check("write")
        super().write(fd, data)

    def fsync(self, fd: int) -> None:
        self._check("fsync")
        super().fsync(fd)

    def rename(self, source: Path, target: Path) -> None:
        self._check("rename")
        super().rename(source, target)

    def fsync_dir(self, path: Path) -> None:
        self._check("fsync_dir")
        super().fsync_dir(path)


def open_store(kind: str, root: Path, disk: FullDisk, **options: Any) -> SessionStore:
    """A store whose file writes go through ``disk``.

    The filesystem store takes it as ``_io``; the SQLite store has no such argument, so its
    tests patch ``disk`` into FileIO itself (:func:`patch_file_io`).
    """
    config = SessionStoreConfig(**options)
    if kind == "filesystem":
        return FileSystemSessionStore(root / "store", config, watch=False, _io=disk)
    return SQLiteSessionStore(root / "sessions.db", config)


def patch_file_io(monkeypatch: pytest.MonkeyPatch, disk: FullDisk) -> None:
    """Make every FileIO (the SQLite store's backup and export writer) obey ``disk``."""
    for step in STEPS:
        original = getattr(FileIO, step)

        def failing(self: FileIO, *args: Any, _step: str = step, _real: Any = original) -> Any:
            disk._check(_step)
            return _real(self, *args)

        monkeypatch.setattr(FileIO, step, failing)


@pytest.fixture
def disk() -> FullDisk:
    """The fault switch, with room until a test sets ``failing``."""
    return FullDisk()


@pytest_asyncio.fixture(params=["filesystem", "sqlite"])
async def store(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    disk: FullDisk,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[SessionStore]:
    """A store of each kind holding three sessions, keeping at most two backups."""
    if request.param == "sqlite":
        patch_file_io(monkeypatch, disk)
    async with open_store(request.param, tmp_path, disk, max_backups=2) as opened:
        for number in range(3):
            await opened.create_session(session_object(interactions=2), metadata={"n": number})
        yield opened


def backup_files(store: SessionStore) -> list[str]:
    """Every name in the store's backup directory (temp files included)."""
    directory = Path(store._backups.vault.location)
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


async def stored(store: SessionStore) -> list[tuple[str, int, int]]:
    """Each session's id, version and interaction count, read back in full."""
    sessions = await store.list_sessions(SessionFilter(include_expired=True))
    return sorted((s.session_id, s.version, len(s.interactions)) for s in sessions)


@pytest.mark.parametrize("step", STEPS)
async def test_backup_on_a_full_disk_is_a_store_io_error_and_leaves_nothing(
    store: SessionStore, disk: FullDisk, step: str
) -> None:
    """ENOSPC at any step: StoreIOError (cause kept), no new file, old backups kept."""
    kept = await store.create_backup()
    before = await stored(store)
    files = backup_files(store)
    disk.failing = step
    with pytest.raises(StoreIOError) as info:
        await store.create_backup()
    disk.failing = None
    assert isinstance(info.value, OSError)
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.__cause__.errno == errno.ENOSPC
    assert "no space left" in str(info.value).lower()
    assert backup_files(store) == files
    assert [b.backup_id for b in await store.list_backups()] == [kept.backup_id]
    assert await stored(store) == before
    again = await store.create_backup()
    assert (await store.verify_backup(again.backup_id)).session_count == 3
    assert [b.backup_id for b in await store.list_backups()] == [kept.backup_id, again.backup_id]


@pytest.mark.parametrize("step", STEPS[:-1])
async def test_export_to_a_full_disk_is_a_store_io_error_and_leaves_the_old_file(
    store: SessionStore, disk: FullDisk, tmp_path: Path, step: str
) -> None:
    """ENOSPC while exporting to a path: StoreIOError, the previous export intact, no temp."""
    target = tmp_path / "exports" / "sessions.jsonl"
    target.parent.mkdir()
    assert await store.export_sessions(target) == 3
    previous = target.read_bytes()
    await store.create_session(session_object())
    disk.failing = step
    with pytest.raises(StoreIOError) as info:
        await store.export_sessions(target)
    disk.failing = None
    assert info.value.__cause__ is not None
    assert info.value.path == str(target)
    assert sorted(p.name for p in target.parent.iterdir()) == ["sessions.jsonl"]
    assert target.read_bytes() == previous
    assert await store.export_sessions(target) == 4


async def test_export_whose_directory_sync_fails_is_complete_and_says_so(
    store: SessionStore, disk: FullDisk, tmp_path: Path
) -> None:
    """After the rename the export is whole; a failed directory fsync is still reported."""
    target = tmp_path / "sessions.jsonl"
    disk.failing = "fsync_dir"
    with pytest.raises(StoreIOError, match="complete"):
        await store.export_sessions(target)
    disk.failing = None
    result = await store.import_sessions(target)
    assert result.skipped_count == 3


async def test_export_to_a_stream_that_fails_is_a_store_io_error(store: SessionStore) -> None:
    """A stream whose write raises ENOSPC gives StoreIOError with the cause kept."""

    class FullStream(io.BytesIO):
        def write(self, data: Any) -> int:
            raise enospc("stream")

    with pytest.raises(StoreIOError) as info:
        await store.export_sessions(FullStream())
    assert isinstance(info.value.__cause__, OSError)


async def test_timed_backups_on_a_full_disk_fail_typed_and_resume(tmp_path: Path) -> None:
    """A timed backup on a full disk is reported as StoreIOError and leaves no file.

    The next interval after space is freed succeeds.
    """

    class NoRoomForBackups(FullDisk):
        def open_new(self, path: Path, mode: int) -> int:  # the store's own files still fit
            if self.failing and path.parent.name == "backups":
                raise enospc("open_new")
            return FileIO.open_new(self, path, mode)

    disk = NoRoomForBackups()
    disk.failing = "backups"
    config: dict[str, Any] = {"backup_enabled": True, "backup_interval": 0.02}
    async with open_store("filesystem", tmp_path, disk, **config) as store:
        await store.create_session(session_object())
        for _ in range(1000):
            if (await store.get_stats()).backend["backup_failures"] >= 2:
                break
            await asyncio.sleep(0.01)
        issues = (await store.health_check()).issues
        assert any("timed backup failed (StoreIOError" in issue for issue in issues), issues
        assert backup_files(store) == []
        disk.failing = None
        for _ in range(1000):
            if await store.list_backups():
                break
            await asyncio.sleep(0.01)
        assert len(await store.list_backups()) >= 1
        assert not any("timed backup" in issue for issue in (await store.health_check()).issues)


# -- a real full disk ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["filesystem", "sqlite"])
async def test_backup_and_export_on_a_really_full_disk(small_disk: Path, kind: str) -> None:
    """On a full tmpfs: StoreIOError and no partial backup or export; every session reads.

    Once space is freed, both succeed.
    """
    async with open_store(kind, small_disk, FullDisk()) as store:
        for number in range(20):
            await store.create_session(session_object(interactions=3), metadata={"n": number})
        before = await stored(store)
        filler = fill(small_disk)
        try:
            with pytest.raises(StoreIOError) as info:
                await store.create_backup(BackupOptions(compress=False))
            assert isinstance(info.value.__cause__, OSError)
            assert info.value.__cause__.errno == errno.ENOSPC
            assert backup_files(store) == []
            export = small_disk / "sessions.jsonl"
            with pytest.raises(StoreIOError):
                await store.export_sessions(export)
            assert not any("jsonl" in name for name in os.listdir(small_disk))
            assert await stored(store) == before
            assert (await store.check()).problems == []
        finally:
            filler.unlink()
        backup = await store.create_backup(BackupOptions(compress=False))
        assert (await store.verify_backup(backup.backup_id)).session_count == 20
        assert await store.export_sessions(small_disk / "sessions.jsonl") == 20
