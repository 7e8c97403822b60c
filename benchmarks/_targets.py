"""What is measured: this project's stores, and the peers a user would pick instead.

Every target offers the same three operations on a JSON document of a given size, so the
create, update and get workloads compare like with like:

* ours: ``create_session`` (the payload in ``metadata``), ``update_session`` of the metadata,
  ``get_session``;
* raw ``sqlite3`` in WAL mode, ``synchronous=FULL`` and ``NORMAL``: one upsert per transaction
  into ``kv(id TEXT PRIMARY KEY, data BLOB)``;
* ``diskcache.Cache``: ``set``/``get`` of the encoded document;
* a JSON file per session, done the usual way: write a temp file, ``os.replace`` it over the
  old one; with fsync (file, then directory) or without;
* the physical floor: appending a record of the same size to one file and ``fdatasync``-ing it.
"""

from __future__ import annotations

import abc
import os
import sqlite3
from pathlib import Path
from typing import Any

import diskcache
import orjson

from session_persistence import (
    FileSystemSessionStore,
    InMemorySessionStore,
    Interaction,
    InteractionMessage,
    SessionStore,
    SQLiteSessionStore,
)
from session_persistence.testing import session_object

__all__ = [
    "OURS",
    "PEERS",
    "Target",
    "exchange",
    "exchange_items",
    "make_target",
    "payload",
]


def payload(size: int, salt: int) -> dict[str, Any]:
    """A document body of about ``size`` bytes that differs for every ``salt``.

    (SQLite skips rewriting a row whose bytes did not change; so may a cache.)
    """
    stamp = f"{salt:012d}"
    return {"blob": (stamp * (size // len(stamp) + 1))[: max(size - 40, 12)], "salt": salt}


class Target(abc.ABC):
    """Something that stores documents by key."""

    name: str

    def __init__(self, root: Path) -> None:
        self.root = root

    async def open(self) -> None:
        """Open (create) the storage under ``root``."""

    async def close(self) -> None:
        """Close it; data stays."""

    @abc.abstractmethod
    async def create(self, body: dict[str, Any]) -> str:
        """Store a new document; return its key."""

    @abc.abstractmethod
    async def update(self, key: str, body: dict[str, Any]) -> None:
        """Replace a document's body."""

    @abc.abstractmethod
    async def get(self, key: str) -> Any:
        """Read a document back (decoded)."""


class Ours(Target):
    """One of this project's stores, through its public API."""

    def __init__(self, root: Path, name: str) -> None:
        super().__init__(root)
        self.name = name
        self.store: SessionStore = self._build()

    def _build(self) -> SessionStore:
        if self.name == "filesystem/full":
            return FileSystemSessionStore(self.root / "fs", watch=False)
        if self.name == "filesystem/process":
            return FileSystemSessionStore(self.root / "fs", durability="process", watch=False)
        if self.name == "sqlite/full":
            return SQLiteSessionStore(self.root / "sessions.db", watch=False)
        if self.name == "sqlite/process":
            return SQLiteSessionStore(self.root / "sessions.db", durability="process", watch=False)
        if self.name == "memory":
            return InMemorySessionStore()
        raise ValueError(self.name)

    async def open(self) -> None:
        """Open the store."""
        await self.store.initialize()

    async def close(self) -> None:
        """Shut the store down."""
        await self.store.shutdown()

    async def create(self, body: dict[str, Any]) -> str:
        """``create_session`` with the body as metadata."""
        created = await self.store.create_session(session_object(), metadata=body)
        return created.session_id

    async def update(self, key: str, body: dict[str, Any]) -> None:
        """``update_session`` of the metadata."""
        await self.store.update_session(key, {"metadata": body})

    async def get(self, key: str) -> Any:
        """``get_session``."""
        return await self.store.get_session(key)


class RawSQLite(Target):
    """sqlite3 in WAL mode, one upsert per transaction (autocommit)."""

    def __init__(self, root: Path, synchronous: str) -> None:
        super().__init__(root)
        self.name = f"sqlite3 raw/{synchronous}"
        self.synchronous = synchronous
        self.db: sqlite3.Connection | None = None
        self.next = 0

    async def open(self) -> None:
        """Connect and create the table."""
        self.root.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.root / f"raw-{self.synchronous}.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        db.execute("CREATE TABLE IF NOT EXISTS kv (id TEXT PRIMARY KEY, data BLOB)")
        self.db = db

    async def close(self) -> None:
        """Close the connection."""
        if self.db is not None:
            self.db.close()
            self.db = None

    async def create(self, body: dict[str, Any]) -> str:
        """INSERT."""
        assert self.db is not None
        self.next += 1
        key = f"k{self.next:08d}"
        self.db.execute("INSERT INTO kv VALUES (?, ?)", (key, orjson.dumps(body)))
        return key

    async def update(self, key: str, body: dict[str, Any]) -> None:
        """An upsert."""
        assert self.db is not None
        self.db.execute(
            "INSERT INTO kv VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET data = excluded.data",
            (key, orjson.dumps(body)),
        )

    async def get(self, key: str) -> Any:
        """SELECT and decode."""
        assert self.db is not None
        (data,) = self.db.execute("SELECT data FROM kv WHERE id = ?", (key,)).fetchone()
        return orjson.loads(data)


class DiskCache(Target):
    """``diskcache.Cache`` (SQLite underneath, values in its own files when large)."""

    name = "diskcache"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.cache: diskcache.Cache | None = None
        self.next = 0

    async def open(self) -> None:
        """Open the cache directory."""
        self.cache = diskcache.Cache(str(self.root / "diskcache"))

    async def close(self) -> None:
        """Close the cache."""
        if self.cache is not None:
            self.cache.close()
            self.cache = None

    async def create(self, body: dict[str, Any]) -> str:
        """``set`` a new key."""
        assert self.cache is not None
        self.next += 1
        key = f"k{self.next:08d}"
        self.cache.set(key, orjson.dumps(body))
        return key

    async def update(self, key: str, body: dict[str, Any]) -> None:
        """``set`` again."""
        assert self.cache is not None
        self.cache.set(key, orjson.dumps(body))

    async def get(self, key: str) -> Any:
        """``get`` and decode."""
        assert self.cache is not None
        return orjson.loads(self.cache.get(key))


class JsonFiles(Target):
    """A JSON file per session: temp file, optional fsync, ``os.replace``, optional dir fsync."""

    def __init__(self, root: Path, fsync: bool) -> None:
        super().__init__(root)
        self.fsync = fsync
        self.name = "json files/fsync" if fsync else "json files/no fsync"
        self.dir = root / ("json-fsync" if fsync else "json")
        self.next = 0

    async def open(self) -> None:
        """Create the directory."""
        self.dir.mkdir(parents=True, exist_ok=True)

    def _write(self, key: str, body: dict[str, Any]) -> None:
        temp = self.dir / f".{key}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, orjson.dumps(body))
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, self.dir / f"{key}.json")
        if self.fsync:
            directory = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    async def create(self, body: dict[str, Any]) -> str:
        """Write a new file."""
        self.next += 1
        key = f"k{self.next:08d}"
        self._write(key, body)
        return key

    async def update(self, key: str, body: dict[str, Any]) -> None:
        """Replace the file."""
        self._write(key, body)

    async def get(self, key: str) -> Any:
        """Read and parse the file."""
        return orjson.loads((self.dir / f"{key}.json").read_bytes())


class FsyncFloor(Target):
    """The physical floor: append the record to one file and ``fdatasync`` it."""

    name = "fdatasync floor"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.fd: int | None = None

    async def open(self) -> None:
        """Open the log file."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.root / "floor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    async def close(self) -> None:
        """Close it."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    async def create(self, body: dict[str, Any]) -> str:
        """Append and sync."""
        await self.update("log", body)
        return "log"

    async def update(self, key: str, body: dict[str, Any]) -> None:
        """Append and sync."""
        assert self.fd is not None
        os.write(self.fd, orjson.dumps(body) + b"\n")
        os.fdatasync(self.fd)

    async def get(self, key: str) -> Any:
        """Not a store: nothing to read."""
        raise NotImplementedError


OURS = ("filesystem/full", "filesystem/process", "sqlite/full", "sqlite/process", "memory")
PEERS = (
    "sqlite3 raw/FULL",
    "sqlite3 raw/NORMAL",
    "diskcache",
    "json files/fsync",
    "json files/no fsync",
    "fdatasync floor",
)


def make_target(name: str, root: Path) -> Target:
    """The target called ``name``, storing under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    if name in OURS:
        return Ours(root, name)
    if name.startswith("sqlite3 raw/"):
        return RawSQLite(root, name.rpartition("/")[2])
    if name == "diskcache":
        return DiskCache(root)
    if name.startswith("json files/"):
        return JsonFiles(root, fsync=name.endswith("/fsync"))
    if name == "fdatasync floor":
        return FsyncFloor(root)
    raise ValueError(name)


def exchange_items(number: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Exchange ``number``: a user request and an assistant response, as chat-message items.

    The shape ``openai-agents`` sessions hold (``{"role": ..., "content": ...}``), about 200
    bytes each. The same two dicts become one of our interactions (:func:`exchange`).
    """
    filler = "lorem ipsum dolor sit amet " * 6
    return (
        {"role": "user", "content": f"question {number}: {filler}"},
        {"role": "assistant", "content": f"answer {number}: {filler}"},
    )


def exchange(number: int) -> Interaction:
    """Exchange ``number`` as one interaction: its request and one response."""
    request, response = exchange_items(number)
    return Interaction(
        request=InteractionMessage(event=request, sender="user", recipients={"assistant"}),
        responses=[InteractionMessage(event=response, sender="assistant")],
    )
