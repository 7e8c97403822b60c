"""Setting a damaged session aside: its raw rows saved to ``<database>-quarantine/``.

A repair never rewrites data: the session's columns and interaction rows are written, as
found, to one JSON file (durably, when the store is), and only then does the caller delete the
session, in the same write transaction it read them in.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import orjson

from ..._fileio import FileIO

__all__ = ["save_rows"]


def save_rows(
    db: sqlite3.Connection,
    prefix: str,
    session_id: str,
    reason: str,
    folder: Path,
    *,
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
    found = {
        "reason": reason,
        "table_prefix": prefix,
        "session": dict(zip(columns, row, strict=True)) if row is not None else None,
        "interactions": [{"seq": seq, "data": data} for seq, data in interactions],
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
