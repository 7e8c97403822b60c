"""``check(repair=True)`` on PostgreSQL: a damaged session's rows set aside in ``{p}quarantine``.

The rows are copied as they are stored (``row_to_json``): a sealed value stays sealed there,
so the quarantine table holds no more in clear than the tables did. A session whose values
are sealed with a key the store was not given is not damaged: reading it raises
``SealingKeyError``, which reaches the caller, and nothing is moved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg

from ...errors import StoreCorruptionError
from ...models import CheckProblem
from ...ops import DeleteOp
from ._errors import translate
from ._follow import payload

if TYPE_CHECKING:
    from .store import PostgresSessionStore

__all__ = ["quarantine"]


async def quarantine(store: PostgresSessionStore, problem: CheckProblem) -> str | None:
    """Move a session still damaged to ``{p}quarantine``; return what was done (or ``None``)."""
    if problem.kind != "session":
        return None
    p, session_id = store.prefix, problem.target
    # The incarnation and version judged damaged, read *before* the judgement: the rows are
    # set aside only if they are still those (a session rewritten, or deleted and created
    # again, in between is left alone: it was judged on its new rows, or not at all).
    found = await store._rows(
        f"SELECT incarnation, version FROM {p}sessions WHERE session_id = %s", (session_id,)
    )
    if not found:
        return None
    incarnation, version = found[0]
    try:
        await store._load(session_id)
        return None  # fine now (rewritten or deleted meanwhile)
    except StoreCorruptionError:
        pass
    same = "s.session_id = %s AND s.incarnation = %s AND s.version = %s"
    try:
        async with store._connection() as conn, conn.transaction():
            locked = await conn.execute(
                f"SELECT 1 FROM {p}sessions s WHERE {same} FOR UPDATE",
                (session_id, incarnation, version),
            )
            if await locked.fetchone() is None:
                return None  # changed since it was judged: not this repair's to remove
            await conn.execute(
                f"INSERT INTO {p}quarantine (session_id, reason, session, interactions) "
                f"SELECT s.session_id, %s, row_to_json(s), (SELECT json_agg(row_to_json(i) "
                f"ORDER BY i.seq) FROM {p}interactions i WHERE i.session_id = s.session_id) "
                f"FROM {p}sessions s WHERE s.session_id = %s",
                (problem.problem, session_id),
            )
            await conn.execute(f"DELETE FROM {p}sessions WHERE session_id = %s", (session_id,))
            note = payload(store._follower.origin, [DeleteOp(session_id, 0)]) or ""
            await conn.execute("SELECT pg_notify(%s, %s)", (store.channel, note))
    except psycopg.Error as exc:
        raise translate(exc, store.label, writing=True) from exc
    store._follower.forget(session_id)
    store._known.pop(session_id, None)
    return f"saved its rows to the table {p}quarantine and removed it from the store"
