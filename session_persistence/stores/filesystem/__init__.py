"""The filesystem store: one file per session, a write-ahead journal, crash recovery."""

from .store import Durability, FileSystemSessionStore

__all__ = ["Durability", "FileSystemSessionStore"]
