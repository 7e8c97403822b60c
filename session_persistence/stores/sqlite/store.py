"""``SQLiteSessionStore``: the store contract on one SQLite database file (seeds 000, 001, 004).

Threading
    Every ``sqlite3`` call runs on one worker thread per store (a single-thread executor), so
    the connection is only ever used from that thread and the event loop never blocks.

Tables (see :mod:`._schema` for the columns and the migrations)
    ``{prefix}sessions`` holds one row per session: its header as columns (ids, UTC timestamps,
    version, counts) and its ``metadata`` and ``tags`` as JSON text. ``{prefix}interactions``
    holds one row per interaction, ``(session_id, seq, data)``, deleted with its session
    (``ON DELETE CASCADE``) and read back ``ORDER BY seq``. Both read well in the ``sqlite3``
    shell: ``SELECT session_id, created_at, last_accessed_at FROM sessions``.

Writes and durability
    Writers queue their batches; the worker takes every queued batch and applies them in one
    ``BEGIN IMMEDIATE`` transaction (group commit), each batch inside its own savepoint so a
    version conflict or a full store fails that batch alone. Inside the transaction each op's
    expected version is checked against the row, so checks hold across processes sharing the
    file (``BEGIN IMMEDIATE`` takes the database's write lock). Then ``COMMIT``:

    * ``durability="full"``: ``synchronous=FULL`` — the WAL is fsynced at every commit, so an
      acknowledged write survives power loss;
    * ``durability="process"``: ``synchronous=NORMAL`` — the WAL is fsynced only at
      checkpoints: a killed process loses nothing, a power loss may lose the latest commits
      (never corrupting the file).

    A crash before ``COMMIT`` leaves nothing of the group; SQLite's WAL recovery on the next open
    does the rest. Puts are upserts that replace the session's interaction rows; appends insert
    rows only (O(1) in the session's length).

Locking
    ``busy_timeout`` (default 10 s) is how long a write waits for another process's write lock;
    after it, the write raises :class:`~session_persistence.errors.StoreLockTimeoutError` and
    nothing is applied. "database is locked" never reaches the caller as anything else.

Reads and expiry
    Filters, counts, sorting, pagination and search are answered by SQL (see :mod:`._sql`).
    A read refreshes ``last_accessed_at`` in this process at once, and in the database with the
    next write (or before a query that judges idle expiry, or at shutdown), so reads cost no
    write of their own.

Events
    Listeners see this process's writes at once, and other processes' writes within
    ``poll_interval`` (``watch=True``, the default; see :mod:`._follow`).

Sealing and compression
    With ``encryption`` or ``compression`` configured, the ``metadata`` column and every
    interaction row are sealed and compressed one value at a time; every other column stays
    in clear. Reads open them in memory; filters and search open them through SQL functions;
    ``rotate_key`` re-seals them in short write transactions while writes go on. See
    :mod:`._seal`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import random
import re
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from ...config import Durability, SessionStoreConfig
from ...documents import header_of
from ...errors import (
    ConfigurationError,
    SessionLimitError,
    StoreCorruptionError,
    StoreIOError,
    StoreLockTimeoutError,
)
from ...models import (
    Interaction,
    PersistedSession,
    SessionFilter,
    SessionHeader,
    SessionQueryOptions,
)
from ...ops import DeleteOp, PutOp, WriteOp
from ...query import (
    Search,
    matches_filter,
    sort_and_page,
)
from ...serialization import Codec
from .._history import HistoryWindow
from ..base import SessionStore
from ._follow import Follower
from ._history import HistoryStatements, decode_slice, history_rows
from ._maintenance import Maintenance
from ._reader import Busy, Reader
from ._rows import HEADER_COLUMNS, accessed, header_from_row, session_from_rows, timestamp
from ._schema import SCHEMA_VERSION, migrate
from ._seal import Functions, opened
from ._sql import expired_condition, order_by, register_functions, select
from ._write import Statements, session_rows, versions_match, write_op

__all__ = ["SQLiteSessionStore"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")


@dataclasses.dataclass(slots=True)
class _Queued:
    """One writer's batch waiting for the next group commit."""

    ops: Sequence[WriteOp]
    max_sessions: int | None
    error: BaseException | None = None
    done: bool = False
    # A single-operation write (see SessionStore._apply_single): ``ops`` is built in the
    # commit, from the row read there.
    build: Callable[[SessionHeader | None, PersistedSession | None], tuple[Any, Any]] | None = None
    session_id: str = ""
    load: bool = False
    result: Any = None


class SQLiteSessionStore(Maintenance, SessionStore):
    """Keeps sessions in a SQLite database file (or ``":memory:"``).

    Args:
        path: The database file; its parent directory is created. ``":memory:"`` keeps the
            database in this process only.
        config: Store options.
        table_prefix: Prepended to the table names, so several stores can share one file
            (letters, digits and ``_``).
        durability: ``"full"`` (survives power loss) or ``"process"`` (survives a killed
            process); see the module documentation.
        codec: Serialization codec.
        busy_timeout: Seconds a write waits for another process's lock before raising
            ``StoreLockTimeoutError``.
        watch: Deliver other processes' writes as events (see the module documentation).
        poll_interval: Seconds between checks for other processes' writes while watching.
        file_mode: Permissions of a database file this store creates.
        dir_mode: Permissions of directories this store creates.
    """

    store_type: ClassVar[str] = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str] = "./data/sessions.db",
        config: SessionStoreConfig | None = None,
        *,
        table_prefix: str = "",
        durability: Durability = "full",
        codec: Codec | None = None,
        busy_timeout: float = 10.0,
        watch: bool = True,
        poll_interval: float = 0.25,
        file_mode: int = 0o600,
        dir_mode: int = 0o700,
    ) -> None:
        super().__init__(config, codec=codec)
        if durability not in ("full", "process"):
            raise ConfigurationError("durability", "must be 'full' or 'process'")
        if not isinstance(table_prefix, str) or not (
            table_prefix == "" or _PREFIX.fullmatch(table_prefix)
        ):
            raise ConfigurationError(
                "table_prefix", "must be letters, digits and '_' (not starting with a digit)"
            )
        for name, value in (("busy_timeout", busy_timeout), ("poll_interval", poll_interval)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigurationError(name, "must be a number of seconds above zero")
        self._memory = os.fspath(path) == ":memory:"
        self._path = Path(path)
        self._label = ":memory:" if self._memory else str(self._path)
        self._prefix = table_prefix
        self._sql = Statements(table_prefix)
        self._history = HistoryStatements(table_prefix)
        self._durability: Durability = durability
        self._durable_backups = durability == "full" and not self._memory
        self._busy_timeout = float(busy_timeout)
        self._file_mode = file_mode
        self._dir_mode = dir_mode
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self._reader: Reader | None = None  # point reads on the caller's thread (_reader.py)
        self._queue: list[_Queued] = []
        self._queue_lock = threading.Lock()
        self._touched: dict[str, datetime] = {}
        self._touch_lock = threading.Lock()
        self._reading = False  # a backup's read transaction is open (see _frozen)
        self._migrated_from: int | None = None
        self._commits = 0
        self._batches = 0
        # Following other processes' writes (see "Events"): the versions last seen, or None
        # while nobody listens; touched only on the worker thread.
        self._watch = bool(watch) and not self._memory
        self._follower = Follower(self, float(poll_interval))
        # sp_meta / sp_item on the worker's connection, and the typed errors they fail with.
        self._opening = Functions(lambda: self._envelope)

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def durability(self) -> Durability:
        """The durability mode."""
        return self._durability

    # == the worker thread =======================================================================

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the worker thread; SQLite errors become typed store errors."""
        assert self._executor is not None, "used before _open or after _close"
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._executor, functools.partial(self._run, fn, *args)
            )
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """On the worker: ``fn(*args)``, raising the typed error a SQL function failed with."""
        try:
            return fn(*args)
        except sqlite3.Error as exc:
            error = self._opening.take_error()
            if error is not None:
                raise error from exc
            raise

    def _translate(self, exc: sqlite3.Error) -> Exception:
        text = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            return StoreLockTimeoutError(
                f"the database {self._label} stayed locked by another connection for "
                f"{self._busy_timeout:g}s (busy_timeout); nothing was applied, try again"
            )
        if (
            "malformed" in text
            or "not a database" in text
            or isinstance(exc, sqlite3.IntegrityError)
        ):
            return StoreCorruptionError(
                f"the database {self._label} is damaged ({text}); restore it from a backup",
                self._label,
            )
        return StoreIOError(f"the database {self._label} failed: {text}", self._label)

    @property
    def _conn(self) -> sqlite3.Connection:
        assert self._db is not None, "used before _open or after _close"
        return self._db

    # == lifecycle ===============================================================================

    async def _open(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"sqlite-store-{id(self):x}")
        try:
            await self._call(self._open_sync)
        except BaseException:
            self._executor.shutdown(wait=True)
            self._executor = None
            raise
        if self._watch:
            self._spawn(self._follower.run, "follow")

    def _open_sync(self) -> None:
        if not self._memory:
            self._path.parent.mkdir(mode=self._dir_mode, parents=True, exist_ok=True)
            # Create the file with our permissions; SQLite gives its -wal and -shm files the
            # database file's permissions.
            os.close(os.open(self._path, os.O_CREAT | os.O_RDWR, self._file_mode))
        db = sqlite3.connect(
            self._label,
            timeout=self._busy_timeout,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            cached_statements=256,
        )
        try:
            # Concurrent first opens: two connections that both read a fresh file (still in
            # rollback-journal mode) and both try to switch it to WAL would deadlock, so SQLite
            # fails one of them with SQLITE_BUSY at once, without waiting busy_timeout. Each
            # step below is idempotent (pragmas; a migration is one transaction that rolls
            # back whole), so the loser lets go of its read lock and starts again.
            deadline = time.monotonic() + self._busy_timeout
            while True:
                try:
                    self._setup(db)
                    break
                except sqlite3.OperationalError as exc:
                    if _busy(exc) and time.monotonic() < deadline:
                        time.sleep(random.uniform(0.001, 0.01))  # apart, not in lockstep
                        continue
                    raise
            if not self._memory:  # (another connection to ":memory:" is another database)
                self._reader = Reader(self._label, self._sql)
        except BaseException:
            db.close()
            raise
        self._db = db

    def _setup(self, db: sqlite3.Connection) -> None:
        """Set the connection's pragmas and bring the schema up to date (repeatable)."""
        db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
        if not self._memory:
            (mode,) = db.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode != "wal":
                raise StoreIOError(
                    f"cannot put {self._label} in WAL mode (it stays in {mode!r})",
                    self._label,
                )
        db.execute("PRAGMA foreign_keys = ON")
        synchronous = "FULL" if self._durability == "full" else "NORMAL"
        db.execute(f"PRAGMA synchronous = {synchronous}")
        if self._envelope.sealing:
            # Content deleted or overwritten (a plain row re-sealed, a session deleted) is
            # zeroed in the file, not left in free space for a reader of the file to find.
            db.execute("PRAGMA secure_delete = ON")
        register_functions(db, self._codec, self._opening)
        self._migrated_from, _ = migrate(db, self._prefix, self._label)

    async def _close(self) -> None:
        try:
            await self._call(self._close_sync)
        finally:
            assert self._executor is not None
            self._executor.shutdown(wait=True)
            self._executor = None

    def _close_sync(self) -> None:
        try:
            # A writer cancelled before the worker reached its call leaves its batch queued:
            # commit it rather than drop it silently (cancelling a write never unsends it).
            self._commit_queued()
            self._locked(self._write_touches)
            self._locked(self._pragma_optimize)
        finally:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
            self._conn.close()
            self._db = None

    def _locked(self, body: Callable[[], T]) -> T:
        """Run ``body`` in a ``BEGIN IMMEDIATE`` transaction (waiting up to busy_timeout).

        Taking the write lock first matters: a statement that reads and then writes outside
        one fails at once with "database is locked" if another process wrote in between.
        """
        db = self._conn
        db.execute("BEGIN IMMEDIATE")
        try:
            result = body()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return result

    def _pragma_optimize(self) -> None:
        self._conn.execute("PRAGMA optimize").fetchall()

    # == reads ===================================================================================

    @contextlib.contextmanager
    def _snapshot(self) -> Any:
        """Run several SELECTs as one read transaction (one committed instant)."""
        db = self._conn
        if db.in_transaction:  # a backup's read transaction is already open
            yield db
            return
        db.execute("BEGIN")
        try:
            yield db
        finally:
            db.execute("COMMIT")

    def _recorded(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        """The row with this process's latest recorded read of it (see :meth:`_touch`)."""
        touched = self._touched.get(row[0])
        return row if touched is None else accessed(row, timestamp(touched))

    def _header(self, row: tuple[Any, ...]) -> SessionHeader:
        """The header of a row as read (its metadata opened here)."""
        row, _ = opened(self._envelope, row, None, self._label)
        return self._header_of(row)

    def _header_of(self, row: tuple[Any, ...]) -> SessionHeader:
        """The header of a row whose metadata is opened already.

        Never opened twice: a store that refuses records in clear would take the opened
        value for one.
        """
        return header_from_row(self._recorded(row), self._codec, self._label)

    def _load_sync(self, session_ids: Sequence[str]) -> list[PersistedSession | None]:
        p = self._prefix
        found: list[PersistedSession | None] = []
        with self._snapshot() as db:
            for session_id in session_ids:
                row = db.execute(
                    f"SELECT {HEADER_COLUMNS} FROM {p}sessions WHERE session_id = ?", (session_id,)
                ).fetchone()
                if row is None:
                    found.append(None)
                    continue
                texts = [text for (text,) in db.execute(self._sql.texts, (session_id,))]
                found.append(self._session(row, texts))
        return found

    def _session(self, row: tuple[Any, ...], texts: Sequence[str]) -> PersistedSession:
        row, items = opened(self._envelope, row, texts, self._label)
        return session_from_rows(self._recorded(row), items, self._codec, self._label)

    async def _point_read(self, read: Callable[[sqlite3.Connection], T]) -> T:
        """``read(connection)``: on this thread if no lock is in the way, else on the worker."""
        reader = self._reader
        if reader is not None and not self._reading:  # (a backup reads its own snapshot)
            try:
                return reader.run(read)
            except Busy:
                pass  # read through the worker, which waits for the lock
            except sqlite3.Error as exc:
                raise self._translate(exc) from exc
        return await self._call(self._read_on_worker, read)

    def _read_on_worker(self, read: Callable[[sqlite3.Connection], T]) -> T:
        return read(self._conn)

    async def _session_rows(self, session_id: str) -> tuple[tuple[Any, ...], list[str]] | None:
        """A session's header row and interaction rows: on this thread if no lock is in the way."""
        reader = self._reader
        if reader is not None and not self._reading:  # (a backup reads its own snapshot)
            try:
                return reader.session_rows(session_id)
            except Busy:
                pass  # read through the worker, which waits for the lock
            except sqlite3.Error as exc:
                raise self._translate(exc) from exc
        return await self._call(self._session_rows_sync, session_id)

    def _session_rows_sync(self, session_id: str) -> tuple[tuple[Any, ...], list[str]] | None:
        return session_rows(self._conn, self._sql, session_id)

    async def _load(self, session_id: str) -> PersistedSession | None:
        found = await self._session_rows(session_id)
        return None if found is None else self._session(*found)

    async def _load_live(self, session_id: str, now: datetime) -> PersistedSession | None:
        # One read, one decode. Without an idle timeout, expiry does not depend on
        # last_accessed_at, so the row is decoded with this read already in it.
        found = await self._session_rows(session_id)
        if found is None:
            return None
        row, texts = found
        if self._idle is None:
            row, texts = opened(self._envelope, row, texts, self._label)
            row = accessed(self._recorded(row), timestamp(now))
            session = session_from_rows(row, texts, self._codec, self._label)
            if session.expires_at is not None and session.expires_at <= now:
                return None
        else:
            session = self._session(row, texts)
            if self._expired(session, now):
                return None
            if now > session.last_accessed_at:
                session = dataclasses.replace(session, last_accessed_at=now)
        self._touch(session_id, now)
        return session

    async def _load_live_interactions(
        self, session_id: str, now: datetime, window: HistoryWindow
    ) -> list[Interaction] | None:
        # _load_live's expiry and touch, over the header row and only the window's rows.
        found = await self._point_read(
            lambda db: history_rows(db, self._history, session_id, window)
        )
        if found is None or self._expired(self._header(found[0]), now):
            return None
        self._touch(session_id, now)
        return decode_slice(
            found[0], found[1], window, self._label, self._codec, envelope=self._envelope
        )

    async def _load_many(self, session_ids: Sequence[str]) -> list[PersistedSession | None]:
        if not session_ids:
            return []
        return await self._call(self._load_sync, session_ids)

    def _headers_sync(self, sql: str, params: Sequence[Any]) -> list[SessionHeader]:
        return [self._header(row) for row in self._conn.execute(sql, params)]

    async def _get_header(self, session_id: str) -> SessionHeader | None:
        reader = self._reader
        if reader is not None and not self._reading:
            try:
                row = reader.header_row(session_id)
            except Busy:
                pass  # read through the worker, which waits for the lock
            except sqlite3.Error as exc:
                raise self._translate(exc) from exc
            else:
                return None if row is None else self._header(row)
        headers = await self._call(self._headers_sync, self._sql.header, [session_id])  # (busy)
        return headers[0] if headers else None

    async def _scan(self) -> Sequence[SessionHeader]:
        sql = f"SELECT {HEADER_COLUMNS} FROM {self._prefix}sessions s"
        return await self._call(self._headers_sync, sql, [])

    async def _session_count(self) -> int:
        sql = f"SELECT count(*) FROM {self._prefix}sessions"
        return await self._call(self._count_sync, sql, [])

    def _count_sync(self, sql: str, params: Sequence[Any]) -> int:
        (count,) = self._conn.execute(sql, params).fetchone()
        assert type(count) is int
        return count

    def _touch(self, session_id: str, when: datetime) -> None:
        with self._touch_lock:
            if self._touched.get(session_id, when) <= when:
                self._touched[session_id] = when

    async def _query(
        self,
        flt: SessionFilter,
        options: SessionQueryOptions,
        now: datetime,
        search: Search | None = None,
    ) -> list[SessionHeader]:
        await self._before_query(flt)
        sql, params, exact = select(self._prefix, flt, now, self._idle, search)
        if not exact:  # SQL narrowed it down; Python decides the rest, then sorts and pages
            headers = await self._call(self._headers_sync, sql, params)
            return sort_and_page([h for h in headers if matches_filter(h, flt)], options)
        sql += order_by(options)
        params += [-1 if options.limit is None else options.limit, options.offset]
        return await self._call(self._headers_sync, sql, params)

    async def _count(self, flt: SessionFilter, now: datetime) -> int | None:
        await self._before_query(flt)
        sql, params, exact = select(self._prefix, flt, now, self._idle, columns="count(*)")
        if not exact:
            return len(await self._query(flt, SessionQueryOptions(), now))
        return await self._call(self._count_sync, sql, params)

    async def _expired_headers(self, now: datetime) -> Sequence[SessionHeader]:
        await self._before_query(SessionFilter())
        condition, params = expired_condition(now, self._idle)
        sql = f"SELECT {HEADER_COLUMNS} FROM {self._prefix}sessions s WHERE {condition}"
        return await self._call(self._headers_sync, sql, params)

    async def _before_query(self, flt: SessionFilter) -> None:
        """Write recorded reads first when SQL is about to judge idle expiry from them."""
        if self._idle is not None and not flt.include_expired and self._touched:
            await self._call(self._flush_touches)

    # == writes ==================================================================================

    async def _apply(self, ops: Sequence[WriteOp], *, max_sessions: int | None) -> None:
        await self._commit(_Queued(ops, max_sessions))

    async def _apply_single(
        self,
        session_id: str,
        build: Callable[[SessionHeader | None, PersistedSession | None], tuple[WriteOp | None, T]],
        *,
        load: bool,
        max_sessions: int | None,
    ) -> T:
        # One worker call: the read, the build and the write happen in the group commit's
        # transaction (see _apply_built), beside the other writers queued with it.
        queued = _Queued((), max_sessions, build=build, session_id=session_id, load=load)
        await self._commit(queued)
        result: T = queued.result
        return result

    async def _commit(self, queued: _Queued) -> None:
        with self._queue_lock:
            self._queue.append(queued)
        # The worker runs calls in order, so by the time this one runs our batch has been
        # committed (or failed) by it or by an earlier call that took the whole queue.
        await self._call(self._commit_queued)
        assert queued.done
        if queued.error is not None:
            raise queued.error

    def _commit_queued(self) -> None:
        with self._queue_lock:
            group, self._queue = self._queue, []
        if not group:
            return
        db = self._conn
        try:
            db.execute("BEGIN IMMEDIATE")  # the write lock: waits up to busy_timeout
            try:
                # Alone in its transaction, a write needs no savepoint: if it is refused,
                # rolling the whole transaction back undoes it (two statements fewer).
                alone = len(group) == 1
                for queued in group:
                    if not alone:
                        db.execute("SAVEPOINT batch")
                    try:
                        if queued.build is None:
                            self._apply_ops(queued.ops, queued.max_sessions)
                        else:
                            self._apply_built(queued)
                    except sqlite3.Error:
                        raise  # the storage failed: the whole group fails
                    except Exception as exc:  # a conflict, a full store, a refused build
                        if not alone:
                            db.execute("ROLLBACK TO batch")
                        queued.error = exc
                    if not alone:
                        db.execute("RELEASE batch")
                if alone and group[0].error is not None:
                    db.execute("ROLLBACK")  # nothing to commit; recorded reads wait their turn
                else:
                    self._write_touches()
                    db.execute("COMMIT")  # synchronous=FULL: the WAL is fsynced first
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            error = self._translate(exc)
            for queued in group:
                queued.error = queued.error or error
        except BaseException as exc:
            for queued in group:
                queued.error = queued.error or exc
        else:
            for queued in group:
                if queued.error is None:
                    self._follower.remember(queued.ops)
        finally:
            for queued in group:
                queued.done = True
        self._commits += 1
        self._batches += len(group)

    def _apply_ops(self, ops: Sequence[WriteOp], max_sessions: int | None) -> None:
        db, sql = self._conn, self._sql
        versions_match(db, sql, ops)
        if max_sessions is not None:
            created = sum(1 for op in ops if isinstance(op, PutOp) and op.expected is None)
            deleted = sum(1 for op in ops if isinstance(op, DeleteOp))
            if created and self._count_sync(sql.count, []) + (created - deleted) > max_sessions:
                raise SessionLimitError(max_sessions)
        for op in ops:
            write_op(db, sql, op, envelope=self._envelope)
            if isinstance(op, DeleteOp):
                self._forget_touch(op.session_id)

    def _apply_built(self, queued: _Queued) -> None:
        """Read one session, build its op from it and write the op, in the open transaction.

        The write lock is held since ``BEGIN IMMEDIATE``, so the row read here is the one the
        op replaces: the version-checked statement cannot miss.
        """
        assert queued.build is not None
        db, sql = self._conn, self._sql
        row: tuple[Any, ...] | None = None
        header = session = texts = None
        if queued.load:
            found = session_rows(db, sql, queued.session_id)  # one statement
            if found is not None:
                # Opened: write_op compares the op's plain values with these.
                row, texts = opened(self._envelope, *found, self._label)
                session = session_from_rows(self._recorded(row), texts, self._codec, self._label)
                # The header from the session just decoded (the same row): no second decode.
                size = row[13]
                valid = type(size) is int and size >= 0
                header = header_of(session, size) if valid else self._header_of(row)
        else:
            row = db.execute(sql.header, (queued.session_id,)).fetchone()
            if row is not None:
                row, _ = opened(self._envelope, row, None, self._label)
                header = self._header_of(row)
        op, queued.result = queued.build(header, session)
        if op is None:
            return
        write_op(db, sql, op, envelope=self._envelope, row=row, stored=texts)
        queued.ops = (op,)
        if isinstance(op, DeleteOp):
            self._forget_touch(op.session_id)

    def _forget_touch(self, session_id: str) -> None:
        with self._touch_lock:
            self._touched.pop(session_id, None)

    def _write_touches(self) -> None:
        """Write recorded reads' ``last_accessed_at`` (inside the caller's transaction)."""
        with self._touch_lock:
            touched, self._touched = self._touched, {}
        if touched:
            self._conn.executemany(
                f"UPDATE {self._prefix}sessions SET last_accessed_at = ? "
                "WHERE session_id = ? AND last_accessed_at < ?",
                [(timestamp(when), sid, timestamp(when)) for sid, when in touched.items()],
            )

    def _flush_touches(self) -> None:
        if self._reading:
            return  # a backup's read transaction is open; the next write carries them
        self._locked(self._write_touches)

    # == other processes' writes (see _follow.py) ================================================

    def _listening(self) -> None:
        if self._watch:
            self._follower.listening()

    # == backups =================================================================================

    @contextlib.asynccontextmanager
    async def _frozen(self) -> AsyncIterator[None]:
        """Hold this process's writers off and read from one WAL snapshot.

        Other processes keep writing: in WAL mode a read transaction sees the database as it
        was when it began, whatever commits after.
        """
        async with super()._frozen():
            await self._call(self._begin_read)
            try:
                yield
            finally:
                await asyncio.shield(self._call(self._end_read))

    def _begin_read(self) -> None:
        db = self._conn
        db.execute("BEGIN")
        db.execute(f"SELECT count(*) FROM {self._prefix}sessions").fetchone()  # pins the snapshot
        self._reading = True

    def _end_read(self) -> None:
        self._reading = False
        self._conn.execute("COMMIT")

    def _default_backup_dir(self) -> Path | None:
        if self._memory:
            return None
        return self._path.with_name(self._path.name + "-backups")

    # == monitoring ==============================================================================

    def _figures(self) -> dict[str, Any]:
        db = self._conn
        (pages,) = db.execute("PRAGMA page_count").fetchone()
        (page_size,) = db.execute("PRAGMA page_size").fetchone()
        (free,) = db.execute("PRAGMA freelist_count").fetchone()
        wal = Path(f"{self._path}-wal")
        (journal_mode,) = db.execute("PRAGMA journal_mode").fetchone()
        (synchronous,) = db.execute("PRAGMA synchronous").fetchone()
        (foreign_keys,) = db.execute("PRAGMA foreign_keys").fetchone()
        return {
            "journal_mode": journal_mode,
            "synchronous": synchronous,
            "foreign_keys": foreign_keys,
            "path": self._label,
            "table_prefix": self._prefix,
            "durability": self._durability,
            "schema_version": SCHEMA_VERSION,
            "migrated_from": self._migrated_from,
            "database_bytes": pages * page_size,
            "free_bytes": free * page_size,
            "wal_bytes": 0 if self._memory or not wal.exists() else wal.stat().st_size,
            "sqlite_version": sqlite3.sqlite_version,
            "commits": self._commits,
            "batches_committed": self._batches,
        }

    async def _backend_stats(self) -> dict[str, Any]:
        return await self._call(self._figures)

    async def _probe(self) -> list[str]:
        problems: list[str] = []
        if not self._memory and not os.access(self._path.parent, os.W_OK | os.X_OK):
            problems.append(f"the database directory {self._path.parent} is not writable")
        await self._call(self._count_sync, "SELECT 1", [])
        return problems

    async def _optimize_backend(self) -> list[str]:
        return await self._call(self._optimize_sync)

    def _optimize_sync(self) -> list[str]:
        db = self._conn
        done = ["PRAGMA optimize"]
        self._locked(self._pragma_optimize)
        if not self._memory:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            done.append("checkpointed the WAL")
        (pages,) = db.execute("PRAGMA page_count").fetchone()
        (free,) = db.execute("PRAGMA freelist_count").fetchone()
        if pages and free / pages > 0.25:  # worth rewriting the file
            db.execute("VACUUM")
            done.append(f"VACUUM reclaimed {free} free page(s)")
        return done

    def __repr__(self) -> str:
        state = "open" if self.is_initialized else "closed"
        return f"<SQLiteSessionStore {self._label!r} {state}>"


def _busy(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite refused for a lock another connection holds (SQLITE_BUSY and kin)."""
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_BUSY
