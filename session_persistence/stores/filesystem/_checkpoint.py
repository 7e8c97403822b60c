"""The checkpointer: writes what the journal holds into session files, then rotates it.

A checkpoint runs when a generation passes ``checkpoint_bytes`` (after the write that passed
it), on ``optimize()``, at shutdown, and at open after a rebuild or an interrupted checkpoint;
always under the store lock. Its steps, what each fsyncs, and what a crash at each leaves:

1. append ``{"checkpoint": "begin"}`` and fsync it. From here a crash makes the next
   checkpoint *careful*: it rewrites whole bases rather than appending to tails it cannot
   trust;
2. for each session the generation touched: a put writes a new base (temp file in ``tmp/`` →
   fsync → rename over ``sessions/<id>.json`` → unlink the old tail); appends go to the tail
   and are fsynced (or, once the tail outgrows the base, base and tail are compacted into a
   new base); a delete unlinks both files. A crash leaves each file old or new, never torn;
3. fsync ``sessions/``, so every rename and unlink is durable;
4. append ``{"rotate": g + 1}`` and fsync it: generation ``g`` is now fully in the files;
5. create ``journal/<g + 1>.wal`` and fsync ``journal/``;
6. write ``index.json`` for ``g + 1`` (temp → fsync → rename → fsync ``base_dir``); a crash
   before leaves an older snapshot, and the next open rebuilds the index;
7. delete every generation before ``g`` (``g`` stays for processes still reading it); a crash
   before leaves a stale one, which the next checkpoint or open deletes.

An ``OSError`` anywhere aborts the checkpoint as a crash would, without losing the process's
state, and surfaces as ``StoreIOError`` (``optimize()``) or a logged, counted error (the others);
the next checkpoint redoes it. Only proven damage is set aside: a base or tail that fails its
checksum, parse or validation, a missing base, or something other than a regular file; each
such session leaves the store with a journal ``quarantine`` line.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..._fileio import NotRegularFile
from ...documents import session_to_document
from ...errors import StoreIOError
from ...serialization import dump_json
from ._files import merged_document
from ._format import Append, BadFile, control_record, tail_record

if TYPE_CHECKING:
    from ._replay import Pending
    from .store import FileSystemSessionStore

__all__ = ["checkpoint_at_open", "checkpoint_locked", "checkpoint_now", "remove_stray_generations"]

logger = logging.getLogger(__name__)

#: A tail is folded into a new base once it outgrows the base, or this size.
MIN_COMPACT_BYTES = 64 * 1024


def checkpoint_now(store: FileSystemSessionStore) -> None:
    with store._exclusive():
        with store._lock:
            store._repair()
            store._catch_up(locked=True)
        checkpoint_locked(store)


def checkpoint_locked(store: FileSystemSessionStore) -> None:
    """Write pending changes into session files and start a new journal generation.

    An ``OSError`` (a full disk, ``EIO``, too many open files) aborts it where it is: the
    journal still holds every change and the next checkpoint, careful now, redoes it. Only
    files proven damaged are set aside (see :meth:`_materialize`).
    """
    store._check_anchors()
    with store._lock:
        generation = store._generation
        careful = store._careful
        touched = sorted(store._touched)
        index = dict(store._index)
        pending = {sid: store._pending[sid] for sid in touched if sid in store._pending}
        store._append_lines(control_record(store._seq + 1, checkpoint="begin"))
        store._seq += 1
        store._careful = True
    for session_id in touched:
        header = index.get(session_id)
        if header is None:
            store._files.remove(session_id)
            continue
        _materialize(store, session_id, pending[session_id], careful)
    store._fsync_dir(store._files.dir)
    with store._lock:
        store._append_lines(control_record(store._seq + 1, rotate=generation + 1))
        store._seq += 1
        store._io.close(store._fd_checked())
        store._fd = None
        store._generation = generation + 1
        store._open_segment(locked=True)
        store._pending.clear()
        store._touched.clear()
        store._careful = False
        headers = list(store._index.values())
    store._counters["checkpoints"] += 1
    store._write_snapshot(generation + 1, headers)
    remove_stray_generations(store)


def remove_stray_generations(store: FileSystemSessionStore) -> None:
    """Delete every segment older than the one before the current (store lock held).

    A checkpoint deletes ``g - 1`` as its last step, so a crash just before leaves it
    behind; the next checkpoint or open removes it. No process needs it: one still
    reading it finds it gone and reloads from the snapshot.
    """
    for generation in store._generations():
        if generation < store._generation - 1:
            store._io.unlink(store._segment(generation))


def _materialize(
    store: FileSystemSessionStore, session_id: str, pending: Pending, careful: bool
) -> None:
    """Write one session's pending changes into its files (store lock held).

    Proven damage (a base or tail that fails its checksum or does not parse, a missing
    base, something other than a regular file) sets the session aside; an I/O error
    propagates and aborts the checkpoint.
    """
    if pending.doc is not None:
        store._files.write_base(
            session_id, merged_document(pending.doc, pending.appends, store._codec)
        )
        return
    base_size, tail_size = store._files.tail_size(session_id)
    try:
        token = store._files.read_token(session_id)
    except FileNotFoundError:
        _quarantine_lost(store, session_id, "its base file is missing at checkpoint")
        return
    except BadFile as exc:
        _quarantine_lost(store, session_id, f"base damaged at checkpoint: {exc}")
        return
    records = b"".join(tail_record(token, a, store._codec) for a in pending.appends)
    if careful or tail_size + len(records) > max(base_size, MIN_COMPACT_BYTES):
        _compact(store, session_id, pending.appends)
        return
    try:
        store._files.append_tail(session_id, records)
    except NotRegularFile as exc:
        _quarantine_lost(store, session_id, f"its tail is {exc.what}")


def _compact(store: FileSystemSessionStore, session_id: str, appends: list[Append]) -> None:
    """Rewrite a session's base with its tail and pending appends folded in."""
    try:
        on_disk = store._files.read(session_id)
    except BadFile as exc:
        _quarantine_lost(store, session_id, str(exc))
        return
    session = None if on_disk is None else store._with_appends(on_disk, appends)
    if session is None:
        problem = "its base file is missing" if on_disk is None else on_disk.tail_problem
        _quarantine_lost(
            store,
            session_id,
            f"its files do not match the journal ({problem or 'versions differ'})",
        )
        return
    store._files.write_base(session_id, dump_json(session_to_document(session, store._codec)))


def _quarantine_lost(store: FileSystemSessionStore, session_id: str, reason: str) -> None:
    """Set a session whose files are damaged aside during a checkpoint (store lock held)."""
    logger.error("session %s cannot be checkpointed: %s", session_id, reason)
    store._files.set_aside(session_id, reason)
    store._journal_removal(session_id, reason)


def checkpoint_at_open(store: FileSystemSessionStore) -> None:
    """Checkpoint after a rebuild or an interrupted checkpoint, if it can be done now.

    Opening never depends on it: on a full disk the store opens and serves everything
    from the journal, and a later checkpoint (the next write past ``checkpoint_bytes``,
    ``optimize()`` or shutdown) retries.
    """
    try:
        checkpoint_locked(store)
    except (OSError, StoreIOError) as exc:
        store._record_error(exc)
        logger.warning(
            "checkpoint at open failed (%s); serving from the journal until one succeeds", exc
        )
