"""Sealing at rest and compression: :class:`Keyring`, :class:`Key` and :class:`Compression`.

Give a store ``SessionStoreConfig(encryption=Keyring(...))`` and every record it writes that
holds interactions or metadata is sealed with AES-256-GCM under the keyring's *active* key:
session files, tails, journal lines and the index of the filesystem store, the SQLite and
PostgreSQL columns, the memory store's snapshot, and backups. Give it ``compression="zlib"``
(or ``"zstd"``, or a :class:`Compression`) and records larger than the threshold are compressed
first. Each record says which key sealed it and how it was compressed, so records of several
keys and of both kinds live side by side, and :meth:`~session_persistence.SessionStore.rotate_key`
re-seals them online.

Keys come from bytes or from the environment, never from a file inside the store::

    keys = Keyring.from_env()               # SESSION_STORE_KEYS="k2:<base64>,k1:<base64>"
    keys = Keyring(Key("k2", secret2), Key("k1", secret1))   # the first key is the active one

Sealing needs the ``crypto`` extra (``pip install 'session-persistence[crypto]'``, which brings
the ``cryptography`` package); zstd needs the ``zstd`` extra on Python < 3.14. The threat model,
what stays in clear and the measured costs are in ``docs/sealing.md``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from .errors import ConfigurationError

__all__ = [
    "KEYS_ENV",
    "Compression",
    "CompressionSetting",
    "Key",
    "KeyStatus",
    "Keyring",
    "RotationReport",
]

#: The environment variable :meth:`Keyring.from_env` reads by default.
KEYS_ENV = "SESSION_STORE_KEYS"

#: What a key id may be: letters, digits, ``_`` and ``-``, 1 to 64 of them.
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class Key:
    """One AES-256 key and its id.

    Attributes:
        key_id: Names the key in every record it seals (``[A-Za-z0-9_-]{1,64}``). Never reuse
            an id for another secret: a record names its key by id alone.
        secret: The 32 key bytes. Never shown by ``repr()``.
    """

    key_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key_id, str) or not _KEY_ID.fullmatch(self.key_id):
            raise ConfigurationError(
                "encryption",
                f"a key id must be 1 to 64 letters, digits, '_' or '-', got {self.key_id!r}",
            )
        if not isinstance(self.secret, bytes | bytearray) or len(self.secret) != _KEY_BYTES:
            size = len(self.secret) if isinstance(self.secret, bytes | bytearray) else None
            raise ConfigurationError(
                "encryption",
                f"key {self.key_id!r} must be {_KEY_BYTES} bytes (AES-256), got "
                f"{'a ' + type(self.secret).__name__ if size is None else f'{size} bytes'}; "
                "make one with Key.generate()",
            )
        object.__setattr__(self, "secret", bytes(self.secret))

    @classmethod
    def generate(cls, key_id: str) -> Key:
        """Return a new key of 32 random bytes from the operating system's generator."""
        return cls(key_id, os.urandom(_KEY_BYTES))

    @property
    def check(self) -> str:
        """A short, one-way check value of the secret (8 hex digits), written with each record.

        It tells a record sealed by *another* secret under the same id (a wrong key: a typed
        error, nothing quarantined) from a record that was altered (damage). It reveals
        nothing usable about the secret: it is 32 bits of an HMAC-SHA256 keyed by it.
        """
        return hmac.new(self.secret, b"session-persistence key check", hashlib.sha256).hexdigest()[
            :8
        ]

    def encoded(self) -> str:
        """Return ``"<key_id>:<base64 secret>"``, this key's entry in ``SESSION_STORE_KEYS``."""
        return f"{self.key_id}:{base64.b64encode(self.secret).decode()}"


class Keyring:
    """The keys a store seals with: one active key for writing, older ones for reading.

    Args:
        *keys: :class:`Key` objects, or ``(key_id, secret)`` pairs, or one mapping of key id
            to secret. Ids must be distinct.
        active: The id of the key new records are sealed with; by default the first key.
        accept_unsealed: Also read records that are not sealed (written before sealing was
            turned on). Off by default: a store that seals everything must not take a record
            in clear (which anyone with write access could plant) for its own, so reading one
            raises :class:`~session_persistence.errors.UnsealedRecordError`. Turn it on to
            open a store written in clear, run ``rotate_key()`` once, and turn it off again.

    Raises:
        ConfigurationError: No keys, a malformed key or id, a repeated id, or an ``active``
            id that is not among the keys.
    """

    __slots__ = ("_active", "_keys", "accept_unsealed")

    def __init__(
        self,
        *keys: Key | tuple[str, bytes] | Mapping[str, bytes],
        active: str | None = None,
        accept_unsealed: bool = False,
    ) -> None:
        if not isinstance(accept_unsealed, bool):
            raise ConfigurationError("encryption", "accept_unsealed must be True or False")
        self.accept_unsealed = accept_unsealed
        found: list[Key] = []
        for entry in keys:
            if isinstance(entry, Key):
                found.append(entry)
            elif isinstance(entry, Mapping):
                found.extend(Key(key_id, secret) for key_id, secret in entry.items())
            elif isinstance(entry, tuple) and len(entry) == 2:
                found.append(Key(*entry))
            else:
                raise ConfigurationError(
                    "encryption",
                    f"a keyring takes Key objects or (id, secret) pairs, got {entry!r}",
                )
        if not found:
            raise ConfigurationError("encryption", "a keyring needs at least one key")
        self._keys: dict[str, Key] = {}
        for key in found:
            if key.key_id in self._keys:
                raise ConfigurationError("encryption", f"key id {key.key_id!r} appears twice")
            self._keys[key.key_id] = key
        chosen = found[0].key_id if active is None else active
        if chosen not in self._keys:
            raise ConfigurationError(
                "encryption", f"the active key {chosen!r} is not in the keyring {self.ids}"
            )
        self._active = chosen

    @classmethod
    def from_env(
        cls, name: str = KEYS_ENV, *, active: str | None = None, accept_unsealed: bool = False
    ) -> Keyring:
        """Read a keyring from the environment variable ``name``.

        The format is ``<key_id>:<base64 secret>`` entries separated by commas (spaces and
        newlines around them are ignored); the first entry is the active key unless ``active``
        names another. :meth:`Key.encoded` writes one entry.

        Raises:
            ConfigurationError: The variable is unset or empty, or an entry is malformed.
        """
        text = os.environ.get(name, "").strip()
        if not text:
            raise ConfigurationError(
                "encryption",
                f"the environment variable {name} is not set; set it to "
                "'<key_id>:<base64 of 32 bytes>,...' (the first key is the active one)",
            )
        return cls.parse(text, active=active, source=name, accept_unsealed=accept_unsealed)

    @classmethod
    def parse(
        cls,
        text: str,
        *,
        active: str | None = None,
        source: str = "text",
        accept_unsealed: bool = False,
    ) -> Keyring:
        """Read a keyring from ``<key_id>:<base64 secret>,...`` (the format of ``from_env``).

        Raises:
            ConfigurationError: An entry is malformed.
        """
        keys: list[Key] = []
        for number, entry in enumerate(text.split(","), 1):
            key_id, colon, encoded = entry.strip().partition(":")
            try:
                secret = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                secret = b""
            if not colon or not secret:
                raise ConfigurationError(
                    "encryption",
                    f"entry {number} of {source} is not '<key_id>:<base64 secret>'",
                )
            keys.append(Key(key_id.strip(), secret))
        return cls(*keys, active=active, accept_unsealed=accept_unsealed)

    @property
    def active(self) -> str:
        """The id of the key new records are sealed with."""
        return self._active

    @property
    def ids(self) -> tuple[str, ...]:
        """Every key id, in the order given."""
        return tuple(self._keys)

    def key(self, key_id: str) -> Key | None:
        """Return the key named ``key_id``, or ``None``."""
        return self._keys.get(key_id)

    def with_active(self, key_id: str) -> Keyring:
        """Return this keyring with ``key_id`` as the active key.

        Raises:
            ConfigurationError: ``key_id`` is not in the keyring.
        """
        return Keyring(*self._keys.values(), active=key_id, accept_unsealed=self.accept_unsealed)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Keyring):
            return NotImplemented
        return (
            self._active == other._active
            and self._keys == other._keys
            and self.accept_unsealed == other.accept_unsealed
        )

    def __hash__(self) -> int:
        return hash((self._active, tuple(self._keys), self.accept_unsealed))

    def __repr__(self) -> str:
        unsealed = ", accept_unsealed=True" if self.accept_unsealed else ""
        return f"Keyring(ids={list(self._keys)!r}, active={self._active!r}{unsealed})"


_ALGORITHMS = ("zlib", "zstd")


@dataclass(frozen=True, slots=True)
class Compression:
    """Compress records larger than ``threshold`` bytes before sealing them.

    Attributes:
        algorithm: ``"zlib"`` (the standard library) or ``"zstd"`` (Python 3.14's
            ``compression.zstd``, or the ``zstd`` extra before it).
        threshold: Records of at least this many bytes are compressed (default 1,024);
            smaller ones are written as they are. A record is kept uncompressed when
            compressing does not make it smaller.
        level: The compression level; ``None`` takes the algorithm's default.
    """

    algorithm: Literal["zlib", "zstd"] = "zlib"
    threshold: int = 1024
    level: int | None = None

    def __post_init__(self) -> None:
        if self.algorithm not in _ALGORITHMS:
            raise ConfigurationError(
                "compression", f"algorithm must be 'zlib' or 'zstd', got {self.algorithm!r}"
            )
        if not isinstance(self.threshold, int) or isinstance(self.threshold, bool):
            raise ConfigurationError("compression", "threshold must be an integer >= 0")
        if self.threshold < 0:
            raise ConfigurationError("compression", "threshold must be an integer >= 0")
        if self.level is not None and (
            not isinstance(self.level, int) or isinstance(self.level, bool)
        ):
            raise ConfigurationError("compression", "level must be an integer or None")


#: What ``SessionStoreConfig.compression`` accepts: ``None``, an algorithm's name, or a
#: :class:`Compression`.
CompressionSetting: TypeAlias = Compression | Literal["zlib", "zstd"] | None


@dataclass(frozen=True, slots=True)
class KeyStatus:
    """How many records at rest each key seals (``SessionStore.key_status``).

    Attributes:
        active_key: The key new records are sealed with (``None``: the store does not seal).
        records: Records per key id; the ``None`` entry counts records not sealed at all.
    """

    active_key: str | None
    records: Mapping[str | None, int]

    @property
    def keys_in_use(self) -> list[str]:
        """The ids of the keys that seal at least one record, sorted."""
        return sorted(k for k, n in self.records.items() if k is not None and n > 0)


@dataclass(frozen=True, slots=True)
class RotationReport:
    """What ``SessionStore.rotate_key`` did.

    Attributes:
        key_id: The key everything is now sealed with.
        sessions_examined: Sessions looked at.
        records_resealed: Records the rotation rewrote under ``key_id``: session records
            (the filesystem store's bases and tail records, the SQL stores' metadata values
            and interaction rows, the memory store's snapshot). The filesystem store's journal
            and index are rewritten by the checkpoints the rotation runs, and not counted.
        seconds: How long it took.
        status: The census after the rotation.
    """

    key_id: str
    sessions_examined: int
    records_resealed: int
    seconds: float
    status: KeyStatus
