"""The in-memory store: the conformance suite, plus its snapshot file."""

from __future__ import annotations

from pathlib import Path

from session_persistence import InMemorySessionStore, SessionStoreConfig
from session_persistence.testing import StoreConformance


class TestInMemoryConformance(StoreConformance):
    def make_store(self, config: SessionStoreConfig, path: Path) -> InMemorySessionStore:
        return InMemorySessionStore(config)
