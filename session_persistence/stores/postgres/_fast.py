"""Single-operation writes in one round trip: a remembered state and a pipelined transaction.

A plain ``update_session``, ``append_interactions`` or ``delete_session`` (see
:meth:`SessionStore._apply_single`) needs the session's stored state to build its op. Reading
it costs a round trip; so does each statement of the write if every reply is awaited. This
module removes both where it safely can:

* **What this store last wrote is remembered** (:class:`Known`, at most ``_MAX_KNOWN``
  sessions): the header, and for a whole-session write the session and its interaction texts.
  The op is built from that, *without reading*, and written with the version it was built at
  as its expected version. If any other writer (another host) changed the session since, that
  version check fails: the state is then read from the database and the op built again, once.
  The check pins the row's ``incarnation`` too (see :mod:`._schema`): versions restart at 1
  when another host deletes the id and creates it again, so a version alone could match a
  different session. So what is remembered is never trusted, only tried: a write applies
  only to the state it was built from, exactly as with a fresh read. Notifications from
  other stores drop their sessions from it at once.
* **The transaction is pipelined** (psycopg's pipeline mode): ``BEGIN``, the version-checked
  statement, the interaction rows, ``pg_notify`` and ``COMMIT`` go out together and their
  replies are read once. The version check therefore cannot be a row count read in between:
  it is ``{prefix}expect(changed rows, ...)``, which raises SQLSTATE ``SP409`` unless exactly
  one row changed, so the server aborts the transaction and ``COMMIT`` does nothing.

A connection lost while the statement was in flight leaves the outcome open: the server's
backend may still be running it (waiting for a row lock, say) and commit it later, since a
client-side network failure is not noticed by the backend until it next writes to it. So
nothing is decided while it may still run: the backend (``conn.info.backend_pid``, recorded
before sending) is terminated with ``pg_terminate_backend`` and the store waits until it has
gone from ``pg_stat_activity`` (an ended backend has committed or rolled back for good).
Then the stored row settles it: still at the op's expected version and incarnation means not
applied (the write is then retried once on a fresh connection, as a connection dropped while
idle in the pool needs); at the op's new version, same incarnation, *and* its new
``updated_at`` (a microsecond timestamp of this write) means applied. Anything else, a
backend that cannot be terminated or does not end within ``_SETTLE_TIMEOUT``, behind
PgBouncer (whose ``backend_pid`` is not the server's), or no answer, raises
:class:`StoreIOError` saying the outcome is unknown, which is never a
``SessionConflictError``: a write whose outcome is unknown is never rebuilt and sent again.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import UTC
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import psycopg
import psycopg_pool

from ..._copy import clone_session
from ...documents import header_of
from ...errors import SessionConflictError, SessionStoreError, StoreIOError
from ...models import PersistedSession, SessionHeader
from ...ops import AppendOp, DeleteOp, PutOp, WriteOp, op_session_id
from ._errors import UNKNOWN_OUTCOME, translate
from ._follow import payload
from ._rows import HEADER_SELECT, changed_columns, interaction_items, session_from_rows
from ._seal import seal_items, seal_metadata

if TYPE_CHECKING:
    from .store import Conn, PostgresSessionStore

__all__ = ["Known", "apply_single"]

T = TypeVar("T")

_MAX_KNOWN = 10_000
_SETTLE_TIMEOUT = 10.0  # seconds to wait for a lost write's backend to end
_CONFLICT = "SP409"

Build = Callable[[SessionHeader | None, PersistedSession | None], tuple[WriteOp | None, T]]


@dataclasses.dataclass(slots=True)
class Known:
    """A session's state as this store last wrote it (``session`` and ``texts``: if whole).

    ``texts`` are the interaction rows' plain JSON texts (before any sealing: see
    :mod:`._seal`), which is what a new history is compared with to find its first change.

    ``incarnation`` is the row's ``incarnation`` column (see :mod:`._schema`): a write built
    from this state applies only to that row, never to a session re-created under the id
    since (whose versions start again at 1 and may reach the remembered one).
    """

    header: SessionHeader
    session: PersistedSession | None
    texts: list[str] | None
    incarnation: int


class _Lost(Exception):
    """The connection was lost while the statement was in flight (on backend ``pid``)."""

    def __init__(self, error: psycopg.Error, pid: int | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.pid = pid


def remember(store: PostgresSessionStore, session_id: str, known: Known | None) -> None:
    """Record (or, with ``None``, forget) what this store last wrote to a session."""
    cache = store._known
    cache.pop(session_id, None)
    if known is None:
        return
    cache[session_id] = known
    if len(cache) > _MAX_KNOWN:
        del cache[next(iter(cache))]  # the oldest


async def apply_single(
    store: PostgresSessionStore,
    session_id: str,
    build: Build[T],
    *,
    load: bool,
    max_sessions: int | None,
) -> T:
    """:meth:`SessionStore._apply_single` in (usually) one round trip; see the module docs."""
    known = store._known.get(session_id)
    if known is not None and load and known.session is None:
        known = None
    for attempt in (1, 2, 3):
        fresh = known is None
        if known is None:
            known = await _read(store, session_id, load)
        header, session = _given(store, known, load)
        try:
            op, result = build(header, session)
        except SessionStoreError:
            if fresh:
                raise
            known = None  # perhaps only what was remembered is out of date: read, build again
            remember(store, session_id, None)
            continue
        if op is None:
            return result
        if not isinstance(op, PutOp | AppendOp | DeleteOp) or (
            isinstance(op, PutOp) and (op.expected is None or known is None or known.texts is None)
        ):
            remember(store, session_id, None)
            if not fresh:  # (_apply checks versions only: build from what is stored now)
                known = None
                continue
            await store._apply([op], max_sessions=max_sessions)
            return result
        assert known is not None
        try:
            written = await _write(store, op, known)
        except SessionConflictError:
            remember(store, session_id, None)
            if fresh:
                raise
            known = None
            continue
        except _Lost as lost:
            remember(store, session_id, None)
            if not await _not_applied(store, op, known, lost):
                store._commits += 1  # the stored state shows it applied
                store._follower.remember([op])
                return result
            if attempt == 3:
                raise translate(lost.error, store.label, writing=True) from lost.error
            await store._weed()
            known = None
            continue
        _remember_written(store, op, written, known.incarnation)
        store._commits += 1
        store._follower.remember([op])
        return result
    raise AssertionError("unreachable")


def _given(
    store: PostgresSessionStore, known: Known | None, load: bool
) -> tuple[SessionHeader | None, PersistedSession | None]:
    """What a build is given: the header, and the session if ``load``, with recorded reads."""
    header = None if known is None else store._touched_header(known.header)
    session = None
    if known is not None and known.session is not None and load:
        # Without update listeners nothing but the build sees it, and a build never
        # mutates what it is given (it derives a new state): no copy needed.
        listened = store._events.has_listeners("session_updated")
        given = clone_session(known.session) if listened else known.session
        session = store._touched_session(given)
    return header, session


async def _read(store: PostgresSessionStore, session_id: str, load: bool) -> Known | None:
    """The stored state, read now (a whole session if ``load``)."""
    p = store.prefix
    if not load:
        rows = await store._rows(
            f"SELECT {HEADER_SELECT}, s.incarnation FROM {p}sessions s WHERE s.session_id = %s",
            (session_id,),
        )
        if not rows:
            return None
        return Known(store._header(rows[0][:-1]), None, None, int(rows[0][-1]))
    rows = await store._rows(
        store._session_select("s.session_id = %s", extra="s.incarnation"), (session_id,)
    )
    if not rows:
        return None
    row = rows[0]
    items = interaction_items(row[:-2], row[-1], store.label, store._envelope)
    texts = [orjson.dumps(item).decode() for item in items]  # (plain: see _statement)
    session = session_from_rows(row[:-2], items, store._codec, store.label, store._envelope)
    size = row[13]
    return Known(header_of(session, size), session, texts, int(row[-2]))


def _remember_written(
    store: PostgresSessionStore, op: WriteOp, texts: list[str] | None, incarnation: int
) -> None:
    session_id = op_session_id(op)
    if isinstance(op, PutOp):
        listened = store._events.has_listeners("session_updated")
        # (listeners get op.session itself: what is remembered must be a copy of its own)
        session = clone_session(op.session) if listened else op.session
        remember(store, session_id, Known(op.header, session, texts, incarnation))
    elif isinstance(op, AppendOp):
        remember(store, session_id, Known(op.header, None, None, incarnation))
    else:
        remember(store, session_id, None)
    if isinstance(op, DeleteOp):
        store._touched.pop(session_id, None)


async def _write(store: PostgresSessionStore, op: WriteOp, known: Known) -> list[str] | None:
    """Apply the op as one statement; return the session's new interaction texts (a put).

    One statement is one transaction in autocommit mode: its version check, its interaction
    rows and its notification commit together or not at all. Behind PgBouncer (settings per
    transaction) it is sent in a pipeline between ``BEGIN``/``SET LOCAL`` and ``COMMIT``.
    """
    statement, params, new_texts = _statement(store, op, known)
    try:
        async with store._connection() as conn:
            pid = None if store._pgbouncer else conn.info.backend_pid
            try:
                if store._per_transaction:
                    async with conn.pipeline():
                        await conn.execute("BEGIN")
                        for name, value in store._settings():
                            await conn.execute("SELECT set_config(%s, %s, true)", (name, value))
                        await conn.execute(statement, params, prepare=False)
                        await conn.execute("COMMIT", prepare=False)
                else:
                    await conn.execute(statement, params)
            except psycopg.Error as exc:
                if (
                    conn.closed
                    or conn.broken
                    or (isinstance(exc, psycopg.OperationalError) and _lost(exc))
                ):
                    raise _Lost(exc, pid) from exc
                try:
                    if store._per_transaction:
                        await conn.execute("ROLLBACK")
                    # The check (SP409) fails the statement; a row of a session deleted
                    # meanwhile may fail its foreign key (23503) first: both a conflict.
                    if exc.sqlstate in (_CONFLICT, "23503"):  # (asked on this connection)
                        raise await _conflict(store, conn, op) from exc
                except psycopg.Error as again:  # (the statement failed: nothing applied)
                    raise translate(again, store.label, writing=True) from exc
                raise translate(exc, store.label, writing=True) from exc
    except psycopg_pool.PoolTimeout as exc:
        raise translate(exc, store.label, writing=True) from exc
    return new_texts


def _statement(
    store: PostgresSessionStore, op: WriteOp, known: Known
) -> tuple[str, tuple[Any, ...], list[str] | None]:
    """The op as one statement: data-modifying CTEs, then the check and the notification."""
    sql = store._sql
    envelope = store._envelope
    ctes: list[str] = []
    params: list[Any] = []
    new_texts = None
    session_id = op_session_id(op)
    if isinstance(op, PutOp):
        assert op.expected is not None
        assert known.texts is not None
        texts = known.texts
        document = orjson.loads(op.data)
        metadata = seal_metadata(envelope, session_id, orjson.dumps(document["metadata"]).decode())
        same_rows = known.session is not None and (
            op.session.interactions is known.session.interactions
        )
        # (an unchanged history is the very same list: the build derives the new state)
        new_texts = (
            texts if same_rows else [orjson.dumps(i).decode() for i in document["interactions"]]
        )
        columns, values = changed_columns(known.header, op.header, metadata)
        ctes.append(f"changed AS ({sql.replace_columns(columns)} RETURNING 1)")
        params += [*values, session_id, op.expected, known.incarnation]
        same = len(texts) if same_rows else 0
        if not same_rows:
            for old, new in zip(texts, new_texts, strict=False):
                if old != new:
                    break
                same += 1
        if len(new_texts) < len(texts):
            ctes.append(f"dropped AS ({sql.delete_rows_from})")
            params += [session_id, len(new_texts)]
        if same < len(new_texts):
            ctes.append(f"added AS ({sql.upsert_rows})")
            added = seal_items(envelope, session_id, same, new_texts[same:])
            params += [session_id, list(range(same, len(new_texts))), added]
    elif isinstance(op, AppendOp):
        h = op.header
        ctes.append(f"changed AS ({sql.append_pinned} RETURNING 1)")
        params += [
            h.version,
            h.updated_at,
            h.last_accessed_at,
            h.expires_at,  # (an append moves a sliding session's expiry: the header's is kept)
            h.interaction_count,
            h.size_bytes,
            session_id,
            op.expected,
            known.incarnation,
        ]
        first = h.interaction_count - len(op.encoded)
        ctes.append(f"added AS ({sql.upsert_rows})")
        items = [item.decode() for item in op.encoded]
        params += [
            session_id,
            list(range(first, h.interaction_count)),
            seal_items(envelope, session_id, first, items),
        ]
    else:
        assert isinstance(op, DeleteOp)
        ctes.append(f"changed AS ({sql.delete_pinned} RETURNING 1)")  # (rows: ON DELETE CASCADE)
        params += [session_id, op.expected, known.incarnation]
    statement = sql.one(tuple(ctes))
    params += [session_id, op.expected, store.channel, payload(store._follower.origin, [op])]
    return statement, tuple(params), new_texts


async def _conflict(store: PostgresSessionStore, conn: Conn, op: WriteOp) -> SessionConflictError:
    session_id = op_session_id(op)
    cursor = await conn.execute(store._sql.version, (session_id,))
    row = await cursor.fetchone()
    actual = int(row[0]) if row is not None else None
    return SessionConflictError(session_id, op.expected, actual)


async def _not_applied(store: PostgresSessionStore, op: WriteOp, known: Known, lost: _Lost) -> bool:
    """After a lost statement: ``True`` if the op surely did not apply, ``False`` if it did.

    Raises:
        StoreIOError: The outcome cannot be told (see the module documentation).
    """
    session_id = op_session_id(op)
    if lost.pid is None or not await _ended(store, lost.pid):
        _unknown(store, lost)
    try:
        rows = await store._rows(
            f"SELECT s.version, s.incarnation, s.updated_at AT TIME ZONE 'UTC' "
            f"FROM {store.prefix}sessions s WHERE s.session_id = %s",
            (session_id,),
        )
    except SessionStoreError:
        return _unknown(store, lost)
    if rows and int(rows[0][1]) == known.incarnation:
        version, updated_at = int(rows[0][0]), rows[0][2]
        if version == op.expected:
            return True
        if isinstance(op, PutOp | AppendOp) and version == op.header.version:
            new = op.header.updated_at.astimezone(UTC).replace(tzinfo=None)
            if updated_at == new:
                return False
    return _unknown(store, lost)


async def _ended(store: PostgresSessionStore, pid: int) -> bool:
    """Terminate backend ``pid`` and wait until it is gone; ``False`` if it did not end."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _SETTLE_TIMEOUT
    try:
        async with store._connection() as conn:
            await conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            while loop.time() < deadline:
                cursor = await conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,))
                if await cursor.fetchone() is None:
                    return True
                await asyncio.sleep(0.01)
    except (psycopg.Error, psycopg_pool.PoolTimeout):
        pass  # (not allowed to, or no connection: the outcome stays unknown)
    return False


def _unknown(store: PostgresSessionStore, lost: _Lost) -> bool:
    raise StoreIOError(
        f"writing to {store.label} failed: {UNKNOWN_OUTCOME} ({lost.error})", store.label
    ) from lost.error


def _lost(exc: psycopg.OperationalError) -> bool:
    return exc.sqlstate is None or exc.sqlstate.startswith(("08", "57P"))
