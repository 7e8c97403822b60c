"""Opening the store a manager's configuration names, and copying sessions between stores."""

from __future__ import annotations

import contextlib
import os
import tempfile

from .config import Durability, SessionStoreConfig
from .errors import ConfigurationError, MigrationError
from .manager_config import SessionPersistenceConfig
from .models import ProgressCallback, RestoreOptions, SessionFilter
from .stores import FileSystemSessionStore, InMemorySessionStore, SQLiteSessionStore
from .stores.base import SessionStore

__all__ = ["copy_sessions", "open_configured_store", "postgres_store", "store_changed"]


def postgres_store(
    dsn: str | None, config: SessionStoreConfig, *, durability: Durability, watch: bool = True
) -> SessionStore:
    """A ``PostgresSessionStore`` (imported here: psycopg is the optional ``postgres`` extra).

    Raises:
        ConfigurationError: The ``postgres`` extra is not installed.
    """
    try:
        from .stores.postgres import PostgresSessionStore  # noqa: PLC0415 (optional extra)
    except ImportError as exc:
        raise ConfigurationError(
            "store_type",
            f"'postgres' needs the postgres extra: pip install 'session-persistence[postgres]' "
            f"({exc})",
        ) from exc
    return PostgresSessionStore(dsn, config, durability=durability, watch=watch)


def store_changed(old: SessionPersistenceConfig, new: SessionPersistenceConfig) -> bool:
    """Whether switching from ``old`` to ``new`` means another store (and a migration)."""
    if old.store_type != new.store_type:
        return True
    if new.store_type == "custom":
        return old.custom_store is not new.custom_store
    if new.store_type == "memory":
        return old.effective_store_config() != new.effective_store_config()
    if new.store_type == "postgres":
        return (
            old.postgres_dsn != new.postgres_dsn
            or old.effective_store_config() != new.effective_store_config()
            or old.durability != new.durability
        )
    return (
        os.path.realpath(old.store_location()) != os.path.realpath(new.store_location())
        or old.effective_store_config() != new.effective_store_config()
        or old.durability != new.durability
    )


async def open_configured_store(config: SessionPersistenceConfig) -> tuple[SessionStore, bool]:
    """Build and open the store ``config`` names; return it and whether we own it."""
    store: SessionStore
    if config.store_type == "custom":
        assert config.custom_store is not None  # validated by the config
        store = config.custom_store
        if store.is_initialized:
            return store, False
        await store.initialize()
        return store, True
    store_config = config.effective_store_config()
    if config.store_type == "memory":
        store = InMemorySessionStore(store_config)
    elif config.store_type == "sqlite":
        store = SQLiteSessionStore(config.sqlite_path, store_config, durability=config.durability)
    elif config.store_type == "postgres":
        store = postgres_store(config.postgres_dsn, store_config, durability=config.durability)
    else:
        store = FileSystemSessionStore(
            config.filesystem_base_dir, store_config, durability=config.durability
        )
    await store.initialize()
    return store, True


async def copy_sessions(
    source: SessionStore,
    target: SessionStore,
    target_name: str | None = None,
    *,
    export_progress: ProgressCallback | None = None,
    import_progress: ProgressCallback | None = None,
) -> int:
    """Copy every session (expired ones too) from ``source`` into the empty ``target``.

    Streams through a temporary JSON Lines export, so memory stays flat; ids, versions and
    timestamps are kept. Afterwards the target's count must equal the number exported. On
    failure, what was copied is deleted again and :class:`MigrationError` is raised; the
    source is only read. Returns how many sessions were copied.

    Args:
        source: The store to copy from (open).
        target: The store to copy into (open and empty).
        target_name: How messages name the target (default: its type).
        export_progress: ``progress(done, total)`` while the source is exported.
        import_progress: ``progress(done, total)`` while the target is written.

    Raises:
        MigrationError: The target is not empty, or copying failed or came out short.
    """
    target_name = target_name or target.store_type
    everything = SessionFilter(include_expired=True)
    existing = await target.count_sessions(everything)
    if existing:
        raise MigrationError(
            f"{target_name} already holds {existing} session(s); migrate into an empty store",
            target_name,
        )
    try:
        with tempfile.TemporaryDirectory(prefix="session-migration-") as folder:
            path = os.path.join(folder, "sessions.jsonl")
            exported = await source.export_sessions(path, everything, progress=export_progress)
            result = await target.import_sessions(path, RestoreOptions(), progress=import_progress)
        copied = await target.count_sessions(everything)
        if result.restored_count != exported or copied != exported:
            raise MigrationError(
                f"copied {copied} of {exported} session(s) into {target_name}",
                target_name,
            )
    except Exception as error:
        with contextlib.suppress(Exception):
            async for session in target.iter_sessions(everything):
                await target.delete_session(session.session_id)
        if isinstance(error, MigrationError):
            raise
        raise MigrationError(
            f"migrating into {target_name} failed: {error}; the source is unchanged and what "
            "was copied has been removed again",
            target_name,
        ) from error
    return exported
