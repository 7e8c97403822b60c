"""The filesystem store: one file per session, a write-ahead journal, crash recovery."""

from ...config import Durability
from .store import FileSystemSessionStore

__all__ = ["Durability", "FileSystemSessionStore"]
