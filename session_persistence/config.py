"""Store configuration: :class:`SessionStoreConfig`.

Durations accept seconds (``float``) or :class:`~datetime.timedelta`. Invalid values raise
:class:`~session_persistence.errors.ConfigurationError` naming the option, at construction.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeAlias

from .errors import ConfigurationError
from .sealing import Compression, CompressionSetting, Keyring

__all__ = ["Clock", "Duration", "ExpiryMode", "SessionStoreConfig", "utc_now"]

#: A duration: seconds, or a timedelta.
Duration: TypeAlias = float | timedelta

#: A function returning the current time as a timezone-aware UTC datetime.
Clock: TypeAlias = Callable[[], datetime]

#: What a durable store's acknowledged write survives: ``"full"`` a power loss, ``"process"``
#: a killed process.
Durability: TypeAlias = Literal["full", "process"]

#: How a session whose expiry comes from ``default_session_ttl`` expires: ``"sliding"`` (every
#: write moves it to now + TTL) or ``"fixed"`` (TTL after creation).
ExpiryMode: TypeAlias = Literal["sliding", "fixed"]

DEFAULT_MAX_SESSION_BYTES = 16 * 1024 * 1024


def utc_now() -> datetime:
    """Return the current time, timezone-aware, in UTC (the default clock)."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionStoreConfig:
    """Options every store understands.

    Attributes:
        default_session_ttl: Lifetime of a session created without ``expires_at``
            (default one hour); ``None`` means sessions never expire by default.
        expiry_mode: ``"sliding"`` (the default): a session whose expiry comes from
            ``default_session_ttl`` expires one TTL after its last write (every write moves
            ``expires_at`` to now + TTL), so a session in use never expires. ``"fixed"``: one
            TTL after its creation. An explicit ``expires_at`` never slides.
        idle_timeout: A session neither read nor written for this long counts as expired
            (``None``, the default, disables idle expiry).
        max_sessions: The most sessions the store holds; creating one more first removes
            expired sessions, then raises ``SessionLimitError``. ``None``: no limit.
        max_session_bytes: The largest encoded session accepted (default 16 MiB).
        auto_cleanup_enabled: Delete expired sessions in the background.
        cleanup_interval: How often the background cleanup runs (default 60 s).
        health_error_window: How far back ``health_check`` looks for storage errors
            (default 60 s); older errors no longer count.
        health_error_threshold: Errors within the window that make the store unhealthy.
        backup_enabled: Take a backup every ``backup_interval`` in the background.
        backup_interval: How often timed backups run (default 300 s).
        max_backups: Keep only the newest this many backups (default 10; ``None`` keeps all).
            Applied after every backup, timed or not, and by ``optimize()``.
        backup_dir: Where backups are written. ``None`` (the default): the store's own place
            (``backups/`` in a filesystem store's directory; kept in memory by the in-memory
            store).
        backup_compress: Compress timed backups with zlib.
        restore_batch_size: A restore or import of more sessions than this is applied in
            atomic batches of this size rather than as one atomic unit (default 5,000).
        clock: Where the store reads the time (tests pass a fake clock).
        encryption: Seal interactions and metadata at rest with this
            :class:`~session_persistence.sealing.Keyring` (AES-256-GCM under its active key;
            needs the ``crypto`` extra). ``None`` (the default): records are written in clear,
            and a store holding sealed records raises ``SealingKeyError`` for them. See
            ``docs/sealing.md``.
        compression: Compress records of at least a threshold size before sealing them:
            ``"zlib"``, ``"zstd"`` or a :class:`~session_persistence.sealing.Compression`
            (threshold, level). ``None`` (the default): no compression. Stores read
            compressed and uncompressed records alike, whatever this says.
    """

    default_session_ttl: Duration | None = 3600.0
    expiry_mode: ExpiryMode = "sliding"
    idle_timeout: Duration | None = None
    max_sessions: int | None = None
    max_session_bytes: int = DEFAULT_MAX_SESSION_BYTES
    auto_cleanup_enabled: bool = False
    cleanup_interval: Duration = 60.0
    health_error_window: Duration = 60.0
    health_error_threshold: int = 1
    backup_enabled: bool = False
    backup_interval: Duration = 300.0
    max_backups: int | None = 10
    backup_dir: str | os.PathLike[str] | None = None
    backup_compress: bool = False
    restore_batch_size: int = 5000
    clock: Clock = utc_now
    encryption: Keyring | None = None
    compression: CompressionSetting = None

    def __post_init__(self) -> None:
        _duration("default_session_ttl", self.default_session_ttl, optional=True, positive=True)
        _duration("idle_timeout", self.idle_timeout, optional=True, positive=True)
        if self.expiry_mode not in ("sliding", "fixed"):
            raise ConfigurationError(
                "expiry_mode", f"must be 'sliding' or 'fixed', got {self.expiry_mode!r}"
            )
        _duration("cleanup_interval", self.cleanup_interval, positive=True)
        _duration("health_error_window", self.health_error_window, positive=True)
        _positive_int("max_sessions", self.max_sessions, optional=True)
        _positive_int("max_session_bytes", self.max_session_bytes)
        _positive_int("health_error_threshold", self.health_error_threshold)
        _duration("backup_interval", self.backup_interval, positive=True)
        _positive_int("max_backups", self.max_backups, optional=True)
        _positive_int("restore_batch_size", self.restore_batch_size)
        for name in ("auto_cleanup_enabled", "backup_enabled", "backup_compress"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigurationError(name, "must be True or False")
        if self.backup_dir is not None and not isinstance(self.backup_dir, str | os.PathLike):
            raise ConfigurationError(
                "backup_dir", f"must be a path or None, got {self.backup_dir!r}"
            )
        if self.encryption is not None and not isinstance(self.encryption, Keyring):
            raise ConfigurationError(
                "encryption", f"must be a Keyring or None, got {type(self.encryption).__name__}"
            )
        if isinstance(self.compression, str):
            object.__setattr__(self, "compression", Compression(self.compression))
        elif self.compression is not None and not isinstance(self.compression, Compression):
            raise ConfigurationError(
                "compression",
                f"must be None, 'zlib', 'zstd' or a Compression, got {self.compression!r}",
            )
        if not callable(self.clock):
            raise ConfigurationError("clock", "must be a callable returning an aware datetime")

    def ttl(self) -> timedelta | None:
        """``default_session_ttl`` as a timedelta (``None``: never expires)."""
        return to_timedelta(self.default_session_ttl)

    def idle(self) -> timedelta | None:
        """``idle_timeout`` as a timedelta (``None``: disabled)."""
        return to_timedelta(self.idle_timeout)


def to_timedelta(value: Duration | None) -> timedelta | None:
    """Return a duration as a timedelta (``None`` stays ``None``)."""
    if value is None or isinstance(value, timedelta):
        return value
    return timedelta(seconds=value)


def seconds(value: Duration) -> float:
    """Return a duration in seconds."""
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _duration(name: str, value: object, *, optional: bool = False, positive: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, timedelta):
        total = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        total = float(value)
    else:
        raise ConfigurationError(name, f"must be seconds or a timedelta, got {value!r}")
    if not math.isfinite(total):
        raise ConfigurationError(name, f"must be finite, got {value!r}")
    if positive and total <= 0:
        raise ConfigurationError(name, f"must be greater than zero, got {value!r}")


def _positive_int(name: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(name, f"must be an integer >= 1, got {value!r}")
