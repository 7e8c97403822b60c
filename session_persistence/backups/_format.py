"""The backup file and the export file: how they are laid out, written and validated.

A **backup file** (``<backup_id>.backup``) is::

    {"kind": "session-persistence-backup", "format": 1, "backup_id": ..., "created_at": ...,
     "store_type": ..., "session_count": n, "compression": "none" | "zlib",
     "sealed": null | "<key id>", "body_bytes": b, "include_expired": ..., "filter": ...,
     "metadata": {...}}
    {"sha256": "<hex digest of the line above (newline included) followed by the body>"}
    <body: b bytes; n session documents, one per line, zlib-compressed if it says so, then
     sealed as one record if it names a key (see ._sealed)>

The two header lines are small, so listing backups never reads a body (nor needs a key). The
digest covers the first line and the body, so a flipped byte anywhere but in the digest itself
is caught, and a damaged digest line fails to match. The digest is not keyed: a sealed body is
what proves itself, by its authentication tag. A backup written before sealing existed has no
``"sealed"`` field, which reads as ``null``.

An **export file** is JSON Lines that a person can read and ``jq`` can filter::

    {"kind": "session-persistence-export", "format": 1, "exported_at": ..., "store_type": ...}
    <one session document per line>
    {"end": {"count": n}}

The closing line tells a complete export from a truncated one. Both files use the session
document of :mod:`session_persistence.documents`, so every store reads what every store writes.

Everything read back is untrusted: every function here raises :class:`BackupError` with a
message naming what is wrong, and nothing is written while reading.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from .._ids import is_valid_session_id
from ..errors import BackupError
from ..serialization import dump_json

__all__ = [
    "BACKUP_FORMAT",
    "BACKUP_KIND",
    "EXPORT_KIND",
    "Header",
    "check_kind",
    "encode_backup",
    "iter_body",
    "parse_header",
    "split_header",
]

BACKUP_KIND = "session-persistence-backup"
EXPORT_KIND = "session-persistence-export"
BACKUP_FORMAT = 1

#: A key id as :class:`~session_persistence.sealing.Key` allows it.
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

#: The most the two header lines may take; a longer "header" is not one of ours.
MAX_HEADER_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Header:
    """A validated backup header."""

    fields: dict[str, Any]
    digest: str
    length: int  # bytes taken by the two header lines

    @property
    def backup_id(self) -> str:
        """The backup's id."""
        return str(self.fields["backup_id"])

    @property
    def session_count(self) -> int:
        """How many sessions the body holds."""
        return int(self.fields["session_count"])

    @property
    def body_bytes(self) -> int:
        """The body's stored size."""
        return int(self.fields["body_bytes"])

    @property
    def compressed(self) -> bool:
        """Whether the body is zlib-compressed."""
        return bool(self.fields["compression"] == "zlib")

    @property
    def sealed_with(self) -> str | None:
        """The id of the key that sealed the body (``None``: not sealed)."""
        value = self.fields.get("sealed")
        return None if value is None else str(value)

    @property
    def created_at(self) -> datetime:
        """When the backup was taken."""
        return datetime.fromisoformat(self.fields["created_at"])


def encode_backup(
    fields: dict[str, Any],
    documents: list[bytes],
    *,
    compress: bool,
    seal: Callable[[bytes], tuple[bytes, str | None]] | None = None,
) -> bytes:
    """Return the bytes of a backup file holding ``documents`` (encoded, one per session).

    ``fields`` gives everything of the header but the counts, compression, sealing and digest.
    ``seal`` seals the (compressed) body and returns it with the sealing key's id.
    """
    body = b"".join(document + b"\n" for document in documents)
    if compress:
        body = zlib.compress(body, 6)
    sealed_with = None
    if seal is not None:
        body, sealed_with = seal(body)
    header = dump_json(
        {
            "kind": BACKUP_KIND,
            "format": BACKUP_FORMAT,
            **fields,
            "session_count": len(documents),
            "compression": "zlib" if compress else "none",
            "sealed": sealed_with,
            "body_bytes": len(body),
        }
    )
    first = header + b"\n"
    digest = hashlib.sha256(first)
    digest.update(body)
    return first + dump_json({"sha256": digest.hexdigest()}) + b"\n" + body


def split_header(data: bytes, label: str) -> tuple[bytes, bytes]:
    """Return the two header lines (newlines included) at the start of ``data``."""
    first_end = data.find(b"\n", 0, MAX_HEADER_BYTES)
    second_end = -1 if first_end < 0 else data.find(b"\n", first_end + 1, MAX_HEADER_BYTES)
    if second_end < 0:
        raise BackupError(f"{label} is not a backup file: its header is missing or truncated")
    return data[: first_end + 1], data[first_end + 1 : second_end + 1]


def check_kind(fields: Any, kind: str, label: str) -> None:
    """Check the first line of a backup or an export: its kind, and a format we can read.

    Raises:
        BackupError: Another kind of file, no valid format, or a newer format (upgrade).
    """
    what = "backup" if kind == BACKUP_KIND else "export"
    if type(fields) is not dict or fields.get("kind") != kind:
        raise BackupError(f"{label} is not a session-persistence {what}")
    version = fields.get("format")
    if type(version) is not int or version < 1:
        raise BackupError(f"{label} has no valid format version")
    if version > BACKUP_FORMAT:
        raise BackupError(
            f"{label} was written in {what} format {version}, newer than this library reads "
            f"({BACKUP_FORMAT}); upgrade session-persistence to read it"
        )


def parse_header(first: bytes, second: bytes, label: str) -> Header:
    """Validate a backup's two header lines.

    Raises:
        BackupError: Not a backup, written by a newer format, or a field is missing or wrong.
    """
    try:
        fields = orjson.loads(first)
        seal = orjson.loads(second)
    except orjson.JSONDecodeError as exc:
        raise BackupError(f"{label} has a damaged header ({exc})") from exc
    check_kind(fields, BACKUP_KIND, label)
    digest = seal.get("sha256") if type(seal) is dict else None
    if type(digest) is not str or len(digest) != 64:
        raise BackupError(f"{label} has a damaged checksum line")
    backup_id = fields.get("backup_id")
    if not is_valid_session_id(backup_id):
        raise BackupError(f"{label} names an invalid backup id {backup_id!r}")
    for name, kind in (
        ("created_at", str),
        ("store_type", str),
        ("session_count", int),
        ("body_bytes", int),
        ("include_expired", bool),
        ("metadata", dict),
    ):
        if type(fields.get(name)) is not kind:
            raise BackupError(f"{label} has a missing or invalid header field {name!r}")
    if fields["session_count"] < 0 or fields["body_bytes"] < 0:
        raise BackupError(f"{label} has negative counts in its header")
    sealed_with = fields.get("sealed")
    if sealed_with is not None and (
        type(sealed_with) is not str or not _KEY_ID.fullmatch(sealed_with)
    ):
        raise BackupError(f"{label} names an invalid sealing key id {sealed_with!r}")
    if fields.get("compression") not in ("none", "zlib"):
        raise BackupError(f"{label} uses an unknown compression {fields.get('compression')!r}")
    try:
        created = datetime.fromisoformat(fields["created_at"])
    except ValueError as exc:
        raise BackupError(f"{label} has an invalid created_at ({exc})") from exc
    if created.utcoffset() is None:
        raise BackupError(f"{label} has a created_at without a UTC offset")
    return Header(fields, digest, len(first) + len(second))


def check_body(data: bytes, header: Header, label: str) -> bytes:
    """Check the digest and length of a whole backup file; return its body as stored.

    Raises:
        BackupError: The file is truncated, has bytes after its body, or fails its checksum.
    """
    body = data[header.length :]
    if len(body) != header.body_bytes:
        raise BackupError(
            f"{label} is truncated or padded: its body has {len(body)} bytes, "
            f"the header says {header.body_bytes}"
        )
    first_end = data.index(b"\n") + 1
    digest = hashlib.sha256(data[:first_end])
    digest.update(body)
    if digest.hexdigest() != header.digest:
        raise BackupError(f"{label} fails its checksum: the file is damaged")
    return body


def iter_body(body: bytes, header: Header, label: str, max_line: int) -> Iterator[Any]:
    """Yield each session document (parsed JSON) of a checked body.

    Decompression is bounded: no line may exceed ``max_line`` bytes, so a hostile body
    cannot make us allocate more than that at once.

    Raises:
        BackupError: Bad compression, a line that is not JSON or too long, or a count that
            differs from the header's.
    """
    count = 0
    for number, line in enumerate(_lines(body, header.compressed, label, max_line), start=1):
        try:
            document = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise BackupError(f"{label}: session record {number} is not JSON ({exc})") from exc
        count += 1
        yield document
    if count != header.session_count:
        raise BackupError(
            f"{label} holds {count} session(s), but its header says {header.session_count}"
        )


def _lines(body: bytes, compressed: bool, label: str, max_line: int) -> Iterator[bytes]:
    if not compressed:
        if body and not body.endswith(b"\n"):
            raise BackupError(f"{label}: the last session record is incomplete")
        start = 0
        while start < len(body):
            end = body.index(b"\n", start)
            if end - start > max_line:
                raise BackupError(f"{label}: a session record exceeds {max_line} bytes")
            yield body[start:end]
            start = end + 1
        return
    inflater = zlib.decompressobj()
    pending = b""
    chunk = 64 * 1024
    source = memoryview(body)
    offset = 0
    try:
        while True:
            if inflater.unconsumed_tail:
                piece = inflater.decompress(inflater.unconsumed_tail, chunk)
            elif offset < len(source):
                piece = inflater.decompress(source[offset : offset + chunk], chunk)
                offset += chunk
            else:
                piece = inflater.flush()
                if not piece:
                    break
            pending += piece
            *complete, pending = pending.split(b"\n")
            yield from complete
            if len(pending) > max_line:
                raise BackupError(f"{label}: a session record exceeds {max_line} bytes")
    except zlib.error as exc:
        raise BackupError(f"{label} has a damaged compressed body ({exc})") from exc
    if not inflater.eof or inflater.unused_data:
        raise BackupError(f"{label} has a damaged compressed body")
    if pending:
        raise BackupError(f"{label}: the last session record is incomplete")
