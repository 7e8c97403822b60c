"""Key rotation on PostgreSQL: re-sealing values online, and counting them by key.

:func:`reseal` finds, in SQL, the sessions holding a *stale* value (its column text does not
start with ``"$sp1:<key_id>:<key check>:``: sealed with another key, or under the id with
another secret, or compressed only, or plain) and rewrites them in batches of :data:`BATCH`
sessions, one short transaction each:

1. lock the batch's session rows (``FOR UPDATE``, in ``session_id`` order, the order every
   writer locks in: no deadlock), so no writer changes them meanwhile (every write updates
   or deletes the session's row before touching its interaction rows);
2. read the stale values (locking those interaction rows too), open each, seal it again
   under ``key_id`` with the same context;
3. ``UPDATE`` only ``metadata`` and ``data``: no version, timestamp or count changes, no
   notification (nothing a reader sees changes), and a writer waiting on the row goes on
   afterwards, its version check still true.

Every value is readable at every moment (a transaction commits whole), so a crash anywhere
leaves a mix of old and new keys that the keyring reads, and running it again rewrites what
is left. Writers on other hosts go on throughout; one still sealing with an older key (it was
not given the new active key) leaves values that the census shows and a later rotation
rewrites. Writers of this process seal with ``key_id`` from the start of the rotation; one
that sealed its values just before may commit them after its session was re-sealed, so the
pass is repeated until one finds nothing to rewrite (at most :data:`_PASSES` times).

A session with a damaged value is left as it is (logged and counted as an error): ``check()``
reports it. A value sealed with a key the store was not given raises ``SealingKeyError`` and
that batch is rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import psycopg
import psycopg_pool

from ..._envelope import Unsealable
from ...errors import ConfigurationError, StoreLockTimeoutError
from ...models import ProgressCallback
from ._errors import translate
from ._seal import WRAPPED, open_item, open_metadata, seal_item, seal_metadata, stale_prefix

if TYPE_CHECKING:
    from .store import Conn, PostgresSessionStore

__all__ = ["BATCH", "key_census", "reseal"]

logger = logging.getLogger(__name__)

#: Sessions re-sealed per transaction.
BATCH = 32
_PASSES = 10  # passes over the table set at most (see the module docs)
_TRIES = 3  # a batch rolled back by a lock timeout or a deadlock is tried again


def _stale(p: str, n: int) -> str:
    """SQL true for a session (alias ``s``) holding a value not starting with the prefix."""
    return (
        f"(left(s.metadata::text, {n}) <> %s OR EXISTS (SELECT 1 FROM {p}interactions i "
        f"WHERE i.session_id = s.session_id AND left(i.data::text, {n}) <> %s))"
    )


async def reseal(store: PostgresSessionStore, key_id: str, progress: ProgressCallback) -> int:
    """Re-seal every value not sealed with ``key_id``; return how many were rewritten."""
    keyring = store._envelope.keyring
    key = None if keyring is None else keyring.key(key_id)
    if key is None or store._envelope.active_key != key_id:
        raise ConfigurationError(
            "encryption", f"re-sealing under {key_id!r} needs it as the active key"
        )
    p = store.prefix
    prefix = stale_prefix(key_id, key.check)
    n = len(prefix)
    stale = _stale(p, n)
    rows = await store._rows(f"SELECT count(*) FROM {p}sessions s WHERE {stale}", (prefix, prefix))
    total = int(rows[0][0])
    done = rewritten = 0
    progress(done, total)
    find = (
        f"SELECT s.session_id FROM {p}sessions s WHERE s.session_id > %s AND {stale} "
        "ORDER BY s.session_id LIMIT %s"
    )
    for _ in range(_PASSES):
        in_pass = 0
        after = ""
        while True:
            batch = [str(sid) for (sid,) in await store._rows(find, (after, prefix, prefix, BATCH))]
            if not batch:
                break
            after = batch[-1]
            in_pass += await _batch(store, batch, prefix)
            done += len(batch)
            total = max(total, done)
            progress(done, total)
        rewritten += in_pass
        if in_pass == 0:
            break
    if done != total:  # (sessions re-sealed by writers, or deleted, before we reached them)
        progress(done, done)
    return rewritten


async def _batch(store: PostgresSessionStore, batch: list[str], prefix: str) -> int:
    """Re-seal one batch of sessions in one transaction; return the values rewritten."""
    for attempt in range(1, _TRIES + 1):
        try:
            async with store._connection() as conn, conn.transaction():
                return await _rewrite(store, conn, batch, prefix)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            error = translate(exc, store.label, writing=True)
            if attempt == _TRIES or not isinstance(error, StoreLockTimeoutError):
                raise error from exc
    raise AssertionError("unreachable")


async def _rewrite(store: PostgresSessionStore, conn: Conn, batch: list[str], prefix: str) -> int:
    p, n, envelope = store.prefix, len(prefix), store._envelope
    if store._per_transaction:
        for name, value in store._settings():
            await conn.execute("SELECT set_config(%s, %s, true)", (name, value))
    cursor = await conn.execute(
        f"SELECT session_id, metadata::text FROM {p}sessions WHERE session_id = ANY(%s) "
        "ORDER BY session_id FOR UPDATE",
        (batch,),
    )
    sessions: list[tuple[Any, ...]] = await cursor.fetchall()
    cursor = await conn.execute(
        f"SELECT session_id, seq, data::text FROM {p}interactions WHERE session_id = ANY(%s) "
        f"AND left(data::text, {n}) <> %s ORDER BY session_id, seq FOR UPDATE",
        (batch, prefix),
    )
    items: dict[str, list[tuple[int, str]]] = {}
    for session_id, seq, text in await cursor.fetchall():
        items.setdefault(str(session_id), []).append((int(seq), str(text)))
    metadata: list[tuple[str, str]] = []
    rows: list[tuple[str, int, str]] = []
    for session_id, text in sessions:
        sid = str(session_id)
        try:
            new_meta = None
            if not str(text).startswith(prefix):
                plain = open_metadata(envelope, sid, text)
                new_meta = seal_metadata(envelope, sid, str(plain))
            new_rows = [
                (sid, seq, seal_item(envelope, sid, seq, open_item(envelope, sid, seq, data)))
                for seq, data in items.get(sid, [])
            ]
        except Unsealable as exc:
            store._record_error(exc)
            logger.error("not re-sealing session %s of %s: it is damaged (%s)", sid, p, exc)
            continue
        if new_meta is not None:
            metadata.append((sid, new_meta))
        rows.extend(new_rows)
    if metadata:
        await conn.execute(
            f"UPDATE {p}sessions s SET metadata = t.m::json "
            "FROM unnest(%s::text[], %s::text[]) AS t(id, m) WHERE s.session_id = t.id",
            ([sid for sid, _ in metadata], [m for _, m in metadata]),
        )
    if rows:
        await conn.execute(
            f"UPDATE {p}interactions i SET data = t.d::json "
            "FROM unnest(%s::text[], %s::integer[], %s::text[]) AS t(id, seq, d) "
            "WHERE i.session_id = t.id AND i.seq = t.seq",
            ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]),
        )
    return len(metadata) + len(rows)


async def key_census(store: PostgresSessionStore) -> Mapping[str | None, int]:
    """Count the metadata and interaction values by the key that sealed them (``None``: none).

    One ``GROUP BY`` over both tables on each value's first characters (the key id sits in
    the envelope's prefix); the quarantine table is not counted.
    """
    p = store.prefix
    key = (
        "CASE WHEN left({c}::text, 6) = '{w}' THEN "
        "nullif(split_part(substr({c}::text, 7, 80), ':', 1), '') END"
    )
    rows = await store._rows(
        f"SELECT k, count(*) FROM (SELECT {key.format(c='metadata', w=WRAPPED)} AS k "
        f"FROM {p}sessions UNION ALL SELECT {key.format(c='data', w=WRAPPED)} "
        f"FROM {p}interactions) t GROUP BY k"
    )
    return {None if k is None else str(k): int(count) for k, count in rows}
