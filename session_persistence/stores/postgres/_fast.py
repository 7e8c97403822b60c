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
  So what is remembered is never trusted, only tried: a write applies only to the state it
  was built from, exactly as with a fresh read. Notifications from other stores drop their
  sessions from it at once.
* **The transaction is pipelined** (psycopg's pipeline mode): ``BEGIN``, the version-checked
  statement, the interaction rows, ``pg_notify`` and ``COMMIT`` go out together and their
  replies are read once. The version check therefore cannot be a row count read in between:
  it is ``{prefix}expect(changed rows, ...)``, which raises SQLSTATE ``SP409`` unless exactly
  one row changed, so the server aborts the transaction and ``COMMIT`` does nothing.

A connection lost while the pipeline was in flight leaves the outcome open (``COMMIT`` may
have been received). The stored header settles it when it can: still at the op's expected
version means not applied (then the write is retried once on a fresh connection, as a
connection dropped while idle in the pool needs); at the op's new version *and* its new
``updated_at`` (a microsecond timestamp of this write) means applied. Anything else, or no
answer, raises :class:`StoreIOError` saying the outcome is unknown.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

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
from ._rows import HEADER_SELECT, put_values, session_from_rows

if TYPE_CHECKING:
    from .store import Conn, PostgresSessionStore

__all__ = ["Known", "apply_single"]

T = TypeVar("T")

_MAX_KNOWN = 10_000
_CONFLICT = "SP409"

Build = Callable[[SessionHeader | None, PersistedSession | None], tuple[WriteOp | None, T]]


@dataclasses.dataclass(slots=True)
class Known:
    """A session's state as this store last wrote it (``session`` and ``texts``: if whole)."""

    header: SessionHeader
    session: PersistedSession | None
    texts: list[str] | None


class _Lost(Exception):
    """The connection was lost while the pipeline was in flight."""

    def __init__(self, error: psycopg.Error) -> None:
        super().__init__(str(error))
        self.error = error


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
        header = None if known is None else store._touched_header(known.header)
        session = None
        if known is not None and known.session is not None and load:
            session = store._touched_session(clone_session(known.session))
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
            await store._apply([op], max_sessions=max_sessions)
            return result
        assert known is not None
        try:
            await _write(store, op, known.texts)
        except SessionConflictError:
            remember(store, session_id, None)
            if fresh:
                raise
            known = None
            continue
        except _Lost as lost:
            remember(store, session_id, None)
            if not await _not_applied(store, op, lost):
                return result  # the stored state shows it applied
            if attempt == 3:
                raise translate(lost.error, store.label, writing=True) from lost.error
            await store._weed()
            known = None
            continue
        _remember_written(store, op)
        store._commits += 1
        store._follower.remember([op])
        return result
    raise AssertionError("unreachable")


async def _read(store: PostgresSessionStore, session_id: str, load: bool) -> Known | None:
    """The stored state, read now (a whole session if ``load``)."""
    if not load:
        header = await store._get_header(session_id)
        return None if header is None else Known(header, None, None)
    rows = await store._rows(store._session_select("s.session_id = %s"), (session_id,))
    if not rows:
        return None
    row = rows[0]
    session = session_from_rows(row[:-1], row[-1], store._codec, store.label)
    texts = [orjson.dumps(item).decode() for item in orjson.loads(row[-1])]
    size = row[13]
    return Known(header_of(session, size), session, texts)


def _remember_written(store: PostgresSessionStore, op: WriteOp) -> None:
    session_id = op_session_id(op)
    if isinstance(op, PutOp):
        listened = store._events.has_listeners("session_updated")
        # (listeners get op.session itself: what is remembered must be a copy of its own)
        session = clone_session(op.session) if listened else op.session
        _, texts = put_values(op.header, op.data)
        remember(store, session_id, Known(op.header, session, texts))
    elif isinstance(op, AppendOp):
        remember(store, session_id, Known(op.header, None, None))
    else:
        remember(store, session_id, None)
    if isinstance(op, DeleteOp):
        store._touched.pop(session_id, None)


async def _write(store: PostgresSessionStore, op: WriteOp, texts: list[str] | None) -> None:
    """Send the op's whole transaction in one pipeline; raise what went wrong."""
    try:
        async with store._connection() as conn:
            try:
                async with conn.pipeline():
                    await conn.execute("BEGIN")
                    if store._per_transaction:
                        for name, value in store._settings():
                            await conn.execute("SELECT set_config(%s, %s, true)", (name, value))
                    await _statements(store, conn, op, texts)
                    note = payload(store._follower.origin, [op])
                    if note is not None:
                        await conn.execute(
                            "SELECT pg_notify(%s, %s)", (store.channel, note), prepare=False
                        )
                    await conn.execute("COMMIT", prepare=False)
            except psycopg.Error as exc:
                if (
                    conn.closed
                    or conn.broken
                    or (isinstance(exc, psycopg.OperationalError) and _lost(exc))
                ):
                    raise _Lost(exc) from exc
                await conn.execute("ROLLBACK")
                if exc.sqlstate == _CONFLICT:  # (asked on this connection: the pool may be dry)
                    raise await _conflict(store, conn, op) from exc
                raise translate(exc, store.label, writing=True) from exc
    except psycopg_pool.PoolTimeout as exc:
        raise translate(exc, store.label, writing=True) from exc


async def _statements(
    store: PostgresSessionStore, conn: Conn, op: WriteOp, texts: list[str] | None
) -> None:
    sql = store._sql
    if isinstance(op, PutOp):
        assert op.expected is not None
        assert texts is not None
        session_id = op.header.session_id
        values, new_texts = put_values(op.header, op.data)
        await conn.execute(
            sql.checked(sql.replace),
            (*values[1:], session_id, op.expected, session_id, op.expected),
        )
        same = 0
        for old, new in zip(texts, new_texts, strict=False):
            if old != new:
                break
            same += 1
        if same < len(texts):
            await conn.execute(sql.delete_rows_from, (session_id, same), prepare=False)
        for index in range(same, len(new_texts)):
            row = (session_id, index, new_texts[index])
            await conn.execute(sql.insert_rows, row, prepare=False)
    elif isinstance(op, AppendOp):
        h = op.header
        await conn.execute(
            sql.checked(sql.append),
            (
                h.version,
                h.updated_at,
                h.last_accessed_at,
                h.expires_at,
                h.interaction_count,
                h.size_bytes,
                h.session_id,
                op.expected,
                h.session_id,
                op.expected,
            ),
        )
        first = h.interaction_count - len(op.encoded)
        for index, item in enumerate(op.encoded):
            row = (h.session_id, first + index, item.decode())
            await conn.execute(sql.insert_rows, row, prepare=False)
    else:
        assert isinstance(op, DeleteOp)
        await conn.execute(
            sql.checked(sql.delete), (op.session_id, op.expected, op.session_id, op.expected)
        )


async def _conflict(store: PostgresSessionStore, conn: Conn, op: WriteOp) -> SessionConflictError:
    session_id = op_session_id(op)
    cursor = await conn.execute(store._sql.version, (session_id,))
    row = await cursor.fetchone()
    actual = int(row[0]) if row is not None else None
    return SessionConflictError(session_id, op.expected, actual)


async def _not_applied(store: PostgresSessionStore, op: WriteOp, lost: _Lost) -> bool:
    """After a lost pipeline: ``True`` if the op surely did not apply, ``False`` if it did.

    Raises:
        StoreIOError: The outcome cannot be told (see the module documentation).
    """
    session_id = op_session_id(op)
    try:
        rows = await store._rows(
            f"SELECT {HEADER_SELECT} FROM {store.prefix}sessions s WHERE s.session_id = %s",
            (session_id,),
        )
    except SessionStoreError:
        rows = None
    if rows is not None:
        version = int(rows[0][9]) if rows else None
        if version == op.expected:
            return True
        if isinstance(op, PutOp | AppendOp) and rows and version == op.header.version:
            return rows[0][6] != op.header.updated_at and _unknown(store, lost)
    return _unknown(store, lost)


def _unknown(store: PostgresSessionStore, lost: _Lost) -> bool:
    raise StoreIOError(
        f"writing to {store.label} failed: {UNKNOWN_OUTCOME} ({lost.error})", store.label
    ) from lost.error


def _lost(exc: psycopg.OperationalError) -> bool:
    return exc.sqlstate is None or exc.sqlstate.startswith(("08", "57P"))
