"""``ReadCache``: decoded sessions kept for warm reads, within a budget of stored bytes.

A read of a session that is in the cache at its current version costs no file read and no
decode: the caller gets it through :func:`~session_persistence._copy.lend_session`, whose
interactions are copied only as they are read. Entries are charged their stored size
(``size_bytes``) against the budget and evicted least recently read first. One session may
take up to half the budget, so a long history (say 10,000 interactions, ~8 MB) is kept as a
short one is; a session beyond that is read from its files each time (read it in parts with
``get_interactions``).

The cache follows every change to a session, this process's or another's: an append whose
base is the cached version extends the entry (its new interactions decoded from the journal
line), so a read after a write is still warm; any other change drops it. The entries are
the cache's own objects, never handed out, so nothing a caller does can change them.
Callers hold the store's ``_lock``.
"""

from __future__ import annotations

import collections

import orjson

from ...errors import SerializationError
from ...models import PersistedSession
from ...serialization import Codec
from ._files import extend
from ._format import Append, BadFile

__all__ = ["DEFAULT_READ_CACHE_BYTES", "ReadCache"]

#: The default budget: decoded sessions, by their stored size.
DEFAULT_READ_CACHE_BYTES = 64 * 1024 * 1024


class ReadCache:
    """Decoded sessions by id, least recently read first (see the module docstring)."""

    def __init__(self, budget: int, codec: Codec) -> None:
        self.budget = budget
        self._codec = codec
        self._entries: collections.OrderedDict[str, tuple[PersistedSession, int]] = (
            collections.OrderedDict()
        )
        self._bytes = 0

    def get(self, session_id: str, version: int) -> PersistedSession | None:
        """The kept session if it is at ``version`` (and mark it read), else ``None``."""
        entry = self._entries.get(session_id)
        if entry is None or entry[0].version != version:
            return None
        self._entries.move_to_end(session_id)
        return entry[0]

    def keep(self, session: PersistedSession, size: int) -> None:
        """Keep ``session`` (which becomes the cache's own), evicting to stay in budget."""
        self.drop(session.session_id)
        if size > self.budget // 2:
            return  # it would push out most of the rest
        self._entries[session.session_id] = (session, size)
        self._bytes += size
        while self._bytes > self.budget:
            _, (_, evicted) = self._entries.popitem(last=False)
            self._bytes -= evicted

    def drop(self, session_id: str) -> PersistedSession | None:
        """Forget a session; return what was kept."""
        entry = self._entries.pop(session_id, None)
        if entry is None:
            return None
        self._bytes -= entry[1]
        return entry[0]

    def follow(self, append: Append) -> None:
        """Apply a committed append: extend the entry it follows on, else drop it."""
        kept = self.drop(append.header.session_id)
        if kept is None or kept.version != append.expected:
            return
        try:
            extended = extend(kept, append, self._codec)
        except (BadFile, SerializationError, orjson.JSONDecodeError):
            return  # (a reader decoding the line reports it; the cache just forgets)
        self.keep(extended, append.header.size_bytes)

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._entries

    def ids(self) -> list[str]:
        """The kept sessions' ids, least recently read first."""
        return list(self._entries)

    @property
    def charged(self) -> int:
        """The stored bytes the kept sessions are charged."""
        return self._bytes
