"""Setting a damaged session aside: its raw rows saved to ``<database>-quarantine/``.

A repair never rewrites data: the session's columns and interaction rows are written, as
found, to one JSON file (durably, when the store is), and only then does the caller delete the
session, in the same write transaction it read them in.

On a store that seals, no content goes out in clear: values sealed at rest are saved as they
are (still sealed, with their contexts, so they open as they did in the table), and a value
still plain at rest (written before sealing was turned on) is sealed on the way out with the
same context. A quarantined file is never re-sealed by ``rotate_key``: keep its key while it
is needed.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import orjson

from ..._envelope import Envelope, record_key
from ..._fileio import FileIO
from ._seal import item_context, meta_context

__all__ = ["save_rows"]


def save_rows(
    db: sqlite3.Connection,
    prefix: str,
    session_id: str,
    reason: str,
    folder: Path,
    *,
    envelope: Envelope,
    file_mode: int,
    dir_mode: int,
    durable: bool,
) -> Path:
    """Write a session's raw rows and ``reason`` to a new file in ``folder``; return its path."""
    cursor = db.execute(f"SELECT * FROM {prefix}sessions WHERE session_id = ?", (session_id,))
    columns = [description[0] for description in cursor.description]
    row = cursor.fetchone()
    interactions = db.execute(
        f"SELECT seq, data FROM {prefix}interactions WHERE session_id = ? ORDER BY seq",
        (session_id,),
    ).fetchall()
    folder.mkdir(mode=dir_mode, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    target = folder / f"{session_id}.{stamp}.{os.urandom(3).hex()}.json"
    session = dict(zip(columns, row, strict=True)) if row is not None else None
    if session is not None and "metadata" in session:
        session["metadata"] = _sealed(envelope, session["metadata"], meta_context(session_id))
    found = {
        "reason": reason,
        "table_prefix": prefix,
        "session": session,
        "interactions": [
            {"seq": seq, "data": _sealed(envelope, data, item_context(session_id, seq))}
            if type(seq) is int
            else {"seq": seq, "data": _sealed(envelope, data, b"item:" + session_id.encode())}
            for seq, data in interactions
        ],
    }
    FileIO().replace_file(
        target,
        orjson.dumps(found, option=orjson.OPT_INDENT_2, default=str) + b"\n",
        temp_dir=folder,
        mode=file_mode,
        durable=durable,
    )
    if durable:
        FileIO().fsync_dir(folder)
    return target


def _sealed(envelope: Envelope, value: object, context: bytes) -> object:
    """A content value as it may be written out: sealed if the store seals and it is not."""
    if not envelope.sealing or value is None:
        return value
    if isinstance(value, str) and record_key(value) is not None:
        return value  # sealed at rest: saved as found
    raw = value if isinstance(value, bytes) else str(value).encode()
    return envelope.wrap(raw, context).decode()
