"""Reading less than a whole session: a slice of its history, and header-only listings.

Kept apart from :mod:`.base` for size; mixed into :class:`SessionStore`.

* :meth:`HistoryMethods.get_interactions` reads a slice of one session's interactions
  (``offset``/``limit``, oldest or newest first) with exactly :meth:`SessionStore.get_session`'s
  semantics: an expired session reads as missing, a read is an access (``last_accessed_at``,
  sliding expiry), and inside a transaction it sees that transaction's staged writes. The
  backend's hook :meth:`HistoryMethods._load_live_interactions` decides how cheaply: the
  default loads the session (as ``get_session`` does) and slices it; the in-memory store copies
  only the slice, and the SQLite store reads only the slice's rows.
* :meth:`HistoryMethods.list_session_headers` is :meth:`SessionStore.list_sessions` without the
  histories: the same filter, sort and pagination, answered from the index alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar, cast

from .._ids import validate_session_id
from ..errors import InvalidInputError
from ..models import Interaction, SessionFilter, SessionHeader, SessionQueryOptions

if TYPE_CHECKING:
    from .base import SessionStore

__all__ = ["HistoryMethods", "HistoryWindow"]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class HistoryWindow:
    """Which interactions a :meth:`~HistoryMethods.get_interactions` call wants.

    ``offset`` interactions are skipped and at most ``limit`` (``None``: all the rest) are
    taken, counted from the oldest, or from the newest when ``newest_first`` (then the result
    is newest first too), as ``ORDER BY seq [DESC] LIMIT limit OFFSET offset`` would.
    """

    offset: int = 0
    limit: int | None = None
    newest_first: bool = False

    @classmethod
    def checked(cls, offset: object, limit: object, newest_first: object) -> HistoryWindow:
        """Validate the caller's arguments.

        Raises:
            InvalidInputError: ``offset`` is not an int >= 0, ``limit`` not ``None`` or an
                int >= 0, or ``newest_first`` not a bool.
        """
        if type(offset) is not int or offset < 0:
            raise InvalidInputError(
                f"offset must be an int >= 0 (how many interactions to skip), got {offset!r}"
            )
        if limit is not None and (type(limit) is not int or limit < 0):
            raise InvalidInputError(f"limit must be None (no limit) or an int >= 0, got {limit!r}")
        if type(newest_first) is not bool:
            raise InvalidInputError(f"newest_first must be True or False, got {newest_first!r}")
        return cls(offset, limit, newest_first)

    def bounds(self, count: int) -> tuple[int, int]:
        """The ``[start, stop)`` positions (from the oldest, 0-based) the window selects."""
        if self.newest_first:
            stop = max(count - self.offset, 0)
            start = 0 if self.limit is None else max(stop - self.limit, 0)
        else:
            start = min(self.offset, count)
            stop = count if self.limit is None else min(start + self.limit, count)
        return start, stop

    def take(self, items: Sequence[T]) -> list[T]:
        """Return the window's items of a whole history, in the window's order."""
        start, stop = self.bounds(len(items))
        chosen = list(items[start:stop])
        if self.newest_first:
            chosen.reverse()
        return chosen


class HistoryMethods:
    """``get_interactions`` and ``list_session_headers``: mixed into :class:`SessionStore`."""

    async def get_interactions(
        self,
        session_id: str,
        *,
        offset: int = 0,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Interaction] | None:
        """Return a slice of a session's interactions without reading the rest (where it can).

        The slice is what ``ORDER BY position LIMIT limit OFFSET offset`` would give: skip
        ``offset`` interactions, then take at most ``limit``, counted from the oldest (the
        result is oldest first) or, with ``newest_first``, from the newest (the result is
        newest first). So ``limit=20, newest_first=True`` is the last 20, newest first, and
        ``offset=n`` past the end gives ``[]``.

        It reads as :meth:`get_session` reads, and only what it returns differs: ``None``
        for a session that does not exist or has expired (an existing session with no
        interactions gives ``[]``), the read refreshes ``last_accessed_at`` (and slides a
        sliding expiry) as ``get_session`` does, and inside a transaction it sees that
        transaction's staged changes. The interactions are the caller's own copies, from
        one committed version of the session.

        Cost: the in-memory and SQLite stores read and copy only the slice (SQLite reads
        only the slice's rows); another store may read the whole session and slice it
        (the base's default), and a read inside a transaction always does.

        Args:
            session_id: The session.
            offset: How many interactions to skip (from the oldest, or the newest).
            limit: At most this many; ``None``: every one after ``offset``.
            newest_first: Count from the newest and return newest first.

        Raises:
            InvalidInputError: ``offset`` is not an int >= 0, ``limit`` not ``None`` or an
                int >= 0, or ``newest_first`` not a bool.
            InvalidSessionIdError: ``session_id`` is not a valid id.
            StoreIOError, StoreCorruptionError: The storage failed, or the session is damaged.
        """
        store = cast("SessionStore", self)
        store._ensure_open()
        window = HistoryWindow.checked(offset, limit, newest_first)
        tx = store._joined()
        if tx is not None:
            session = await tx.get_session(session_id)
            return None if session is None else window.take(session.interactions)
        session_id = validate_session_id(session_id)
        with store._storage_errors(f"reading session {session_id} failed: {{}}"):
            return await self._load_live_interactions(session_id, store._now(), window)

    async def _load_live_interactions(
        self, session_id: str, now: datetime, window: HistoryWindow
    ) -> list[Interaction] | None:
        """Optional: :meth:`get_interactions`'s read: the window of a session live at ``now``.

        Must judge expiry and record the read (``_touch``) exactly as
        :meth:`SessionStore._load_live` does, and return ``None`` when that would, else
        ``window``'s interactions (:meth:`HistoryWindow.take` of the whole history), copies
        the caller owns, from one committed version. The default is ``_load_live`` plus a
        slice; a backend that can read part of a history overrides it to read only the slice.
        """
        store = cast("SessionStore", self)
        session = await store._load_live(session_id, now)
        return None if session is None else window.take(session.interactions)

    async def list_session_headers(
        self, filter: SessionFilter | None = None, options: SessionQueryOptions | None = None
    ) -> list[SessionHeader]:
        """:meth:`list_sessions` without the histories: the selected sessions' headers.

        The same filter, sort and pagination as :meth:`list_sessions` (expired sessions left
        out unless ``filter.include_expired``; inside a transaction its staged changes are
        seen), answered from the index alone, so a page costs the same however long the
        sessions are. Each header carries ``interaction_count`` and ``size_bytes``. Not an
        access: ``last_accessed_at`` is not refreshed (as :meth:`list_sessions`).

        Headers, not sessions with an empty ``interactions`` list: such a session looks like
        an empty history, and saving it back (``update_session(..., {"interactions": ...})``)
        would erase the real one. A header cannot be mistaken for that. Headers are shared
        and immutable: treat their ``metadata`` and ``tags`` as read-only. Read a session's
        history with :meth:`get_session` or :meth:`get_interactions`.
        """
        store = cast("SessionStore", self)
        return await store._selected(filter or SessionFilter(), options or SessionQueryOptions())
