"""Backups, restore, export and import, written once over the store contract.

Every store gets these through :class:`SessionStore`, which delegates here; a backend adds
nothing but, optionally, a better ``_frozen()`` (see below) and a default backup directory.

**A consistent snapshot while writes continue** (:meth:`Backups.create`):

1. *unfrozen passes* read every selected session while writers keep going, then re-read what
   changed meanwhile, pass after pass, until at most 64 sessions changed during the last one
   (or the changes stop shrinking; at most 8 re-reading passes);
2. then, inside ``store._frozen()`` (which holds off every writer: in this process through the
   base's write gate, and in other processes too where the backend shares its storage), one
   index scan gives the exact committed state; sessions whose version or ``updated_at``
   changed since they were read are read again, new ones are read, deleted ones dropped.

Every session in the result is therefore exactly as it was at one instant (the scan in step 2),
so a transaction is either wholly in the backup or wholly out of it. Writers wait only for
step 2, which re-reads just what changed during the last, short pass of step 1.

**Restore** (:meth:`Backups.restore`) validates the whole backup first (format, checksum,
every record's shape, every session id, sizes, ``max_sessions``), then plans each session
against the stored one with the merge strategy, then applies the plan through the store's one
write primitive, ``_apply_batch``: as one atomic, version-checked batch, or, beyond
``restore_batch_size`` sessions, in atomic batches of that size. A concurrent change to a
planned session makes its batch re-plan and retry. ``dry_run`` stops after planning.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from .._copy import clone_session
from .._fileio import FileIO
from .._ids import new_session_id
from ..config import seconds
from ..documents import document_to_session, header_of, session_to_document
from ..errors import (
    BackupError,
    InvalidInputError,
    InvalidSessionIdError,
    SerializationError,
    SessionConflictError,
    SessionLimitError,
    StoreCorruptionError,
    StoreIOError,
)
from ..models import (
    BackupInfo,
    BackupOptions,
    PersistedSession,
    ProgressCallback,
    RestoreOptions,
    RestoreResult,
    SessionBackup,
    SessionFilter,
    SessionHeader,
)
from ..ops import PutOp
from ..query import is_expired, matches_filter
from ..serialization import dump_json
from ._format import (
    BACKUP_FORMAT,
    EXPORT_KIND,
    check_body,
    encode_backup,
    iter_body,
    parse_header,
    split_header,
)
from ._jsonl import (
    LineReader,
    PathOrStream,
    check_end,
    check_export_header,
    describe,
    open_for_reading,
    open_for_writing,
    parse_json,
    read_lines,
    take,
)
from ._results import Plan, add_results, backup_metadata, counting, restore_options
from ._sealed import EXPORT_CONTEXT, export_envelope, open_body, open_line, seal_body
from ._vault import DirectoryVault, MemoryVault, Vault, check_backup_id

if TYPE_CHECKING:
    from ..stores.base import SessionStore

__all__ = ["Backups", "PathOrStream"]

logger = logging.getLogger(__name__)


_RETRIES = 20
_YIELD_EVERY = 64
_CATCH_UP_PASSES = 8
_FREEZE_AT = 64
_EXPORT_CHUNK = 256 * 1024


class Backups:
    """The backup side of one store: snapshots, the vault, timed backups, restore, export.

    Args:
        store: The store this serves (its narrow core and its helpers are used directly).
    """

    def __init__(self, store: SessionStore) -> None:
        self._store = store
        self._vault: Vault | None = None
        self._created = 0
        self._failures = 0
        self._last_failure: str | None = None
        self._last_backup: datetime | None = None

    # == lifecycle ===============================================================================

    def open(self) -> None:
        """Choose the vault (config ``backup_dir``, else the store's default) and sweep it."""
        config = self._store.config
        directory = config.backup_dir
        if directory is None:
            directory = self._store._default_backup_dir()
        if directory is None:
            if self._vault is None:  # keep in-memory backups across a reopen of the store
                self._vault = MemoryVault()
        else:
            self._vault = DirectoryVault(
                Path(directory), durable=self._store._durable_backups, io=self._store._io
            )
        if not self._store._read_only:  # (inspecting a store changes nothing in it)
            self._vault.sweep()

    @property
    def vault(self) -> Vault:
        """The vault in use (the store must have been opened)."""
        assert self._vault is not None, "the store has not been opened"
        return self._vault

    async def timed_loop(self) -> None:
        """Take a backup every ``backup_interval`` until cancelled; failures are retried."""
        interval = seconds(self._store.config.backup_interval)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.create(BackupOptions(compress=self._store.config.backup_compress))
            except Exception as exc:  # keep the timer alive; counted in stats and health
                self._failures += 1
                self._last_failure = f"{type(exc).__name__}: {exc}"
                self._store._record_error(exc)
                logger.exception("timed backup failed; retrying in %.1fs", interval)
            else:
                self._last_failure = None

    async def stats(self) -> dict[str, Any]:
        """Figures for ``get_stats().backend``."""
        stored = 0 if self._vault is None else len(await asyncio.to_thread(self._vault.ids))
        return {
            "backups": stored,
            "backups_created": self._created,
            "backup_failures": self._failures,
            "backup_location": None if self._vault is None else self._vault.location,
            "last_backup_at": None if self._last_backup is None else self._last_backup.isoformat(),
        }

    def problems(self) -> list[str]:
        """Health issues: the last timed backup failed (cleared by the next success)."""
        if self._last_failure is None:
            return []
        return [f"the last timed backup failed ({self._last_failure}); retrying each interval"]

    # == creating ================================================================================

    async def create(self, options: BackupOptions | None = None) -> SessionBackup:
        """Take a consistent snapshot, write it atomically, rotate, fire ``backup_created``."""
        store = self._store
        store._ensure_open()
        options = options or BackupOptions()
        if not isinstance(options, BackupOptions):
            raise InvalidInputError("options must be a BackupOptions")
        metadata = dict(options.metadata or {})
        try:
            dump_json(metadata)
        except SerializationError as exc:
            raise InvalidInputError(f"backup metadata must be plain JSON values: {exc}") from exc
        sessions, damaged = await self._snapshot(options)
        backup_id = new_session_id()
        created_at = store._now()
        fields = {
            "backup_id": backup_id,
            "created_at": created_at.isoformat(),
            "store_type": store.store_type,
            "include_expired": options.include_expired,
            "filter": None if options.filter is None else repr(options.filter),
            "metadata": metadata,
        }
        if damaged:
            fields["skipped_damaged"] = damaged
        data = await asyncio.to_thread(self._encode, fields, sessions, options.compress)
        try:
            await asyncio.to_thread(self.vault.write, backup_id, data)
        except StoreIOError:
            raise
        except OSError as exc:  # a full disk: the vault has removed what it wrote
            location = self.vault.location
            raise StoreIOError(
                f"writing backup {backup_id} to {location} failed: {exc}; no backup was "
                "written and the older ones are kept",
                location,
            ) from exc
        header = parse_header(*split_header(data, backup_id), label=f"backup {backup_id}")
        self._created += 1
        self._last_backup = created_at
        backup = SessionBackup(
            backup_id=backup_id,
            created_at=created_at,
            sessions=sessions,
            metadata=backup_metadata(header, len(data)),
        )
        await self.rotate()
        await store._emit("backup_created", backup)
        return backup

    def _encode(
        self, fields: dict[str, Any], sessions: list[PersistedSession], compress: bool
    ) -> bytes:
        codec = self._store._codec
        documents = [dump_json(session_to_document(s, codec)) for s in sessions]
        envelope, backup_id = self._store._envelope, fields["backup_id"]
        return encode_backup(
            fields,
            documents,
            compress=compress,
            seal=lambda body: seal_body(envelope, body, backup_id),
        )

    async def _snapshot(self, options: BackupOptions) -> tuple[list[PersistedSession], list[str]]:
        """Return the selected sessions as of one instant (see the module docstring)."""
        store = self._store
        flt = options.filter or SessionFilter()
        now = store._now()

        def selected(header: SessionHeader) -> bool:
            if not options.include_expired and is_expired(header, now, store._idle):
                return False
            return matches_filter(header, flt)

        taken: dict[str, PersistedSession] = {}
        damaged: list[str] = []
        # 1. Unfrozen passes: read everything, then again what changed meanwhile, until little
        # is left (each pass is shorter than the last, as it re-reads only the changes).
        stale = await self._changed(taken, selected)
        for _ in range(_CATCH_UP_PASSES):
            await self._refresh(taken, stale, damaged)
            previous, stale = len(stale), await self._changed(taken, selected)
            if len(stale) <= _FREEZE_AT or len(stale) >= previous:
                break
        # 2. Frozen: no writer anywhere until this block ends; re-read the last changes.
        async with store._frozen():
            await self._refresh(taken, await self._changed(taken, selected), damaged)
        ordered = sorted(taken.values(), key=lambda s: (s.created_at, s.session_id))
        return ordered, sorted(set(damaged))

    async def _changed(
        self, taken: dict[str, PersistedSession], selected: Callable[[SessionHeader], bool]
    ) -> list[str]:
        """Drop sessions no longer selected; return the ids whose stored state differs."""
        current = {h.session_id: h for h in await self._store._scan() if selected(h)}
        for session_id in [s for s in taken if s not in current]:
            del taken[session_id]
        stale = []
        for session_id, header in current.items():
            seen = taken.get(session_id)
            if seen is None or (seen.version, seen.updated_at) != (
                header.version,
                header.updated_at,
            ):
                stale.append(session_id)
        return stale

    async def _refresh(
        self, taken: dict[str, PersistedSession], stale: list[str], damaged: list[str]
    ) -> None:
        for index, session_id in enumerate(stale):
            if index % _YIELD_EVERY == _YIELD_EVERY - 1:
                await asyncio.sleep(0)  # a large in-memory pass must not starve the loop
            session = await self._read(session_id, damaged)
            if session is None:
                taken.pop(session_id, None)
            else:
                taken[session_id] = session

    async def _read(self, session_id: str, damaged: list[str]) -> PersistedSession | None:
        try:
            return await self._store._read_session(session_id)
        except StoreCorruptionError as exc:
            # The store has quarantined it (or will): it is no longer a stored session.
            logger.error("backup leaves out damaged session %s: %s", session_id, exc)
            damaged.append(session_id)
            return None

    async def rotate(self) -> list[str]:
        """Delete all but the newest ``max_backups`` backups; return the ids deleted."""
        keep = self._store.config.max_backups
        if keep is None:
            return []
        ids = await asyncio.to_thread(self.vault.ids)
        doomed = ids[: max(0, len(ids) - keep)]
        for backup_id in doomed:
            await asyncio.to_thread(self.vault.delete, backup_id)
        return doomed

    # == reading =================================================================================

    async def list_all(self) -> list[BackupInfo]:
        """Return every backup's header, oldest first; unreadable files are skipped, logged."""
        self._store._ensure_open()
        infos = []
        for backup_id in await asyncio.to_thread(self.vault.ids):
            try:
                infos.append(await self._info(backup_id))
            except BackupError as exc:
                logger.warning("skipping backup %s in the listing: %s", backup_id, exc)
        return infos

    async def _info(self, backup_id: str) -> BackupInfo:
        data, size = await asyncio.to_thread(self.vault.head, backup_id)
        label = f"backup {backup_id}"
        header = parse_header(*split_header(data, label), label=label)
        if header.backup_id != backup_id:
            raise BackupError(f"{label} is named for another backup ({header.backup_id})")
        return BackupInfo(
            backup_id=backup_id,
            created_at=header.created_at,
            session_count=header.session_count,
            size_bytes=size,
            store_type=str(header.fields["store_type"]),
            compressed=header.compressed,
            format=int(header.fields["format"]),
            metadata=dict(header.fields["metadata"]),
            sealed_with=header.sealed_with,
        )

    async def get(self, backup_id: str) -> SessionBackup:
        """Read, verify and decode a whole backup."""
        self._store._ensure_open()
        backup_id = check_backup_id(backup_id)
        data = await asyncio.to_thread(self.vault.read, backup_id)
        return await asyncio.to_thread(self._decode, data, f"backup {backup_id}", backup_id)

    async def load_file(self, path: str | os.PathLike[str]) -> SessionBackup:
        """Read, verify and decode a backup file from anywhere (a copy from another host)."""
        try:
            data = await asyncio.to_thread(FileIO().read_file, Path(path))
        except OSError as exc:
            raise BackupError(f"cannot read backup file {os.fspath(path)}: {exc}") from exc
        return await asyncio.to_thread(self._decode, data, f"backup file {os.fspath(path)}", None)

    def _decode(self, data: bytes, label: str, backup_id: str | None) -> SessionBackup:
        header = parse_header(*split_header(data, label), label=label)
        if backup_id is not None and header.backup_id != backup_id:
            raise BackupError(f"{label} is named for another backup ({header.backup_id})")
        body = check_body(data, header, label)
        body = open_body(self._store._envelope, body, header.sealed_with, header.backup_id, label)
        limit = self._store.config.max_session_bytes
        sessions = []
        seen: set[str] = set()
        for number, document in enumerate(iter_body(body, header, label, limit), start=1):
            session = self._session_from(document, f"{label}, session record {number}")
            if session.session_id in seen:
                raise BackupError(f"{label} holds session {session.session_id} twice")
            seen.add(session.session_id)
            sessions.append(session)
        return SessionBackup(
            backup_id=header.backup_id,
            created_at=header.created_at,
            sessions=sessions,
            metadata=backup_metadata(header, len(data)),
        )

    def _session_from(self, document: Any, where: str) -> PersistedSession:
        try:
            return document_to_session(document, self._store._codec)
        except InvalidSessionIdError as exc:
            raise BackupError(f"{where}: invalid session id {exc.session_id!r}") from exc
        except SerializationError as exc:
            raise BackupError(f"{where}: {exc}") from exc

    async def verify(self, backup_id: str) -> BackupInfo:
        """Check a backup's checksum and parse every record; return its header."""
        backup = await self.get(backup_id)
        meta = backup.metadata
        return BackupInfo(
            backup_id=backup.backup_id,
            created_at=backup.created_at,
            session_count=meta["session_count"],
            size_bytes=meta["size_bytes"],
            store_type=meta["store_type"],
            compressed=meta["compressed"],
            format=meta["format"],
            metadata=meta["metadata"],
            sealed_with=meta["sealed_with"],
        )

    async def ids(self) -> list[str]:
        """The stored backups' ids, oldest first (nothing is read)."""
        return await asyncio.to_thread(self.vault.ids)

    async def quarantine(self, backup_id: str, reason: str) -> str:
        """Set a damaged backup aside; return what was done."""
        return await asyncio.to_thread(self.vault.quarantine, check_backup_id(backup_id), reason)

    async def delete(self, backup_id: str) -> bool:
        """Delete a backup; return whether it existed."""
        self._store._ensure_open()
        return await asyncio.to_thread(self.vault.delete, check_backup_id(backup_id))

    # == restoring ===============================================================================

    async def restore(
        self,
        backup_or_id: SessionBackup | str | os.PathLike[str],
        options: RestoreOptions | None = None,
        progress: ProgressCallback | None = None,
    ) -> RestoreResult:
        """Validate, plan and apply a backup (see the module docstring)."""
        store = self._store
        store._ensure_open()
        options = restore_options(options)
        if isinstance(backup_or_id, SessionBackup):
            sessions = await asyncio.to_thread(self._revalidate, backup_or_id)
            label = f"backup {backup_or_id.backup_id}"
        elif isinstance(backup_or_id, str):
            backup = await self.get(backup_or_id)
            sessions, label = backup.sessions, f"backup {backup.backup_id}"
        elif isinstance(backup_or_id, os.PathLike):
            backup = await self.load_file(backup_or_id)
            sessions, label = backup.sessions, f"backup file {os.fspath(backup_or_id)}"
        else:
            raise InvalidInputError("restore_from_backup takes a SessionBackup, an id or a path")
        advance = counting(progress, len(sessions))
        return await self._apply_sessions(sessions, options, label, advance)

    def _revalidate(self, backup: SessionBackup) -> list[PersistedSession]:
        """Check a backup object as strictly as a file: encode and decode every session."""
        label = f"backup {backup.backup_id}"
        seen: set[str] = set()
        sessions = []
        for number, given in enumerate(backup.sessions, start=1):
            where = f"{label}, session {number}"
            if not isinstance(given, PersistedSession):
                raise BackupError(f"{where} is a {type(given).__name__}, not a session")
            try:
                document = session_to_document(given, self._store._codec)
            except SerializationError as exc:
                raise BackupError(f"{where}: {exc}") from exc
            session = self._session_from(orjson.loads(dump_json(document)), where)
            if session.session_id in seen:
                raise BackupError(f"{label} holds session {session.session_id} twice")
            seen.add(session.session_id)
            sessions.append(session)
        return sessions

    async def _apply_sessions(
        self,
        sessions: Sequence[PersistedSession],
        options: RestoreOptions,
        label: str,
        progress: Callable[[int], None] | None = None,
    ) -> RestoreResult:
        """Plan every batch, check capacity, then (unless a dry run) apply batch by batch."""
        store = self._store
        size = store.config.restore_batch_size
        batches = [list(sessions[i : i + size]) for i in range(0, len(sessions), size)]
        encoded = [await asyncio.to_thread(self._encode_all, batch, label) for batch in batches]
        plans = [await self._plan(batch, options) for batch in encoded]
        await self._check_capacity(sum(len(p.created) for p in plans), label)
        totals = RestoreResult(dry_run=options.dry_run)
        if options.dry_run:
            if progress is not None:
                progress(len(sessions))
            return add_results(totals, plans)
        for index, batch in enumerate(encoded):
            try:
                plan = await self._commit(batch, plans[index], options)
            except Exception as exc:
                if index == 0:
                    raise
                totals = replace(totals, errors=[
                    f"batch {index + 1} of {len(encoded)} failed ({type(exc).__name__}: {exc}); "
                    f"the {index} batch(es) before it were applied, nothing after it"
                ])  # fmt: skip
                logger.error("restore of %s stopped: %s", label, totals.errors[0])
                return totals
            totals = add_results(totals, [plan])
            if progress is not None:
                progress(len(batch))
        return totals

    def _encode_all(
        self, sessions: list[PersistedSession], label: str
    ) -> list[tuple[PersistedSession, PutOp]]:
        """Encode each session once, size-checked; the op's ``expected`` is filled in later."""
        limit = self._store.config.max_session_bytes
        out = []
        ids: set[str] = set()
        for session in sessions:
            if session.session_id in ids:
                raise BackupError(f"{label} holds session {session.session_id} twice")
            ids.add(session.session_id)
            try:
                # Decoding accepts more than can be written back (nesting up to orjson's
                # read limit, 1,024 levels, against MAX_DEPTH for writing).
                data = dump_json(session_to_document(session, self._store._codec))
            except SerializationError as exc:
                raise BackupError(
                    f"{label}: session {session.session_id} cannot be stored: {exc}"
                ) from exc
            if len(data) > limit:
                raise BackupError(
                    f"{label}: session {session.session_id} encodes to {len(data)} bytes, over "
                    f"max_session_bytes ({limit}); raise the limit to restore it"
                )
            out.append((session, PutOp(session, header_of(session, len(data)), data, None)))
        return out

    async def _plan(
        self, batch: list[tuple[PersistedSession, PutOp]], options: RestoreOptions
    ) -> Plan:
        plan = Plan([], [], [], 0)
        for session, op in batch:
            stored = await self._store._read_header(session.session_id)
            if stored is None:
                plan.ops.append(op)
                plan.created.append(session)
            elif options.merge_strategy == "overwrite" or (
                options.merge_strategy == "update_newer" and session.updated_at > stored.updated_at
            ):
                plan.ops.append(replace(op, expected=stored.version))
                plan.replaced.append(session.session_id)
            else:
                plan.skipped += 1
        return plan

    async def _check_capacity(self, creates: int, label: str) -> None:
        limit = self._store.config.max_sessions
        if limit is None or not creates:
            return
        stored = await self._store._session_count()
        if stored + creates > limit:
            raise BackupError(
                f"restoring {label} would add {creates} session(s) to the {stored} stored, over "
                f"max_sessions ({limit}); run cleanup_expired_sessions() or raise max_sessions. "
                "Nothing was restored"
            )

    async def _commit(
        self, batch: list[tuple[PersistedSession, PutOp]], plan: Plan, options: RestoreOptions
    ) -> Plan:
        """Apply one batch atomically; re-plan on a concurrent change. Fire its events."""
        store = self._store
        olds: dict[str, PersistedSession | None] = {}
        for _ in range(_RETRIES):
            if store._events.has_listeners("session_updated"):
                olds = {sid: await store._read_session(sid) for sid in plan.replaced}
            try:
                if plan.ops:
                    await store._apply_batch(plan.ops)
            except SessionConflictError:
                plan = await self._plan(batch, options)
                continue
            except SessionLimitError as exc:
                raise BackupError(f"restoring would exceed max_sessions: {exc}") from exc
            break
        else:
            raise BackupError("the sessions being restored kept changing; retry the restore")
        for op in plan.ops:
            store._reported_expired.pop(op.session.session_id, None)
        if store._events.has_listeners("session_created"):
            for session in plan.created:
                await store._emit("session_created", clone_session(session))
        if store._events.has_listeners("session_updated"):
            by_id = {op.session.session_id: op.session for op in plan.ops}
            for session_id in plan.replaced:
                new = clone_session(by_id[session_id])
                await store._emit("session_updated", new, olds.get(session_id))
        return plan

    # == export and import =======================================================================

    async def export(
        self,
        target: PathOrStream,
        flt: SessionFilter | None,
        progress: ProgressCallback | None = None,
        sealed: bool = False,
    ) -> int:
        """Stream the selected sessions to JSON Lines; return how many were written.

        ``sealed``: each session line is sealed with the active key (see ``._sealed``).
        """
        store = self._store
        store._ensure_open()
        if flt is not None and not isinstance(flt, SessionFilter):
            raise InvalidInputError("filter must be a SessionFilter or None")
        envelope = export_envelope(store._envelope) if sealed else None
        head = {
            "kind": EXPORT_KIND,
            "format": BACKUP_FORMAT,
            "exported_at": store._now().isoformat(),
            "store_type": store.store_type,
        }
        if envelope is not None:
            head["sealed"] = envelope.active_key
        total = None if progress is None else await store.count_sessions(flt)
        async with open_for_writing(target, store._durable_backups, store._io) as write:
            buffer = [dump_json(head) + b"\n"]
            buffered = 0
            count = 0
            async for session in store.iter_sessions(flt):
                line = dump_json(session_to_document(session, store._codec))
                if envelope is not None:
                    line = envelope.wrap(line, EXPORT_CONTEXT)
                line += b"\n"
                buffer.append(line)
                buffered += len(line)
                count += 1
                if buffered >= _EXPORT_CHUNK:  # bounded memory, few thread hops
                    await asyncio.to_thread(write, b"".join(buffer))
                    buffer, buffered = [], 0
                    if progress is not None:
                        progress(count, max(count, total or 0))
            buffer.append(dump_json({"end": {"count": count}}) + b"\n")
            await asyncio.to_thread(write, b"".join(buffer))
        if progress is not None:
            progress(count, count)
        return count

    async def import_(
        self,
        source: PathOrStream,
        options: RestoreOptions | None,
        progress: ProgressCallback | None = None,
    ) -> RestoreResult:
        """Validate a JSON Lines export, then apply it in batches (memory stays flat).

        A path or seekable stream is validated completely before anything is written; a
        stream that cannot seek back is validated and applied batch by batch.
        """
        store = self._store
        store._ensure_open()
        options = restore_options(options)
        label = f"import from {describe(source)}"
        size = store.config.restore_batch_size
        async with open_for_reading(source) as reader:
            if reader.seekable():
                # First pass: validate everything and check capacity; write nothing.
                start = reader.tell()
                absent = total = 0
                async for batch in self._batches(reader, label, size):
                    total += len(batch)
                    for session in batch:
                        absent += await store._read_header(session.session_id) is None
                await self._check_capacity(absent, label)
                reader.seek(start)
            else:
                total = None
            totals = RestoreResult(dry_run=options.dry_run)
            advance = counting(progress, total)
            async for batch in self._batches(reader, label, size):
                result = await self._apply_sessions(batch, options, label, advance)
                totals = add_results(totals, [result])
                if result.errors:
                    break
        return totals

    async def _batches(
        self, reader: LineReader, label: str, size: int
    ) -> AsyncIterator[list[PersistedSession]]:
        """Yield validated sessions in lists of at most ``size``, up to a valid end marker."""
        limit = self._store.config.max_session_bytes + 1024
        # A sealed line is base64: 4/3 of what it seals, plus its prefix.
        lines = read_lines(reader, limit * 4 // 3 + 1024, label)
        first = await asyncio.to_thread(next, lines, None)
        sealed = check_export_header(first, label).get("sealed") is not None
        envelope = self._store._envelope
        batch: list[PersistedSession] = []
        seen = 0
        ended = False
        while True:
            chunk = await asyncio.to_thread(take, lines, 500)
            if not chunk:
                break
            for number, raw in chunk:
                if ended:
                    raise BackupError(f"{label}: line {number} follows the end marker")
                line, was_sealed = open_line(envelope, raw, limit, label, number)
                document = parse_json(line, label, number)
                if type(document) is dict and set(document) == {"end"}:
                    check_end(document, seen, label)
                    ended = True
                    continue
                if sealed and not was_sealed:
                    raise BackupError(f"{label}: line {number} is not sealed, but the export is")
                session = self._session_from(document, f"{label}, line {number}")
                seen += 1
                batch.append(session)
                if len(batch) >= size:
                    yield batch
                    batch = []
        if not ended:
            raise BackupError(f"{label} is truncated: it has no end marker after {seen} session(s)")
        if batch:
            yield batch
