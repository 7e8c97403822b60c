"""Store backends. Each implements the narrow core of :class:`SessionStore`."""

from .base import SessionStore
from .memory import InMemorySessionStore

__all__ = ["InMemorySessionStore", "SessionStore"]
