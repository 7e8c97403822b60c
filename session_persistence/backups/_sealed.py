"""Sealing backup bodies and export lines with the store's keyring.

**Backups.** A store with a keyring seals the body of every backup it takes, after
compression if any, as one record with the context ``b"backup:<backup_id>"``. Its header line
says so (``"sealed": "<key id>"``, the id only) and keeps everything else in clear, so listing
backups never needs a key: id, times, store type, counts, sizes, the user's backup metadata.
Restoring opens sealed backups, and plain ones too unless the store seals everything (its
keyring without ``accept_unsealed``: anyone who can write the backup directory could plant a
plain one; :class:`~session_persistence.errors.UnsealedRecordError`). A body sealed with a
key the store lacks raises :class:`~session_persistence.errors.SealingKeyError` before
anything is restored; a body that fails authentication (altered, even with its digest line
recomputed) is a :class:`~session_persistence.errors.BackupError`. Backups kept in memory
(no ``backup_dir``) are sealed the same way: they never reach disk, but one format keeps
every path alike.

**Exports** stay readable JSON Lines unless ``sealed=True`` is asked for: then each session
line is one sealed record (context ``b"export"``, compressed first if the store compresses),
the header line names the key, and the end marker stays in clear. Importing opens sealed lines
with the store's keyring and reads plain ones as before.

The body is sealed by an envelope without compression of its own: the backup's ``compress``
option already compressed it, with the bounded, streaming decompression the reader uses.
"""

from __future__ import annotations

from .._envelope import PREFIX, Envelope, Unsealable, record_key
from ..errors import BackupError, ConfigurationError

__all__ = [
    "EXPORT_CONTEXT",
    "backup_context",
    "export_envelope",
    "open_body",
    "open_line",
    "seal_body",
]

#: The AEAD context of every sealed export line.
EXPORT_CONTEXT = b"export"


def backup_context(backup_id: str) -> bytes:
    """The AEAD context of a backup's body: binds it to that backup id."""
    return b"backup:" + backup_id.encode()


def seal_body(envelope: Envelope, body: bytes, backup_id: str) -> tuple[bytes, str | None]:
    """Return ``body`` sealed with the active key, and that key's id (as is, ``None``: no keys)."""
    keyring = envelope.keyring
    if keyring is None:
        return body, None
    sealer = Envelope(keyring, None)  # compressed already, if asked for: see the module doc
    return sealer.wrap(body, backup_context(backup_id)), keyring.active


def open_body(
    envelope: Envelope, body: bytes, sealed_with: str | None, backup_id: str, label: str
) -> bytes:
    """Return a backup's body, opened if its header says it is sealed.

    Raises:
        SealingKeyError: The body is sealed with a key ``envelope`` lacks (or another secret).
        UnsealedRecordError: The body is plain and the store seals everything.
        BackupError: The body is not what the header says (sealed, and with which key), or
            it fails authentication.
    """
    if sealed_with is None:
        if body[: len(PREFIX)] == PREFIX:
            raise BackupError(f"{label} has a sealed body, but its header says it is not sealed")
        envelope.refuse_clear()  # (a store that seals everything restores no plain backup)
        return body
    found = record_key(body)
    if found != sealed_with:
        raise BackupError(
            f"{label}'s header says its body is sealed with key {sealed_with!r}, but the body "
            f"{'is not sealed' if found is None else f'names key {found!r}'}: it was altered"
        )
    try:
        return envelope.unwrap(body, backup_context(backup_id))
    except Unsealable as exc:
        raise BackupError(f"{label}'s sealed body is damaged or was altered ({exc})") from exc


def export_envelope(envelope: Envelope) -> Envelope:
    """The envelope a sealed export is written with: the store's own, which must seal.

    Raises:
        ConfigurationError: The store has no keyring.
    """
    if not envelope.sealing:
        raise ConfigurationError(
            "sealed",
            "a sealed export needs a store opened with encryption=Keyring(...); "
            "leave sealed=False for a plain JSON Lines export",
        )
    return envelope


def open_line(
    envelope: Envelope, raw: bytes, limit: int, label: str, number: int
) -> tuple[bytes, bool]:
    """Return an export line, opened if it is sealed (a plain line as it is), and whether it was.

    Raises:
        SealingKeyError: The line is sealed with a key ``envelope`` lacks.
        BackupError: The line fails authentication or does not decode.
    """
    raw = raw.strip()
    if raw[: len(PREFIX)] != PREFIX:
        return raw, False
    try:
        return envelope.unwrap(raw, EXPORT_CONTEXT, limit=limit), True
    except Unsealable as exc:
        raise BackupError(f"{label}: line {number} is damaged or was altered ({exc})") from exc
