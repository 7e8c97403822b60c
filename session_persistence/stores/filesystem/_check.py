"""Checking a filesystem store without changing it, and the repairs ``check(repair=True)`` makes.

Everything here reads as a normal read does (through the store's index and I/O seam) but never
quarantines, cuts or rewrites: it returns what is wrong. The repairs take the store lock and set
aside only what is still damaged under it (see "What damage does" in
``docs/concepts/filesystem-store.md``); a damaged journal line is reported, never repaired.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from ..._envelope import Envelope, record_key
from ..._fileio import NotRegularFile
from ..._ids import is_valid_session_id
from ...errors import SealingKeyError
from ...models import CheckProblem
from ...serialization import Codec
from . import _checkpoint
from ._format import BadFile, journal_context, opened, parse_changes
from ._journal import split_lines
from ._replay import check_sequence, sequence_numbers

if TYPE_CHECKING:
    from .store import FileSystemSessionStore

__all__ = [
    "check_files",
    "inspect_all",
    "repair_file",
    "repair_session",
    "repair_stray_generation",
]

_INSPECT_ATTEMPTS = 10


def _invalid_record(
    payload: bytes, generation: int, codec: Codec, envelope: Envelope
) -> str | None:
    """Why a checksummed journal line is not a valid record of ``generation``, or ``None``."""
    try:
        record = orjson.loads(opened(envelope, payload, journal_context(generation)))
    except BadFile as exc:
        return f"cannot be opened ({exc})"
    except SealingKeyError as exc:
        return f"cannot be read with this keyring ({exc})"
    except orjson.JSONDecodeError:
        return "is not JSON"
    if type(record) is not dict or type(record.get("seq")) is not int:
        return "is not a journal record"
    if "rotate" in record:
        ok = type(record["rotate"]) is int and record["rotate"] == generation + 1
        return None if ok else "rotates to a wrong generation"
    if "checkpointed" in record:
        done = record["checkpointed"]
        ok = type(done) is int and 0 < done < generation
        return None if ok else "marks a wrong generation checkpointed"
    if "checkpoint" in record:
        return None if record["checkpoint"] == "begin" else "is an unknown marker"
    if "quarantine" in record:
        return None if is_valid_session_id(record["quarantine"]) else "names an invalid id"
    try:
        parse_changes(record, codec)
    except BadFile as exc:
        return f"is not a valid record ({exc})"
    return None


def _sequence_number(payload: bytes, generation: int, envelope: Envelope) -> int:
    """The sequence number of a line :func:`_invalid_record` found valid."""
    seq: int = orjson.loads(opened(envelope, payload, journal_context(generation)))["seq"]
    return seq


def inspect_all(store: FileSystemSessionStore, session_ids: Sequence[str]) -> list[tuple[str, str]]:
    found = []
    for session_id in session_ids:
        problem = inspect(store, session_id)
        if problem is not None:
            found.append((session_id, problem))
    return found


def inspect(store: FileSystemSessionStore, session_id: str) -> str | None:
    """Read a session's files like a read does, but never quarantine; return what is wrong."""
    problem = "its files do not match the journal"
    for attempt in range(_INSPECT_ATTEMPTS):
        with store._lock:
            header, cached, appends = store._lookup(session_id)
        if header is None or cached is not None:
            return None  # deleted meanwhile, or its latest state is still in the journal
        try:
            on_disk = store._files.read(session_id)
        except BadFile as exc:
            return f"damaged: {exc}"
        except OSError as exc:
            return f"unreadable: {exc}"
        if on_disk is None:
            problem = f"sessions/{session_id}.json is missing"
        else:
            session = store._with_appends(on_disk, appends)
            if session is not None and (
                session.version == header.version and session.created_at == header.created_at
            ):
                return None
            why = on_disk.tail_problem or "versions differ"
            problem = f"its files do not match the journal ({why})"
        time.sleep(0.001 * attempt)  # a checkpoint may have moved the files: look again
    return problem


def check_files(store: FileSystemSessionStore) -> list[CheckProblem]:
    problems = [
        CheckProblem(kind="file", target=str(path), problem=f"{path.name}/ was moved or "
                     "replaced while the store was open; put it back and reopen the store")
        for path in store._io.moved_anchors()
    ]  # fmt: skip
    problems.extend(check_session_dir(store))
    index = store._root / "index.json"
    if store._io.exists(index) and store._load_snapshot() is None:
        problems.append(
            CheckProblem(
                kind="index",
                target=str(index),
                repairable=True,
                problem="the index snapshot is damaged; the next open rebuilds it from the "
                "session files (slowly)",
            )
        )
    problems.extend(check_journal(store))
    with store._lock:
        unkept = list(store._damage.unkept)
        broken = dict(store._damage.broken)
    for damage in unkept:  # (once kept, the copy in quarantine/ is reported below)
        target = str(store._segment(damage.generation))
        problems.append(CheckProblem(kind="journal", target=target, problem=damage.describe()))
    for session_id, why in sorted(broken.items()):
        problems.append(CheckProblem(kind="journal", target=session_id, problem=why))
    for name in store._quarantined():
        path = store._root / "quarantine" / name
        try:
            reason = store._io.read_file(path.with_name(f"{name}.reason")).decode(errors="replace")
        except OSError:
            reason = "no .reason file"
        problems.append(
            CheckProblem(
                kind="quarantine",
                target=str(path),
                problem=f"quarantined earlier ({reason.partition(chr(10))[0]}); inspect "
                "it, then restore what it held from a backup and delete the file",
            )
        )
    return problems


def check_session_dir(store: FileSystemSessionStore) -> list[CheckProblem]:
    """Files in ``sessions/`` that belong to no stored session."""
    directory = store._files.dir
    names = sorted(store._io.listdir(directory))
    with store._lock:
        store._catch_up(locked=False)
        known = set(store._index)
    problems = []
    for name in names:
        stem, _, suffix = name.rpartition(".")
        path = directory / name
        if suffix == "tail" and is_valid_session_id(stem):
            if not store._io.exists(directory / f"{stem}.json") and store._io.exists(path):
                problem = "an orphan tail: its session file is gone"
                problems.append(
                    CheckProblem(kind="file", target=str(path), problem=problem, repairable=True)
                )
        elif suffix != "json" or not is_valid_session_id(stem):
            problem = "not a session file name (<session id>.json)"
            problems.append(
                CheckProblem(kind="file", target=str(path), problem=problem, repairable=True)
            )
        elif stem not in known and store._io.exists(path):
            with store._lock:
                store._catch_up(locked=False)
                stray = stem not in store._index and stem not in store._touched
            if stray:
                problem = "a session file the journal does not know (deleted, or copied in)"
                problems.append(
                    CheckProblem(kind="file", target=str(path), problem=problem, repairable=True)
                )
    return problems


def check_journal(store: FileSystemSessionStore) -> list[CheckProblem]:
    """Every kept generation: stray ones, damaged lines, invalid records, a suspect end."""
    problems = []
    generations = store._generations()
    with store._lock:
        current = store._generation
    for generation in generations:
        path = store._segment(generation)
        if generation < current - 1:
            problems.append(
                CheckProblem(
                    kind="journal",
                    target=str(path),
                    problem="a stale generation left by a crash; 'check --repair' or the "
                    "next checkpoint deletes it",
                    repairable=True,
                )
            )
            continue
        try:
            data = store._io.read_file(path)
        except FileNotFoundError:
            continue  # checkpointed away meanwhile
        except NotRegularFile as exc:
            problem = f"it is {exc.what}, not a segment; move it out of journal/"
            problems.append(CheckProblem(kind="journal", target=str(path), problem=problem))
            continue
        lines, intact_end = split_lines(data)
        previous = 0  # (replay's rule for sealed lines: see _replay.check_sequence)
        for number, line in enumerate(lines):
            why = "fails its checksum" if line.payload is None else None
            if line.payload is not None:
                why = _invalid_record(line.payload, generation, store._codec, store._envelope)
            if why is None and line.payload is not None:
                seq = _sequence_number(line.payload, generation, store._envelope)
                try:
                    if record_key(line.payload) is not None:
                        later = functools.partial(
                            sequence_numbers,
                            itertools.islice(lines, number + 1, None),
                            store._envelope,
                            generation,
                        )
                        check_sequence(seq, previous, later)
                    previous = seq
                except BadFile as exc:
                    why = f"is damage ({exc})"
            if why is not None:
                problem = (
                    f"the line at bytes {line.start}-{line.end} {why}; what it recorded is "
                    "lost: restore the sessions it named from a backup (its copy is kept "
                    "in quarantine/ once the store has read it)"
                )
                problems.append(CheckProblem(kind="journal", target=str(path), problem=problem))
        rest = data[intact_end:]
        if b"\n" in rest:
            problem = (
                f"a complete line at byte {intact_end} ends the segment and fails its "
                "checksum: a write torn by a power cut, or the last acknowledged record "
                "damaged. The next writer cuts it off and keeps a copy in quarantine/; "
                "restore the sessions it named from a backup if it was acknowledged"
            )
            problems.append(CheckProblem(kind="journal", target=str(path), problem=problem))
        elif rest and generation != generations[-1]:
            problem = f"{len(rest)} torn byte(s) from byte {intact_end}, never acknowledged"
            problems.append(CheckProblem(kind="journal", target=str(path), problem=problem))
    return problems


def repair_stray_generation(store: FileSystemSessionStore) -> str | None:
    with store._exclusive():
        with store._lock:
            store._catch_up(locked=True)
        before = len(store._generations())
        _checkpoint.remove_stray_generations(store)
        return "deleted" if len(store._generations()) < before else None


def repair_session(store: FileSystemSessionStore, problem: CheckProblem) -> str | None:
    with store._exclusive():
        if inspect(store, problem.target) is None:
            return None  # fine now (rewritten or deleted meanwhile)
        return store._set_aside_locked(problem.target, problem.problem)


def repair_file(store: FileSystemSessionStore, path: Path) -> str | None:
    with store._exclusive():
        with store._lock:
            store._catch_up(locked=True)
        name = path.name
        stem, _, suffix = name.rpartition(".")
        if path.parent != store._files.dir or not store._io.exists(path):
            return None
        if suffix == "tail":
            if store._io.exists(path.with_name(f"{stem}.json")):
                return None
            store._io.unlink(path)
            store._fsync_dir(path.parent)
            return "deleted"
        if is_valid_session_id(stem) and suffix == "json":
            with store._lock:
                if stem in store._index or stem in store._touched:
                    return None
        target = store._quarantine_file(name, "found by check: not a stored session")
        return f"moved to {target}"
