"""Store backends. Each implements the narrow core of :class:`SessionStore`."""

from ._history import HistoryWindow
from .base import SessionStore
from .filesystem import FileSystemSessionStore
from .memory import InMemorySessionStore
from .sqlite import SQLiteSessionStore

__all__ = [
    "FileSystemSessionStore",
    "HistoryWindow",
    "InMemorySessionStore",
    "SQLiteSessionStore",
    "SessionStore",
]
