"""JSON Lines plumbing for export and import: opening targets and sources, reading lines.

The export file's layout is described in :mod:`._format`. Writing a path goes through a temp
file in the same directory: write → fsync (in a durable store) → rename → fsync the
directory, so a crash leaves the old file or the complete new one, never a partial export, and
a failed write (a full disk) removes the temp file and raises ``StoreIOError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io as _io
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol, TypeAlias, cast

import orjson

from .._fileio import FileIO
from ..errors import BackupError, InvalidInputError, StoreIOError
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
async def open_for_writing(
    target: PathOrStream, durable: bool, io: FileIO
) -> AsyncIterator[Callable[[bytes], object]]:
    """Yield ``write(bytes)``; a path is written to a temp file and renamed when complete.

    Every file operation goes through ``io`` (the store's I/O seam).

    Raises:
        StoreIOError: Writing failed (the cause kept). A path is left as it was, with no temp
            file beside it, unless only the last step, syncing its directory, failed: then the
            export is complete and the message says so.
    """
    if isinstance(target, str | os.PathLike):
        async with _writing_path(Path(target), durable, io) as write_path:
            yield write_path
        return
    label = describe(target)
    if isinstance(target, _io.TextIOBase):
        text = target

        def write_text(data: bytes) -> object:
            return text.write(data.decode())

        yield _typed(write_text, label, None)
        return
    if not hasattr(target, "write"):
        raise InvalidInputError("export target must be a path or a writable file")
    yield _typed(cast(Callable[[bytes], object], target.write), label, None)


@contextlib.asynccontextmanager
async def _writing_path(
    path: Path, durable: bool, io: FileIO
) -> AsyncIterator[Callable[[bytes], object]]:
    # Order: temp file in the same directory → write → fsync (durable) → rename over the
    # path → fsync the directory. A failure before the rename removes the temp file, so the
    # path keeps its old content; a crash leaves at most a temp file, never a partial export.
    directory = path.parent
    temp = directory / f".{path.name}.{os.urandom(8).hex()}.tmp"
    try:
        fd = io.open_new(temp, 0o600)
    except OSError as exc:
        raise _failed(path, exc) from exc
    try:
        yield _typed(lambda data: io.write(fd, data), str(path), path)
        if durable:
            io.fsync(fd)
        io.close(fd)
        fd = -1
        io.rename(temp, path)
    except BaseException as error:
        if fd >= 0:
            with contextlib.suppress(OSError):
                io.close(fd)
        with contextlib.suppress(OSError):  # the original error matters, not this one
            io.unlink(temp)
        if isinstance(error, OSError) and not isinstance(error, StoreIOError):
            raise _failed(path, error) from error
        raise
    if durable:
        try:
            io.fsync_dir(directory.resolve())
        except OSError as exc:
            raise StoreIOError(
                f"the export to {path} is complete, but syncing its directory failed ({exc}); "
                "it may not survive a power cut",
                str(path),
            ) from exc


def _failed(path: Path, exc: OSError) -> StoreIOError:
    return StoreIOError(
        f"writing the export to {path} failed: {exc}; {path} was left as it was", str(path)
    )


def _typed(
    write: Callable[[bytes], object], label: str, path: Path | None
) -> Callable[[bytes], object]:
    """Wrap ``write`` so an ``OSError`` from it is a :class:`StoreIOError` (cause kept)."""

    def checked(data: bytes) -> object:
        try:
            return write(data)
        except StoreIOError:
            raise
        except OSError as exc:
            if path is not None:
                raise _failed(path, exc) from exc
            raise StoreIOError(f"writing the export to {label} failed: {exc}") from exc

    return checked


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
    if isinstance(source, _io.TextIOBase):
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

    def __init__(self, text: _io.TextIOBase) -> None:
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


def check_export_header(first: tuple[int, bytes] | None, label: str) -> dict[str, Any]:
    """Check an export's first line; return its fields."""
    if first is None:
        raise BackupError(f"{label} is empty: expected an export header line")
    fields = parse_json(first[1], label, first[0])
    check_kind(fields, EXPORT_KIND, label)
    return cast(dict[str, Any], fields)


def check_end(document: dict[str, Any], seen: int, label: str) -> None:
    end = document["end"]
    if type(end) is not dict or end.get("count") != seen:
        raise BackupError(
            f"{label}: the end marker says {end!r}, but {seen} session(s) came before it"
        )
