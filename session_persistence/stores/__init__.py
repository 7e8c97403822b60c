"""Store backends. Each implements the narrow core of :class:`SessionStore`."""

from .base import SessionStore
from .filesystem import FileSystemSessionStore
from .memory import InMemorySessionStore

__all__ = ["FileSystemSessionStore", "InMemorySessionStore", "SessionStore"]
