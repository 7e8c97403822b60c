"""``PostgresSessionStore``: the store contract on PostgreSQL, for processes on many hosts.

Connections
    An ``AsyncConnectionPool`` (psycopg 3, ``psycopg_pool``) of ``min_size`` to ``max_size``
    connections in autocommit mode; every write takes one connection for one transaction and
    gives it back, so writers to different sessions run in parallel, one per connection, with
    no lock of the store's own (``_apply``). Reads are single statements (one snapshot each).
    A connection the server dropped (a restart) fails the call that was using it with
    :class:`~session_persistence.errors.StoreIOError` and is then discarded by the pool, which
    opens new ones by itself; a read is retried once on a fresh connection first.

Tables (see :mod:`._schema`)
    ``{prefix}sessions``: one row per session, header columns and the ``json`` document parts;
    ``{prefix}interactions``: one row per interaction (an append is an ``INSERT``);
    ``{prefix}schema`` (the version) and ``{prefix}quarantine`` (damaged rows set aside by
    ``check(repair=True)``). Created and migrated at ``initialize()`` under an advisory lock.

Writes and durability
    A batch (one write, or a whole transaction) is one PostgreSQL transaction: ``BEGIN``, each
    op as a version-checked statement (see :mod:`._write`), ``pg_notify`` (see
    :mod:`._follow`), ``COMMIT``. Nothing is acknowledged before ``COMMIT`` returns.
    ``durability="full"`` commits with ``synchronous_commit = on`` (the WAL is flushed, on the
    server, before the commit returns: a power loss keeps it); ``"process"`` with
    ``synchronous_commit = off`` (a client or server process killed keeps it once the WAL
    writer has run, within ~0.6 s by default; a server crash may lose the last commits, never
    half of one). A connection lost during ``COMMIT`` raises ``StoreIOError`` saying the
    outcome is unknown.

Timeouts
    ``lock_timeout`` (default 10 s) bounds how long a statement waits for a row another
    transaction holds: :class:`~session_persistence.errors.StoreLockTimeoutError`.
    ``statement_timeout`` (default none) bounds every statement: ``StoreIOError``. Both are
    rolled back whole. ``connect_timeout`` bounds waiting for a pooled connection.

Reads and expiry
    Filters, counts, sorting and pagination are SQL (see :mod:`._sql`); a text search is
    decided in Python over the rows the filter selects (its rules, ``str.lower`` over decoded
    values, are Python's). A read records ``last_accessed_at`` in this process at once, and
    in the database before a query that judges idle expiry, when many are pending, at
    shutdown, and, with ``idle_timeout`` set, once the oldest pending read is a quarter of
    ``idle_timeout`` old (so other hosts' cleanups see it; see ``_flush_due``): many reads
    share one write.

Sealing and compression
    With ``encryption`` or ``compression`` configured, the metadata value and every
    interaction row are wrapped where they are written and opened where they are read (see
    :mod:`._seal`); the other columns are headers, in clear. Rotation: :mod:`._rotate`.

Backups
    The base's snapshot algorithm, with ``_frozen`` reading from one ``REPEATABLE READ``
    transaction: a consistent instant while every host keeps writing.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import psycopg
import psycopg_pool
from psycopg.rows import TupleRow

from ...config import Durability, SessionStoreConfig
from ...errors import (
    ConfigurationError,
    SessionConflictError,
    SessionLimitError,
    StoreClosedError,
    StoreCorruptionError,
)
from ...models import (
    CheckProblem,
    PersistedSession,
    ProgressCallback,
    SessionFilter,
    SessionHeader,
    SessionQueryOptions,
)
from ...ops import DeleteOp, PutOp, WriteOp, op_session_id
from ...query import Search, matches_filter, matches_search, sort_and_page
from ...query import search_interactions as search_interactions_of
from ...serialization import Codec
from ..base import SessionStore
from ._errors import translate
from ._fast import Known, apply_single
from ._follow import Follower, payload
from ._repair import quarantine
from ._rotate import key_census, reseal
from ._rows import HEADER_SELECT, HeaderRow, header_from_row, session_from_rows
from ._schema import SCHEMA_VERSION, migrate
from ._sql import expired_condition, order_by, select
from ._write import Statements, write_ops

__all__ = ["PostgresSessionStore"]

logger = logging.getLogger(__name__)

Conn = psycopg.AsyncConnection[TupleRow]
T = TypeVar("T")

_PREFIX = re.compile(r"[a-z_][a-z0-9_]{0,39}")
_TOUCH_BACKLOG = 1000  # recorded reads written once this many are pending

#: A backup's ``REPEATABLE READ`` transaction (see ``_frozen``), for the backup's own reads
#: only: set in the task that holds ``_frozen``, so no other task of the process reads from it.
_SNAPSHOT: contextvars.ContextVar[tuple[PostgresSessionStore, Conn] | None] = (
    contextvars.ContextVar("session_persistence_postgres_snapshot", default=None)
)


class PostgresSessionStore(SessionStore):
    """Keeps sessions in PostgreSQL tables that processes on many hosts share.

    Args:
        dsn: A libpq connection string or URI (``postgresql://user@host/db``); ``None``
            uses libpq's defaults and ``PG*`` environment variables.
        config: Store options.
        pool: A ``psycopg_pool.AsyncConnectionPool`` to use instead of opening one (the store
            neither opens nor closes it, and sets its connections to autocommit; timeouts
            and durability are then set per transaction, as with ``pgbouncer``).
        min_size: Connections the store's pool keeps open.
        max_size: Connections the store's pool may open (concurrent writes beyond it wait).
        table_prefix: Prepended to the table names and the events channel (lower-case
            letters, digits and ``_``), so several stores can share a database.
        durability: ``"full"`` (``synchronous_commit = on``) or ``"process"`` (``off``); see
            the module documentation.
        codec: Serialization codec.
        lock_timeout: Seconds a statement waits for a row lock (``None``: the server's
            setting).
        statement_timeout: Seconds any statement may run (``None``: the server's setting).
        connect_timeout: Seconds to wait for a connection (from the pool, or a new one).
        pgbouncer: Behind PgBouncer in transaction mode: no server-side prepared statements
            and no session state (timeouts and durability are set with ``SET LOCAL`` in each
            write's transaction).
        prepare_threshold: psycopg's ``prepare_threshold`` (``None``: never prepare).
        listen_dsn: Where the events connection goes, if not ``dsn`` (PgBouncer in
            transaction mode cannot hold a ``LISTEN``: give the server's own address).
        watch: Deliver other stores' writes (any host) as events (see :mod:`._follow`).
    """

    store_type: ClassVar[str] = "postgres"

    def __init__(
        self,
        dsn: str | None = None,
        config: SessionStoreConfig | None = None,
        *,
        pool: psycopg_pool.AsyncConnectionPool[Any] | None = None,
        min_size: int = 1,
        max_size: int = 10,
        table_prefix: str = "sp_",
        durability: Durability = "full",
        codec: Codec | None = None,
        lock_timeout: float | None = 10.0,
        statement_timeout: float | None = None,
        connect_timeout: float = 10.0,
        pgbouncer: bool = False,
        prepare_threshold: int | None = 5,
        listen_dsn: str | None = None,
        watch: bool = True,
    ) -> None:
        super().__init__(config, codec=codec)
        if durability not in ("full", "process"):
            raise ConfigurationError("durability", "must be 'full' or 'process'")
        if not isinstance(table_prefix, str) or not _PREFIX.fullmatch(table_prefix):
            raise ConfigurationError(
                "table_prefix",
                "must be 1-40 lower-case letters, digits and '_' (not starting with a digit)",
            )
        if dsn is not None and not isinstance(dsn, str):
            raise ConfigurationError("dsn", "must be a connection string or URI")
        if pool is not None and not isinstance(pool, psycopg_pool.AsyncConnectionPool):
            raise ConfigurationError("pool", "must be a psycopg_pool.AsyncConnectionPool")
        if type(min_size) is not int or type(max_size) is not int or min_size < 0:
            raise ConfigurationError("min_size", "min_size and max_size must be ints >= 0")
        if max_size < max(1, min_size):
            raise ConfigurationError("max_size", "must be at least 1 and at least min_size")
        for name, value in (
            ("lock_timeout", lock_timeout),
            ("statement_timeout", statement_timeout),
            ("connect_timeout", connect_timeout),
        ):
            if value is None and name != "connect_timeout":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigurationError(name, "must be a number of seconds above zero")
        self._dsn = dsn
        self._given_pool = pool
        self._pool: psycopg_pool.AsyncConnectionPool[Any] | None = None
        self._min_size = min_size
        self._max_size = max_size
        self.prefix = table_prefix
        self.channel = f"{table_prefix}events"
        self._sql = Statements(table_prefix)
        self._durability: Durability = durability
        self._lock_timeout = lock_timeout
        self._statement_timeout = statement_timeout
        self._connect_timeout = float(connect_timeout)
        self._per_transaction = pgbouncer or pool is not None
        self._pgbouncer = bool(pgbouncer)  # (then backend_pid is not the server's: see _fast)
        self._prepare_threshold = None if pgbouncer else prepare_threshold
        self._listen_dsn = listen_dsn
        self._watch = bool(watch)
        self._follower = Follower(self)
        self._touched: dict[str, datetime] = {}
        self._known: dict[str, Known] = {}  # what this store last wrote (see _fast.py)
        self._flushing: asyncio.Task[None] | None = None  # writing recorded reads (_touch)
        self._flush_timer: asyncio.Task[None] | None = None  # writes them on time (_touch)
        self._pending_since: tuple[datetime, float] | None = None  # the oldest unwritten read
        self._snap_lock = asyncio.Lock()
        self._migrated_from: int | None = None
        self._commits = 0
        self.label = f"PostgreSQL tables {table_prefix}*"

    @property
    def durability(self) -> Durability:
        """The durability mode."""
        return self._durability

    def _settings(self) -> list[tuple[str, str]]:
        """The server settings every write runs with."""
        settings = [("synchronous_commit", "on" if self._durability == "full" else "off")]
        if self._lock_timeout is not None:
            settings.append(("lock_timeout", f"{round(self._lock_timeout * 1000)}ms"))
        if self._statement_timeout is not None:
            settings.append(("statement_timeout", f"{round(self._statement_timeout * 1000)}ms"))
        return settings

    # == connections =============================================================================

    def _conninfo(self) -> str:
        if self._dsn is not None:
            return self._dsn
        if self._given_pool is not None and isinstance(self._given_pool.conninfo, str):
            return self._given_pool.conninfo
        return ""

    async def _configure(self, conn: Conn) -> None:
        """A new pooled connection: autocommit, and the session settings (unless PgBouncer).

        ``TimeZone`` is UTC (timestamps are read ``AT TIME ZONE 'UTC'`` anyway, for PgBouncer
        and pools the caller gives, where no session setting can be relied on).
        """
        await conn.set_autocommit(True)
        if not self._per_transaction:
            await conn.execute("SELECT set_config('TimeZone', 'UTC', false)")
            for name, value in self._settings():
                await conn.execute("SELECT set_config(%s, %s, false)", (name, value))

    async def _connect_listener(self) -> Conn:
        """A connection of its own for ``LISTEN`` (see :mod:`._follow`)."""
        try:
            return await psycopg.AsyncConnection.connect(
                self._listen_dsn or self._conninfo(),
                autocommit=True,
                connect_timeout=max(1, round(self._connect_timeout)),
            )
        except psycopg.Error as exc:
            raise translate(exc, self.label, writing=False) from exc

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Conn]:
        pool = self._pool
        if pool is None:  # (a call still running when shutdown() closed the pool)
            raise StoreClosedError("the store was shut down while this call was running")
        # getconn/putconn rather than pool.connection(): the connections are in autocommit
        # mode, so the context manager's commit-or-rollback has nothing to do.
        try:
            conn = await pool.getconn(timeout=self._connect_timeout)
        except psycopg_pool.PoolClosed as exc:
            raise StoreClosedError("the store was shut down while this call was running") from exc
        try:
            if not conn.autocommit:  # (a pool the caller gave us)
                await conn.set_autocommit(True)
            yield conn
        finally:
            await pool.putconn(conn)  # (it discards a broken one, rolls back a transaction)

    async def _weed(self) -> None:
        """After a lost connection: test the idle ones, so the pool drops every dead one."""
        if self._pool is not None:
            with contextlib.suppress(psycopg.Error, psycopg_pool.PoolTimeout):
                await self._pool.check()

    # == lifecycle ===============================================================================

    async def _open(self) -> None:
        if self._given_pool is not None:
            self._pool = self._given_pool
        else:
            self._pool = psycopg_pool.AsyncConnectionPool(
                self._conninfo(),
                min_size=self._min_size,
                max_size=self._max_size,
                kwargs={"autocommit": True, "prepare_threshold": self._prepare_threshold},
                configure=self._configure,
                timeout=self._connect_timeout,
                open=False,
                name=f"session-persistence-{self.prefix}",
            )
        try:
            if self._given_pool is None:
                await self._pool.open(wait=True, timeout=self._connect_timeout)
            async with self._connection() as conn:
                self._migrated_from, _ = await migrate(conn, self.prefix)
        except BaseException as exc:
            await self._close_pool()
            if isinstance(exc, psycopg.Error | psycopg_pool.PoolTimeout):
                raise translate(exc, self.label, writing=False) from exc
            raise
        if self._watch and any(
            self._events.has_listeners(name)
            for name in ("session_created", "session_updated", "session_deleted")
        ):
            self._follower.listening()

    async def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None and self._given_pool is None:
            await pool.close()

    async def _close(self) -> None:
        try:
            await self._follower.stop()
            # Writes already running finish first (each is one transaction on a pooled
            # connection); later ones wait at the gate, then find the pool closed and raise
            # StoreClosedError (see _connection).
            async with self._gate.frozen():
                try:
                    await self._close_rest()
                finally:
                    await self._close_pool()
        finally:
            await self._close_pool()  # (if stopping the follower failed)

    async def _close_rest(self) -> None:
        """Stop writing recorded reads, then write those still pending (best effort)."""
        timer, self._flush_timer = self._flush_timer, None
        if timer is not None:
            timer.cancel()
            await asyncio.gather(timer, return_exceptions=True)
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)
        if self._touched:
            with contextlib.suppress(Exception):  # best effort: reads are not writes
                await self._flush_touches()

    async def following(self) -> None:
        """Wait until events from other stores (any host) are being delivered.

        Listening starts when the first ``on_session_created/updated/deleted`` listener is
        added; writes other stores commit after this returns fire events here.
        """
        self._ensure_open()
        self._follower.listening()
        await self._follower.ready()

    # == reads ===================================================================================

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read statement; a connection lost before it ran is retried once."""
        snap = _SNAPSHOT.get()
        if snap is not None and snap[0] is self:  # a backup's own read (see _frozen)
            conn = snap[1]
            async with self._snap_lock:
                try:
                    cursor = await conn.execute(sql, params)
                    return await cursor.fetchall()
                except psycopg.Error as exc:
                    raise translate(exc, self.label, writing=False) from exc
        for attempt in (1, 2):
            try:
                async with self._connection() as conn:
                    cursor = await conn.execute(sql, params)
                    return await cursor.fetchall()
            except psycopg.OperationalError as exc:
                if attempt == 1 and _lost(exc):
                    await self._weed()  # a connection the server dropped: once more
                    continue
                raise translate(exc, self.label, writing=False) from exc
            except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
                raise translate(exc, self.label, writing=False) from exc
        raise AssertionError("unreachable")

    def _recorded(self, row: HeaderRow) -> HeaderRow:
        """The row with this process's latest recorded read of it (see :meth:`_touch`)."""
        touched = self._touched.get(row[0])
        stored = row[7]
        if touched is not None and isinstance(stored, datetime):
            if stored.tzinfo is None:  # (read in UTC: see HEADER_SELECT)
                stored = stored.replace(tzinfo=UTC)
            if touched > stored:
                return (*row[:7], touched, *row[8:])
        return row

    def _touched_header(self, header: SessionHeader) -> SessionHeader:
        """``header`` with this process's latest recorded read of the session."""
        touched = self._touched.get(header.session_id)
        if touched is not None and touched > header.last_accessed_at:
            return dataclasses.replace(header, last_accessed_at=touched)
        return header

    def _touched_session(self, session: PersistedSession) -> PersistedSession:
        """``session`` with this process's latest recorded read of it."""
        touched = self._touched.get(session.session_id)
        if touched is not None and touched > session.last_accessed_at:
            return dataclasses.replace(session, last_accessed_at=touched)
        return session

    def _header(self, row: HeaderRow) -> SessionHeader:
        return header_from_row(self._recorded(row), self._codec, self.label, self._envelope)

    def _session(self, row: HeaderRow) -> PersistedSession:
        return session_from_rows(
            self._recorded(row[:-1]), row[-1], self._codec, self.label, self._envelope
        )

    def _session_select(self, where: str, *, extra: str = "") -> str:
        """Header columns, then ``extra`` (if given), then the interactions as a JSON array."""
        p = self.prefix
        extra = f"{extra}, " if extra else ""
        return (
            f"SELECT {HEADER_SELECT}, {extra}(SELECT coalesce(json_agg(i.data ORDER BY i.seq), "
            f"'[]')::text FROM {p}interactions i WHERE i.session_id = s.session_id) "
            f"FROM {p}sessions s WHERE {where}"
        )

    async def _load(self, session_id: str) -> PersistedSession | None:
        rows = await self._rows(self._session_select("s.session_id = %s"), (session_id,))
        return self._session(rows[0]) if rows else None

    async def _load_live(self, session_id: str, now: datetime) -> PersistedSession | None:
        session = await self._load(session_id)  # one statement: no header read first
        if session is None or self._expired(session, now):
            return None
        self._touch(session_id, now)
        flushing = self._flushing
        if flushing is not None and not flushing.done():
            # (a flush this read made due: the read is in the database when it returns)
            await asyncio.gather(asyncio.shield(flushing), return_exceptions=True)
        if now > session.last_accessed_at:
            session = dataclasses.replace(session, last_accessed_at=now)
        return session

    async def _load_many(self, session_ids: Sequence[str]) -> list[PersistedSession | None]:
        if not session_ids:
            return []
        rows = await self._rows(
            self._session_select("s.session_id = ANY(%s)"), (list(session_ids),)
        )
        found: dict[str, PersistedSession | None] = {}
        for row in rows:
            try:
                found[row[0]] = self._session(row)
            except StoreCorruptionError as exc:  # left out, counted; check() reports it
                self._record_error(exc)
                logger.error("leaving damaged session %s out: %s", row[0], exc)
        return [found.get(session_id) for session_id in session_ids]

    async def _get_header(self, session_id: str) -> SessionHeader | None:
        sql = f"SELECT {HEADER_SELECT} FROM {self.prefix}sessions s WHERE s.session_id = %s"
        rows = await self._rows(sql, (session_id,))
        return self._header(rows[0]) if rows else None

    async def _scan(self) -> Sequence[SessionHeader]:
        rows = await self._rows(f"SELECT {HEADER_SELECT} FROM {self.prefix}sessions s")
        return [self._header(row) for row in rows]

    async def _session_count(self) -> int:
        rows = await self._rows(self._sql.count)
        return int(rows[0][0])

    def _touch(self, session_id: str, when: datetime) -> None:
        self._record_read(session_id, when)
        if self._pool is None or (self._flushing is not None and not self._flushing.done()):
            return
        if len(self._touched) >= _TOUCH_BACKLOG or self._flush_due(when):
            self._flushing = asyncio.get_running_loop().create_task(self._flush_touches_logged())
        elif self._idle is not None and (self._flush_timer is None or self._flush_timer.done()):
            self._flush_timer = asyncio.get_running_loop().create_task(self._flush_later())

    def _record_read(self, session_id: str, when: datetime) -> None:
        if not self._touched:  # the oldest pending read: by the store's clock and the loop's
            self._pending_since = (when, asyncio.get_running_loop().time())
        if self._touched.get(session_id, when) <= when:
            self._touched[session_id] = when

    def _flush_due(self, now: datetime) -> bool:
        """Whether recorded reads must be written now, so other hosts judge idleness by them.

        With ``idle_timeout`` set, the oldest pending read is written once it is a quarter
        of ``idle_timeout`` old, by the store's clock or by the event loop's (so every read
        is in the database well before it is ``idle_timeout / 2`` old).
        """
        if self._idle is None or not self._touched or self._pending_since is None:
            return False
        limit = self._idle / 4
        since, loop_since = self._pending_since
        elapsed = asyncio.get_running_loop().time() - loop_since
        return now - since >= limit or elapsed >= limit.total_seconds()

    async def _flush_later(self) -> None:
        """Write recorded reads a quarter of ``idle_timeout`` after the oldest was recorded."""
        assert self._idle is not None
        while self._touched and self._pool is not None:
            assert self._pending_since is not None
            loop = asyncio.get_running_loop()
            wait = self._pending_since[1] + self._idle.total_seconds() / 4 - loop.time()
            await asyncio.sleep(max(wait, 0.01))
            if self._flushing is not None and not self._flushing.done():
                await asyncio.gather(self._flushing, return_exceptions=True)
            elif self._flush_due(self._now()):
                self._flushing = loop.create_task(self._flush_touches_logged())
                await asyncio.gather(self._flushing, return_exceptions=True)

    async def _flush_touches_logged(self) -> None:
        try:
            await self._flush_touches()
        except Exception as exc:
            self._record_error(exc)
            logger.warning("writing recorded reads to %s failed: %s", self.label, exc)

    async def _flush_touches(self) -> None:
        """Write recorded reads' ``last_accessed_at`` (one statement, rows in id order)."""
        if not self._touched:
            return
        touched, self._touched = self._touched, {}
        ids = sorted(touched)  # a fixed lock order: no deadlock with another host's flush
        try:
            async with self._connection() as conn:
                await conn.execute(
                    f"UPDATE {self.prefix}sessions s SET last_accessed_at = t.at "
                    "FROM unnest(%s::text[], %s::timestamptz[]) AS t(id, at) "
                    "WHERE s.session_id = t.id AND s.last_accessed_at < t.at",
                    (ids, [touched[i] for i in ids]),
                )
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            for session_id, when in touched.items():  # keep them for the next try
                self._record_read(session_id, when)
            raise translate(exc, self.label, writing=False) from exc

    async def _before_query(self, flt: SessionFilter) -> None:
        """Write recorded reads first when SQL is about to judge idle expiry from them."""
        if self._idle is not None and not flt.include_expired and self._touched:
            await self._flush_touches()

    async def _query(
        self,
        flt: SessionFilter,
        options: SessionQueryOptions,
        now: datetime,
        search: Search | None = None,
    ) -> list[SessionHeader]:
        await self._before_query(flt)
        sql, params, exact = select(self.prefix, flt, now, self._idle)
        if not exact or search is not None:
            # SQL narrowed it down; Python decides the rest, then sorts and pages. A damaged
            # row cannot be decided: it is left out (as a sealed one's metadata may be what
            # is filtered on); reading the session, or check(), reports it.
            headers = self._headers_of(await self._rows(sql, params))
            headers = [h for h in headers if matches_filter(h, flt)]
            if search is not None:
                headers = await self._search(headers, search)
            return sort_and_page(headers, options)
        order, more = order_by(options)
        rows = await self._rows(sql + order, [*params, *more])
        return [self._header(row) for row in rows]

    def _headers_of(self, rows: list[HeaderRow]) -> list[SessionHeader]:
        """Headers of ``rows``, leaving damaged ones out (logged and counted)."""
        headers = []
        for row in rows:
            try:
                headers.append(self._header(row))
            except StoreCorruptionError as exc:
                self._record_error(exc)
                logger.error("leaving damaged session %s out: %s", row[0], exc)
        return headers

    async def _search(self, headers: list[SessionHeader], search: Search) -> list[SessionHeader]:
        found = [h for h in headers if matches_search(h, search.needle)]
        if search.interactions:
            seen = {h.session_id for h in found}
            rest = {h.session_id: h for h in headers if h.session_id not in seen}
            for session in await self._load_many(list(rest)):
                if session is not None and search_interactions_of(
                    session.interactions, search.needle
                ):
                    found.append(rest[session.session_id])
        return found

    async def _count(self, flt: SessionFilter, now: datetime) -> int | None:
        await self._before_query(flt)
        sql, params, exact = select(self.prefix, flt, now, self._idle, columns="count(*)")
        if not exact:
            return len(await self._query(flt, SessionQueryOptions(), now))
        rows = await self._rows(sql, params)
        return int(rows[0][0])

    async def _expired_headers(self, now: datetime) -> Sequence[SessionHeader]:
        await self._before_query(SessionFilter())
        condition, params = expired_condition(now, self._idle)
        sql = f"SELECT {HEADER_SELECT} FROM {self.prefix}sessions s WHERE {condition}"
        return [self._header(row) for row in await self._rows(sql, params)]

    # == writes ==================================================================================

    async def _apply_single(
        self,
        session_id: str,
        build: Callable[[SessionHeader | None, PersistedSession | None], tuple[WriteOp | None, T]],
        *,
        load: bool,
        max_sessions: int | None,
    ) -> T:
        return await apply_single(self, session_id, build, load=load, max_sessions=max_sessions)

    async def _apply(self, ops: Sequence[WriteOp], *, max_sessions: int | None) -> None:
        """One PostgreSQL transaction: version-checked statements, the notification, COMMIT."""
        for op in ops:  # (see _fast.py: what is remembered must be what this store wrote)
            self._known.pop(op_session_id(op), None)
        for attempt in (1, 2):
            try:
                async with self._connection() as conn:
                    await self._transaction(conn, ops, max_sessions)
                break
            except _Stale as stale:
                # A pooled connection the server dropped while idle (a restart): nothing was
                # sent but BEGIN, so the batch is tried once more on a fresh connection.
                if attempt == 2:
                    raise translate(stale.error, self.label, writing=True) from stale.error
                await self._weed()
            except psycopg_pool.PoolTimeout as exc:
                raise translate(exc, self.label, writing=True) from exc
        self._commits += 1
        self._follower.remember(ops)
        for op in ops:
            if isinstance(op, DeleteOp):
                self._touched.pop(op.session_id, None)

    async def _transaction(
        self, conn: Conn, ops: Sequence[WriteOp], max_sessions: int | None
    ) -> None:
        try:
            await conn.execute("BEGIN")
        except psycopg.OperationalError as exc:
            if _lost(exc):
                raise _Stale(exc) from exc
            raise translate(exc, self.label, writing=True) from exc
        try:
            if self._per_transaction:
                for name, value in self._settings():
                    await conn.execute("SELECT set_config(%s, %s, true)", (name, value))
            await write_ops(conn, self._sql, ops, {}, self._envelope)
            if max_sessions is not None:
                created = sum(1 for op in ops if isinstance(op, PutOp) and op.expected is None)
                deleted = sum(1 for op in ops if isinstance(op, DeleteOp))
                if created > deleted:
                    # One creating batch at a time counts (across hosts): under READ COMMITTED
                    # a count cannot see other transactions' uncommitted rows, so two batches
                    # could each count below the limit and both commit. The lock is held to
                    # COMMIT; the count, a statement after taking it, sees what the last
                    # holder committed. Nothing else is locked after it: no deadlock.
                    await conn.execute(self._sql.lock_id, (self._sql.limit_key,))
                    cursor = await conn.execute(self._sql.count)
                    row = await cursor.fetchone()
                    if row is not None and int(row[0]) > max_sessions:
                        raise SessionLimitError(max_sessions)
            note = payload(self._follower.origin, ops)
            if note is not None:
                await conn.execute("SELECT pg_notify(%s, %s)", (self.channel, note))
        except (SessionConflictError, SessionLimitError):
            await _rollback(conn)  # (a connection that broke meanwhile is discarded)
            raise
        except psycopg.Error as exc:
            await _rollback(conn)
            raise translate(exc, self.label, writing=True) from exc
        except BaseException:
            await _rollback(conn)
            raise
        try:
            await conn.execute("COMMIT")  # synchronous_commit: durable before it returns
        except psycopg.Error as exc:
            raise translate(exc, self.label, writing=True, committing=True) from exc

    # == key rotation (see _rotate.py) ===========================================================

    async def _reseal(self, key_id: str, progress: ProgressCallback) -> int:
        return await reseal(self, key_id, progress)

    async def _key_census(self) -> Mapping[str | None, int]:
        return await key_census(self)

    # == events from other stores (see _follow.py) ===============================================

    def _listening(self) -> None:
        if self._watch:
            self._follower.listening()

    # == check ===================================================================================

    async def _check_ids(self) -> list[str]:
        rows = await self._rows(f"SELECT session_id FROM {self.prefix}sessions")
        return [str(session_id) for (session_id,) in rows]

    async def _check_sessions(self, session_ids: Sequence[str]) -> list[tuple[str, str]]:
        found = []
        for session_id in session_ids:
            try:
                await self._load(session_id)
            except StoreCorruptionError as exc:
                found.append((session_id, str(exc)))
        return found

    async def _repair_backend(self, problem: CheckProblem) -> str | None:
        return await quarantine(self, problem)

    # == backups =================================================================================

    @contextlib.asynccontextmanager
    async def _frozen(self) -> AsyncIterator[None]:
        """Hold this process's writers off and read from one ``REPEATABLE READ`` snapshot.

        Other hosts keep writing: the snapshot sees the tables as they were when it began,
        whatever commits after. Only reads of the task that holds this block (the backup's)
        use the snapshot (a context variable): every other read of the process, a caller's
        or the event follower's, still sees the latest commits.
        """
        async with super()._frozen(), self._connection() as conn:
            try:
                await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                await conn.execute(self._sql.count)  # the first statement pins the snapshot
            except psycopg.Error as exc:
                await _rollback(conn)
                raise translate(exc, self.label, writing=False) from exc
            token = _SNAPSHOT.set((self, conn))
            try:
                yield
            finally:
                _SNAPSHOT.reset(token)
                await _rollback(conn)

    # == monitoring ==============================================================================

    async def _backend_stats(self) -> dict[str, Any]:
        p = self.prefix
        rows = await self._rows(
            "SELECT current_setting('server_version'), current_database(), "
            f"pg_total_relation_size('{p}sessions'), pg_total_relation_size('{p}interactions'), "
            f"(SELECT count(*) FROM {p}quarantine)"
        )
        version, database, sessions_bytes, interactions_bytes, quarantined = rows[0]
        pool = self._pool.get_stats() if self._pool is not None else {}
        return {
            "server_version": version,
            "database": database,
            "table_prefix": p,
            "channel": self.channel,
            "durability": self._durability,
            "schema_version": SCHEMA_VERSION,
            "migrated_from": self._migrated_from,
            "database_bytes": int(sessions_bytes) + int(interactions_bytes),
            "quarantined": int(quarantined),
            "commits": self._commits,
            "pool_size": pool.get("pool_size", 0),
            "pool_available": pool.get("pool_available", 0),
            "following": self._follower.known is not None,
        }

    async def _probe(self) -> list[str]:
        await self._rows("SELECT 1")
        if self._follower.reconnecting:
            return [
                f"events from other stores on {self.label} are not being received: the "
                "listening connection is reconnecting (missed writes are reported once it is "
                "back)"
            ]
        return []

    async def _optimize_backend(self) -> list[str]:
        p = self.prefix
        if self._touched:
            await self._flush_touches()
        try:
            async with self._connection() as conn:
                for table in ("sessions", "interactions"):
                    await conn.execute(f"VACUUM (ANALYZE) {p}{table}")
        except psycopg.Error as exc:
            raise translate(exc, self.label, writing=False) from exc
        return [f"VACUUM (ANALYZE) {p}sessions and {p}interactions"]

    def __repr__(self) -> str:
        state = "open" if self.is_initialized else "closed"
        return f"<PostgresSessionStore {self.prefix}* {state}>"


class _Stale(Exception):
    """``BEGIN`` failed for a connection lost before it: nothing of the batch was sent."""

    def __init__(self, error: psycopg.OperationalError) -> None:
        super().__init__(str(error))
        self.error = error


def _lost(exc: psycopg.OperationalError) -> bool:
    return exc.sqlstate is None or exc.sqlstate.startswith(("08", "57P"))


async def _rollback(conn: Conn) -> None:
    """Roll back if the connection still works (a broken one is discarded by the pool)."""
    if conn.closed or conn.broken:
        return
    with contextlib.suppress(psycopg.Error):
        await conn.execute("ROLLBACK")
