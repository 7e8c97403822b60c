"""The checkpointer: closes a journal generation quickly, then writes it into session files.

A checkpoint has two phases, so that writers never wait for session files:

**Close** (:func:`rotate_locked`; the store lock held, microseconds): when a write takes the
generation past ``checkpoint_bytes`` and no closed generation is still waiting:

1. append ``{"rotate": g + 1}`` to ``journal/<g>.wal`` and fsync it: ``g`` is closed. Every
   process moves ``g``'s pending changes aside (``_closing``) and keeps serving them from
   memory; a crash after this replays ``g`` and checkpoints it at the next open;
2. create ``journal/<g + 1>.wal`` and fsync ``journal/``; writers go on in ``g + 1``.

**Write the files** (:func:`finish_closed`; the checkpoint lock held, in the background, outside
the store lock, so writes to ``g + 1`` go on meanwhile):

3. for each session ``g`` touched: a put writes a new base (temp file in ``tmp/`` -> fsync ->
   rename over ``sessions/<id>.json`` -> unlink the old tail); appends go to the tail and are
   fsynced (or, once the tail outgrows the base, base and tail are compacted into a new base);
   a delete unlinks both files. A crash leaves each file old or new, never torn; the next
   checkpoint of ``g`` is then *careful*: it rewrites whole bases rather than appending to
   tails it cannot trust;
4. fsync ``sessions/``, so every rename and unlink is durable;
5. append the headers ``g`` changed to ``index.delta`` and fsync it (see :mod:`._index`; a
   crash before leaves an older snapshot, and replay makes up the difference);
6. take the store lock for a moment: append ``{"checkpointed": g}`` and fsync it; every process
   drops ``g``'s changes from memory. Then delete every generation before ``g`` (``g`` stays
   for processes still reading it); a crash before leaves a stale one, which the next
   checkpoint or open deletes.

Only one process writes session files at a time: the checkpoint lock (``checkpoint.lock``)
is held through 3-6, and by everything else that moves session files (quarantines, repairs,
backups). Lock order: checkpoint lock, then the store lock, never the other way round.

Readers are never confused by a checkpoint in progress: a session ``g`` touched is served from
the journal's state in memory (its whole document, or its files plus the appends after them,
which are matched by version; files that a checkpoint moves under a reader are read again).

``optimize()``, shutdown, and opening after a rebuild run :func:`checkpoint_now`, which holds
both locks throughout: finish any closed generation, close the current one, write its files,
and, after a rebuild, write the whole index anew. An ``OSError`` anywhere aborts a checkpoint
as a crash would, without losing the process's state, and surfaces as ``StoreIOError``
(``optimize()``) or a logged, counted error; the next checkpoint redoes it, carefully. Only
proven damage is set aside: a base or tail that fails its checksum, parse or validation, a
missing base, or something other than a regular file; such a session leaves the store with a
journal ``quarantine`` line, unless a newer whole document of it is in the journal.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..._fileio import NotRegularFile
from ...documents import session_to_document
from ...errors import SessionStoreError, StoreIOError, StoreLockTimeoutError
from ...serialization import dump_json
from ._files import merged_document
from ._format import Append, BadFile, control_record, tail_record

if TYPE_CHECKING:
    from ._replay import Pending
    from .store import FileSystemSessionStore

__all__ = [
    "Checkpointer",
    "checkpoint_at_open",
    "checkpoint_now",
    "finish_closed",
    "remove_stray_generations",
    "rotate_locked",
]

logger = logging.getLogger(__name__)

#: A checkpoint writes files in parallel once the journal is this many ``checkpoint_bytes``
#: ahead (half-way to the point where writers wait for it; see ``_commit._BACKLOG``).
_HURRY = 4

#: A tail is folded into a new base once it outgrows the base, or this size.
MIN_COMPACT_BYTES = 64 * 1024


class Checkpointer:
    """The background thread that writes closed generations into session files.

    Woken by the writer that closes a generation (and by any write while a closed one is
    still waiting, such as one left by a process that died in its checkpoint). A failure is
    logged and counted, and retried after a pause that doubles up to 5 s.
    """

    def __init__(self, store: FileSystemSessionStore) -> None:
        self._store = store
        self._cond = threading.Condition()
        self._asked = False
        self._busy = False
        self._stopping = False
        self.died: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"checkpointer {store.base_dir}", daemon=True
        )

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def wake(self) -> None:
        """Ask for a checkpoint of the closed generation (cheap; from any thread)."""
        with self._cond:
            self._asked = True
            self._cond.notify_all()

    def stop(self) -> None:
        """Finish the checkpoint under way, if any, and end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join()

    def settle(self) -> None:
        """Wait until the thread has nothing to do; re-raise what killed it (tests use this)."""
        with self._cond:
            while (self._asked or self._busy) and self._thread.is_alive():
                self._cond.wait(0.01)
        if self.died is not None:
            raise self.died

    def _run(self) -> None:
        pause = 0.0
        try:
            while True:
                with self._cond:
                    while not self._asked and not self._stopping:
                        self._cond.wait()
                    if self._stopping:
                        return
                    self._asked, self._busy = False, True
                try:
                    pause = self._attempt(pause)
                finally:
                    with self._cond:
                        self._busy = False
                        self._cond.notify_all()
                if pause:
                    with self._cond:
                        self._cond.wait_for(lambda: self._stopping, timeout=pause)
        except BaseException as exc:  # a dead thread must not be mistaken for an idle one
            self.died = exc
            logger.critical("the checkpointer thread died: %r", exc)

    def _attempt(self, pause: float) -> float:
        """One checkpoint of the closed generation; return the pause before a retry, or 0."""
        store = self._store
        try:
            with store._checkpoint_hold():
                finish_closed(store, journal_held=False)
        except StoreLockTimeoutError:
            self.wake()  # another process's checkpoint is long: wait on
            return 0.0
        except (OSError, SessionStoreError) as exc:
            store._record_error(exc)
            logger.warning("background checkpoint failed (%s); will retry", exc)
            self.wake()
            return min(max(pause * 2, 0.1), 5.0)
        return 0.0


def checkpoint_now(
    store: FileSystemSessionStore, *, full_index: bool = False, fold_deltas: bool = False
) -> None:
    """Checkpoint everything now, holding both locks throughout (``optimize()``, shutdown).

    ``full_index``: write the whole index snapshot anew (after a rebuild), even if nothing
    is pending. ``fold_deltas`` (shutdown): then fold ``index.delta`` into a new base if it
    has grown past a quarter of the base, so that the next open reads one file.
    """
    _checkpoint_now(store, full_index)
    if fold_deltas and store._index_files.worth_folding(0.25):
        with store._exclusive():
            store._index_files.fold()


def _checkpoint_now(store: FileSystemSessionStore, full_index: bool) -> None:
    with store._exclusive():
        with store._lock:
            store._repair()
            store._catch_up(locked=True)
        full_index = full_index or store._index_files.damaged
        if full_index and store._closing is not None:
            # The whole index is written from memory, which holds the state at the start of
            # the next generation only once the current one is closed too: its changes merge
            # into the closed one, and one checkpoint covers both.
            rotate_locked(store)
            finish_closed(store, journal_held=True, full_index=True)
            return
        finish_closed(store, journal_held=True)
        if store._touched or full_index:
            rotate_locked(store)
            finish_closed(store, journal_held=True, full_index=full_index)


def rotate_locked(store: FileSystemSessionStore) -> None:
    """Close the current generation and start the next (store lock held; steps 1-2)."""
    store._check_anchors()
    with store._lock:
        generation = store._generation
        store._append_lines(
            control_record(store._seq + 1, store._envelope, generation, rotate=generation + 1)
        )
        store._seq += 1
        store._close_generation(ours=True)
        store._io.close(store._fd_checked())
        store._fd = None
        store._generation = generation + 1
        store._open_segment(locked=True)


def finish_closed(
    store: FileSystemSessionStore, *, journal_held: bool, full_index: bool = False
) -> bool:
    """Write the closed generation into session files (checkpoint lock held; steps 3-6).

    ``journal_held``: the caller holds the store lock too (else it is taken for step 6 and
    for quarantines only). Returns whether there was a closed generation to write.
    """
    with store._lock:
        if not journal_held:
            store._catch_up(locked=False)
        if store._closing is None:
            return False
        generation, closing = store._closing_gen, store._closing
        start = store._closing_from
        headers = dict(store._closing_headers)
        careful = not store._closing_ours
    store._check_anchors()
    try:

        def write_one(session_id: str) -> None:
            pending = closing.get(session_id)
            if headers[session_id] is None:
                store._files.remove(session_id)
            elif pending is not None:
                _materialize(store, session_id, pending, careful, journal_held)
            if not journal_held:
                time.sleep(0)  # let a waiting writer have the GIL between sessions

        _write_files(store, sorted(headers), write_one, journal_held)
        store._fsync_dir(store._files.dir)
        if full_index:
            assert journal_held  # the in-memory index is the state at the start of g + 1
            with store._lock:
                everything = store._index.copy()
            store._index_files.write_base(generation + 1, everything)
        else:
            changed = [header for header in headers.values() if header is not None]
            deleted = [session_id for session_id, header in headers.items() if header is None]
            store._index_files.append_delta(start, generation + 1, changed, deleted)
    except BaseException:
        with store._lock:
            store._closing_ours = False  # files may be half written: the retry is careful
        raise
    if journal_held:
        _mark_checkpointed(store, generation)
    else:
        with store._exclusive_journal():
            with store._lock:
                store._repair()
                store._catch_up(locked=True)
            _mark_checkpointed(store, generation)
    return True


#: Session files written between two looks at how far the journal has run ahead.
_CHUNK = 128


def _write_files(
    store: FileSystemSessionStore,
    ids: list[str],
    write_one: Callable[[str], None],
    journal_held: bool,
) -> None:
    """Write the sessions' files, one at a time while the checkpoint keeps up.

    Each file is fsynced. One at a time, the writers' journal fsyncs barely wait behind the
    checkpoint's. Once the journal has run half-way to the backlog limit (writers would wait
    for this checkpoint), up to ``checkpoint_threads`` files are written at once: their
    fsyncs share the filesystem's journal commits and the checkpoint catches up, at some cost
    to the writers' latency meanwhile. A checkpoint holding the store lock throughout
    (``journal_held``) has no writers to spare and always uses them all.
    """
    pool: concurrent.futures.ThreadPoolExecutor | None = None
    try:
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            behind = journal_held or store._position >= _HURRY * store._checkpoint_bytes
            if store._checkpoint_threads <= 1 or len(chunk) <= 1 or not behind:
                for session_id in chunk:
                    write_one(session_id)
                continue
            if pool is None:
                pool = concurrent.futures.ThreadPoolExecutor(
                    store._checkpoint_threads, thread_name_prefix="checkpointer-files"
                )
            for _ in pool.map(write_one, chunk):
                pass
    finally:
        if pool is not None:
            pool.shutdown(wait=True)


def _mark_checkpointed(store: FileSystemSessionStore, generation: int) -> None:
    with store._lock:
        store._append_lines(
            control_record(
                store._seq + 1, store._envelope, store._generation, checkpointed=generation
            )
        )
        store._seq += 1
        store._checkpointed(generation)
    store._counters["checkpoints"] += 1
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
    store: FileSystemSessionStore,
    session_id: str,
    pending: Pending,
    careful: bool,
    journal_held: bool,
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
        _quarantine_lost(store, session_id, "its base file is missing at checkpoint", journal_held)
        return
    except BadFile as exc:
        _quarantine_lost(store, session_id, f"base damaged at checkpoint: {exc}", journal_held)
        return
    records = b"".join(
        tail_record(token, a, store._codec, store._envelope) for a in pending.appends
    )
    if careful or tail_size + len(records) > max(base_size, MIN_COMPACT_BYTES):
        _compact(store, session_id, pending.appends, journal_held)
        return
    try:
        store._files.append_tail(session_id, records)
    except NotRegularFile as exc:
        _quarantine_lost(store, session_id, f"its tail is {exc.what}", journal_held)


def _compact(
    store: FileSystemSessionStore, session_id: str, appends: list[Append], journal_held: bool
) -> None:
    """Rewrite a session's base with its tail and pending appends folded in."""
    try:
        on_disk = store._files.read(session_id)
    except BadFile as exc:
        _quarantine_lost(store, session_id, str(exc), journal_held)
        return
    session = None if on_disk is None else store._with_appends(on_disk, appends)
    if session is None:
        problem = "its base file is missing" if on_disk is None else on_disk.tail_problem
        _quarantine_lost(
            store,
            session_id,
            f"its files do not match the journal ({problem or 'versions differ'})",
            journal_held,
        )
        return
    store._files.write_base(session_id, dump_json(session_to_document(session, store._codec)))


def _quarantine_lost(
    store: FileSystemSessionStore, session_id: str, reason: str, journal_held: bool
) -> None:
    """Set aside a session whose files are damaged (checkpoint lock held).

    It leaves the store with a journal ``quarantine`` line, unless a write since the
    generation closed replaced it with a whole document: that write is kept.
    """
    logger.error("session %s cannot be checkpointed: %s", session_id, reason)
    if not journal_held:
        with store._exclusive_journal():
            _quarantine_lost(store, session_id, reason, journal_held=True)
        return
    with store._lock:
        store._catch_up(locked=True)
        store._files.set_aside(session_id, reason)
        newer = store._pending.get(session_id)
        if newer is None or newer.doc is None:
            store._journal_removal(session_id, reason)


def checkpoint_at_open(store: FileSystemSessionStore) -> None:
    """Checkpoint after a rebuild, writing a whole index snapshot, if it can be done now.

    Opening never depends on it: on a full disk the store opens and serves everything
    from the journal, and a later checkpoint (the next write past ``checkpoint_bytes``,
    ``optimize()`` or shutdown) retries.
    """
    try:
        checkpoint_now(store, full_index=True)
    except (OSError, StoreIOError) as exc:
        store._record_error(exc)
        logger.warning(
            "checkpoint at open failed (%s); serving from the journal until one succeeds", exc
        )
