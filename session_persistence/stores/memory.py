r"""``InMemorySessionStore``: the reference backend, and the model other stores are tested against.

Sessions live in a dict in this process; nothing survives the process unless a snapshot file is
configured (seed 002's "JSON backup for development continuity"):

* ``persistence_path``: a JSON file loaded at :meth:`initialize` and written at
  :meth:`shutdown`, and every ``persistence_interval`` seconds if given.
* The snapshot is written atomically: encoded in full, written to a uniquely named temporary file
  in the same directory, ``fsync``\\ ed, renamed over the old snapshot, and the directory is
  ``fsync``\\ ed. A crash at any step leaves either the previous snapshot or the new one, never a
  mix; a temporary file left by a crash is removed at the next :meth:`initialize`.
* Changes made after the last snapshot are lost if the process dies: this store is not durable
  per write. Use the filesystem or SQLite store for that.

A snapshot file is untrusted input: it is fully validated at load (format, every session id and
field) and a bad one makes :meth:`initialize` fail with ``StoreCorruptionError`` naming the
file, leaving the file untouched.

Sealing (``SessionStoreConfig(encryption=...)``, ``compression=...``): the snapshot is one
record, sealed and compressed as a whole with the context ``b"snapshot"``, so nothing of it
(not even a session id) is in clear on disk. Being one record, a damaged or tampered sealed
snapshot is reported like any damaged snapshot (``StoreCorruptionError`` naming the file at
:meth:`initialize`), and a snapshot sealed with a key the keyring lacks makes
:meth:`initialize` raise ``SealingKeyError``; neither changes the file. ``rotate_key`` writes
the snapshot anew under the new key (atomically, as every snapshot) when one exists, and
``key_status`` counts it as one record. Sessions in memory are never sealed (an attacker who
can read the process's memory is outside the threat model, see ``docs/sealing.md``). Backups
are sealed by the backup engine, as every store's are; kept in memory (no ``backup_dir``) they
never reach disk, so sealing them there protects nothing, but costs little.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import orjson

from .._copy import clone_interactions, lend_session
from .._envelope import Envelope, Unsealable, record_key
from .._fileio import FileIO
from ..config import Duration, SessionStoreConfig, seconds
from ..documents import document_to_session, header_of, session_to_document
from ..errors import (
    ConfigurationError,
    InvalidInputError,
    SessionLimitError,
    StoreCorruptionError,
    StoreIOError,
)
from ..models import Interaction, PersistedSession, ProgressCallback, SessionHeader
from ..ops import AppendOp, CheckOp, DeleteOp, PutOp, WriteOp, check_versions
from ..serialization import FORMAT_VERSION, Codec, dump_json
from ._history import HistoryWindow
from .base import SessionStore

__all__ = ["InMemorySessionStore"]

logger = logging.getLogger(__name__)

_SNAPSHOT_KIND = "session-persistence-memory-snapshot"

#: The AEAD context of the snapshot record: binds it to being this store's snapshot.
_SNAPSHOT_CONTEXT = b"snapshot"

#: Enough of a snapshot's first bytes to read which key sealed it (``record_key``).
_HEAD_BYTES = 80


class InMemorySessionStore(SessionStore):
    """Keeps sessions in memory; optionally snapshots them to a JSON file.

    Args:
        config: Store options.
        codec: Serialization codec (used for size checks and snapshots).
        persistence_path: Snapshot file, loaded at initialize and saved at shutdown.
        persistence_interval: Also save the snapshot this often (seconds or timedelta).
    """

    store_type: ClassVar[str] = "memory"

    def __init__(
        self,
        config: SessionStoreConfig | None = None,
        *,
        codec: Codec | None = None,
        persistence_path: str | os.PathLike[str] | None = None,
        persistence_interval: Duration | None = None,
    ) -> None:
        super().__init__(config, codec=codec)
        if persistence_interval is not None:
            if persistence_path is None:
                raise ConfigurationError(
                    "persistence_interval", "needs persistence_path to know where to write"
                )
            if seconds(persistence_interval) <= 0:
                raise ConfigurationError("persistence_interval", "must be greater than zero")
        self._path = None if persistence_path is None else Path(persistence_path)
        self._interval = persistence_interval
        self._sessions: dict[str, PersistedSession] = {}
        self._headers: dict[str, SessionHeader] = {}
        self._lock = threading.RLock()
        self._snapshot_lock = asyncio.Lock()
        self._snapshots_written = 0

    # -- lifecycle -------------------------------------------------------------------------

    async def _open(self) -> None:
        if self._path is not None:
            await asyncio.to_thread(self._load_snapshot, self._path)
            if self._interval is not None:
                self._spawn(self._snapshot_loop, "snapshot")

    async def _close(self) -> None:
        if self._path is not None:
            await self.save_snapshot()

    async def _snapshot_loop(self) -> None:
        assert self._interval is not None
        interval = seconds(self._interval)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.save_snapshot()
            except Exception as exc:  # keep the timer alive; counted in health
                self._record_error(exc)
                logger.exception("writing the snapshot failed; retrying in %.1fs", interval)

    # -- the narrow core -------------------------------------------------------------------

    async def _load(self, session_id: str) -> PersistedSession | None:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            # Reads are recorded on the header only (see _touch); the copy carries them.
            return lend_session(session, self._headers[session_id].last_accessed_at)

    async def _get_header(self, session_id: str) -> SessionHeader | None:
        return self._headers.get(session_id)

    async def _load_live_interactions(
        self, session_id: str, now: datetime, window: HistoryWindow
    ) -> list[Interaction] | None:
        # _load_live's expiry and touch, then a copy of the slice only, under the lock that
        # every batch is applied under (so from one committed version).
        with self._lock:
            header = self._headers.get(session_id)
            if header is None or self._expired(header, now):
                return None
            self._touch(session_id, now)
            interactions = self._sessions[session_id].interactions
            start, stop = window.bounds(len(interactions))
            chosen = clone_interactions(interactions[start:stop], start)
        if window.newest_first:
            chosen.reverse()
        return chosen

    async def _scan(self) -> Sequence[SessionHeader]:
        with self._lock:
            return list(self._headers.values())

    async def _session_count(self) -> int:
        return len(self._headers)

    def _touch(self, session_id: str, when: datetime) -> None:
        with self._lock:
            header = self._headers.get(session_id)
            if header is not None and header.last_accessed_at < when:
                self._headers[session_id] = dataclasses.replace(header, last_accessed_at=when)

    async def _apply(self, ops: Sequence[WriteOp], *, max_sessions: int | None) -> None:
        with self._lock:
            check_versions(ops, self._version_of)
            if max_sessions is not None:
                created = sum(1 for op in ops if isinstance(op, PutOp) and op.expected is None)
                deleted = sum(1 for op in ops if isinstance(op, DeleteOp))
                if created and len(self._headers) + created - deleted > max_sessions:
                    raise SessionLimitError(max_sessions)
            for op in ops:
                self._apply_one(op)

    def _version_of(self, session_id: str) -> int | None:
        header = self._headers.get(session_id)
        return None if header is None else header.version

    def _apply_one(self, op: WriteOp) -> None:
        if isinstance(op, PutOp):
            # The base never touches an op's session again, so it can be kept as is.
            self._sessions[op.session.session_id] = op.session
            self._headers[op.session.session_id] = op.header
        elif isinstance(op, AppendOp):
            session = self._sessions[op.session_id]
            # Extend in place: O(appended), not O(history). Nothing outside the store holds
            # this list (reads return clones).
            session.interactions.extend(op.interactions)
            header = op.header
            self._sessions[op.session_id] = dataclasses.replace(
                session,
                version=header.version,
                updated_at=header.updated_at,
                last_accessed_at=header.last_accessed_at,
                expires_at=header.expires_at,  # sliding expiry moves it on appends
            )
            self._headers[op.session_id] = header
        elif isinstance(op, DeleteOp):
            del self._sessions[op.session_id]
            del self._headers[op.session_id]
        else:
            assert isinstance(op, CheckOp)

    async def _backend_stats(self) -> dict[str, Any]:
        return {
            "persistence_path": None if self._path is None else str(self._path),
            "snapshots_written": self._snapshots_written,
        }

    async def _probe(self) -> list[str]:
        if self._path is None:
            return []
        directory = self._path.parent
        if not os.access(directory, os.W_OK | os.X_OK):
            return [f"the snapshot directory {directory} is not writable"]
        return []

    async def _optimize_backend(self) -> list[str]:
        if self._path is None:
            return []
        await self.save_snapshot()
        return [f"wrote snapshot {self._path}"]

    # -- snapshots -------------------------------------------------------------------------

    async def save_snapshot(self) -> None:
        """Write every session to ``persistence_path`` atomically (temp, fsync, rename).

        Raises:
            InvalidInputError: The store has no ``persistence_path``.
            StoreIOError: Writing failed; the previous snapshot is intact.
        """
        if self._path is None:
            raise InvalidInputError("this store has no persistence_path to save to")
        async with self._snapshot_lock:
            await self._write_snapshot(self._path)

    async def _write_snapshot(self, path: Path) -> int:
        """Write the snapshot (the caller holds the snapshot lock); return the session count."""
        with self._lock:  # a consistent cut: no batch is half-applied while we copy
            sessions = [
                dataclasses.replace(s, last_accessed_at=self._headers[sid].last_accessed_at)
                for sid, s in self._sessions.items()
            ]
        document = {
            "format": FORMAT_VERSION,
            "kind": _SNAPSHOT_KIND,
            "sessions": [session_to_document(s, self._codec) for s in sessions],
        }
        data = dump_json(document)
        if self._envelope.active:  # sealed with the key active now (rotate_key may swap it)
            data = await asyncio.to_thread(self._envelope.wrap, data, _SNAPSHOT_CONTEXT)
        try:
            await asyncio.to_thread(_write_atomically, path, data)
        except OSError as exc:
            self._record_error(exc)
            raise StoreIOError(f"cannot write snapshot {path}: {exc}") from exc
        self._snapshots_written += 1
        return len(sessions)

    # -- sealing ---------------------------------------------------------------------------

    async def _reseal(self, key_id: str, progress: ProgressCallback) -> int:
        """Write the snapshot anew under ``key_id`` if the one on disk is sealed otherwise.

        The snapshot is one record, so re-sealing it is writing it: the current sessions,
        exactly as :meth:`save_snapshot` (and :meth:`shutdown`) would write them, atomically
        (a crash leaves the old snapshot, readable with the keyring, or the new one). Sessions
        in memory are not changed. Without a snapshot file there is nothing at rest to
        re-seal.
        """
        if self._path is None:
            progress(0, 0)
            return 0
        async with self._snapshot_lock:
            head = await asyncio.to_thread(_read_head, self._path)
            if head is None or record_key(head) == key_id:
                progress(0, 0)
                return 0
            progress(0, len(self._headers))
            written = await self._write_snapshot(self._path)
        progress(written, written)
        return 1

    async def _key_census(self) -> Mapping[str | None, int]:
        """The snapshot file is one record: ``{key id: 1}`` (``None``: not sealed), or ``{}``."""
        if self._path is None:
            return {}
        async with self._snapshot_lock:
            head = await asyncio.to_thread(_read_head, self._path)
        return {} if head is None else {record_key(head): 1}

    def _load_snapshot(self, path: Path) -> None:
        for orphan in path.parent.glob(f".{path.name}.*.tmp"):
            orphan.unlink(missing_ok=True)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return
        sessions = _parse_snapshot(_unseal(raw, path, self._envelope), path, self._codec)
        with self._lock:
            self._sessions.clear()
            self._headers.clear()
            for session in sessions:
                size = len(dump_json(session_to_document(session, self._codec)))
                self._sessions[session.session_id] = session
                self._headers[session.session_id] = header_of(session, size)


def _corrupt(path: Path, reason: str) -> StoreCorruptionError:
    return StoreCorruptionError(
        f"snapshot {path} is not usable ({reason}); move it aside or fix it", str(path)
    )


def _unseal(raw: bytes, path: Path, envelope: Envelope) -> bytes:
    """The snapshot's JSON: ``raw`` opened if it is sealed or compressed, else as it is.

    Raises:
        SealingKeyError: It is sealed with a key the keyring lacks (nothing is changed).
        StoreCorruptionError: It fails authentication or does not decode (damage).
    """
    try:
        return envelope.unwrap(raw, _SNAPSHOT_CONTEXT)
    except Unsealable as exc:
        raise _corrupt(path, str(exc)) from exc


def _read_head(path: Path) -> bytes | None:
    """The first bytes of the snapshot file, or ``None`` if there is none."""
    try:
        with path.open("rb") as file:
            return file.read(_HEAD_BYTES)
    except FileNotFoundError:
        return None


def _parse_snapshot(raw: bytes, path: Path, codec: Codec) -> list[PersistedSession]:
    def corrupt(reason: str) -> StoreCorruptionError:
        return _corrupt(path, reason)

    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise corrupt(f"not valid JSON: {exc}") from exc
    if type(document) is not dict or document.get("kind") != _SNAPSHOT_KIND:
        raise corrupt("not a session-persistence memory snapshot")
    version = document.get("format")
    if type(version) is not int or version > FORMAT_VERSION or version < 1:
        raise corrupt(f"unsupported format {version!r}")
    items = document.get("sessions")
    if type(items) is not list:
        raise corrupt("'sessions' must be an array")
    sessions: list[PersistedSession] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        try:
            session = document_to_session(item, codec)
        except (InvalidInputError, ValueError) as exc:
            raise corrupt(f"session #{index}: {exc}") from exc
        if session.session_id in seen:
            raise corrupt(f"session id {session.session_id} appears twice")
        seen.add(session.session_id)
        sessions.append(session)
    return sessions


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new, never a mix.

    Order: write temp (unique name, 0600) → fsync temp → rename over ``path`` → fsync the
    directory (so the rename itself survives power loss).
    """
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    io = FileIO()
    io.replace_file(path, data, temp_dir=directory, mode=0o600, durable=True)
    io.fsync_dir(directory)
