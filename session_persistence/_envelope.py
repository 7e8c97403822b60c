r"""The record envelope: what a store does to a record's bytes to seal and compress it.

A record is any unit a store writes whole: a session document, a tail or journal line, an
index chunk, a column value, a backup body. :meth:`Envelope.wrap` turns its bytes into::

    $sp1:<key id>:<key check>:<compression>:<base64 of nonce + ciphertext + tag>   (sealed)
    $sp1:::<compression>:<base64 of the compressed bytes>                           (compressed)

and returns a record it would not change (no sealing, and too small to compress) as it is.
The result is ASCII without newlines, quotes or backslashes, so it fits every place a record
goes: a framed line, a JSON string, a SQL text column. JSON never starts with ``$``, so
:meth:`Envelope.unwrap` tells a wrapped record from a plain one by its first bytes, and stores
that hold both (sealing was turned on later, or rotation is halfway) read both.

Sealing is AES-256-GCM with a random 96-bit nonce per record. The associated data is the
envelope's own prefix (key id, key check, compression) followed by the record's *context*,
which the store chooses: ``b"session:<id>"`` for a session's file, ``b"meta:<id>"`` for a
metadata column, and so on. A record moved to another session, or whose prefix was edited,
fails authentication like a record whose ciphertext was.

Two outcomes of reading are kept apart, because the store must act differently:

* :class:`~session_persistence.errors.SealingKeyError`: the record names a key this store was
  not given, or a secret that is not the one given under that id (the key check differs). The
  record is intact; nothing is quarantined.
* :class:`~session_persistence.errors.UnsealedRecordError` (a kind of ``SealingKeyError``):
  the store seals everything and the record is in clear; unless the keyring says
  ``accept_unsealed``, it is not taken (anyone with write access could have planted it), and
  not quarantined either (a store written before sealing was turned on holds such records).
* :class:`Unsealable`: the record fails authentication, or its base64 or compression is
  broken. That is damage (or tampering), handled as the store handles any damaged record.
"""

from __future__ import annotations

import binascii
import os
import zlib
from collections.abc import Callable
from typing import Any

from .errors import ConfigurationError, SealingKeyError, UnsealedRecordError
from .sealing import Compression, CompressionSetting, Keyring

__all__ = ["PLAIN", "PREFIX", "Envelope", "Unsealable", "compression_of", "record_key"]

PREFIX = b"$sp1:"
_TEXT_PREFIX = PREFIX.decode()
_NONCE = 12
_NONE, _ZLIB, _ZSTD = b"-", b"z", b"s"

#: The most a record may grow to when decompressed: more is treated as damage.
DEFAULT_LIMIT = 1 << 30


class Unsealable(Exception):
    """A wrapped record failed authentication or does not decode: it is damaged."""


def compression_of(setting: CompressionSetting) -> Compression | None:
    """Return ``SessionStoreConfig.compression`` as a :class:`Compression` (or ``None``)."""
    if setting is None or isinstance(setting, Compression):
        return setting
    if isinstance(setting, str):
        return Compression(setting)
    raise ConfigurationError(
        "compression", f"must be None, 'zlib', 'zstd' or a Compression, got {setting!r}"
    )


def _zstd() -> Any:
    try:
        from compression import zstd  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415
    except ImportError:
        try:
            from backports import zstd  # type: ignore[import-not-found,no-redef,unused-ignore]  # noqa: PLC0415
        except ImportError:
            return None
    return zstd


def _aead() -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415 (extra)
    except ImportError:
        return None
    return AESGCM


class _Sealer:
    """One key's AEAD, with the prefix its records start with."""

    __slots__ = ("aead", "check", "key_id")

    def __init__(self, key_id: str, check: str, aead: Any) -> None:
        self.key_id = key_id
        self.check = check
        self.aead = aead


class Envelope:
    """Seals and compresses records as a store's configuration asks.

    Args:
        keyring: The keys (``None``: records are not sealed, but sealed ones can't be read).
        compression: Compress records at least this large (``None``: never).

    Raises:
        ConfigurationError: Sealing was asked for without the ``cryptography`` package, or
            zstd without a zstd module.
    """

    __slots__ = (
        "_compress",
        "_decompress_zstd",
        "_sealers",
        "_tag",
        "_threshold",
        "compression",
        "keyring",
    )

    def __init__(self, keyring: Keyring | None, compression: Compression | None) -> None:
        self.keyring = keyring
        self.compression = compression
        self._sealers: dict[str, _Sealer] = {}
        if keyring is not None:
            aesgcm = _aead()
            if aesgcm is None:
                raise ConfigurationError(
                    "encryption",
                    "sealing needs the 'cryptography' package: "
                    "pip install 'session-persistence[crypto]'",
                )
            for key_id in keyring.ids:
                key = keyring.key(key_id)
                assert key is not None
                self._sealers[key_id] = _Sealer(key_id, key.check, aesgcm(key.secret))
        self._compress: Callable[[bytes], bytes] | None = None
        self._threshold = 0
        self._tag = _NONE
        zstd = _zstd()
        self._decompress_zstd = None if zstd is None else zstd.ZstdDecompressor
        if compression is not None:
            self._threshold = compression.threshold
            if compression.algorithm == "zlib":
                level = 1 if compression.level is None else compression.level
                self._compress = lambda data: zlib.compress(data, level)
                self._tag = _ZLIB
            else:
                if zstd is None:
                    raise ConfigurationError(
                        "compression",
                        "zstd needs Python 3.14 or the 'zstd' extra: "
                        "pip install 'session-persistence[zstd]'",
                    )
                zlevel = 3 if compression.level is None else compression.level
                self._compress = lambda data: zstd.compress(data, zlevel)
                self._tag = _ZSTD

    @property
    def sealing(self) -> bool:
        """Whether new records are sealed."""
        return self.keyring is not None

    @property
    def active(self) -> bool:
        """Whether :meth:`wrap` changes anything (sealing or compression is on)."""
        return self.keyring is not None or self._compress is not None

    @property
    def active_key(self) -> str | None:
        """The id of the key new records are sealed with (``None``: not sealing)."""
        return None if self.keyring is None else self.keyring.active

    def activate(self, key_id: str) -> None:
        """Seal new records with ``key_id`` from now on (the keyring must hold it).

        The envelope changes in place, so every part of a store that holds it switches at
        once; a record being wrapped meanwhile is sealed wholly with one key or the other.
        """
        if self.keyring is None:
            raise ConfigurationError("encryption", "the store has no keyring to rotate")
        self.keyring = self.keyring.with_active(key_id)

    # -- writing -----------------------------------------------------------------------------

    def wrap(self, plain: bytes, context: bytes) -> bytes:
        """Return ``plain`` sealed and compressed as configured (as it is when neither applies)."""
        tag = _NONE
        body = plain
        if self._compress is not None and len(plain) >= self._threshold:
            packed = self._compress(plain)
            if len(packed) < len(plain):
                tag, body = self._tag, packed
        keyring = self.keyring
        if keyring is None:
            if tag is _NONE:
                return plain
            return b"%s::%s:%s" % (PREFIX, tag, binascii.b2a_base64(body, newline=False))
        sealer = self._sealers[keyring.active]
        head = b"%s%s:%s:%s:" % (PREFIX, sealer.key_id.encode(), sealer.check.encode(), tag)
        nonce = os.urandom(_NONCE)
        sealed = sealer.aead.encrypt(nonce, body, head + context)
        return head + binascii.b2a_base64(nonce + sealed, newline=False)

    def wrap_text(self, plain: str, context: bytes) -> str:
        """:meth:`wrap` for text columns."""
        if not self.active:
            return plain
        return self.wrap(plain.encode(), context).decode()

    # -- reading -----------------------------------------------------------------------------

    def unwrap(self, data: bytes, context: bytes, *, limit: int = DEFAULT_LIMIT) -> bytes:
        """Return the plain bytes of a record written by :meth:`wrap` (or a plain record).

        Raises:
            SealingKeyError: The record is sealed with a key this envelope does not hold, or
                with another secret under the same id.
            Unsealable: The record is damaged: it fails authentication, or its base64 or its
                compression does not decode, or it would decompress beyond ``limit``.
        """
        if data[:5] != PREFIX:
            if self.strict:
                raise _unsealed()
            return data
        parts = data.split(b":", 4)
        if len(parts) != 5:
            raise Unsealable("a wrapped record without its four fields")
        _, key_id, check, tag, encoded = parts
        if not key_id and self.strict:
            raise _unsealed()
        try:
            raw = binascii.a2b_base64(encoded, strict_mode=True)
        except (binascii.Error, ValueError) as exc:
            raise Unsealable(f"a wrapped record whose base64 is broken ({exc})") from exc
        if key_id:
            head = data[: len(data) - len(encoded)]
            body = self._open(key_id, check, raw, head + context)
        elif check:
            raise Unsealable("an unsealed record with a key check")
        else:
            body = raw
        return self._inflate(tag, body, limit)

    def unwrap_text(self, text: str, context: bytes, *, limit: int = DEFAULT_LIMIT) -> str:
        """:meth:`unwrap` for text columns (a plain text is returned as it is)."""
        if not text.startswith(_TEXT_PREFIX):
            if self.strict:
                raise _unsealed()
            return text
        try:
            return self.unwrap(text.encode("ascii"), context, limit=limit).decode()
        except UnicodeError as exc:
            raise Unsealable(f"a wrapped record that is not text ({exc})") from exc

    def refuse_clear(self) -> None:
        """For a store that reads a record in clear without :meth:`unwrap`: refuse it if strict.

        Raises:
            UnsealedRecordError: The store seals everything (see :attr:`strict`).
        """
        if self.strict:
            raise _unsealed()

    @property
    def strict(self) -> bool:
        """Whether a record in clear is refused (sealing, without ``accept_unsealed``)."""
        keyring = self.keyring
        return keyring is not None and not keyring.accept_unsealed

    def _open(self, key_id: bytes, check: bytes, raw: bytes, associated: bytes) -> bytes:
        name = key_id.decode("ascii", "replace")
        sealer = self._sealers.get(name)
        if sealer is None:
            if self.keyring is None:
                raise SealingKeyError(
                    f"this record is sealed with key {name!r} and the store has no keyring: "
                    "open it with SessionStoreConfig(encryption=Keyring(...)) holding that key",
                    name,
                )
            raise SealingKeyError(
                f"this record is sealed with key {name!r}, which the keyring "
                f"{list(self.keyring.ids)} does not hold: add it (SESSION_STORE_KEYS) to read it",
                name,
            )
        if check != sealer.check.encode():
            raise SealingKeyError(
                f"this record was sealed with another secret under key id {name!r} (its key "
                "check differs): give the store the secret that key id had when it wrote",
                name,
            )
        if len(raw) < _NONCE + 16:
            raise Unsealable("a sealed record too short to hold its nonce and tag")
        try:
            plain: bytes = sealer.aead.decrypt(raw[:_NONCE], raw[_NONCE:], associated)
        except Exception as exc:  # cryptography's InvalidTag, imported lazily
            raise Unsealable(
                f"a sealed record failed authentication (key {name!r}): it was altered"
            ) from exc
        return plain

    def _inflate(self, tag: bytes, body: bytes, limit: int) -> bytes:
        if tag == _NONE:
            return body
        if tag == _ZLIB:
            inflater = zlib.decompressobj()
            try:
                plain = inflater.decompress(body, limit)
            except zlib.error as exc:
                raise Unsealable(f"a compressed record does not decompress ({exc})") from exc
            if inflater.unconsumed_tail or not inflater.eof:
                raise Unsealable("a compressed record is incomplete or larger than allowed")
            return plain
        if tag == _ZSTD:
            if self._decompress_zstd is None:
                raise ConfigurationError(
                    "compression",
                    "this store holds zstd records: install the 'zstd' extra to read them",
                )
            decompressor = self._decompress_zstd()
            try:
                out: bytes = decompressor.decompress(body, limit)
            except Exception as exc:  # ZstdError
                raise Unsealable(f"a compressed record does not decompress ({exc})") from exc
            if not decompressor.eof:
                raise Unsealable("a compressed record is incomplete or larger than allowed")
            return out
        raise Unsealable(f"a record with an unknown compression {tag!r:.20}")


def _unsealed() -> UnsealedRecordError:
    return UnsealedRecordError(
        "a record in clear where every record must be sealed; if the store was written before "
        "sealing was turned on, open it with Keyring(..., accept_unsealed=True) and run "
        "rotate_key() once"
    )


def record_key(data: bytes | str) -> str | None:
    """Return the id of the key that sealed a record, without opening it (``None``: unsealed)."""
    head = data[:80].encode() if isinstance(data, str) else data[:80]
    if head[:5] != PREFIX:
        return None
    key_id = head[5:].split(b":", 1)[0]
    return key_id.decode("ascii", "replace") or None


#: An envelope that changes nothing and reads only plain records.
PLAIN = Envelope(None, None)
