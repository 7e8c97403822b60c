"""Point reads on the caller's thread, through a read-only connection that never waits.

A point read (one session, or its header) is one or two indexed ``SELECT``s: a few
microseconds, far less than handing the call to the worker thread and back. So the store
reads points here, on the event loop, with a second connection to the same file:

* It is read-only (``PRAGMA query_only``) and in WAL mode a reader never waits for a writer:
  it reads the last committed state, which includes every write this store acknowledged (the
  worker commits before a write returns) and other processes' commits.
* It never waits for a lock: ``busy_timeout`` is 0. The rare moments a WAL reader can be
  refused (another connection running WAL recovery, or resetting the WAL in a
  ``wal_checkpoint(TRUNCATE)``) raise :class:`Busy`, and the store reads through its worker
  instead, which waits as every other call does.
* A session is read in one statement (its row joined with its interaction rows), so it is
  read at one committed instant.

A lock serializes its use, so a store driven from several threads stays safe (the
connection is opened with ``check_same_thread=False``). Reads inside a backup's snapshot and
every scan or query still go through the worker (see the store).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ._write import Statements, session_rows

T = TypeVar("T")

__all__ = ["Busy", "Reader"]


class Busy(Exception):
    """The read was refused for a lock; read through the worker instead."""


class Reader:
    """A read-only connection for point reads on the calling thread."""

    def __init__(self, path: str, sql: Statements) -> None:
        self._sql = sql
        self._lock = threading.Lock()
        db = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, cached_statements=64
        )
        try:
            db.execute("PRAGMA busy_timeout = 0")
            db.execute("PRAGMA query_only = 1")
        except BaseException:
            db.close()
            raise
        self._db = db

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def header_row(self, session_id: str) -> tuple[Any, ...] | None:
        """Return a session's header row, or ``None``.

        Raises:
            Busy: A lock refused the read.
            sqlite3.Error: The read failed.
        """
        with self._lock:
            try:
                row: tuple[Any, ...] | None = self._db.execute(
                    self._sql.header, (session_id,)
                ).fetchone()
            except sqlite3.OperationalError as exc:
                _raise_busy(exc)
                raise
            return row

    def session_rows(self, session_id: str) -> tuple[tuple[Any, ...], list[str]] | None:
        """Return a session's header row and its interaction rows in order, or ``None``.

        Raises:
            Busy: A lock refused the read.
            sqlite3.Error: The read failed.
        """
        with self._lock:
            try:
                return session_rows(self._db, self._sql, session_id)
            except sqlite3.OperationalError as exc:
                _raise_busy(exc)
                raise

    def run(self, read: Callable[[sqlite3.Connection], T]) -> T:
        """Return ``read(connection)``: another point read, with the same rules.

        Raises:
            Busy: A lock refused the read.
            sqlite3.Error: The read failed.
        """
        with self._lock:
            try:
                return read(self._db)
            except sqlite3.OperationalError as exc:
                _raise_busy(exc)
                raise


def _raise_busy(exc: sqlite3.OperationalError) -> None:
    if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        raise Busy(str(exc)) from exc
