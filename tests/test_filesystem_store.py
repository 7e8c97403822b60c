"""The filesystem store: the conformance suite in both durability modes."""

from __future__ import annotations

from pathlib import Path

from session_persistence import FileSystemSessionStore, SessionStoreConfig
from session_persistence.testing import StoreConformance


class TestFileSystemFullConformance(StoreConformance):
    def make_store(self, config: SessionStoreConfig, path: Path) -> FileSystemSessionStore:
        return FileSystemSessionStore(path / "store", config, durability="full")


class TestFileSystemProcessConformance(StoreConformance):
    def make_store(self, config: SessionStoreConfig, path: Path) -> FileSystemSessionStore:
        return FileSystemSessionStore(path / "store", config, durability="process")
