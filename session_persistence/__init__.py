"""session-persistence: durable, async session persistence for agent and processor pipelines.

Quick start::

    from ulid import ULID

    from session_persistence import InMemorySessionStore, SessionObject

    async with InMemorySessionStore() as store:
        session = await store.create_session(SessionObject("my-processor", ULID(), ULID()))
"""

from ._pydantic import register_pydantic
from ._version import __version__
from .config import SessionStoreConfig
from .errors import (
    BackupError,
    ConfigurationError,
    InvalidInputError,
    InvalidSessionIdError,
    InvalidUpdateError,
    MigrationError,
    SealingKeyError,
    SerializationError,
    SessionConflictError,
    SessionExistsError,
    SessionLimitError,
    SessionNotFoundError,
    SessionStoreError,
    SessionTooLargeError,
    StoreClosedError,
    StoreCorruptionError,
    StoreIOError,
    StoreLockTimeoutError,
    StoreReadOnlyError,
    TransactionError,
    UnsavedChangesError,
    UnsealedRecordError,
)
from .manager import BulkUpdateResult, ManagerStats, SessionPersistenceManager, SessionSummary
from .manager_config import SessionPersistenceConfig
from .models import (
    UNSET,
    BackupInfo,
    BackupOptions,
    CheckProblem,
    CheckReport,
    HealthStatus,
    Interaction,
    InteractionMessage,
    OptimizeResult,
    PersistedSession,
    RestoreOptions,
    RestoreResult,
    SessionBackup,
    SessionFilter,
    SessionHeader,
    SessionObject,
    SessionQueryOptions,
    SessionUpdate,
    StoreStats,
)
from .sealing import Compression, Key, Keyring, KeyStatus, RotationReport
from .serialization import Codec, register_dataclass, register_enum, register_type
from .session import DefaultSession
from .stores import (
    FileSystemSessionStore,
    InMemorySessionStore,
    SessionStore,
    SQLiteSessionStore,
)
from .transactions import Transaction

__all__ = [
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
