r"""``FileSystemSessionStore``: one file per session, a write-ahead journal, crash recovery.

On-disk layout under ``base_dir`` (directories ``0700``, files ``0600`` by default)::

    store.json                 {"format": 2, "kind": "session-persistence-filesystem-store"}
    store.lock                 the cross-process write lock (flock on a kept descriptor)
    checkpoint.lock            held by whoever moves session files (checkpoints, repairs)
    index.json                 every session header at the start of a generation (the base)
    index.delta                what each later checkpoint changed (see :mod:`._index`)
    journal/<generation>.wal   the write-ahead journal: one framed line per write
    sessions/<id>.json         a session's base: checksummed head line + its JSON document
    sessions/<id>.tail         interactions appended since the base was written
    tmp/                       temp files, renamed into place (orphans removed on open)
    quarantine/                damaged files, each beside a ``.reason`` file
    backups/                   backups: <backup_id>.backup (see session_persistence.backups)

**Journal.** Each write (a single change or a whole transaction) is one line
``<crc32> {"seq": n, "ops": [...]}``; a put carries the whole document (``{"doc": ...,
"size": n}``; its header is the document's own fields), ``append`` only the new interactions
and the header after them, ``delete`` the id. Bad lines at the end of a
segment are a torn tail: never acknowledged, ignored, and cut off by the next writer. A bad line
(bad checksum, or a checksummed line that is not a valid record) with intact lines after it is
damage, never cut: it is skipped, every later record whose version chain is intact is applied,
and a copy of the segment is kept in ``quarantine/`` (see :mod:`._journal`). Control lines mark
checkpoints (``{"rotate": g}`` closes a generation, ``{"checkpointed": g}`` says its changes
are in the files) and quarantines.

**Directories** are opened once (``O_DIRECTORY | O_NOFOLLOW``) and every file is created,
opened, renamed and removed relative to those descriptors (:meth:`FileIO.anchor`), so no link
in the store's tree is followed, at open or later; files are read only once found regular.

**Write path** (one commit group: every batch queued in this process while the previous group
was being written; they share the lock, one ``write`` and one ``fsync``):

1. take the store lock (``store.lock``; :class:`StoreLockTimeoutError` after ``lock_timeout``);
2. read journal lines other processes appended since we last looked (the index is now the
   latest committed state) and cut off a torn tail;
3. check every batch's expected versions and ``max_sessions`` against that state; a batch that
   fails gets its error and is left out;
4. append the group's lines to the journal with one ``write``, release the lock, and, with
   ``durability="full"``, ``fsync`` (outside the lock, so other processes' fsyncs overlap);
   then update the in-memory index and acknowledge.

A crash before step 4's ``fsync`` returns loses only unacknowledged writes (a torn line is
ignored; a whole unsynced line may survive, which is harmless: nobody was told it failed or
succeeded). If the ``write`` raises, or the ``fsync`` raises while the segment still ends with
the group, the journal is cut back to where the group began and every batch in it gets
:class:`StoreIOError` (nothing applied); if another process wrote after it meanwhile, it stays
and the error says its outcome is unknown (see :mod:`._commit`). Session files are **not**
written on this path; that is why a write costs one sequential append however long the session
is. When no other writer holds either lock, steps 1-4's checks and ``write`` run on the event
loop and only the fsync goes to a thread (see ``_lead``).

**Checkpoint** (:mod:`._checkpoint` has each step, its fsync and what a crash leaves): the
writer that passes ``checkpoint_bytes`` only closes the generation (``rotate``, a new segment:
one fsync under the store lock); a background thread then writes the closed generation into
session files under the checkpoint lock, outside the store lock, appends an index delta, and
records ``checkpointed``. Writers never wait for session files. An ``OSError`` aborts it as a
crash would, and it is retried; only proven damage is set aside.

**Recovery on open** (under the store lock; nothing to do by hand):

1. remove orphan temp files from ``tmp/`` (only lock holders create them);
2. load the index (``index.json`` and its deltas) if it is valid and its generation's segment
   exists; otherwise, or when the chain of segments has a gap, rebuild the index by reading
   every session file (damaged ones are quarantined) and replay the newest unbroken run of
   segments;
3. replay the journal from that generation on: committed lines update the index and are kept
   in memory as *pending* changes until a checkpoint writes them into session files; a torn
   tail is cut off, damage in the middle is skipped and reported;
4. delete generations older than the one before the current (left by a crashed checkpoint);
5. when the index had to be rebuilt (or its deltas are damaged), checkpoint at once and write a
   whole index; if that fails (a full disk), open anyway and serve from the journal. A closed
   generation left by a crashed checkpoint is checkpointed by the background thread.

With ``read_only=True`` only 2-3 run, in memory, without the lock: nothing on disk changes.

**Reads** first compare the journal's size with how far this process has read (one ``fstat``)
and read any new lines, so a read never returns data older than a write another process has
finished. A session with pending changes is served from memory; others from their files,
checked against the index version (and retried if a concurrent checkpoint moved them).

**Durability modes.** ``"full"`` (default): the journal line is fsynced before a write returns,
so an acknowledged write survives power loss. ``"process"``: nothing is fsynced; the line is in
the kernel before the write returns, so it survives a killed process but not a power cut or
kernel crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
import warnings
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import orjson

from ..._fileio import FileIO, NotRegularFile
from ...config import Durability, SessionStoreConfig
from ...errors import (
    ConfigurationError,
    SessionStoreError,
    StoreCorruptionError,
    StoreIOError,
)
from ...events import EventName
from ...models import CheckProblem, ProgressCallback, SessionHeader
from ...serialization import Codec
from ..base import SessionStore
from . import _check, _checkpoint, _reseal
from ._cache import DEFAULT_READ_CACHE_BYTES, ReadCache
from ._checkpoint import Checkpointer
from ._commit import Batch
from ._files import SessionFiles
from ._format import (
    Delete,
    control_record,
)
from ._index import IndexFiles
from ._journal import DamageLog, Line
from ._lock import ProcessLock
from ._reads import SessionReads
from ._replay import Pending
from ._table import HeaderTable
from ._watch import JournalWatcher, network_filesystem

__all__ = ["FileSystemSessionStore"]


logger = logging.getLogger(__name__)


_STORE_KIND = "session-persistence-filesystem-store"
# 2: a generation is closed (``rotate``) before its checkpoint writes the files, which
# ``{"checkpointed": g}`` records. Format 1 stores are upgraded at open; releases that read
# only format 1 refuse format 2 (they would take ``rotate`` as "in the files"). 3: records
# may be sealed or compressed (see session_persistence._envelope); a store is marked 3 only
# when it is opened with sealing or compression, so plain stores stay readable by format 2.
_STORE_FORMAT = 3
_PLAIN_FORMAT = 2
_DIRECTORIES = ("sessions", "journal", "tmp", "quarantine", "backups")


class FileSystemSessionStore(SessionReads, SessionStore):
    """The durable default store: one JSON file per session plus a write-ahead journal.

    Several processes on one machine may open the same directory. See the module docstring
    for the on-disk format, the order of every write and fsync, and the recovery procedure.

    Args:
        base_dir: The store's directory (created if missing).
        config: Store options.
        durability: ``"full"`` (fsync before acknowledging; survives power loss) or
            ``"process"`` (no fsync; survives a killed process only).
        codec: Serialization codec.
        lock_timeout: Seconds to wait for the cross-process write lock.
        checkpoint_bytes: Journal size that closes a generation and starts a background
            checkpoint. While a checkpoint has not caught up, the journal grows on; past
            ``8 * checkpoint_bytes`` writers wait for it (up to ``lock_timeout``), so memory
            and the replay after a crash stay bounded.
        checkpoint_threads: How many session files a checkpoint that has fallen behind
            writes (and fsyncs) at once. One that keeps up writes one at a time, so writers'
            journal fsyncs barely wait behind its own; once the journal is half-way to the
            point where writers wait, it uses this many (1: never more than one).
        read_cache_bytes: The read cache's budget, by stored size (default 64 MiB): decoded
            sessions kept for warm reads, least recently read evicted first. One session may
            take up to half of it; a larger one is read from its files each time.
        watch: Follow other processes' writes in the background (watchdog, with polling as
            the fallback), keeping the index fresh and firing their events here.
        poll_interval: Seconds between polls of the journal when following.
        file_mode: Permission bits of files the store creates.
        dir_mode: Permission bits of directories the store creates.
        read_only: Open to inspect: nothing on disk changes. Recovery runs in memory only
            (a torn journal end is skipped, not cut; no checkpoint; nothing is created,
            cleaned up or quarantined); damage is reported by reads (``StoreCorruptionError``),
            ``check()`` and ``health_check()``; any write, ``optimize()`` or repair raises
            :class:`StoreReadOnlyError`. The store must exist.
    """

    store_type: ClassVar[str] = "filesystem"

    def __init__(
        self,
        base_dir: str | os.PathLike[str] = "./session_data",
        config: SessionStoreConfig | None = None,
        *,
        durability: Durability = "full",
        codec: Codec | None = None,
        lock_timeout: float = 10.0,
        checkpoint_bytes: int = 8 * 1024 * 1024,
        checkpoint_threads: int = 2,
        read_cache_bytes: int = DEFAULT_READ_CACHE_BYTES,
        watch: bool = True,
        poll_interval: float = 1.0,
        file_mode: int = 0o600,
        dir_mode: int = 0o700,
        read_only: bool = False,
        _io: FileIO | None = None,
    ) -> None:
        super().__init__(config, codec=codec)
        if durability not in ("full", "process"):
            raise ConfigurationError("durability", "must be 'full' or 'process'")
        for name, value in (
            ("lock_timeout", lock_timeout),
            ("poll_interval", poll_interval),
            ("checkpoint_bytes", checkpoint_bytes),
            ("checkpoint_threads", checkpoint_threads),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigurationError(name, "must be a number greater than zero")
        if type(read_cache_bytes) is not int or read_cache_bytes < 0:
            raise ConfigurationError("read_cache_bytes", "must be an int >= 0 (0: no read cache)")
        self._root = Path(base_dir)
        self._durability: Durability = durability
        self._durable = durability == "full"
        self._durable_backups = self._durable
        self._lock_timeout = float(lock_timeout)
        self._checkpoint_bytes = int(checkpoint_bytes)
        self._checkpoint_threads = int(checkpoint_threads)
        self._watch = watch
        self._poll_interval = float(poll_interval)
        self._file_mode = file_mode
        self._dir_mode = dir_mode
        self._io = _io or FileIO()
        self._read_only = read_only
        self._read_cache_budget = read_cache_bytes
        self._files = SessionFiles(
            self._io, self._root, self._codec, file_mode=file_mode, durable=self._durable
        )
        self._journal_dir = self._root / "journal"
        self._flock = ProcessLock(
            self._io, self._root / "store.lock", timeout=lock_timeout, mode=file_mode,
            what="the write lock",
        )  # fmt: skip
        # Who may move session files: one checkpointer (or repair, or backup) at a time.
        self._ckpt_mutex = threading.Lock()
        self._ckpt_lock = ProcessLock(
            self._io, self._root / "checkpoint.lock", timeout=lock_timeout, mode=file_mode,
            what="the checkpoint lock",
        )  # fmt: skip
        self._index_files = IndexFiles(
            self._io, self._root, self._codec, file_mode=file_mode, durable=self._durable,
            fsync_dir=self._fsync_dir,
        )  # fmt: skip
        self._checkpointer: Checkpointer | None = None
        self._init_state()

    def _init_state(self) -> None:
        # In-memory state, guarded by _lock (readers) and _write_mutex (the single writer).
        self._lock = threading.RLock()
        self._write_mutex = threading.Lock()
        self._index = HeaderTable(self._codec)
        self._pending: dict[str, Pending] = {}
        # A closed generation whose changes are not in the session files yet (see _checkpoint).
        self._closing: dict[str, Pending] | None = None
        self._closing_gen = 0
        self._closing_from = 0  # the first generation it covers
        self._closing_headers: dict[str, SessionHeader | None] = {}
        self._closing_ours = False
        # Sessions decoded from their files (see ._cache): every change to a session (ours or
        # another process's, replayed or live) extends or drops its entry, and an entry is only
        # stored if no change at all happened while its files were read.
        self._read_cache = ReadCache(self._read_cache_budget, self._codec)
        self._changes = 0
        self._touched: set[str] = set()
        self._generation = 0
        self._fd: int | None = None
        self._position = 0
        self._seq = 0
        self._read: Sequence[Line] = ()  # (see _replay.check_sequence)
        self._reading = 0
        self._recovering = False  # replaying during _recover: a missing segment is a gap
        self._damage = DamageLog()
        self._writing = False  # our group is between its write and its in-memory apply
        self._writing_end = 0  # where its lines end
        self._written = threading.Condition(self._lock)  # notified when _writing ends
        self._rollback_to: int | None = None
        self._rollback_size: int | None = None  # the segment's size when _rollback_to was set
        self._foreign: list[tuple[EventName, str]] = []
        self._collect_foreign = False
        # Group commit.
        self._queue: list[Batch] = []
        self._leader: asyncio.Task[None] | None = None
        self._watcher: JournalWatcher | None = None
        self._wake: asyncio.Event | None = None
        self._counters = {"commits": 0, "batches": 0, "fsyncs": 0, "checkpoints": 0}
        self._freezing = False  # a backup holds every writer off (see _frozen)
        self._held = contextlib.ExitStack()  # the locks a backup holds (see _lock_out)
        self._warnings: list[str] = []

    @property
    def base_dir(self) -> Path:
        """The store's directory."""
        return self._root

    @property
    def durability(self) -> Durability:
        """The durability mode."""
        return self._durability

    # == lifecycle ===============================================================================

    async def _open(self) -> None:
        await asyncio.to_thread(self._open_sync)
        self._wake = asyncio.Event()
        if not self._read_only:
            self._checkpointer = Checkpointer(self)
            self._checkpointer.start()
            if self._closing is not None:  # a checkpoint was interrupted: finish it
                self._checkpointer.wake()
        if self._watch:
            loop = asyncio.get_running_loop()
            self._watcher = JournalWatcher(self._journal_dir, lambda: self._notify(loop))
            self._watcher.start()
            self._spawn(self._follow, "follow")

    def _notify(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called from the watchdog thread: wake the follower on the store's loop."""
        with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
            loop.call_soon_threadsafe(self._wake_up)

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _close(self) -> None:
        if self._watcher is not None:
            await asyncio.to_thread(self._watcher.stop)
            self._watcher = None
        if self._leader is not None:
            await asyncio.gather(self._leader, return_exceptions=True)
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.stop)
            self._checkpointer = None
        try:
            pending = self._touched or self._closing is not None
            if not self._read_only and (pending or self._index_files.worth_folding(0.25)):
                await asyncio.to_thread(_checkpoint.checkpoint_now, self, fold_deltas=True)
        except (OSError, SessionStoreError) as exc:
            # Everything is in the journal; the next open replays it.
            self._record_error(exc)
            logger.warning("checkpoint at shutdown failed (%s); the journal keeps the data", exc)
        finally:
            self._close_segment()
            self._let_go()

    def _open_sync(self) -> None:
        self._files.envelope = self._index_files.envelope = self._envelope
        self._prepare_directories()
        fstype = network_filesystem(self._root)
        if fstype is not None:
            message = (
                f"{self._root} is on a network filesystem ({fstype}): file locks and fsync may "
                "not be reliable there; keep the store on a local disk"
            )
            self._warnings.append(message)
            warnings.warn(message, RuntimeWarning, stacklevel=4)
        if self._read_only:
            try:
                self._check_marker()
                self._recover(locked=False)
            except BaseException:
                self._let_go()
                raise
            return
        try:
            self._acquire()
        except BaseException:
            self._let_go()
            raise
        try:
            # Under the lock: the marker of a new store is written through tmp/ (two processes
            # may create one store at once).
            self._check_marker()
            self._remove_orphans()
            rebuilt = self._recover()
            _checkpoint.remove_stray_generations(self)
        except BaseException:
            self._flock.release()
            self._close_segment()
            self._let_go()
            raise
        self._flock.release()
        if rebuilt:
            # Outside the store lock: a checkpoint takes the checkpoint lock first.
            _checkpoint.checkpoint_at_open(self)

    def _remove_orphans(self) -> None:
        """Empty ``tmp/`` of files left by a crash (the store lock held).

        Temp files are written by holders of the store lock or of the checkpoint lock, so
        they are orphans only when both are ours; if another process is checkpointing now,
        the next open removes them.
        """
        if not self._ckpt_lock.try_acquire():
            return
        try:
            for orphan in self._io.listdir(self._root / "tmp"):
                self._io.unlink(self._root / "tmp" / orphan)
        finally:
            self._ckpt_lock.release()

    def _close_segment(self) -> None:
        with self._lock:
            if self._fd is not None:
                self._io.close(self._fd)
                self._fd = None

    def _prepare_directories(self) -> None:
        if self._read_only and not (self._root / "store.json").exists():
            raise StoreCorruptionError(
                f"{self._root} is not a session-persistence filesystem store (no store.json)",
                str(self._root),
            )
        self._root.mkdir(mode=self._dir_mode, parents=True, exist_ok=True)
        try:
            self._io.anchor(self._root, _DIRECTORIES, self._dir_mode, create=not self._read_only)
        except NotRegularFile as exc:
            raise StoreCorruptionError(
                f"{exc.filename} must be a directory, not {exc.what}; move it aside",
                str(exc.filename),
            ) from exc

    def _check_marker(self) -> None:
        """Validate ``store.json``, or write it for a new store (the store lock is held)."""
        marker = self._root / "store.json"
        try:
            raw = self._io.read_file(marker)
        except NotRegularFile as exc:
            raise StoreCorruptionError(
                f"{marker} is {exc.what}, not the store's marker file; move it aside",
                str(marker),
            ) from exc
        except FileNotFoundError as missing:
            if self._read_only:
                raise StoreCorruptionError(
                    f"{self._root} is not a session-persistence filesystem store (no store.json)",
                    str(marker),
                ) from missing
            self._write_marker()
            return
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise StoreCorruptionError(f"{marker} is not JSON: {exc}", str(marker)) from exc
        if type(document) is not dict or document.get("kind") != _STORE_KIND:
            raise StoreCorruptionError(
                f"{self._root} is not a session-persistence filesystem store", str(marker)
            )
        version = document.get("format")
        if type(version) is not int or version > _STORE_FORMAT or version < 1:
            raise StoreCorruptionError(
                f"{self._root} was written in format {version!r}; this version of "
                f"session-persistence reads formats 1 to {_STORE_FORMAT}: upgrade it",
                str(marker),
            )
        if version < self._marker_format() and not self._read_only:
            self._write_marker()  # (the store lock is held: nobody of format 1 is writing)

    def _marker_format(self) -> int:
        """The format this store's marker must name: 3 once it may hold wrapped records.

        Releases that read format 2 at most would take a sealed or compressed record for
        damage; naming format 3 makes them refuse the store instead ("upgrade it").
        """
        return _STORE_FORMAT if self._envelope.active else _PLAIN_FORMAT

    def _write_marker(self) -> None:
        document = {"format": self._marker_format(), "kind": _STORE_KIND}
        self._io.replace_file(
            self._root / "store.json",
            orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n",
            temp_dir=self._root / "tmp",
            mode=self._file_mode,
            durable=self._durable,
        )
        self._fsync_dir(self._root)

    def _acquire(self) -> None:
        self._flock.acquire()

    def _let_go(self) -> None:
        """Close the locks' descriptors and the anchored directories (at close, failed open)."""
        self._flock.close()
        self._ckpt_lock.close()
        self._io.release()

    @contextlib.contextmanager
    def _exclusive_journal(self) -> Iterator[None]:
        """Hold every writer off, in this process (``_write_mutex``) and in others."""
        with self._write_mutex:
            self._acquire()
            try:
                yield
            finally:
                self._flock.release()

    @contextlib.contextmanager
    def _checkpoint_hold(self) -> Iterator[None]:
        """Be the one that may move session files (the checkpoint lock, in every process)."""
        with self._ckpt_mutex:
            self._ckpt_lock.acquire()
            try:
                yield
            finally:
                self._ckpt_lock.release()

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold both locks: nothing writes the journal or moves session files meanwhile."""
        with self._checkpoint_hold(), self._exclusive_journal():
            yield

    def _fsync_dir(self, path: Path) -> None:
        if self._durable:
            self._io.fsync_dir(path)

    # == sealing =================================================================================

    async def _reseal(self, key_id: str, progress: ProgressCallback) -> int:
        return await asyncio.to_thread(_reseal.reseal, self, key_id, progress)

    async def _key_census(self) -> Mapping[str | None, int]:
        return await asyncio.to_thread(_reseal.census, self)

    # == check ===================================================================================

    async def _check_sessions(self, session_ids: Sequence[str]) -> list[tuple[str, str]]:
        return await asyncio.to_thread(_check.inspect_all, self, session_ids)

    async def _check_backend(self) -> list[CheckProblem]:
        return await asyncio.to_thread(_check.check_files, self)

    async def _repair_backend(self, problem: CheckProblem) -> str | None:
        self._writable()
        if problem.kind == "journal" and problem.repairable:
            return await asyncio.to_thread(_check.repair_stray_generation, self)
        if problem.kind == "session":
            return await asyncio.to_thread(_check.repair_session, self, problem)
        if problem.kind == "file":
            return await asyncio.to_thread(_check.repair_file, self, Path(problem.target))
        if problem.kind == "index":
            await asyncio.to_thread(
                functools.partial(_checkpoint.checkpoint_now, full_index=True), self
            )
            return "checkpointed, which wrote a new index snapshot"
        return None

    # == backups ================================================================================

    def _default_backup_dir(self) -> Path:
        return self._root / "backups"

    @contextlib.asynccontextmanager
    async def _frozen(self) -> AsyncIterator[None]:
        """Hold off writers in every process: our own at the gate, others at the store lock.

        Holding ``_write_mutex`` as well keeps this process's checkpoints and quarantines out,
        so nothing changes the files while a backup reads its final instant.
        """
        self._writable()  # (a backup writes a file; a restore writes sessions)
        async with super()._frozen():
            holding = asyncio.ensure_future(asyncio.to_thread(self._lock_out))
            try:
                await asyncio.shield(holding)
            except asyncio.CancelledError:
                holding.add_done_callback(self._unlock_if_held)
                raise
            self._freezing = True
            try:
                self._check_anchors()  # a backup is never written through a swapped link
                yield
            finally:
                self._freezing = False
                self._unlock()

    def _lock_out(self) -> None:
        held = contextlib.ExitStack()
        held.enter_context(self._exclusive())
        self._held = held

    def _unlock(self) -> None:
        self._held.close()  # (threading.Lock may be released by another thread)

    def _unlock_if_held(self, holding: asyncio.Future[None]) -> None:
        if not holding.cancelled() and holding.exception() is None:
            self._unlock()

    # == checkpoint ==============================================================================

    def _check_anchors(self) -> None:
        """Refuse to go on if a store directory was moved or replaced (by a link) meanwhile."""
        moved = self._io.moved_anchors()
        if moved:
            raise StoreCorruptionError(
                f"{moved[0]} was moved or replaced while the store was open; writes went to "
                "the original directory, never through a link. Put it back and reopen",
                str(moved[0]),
            )

    def _journal_removal(self, session_id: str, reason: str) -> None:
        """Journal that a damaged session left the store, so every process forgets it."""
        with self._lock:
            self._append_lines(
                control_record(
                    self._seq + 1,
                    self._envelope,
                    self._generation,
                    quarantine=session_id,
                    reason=reason,
                )
            )
            self._seq += 1
            self._apply_change(Delete(session_id, "quarantined"), False)

    # == following other processes ===============================================================

    async def _follow(self) -> None:
        """Keep the index fresh and fire other processes' events (watchdog or polling)."""
        assert self._wake is not None
        while True:
            # Not asyncio.wait_for: on 3.11 it can swallow a cancellation that races with the
            # wake-up (gh-86296), and shutdown would wait for this task forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval):
                    await self._wake.wait()
            self._wake.clear()
            self._collect_foreign = any(
                self._events.has_listeners(name)
                for name in ("session_created", "session_updated", "session_deleted")
            )
            try:
                await asyncio.to_thread(self._fresh)
                await self._deliver_foreign()
            except Exception as exc:  # keep following; counted in health
                self._record_error(exc)
                logger.exception("following the journal failed")

    async def _deliver_foreign(self) -> None:
        with self._lock:
            changes, self._foreign = self._foreign, []
        for kind, session_id in changes:
            if kind == "session_deleted":
                await self._emit(kind, session_id)
                continue
            try:
                session = await self._load(session_id)
            except StoreCorruptionError:
                continue
            if session is None:
                continue  # deleted again since
            if kind == "session_created":
                await self._emit(kind, session)
            else:
                await self._emit(kind, session, None)

    # == monitoring ==============================================================================

    def _quarantined(self) -> list[str]:
        try:
            names = self._io.listdir(self._root / "quarantine")
        except FileNotFoundError:
            return []
        return sorted(name for name in names if not name.endswith(".reason"))

    async def _backend_stats(self) -> dict[str, Any]:
        with self._lock:
            stats: dict[str, Any] = {
                "base_dir": str(self._root),
                "durability": self._durability,
                "journal_generation": self._generation,
                "journal_bytes": self._position,
                "pending_sessions": len(self._pending),
                "closed_generation_pending": self._closing is not None,
                "watching": None if self._watcher is None else self._watcher.mode,
                **self._counters,
            }
        quarantined = self._quarantined()
        stats["quarantined_files"] = len(quarantined)
        stats["quarantined"] = quarantined[:100]
        return stats

    async def _probe(self) -> list[str]:
        problems = list(self._warnings)
        for name in ("sessions", "journal", "tmp"):
            if not os.access(self._root / name, os.W_OK | os.X_OK):
                problems.append(f"{self._root / name} is not writable")
        quarantined = self._quarantined()
        if quarantined:
            problems.append(
                f"{len(quarantined)} damaged file(s) in {self._root / 'quarantine'} "
                f"(first: {quarantined[0]}); read the .reason files, then restore or remove them"
            )
        if self._rollback_to is not None:
            problems.append("a failed journal write could not be cut back yet; writes will retry")
        checkpointer = self._checkpointer
        if checkpointer is not None and checkpointer.died is not None:
            problems.append(
                f"the background checkpointer stopped ({checkpointer.died!r}); the journal "
                "keeps every write but grows: reopen the store"
            )
        problems.extend(
            f"{path} was moved or replaced while the store was open; put it back and reopen"
            for path in self._io.moved_anchors()
        )
        with self._lock:
            problems.extend(damage.describe() for damage in self._damage.unkept)
            problems.extend(f"session {sid}: {why}" for sid, why in self._damage.broken.items())
            problems.extend(
                f"session {sid} is damaged ({why}); run 'check --repair' to set it aside"
                for sid, why in self._damage.sessions.items()
                if sid in self._index
            )
        return problems

    async def _optimize_backend(self) -> list[str]:
        self._writable()
        try:
            await asyncio.to_thread(_checkpoint.checkpoint_now, self)
        except OSError as exc:
            self._record_error(exc)
            raise StoreIOError(
                f"checkpoint failed: {exc}; the journal still holds every write"
            ) from exc
        return [f"checkpointed the journal (now generation {self._generation})"]

    def __repr__(self) -> str:
        state = "open" if self.is_initialized else "closed"
        return f"<FileSystemSessionStore {str(self._root)!r} {self._durability} {state}>"
