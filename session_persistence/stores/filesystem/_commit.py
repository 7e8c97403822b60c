"""The journal writer: group commit, the one durability point of every write.

A commit group is every batch queued in this process while the previous group was being
written. Under the store lock (:meth:`JournalWriter._commit_group`) the writer catches up with
lines other processes appended, checks each batch's expected versions and ``max_sessions``
against that latest state (a batch that fails gets its error and is left out), then appends the
group's lines with one ``write``, releases the store lock, and with ``durability="full"``
fsyncs them (outside the lock: other processes write and fsync meanwhile, and any later
``fdatasync`` of the segment makes our earlier lines durable too); only then does it apply
them in memory and acknowledge.

Crash behaviour: before the ``fsync`` returns nothing is acknowledged; a torn line is cut by
the next lock holder, a whole unsynced line that survives is harmless. If the ``write`` raises,
the segment is cut back to where the group began (or, if even that fails, before the next
write, and only if nobody wrote since), so a failed write never appears later and never sits
before other lines looking like damage. If the ``fsync`` raises, the same cut is made (under
the store lock again) while the segment still ends with the group; if another process has
written after it, it stays, is applied everywhere, and the caller's :class:`StoreIOError` says
the outcome is unknown. Control lines (checkpoint markers, quarantines) are appended the same
way by :meth:`JournalWriter._append_lines`.

Where a group is written: on the event loop when both locks are free at once (checks and one
``write`` cost microseconds, less than two thread hand-offs; only the fsync goes to a thread),
else on a thread, where waiting for a lock blocks nothing. Writers wait (up to
``lock_timeout``) once the journal is ``_BACKLOG`` times ``checkpoint_bytes`` ahead of a
checkpoint that has not finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from ...errors import (
    SerializationError,
    SessionConflictError,
    SessionLimitError,
    SessionStoreError,
    StoreIOError,
    StoreLockTimeoutError,
)
from ...ops import AppendOp, DeleteOp, PutOp, WriteOp, check_versions
from . import _checkpoint
from ._checkpoint import Checkpointer
from ._format import Append, Delete, Put, journal_record
from ._lock import ProcessLock
from ._replay import JournalReplay

if TYPE_CHECKING:
    from .store import FileSystemSessionStore

__all__ = ["Batch", "JournalWriter", "Written"]

#: Writers wait for a checkpoint once the journal is this many times ``checkpoint_bytes``.
_BACKLOG = 8

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Batch:
    """One caller's batch of ops waiting in the commit queue, and its outcome."""

    ops: Sequence[WriteOp]
    max_sessions: int | None
    future: asyncio.Future[None]
    error: BaseException | None = None


@dataclass(slots=True)
class Written:
    """A group whose lines are in the journal, not yet fsynced or applied."""

    start: int
    size: int
    accepted: list[Batch]
    seq: int


class JournalWriter(JournalReplay):
    """Mixed into the store: appends commit groups and control lines to the journal."""

    _write_mutex: threading.Lock
    _flock: ProcessLock
    _checkpoint_bytes: int
    _rollback_to: int | None
    _rollback_size: int | None
    _writing_end: int
    _written: threading.Condition
    _lock_timeout: float
    _checkpointer: Checkpointer | None
    _queue: list[Batch]
    _leader: asyncio.Task[None] | None
    _counters: dict[str, int]

    if TYPE_CHECKING:

        def _acquire(self) -> None: ...
        def _writable(self) -> None: ...

    def _commit_locked(self, group: list[Batch]) -> None:
        """Write the group (store lock held), release the lock, fsync, apply."""
        written = self._write_locked(group)
        if written is not None:
            self._finish(written)

    def _write_locked(self, group: list[Batch]) -> Written | None:
        """Check and write the group's lines (store lock held); release the store lock.

        On return the store lock is released (``self._flock.held`` is false), whatever
        happened. Returns what :meth:`_finish` needs, or ``None`` when nothing was written
        (every batch failed its checks, or the write failed: their errors are set).
        """
        with self._lock:
            self._repair()
            self._catch_up(locked=True)
            lines, accepted, seq = self._plan(group)
            if not lines:
                self._flock.release()
                return None
            start = self._position
            self._writing = True
        data = b"".join(lines)
        self._writing_end = start + len(data)
        try:
            # The one durability point of a write: journal lines, then (full) one fsync.
            self._io.write(self._fd_checked(), data)
        except BaseException as exc:
            self._abandon_group(start)
            self._flock.release()
            self._fail_group(accepted, exc, "nothing was applied")
            return None
        self._flock.release()
        return Written(start, len(data), accepted, seq)

    def _finish(self, written: Written) -> None:
        """Fsync the written group (``durability="full"``), outside the store lock; apply it.

        The fsync runs outside the lock, so other processes' writes and fsyncs overlap with
        ours: a later ``fdatasync`` of the segment makes every earlier line durable too, so a
        write is acknowledged only after its own fsync, and stays so.
        """
        if self._durable:
            try:
                self._io.fsync(self._fd_checked())
                self._counters["fsyncs"] += 1
            except BaseException as exc:
                outcome = self._abandon_fsynced(written.start)
                self._fail_group(written.accepted, exc, outcome)
                return
        with self._lock:
            self._writing = False
            self._written.notify_all()
            for batch in written.accepted:
                for op in batch.ops:
                    self._apply_own(op)
            self._position = written.start + written.size
            self._seq = written.seq
        self._counters["commits"] += 1
        self._counters["batches"] += len(written.accepted)

    def _fail_group(self, accepted: list[Batch], exc: BaseException, outcome: str) -> None:
        if not isinstance(exc, OSError):
            raise exc
        failure = StoreIOError(f"writing the journal failed: {exc}; {outcome}")
        failure.__cause__ = exc
        for batch in accepted:
            batch.error = failure

    def _abandon_fsynced(self, start: int) -> str:
        """A group's fsync failed after the store lock was released: cut it back if we can.

        Only if nobody has written after it (the segment still ends where our lines end):
        then nothing was applied. Otherwise another process's lines follow ours and may
        depend on them; they stay, and so does ours, which every process (this one too)
        then applies: the outcome of the write is unknown to its caller.
        """
        try:
            self._acquire()
        except BaseException:
            self._abandon_group(start, end=self._writing_end)  # cut later, if still ours last
            return (
                "its outcome is unknown: it is cut back before the next write unless another "
                "process has written after it by then; check with expected_version"
            )
        try:
            with self._lock:
                if self._io.size(self._fd_checked()) == self._writing_end:
                    self._abandon_group(start, end=self._writing_end)
                    return "nothing was applied"
                self._writing = False
                self._written.notify_all()
                logger.error("a journal fsync failed after other processes wrote after it")
                return (
                    "its outcome is unknown: other processes wrote after it, so it stays in "
                    "the journal and may be applied; check with expected_version"
                )
        finally:
            self._flock.release()

    def _plan(self, group: list[Batch]) -> tuple[list[bytes], list[Batch], int]:
        """Check each batch against the latest state (and the batches before it in the group).

        Returns the journal lines to write, the batches they acknowledge, and the last
        sequence number used. A batch that fails its checks gets its error and is left out.
        """
        versions: dict[str, int | None] = {}
        count = len(self._index)
        lines: list[bytes] = []
        accepted: list[Batch] = []
        seq = self._seq

        def version_of(session_id: str) -> int | None:
            if session_id in versions:
                return versions[session_id]
            return self._index.version(session_id)

        for batch in group:
            try:
                check_versions(batch.ops, version_of)
                created = sum(1 for o in batch.ops if isinstance(o, PutOp) and o.expected is None)
                deleted = sum(1 for o in batch.ops if isinstance(o, DeleteOp))
                limit = batch.max_sessions
                if limit is not None and created and count + created - deleted > limit:
                    raise SessionLimitError(limit)
                line = journal_record(
                    seq + 1, batch.ops, self._codec, self._envelope, self._generation
                )
            except (SessionConflictError, SessionLimitError, SerializationError) as exc:
                batch.error = exc
                continue
            if line is not None:
                seq += 1
                lines.append(line)
            for op in batch.ops:
                if isinstance(op, PutOp | AppendOp):
                    versions[op.header.session_id] = op.header.version
                elif isinstance(op, DeleteOp):
                    versions[op.session_id] = None
            count += created - deleted
            accepted.append(batch)
        return lines, accepted, seq

    def _fd_checked(self) -> int:
        assert self._fd is not None
        return self._fd

    def _abandon_group(self, start: int, *, end: int | None = None) -> None:
        """Cut the journal back to where a failed group began (store lock held).

        ``end``: where the group's lines end (when the lock was released meanwhile, the cut is
        made only while the segment still ends there); else the segment's size now.
        """
        with self._lock:
            self._writing = False
            self._written.notify_all()
            self._rollback_to = start
            self._rollback_size = end
            with contextlib.suppress(OSError):
                if end is None:
                    self._rollback_size = self._io.size(self._fd_checked())
                if self._flock.held:
                    self._repair()

    def _repair(self) -> None:
        if self._rollback_to is not None and self._fd is not None:
            if self._io.size(self._fd) != self._rollback_size:
                # The lock was released since, and another process has already cut what we
                # left (it was torn) or written after it: cutting now would destroy its lines.
                logger.error("not cutting the journal back: it changed since our write failed")
                self._rollback_to = None
                return
            self._io.truncate(self._fd, self._rollback_to)
            if self._durable:
                self._io.fsync(self._fd)
            self._position = self._rollback_to
            self._rollback_to = None

    def _apply_own(self, op: WriteOp) -> None:
        if isinstance(op, PutOp):
            self._apply_change(Put(op.header, op.data), False, op.session)
        elif isinstance(op, AppendOp):
            self._apply_change(Append(op.header, op.encoded, op.expected), False)
        elif isinstance(op, DeleteOp):
            self._apply_change(Delete(op.session_id), False)

    def _append_lines(self, data: bytes) -> None:
        """Append control lines (``_lock`` and the store lock held) and fsync them."""
        if self._fd is None:
            self._open_segment(locked=True)
        fd = self._fd_checked()
        try:
            self._io.write(fd, data)
            if self._durable:
                self._io.fsync(fd)
        except BaseException:
            # A partial line must not stay: the next lines would follow it and make it look
            # like damage. Cut it now, or before the next write (_repair).
            self._abandon_group(self._position)
            raise
        self._position += len(data)

    # == group commit: the queue, the leader, and where each group is written ============

    async def _apply(self, ops: Sequence[WriteOp], *, max_sessions: int | None) -> None:
        self._writable()
        loop = asyncio.get_running_loop()
        batch = Batch(ops, max_sessions, loop.create_future())
        self._queue.append(batch)
        if self._leader is None or self._leader.done():
            self._leader = loop.create_task(self._lead())
        await asyncio.shield(batch.future)

    async def _lead(self) -> None:
        """Commit queued batches, group by group, until the queue is empty.

        When both locks are free at once (no other writer here, none in another process),
        the group is checked and written on the event loop: a ``write`` to the page cache
        costs microseconds, far less than two thread hand-offs. Only the fsync (with
        ``durability="full"``) goes to a thread. Otherwise the whole commit goes to a thread,
        where waiting for the locks blocks nothing.
        """
        while self._queue:
            group, self._queue = self._queue, []
            try:
                if not await self._commit_here(group):
                    await asyncio.to_thread(self._commit_group, group)
            except BaseException as exc:
                # Every batch of the group (and, after a BaseException, every queued one)
                # fails with it: nothing of theirs was acknowledged.
                failed = group if isinstance(exc, Exception) else group + self._queue
                if not isinstance(exc, Exception):
                    self._queue = []
                for batch in failed:
                    if not batch.future.done():
                        batch.future.set_exception(exc)
                continue
            for batch in group:
                if batch.error is not None:
                    batch.future.set_exception(batch.error)
                else:
                    batch.future.set_result(None)

    async def _commit_here(self, group: list[Batch]) -> bool:
        """Commit ``group`` from the loop if both locks are free now; else return False."""
        if self._backlogged() or not self._write_mutex.acquire(blocking=False):
            return False
        try:
            self._fresh()
            if not self._flock.try_acquire():
                self._write_mutex.release()
                return False
            written = self._write_locked(group)  # (it releases the store lock)
        except BaseException:
            self._flock.release()
            self._write_mutex.release()
            raise
        if written is None:
            self._write_mutex.release()
            return True
        if self._durable or written.start + written.size >= self._checkpoint_bytes:
            # (an fsync, or closing the generation, which may wait for the lock: not here)
            await asyncio.to_thread(self._finish_and_release, written)
        else:
            self._finish_and_release(written)
        return True

    def _finish_and_release(self, written: Written) -> None:
        try:
            self._finish(written)
            if self._position >= self._checkpoint_bytes:
                self._start_checkpoint()
        finally:
            self._flock.release()
            self._write_mutex.release()

    def _backlogged(self) -> bool:
        """Whether the journal ran so far ahead of a checkpoint that writers must wait."""
        return self._closing is not None and self._position >= _BACKLOG * self._checkpoint_bytes

    def _wait_for_checkpoint(self) -> None:
        """Hold this writer while the journal is too far ahead (not holding ``_write_mutex``).

        Bounded by ``lock_timeout``: a checkpoint that cannot finish (a full disk) never
        stops writes, which stay durable in the journal.
        """
        deadline = time.monotonic() + self._lock_timeout
        while self._backlogged() and time.monotonic() < deadline:
            if self._checkpointer is not None:
                self._checkpointer.wake()
            time.sleep(0.002)
            self._fresh()  # (another process's checkpoint ends with a journal line)

    def _commit_group(self, group: list[Batch]) -> None:
        # Wait for a checkpoint that fell behind without holding _write_mutex: the
        # checkpoint takes it to record that it finished.
        self._fresh()
        if self._backlogged():
            self._wait_for_checkpoint()
        with self._write_mutex:
            # Apply other processes' lines before taking the store lock, as a reader would:
            # under it only what they wrote in the meantime is left, so the lock is held for
            # our own write, not for replaying theirs.
            self._fresh()
            try:
                self._acquire()
            except StoreLockTimeoutError as exc:
                for batch in group:
                    batch.error = exc
                return
            try:
                self._commit_locked(group)  # (it releases the store lock)
                if self._position >= self._checkpoint_bytes:
                    self._start_checkpoint()
            finally:
                self._flock.release()

    def _start_checkpoint(self) -> None:
        """Close the generation, unless an older one still waits; wake the checkpointer.

        Called after a commit, with ``_write_mutex`` held and the store lock released; the
        group is acknowledged whatever happens here.
        """
        try:
            self._acquire()
            with self._lock:
                self._repair()
                self._catch_up(locked=True)  # (others may have written since our group)
        except (OSError, SessionStoreError) as exc:
            self._record_error(exc)
            logger.warning("closing the journal generation failed (%s); will retry", exc)
            return
        if self._closing is None:
            try:
                _checkpoint.rotate_locked(cast("FileSystemSessionStore", self))
            except (OSError, SessionStoreError) as exc:
                # Every write is durable in the journal; rotating is retried by the next write.
                self._record_error(exc)
                logger.warning("closing the journal generation failed (%s); will retry", exc)
                return
        if self._checkpointer is not None:
            self._checkpointer.wake()
