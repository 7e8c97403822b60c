r"""Byte formats of the filesystem store: framed lines, session files, headers, journal records.

Two framings, both checksummed with CRC-32 (to catch torn and damaged writes, not tampering):

* **Framed lines** (journal records, tail records): ``<crc32 as 8 hex digits> <json>\\n``. The
  JSON never contains a raw newline (orjson escapes them), so a line is a record; a line that is
  incomplete or fails its checksum ends the readable part of the file.
* **Checksummed documents** (session files, the index snapshot): two lines,
  ``{"format":1,"kind":...,"length":N,"crc32":"..."}\\n<body>\\n``; the first line describes the
  second, which is exactly ``N`` bytes. Both lines are JSON a person can read.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from ..._envelope import Envelope, Unsealable
from ..._ids import is_valid_session_id
from ...documents import (
    _encode_id,
    document_to_session,
    header_from_document,
    header_of,
    interaction_from_json,
)
from ...errors import InvalidInputError, SerializationError
from ...models import PersistedSession, SessionHeader
from ...ops import AppendOp, CheckOp, DeleteOp, PutOp, WriteOp
from ...serialization import FORMAT_VERSION, Codec, dump_json

__all__ = [
    "INDEX",
    "BadFile",
    "decode_document",
    "encode_document",
    "frame",
    "header_from_json",
    "header_to_json",
    "index_chunk_context",
    "iter_frames",
    "journal_context",
    "journal_record",
    "opened",
    "session_context",
    "tail_context",
]


class BadFile(Exception):
    """A store file failed validation; ``str()`` is the reason recorded in quarantine."""


def frame(payload: bytes) -> bytes:
    """Return ``payload`` as one checksummed line."""
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def iter_frames(data: bytes, start: int = 0) -> Iterator[tuple[int, bytes]]:
    """Yield ``(end_offset, payload)`` for each valid framed line of ``data`` from ``start``.

    Stops at the first line that is incomplete (no newline yet) or fails its checksum: that is
    a torn tail (or, for a reader, a record still being written).
    """
    position = start
    while True:
        newline = data.find(b"\n", position)
        if newline < 0 or newline - position < 10 or data[position + 8] != 0x20:
            return
        payload = data[position + 9 : newline]
        try:
            checksum = int(data[position : position + 8], 16)
        except ValueError:
            return
        if zlib.crc32(payload) != checksum:
            return
        position = newline + 1
        yield position, payload


def encode_document(kind: str, body: bytes, **extra: Any) -> bytes:
    """Return a checksummed two-line document of ``kind`` holding ``body``."""
    head = {"format": FORMAT_VERSION, "kind": kind, **extra}
    head["length"] = len(body)
    head["crc32"] = f"{zlib.crc32(body):08x}"
    return orjson.dumps(head) + b"\n" + body + b"\n"


def read_head(line: bytes, kind: str) -> tuple[dict[str, Any], int, str]:
    """Validate a checksummed document's first line; return it, the body's length and CRC.

    Raises:
        BadFile: Not JSON, of another kind, of a newer format, or without length or crc32.
    """
    try:
        head = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise BadFile(f"the first line is not JSON ({exc}); not a store file") from exc
    if type(head) is not dict or head.get("kind") != kind:
        raise BadFile(f"not a {kind} file")
    version = head.get("format")
    if type(version) is not int or version < 1:
        raise BadFile(f"bad format version {version!r}")
    if version > FORMAT_VERSION:
        raise BadFile(
            f"written in format {version} by a newer session-persistence; "
            f"this version reads format {FORMAT_VERSION}: upgrade to read it"
        )
    length, checksum = head.get("length"), head.get("crc32")
    if type(length) is not int or length < 0 or type(checksum) is not str:
        raise BadFile("the first line lacks length or crc32")
    return head, length, checksum


def decode_document(data: bytes, kind: str) -> tuple[dict[str, Any], bytes]:
    """Validate a checksummed document; return its head and its body.

    Raises:
        BadFile: Empty, truncated, damaged, of another kind, or of a newer format.
    """
    if not data:
        raise BadFile("the file is empty (zero length)")
    newline = data.find(b"\n")
    if newline < 0:
        raise BadFile("the file is truncated or not a session-persistence file")
    head, length, checksum = read_head(data[:newline], kind)
    body = data[newline + 1 :]
    if len(body) != length + 1 or body[-1:] != b"\n":
        raise BadFile(f"truncated or extended: expected {length} bytes, found {len(body) - 1}")
    body = body[:-1]
    if f"{zlib.crc32(body):08x}" != checksum:
        raise BadFile("checksum mismatch: the content was damaged")
    return head, body


# -- headers ---------------------------------------------------------------------------------


def header_to_json(header: SessionHeader, codec: Codec) -> dict[str, Any]:
    """Return the JSON-native form of a header (a session document without interactions)."""
    return {
        "session_id": header.session_id,
        "processor_id": header.processor_id,
        "activity_id": _encode_id(header.activity_id, "activity_id"),
        "request_id": _encode_id(header.request_id, "request_id"),
        "created_at": header.created_at.isoformat(),
        "updated_at": header.updated_at.isoformat(),
        "last_accessed_at": header.last_accessed_at.isoformat(),
        "expires_at": None if header.expires_at is None else header.expires_at.isoformat(),
        "version": header.version,
        "metadata": codec.to_json_value(header.metadata, "metadata"),
        "tags": list(header.tags),
        "interaction_count": header.interaction_count,
        "size_bytes": header.size_bytes,
    }


def header_from_json(data: Any, codec: Codec) -> SessionHeader:
    """Validate and rebuild a header.

    Raises:
        BadFile: A field is missing or invalid.
    """
    if type(data) is not dict:
        raise BadFile("a session header must be an object")
    count, size = data.get("interaction_count"), data.get("size_bytes")
    if type(count) is not int or count < 0 or type(size) is not int or size < 0:
        raise BadFile("a session header lacks interaction_count or size_bytes")
    with _invalid("a session header"):
        return header_from_document(data, codec, interaction_count=count, size_bytes=size)


def with_header(session: PersistedSession, header: SessionHeader) -> PersistedSession:
    """Return ``session`` with the fields an append changes taken from ``header``."""
    return replace(
        session,
        version=header.version,
        updated_at=header.updated_at,
        last_accessed_at=header.last_accessed_at,
        expires_at=header.expires_at,
    )


# -- journal records -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Put:
    """A journal ``put``: the session's whole document."""

    header: SessionHeader
    doc: bytes


@dataclass(frozen=True, slots=True)
class Append:
    """A journal ``append``: new interactions (encoded) and the header after them."""

    header: SessionHeader
    items: Sequence[bytes]
    expected: int


@dataclass(frozen=True, slots=True)
class Delete:
    """A journal ``delete`` (``reason`` is set when a damaged file was quarantined)."""

    session_id: str
    reason: str | None = None


Change = Put | Append | Delete


def journal_record(
    seq: int, ops: Sequence[WriteOp], codec: Codec, envelope: Envelope, generation: int
) -> bytes | None:
    """Return the framed journal line for a batch, or ``None`` if it changes nothing.

    Encoded documents and interactions are spliced in as they are: they are valid JSON
    already, so nothing is encoded twice. A put carries the document and its size only: its
    header is the document's own fields, so metadata is written once (releases before format
    2 wrote ``{"put": <header>, "doc": ...}``, which replay still reads). The record is
    wrapped by ``envelope`` (sealed and compressed as configured; context
    ``journal:<generation>``, the segment it goes to) before it is framed, so the checksum
    covers what is on disk.
    """
    parts: list[bytes] = []
    for op in ops:
        if isinstance(op, PutOp):
            parts.append(b'{"doc":%s,"size":%d}' % (op.data, op.header.size_bytes))
        elif isinstance(op, AppendOp):
            head = dump_json(header_to_json(op.header, codec))
            items = b",".join(op.encoded)
            parts.append(b'{"append":%s,"expected":%d,"items":[%s]}' % (head, op.expected, items))
        elif isinstance(op, DeleteOp):
            parts.append(b'{"delete":%s}' % dump_json(op.session_id))
        else:
            assert isinstance(op, CheckOp)
    if not parts:
        return None
    record = b'{"seq":%d,"ops":[%s]}' % (seq, b",".join(parts))
    return frame(envelope.wrap(record, journal_context(generation)))


def control_record(seq: int, envelope: Envelope, generation: int, **fields: Any) -> bytes:
    """Return a framed control record (checkpoint markers, quarantine notices), wrapped.

    Control records hold no session data, but a store that seals everything reads no line in
    clear (:class:`~session_persistence.errors.UnsealedRecordError`), so they are sealed too.
    """
    return frame(envelope.wrap(orjson.dumps({"seq": seq, **fields}), journal_context(generation)))


def parse_changes(record: dict[str, Any], codec: Codec) -> list[Change]:
    """Decode and validate the ops of a journal record.

    Everything is checked as the API checks it: session ids by the id rule (so no record can
    name a path outside the store), headers field by field, a ``put``'s document and every
    appended interaction decoded in full, and the document re-encoded the way a write would.

    Raises:
        BadFile: The record is malformed (its checksum passed, so this is damage or tampering).
    """
    ops = record.get("ops")
    if type(ops) is not list or not ops:
        raise BadFile("journal record without ops")
    changes: list[Change] = []
    for op in ops:
        if type(op) is not dict or len(op) > 3:
            raise BadFile("journal op must be a small object")
        if "put" in op:
            changes.append(_parse_put(op, codec))
        elif "doc" in op:
            changes.append(_parse_doc(op, codec))
        elif "append" in op:
            changes.append(_parse_append(op, codec))
        elif "delete" in op:
            session_id = op["delete"]
            if len(op) != 1 or not is_valid_session_id(session_id):
                raise BadFile(f"journal delete of an invalid session id {session_id!r:.80}")
            changes.append(Delete(session_id))
        else:
            raise BadFile(f"unknown journal op {sorted(op)!r:.80}")
    return changes


def _parse_put(op: dict[str, Any], codec: Codec) -> Put:
    header = header_from_json(op["put"], codec)
    doc = op.get("doc")
    if type(doc) is not dict:
        raise BadFile("journal put without a document")
    with _invalid("journal put document"):
        session = document_to_session(doc, codec)
        data = orjson.dumps(doc)
    if session.session_id != header.session_id or session.version != header.version:
        raise BadFile("journal put whose document does not match its header")
    if len(session.interactions) != header.interaction_count:
        raise BadFile("journal put whose interaction count does not match its header")
    return Put(header, data)


def _parse_doc(op: dict[str, Any], codec: Codec) -> Put:
    doc, size = op["doc"], op.get("size")
    if type(doc) is not dict or len(op) != 2 or type(size) is not int or size < 2:
        raise BadFile("journal put without a document and its size")
    with _invalid("journal put document"):
        session = document_to_session(doc, codec)
        data = orjson.dumps(doc)
    return Put(header_of(session, size), data)


def _parse_append(op: dict[str, Any], codec: Codec) -> Append:
    items, expected = op.get("items"), op.get("expected")
    if type(items) is not list or not items or type(expected) is not int or expected < 1:
        raise BadFile("journal append without items or expected version")
    header = header_from_json(op["append"], codec)
    if header.version <= expected or header.interaction_count < len(items):
        raise BadFile("journal append whose header does not follow its expected version")
    with _invalid("journal append"):
        for index, item in enumerate(items):
            interaction_from_json(item, codec, f"interactions[+{index}]")
        encoded = [orjson.dumps(item) for item in items]
    return Append(header, encoded, expected)


@contextlib.contextmanager
def _invalid(what: str) -> Iterator[None]:
    """Turn any failure to decode or re-encode data read from disk into :class:`BadFile`.

    ``RecursionError`` and orjson's ``TypeError`` come from nesting no write can produce;
    ``ValueError`` from numbers or text no write can produce.
    """
    try:
        yield
    except (InvalidInputError, SerializationError, RecursionError, ValueError, TypeError) as exc:
        raise BadFile(f"{what} is invalid: {type(exc).__name__}: {exc}"[:300]) from exc


def tail_record(token: str, append: Append, codec: Codec, envelope: Envelope) -> bytes:
    """Return the framed line that records ``append`` in a session's tail file (wrapped)."""
    head = dump_json(header_to_json(append.header, codec))
    record = b'{"token":%s,"expected":%d,"header":%s,"items":[%s]}' % (
        dump_json(token),
        append.expected,
        head,
        b",".join(append.items),
    )
    return frame(envelope.wrap(record, tail_context(append.header.session_id)))


#: The envelope contexts (associated data) of the store's records: a sealed record opens only
#: where it was written (a session file moved to another name, a journal line copied into
#: another generation's segment, an index chunk put in another base, all fail authentication).
INDEX = b"index"


def journal_context(generation: int) -> bytes:
    """The envelope context of a line of journal segment ``generation``."""
    return b"journal:%d" % generation


def index_chunk_context(generation: int, number: int, chunks: int) -> bytes:
    """The envelope context of chunk ``number`` of ``chunks`` of the index base of ``generation``.

    Bound to all three: a chunk from another base, in another place, or in a base that says
    it has fewer chunks (to hide sessions) fails authentication, and the index is rebuilt.
    """
    return b"index:%d:%d/%d" % (generation, number, chunks)


def session_context(session_id: str) -> bytes:
    """The envelope context of a session's base file."""
    return b"session:" + session_id.encode()


def tail_context(session_id: str) -> bytes:
    """The envelope context of a session's tail records."""
    return b"tail:" + session_id.encode()


def opened(envelope: Envelope, data: bytes, context: bytes) -> bytes:
    """Unwrap a record read from disk; a record that fails to open is :class:`BadFile`.

    Raises:
        BadFile: The record fails authentication or does not decode (damage).
        SealingKeyError: The record needs a key the store was not given (not damage).
    """
    try:
        return envelope.unwrap(data, context)
    except Unsealable as exc:
        raise BadFile(str(exc)) from exc
