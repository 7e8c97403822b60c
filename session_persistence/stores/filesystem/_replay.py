"""Journal replay: the in-memory state of a filesystem store, rebuilt and kept current.

The index (every session's header), the *pending* changes (committed to the journal, not yet
in session files) and the journal position are the state every read and write works from.
This part builds them at open (from ``index.json``, or from the session files when it is
missing, damaged, or the chain of segments has a gap) and keeps them current by reading the
journal lines any process appended (:meth:`JournalReplay._catch_up`), following ``rotate``
records from one segment to the next.

Invariants: every process applies the same records in the same order (the classification of
lines in :mod:`._journal` depends only on the bytes); a record is applied only when valid and,
for an append, only when it follows its session's version chain; only the holder of the store
lock cuts a torn tail, creates a segment, quarantines or writes ``index.json``. Replay writes
nothing else, so a crash during it leaves the store as it was.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from ..._envelope import Envelope, Unsealable, record_key
from ..._fileio import FileIO, NotRegularFile
from ..._ids import is_valid_session_id
from ...errors import SealingKeyError, StoreCorruptionError
from ...events import EventName
from ...models import PersistedSession, SessionHeader
from ...serialization import Codec
from ._cache import ReadCache
from ._files import SessionFiles
from ._format import (
    Append,
    BadFile,
    Change,
    Delete,
    Put,
    journal_context,
    opened,
    parse_changes,
)
from ._index import IndexFiles
from ._journal import Damage, DamageLog, Line, sessions_named, split_lines
from ._table import HeaderTable

__all__ = ["JournalReplay", "Pending", "check_sequence", "sequence_numbers"]

logger = logging.getLogger(__name__)


def check_sequence(seq: int, previous: int, later: Callable[[], Iterable[int]]) -> None:
    """Check that a sealed journal line belongs where it is in the journal.

    Every line is numbered one above the line before it, in every process (a writer reads
    the journal to its end before it writes). A sealed line cannot be forged, but it can be
    copied or moved. ``previous`` is the number of the last line applied (0: none yet);
    ``later`` gives the numbers of the lines after this one that the reader has and that open.

    * ``previous + 1``: in place;
    * not above ``previous``: a copy of a line already applied: damage;
    * above ``previous + 1`` (a gap: lines were lost to damage, or none was applied yet): in
      place unless the same number comes again later, which makes this one a copy moved up
      ahead of the lines it follows: damage, and those lines, then the original, are applied
      in their turn. Nothing intact is dropped for a copy.

    Raises:
        BadFile: The line is out of place.
    """
    if seq == previous + 1:
        return
    if seq > previous and seq not in set(later()):
        return
    raise BadFile(f"a sealed line out of place ({seq} after {previous}): a copy of another")


def sequence_numbers(lines: Iterable[Line], envelope: Envelope, generation: int) -> Iterator[int]:
    """The sequence numbers of ``lines`` of segment ``generation`` that open and parse."""
    context = journal_context(generation)
    for line in lines:
        if line.payload is None:
            continue
        try:
            record = orjson.loads(envelope.unwrap(line.payload, context))
        except (Unsealable, SealingKeyError, orjson.JSONDecodeError):
            continue
        if type(record) is dict and type(record.get("seq")) is int:
            yield record["seq"]


class _GenerationGap(Exception):
    """Replay reached a generation whose segment is gone while a newer one exists."""


@dataclass(slots=True)
class Pending:
    """Committed changes to one session not yet written into its files."""

    doc: bytes | None = None  # a whole document (a put), or None: the files are the base
    session: PersistedSession | None = None  # ``doc`` decoded, when this process wrote it
    appends: list[Append] = field(default_factory=list)


class JournalReplay:
    """Mixed into the store: builds and follows its in-memory state from the journal."""

    # The store's state this part reads and keeps (set in FileSystemSessionStore.__init__).
    _root: Path
    _io: FileIO
    _files: SessionFiles
    _codec: Codec
    _envelope: Envelope
    _journal_dir: Path
    _file_mode: int
    _lock: threading.RLock
    _index: HeaderTable
    _pending: dict[str, Pending]
    _touched: set[str]
    _closing: dict[str, Pending] | None
    _closing_gen: int
    _closing_from: int
    _closing_headers: dict[str, SessionHeader | None]
    _closing_ours: bool
    _index_files: IndexFiles
    _read_cache: ReadCache
    _changes: int
    _generation: int
    _fd: int | None
    _position: int
    _seq: int
    # What was read, and where the line being applied is in it (see check_sequence).
    _read: Sequence[Line]
    _reading: int
    _recovering: bool
    _writing: bool
    _writing_end: int
    _written: threading.Condition
    _damage: DamageLog
    _foreign: list[tuple[EventName, str]]
    _collect_foreign: bool
    _durable: bool

    if TYPE_CHECKING:

        def _fsync_dir(self, path: Path) -> None: ...
        def _record_error(self, error: BaseException) -> None: ...

    # == segments =============================================================================

    def _segment(self, generation: int) -> Path:
        return self._journal_dir / f"{generation:016d}.wal"

    def _generations(self) -> list[int]:
        found = []
        for name in self._io.listdir(self._journal_dir):
            stem, dot, suffix = name.partition(".")
            if dot and suffix == "wal" and stem.isdigit():
                found.append(int(stem))
        return sorted(found)

    def _recover(self, *, locked: bool = True) -> bool:
        """Load the index and replay the journal. Return True if the index was rebuilt.

        ``locked``: we hold the store lock, so damaged files may be quarantined and a missing
        segment created.

        The snapshot is used when its generation's segment exists; replay then follows the
        ``rotate`` records from one segment to the next. Without a usable snapshot, or when
        the chain of segments has a gap (stray generations left by a crash), the index is
        rebuilt from the session files and the newest unbroken run of segments is replayed:
        a generation may be closed (``rotate``) before its changes reach the files, so the one
        before the newest may still be needed; replaying one whose changes are already in the
        files changes nothing (see :meth:`_extends`).
        """
        generations = self._generations()
        snapshot = self._index_files.load()
        usable = snapshot is not None and (
            snapshot[0] in generations or (not generations and snapshot[0] == 1)
        )
        if usable:
            assert snapshot is not None
            try:
                self._replay(snapshot[0], snapshot[1], locked=locked)
            except _GenerationGap as gap:
                logger.warning("index snapshot of %s is unusable (%s); rebuilding", self._root, gap)
            else:
                # Damaged deltas: the index was recovered from an older generation by replay;
                # a whole new base must be written (as after a rebuild).
                return self._index_files.damaged
        if snapshot is not None or generations:
            logger.info("rebuilding the index of %s from its session files", self._root)
        headers = self._scan_files(locked)
        start = generations[-1] if generations else 1
        while start - 1 in generations:
            start -= 1
        try:
            self._replay(start, HeaderTable.from_headers(headers, self._codec), locked=locked)
        except _GenerationGap as gap:  # pragma: no cover - the run of segments has no gap
            message = f"the journal of {self._root} is inconsistent: {gap}"
            raise StoreCorruptionError(message) from gap
        if locked and snapshot is None and not generations and not headers:
            # A new store: no rebuild at the next open.
            self._index_files.write_base(start, HeaderTable(self._codec))
            return False
        return True

    def _replay(self, start: int, index: HeaderTable, *, locked: bool) -> None:
        """Reset the in-memory state to ``index`` at generation ``start`` and replay."""
        with self._lock:
            self._index = index
            self._read_cache.clear()
            self._changes += 1
            self._pending = {}
            self._touched = set()
            self._closing = None
            self._closing_headers = {}
            self._damage.broken.clear()
            self._generation = start
            if self._fd is not None:
                self._io.close(self._fd)
            self._fd = None
            self._position = 0
            self._seq = 0  # (the first line read sets it)
            self._recovering = True
            try:
                self._catch_up(locked=locked, replaying=True)
            finally:
                self._recovering = False

    def _open_segment(self, locked: bool) -> bool:
        """Open the current generation's segment; create it if we hold the lock.

        A missing segment with a newer one beside it means other processes checkpointed past
        our generation and deleted it while we were not looking: start over from the
        snapshot. (Creating it instead would hide our next writes from every other process.)
        During recovery that is a gap in the chain of segments instead (:class:`_GenerationGap`).
        """
        path = self._segment(self._generation)
        if not self._io.exists(path):
            generations = self._generations()
            if generations and generations[-1] > self._generation:
                if self._recovering:
                    raise _GenerationGap(
                        f"generation {self._generation} is missing, {generations[-1]} exists"
                    )
                self._reload(f"generation {self._generation} was checkpointed away", locked=locked)
                return self._fd is not None
            if not locked:
                return False
        try:
            self._fd = self._io.open_append(path, self._file_mode)
        except NotRegularFile as exc:
            raise StoreCorruptionError(
                f"{path} is {exc.what}, not a journal segment; move it out of journal/",
                str(path),
            ) from exc
        self._position = 0
        if locked:
            self._fsync_dir(self._journal_dir)
        return True

    def _fresh(self) -> None:
        """Apply the journal lines other processes appended since we last looked."""
        with self._lock:
            self._catch_up(locked=False)

    def _catch_up(self, *, locked: bool, replaying: bool = False) -> None:
        """Read journal lines we have not seen yet and apply them (``_lock`` held).

        ``locked``: we hold the store lock, so the segment's tail (see :mod:`._journal`) is a
        torn write to cut off; for a reader it may be a line being written right now. Damage
        in the middle of a segment is skipped, recorded and reported, never cut.
        """
        if self._writing:
            # Our own group is between its write and its apply. While it fsyncs, outside the
            # store lock, other processes may write after it: a reader waits for our group
            # (one fsync) rather than miss a write they have finished.
            assert self._fd is not None
            if locked or self._io.size(self._fd) <= self._writing_end:
                return
            self._written.wait_for(lambda: not self._writing)
        while True:
            if self._fd is None and not self._open_segment(locked):
                return
            assert self._fd is not None
            size = self._io.size(self._fd)
            if size < self._position:
                self._reload("the journal was cut back by a failed write")
                return
            if size == self._position:
                if locked:
                    self._keep_damaged_segments()
                return
            data = self._io.read_at(self._fd, size - self._position, self._position)
            lines, intact_end = split_lines(data)
            rotated = False
            self._read = lines
            for number, line in enumerate(lines):
                self._reading = number
                if self._apply_line(line, data, foreign=not replaying):
                    rotated = True
                    intact_end = line.end
                    break
            tail = data[intact_end:] if not rotated else b""
            self._position += intact_end
            if rotated:
                self._io.close(self._fd)
                self._fd = None
                continue
            if tail and locked:
                if b"\n" in tail:  # a complete line that fails its checksum: suspect
                    self._note_damage(
                        self._position,
                        self._position + len(tail),
                        "the last line of the segment fails its checksum and was cut off: a "
                        "write torn by a power cut (never acknowledged), or a damaged last record",
                        tail,
                    )
                    self._keep_damaged_segments()
                logger.warning("cutting a torn journal tail at %d bytes", self._position)
                self._io.truncate(self._fd, self._position)
            if locked:
                self._keep_damaged_segments()
            return

    def _apply_line(self, line: Line, data: bytes, *, foreign: bool) -> bool:
        """Apply one complete line; damage is recorded and skipped. Return True if it rotates."""
        start = self._position + line.start
        end = self._position + line.end
        if line.payload is None:
            self._note_damage(start, end, "a line fails its checksum", data[line.start : line.end])
            return False
        try:
            return self._apply_record(line.payload, foreign=foreign, at=(start, end))
        except BadFile as exc:
            self._note_damage(start, end, f"a checksummed line is not a valid record ({exc})", b"")
            return False

    def _note_damage(self, start: int, end: int, reason: str, raw: bytes) -> None:
        """Record damage in the current segment (once), for reports and for quarantine."""
        damage = Damage(self._generation, start, end, reason, sessions_named(raw))
        if any(
            (d.generation, d.start) == (damage.generation, damage.start)
            for d in self._damage.journal
        ):
            return
        logger.error("journal damage in %s: %s", self._root, damage.describe())
        self._damage.journal.append(damage)
        self._damage.unkept.append(damage)

    def _keep_damaged_segments(self) -> None:
        """With the store lock: copy each damaged segment to ``quarantine/`` before it changes.

        Called before a suspect tail is cut, so the copy holds it. The copy is named after the
        generation and the damaged offset, so every process that finds the same damage keeps
        one copy. If it cannot be written now (a full disk), the damage stays reported by
        ``health_check()`` and the copy is retried by the next holder of the lock.
        """
        while self._damage.unkept:
            damage = self._damage.unkept[0]
            name = f"journal-{damage.generation:016d}-at-{damage.start}.wal"
            try:
                if not self._io.exists(self._root / "quarantine" / name):
                    try:
                        content = self._io.read_file(self._segment(damage.generation))
                    except FileNotFoundError:
                        content = b""  # checkpointed away meanwhile: the reason still tells
                    self._files.keep_in_quarantine(name, content, damage.describe())
            except OSError as exc:
                self._record_error(exc)
                logger.warning("cannot keep a copy of a damaged journal segment yet: %s", exc)
                return
            self._damage.unkept.pop(0)

    def _later_numbers(self) -> Iterator[int]:
        """The numbers of the lines after the one being applied that open (see check_sequence)."""
        later = itertools.islice(self._read, self._reading + 1, None)
        return sequence_numbers(later, self._envelope, self._generation)

    def _apply_record(self, payload: bytes, *, foreign: bool, at: tuple[int, int]) -> bool:
        """Apply one journal record to the in-memory state. Return True if it rotates.

        Raises:
            BadFile: The record is malformed; nothing was applied.
        """
        try:
            record = orjson.loads(
                opened(self._envelope, payload, journal_context(self._generation))
            )
        except orjson.JSONDecodeError as exc:
            raise BadFile(f"not JSON: {exc}") from exc
        if type(record) is not dict or type(record.get("seq")) is not int:
            raise BadFile("a journal line without a sequence number")
        if record_key(payload) is not None:
            check_sequence(record["seq"], self._seq, self._later_numbers)
        if "rotate" in record:
            target = record["rotate"]
            if type(target) is not int or target != self._generation + 1:
                raise BadFile(f"rotate to {target!r:.40} in generation {self._generation}")
            self._seq = record["seq"]
            self._close_generation(ours=False)
            self._generation = target
            return True
        if "checkpointed" in record:
            done = record["checkpointed"]
            if type(done) is not int or not 0 < done < self._generation:
                raise BadFile(f"checkpointed {done!r:.40} in generation {self._generation}")
            self._seq = record["seq"]
            self._checkpointed(done)
            return False
        if "checkpoint" in record:  # written by releases before 0.x: a checkpoint began
            if record["checkpoint"] != "begin":
                raise BadFile("an unknown checkpoint marker")
            self._seq = record["seq"]
            return False
        if "quarantine" in record:
            session_id = record["quarantine"]
            if not is_valid_session_id(session_id):
                raise BadFile(f"quarantine of an invalid session id {session_id!r:.80}")
            self._seq = record["seq"]
            self._apply_change(Delete(session_id, "quarantined"), foreign)
            return False
        changes = parse_changes(record, self._codec)
        self._seq = record["seq"]
        for change in changes:
            if isinstance(change, Append) and not self._extends(change, at):
                continue
            self._apply_change(change, foreign)
        return False

    def _close_generation(self, *, ours: bool) -> None:
        """The current generation is closed (``rotate``): its changes await a checkpoint.

        They move from ``_pending`` to ``_closing`` with each touched session's header as of
        now (what the checkpoint writes into the index). If an older closed generation was not
        checkpointed yet (a checkpoint that crashed), its changes are merged in: the next
        checkpoint covers both.
        """
        headers = {session_id: self._index.get(session_id) for session_id in self._touched}
        if self._closing is None:
            self._closing, self._closing_headers = self._pending, headers
            self._closing_ours = ours
            self._closing_from = self._generation
        else:
            closing = self._closing
            for session_id in self._touched:
                newer = self._pending.get(session_id)
                if newer is None:
                    closing.pop(session_id, None)  # deleted
                elif newer.doc is not None:
                    closing[session_id] = newer
                else:
                    closing.setdefault(session_id, Pending()).appends.extend(newer.appends)
            self._closing_headers.update(headers)
            self._closing_ours = False
        self._closing_gen = self._generation
        self._pending = {}
        self._touched = set()

    def _checkpointed(self, generation: int) -> None:
        """Every change of ``generation`` and before is in the session files now."""
        if self._closing is not None and self._closing_gen <= generation:
            self._closing = None
            self._closing_headers = {}
            self._damage.broken.clear()  # the files hold the kept state; quarantine/ the report

    def _extends(self, append: Append, at: tuple[int, int]) -> bool:
        """Whether ``append`` follows the session's version chain (else it is not applied).

        An append the session's files already hold (an index rebuilt from files that a
        checkpoint had partly written) is skipped quietly. One that expects a version the
        journal never reached follows lost records: the session keeps its last intact state
        and the break is reported.
        """
        session_id = append.header.session_id
        version = self._index.version(session_id)
        if version is not None and version == append.expected:
            return True
        if version is not None and append.header.version <= version:
            return False
        have = "absent" if version is None else f"at version {version}"
        self._damage.broken[session_id] = (
            f"journal generation {self._generation} appends to it at version "
            f"{append.expected}, but the journal leaves it {have}: records of it were lost to "
            "journal damage, so it keeps its last intact state"
        )
        self._note_damage(*at, f"a record of session {session_id} follows lost records", b"")
        return False

    def _apply_change(
        self, change: Change, foreign: bool, session: PersistedSession | None = None
    ) -> None:
        self._changes += 1
        if isinstance(change, Append):
            self._read_cache.follow(change)
        else:
            self._read_cache.drop(
                change.session_id if isinstance(change, Delete) else change.header.session_id
            )
        if isinstance(change, Delete):
            existed = self._index.discard(change.session_id)
            self._pending.pop(change.session_id, None)
            self._touched.add(change.session_id)
            if foreign and existed and change.reason is None and self._collect_foreign:
                self._foreign.append(("session_deleted", change.session_id))
            return
        session_id = change.header.session_id
        existed = session_id in self._index
        self._index[session_id] = change.header
        self._touched.add(session_id)
        if isinstance(change, Put):
            self._pending[session_id] = Pending(doc=change.doc, session=session)
        else:
            self._pending.setdefault(session_id, Pending()).appends.append(change)
        if foreign and self._collect_foreign:
            kind: EventName = "session_updated" if existed else "session_created"
            self._foreign.append((kind, session_id))

    def _reload(self, why: str, *, locked: bool = False) -> None:
        """Start over from the snapshot or the files (``_lock`` held; rare).

        Without the store lock (``locked`` false: taking it while holding ``_lock`` could
        deadlock with our own writer), a rebuild here reads files but quarantines nothing.
        """
        logger.info("reloading the index of %s: %s", self._root, why)
        self._recover(locked=locked)

    # == index snapshot and rebuild ==============================================================

    def _load_snapshot(self) -> tuple[int, HeaderTable] | None:
        return self._index_files.load()

    def _scan_files(self, locked: bool) -> list[SessionHeader]:
        """Read every session file: the fallback when there is no usable snapshot.

        With the store lock held (``locked``), damaged files are quarantined and orphan tails
        removed; without it they are only skipped.
        """
        headers = []
        directory = self._files.dir
        for name in sorted(self._io.listdir(directory)):
            stem, _, suffix = name.rpartition(".")
            path = directory / name
            if suffix == "tail":
                if locked and not self._io.exists(directory / f"{stem}.json"):
                    self._io.unlink(path)  # left by a crash between deleting base and tail
                continue
            if suffix != "json" or not is_valid_session_id(stem):
                if locked:
                    self._quarantine_file(name, "not a session file name (<session id>.json)")
                continue
            try:
                on_disk = self._files.read(stem)
            except BadFile as exc:
                if locked:
                    self._quarantine_file(name, str(exc))
                continue
            if on_disk is not None:
                headers.append(on_disk.header)
        return headers

    def _quarantine_file(self, name: str, reason: str) -> Path:
        target = self._files.quarantine(name, reason)
        logger.error("quarantined %s: %s (moved to %s)", name, reason, target)
        return target
