"""Manager configuration: :class:`SessionPersistenceConfig`, and ``from_env``.

Every option has an effect; invalid values raise
:class:`~session_persistence.errors.ConfigurationError` naming the option, at construction.

Environment variables (:meth:`SessionPersistenceConfig.from_env`) follow two rules, so every
option has exactly one name:

- a manager option ``x`` is ``SESSION_X`` (``SESSION_STORE_TYPE``,
  ``SESSION_AUTO_PERSIST_INTERVAL``, ...);
- a store option ``y`` of :class:`~session_persistence.config.SessionStoreConfig` is
  ``SESSION_STORE_Y`` (``SESSION_STORE_MAX_SESSIONS``, ...);

plus ``SESSION_STORE_PATH``, the filesystem directory or SQLite file of the chosen store type.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, get_args

from .config import Durability, Duration, ExpiryMode, SessionStoreConfig, _duration, seconds
from .errors import ConfigurationError
from .models import UNSET, Unset
from .sealing import Keyring
from .stores.base import SessionStore

__all__ = ["ENVIRONMENT_VARIABLES", "SessionPersistenceConfig", "StoreType"]

#: The stores a manager can open itself (``"custom"``: the instance in ``custom_store``).
StoreType: TypeAlias = Literal["memory", "filesystem", "sqlite", "postgres", "custom"]

_STORE_TYPES: tuple[str, ...] = get_args(StoreType)
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_NONE = frozenset({"", "none", "null"})


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionPersistenceConfig:
    """How a :class:`~session_persistence.SessionPersistenceManager` stores and persists.

    Attributes:
        store_type: ``"filesystem"`` (the default), ``"sqlite"``, ``"postgres"``,
            ``"memory"``, or ``"custom"`` with ``custom_store``.
        store_config: Options of the store (TTL, limits, cleanup, backups, health window).
            Not allowed with ``"custom"``: a custom store keeps the config it was built with.
        filesystem_base_dir: The filesystem store's directory (default ``./session_data``).
        sqlite_path: The SQLite store's database file (default ``./data/sessions.db``).
        postgres_dsn: The PostgreSQL store's connection string or URI
            (``postgresql://user@host/db``); ``None``: libpq's defaults and ``PG*`` variables.
            Needs the ``postgres`` extra.
        custom_store: A store instance, for ``store_type="custom"``. The manager opens it if
            it is not open yet, and closes it at shutdown only if it opened it.
        durability: What an acknowledged write of the filesystem, SQLite and PostgreSQL
            stores survives: ``"full"`` (power loss; the default) or ``"process"`` (a killed
            process; see each store's docs).
        auto_persist_enabled: Persist changed managed sessions in the background. Off, they
            are written by ``persist()``, ``persist_session()`` and ``shutdown()`` only.
        auto_persist_interval: How often the background flush writes every changed managed
            session and retries failed ones (default 30 s).
        auto_persist_on_interaction: Also persist a change promptly, ``auto_persist_delay``
            after it, rather than waiting for the next interval.
        auto_persist_delay: The debounce window: changes made within it after the first one
            are written together, as one store write (default 0.1 s).
        default_session_ttl: Overrides ``store_config.default_session_ttl`` (seconds or a
            timedelta; ``None``: sessions never expire). Left out: the store config's value.
        expiry_mode: Overrides ``store_config.expiry_mode``: ``"sliding"`` (the store's
            default: a session expires one TTL after its last write) or ``"fixed"``
            (``None``: keep).
        recreate_expired: A managed session whose record expired anyway (idle longer than
            its TTL, or a fixed expiry) is written back under the same id with its whole
            local history at its next persist, firing ``session_recreated`` and logging a
            warning, instead of failing with ``SessionNotFoundError`` (default on). Off, it
            goes to state ``"missing"``. A record deleted before it expired is never
            recreated: one that is gone is written back only if this manager saw it expire
            (``session_expired``, fired by cleanup in this process); one removed by another
            process's cleanup is not, and ``persist()`` raises ``SessionNotFoundError``.
        auto_cleanup_enabled: Overrides ``store_config.auto_cleanup_enabled`` (``None``: keep).
        cleanup_interval: Overrides ``store_config.cleanup_interval`` (``None``: keep).
        enable_event_listeners: Let the manager listen to store events: a managed session
            whose record is deleted or expires is flagged at once (its background persistence
            stops, see :class:`~session_persistence.DefaultSession`), and listeners can be
            registered with the manager's ``on_session_*`` methods. Off, those methods raise
            ``ConfigurationError`` and a lost record is found at the next write.
    """

    store_type: StoreType = "filesystem"
    store_config: SessionStoreConfig | None = None
    filesystem_base_dir: str | os.PathLike[str] = "./session_data"
    sqlite_path: str | os.PathLike[str] = "./data/sessions.db"
    postgres_dsn: str | None = None
    custom_store: SessionStore | None = field(default=None, compare=False)
    durability: Durability = "full"
    auto_persist_enabled: bool = True
    auto_persist_interval: Duration = 30.0
    auto_persist_on_interaction: bool = True
    auto_persist_delay: Duration = 0.1
    default_session_ttl: Duration | Unset | None = UNSET
    expiry_mode: ExpiryMode | None = None
    recreate_expired: bool = True
    auto_cleanup_enabled: bool | None = None
    cleanup_interval: Duration | None = None
    enable_event_listeners: bool = True

    def __post_init__(self) -> None:
        if self.store_type not in _STORE_TYPES:
            raise ConfigurationError(
                "store_type", f"must be one of {', '.join(_STORE_TYPES)}; got {self.store_type!r}"
            )
        if self.store_type == "custom":
            if not isinstance(self.custom_store, SessionStore):
                raise ConfigurationError(
                    "custom_store", "store_type 'custom' needs a SessionStore instance"
                )
            for name in ("store_config", "default_session_ttl"):
                if getattr(self, name) not in (None, UNSET):
                    raise ConfigurationError(
                        name, "a custom store keeps its own config: pass it to the store"
                    )
            for name in ("auto_cleanup_enabled", "cleanup_interval", "expiry_mode"):
                if getattr(self, name) is not None:
                    raise ConfigurationError(
                        name, "a custom store keeps its own config: pass it to the store"
                    )
        elif self.custom_store is not None:
            raise ConfigurationError(
                "custom_store", f"is only used with store_type 'custom', not {self.store_type!r}"
            )
        if self.store_config is not None and not isinstance(self.store_config, SessionStoreConfig):
            raise ConfigurationError("store_config", "must be a SessionStoreConfig or None")
        for name in ("filesystem_base_dir", "sqlite_path"):
            value = getattr(self, name)
            if not isinstance(value, str | os.PathLike) or not os.fspath(value):
                raise ConfigurationError(name, f"must be a non-empty path, got {value!r}")
        if self.postgres_dsn is not None and not isinstance(self.postgres_dsn, str):
            raise ConfigurationError("postgres_dsn", "must be a connection string or None")
        if self.durability not in ("full", "process"):
            raise ConfigurationError(
                "durability", f"must be 'full' or 'process', got {self.durability!r}"
            )
        for name in ("auto_persist_enabled", "auto_persist_on_interaction"):
            _boolean(name, getattr(self, name))
        _boolean("enable_event_listeners", self.enable_event_listeners)
        _boolean("recreate_expired", self.recreate_expired)
        if self.auto_cleanup_enabled is not None:
            _boolean("auto_cleanup_enabled", self.auto_cleanup_enabled)
        _duration("auto_persist_interval", self.auto_persist_interval, positive=True)
        _duration("auto_persist_delay", self.auto_persist_delay, positive=False)
        if seconds(self.auto_persist_delay) < 0:
            raise ConfigurationError("auto_persist_delay", "must not be negative")
        if self.default_session_ttl is not UNSET:
            _duration("default_session_ttl", self.default_session_ttl, optional=True, positive=True)
        _duration("cleanup_interval", self.cleanup_interval, optional=True, positive=True)
        if self.store_type != "custom":
            self.effective_store_config()  # the overrides must make a valid store config

    def effective_store_config(self) -> SessionStoreConfig:
        """The store config with this config's overrides applied.

        Raises:
            ConfigurationError: For a custom store, whose config is its own.
        """
        if self.store_type == "custom":
            raise ConfigurationError("store_config", "a custom store keeps its own config")
        changes: dict[str, Any] = {}
        if not isinstance(self.default_session_ttl, Unset):
            changes["default_session_ttl"] = self.default_session_ttl
        if self.expiry_mode is not None:
            changes["expiry_mode"] = self.expiry_mode
        if self.auto_cleanup_enabled is not None:
            changes["auto_cleanup_enabled"] = self.auto_cleanup_enabled
        if self.cleanup_interval is not None:
            changes["cleanup_interval"] = self.cleanup_interval
        return dataclasses.replace(self.store_config or SessionStoreConfig(), **changes)

    def store_location(self) -> str:
        """Where the chosen store lives: a directory, a database file, or a description."""
        if self.store_type == "filesystem":
            return os.fspath(self.filesystem_base_dir)
        if self.store_type == "sqlite":
            return os.fspath(self.sqlite_path)
        if self.store_type == "postgres":
            return redact_dsn(self.postgres_dsn or "(libpq defaults)")
        if self.store_type == "memory":
            return "(memory)"
        return f"(custom: {type(self.custom_store).__name__})"

    def replace(self, **changes: Any) -> SessionPersistenceConfig:
        """Return a copy with ``changes`` applied (validated like a new config).

        Raises:
            ConfigurationError: An unknown option or an invalid value.
        """
        names = {f.name for f in dataclasses.fields(self)}
        for name in changes:
            if name not in names:
                raise ConfigurationError(name, "is not an option of SessionPersistenceConfig")
        if changes.get("store_type", self.store_type) != "custom" and "custom_store" not in changes:
            changes["custom_store"] = None
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> SessionPersistenceConfig:
        """Build a config from environment variables (see :data:`ENVIRONMENT_VARIABLES`).

        Args:
            environ: Where to read them (default ``os.environ``).
            overrides: Options given in code; they win over the environment.

        Raises:
            ConfigurationError: A variable has an invalid value (the error names the
                variable), or an unknown ``SESSION_STORE_*`` variable is set (a typo would
                otherwise be ignored silently).
        """
        env = os.environ if environ is None else environ
        for variable in env:
            if variable.startswith("SESSION_STORE_") and variable not in ENVIRONMENT_VARIABLES:
                raise ConfigurationError(
                    variable,
                    "unknown variable; the known ones are listed in "
                    "docs/reference/configuration.md",
                )
        found: dict[str, dict[str, Any]] = {"manager": {}, "store": {}}
        origin: dict[str, dict[str, str]] = {"manager": {}, "store": {}}
        for variable, (target, name, kind) in ENVIRONMENT_VARIABLES.items():
            raw = env.get(variable)
            if raw is None:
                continue
            if variable == "SESSION_STORE_PATH":
                if not raw:
                    raise ConfigurationError(variable, "must not be empty")
                store_type = overrides.get("store_type", env.get("SESSION_STORE_TYPE", ""))
                if store_type.strip() == "memory":
                    continue  # an in-memory store has no path
                option = {"sqlite": "sqlite_path", "postgres": "postgres_dsn"}.get(
                    store_type.strip(), "filesystem_base_dir"
                )
                if option == "postgres_dsn" and "SESSION_STORE_DSN" in env:
                    continue  # SESSION_STORE_DSN names it
            elif variable == "SESSION_STORE_DSN" and not raw.strip():
                raise ConfigurationError(variable, "must not be empty")
            else:
                option = name
            found[target][option] = _parse(variable, raw, kind)
            origin[target][option] = variable
        options = found["manager"]
        if found["store"]:
            options["store_config"] = _build(SessionStoreConfig, found["store"], origin["store"])
        options.update(overrides)
        for name in overrides:
            origin["manager"].pop(name, None)
        config: SessionPersistenceConfig = _build(cls, options, origin["manager"])
        return config


def redact_dsn(dsn: str) -> str:
    """``dsn`` with any password replaced by ``***`` (for messages and listings)."""
    dsn = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", dsn)
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", dsn)


def _build(factory: Any, options: dict[str, Any], origin: Mapping[str, str]) -> Any:
    """Return ``factory(**options)``; an error about an option read from a variable names it."""
    try:
        return factory(**options)
    except ConfigurationError as error:
        variable = origin.get(error.option)
        if variable is None:
            raise
        raise ConfigurationError(variable, error.detail) from None


def _boolean(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigurationError(name, f"must be True or False, got {value!r}")


_Kind: TypeAlias = Literal[
    "str", "path", "bool", "int", "int?", "seconds", "seconds?", "keys", "compression"
]


def _parse(variable: str, raw: str, kind: _Kind) -> Any:
    text = raw.strip()
    if kind in ("str", "path"):
        return text
    if kind == "keys":  # ``<key_id>:<base64>,...``, the first the active key (sealing.py)
        try:
            return Keyring.parse(text, source=variable)
        except ConfigurationError as error:
            raise ConfigurationError(variable, error.detail) from None
    if kind == "compression":
        return None if text.lower() in _NONE else text
    lowered = text.lower()
    if kind.endswith("?") and lowered in _NONE:
        return None
    if kind == "bool":
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigurationError(variable, f"must be true or false (1/0, yes/no), got {raw!r}")
    try:
        number = int(text) if kind.startswith("int") else float(text)
    except ValueError:
        what = "an integer" if kind.startswith("int") else "a number of seconds"
        none = " or 'none'" if kind.endswith("?") else ""
        raise ConfigurationError(variable, f"must be {what}{none}, got {raw!r}") from None
    return number


def _variables() -> dict[str, tuple[str, str, _Kind]]:
    manager: dict[str, _Kind] = {
        "store_type": "str",
        "filesystem_base_dir": "path",
        "sqlite_path": "path",
        "durability": "str",
        "auto_persist_enabled": "bool",
        "auto_persist_interval": "seconds",
        "auto_persist_on_interaction": "bool",
        "auto_persist_delay": "seconds",
        "default_session_ttl": "seconds?",
        "expiry_mode": "str",
        "recreate_expired": "bool",
        "auto_cleanup_enabled": "bool",
        "cleanup_interval": "seconds",
        "enable_event_listeners": "bool",
    }
    store: dict[str, _Kind] = {
        "default_session_ttl": "seconds?",
        "expiry_mode": "str",
        "idle_timeout": "seconds?",
        "max_sessions": "int?",
        "max_session_bytes": "int",
        "auto_cleanup_enabled": "bool",
        "cleanup_interval": "seconds",
        "health_error_window": "seconds",
        "health_error_threshold": "int",
        "backup_enabled": "bool",
        "backup_interval": "seconds",
        "max_backups": "int?",
        "backup_dir": "path",
        "backup_compress": "bool",
        "restore_batch_size": "int",
        "compression": "compression",
    }
    table: dict[str, tuple[str, str, _Kind]] = {
        f"SESSION_{name.upper()}": ("manager", name, kind) for name, kind in manager.items()
    }
    table["SESSION_STORE_PATH"] = ("manager", "path", "path")
    table["SESSION_STORE_DSN"] = ("manager", "postgres_dsn", "str")
    table.update(
        {f"SESSION_STORE_{name.upper()}": ("store", name, kind) for name, kind in store.items()}
    )
    table["SESSION_STORE_KEYS"] = ("store", "encryption", "keys")
    return table


#: Every variable :meth:`SessionPersistenceConfig.from_env` reads:
#: ``{variable: ("manager" | "store", option, kind)}``.
ENVIRONMENT_VARIABLES: Mapping[str, tuple[str, str, _Kind]] = _variables()
