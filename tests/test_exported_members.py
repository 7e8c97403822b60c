"""The public API is exactly what __all__ says, sorted, and every name exists."""

from __future__ import annotations

import session_persistence
import session_persistence.testing


def test_all_is_pinned() -> None:
    """The top-level exports change only on purpose."""
    assert session_persistence.__all__ == [
        "UNSET",
        "BackupError",
        "BackupInfo",
        "BackupOptions",
        "BulkUpdateResult",
        "CheckProblem",
        "CheckReport",
        "Codec",
        "Compression",
        "ConfigurationError",
        "DefaultSession",
        "FileSystemSessionStore",
        "HealthStatus",
        "InMemorySessionStore",
        "Interaction",
        "InteractionMessage",
        "InvalidInputError",
        "InvalidSessionIdError",
        "InvalidUpdateError",
        "Key",
        "KeyStatus",
        "Keyring",
        "ManagerStats",
        "MigrationError",
        "OptimizeResult",
        "PersistedSession",
        "RestoreOptions",
        "RestoreResult",
        "RotationReport",
        "SQLiteSessionStore",
        "SealingKeyError",
        "SerializationError",
        "SessionBackup",
        "SessionConflictError",
        "SessionExistsError",
        "SessionFilter",
        "SessionHeader",
        "SessionLimitError",
        "SessionNotFoundError",
        "SessionObject",
        "SessionPersistenceConfig",
        "SessionPersistenceManager",
        "SessionQueryOptions",
        "SessionStore",
        "SessionStoreConfig",
        "SessionStoreError",
        "SessionSummary",
        "SessionTooLargeError",
        "SessionUpdate",
        "StoreClosedError",
        "StoreCorruptionError",
        "StoreIOError",
        "StoreLockTimeoutError",
        "StoreReadOnlyError",
        "StoreStats",
        "Transaction",
        "TransactionError",
        "UnsavedChangesError",
        "UnsealedRecordError",
        "__version__",
        "register_dataclass",
        "register_enum",
        "register_pydantic",
        "register_type",
    ]


def test_every_exported_name_exists_and_is_documented() -> None:
    """Each exported object exists, and public classes and functions have docstrings."""
    for module in (session_persistence, session_persistence.testing):
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type) or callable(obj):
                assert obj.__doc__, f"{module.__name__}.{name} has no docstring"
