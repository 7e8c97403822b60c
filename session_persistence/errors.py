"""The exception hierarchy of session-persistence.

Every error the library raises on purpose derives from one root, :class:`SessionStoreError`,
which carries a stable machine-readable ``code``. Where a standard-library exception has the
same meaning, the error also derives from it, so ``except LookupError`` or ``except ValueError``
keeps working::

    SessionStoreError (code)
    ├── SessionNotFoundError            SESSION_NOT_FOUND      + LookupError
    ├── SessionExistsError              SESSION_EXISTS
    ├── SessionConflictError            SESSION_CONFLICT       .session_id .expected .actual
    ├── TransactionError                TRANSACTION_ERROR      .transaction_id .conflicts
    ├── InvalidInputError               INVALID_INPUT          + ValueError
    │   ├── InvalidSessionIdError       INVALID_SESSION_ID     .session_id
    │   ├── InvalidUpdateError          INVALID_UPDATE         .fields
    │   ├── SerializationError          SERIALIZATION_ERROR    .path
    │   └── SessionTooLargeError        SESSION_TOO_LARGE      .size .limit
    ├── SessionLimitError               SESSION_LIMIT          .limit
    ├── ConfigurationError              INVALID_CONFIG         .option   + ValueError
    ├── StoreClosedError                STORE_CLOSED
    ├── StoreCorruptionError            STORE_CORRUPTION       .path
    ├── StoreIOError                    STORE_IO_ERROR         .path     + OSError
    ├── StoreLockTimeoutError           LOCK_TIMEOUT           + TimeoutError
    ├── StoreReadOnlyError              READ_ONLY
    ├── SealingKeyError                 SEALING_KEY            .key_id
    │   └── UnsealedRecordError         UNSEALED_RECORD
    ├── BackupError                     BACKUP_ERROR           .backup_id
    ├── MigrationError                  MIGRATION_FAILED       .target
    └── UnsavedChangesError             UNSAVED_CHANGES        .session_ids

This module imports nothing else from the package, so every other module may import it.

All errors pickle (their constructor arguments are kept in ``args`` order by ``__reduce__``), so
they cross process boundaries intact, e.g. from a worker process or a ``concurrent.futures`` pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "BackupError",
    "ConfigurationError",
    "InvalidInputError",
    "InvalidSessionIdError",
    "InvalidUpdateError",
    "MigrationError",
    "SealingKeyError",
    "SerializationError",
    "SessionConflictError",
    "SessionExistsError",
    "SessionLimitError",
    "SessionNotFoundError",
    "SessionStoreError",
    "SessionTooLargeError",
    "StoreClosedError",
    "StoreCorruptionError",
    "StoreIOError",
    "StoreLockTimeoutError",
    "StoreReadOnlyError",
    "TransactionError",
    "UnsavedChangesError",
    "UnsealedRecordError",
]


class SessionStoreError(Exception):
    """Root of every error raised by session-persistence.

    Attributes:
        code: A stable, machine-readable identifier of the error kind (``"SESSION_CONFLICT"``).
        message: The human-readable message; it says what went wrong and what to do.
    """

    code: str = "STORE_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def _reduce_args(self) -> tuple[Any, ...]:
        return (self.message,)

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions pickle as ``cls(*self.args)``; ours have richer constructors, so each
        # class names the positional arguments that rebuild it, and ``__dict__`` restores the
        # keyword-only attributes.
        return (self.__class__, self._reduce_args(), self.__dict__.copy())

    def __str__(self) -> str:
        return self.message


class SessionNotFoundError(SessionStoreError, LookupError):
    """The session does not exist, or has expired and is therefore invisible.

    Attributes:
        session_id: The id that was looked up.
    """

    code = "SESSION_NOT_FOUND"

    def __init__(self, session_id: str, message: str | None = None) -> None:
        self.session_id = session_id
        super().__init__(message or f"session {session_id!r} not found (it may have expired)")

    def _reduce_args(self) -> tuple[Any, ...]:
        return (self.session_id, self.message)


class SessionExistsError(SessionStoreError):
    """A session with this id already exists.

    Attributes:
        session_id: The id that is taken.
    """

    code = "SESSION_EXISTS"

    def __init__(self, session_id: str, message: str | None = None) -> None:
        self.session_id = session_id
        super().__init__(message or f"session {session_id!r} already exists")

    def _reduce_args(self) -> tuple[Any, ...]:
        return (self.session_id, self.message)


class SessionConflictError(SessionStoreError):
    """The stored version differs from the version the caller expected; nothing was changed.

    Re-read the session and retry the change against its current version.

    Attributes:
        session_id: The session whose version did not match.
        expected: The version the caller expected (``None``: expected the session to be absent).
        actual: The version actually stored (``None``: the session does not exist).
    """

    code = "SESSION_CONFLICT"

    def __init__(
        self,
        session_id: str,
        expected: int | None,
        actual: int | None,
        message: str | None = None,
    ) -> None:
        self.session_id = session_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            message
            or (
                f"version conflict on session {session_id!r}: expected version "
                f"{_version_text(expected)}, found {_version_text(actual)}; "
                "re-read the session and retry"
            )
        )

    def _reduce_args(self) -> tuple[Any, ...]:
        return (self.session_id, self.expected, self.actual, self.message)


def _version_text(version: int | None) -> str:
    return "<absent>" if version is None else str(version)


class TransactionError(SessionStoreError):
    """A transaction could not commit, or was used after it finished; nothing was applied.

    When caused by concurrent changes, ``__cause__`` is a :class:`SessionConflictError` and
    ``conflicts`` lists the ids of the sessions that changed.

    Attributes:
        transaction_id: The id of the transaction (a ULID string), if known.
        conflicts: Ids of sessions whose versions changed under the transaction.
    """

    code = "TRANSACTION_ERROR"

    def __init__(
        self,
        message: str,
        *,
        transaction_id: str | None = None,
        conflicts: Sequence[str] = (),
    ) -> None:
        self.transaction_id = transaction_id
        self.conflicts = list(conflicts)
        super().__init__(message)


class InvalidInputError(SessionStoreError, ValueError):
    """An argument was rejected before anything was changed."""

    code = "INVALID_INPUT"


class InvalidSessionIdError(InvalidInputError):
    """A session id is not a ULID nor ``[A-Za-z0-9_-]{1,128}``.

    Ids are checked wherever they enter (API, files, backups, imports), so no input can name a
    path outside the store.

    Attributes:
        session_id: The rejected value (shortened in the message when long).
    """

    code = "INVALID_SESSION_ID"

    def __init__(self, session_id: object, message: str | None = None) -> None:
        self.session_id = session_id
        shown = repr(session_id)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(
            message
            or f"invalid session id {shown}: use a ULID or 1-128 characters of [A-Za-z0-9_-]"
        )

    def _reduce_args(self) -> tuple[Any, ...]:
        return (self.session_id, self.message)


class InvalidUpdateError(InvalidInputError):
    """An update named a field that cannot be changed, or gave a value of the wrong type.

    Attributes:
        fields: The offending field names.
    """

    code = "INVALID_UPDATE"

    def __init__(self, message: str, *, fields: Sequence[str] = ()) -> None:
        self.fields = list(fields)
        super().__init__(message)


class SerializationError(InvalidInputError):
    """A value cannot be serialized (or a stored document cannot be decoded).

    Raised before anything is written.

    Attributes:
        path: Where the value sits inside the session, e.g.
            ``"interactions[3].request.event.payload"`` (empty when not known).
    """

    code = "SERIALIZATION_ERROR"

    def __init__(self, message: str, path: str = "") -> None:
        self.path = path
        super().__init__(f"{message} at {path}" if path else message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.message} at {self.path}" if self.path else self.message

    def _reduce_args(self) -> tuple[Any, ...]:
        return (self.message, self.path)


class SessionTooLargeError(InvalidInputError):
    """The encoded session would exceed ``max_session_bytes``; nothing was written.

    Attributes:
        session_id: The session concerned, if it has an id yet.
        size: The encoded size in bytes.
        limit: The configured limit in bytes.
    """

    code = "SESSION_TOO_LARGE"

    def __init__(self, session_id: str | None, size: int, limit: int) -> None:
        self.session_id = session_id
        self.size = size
        self.limit = limit
        super().__init__(
            f"session {session_id or '<new>'} would be {size} bytes encoded, over the "
            f"max_session_bytes limit of {limit}; store less, or raise the limit"
        )

    def _reduce_args(self) -> tuple[Any, ...]:
        return (self.session_id, self.size, self.limit)


class SessionLimitError(SessionStoreError):
    """The store holds ``max_sessions`` live sessions, even after removing expired ones.

    Attributes:
        limit: The configured ``max_sessions``.
    """

    code = "SESSION_LIMIT"

    def __init__(self, limit: int, message: str | None = None) -> None:
        self.limit = limit
        super().__init__(
            message
            or f"the store is full (max_sessions={limit}); delete sessions or raise the limit"
        )

    def _reduce_args(self) -> tuple[Any, ...]:
        return (self.limit, self.message)


class ConfigurationError(SessionStoreError, ValueError):
    """A configuration option has an invalid value.

    Attributes:
        option: The name of the offending option.
    """

    code = "INVALID_CONFIG"

    def __init__(self, option: str, detail: str) -> None:
        self.option = option
        self.detail = detail
        super().__init__(f"invalid configuration option {option!r}: {detail}")

    def _reduce_args(self) -> tuple[Any, ...]:
        return (self.option, self.detail)


class StoreClosedError(SessionStoreError):
    """The store is not initialized, or has been shut down."""

    code = "STORE_CLOSED"

    def __init__(self, message: str = "the store is not open: call initialize() first") -> None:
        super().__init__(message)


class StoreCorruptionError(SessionStoreError):
    """A stored file failed its checksum, its parse, or its validation.

    Attributes:
        path: The file concerned, when there is one.
    """

    code = "STORE_CORRUPTION"

    def __init__(self, message: str, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)

    def _reduce_args(self) -> tuple[Any, ...]:
        return (self.message, self.path)


class StoreIOError(SessionStoreError, OSError):
    """Reading or writing the storage failed (disk full, I/O error, permission denied).

    The cause is kept as ``__cause__``. A failed write was not acknowledged; everything that
    was acknowledged before it is intact.

    Attributes:
        path: The file concerned, when there is one.
    """

    code = "STORE_IO_ERROR"

    def __init__(self, message: str, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)

    def _reduce_args(self) -> tuple[Any, ...]:
        return (self.message, self.path)


class StoreLockTimeoutError(SessionStoreError, TimeoutError):
    """The store's cross-process lock could not be obtained in time."""

    code = "LOCK_TIMEOUT"


class StoreReadOnlyError(SessionStoreError):
    """The store was opened read-only (to inspect it) and was asked to change something."""

    code = "READ_ONLY"


class SealingKeyError(SessionStoreError):
    """A sealed record needs a key the store was not given, or was given a different secret.

    Nothing was changed and nothing was quarantined: the record is intact, only unreadable
    with these keys. Add the key to the store's :class:`~session_persistence.sealing.Keyring`
    (or ``SESSION_STORE_KEYS``) and retry.

    Attributes:
        key_id: The id of the key the record names (``None``: the store has no keyring).
    """

    code = "SEALING_KEY"

    def __init__(self, message: str, key_id: str | None = None) -> None:
        self.key_id = key_id
        super().__init__(message)

    def _reduce_args(self) -> tuple[Any, ...]:
        return (self.message, self.key_id)


class UnsealedRecordError(SealingKeyError):
    """A store that seals everything found a record in clear (or only compressed).

    Anyone who can write the store's files or rows could have planted it, so it is not
    returned; it is not damage either (nothing is quarantined): a store written before sealing
    was turned on holds such records. To seal those, open the store with
    ``Keyring(..., accept_unsealed=True)``, run ``rotate_key()``, then drop the flag.
    """

    code = "UNSEALED_RECORD"

    def __init__(self, message: str, key_id: str | None = None) -> None:
        super().__init__(message, key_id)


class BackupError(SessionStoreError):
    """A backup could not be written, read, verified or restored; nothing was changed.

    Attributes:
        backup_id: The backup concerned, when known.
    """

    code = "BACKUP_ERROR"

    def __init__(self, message: str, backup_id: str | None = None) -> None:
        self.backup_id = backup_id
        super().__init__(message)

    def _reduce_args(self) -> tuple[Any, ...]:
        return (self.message, self.backup_id)


class MigrationError(SessionStoreError):
    """Switching a manager to another store failed; the manager still uses the old store.

    The old store was only read, so it is unchanged; what had been copied into the new store
    was removed again.

    Attributes:
        target: Where the sessions were being copied to.
    """

    code = "MIGRATION_FAILED"

    def __init__(self, message: str, target: str | None = None) -> None:
        self.target = target
        super().__init__(message)

    def _reduce_args(self) -> tuple[Any, ...]:
        return (self.message, self.target)


class UnsavedChangesError(SessionStoreError):
    """Some managed sessions could not be written at shutdown; their changes were not saved.

    Attributes:
        session_ids: The sessions whose changes were lost (``"(new)"`` for never-saved ones).
    """

    code = "UNSAVED_CHANGES"

    def __init__(self, message: str, session_ids: Sequence[str] = ()) -> None:
        self.session_ids = list(session_ids)
        super().__init__(message)

    def _reduce_args(self) -> tuple[Any, ...]:
        return (self.message, self.session_ids)
