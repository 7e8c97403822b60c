"""Key rotation in the filesystem store: re-seal every record, online, and count them by key.

``rotate_key`` (see :mod:`session_persistence.stores._sealing`) has already made the new key
the active one, so every journal line, tail record, base and index line written from then on
is sealed with it. :func:`reseal` rewrites what was written before:

1. :func:`._checkpoint.checkpoint_now`: the generation holding lines sealed with older keys is
   closed and written into the session files (under the new key);
2. session by session, holding only the checkpoint lock (writers go on, into the journal): a
   base or tail record sealed with another key (or not sealed) is replaced by a new base
   holding the same document, the base and its tail folded, sealed with the new key. This is
   the checkpoint's own compaction (temp file -> fsync -> rename -> unlink the tail; then
   fsync ``sessions/`` once per batch), so readers treat it as one: a crash leaves each
   session's files old or new, both readable with the keyring. A session whose tail cannot
   be read whole is left for its next checkpoint (counted in ``skipped``);
3. two full checkpoints: a new index base (sealed with the new key, deltas emptied), and
   every journal generation written before the new key became active deleted (a checkpoint
   keeps the generation it closes for processes still reading it, hence two).

Nothing in a session changes: not its content, version or timestamps. A rerun after a crash
finds the records already re-sealed by their key id (read from the record's first bytes,
without opening it) and skips them. Records other processes write with their own active key
are theirs: a store shared by processes re-seals completely once they all use the new key.

:func:`census` counts records at rest per key id: session bases, tail records, journal lines
that hold data (control lines hold none), index chunks and delta lines. ``quarantine/`` and
``backups/`` are not counted.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..._envelope import record_key
from ..._fileio import NotRegularFile
from ...documents import session_to_document
from ...models import ProgressCallback
from ...serialization import dump_json
from . import _checkpoint
from ._format import BadFile, decode_document, iter_frames
from ._journal import split_lines

if TYPE_CHECKING:
    from .store import FileSystemSessionStore

__all__ = ["census", "reseal"]

logger = logging.getLogger(__name__)

#: Sessions re-sealed per hold of the checkpoint lock (and per fsync of ``sessions/``).
BATCH = 64


def reseal(store: FileSystemSessionStore, key_id: str, progress: ProgressCallback) -> int:
    """Re-seal every record not sealed with ``key_id``; return how many were rewritten."""
    _checkpoint.checkpoint_now(store)
    with store._lock:
        store._catch_up(locked=False)
        ids = sorted(store._index)
    total = len(ids)
    progress(0, total)
    rewritten = skipped = 0
    for start in range(0, total, BATCH):
        batch = ids[start : start + BATCH]
        with store._checkpoint_hold():
            changed = False
            for session_id in batch:
                count = _reseal_one(store, session_id, key_id)
                if count is None:
                    skipped += 1
                elif count:
                    rewritten += count
                    changed = True
            if changed:
                store._fsync_dir(store._files.dir)
        progress(start + len(batch), total)
    # Twice: the first writes the index anew and deletes every generation before the one it
    # closes, which may hold lines of an older key (a clean shutdown leaves the generation
    # before the current one, with its markers); the second deletes that one as well. What
    # remains was written after the new key became active.
    _checkpoint.checkpoint_now(store, full_index=True)
    _checkpoint.checkpoint_now(store, full_index=True)
    if skipped:
        logger.warning(
            "rotate_key left %d session(s) whose tail could not be read whole; their next "
            "checkpoint re-seals them, or run rotate_key again",
            skipped,
        )
    return rewritten


def _reseal_one(store: FileSystemSessionStore, session_id: str, key_id: str) -> int | None:
    """Re-seal one session's files (checkpoint lock held); return the records rewritten.

    ``None``: left as it is (damaged, or its tail stopped early: reads, the journal or a
    repair decide what happens to it, as for any session).
    """
    files = store._files
    try:
        stale = _stale_records(store, session_id, key_id)
        if not stale:
            return 0
        on_disk = files.read(session_id)
    except FileNotFoundError:
        return 0  # deleted, or not yet checkpointed: its files will be written sealed
    except BadFile as exc:
        logger.warning("rotate_key skips session %s: %s", session_id, exc)
        return None  # damaged: the next read or checkpoint quarantines it
    if on_disk is None:
        return 0
    if on_disk.tail_problem is not None:
        return None
    files.write_base(session_id, dump_json(session_to_document(on_disk.session, store._codec)))
    return stale


def _stale_records(store: FileSystemSessionStore, session_id: str, key_id: str) -> int:
    """How many of a session's records (base, tail records) are not sealed with ``key_id``.

    Raises:
        FileNotFoundError: The session has no base file.
        BadFile: The base is damaged (the caller's read reports it the usual way).
    """
    files = store._files
    _, body = decode_document(files.io.read_file(files.base(session_id)), "session")
    stale = int(record_key(body) != key_id)
    try:
        tail = files.io.read_file(files.tail(session_id))
    except FileNotFoundError:
        tail = b""
    lines, _ = split_lines(tail)
    stale += sum(1 for line in lines if line.payload and record_key(line.payload) != key_id)
    return stale


def census(store: FileSystemSessionStore) -> Mapping[str | None, int]:
    """Count the records at rest per sealing key (``None``: not sealed)."""
    counts: Counter[str | None] = Counter()
    io = store._io
    with store._checkpoint_hold():
        for path in sorted(store._files.dir.iterdir()):
            try:
                data = io.read_file(path)
            except (FileNotFoundError, NotRegularFile):
                continue
            if path.suffix == ".json":
                try:
                    _, body = decode_document(data, "session")
                except BadFile:
                    continue
                counts[record_key(body)] += 1
            elif path.suffix == ".tail":
                for _, payload in iter_frames(data):
                    counts[record_key(payload)] += 1
        for path in sorted(store._journal_dir.glob("*.wal")):
            try:
                data = io.read_file(path)
            except (FileNotFoundError, NotRegularFile):
                continue
            for _, payload in iter_frames(data):
                if record_key(payload) is not None or b'"ops":' in payload:
                    counts[record_key(payload)] += 1  # (control lines hold no data)
        _count_index(store, counts)
    return dict(counts)


def _count_index(store: FileSystemSessionStore, counts: Counter[str | None]) -> None:
    io = store._io
    index = store._index_files
    try:
        _, body = decode_document(io.read_file(index.base_path), "index")
    except (FileNotFoundError, NotRegularFile, BadFile):
        body = b""
    for number, line in enumerate(body.split(b"\n")):
        if number and line:  # (the first line holds the layout only)
            counts[record_key(line)] += 1
    try:
        deltas = io.read_file(index.delta_path)
    except (FileNotFoundError, NotRegularFile):
        deltas = b""
    for _, payload in iter_frames(deltas):
        counts[record_key(payload)] += 1
