"""Session files: ``sessions/<id>.json`` (the base) and ``sessions/<id>.tail`` (appends since).

A base is a checksummed document (see :mod:`._format`) whose head carries a random ``token``;
its body is the session document. A tail holds framed records, each naming the token of the
base it extends, the version it expects and the header after it, plus the new interactions. A
tail whose token differs from the base's is stale (left by a crash between writing a new base
and removing the old tail) and is ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ..._envelope import PLAIN, Envelope
from ..._fileio import FileIO, NotRegularFile
from ...documents import document_to_session, header_of, interaction_from_json
from ...errors import InvalidInputError, SerializationError
from ...models import Interaction, PersistedSession, SessionHeader
from ._format import (
    Append,
    BadFile,
    decode_document,
    encode_document,
    header_from_json,
    opened,
    session_context,
    tail_context,
    with_header,
)
from ._journal import split_lines

__all__ = ["OnDisk", "SessionFiles", "decode_items", "extend", "merged_document"]

_HEAD_PROBE = 4096


@dataclass(slots=True)
class OnDisk:
    """A session as read from its base and tail."""

    session: PersistedSession
    header: SessionHeader
    tail_problem: str | None = None  # why reading the tail stopped early, if it did


def decode_items(items: list[Any], codec: Any, first_index: int) -> list[Interaction]:
    """Decode JSON-native interactions (validated like everything read from storage)."""
    result = []
    for offset, item in enumerate(items):
        path = f"interactions[{first_index + offset}]"
        try:
            result.append(interaction_from_json(item, codec, path))
        except (InvalidInputError, SerializationError) as exc:
            raise BadFile(f"bad appended interaction: {exc}") from exc
    return result


def extend(session: PersistedSession, append: Append, codec: Any) -> PersistedSession:
    """Return ``session`` with ``append`` applied (the session is the caller's; it is reused)."""
    items = [orjson.loads(item) for item in append.items]
    session.interactions.extend(decode_items(items, codec, len(session.interactions)))
    return with_header(session, append.header)


class SessionFiles:
    """Reads and writes the files of sessions in one ``sessions/`` directory."""

    def __init__(
        self, io: FileIO, root: Path, codec: Any, *, file_mode: int, durable: bool
    ) -> None:
        self.io = io
        self.dir = root / "sessions"
        self.tmp = root / "tmp"
        self.quarantine_dir = root / "quarantine"
        self.codec = codec
        self.file_mode = file_mode
        self.durable = durable
        # Seals and compresses what is written (the store's; set at open, changed in place
        # by a key rotation).
        self.envelope: Envelope = PLAIN

    def base(self, session_id: str) -> Path:
        """Path of a session's base file."""
        return self.dir / f"{session_id}.json"

    def tail(self, session_id: str) -> Path:
        """Path of a session's tail file."""
        return self.dir / f"{session_id}.tail"

    def _read(self, path: Path) -> bytes | None:
        try:
            return self.io.read_file(path)
        except FileNotFoundError:
            return None
        except NotRegularFile as exc:
            raise BadFile(f"{path.name} is {exc.what}; only regular files are read") from exc

    def read(self, session_id: str) -> OnDisk | None:
        """Read a session from its base and tail; ``None`` if it has no base file.

        Raises:
            BadFile: The base is damaged, of a newer format, a link, or names another session.
            OSError: Reading failed.
        """
        data = self._read(self.base(session_id))
        if data is None:
            return None
        head, body = decode_document(data, "session")
        token = head.get("token")
        if type(token) is not str:
            raise BadFile("the first line lacks the base token")
        body = opened(self.envelope, body, session_context(session_id))
        try:
            session = document_to_session(orjson.loads(body), self.codec)
        except (orjson.JSONDecodeError, InvalidInputError, SerializationError) as exc:
            raise BadFile(f"the session document is invalid: {exc}") from exc
        if session.session_id != session_id:
            raise BadFile(f"the file holds session {session.session_id!r}, not {session_id!r}")
        header = header_of(session, len(body))
        tail = self._read(self.tail(session_id)) or b""
        session, header, problem = self._apply_tail(session, header, token, tail)
        return OnDisk(session, header, problem)

    def _apply_tail(
        self, session: PersistedSession, header: SessionHeader, token: str, tail: bytes
    ) -> tuple[PersistedSession, SessionHeader, str | None]:
        """Apply the tail's records that extend the base; say why it stopped early, if so.

        A torn last record (no newline) is normal after a crash during a checkpoint: the
        journal still holds it. Anything else that stops the reading is reported, and the
        caller decides, against the journal, whether the session is damaged.
        """
        lines, intact_end = split_lines(tail)
        context = tail_context(session.session_id)
        for line in lines:
            if line.payload is None:
                return session, header, f"tail record at byte {line.start} fails its checksum"
            try:
                record = orjson.loads(opened(self.envelope, line.payload, context))
            except BadFile as exc:
                return session, header, f"tail record at byte {line.start}: {exc}"
            except orjson.JSONDecodeError:
                record = None
            if type(record) is not dict:
                return session, header, f"tail record at byte {line.start} is not an object"
            if record.get("token") != token:
                break  # a stale tail, left by a crash before it was removed
            items, expected = record.get("items"), record.get("expected")
            try:
                after = header_from_json(record.get("header"), self.codec)
                if type(items) is not list or type(expected) is not int:
                    raise BadFile("no items or expected version")
                if after.version <= header.version:
                    continue  # already folded into the base by a compaction
                if expected != header.version or after.session_id != session.session_id:
                    raise BadFile(f"it expects version {expected}, the base has {header.version}")
                new = decode_items(items, self.codec, len(session.interactions))
            except BadFile as exc:
                return session, header, f"tail record at byte {line.start} is invalid ({exc})"
            session.interactions.extend(new)
            session = with_header(session, after)
            header = after
        if b"\n" in tail[intact_end:]:
            return session, header, f"tail bytes from {intact_end} fail their checksum"
        return session, header, None

    def read_token(self, session_id: str) -> str:
        """Return the token of a session's base by reading only its first line."""
        try:
            fd = self.io.open_read(self.base(session_id))
        except NotRegularFile as exc:
            raise BadFile(f"the base is {exc.what}; only regular files are read") from exc
        try:
            start = self.io.read_at(fd, _HEAD_PROBE, 0)
        finally:
            self.io.close(fd)
        newline = start.find(b"\n")
        try:
            head = orjson.loads(start[:newline]) if newline > 0 else None
        except orjson.JSONDecodeError:
            head = None
        if type(head) is not dict or type(head.get("token")) is not str:
            raise BadFile("the first line of the base is damaged")
        token: str = head["token"]
        return token

    def write_base(self, session_id: str, doc: bytes) -> None:
        """Replace a session's base (temp → fsync → rename), then remove its old tail.

        ``doc`` is the plain document; the file holds it wrapped by :attr:`envelope`.

        The caller fsyncs ``sessions/`` afterwards. A crash after the rename and before the
        unlink leaves a tail whose token no longer matches: it is ignored.
        """
        token = os.urandom(8).hex()
        body = self.envelope.wrap(doc, session_context(session_id))
        data = encode_document("session", body, token=token)
        self.io.replace_file(
            self.base(session_id),
            data,
            temp_dir=self.tmp,
            mode=self.file_mode,
            durable=self.durable,
        )
        self.io.unlink(self.tail(session_id))

    def append_tail(self, session_id: str, records: bytes) -> None:
        """Append framed records to a session's tail and (durable) fsync it."""
        fd = self.io.open_append(self.tail(session_id), self.file_mode)
        try:
            self.io.write(fd, records)
            if self.durable:
                self.io.fsync(fd)
        finally:
            self.io.close(fd)

    def tail_size(self, session_id: str) -> tuple[int, int]:
        """Return the sizes of the base and the tail (0 when absent)."""
        sizes = []
        for path in (self.base(session_id), self.tail(session_id)):
            try:
                sizes.append(self.io.lstat(path).st_size)
            except FileNotFoundError:
                sizes.append(0)
        return sizes[0], sizes[1]

    def remove(self, session_id: str) -> None:
        """Delete a session's base and tail."""
        self.io.unlink(self.base(session_id))
        self.io.unlink(self.tail(session_id))

    def set_aside(self, session_id: str, reason: str) -> Path | None:
        """Move a session's base and tail (those that exist) to ``quarantine/``.

        Returns where the base went, or ``None`` if it had none.
        """
        moved = None
        for path in (self.base(session_id), self.tail(session_id)):
            if self.io.exists(path):
                target = self.quarantine(path.name, reason)
                if path.suffix == ".json":
                    moved = target
        return moved

    def keep_in_quarantine(self, name: str, content: bytes, reason: str) -> Path:
        """Write a copy of damaged content into ``quarantine/<name>`` beside a ``.reason``."""
        target = self.quarantine_dir / name
        self.io.replace_file(
            target, content, temp_dir=self.tmp, mode=self.file_mode, durable=self.durable
        )
        self._note(target, reason, f"a copy of {name}")
        return target

    def quarantine(self, name: str, reason: str) -> Path:
        """Move ``sessions/<name>`` into ``quarantine/`` beside a ``.reason`` file.

        The file is renamed, never followed or rewritten, so what was found is kept as found.
        """
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        target = self.quarantine_dir / f"{name}.{stamp}.{os.urandom(3).hex()}"
        self.io.rename(self.dir / name, target)
        self._note(target, reason, f"sessions/{name}")
        if self.durable:
            self.io.fsync_dir(self.dir)
        return target

    def _note(self, target: Path, reason: str, origin: str) -> None:
        note = f"{reason}\nfrom: {origin}\nat: {datetime.now(UTC).isoformat()}\n"
        self.io.replace_file(
            target.with_name(target.name + ".reason"),
            note.encode(),
            temp_dir=self.tmp,
            mode=self.file_mode,
            durable=self.durable,
        )
        if self.durable:
            self.io.fsync_dir(self.quarantine_dir)


def merged_document(doc: bytes, appends: list[Append], codec: Any) -> bytes:
    """Return a session document with ``appends`` folded in (for writing a new base)."""
    if not appends:
        return doc
    document = orjson.loads(doc)
    for append in appends:
        document["interactions"].extend(orjson.loads(item) for item in append.items)
    last = appends[-1].header
    document["version"] = last.version
    document["updated_at"] = last.updated_at.isoformat()
    document["last_accessed_at"] = last.last_accessed_at.isoformat()
    document["expires_at"] = None if last.expires_at is None else last.expires_at.isoformat()
    return orjson.dumps(document)
