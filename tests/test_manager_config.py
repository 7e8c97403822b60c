"""SessionPersistenceConfig: validation, overrides, and from_env with every variable."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from session_persistence import (
    ConfigurationError,
    InMemorySessionStore,
    SessionPersistenceConfig,
    SessionStoreConfig,
)
from session_persistence.manager_config import ENVIRONMENT_VARIABLES
from session_persistence.sealing import Compression, Key, Keyring


def test_defaults_are_the_filesystem_store_with_auto_persistence() -> None:
    """The default config names the filesystem store in ./session_data, persisting."""
    config = SessionPersistenceConfig()
    assert config.store_type == "filesystem"
    assert config.store_location() == "./session_data"
    assert config.auto_persist_enabled
    assert config.auto_persist_on_interaction
    assert config.effective_store_config() == SessionStoreConfig()


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("store_type", "mongodb"),
        ("postgres_dsn", 5),
        ("store_config", {"max_sessions": 3}),
        ("filesystem_base_dir", ""),
        ("sqlite_path", 7),
        ("durability", "eventual"),
        ("auto_persist_enabled", "yes"),
        ("auto_persist_interval", 0),
        ("auto_persist_interval", float("inf")),
        ("auto_persist_on_interaction", 1),
        ("auto_persist_delay", -1),
        ("auto_persist_delay", "soon"),
        ("default_session_ttl", -5),
        ("auto_cleanup_enabled", "on"),
        ("cleanup_interval", timedelta(0)),
        ("enable_event_listeners", None),
        ("expiry_mode", "rolling"),
        ("recreate_expired", "yes"),
        ("custom_store", InMemorySessionStore()),
    ],
)
def test_invalid_option_names_itself(option: str, value: Any) -> None:
    """Each invalid value raises ConfigurationError (INVALID_CONFIG) naming the option."""
    with pytest.raises(ConfigurationError) as caught:
        SessionPersistenceConfig(**{option: value})
    assert caught.value.option == option
    assert caught.value.code == "INVALID_CONFIG"


def test_custom_store_rules() -> None:
    """'custom' needs a store instance and keeps the store's own config."""
    with pytest.raises(ConfigurationError, match="custom_store"):
        SessionPersistenceConfig(store_type="custom")
    store = InMemorySessionStore()
    options: list[tuple[str, Any]] = [
        ("store_config", SessionStoreConfig()),
        ("default_session_ttl", 5.0),
        ("auto_cleanup_enabled", True),
        ("cleanup_interval", 5.0),
    ]
    for option, value in options:
        with pytest.raises(ConfigurationError) as caught:
            SessionPersistenceConfig(store_type="custom", custom_store=store, **{option: value})
        assert caught.value.option == option
    config = SessionPersistenceConfig(store_type="custom", custom_store=store)
    assert "InMemorySessionStore" in config.store_location()
    with pytest.raises(ConfigurationError):
        config.effective_store_config()


def test_manager_level_options_override_the_store_config() -> None:
    """default_session_ttl, auto_cleanup_enabled and cleanup_interval win over store_config."""
    base = SessionStoreConfig(default_session_ttl=60, auto_cleanup_enabled=False, max_sessions=9)
    config = SessionPersistenceConfig(
        store_config=base,
        default_session_ttl=None,
        auto_cleanup_enabled=True,
        cleanup_interval=timedelta(seconds=5),
    )
    effective = config.effective_store_config()
    assert effective.default_session_ttl is None
    assert effective.auto_cleanup_enabled is True
    assert effective.cleanup_interval == timedelta(seconds=5)
    assert effective.max_sessions == 9
    assert SessionPersistenceConfig(store_config=base).effective_store_config() == base


def test_replace_validates_and_refuses_unknown_options() -> None:
    """replace() builds a validated copy; an unknown name is an error, not ignored."""
    config = SessionPersistenceConfig().replace(store_type="sqlite", sqlite_path="x.db")
    assert config.store_location() == "x.db"
    with pytest.raises(ConfigurationError) as caught:
        config.replace(store_typo="memory")
    assert caught.value.option == "store_typo"
    with pytest.raises(ConfigurationError):
        config.replace(auto_persist_interval=-1)


# One sample per variable: (raw value, the option it sets, the value expected).
SAMPLES: dict[str, tuple[str, str, Any]] = {
    "SESSION_STORE_TYPE": ("sqlite", "store_type", "sqlite"),
    "SESSION_FILESYSTEM_BASE_DIR": ("/srv/sessions", "filesystem_base_dir", "/srv/sessions"),
    "SESSION_SQLITE_PATH": ("/srv/s.db", "sqlite_path", "/srv/s.db"),
    "SESSION_STORE_PATH": ("/data/s.db", "sqlite_path", "/data/s.db"),  # with TYPE=sqlite
    "SESSION_STORE_DSN": ("dbname=s", "postgres_dsn", "dbname=s"),
    "SESSION_DURABILITY": ("process", "durability", "process"),
    "SESSION_AUTO_PERSIST_ENABLED": ("false", "auto_persist_enabled", False),
    "SESSION_AUTO_PERSIST_INTERVAL": ("2.5", "auto_persist_interval", 2.5),
    "SESSION_AUTO_PERSIST_ON_INTERACTION": ("no", "auto_persist_on_interaction", False),
    "SESSION_AUTO_PERSIST_DELAY": ("0", "auto_persist_delay", 0.0),
    "SESSION_DEFAULT_SESSION_TTL": ("none", "default_session_ttl", None),
    "SESSION_AUTO_CLEANUP_ENABLED": ("1", "auto_cleanup_enabled", True),
    "SESSION_CLEANUP_INTERVAL": ("15", "cleanup_interval", 15.0),
    "SESSION_ENABLE_EVENT_LISTENERS": ("off", "enable_event_listeners", False),
    "SESSION_EXPIRY_MODE": ("fixed", "expiry_mode", "fixed"),
    "SESSION_RECREATE_EXPIRED": ("false", "recreate_expired", False),
    "SESSION_STORE_EXPIRY_MODE": ("fixed", "store_config.expiry_mode", "fixed"),
    "SESSION_STORE_DEFAULT_SESSION_TTL": ("120", "store_config.default_session_ttl", 120.0),
    "SESSION_STORE_IDLE_TIMEOUT": ("30", "store_config.idle_timeout", 30.0),
    "SESSION_STORE_MAX_SESSIONS": ("1000", "store_config.max_sessions", 1000),
    "SESSION_STORE_MAX_SESSION_BYTES": ("4096", "store_config.max_session_bytes", 4096),
    "SESSION_STORE_AUTO_CLEANUP_ENABLED": ("yes", "store_config.auto_cleanup_enabled", True),
    "SESSION_STORE_CLEANUP_INTERVAL": ("7", "store_config.cleanup_interval", 7.0),
    "SESSION_STORE_HEALTH_ERROR_WINDOW": ("90", "store_config.health_error_window", 90.0),
    "SESSION_STORE_HEALTH_ERROR_THRESHOLD": ("3", "store_config.health_error_threshold", 3),
    "SESSION_STORE_BACKUP_ENABLED": ("true", "store_config.backup_enabled", True),
    "SESSION_STORE_BACKUP_INTERVAL": ("600", "store_config.backup_interval", 600.0),
    "SESSION_STORE_MAX_BACKUPS": ("none", "store_config.max_backups", None),
    "SESSION_STORE_BACKUP_DIR": ("/backups", "store_config.backup_dir", "/backups"),
    "SESSION_STORE_BACKUP_COMPRESS": ("on", "store_config.backup_compress", True),
    "SESSION_STORE_RESTORE_BATCH_SIZE": ("50", "store_config.restore_batch_size", 50),
    "SESSION_STORE_COMPRESSION": ("zlib", "store_config.compression", Compression("zlib")),
    "SESSION_STORE_KEYS": (
        Key("k1", bytes(32)).encoded(),
        "store_config.encryption",
        Keyring(Key("k1", bytes(32))),
    ),
}


def _option(config: SessionPersistenceConfig, dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def test_every_variable_has_a_sample() -> None:
    """The samples below cover every variable from_env reads (a new one needs a test)."""
    assert set(SAMPLES) == set(ENVIRONMENT_VARIABLES)


@pytest.mark.parametrize("variable", sorted(SAMPLES))
def test_from_env_reads_each_variable(variable: str) -> None:
    """Each variable sets its option, parsed to the option's type."""
    raw, option, expected = SAMPLES[variable]
    environ = {variable: raw}
    if variable == "SESSION_STORE_PATH":
        environ["SESSION_STORE_TYPE"] = "sqlite"
    config = SessionPersistenceConfig.from_env(environ)
    assert _option(config, option) == expected


def test_store_path_follows_the_store_type() -> None:
    """SESSION_STORE_PATH is the directory of a filesystem store, the file of a SQLite one."""
    config = SessionPersistenceConfig.from_env({"SESSION_STORE_PATH": "./here"})
    assert config.store_type == "filesystem"
    assert config.filesystem_base_dir == "./here"
    config = SessionPersistenceConfig.from_env(
        {"SESSION_STORE_TYPE": "sqlite", "SESSION_STORE_PATH": "./data/s.db"}
    )
    assert config.sqlite_path == "./data/s.db"
    memory = SessionPersistenceConfig.from_env(
        {"SESSION_STORE_TYPE": "memory", "SESSION_STORE_PATH": "./ignored"}
    )
    assert memory.store_type == "memory"
    assert memory.filesystem_base_dir == "./session_data"


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("SESSION_STORE_TYPE", "mongo"),
        ("SESSION_AUTO_PERSIST_ENABLED", "maybe"),
        ("SESSION_AUTO_PERSIST_INTERVAL", "soon"),
        ("SESSION_AUTO_PERSIST_INTERVAL", "-3"),
        ("SESSION_STORE_MAX_SESSIONS", "1.5"),
        ("SESSION_STORE_MAX_SESSIONS", "0"),
        ("SESSION_STORE_IDLE_TIMEOUT", "forever"),
        ("SESSION_STORE_PATH", ""),
        ("SESSION_DURABILITY", "weak"),
    ],
)
def test_from_env_errors_name_the_variable(variable: str, raw: str) -> None:
    """A bad value raises ConfigurationError naming the variable, so it can be found."""
    with pytest.raises(ConfigurationError) as caught:
        SessionPersistenceConfig.from_env({variable: raw})
    assert caught.value.option == variable


def test_from_env_refuses_unknown_store_variables_and_lets_code_win(tmp_path: Path) -> None:
    """A misspelt SESSION_STORE_* variable is an error; overrides beat the environment."""
    with pytest.raises(ConfigurationError) as caught:
        SessionPersistenceConfig.from_env({"SESSION_STORE_MAX_SESION": "3"})
    assert caught.value.option == "SESSION_STORE_MAX_SESION"
    config = SessionPersistenceConfig.from_env(
        {"SESSION_STORE_TYPE": "sqlite", "SESSION_STORE_PATH": str(tmp_path / "s.db")},
        store_type="filesystem",
        auto_persist_delay=0.5,
    )
    assert config.store_type == "filesystem"
    assert config.filesystem_base_dir == str(tmp_path / "s.db")
    assert config.auto_persist_delay == 0.5
    with pytest.raises(ConfigurationError) as caught:
        SessionPersistenceConfig.from_env({}, auto_persist_delay=-1)
    assert caught.value.option == "auto_persist_delay"


def test_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a mapping, from_env reads the process environment."""
    monkeypatch.setenv("SESSION_STORE_TYPE", "memory")
    assert SessionPersistenceConfig.from_env().store_type == "memory"


def test_sealing_comes_from_session_store_keys_and_compression() -> None:
    """SESSION_STORE_KEYS gives the store a keyring (first key active); COMPRESSION an algorithm."""
    k1, k2 = Key("k1", bytes(range(32))), Key("k2", bytes(range(32, 64)))
    environ = {
        "SESSION_STORE_KEYS": f"{k2.encoded()},{k1.encoded()}",
        "SESSION_STORE_COMPRESSION": "zstd",
    }
    config = SessionPersistenceConfig.from_env(environ)
    assert config.store_config.encryption == Keyring(k2, k1)
    assert config.store_config.compression == Compression("zstd")
    none = SessionPersistenceConfig.from_env({"SESSION_STORE_COMPRESSION": "none"})
    assert none.store_config.compression is None
    with pytest.raises(ConfigurationError, match="SESSION_STORE_KEYS"):
        SessionPersistenceConfig.from_env({"SESSION_STORE_KEYS": "k1"})
    with pytest.raises(ConfigurationError, match="SESSION_STORE_COMPRESSION"):
        SessionPersistenceConfig.from_env({"SESSION_STORE_COMPRESSION": "lz4"})
