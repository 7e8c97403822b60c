"""PostgreSQL failures as the library's typed errors, with messages that say what to do.

* ``lock_timeout`` expired (SQLSTATE ``55P03``): :class:`StoreLockTimeoutError`.
* ``statement_timeout`` expired (``57014``): :class:`StoreIOError` naming the setting.
* A deadlock or serialization failure (``40P01``, ``40001``): :class:`StoreLockTimeoutError`
  (the transaction was rolled back; try again).
* The connection failed (the server restarted, the network dropped, the pool could not
  connect in time): :class:`StoreIOError`. Before ``COMMIT`` was sent nothing was applied;
  if the connection was lost *during* ``COMMIT`` the server may or may not have committed,
  and the message says the outcome is unknown (a retry with ``expected_version`` tells).
* Anything else from the server: :class:`StoreIOError` with the server's message.
"""

from __future__ import annotations

import psycopg
import psycopg_pool

from ...errors import StoreIOError, StoreLockTimeoutError

__all__ = ["UNKNOWN_OUTCOME", "translate"]

#: What a write lost during ``COMMIT`` says about its outcome.
UNKNOWN_OUTCOME = (
    "the connection was lost during COMMIT, so its outcome is unknown: the server may have "
    "committed it; re-read the session, or retry with expected_version, to find out"
)


def translate(
    exc: BaseException, where: str, *, writing: bool, committing: bool = False
) -> Exception:
    """Return the typed error for a psycopg (or pool) failure.

    Args:
        exc: The failure.
        where: The database and tables, for the message.
        writing: Whether a write failed (the message then says what was applied).
        committing: Whether it failed while ``COMMIT`` was in flight.
    """
    applied = "; nothing was applied" if writing else ""
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return StoreIOError(
            f"no connection to {where} within the pool's timeout ({exc}); the server may be "
            f"down or max_size too small{applied}",
            where,
        )
    if isinstance(exc, psycopg.errors.LockNotAvailable):
        return StoreLockTimeoutError(
            f"a row of {where} stayed locked by another transaction for longer than "
            f"lock_timeout{applied}; try again"
        )
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return StoreIOError(
            f"a statement on {where} ran longer than statement_timeout and was cancelled"
            f"{applied}; raise statement_timeout or try again",
            where,
        )
    if isinstance(exc, psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure):
        return StoreLockTimeoutError(
            f"PostgreSQL rolled back a transaction on {where} ({exc.sqlstate}: {exc})"
            f"{applied}; try again"
        )
    if isinstance(exc, psycopg.OperationalError) and _connection_lost(exc):
        if committing:
            return StoreIOError(f"writing to {where} failed: {UNKNOWN_OUTCOME} ({exc})", where)
        return StoreIOError(
            f"the connection to {where} was lost ({_first_line(exc)}){applied}; the pool "
            "reconnects by itself, try again",
            where,
        )
    if committing:
        return StoreIOError(
            f"COMMIT on {where} failed ({_first_line(exc)}); nothing was applied", where
        )
    return StoreIOError(f"{where} failed: {_first_line(exc)}{applied}", where)


def _connection_lost(exc: psycopg.OperationalError) -> bool:
    """Whether the failure is the connection's (not a statement's, such as a timeout)."""
    return exc.sqlstate is None or exc.sqlstate.startswith(("08", "57P"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
