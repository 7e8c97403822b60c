"""The index snapshot: every session header as of the start of a journal generation.

Two files, so that a checkpoint writes what it changed and not the whole index:

* ``index.json``, the **base**: a checksummed document (see :mod:`._format`) whose body,
  a first line ``{"generation": G, "layout": "columns-1", "chunks": k}`` and ``k`` lines of
  columns (``ROWS_PER_CHUNK`` sessions each, one array per field: see
  :meth:`._table.HeaderTable.column_chunks`), holds every header at the start of generation
  ``G``. It is read a line at a time (:class:`_BodyLines`), each chunk in one parse with no
  object per session but a tuple, and its checksum verified at the last line. The
  generation is inside the checksummed body: a damaged head cannot make an old base pass
  for a newer one. Bases written by earlier releases (``{"generation": G,
  "headers": [...]}``, or a bare array of headers with the generation in the head only) are
  read and replaced by the next checkpoint; a ``layout`` this release does not know makes the
  index be rebuilt from the session files;
* ``index.delta``, the **deltas**: framed lines ``<crc32> {"from": F, "generation": G',
  "layout": "columns-1", "columns": {...}, "deleted": [...]}``, each taking the index from the
  start of generation ``F`` to the start of ``G'``: the headers of the sessions the
  checkpointed generations touched, as columns like the base's (lines written by earlier
  releases hold ``"headers": [...]`` objects instead, and are read as such), and the ids they
  deleted. A delta applies only where the one before it ended
  (``F`` is the generation reached so far), so a line lost to damage is noticed, never
  stepped over.

A checkpoint appends one delta line and fsyncs it: its cost follows what the generation
touched, not the size of the store. Once the deltas outgrow the base (and 1 MiB), the base is
rewritten with them folded in (temp file -> fsync -> rename -> fsync the directory) and the
delta file is emptied; a crash between the two leaves deltas the new base already holds, which
loading skips (their generation is not newer than the base's). Loading stops at the first delta
line that is torn or damaged: the snapshot is then as of an older generation, whose journal
segment is still there (segments are deleted only after the delta past them is durable), so
replay makes up the difference; if it is not, the index is rebuilt from the session files.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from pathlib import Path

import orjson

from ..._copy import no_gc_pauses
from ..._envelope import PLAIN, Envelope
from ..._fileio import FileIO
from ...errors import UnsealedRecordError
from ...models import SessionHeader
from ...serialization import Codec, dump_json
from ._format import (
    INDEX,
    BadFile,
    encode_document,
    frame,
    header_from_json,
    index_chunk_context,
    iter_frames,
    opened,
    read_head,
)
from ._table import COLUMNS_LAYOUT, HeaderTable

__all__ = ["IndexFiles"]

logger = logging.getLogger(__name__)

#: The delta file is folded into the base once it is larger than the base and this.
MIN_FOLD_BYTES = 1024 * 1024

#: Sessions per line (chunk of columns) of the base.
ROWS_PER_CHUNK = 50_000

_READ_BLOCK = 4 * 1024 * 1024


class _BodyLines:
    """A checksummed document's body, read from a file one line at a time.

    The head (the first line) is checked at once; the body's length at once too (against the
    file's size), and its CRC-32 as its last line is read. ``next()`` raises ``BadFile`` for
    a body that ends early; ``end()`` for one with lines left.
    """

    def __init__(self, io: FileIO, fd: int, kind: str) -> None:
        self._io, self._fd = io, fd
        self._buffer, self._position, self._offset = b"", 0, 0
        line = self._line()
        if line is None:
            raise BadFile("the file is empty or truncated")
        self.head, length, checksum = read_head(line, kind)
        self._crc, self._checksum = 0, checksum
        self._left = length  # body bytes not read yet (its final newline aside)
        if io.size(fd) != self._offset_of_body() + length + 1:
            raise BadFile(f"truncated or extended: the body should be {length} bytes")

    def _offset_of_body(self) -> int:
        return self._offset - (len(self._buffer) - self._position)

    def _line(self) -> bytes | None:
        parts = []
        while True:
            newline = self._buffer.find(b"\n", self._position)
            if newline >= 0:
                parts.append(self._buffer[self._position : newline])
                self._position = newline + 1
                return parts[0] if len(parts) == 1 else b"".join(parts)
            parts.append(self._buffer[self._position :])
            self._buffer = self._io.read_at(self._fd, _READ_BLOCK, self._offset)
            self._position = 0
            self._offset += len(self._buffer)
            if not self._buffer:
                return None

    def next(self) -> bytes:
        """The body's next line (its last: once its checksum has been verified)."""
        if self._left < 0:
            raise BadFile("the body has fewer lines than it says")
        line = self._line()
        if line is None or len(line) > self._left:
            raise BadFile("truncated: the body ends early")
        self._left -= len(line) + 1
        self._crc = zlib.crc32(line, self._crc)
        if self._left >= 0:
            self._crc = zlib.crc32(b"\n", self._crc)
        elif f"{self._crc:08x}" != self._checksum:
            raise BadFile("checksum mismatch: the content was damaged")
        return line

    def end(self) -> None:
        """Check the body has been read to its end (and so its checksum verified)."""
        if self._left >= 0:
            raise BadFile("the body has more lines than it says")


class IndexFiles:
    """Reads and writes ``index.json`` and ``index.delta`` under the store's directory."""

    def __init__(
        self,
        io: FileIO,
        root: Path,
        codec: Codec,
        *,
        file_mode: int,
        durable: bool,
        fsync_dir: Callable[[Path], None],
    ) -> None:
        self._io = io
        self._root = root
        self._codec = codec
        self._mode = file_mode
        self._durable = durable
        self._fsync_dir = fsync_dir
        self.base_path = root / "index.json"
        self.delta_path = root / "index.delta"
        self._legacy_base = False  # a base in the old form was read: rewrite it soon
        # index.delta holds bytes loading could not use (damage, a torn line): a delta appended
        # after them would never be read, so only a whole new base may be written now.
        self.damaged = False
        # Seals and compresses the chunk lines and delta lines (set at open by the store).
        self.envelope: Envelope = PLAIN

    def load(self) -> tuple[int, HeaderTable] | None:
        """Return ``(generation, index)``, or ``None`` when there is no usable base."""
        try:
            fd = self._io.open_read(self.base_path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("ignoring index snapshot %s (%s); rebuilding", self.base_path, exc)
            return None
        try:
            with no_gc_pauses():
                generation, table = self._read_base(_BodyLines(self._io, fd, "index"))
                generation = self._apply_deltas(generation, table)
        except (BadFile, orjson.JSONDecodeError, OSError, UnsealedRecordError) as exc:
            logger.warning("ignoring index snapshot %s (%s); rebuilding", self.base_path, exc)
            return None
        finally:
            self._io.close(fd)
        return generation, table

    def _read_base(self, lines: _BodyLines) -> tuple[int, HeaderTable]:
        """The base's generation and table, read a line (a chunk of columns) at a time.

        Only one chunk is parsed at a time, so opening holds the table and one chunk, not the
        file and its whole parse besides. The checksum covers the whole body and is checked at
        its last line: until then nothing read is trusted (the caller gets ``BadFile``).
        """
        generation = lines.head.get("generation")
        if type(generation) is not int or generation < 1:
            raise BadFile("bad generation")
        items = orjson.loads(lines.next())
        if type(items) is dict and items.get("layout") is not None:
            if items.get("generation") != generation:
                raise BadFile("the head and the body name different generations")
            if items["layout"] != COLUMNS_LAYOUT:
                raise BadFile(f"index layout {items['layout']!r} is not one this release reads")
            table = HeaderTable(self._codec)
            chunks = items.get("chunks", 0)
            if type(chunks) is not int or chunks < 0:
                raise BadFile("a bad count of index chunks")
            if "columns" in items:  # (one chunk on the first line)
                if self.envelope.strict:  # (this release writes none: a line in clear)
                    raise BadFile("index rows in clear in a store that seals everything")
                table.add_columns(items["columns"])
            for number in range(chunks):
                context = index_chunk_context(generation, number, chunks)
                table.add_columns(orjson.loads(opened(self.envelope, lines.next(), context)))
            lines.end()
            self._legacy_base = False
            return generation, table
        lines.end()
        if self.envelope.strict:
            raise BadFile("an index in clear (an earlier layout) in a store that seals everything")
        return generation, self._parse_base(generation, items)

    def _parse_base(self, generation: int, items: object) -> HeaderTable:
        """A base written by earlier releases: headers as objects."""
        self._legacy_base = True
        if type(items) is dict:
            if items.get("generation") != generation:
                raise BadFile("the head and the body name different generations")
            items = items.get("headers")
        if type(items) is not list:
            raise BadFile("the body must hold an array of headers")
        headers = (header_from_json(item, self._codec) for item in items)
        return HeaderTable.from_headers(headers, self._codec)

    def _apply_deltas(self, generation: int, headers: HeaderTable) -> int:
        self.damaged = False
        try:
            data = self._io.read_file(self.delta_path)
        except FileNotFoundError:
            return generation
        end = 0
        for end, payload in iter_frames(data):  # noqa: B007 - (end is used after the loop)
            try:
                record = orjson.loads(opened(self.envelope, payload, INDEX))
                start, target = record["from"], record["generation"]
                if type(start) is not int or type(target) is not int or not start < target:
                    raise BadFile("a delta without its generations")
                changed = self._changed(record)
                deleted = record["deleted"]
                if type(deleted) is not list or not all(type(x) is str for x in deleted):
                    raise BadFile("a delta's deleted ids must be strings")
                if target > generation and start != generation:
                    raise BadFile(f"a delta from generation {start} follows {generation}")
            except (
                orjson.JSONDecodeError,
                KeyError,
                TypeError,
                BadFile,
                UnsealedRecordError,
            ) as exc:
                logger.warning("ignoring index deltas from a bad line on (%s)", exc)
                self.damaged = True
                return generation
            if target <= generation:
                continue  # folded into the base already
            for session_id in deleted:
                headers.discard(session_id)
            headers.update(changed)
            generation = target
        if end != len(data):
            logger.warning("ignoring index deltas from a damaged or torn line at byte %d", end)
            self.damaged = True
        return generation

    def _changed(self, record: dict[str, object]) -> HeaderTable:
        """A delta's changed headers: columns, or (written by earlier releases) objects."""
        if "layout" in record:
            if record["layout"] != COLUMNS_LAYOUT:
                raise BadFile(f"index delta layout {record['layout']!r} is not one this reads")
            return HeaderTable.from_columns(record.get("columns"), self._codec)
        items = record["headers"]
        if type(items) is not list:
            raise BadFile("a delta's headers must be an array")
        return HeaderTable.from_headers(
            (header_from_json(item, self._codec) for item in items), self._codec
        )

    def write_base(self, generation: int, index: HeaderTable) -> None:
        """Write the whole index as of the start of ``generation`` and empty the deltas."""
        self.damaged = False
        chunks = [dump_json(chunk) for chunk in index.column_chunks(ROWS_PER_CHUNK)]
        if self.envelope.active:
            wrap, count = self.envelope.wrap, len(chunks)
            for number, chunk in enumerate(chunks):
                chunks[number] = wrap(chunk, index_chunk_context(generation, number, count))
        first = dump_json(
            {"generation": generation, "layout": COLUMNS_LAYOUT, "chunks": len(chunks)}
        )
        body = b"\n".join([first, *chunks])
        del chunks
        self._io.replace_file(
            self.base_path,
            encode_document("index", body, generation=generation),
            temp_dir=self._root / "tmp",
            mode=self._mode,
            durable=self._durable,
        )
        self._fsync_dir(self._root)
        if self._io.exists(self.delta_path):
            fd = self._io.open_append(self.delta_path, self._mode)
            try:
                self._io.truncate(fd, 0)
                if self._durable:
                    self._io.fsync(fd)
            finally:
                self._io.close(fd)

    def append_delta(
        self, start: int, generation: int, changed: list[SessionHeader], deleted: list[str]
    ) -> None:
        """Record what one checkpointed generation changed; fold the deltas in when due.

        Raises:
            OSError: Writing failed, or the delta file is damaged (a checkpoint holding the
                store lock throughout then writes a whole base instead; see
                :func:`._checkpoint.checkpoint_now`).
        """
        if self.damaged:
            raise OSError(
                f"{self.delta_path} is damaged; the next full checkpoint (optimize(), shutdown "
                "or the next open) rewrites the index"
            )
        payload = dump_json(
            {
                "from": start,
                "generation": generation,
                "layout": COLUMNS_LAYOUT,
                "columns": HeaderTable.from_headers(changed, self._codec).columns(),
                "deleted": deleted,
            }
        )
        new = not self._io.exists(self.delta_path)
        fd = self._io.open_append(self.delta_path, self._mode)
        try:
            start = self._io.size(fd)
            try:
                self._io.write(fd, frame(self.envelope.wrap(payload, INDEX)))
                if self._durable:
                    self._io.fsync(fd)
            except OSError:
                # A partial line must not stay: later deltas after it would be ignored.
                self._io.truncate(fd, start)
                raise
            size = self._io.size(fd)
        finally:
            self._io.close(fd)
        if new:
            self._fsync_dir(self._root)  # the file's name must survive a power cut too
        try:
            base_size = self._io.lstat(self.base_path).st_size
        except FileNotFoundError:
            base_size = 0
        if self._legacy_base or size > max(base_size, MIN_FOLD_BYTES):
            self.fold()

    def worth_folding(self, fraction: float) -> bool:
        """Whether the deltas are larger than ``fraction`` of the base (and ``MIN_FOLD_BYTES``)."""
        try:
            delta = self._io.lstat(self.delta_path).st_size
            base = self._io.lstat(self.base_path).st_size
        except FileNotFoundError:
            return False
        return delta > max(base * fraction, MIN_FOLD_BYTES)

    def fold(self) -> None:
        """Rewrite the base with every delta folded in (from the files, not from memory)."""
        loaded = self.load()
        if loaded is None:
            return  # nothing usable to fold: the next full checkpoint writes a base
        self.write_base(*loaded)
        self._legacy_base = False
