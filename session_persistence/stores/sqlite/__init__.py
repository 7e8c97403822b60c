"""The SQLite store: see :mod:`.store`."""

from .store import SQLiteSessionStore

__all__ = ["SQLiteSessionStore"]
