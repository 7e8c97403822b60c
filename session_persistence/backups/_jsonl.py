"""JSON Lines plumbing for export and import: opening targets and sources, reading lines.

The export file's layout is described in :mod:`._format`. Writing a path goes through a temp
file in the same directory: write → flush → fsync (in a durable store) → rename → fsync the
directory, so a crash leaves the old file or the complete new one, never a partial export.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, Any, Protocol, TypeAlias, cast

import orjson

from .._fileio import FileIO
from ..errors import BackupError, InvalidInputError
from ._format import EXPORT_KIND, check_kind

__all__ = [
    "LineReader",
    "PathOrStream",
    "check_end",
    "check_export_header",
    "describe",
    "open_for_reading",
    "open_for_writing",
    "parse_json",
    "read_lines",
    "take",
]

#: Where an export goes or an import comes from: a path, or an open file (binary or text).
PathOrStream: TypeAlias = "str | os.PathLike[str] | IO[bytes] | IO[str]"


def describe(target: object) -> str:
    if isinstance(target, str | os.PathLike):
        return os.fspath(target)
    return str(getattr(target, "name", "a stream"))


@contextlib.asynccontextmanager
async def open_for_writing(target: PathOrStream, durable: bool) -> AsyncIterator[Any]:
    """Yield ``write(bytes)``; a path is written to a temp file and renamed when complete."""
    if isinstance(target, str | os.PathLike):
        path = Path(target)
        try:
            handle, temp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.")
        except OSError as exc:
            raise BackupError(f"cannot write the export to {path}: {exc}") from exc
        stream = os.fdopen(handle, "wb")
        try:
            yield stream.write
            stream.flush()
            if durable:
                os.fsync(stream.fileno())  # the data, then the rename that publishes it
            stream.close()
            os.replace(temp, path)
        except BaseException:
            stream.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        if durable:
            FileIO().fsync_dir(path.parent.resolve())
        return
    if isinstance(target, io.TextIOBase):
        text = target

        def write_text(data: bytes) -> None:
            text.write(data.decode())

        yield write_text
        return
    if not hasattr(target, "write"):
        raise InvalidInputError("export target must be a path or a writable file")
    yield target.write


@contextlib.asynccontextmanager
async def open_for_reading(source: PathOrStream) -> AsyncIterator[LineReader]:
    if isinstance(source, str | os.PathLike):
        try:
            stream = await asyncio.to_thread(open, source, "rb")
        except OSError as exc:
            raise BackupError(f"cannot read {os.fspath(source)}: {exc}") from exc
        with stream:
            yield stream
        return
    if isinstance(source, io.TextIOBase):
        yield _TextAsBytes(source)
        return
    if not hasattr(source, "readline"):
        raise InvalidInputError("import source must be a path or a readable file")
    yield cast(LineReader, source)


class LineReader(Protocol):
    """What the importer needs of a source: lines of bytes, and maybe seeking back."""

    def readline(self, limit: int = -1, /) -> bytes: ...
    def seekable(self) -> bool: ...
    def tell(self) -> int: ...
    def seek(self, offset: int, /) -> int: ...


class _TextAsBytes:
    """Read a text stream as UTF-8 lines of bytes (what the line reader expects)."""

    def __init__(self, text: io.TextIOBase) -> None:
        self._text = text

    def readline(self, limit: int = -1) -> bytes:
        return self._text.readline(limit).encode()

    def seekable(self) -> bool:
        return self._text.seekable()

    def tell(self) -> int:
        return self._text.tell()

    def seek(self, offset: int) -> int:
        return self._text.seek(offset)


def read_lines(reader: LineReader, limit: int, label: str) -> Iterator[tuple[int, bytes]]:
    number = 0
    while True:
        line = reader.readline(limit + 1)
        if not line:
            return
        number += 1
        if not line.endswith(b"\n"):
            if len(line) > limit:
                raise BackupError(f"{label}: line {number} is longer than {limit} bytes")
            raise BackupError(f"{label} is truncated: line {number} is incomplete")
        if line.strip():
            yield number, line


def take(lines: Iterator[tuple[int, bytes]], count: int) -> list[tuple[int, bytes]]:
    out = []
    for item in lines:
        out.append(item)
        if len(out) >= count:
            break
    return out


def parse_json(raw: bytes, label: str, number: int) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BackupError(f"{label}: line {number} is not JSON ({exc})") from exc


def check_export_header(first: tuple[int, bytes] | None, label: str) -> None:
    if first is None:
        raise BackupError(f"{label} is empty: expected an export header line")
    check_kind(parse_json(first[1], label, first[0]), EXPORT_KIND, label)


def check_end(document: dict[str, Any], seen: int, label: str) -> None:
    end = document["end"]
    if type(end) is not dict or end.get("count") != seen:
        raise BackupError(
            f"{label}: the end marker says {end!r}, but {seen} session(s) came before it"
        )
