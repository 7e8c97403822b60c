"""Fuzz every reader of the filesystem store with damaged files (SPEC section 7, "Proof").

A small store is built once: sessions with tails, a journal whose last generation still holds
acknowledged writes (copied while the store was open, as a crash would leave it), an index
snapshot and two backups. Each iteration copies it, damages one file (see
``tests/fuzz_mutations.py``) and, in a forked child, opens the store, reads every session,
lists, counts, checks, probes health, verifies and restores a backup (dry run, then for real),
closes, reopens and reads everything again. Every outcome must be one of: a typed
``SessionStoreError``; a quarantine with the other sessions intact; a loud report for journal
damage. Never an untyped exception, a hang (the child is killed when an operation makes no
progress), a file touched outside the store, or a silent loss of a record that follows intact.

What counts as a failure, per damaged file (the oracle):

* any exception that is not a ``SessionStoreError``; an operation with no progress for
  ``SP_FUZZ_HANG_SECONDS`` (5); any change under the directory around the store (victim files
  that ``../../victim`` ids and links point at) or to the template;
* a session the damage does not *touch* that reads back other than acknowledged, is listed
  wrongly, or raises; listing, counting, ``check()`` or ``health_check()`` raising; refusing
  to open (only ``store.json`` damage, a pipe or a link may make opening fail, with a typed
  error, and a refused open changes nothing);
* a touched session read back in a state never acknowledged, or in an older one silently
  (``health_check()`` healthy, ``check()`` clean, ``quarantine/`` empty). Touched: a base or
  tail touches its session; a journal segment the sessions named by lines that are no longer
  intact (or by new checksum-valid lines); ``index.json``, ``store.json``, backups and the
  older journal generation touch nothing. A journal cut or damaged at its end (nothing intact
  after) is a torn tail: its sessions may silently lose those lines. Damage with intact lines
  after it must be reported: unhealthy, a ``"journal"`` problem and a file in
  ``quarantine/``. A randomly edited record (``lax``) may still be valid: its sessions may
  change;
* restore: a failed one changes nothing; one that succeeds only adds the sessions missing
  from the store, exactly as the intact backup holds them (so a damaged backup either fails
  or restores what it held intact); the reopened store serves what the first one served.

The same runs on a store sealed and compressed (``SessionStoreConfig(encryption=KEYS,
compression=COMPRESSION)``, tests/_sealing.py), where every base body, tail record, journal
line, index chunk and delta line and backup body is an envelope. There the mutations above
open a record, damage what it holds and seal it again in its own context (as a writer holding
the key would), and ``tests/fuzz_sealed.py`` damages the envelopes themselves (a flipped base64
character or an edited prefix with the checksum fixed up, records swapped between sessions,
generations or backups, lines reordered or replayed, a record replaced by one in clear). The
oracle reads the journal as the store does: a line is opened with the keyring and its segment's
context (``journal:<generation>``) before the sessions it names are counted; one that does not
open names nothing it can prove, and is damage like a line that fails its checksum. Besides:

* a record needing a key the store lacks (an edited key id or check) or in clear may make a
  typed ``SealingKeyError`` (``UnsealedRecordError`` for one in clear): for its session, for
  ``list_sessions()`` and ``check()`` (which read every session), and for opening when it is a
  journal line or the index (docs/sealing.md: such a store does not open; a refused open
  changes nothing);
* a record in clear is never served (what it says is marked, see ``fuzz_sealed.PLANTED``) and
  its session's file is never quarantined.

``SP_FUZZ_SEED`` replays a run (the seed is printed, and named in every failure);
``SP_FUZZ_ONLY=n`` replays iteration ``n`` alone; ``SP_FUZZ_RUNS`` sets the number of
iterations on the plain store (500 by default, ``make fuzz`` runs 20,000) and
``SP_FUZZ_SEALED_RUNS`` on the sealed one (100 by default, ``make fuzz`` runs 5,000);
``SP_FUZZ_MAX_FAILURES`` stops a run after that many failing iterations (10 by default, 0 for
never). The stores live on tmpfs
(``/dev/shm``) when there is one: on a disk, creating their files takes most of the time.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import os
import random
import select
import shutil
import signal
import stat
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from _sealing import COMPRESSION, KEYS
from fuzz_mutations import Mutation, Target, journal_effect, line_ids, mutate, unwrapped
from fuzz_sealed import mutate_sealed, planted

from session_persistence import (
    BackupOptions,
    FileSystemSessionStore,
    PersistedSession,
    RestoreOptions,
    SealingKeyError,
    SessionStoreConfig,
    SessionStoreError,
    StoreCorruptionError,
    UnsealedRecordError,
)
from session_persistence._envelope import Envelope
from session_persistence.stores.filesystem import store as store_module
from session_persistence.stores.filesystem._format import journal_context
from session_persistence.testing import FakeClock, interaction, session_object

SEED = int(os.environ.get("SP_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
RUNS = int(os.environ.get("SP_FUZZ_RUNS", "500"))
SEALED_RUNS = int(os.environ.get("SP_FUZZ_SEALED_RUNS", "100"))
ONLY = os.environ.get("SP_FUZZ_ONLY")
MAX_FAILURES = int(os.environ.get("SP_FUZZ_MAX_FAILURES", "10"))
# An operation that makes no progress for this long is a hang: the child is killed.
HANG_SECONDS = float(os.environ.get("SP_FUZZ_HANG_SECONDS", "5"))

# The stores fuzzed: plain, and sealed and compressed (every record an envelope).
VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "sealed": {"encryption": KEYS, "compression": COMPRESSION},
}
# In the sealed store, how often the envelopes themselves are damaged (tests/fuzz_sealed.py)
# rather than what they hold.
SEALED_SHARE = 0.4

# How often each kind of file is damaged.
KIND_WEIGHTS = {
    "journal": 28,
    "tail": 14,
    "base": 14,
    "index": 10,
    "store": 7,
    "backup": 14,
    "journal-old": 6,
    "index-delta": 6,
}
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_VICTIM = b"victim: the store must never touch this file\n"

State = PersistedSession | None


def fingerprint(session: PersistedSession | None) -> State:
    """A session as compared by the fuzzer: everything but the access time."""
    return None if session is None else dataclasses.replace(session, last_accessed_at=_EPOCH)


@dataclass(slots=True)
class Template:
    """The pristine store every iteration starts from, and what was acknowledged in it."""

    root: Path
    targets: list[Target]
    history: dict[str, list[State]]  # every acknowledged state of each session, oldest first
    backups: dict[str, dict[str, State]]  # backup id -> the sessions it holds
    pristine: dict[str, bytes] = field(default_factory=dict)  # journal segments' bytes
    variant: str = "plain"  # a key of VARIANTS

    @property
    def config(self) -> dict[str, Any]:
        """The SessionStoreConfig fields of the variant (sealing, compression)."""
        return VARIANTS[self.variant]

    @property
    def envelope(self) -> Envelope:
        """Records as the store wraps them (to open and re-seal them, and read the journal)."""
        return Envelope(self.config.get("encryption"), self.config.get("compression"))

    @property
    def final(self) -> dict[str, State]:
        """The latest acknowledged state of each session."""
        return {sid: states[-1] for sid, states in self.history.items()}


async def _build(build: Path, template: Path, variant: str) -> Template:
    """Write the template store, copy it while open (a crash image), and record its history."""
    clock = FakeClock(datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC))
    config = SessionStoreConfig(clock=clock, **VARIANTS[variant])
    store = FileSystemSessionStore(build, config, watch=False, checkpoint_bytes=1 << 30)
    await store.initialize()
    history: dict[str, list[State]] = {}
    ids: list[str] = []

    async def note(*session_ids: str) -> None:
        for session_id in session_ids:
            got = fingerprint(await store.get_session(session_id))
            history.setdefault(session_id, [None]).append(got)

    # s0..s5 in base files; s0 and s5 stay there (reads go to their files), the others are
    # changed by the journal lines below.
    for n, count in enumerate((2, 1, 0, 3, 1, 2)):
        created = await store.create_session(
            session_object(f"proc-{n % 2}", interactions=count),
            expires_at=None,
            metadata={"name": f"s{n}", "n": 0},
            tags=[f"t{n}"],
        )
        ids.append(created.session_id)
        await note(created.session_id)
    await store.optimize()  # generation 2: every session in its base file
    await store.append_interactions(ids[0], interaction("a0"))
    await store.append_interactions(ids[1], interaction("a1"))
    await store.update_session(ids[3], {"metadata": {"name": "s3", "n": 1}})
    await store.append_interactions(ids[0], interaction("b0"))
    await note(ids[0], ids[1], ids[3])
    await store.optimize()  # generation 3: tails for s0 (2 records) and s1; s3 rewritten
    backups: dict[str, dict[str, State]] = {}
    for compress in (False, True):
        backup = await store.create_backup(BackupOptions(compress=compress))
        backups[backup.backup_id] = {s.session_id: fingerprint(s) for s in backup.sessions}
    # Acknowledged writes left in the journal (generation 3), one line each.
    await store.update_session(ids[2], {"metadata": {"name": "s2", "n": 1}})
    await note(ids[2])
    await store.append_interactions(ids[3], interaction("c3"))
    await note(ids[3])
    created = await store.create_session(
        session_object("proc-0", interactions=1), expires_at=None, metadata={"name": "s6"}
    )
    ids.append(created.session_id)
    await note(ids[6])
    await store.delete_session(ids[4])
    history[ids[4]].append(None)
    async with store.transaction():  # one line naming two sessions
        await store.update_session(ids[2], {"metadata": {"name": "s2", "n": 2}})
        await store.append_interactions(ids[1], interaction("tx1"))
    await note(ids[2], ids[1])
    await store.append_interactions(ids[6], interaction("c6"))
    await store.update_session(ids[3], {"metadata": {"name": "s3", "n": 2}})
    await store.append_interactions(ids[1], interaction("d1"))
    await note(ids[6], ids[3], ids[1])
    shutil.copytree(build, template, symlinks=True)
    await store.shutdown()

    targets = [
        Target("index.json", "index"),
        Target("index.delta", "index-delta"),
        Target("store.json", "store"),
    ]
    for sid in ids:
        for suffix, kind in ((".json", "base"), (".tail", "tail")):
            if (template / "sessions" / f"{sid}{suffix}").exists():
                targets.append(Target(f"sessions/{sid}{suffix}", kind, sid))
    segments = sorted((template / "journal").iterdir())
    for segment in segments:
        kind = "journal" if segment == segments[-1] else "journal-old"
        targets.append(Target(f"journal/{segment.name}", kind))
    for backup_id in backups:
        targets.append(Target(f"backups/{backup_id}.backup", "backup"))
    result = Template(template, targets, history, backups, variant=variant)
    for segment in segments:
        result.pristine[f"journal/{segment.name}"] = segment.read_bytes()
    assert {t.kind for t in targets} == set(KIND_WEIGHTS), targets
    # (the first line marks generation 2 checkpointed; then the eight writes above)
    assert len(_lines_of(result.pristine[f"journal/{segments[-1].name}"])) == 9
    return result


def _lines_of(data: bytes) -> list[bytes]:
    return data.split(b"\n")[:-1]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the fuzzer works: in memory (tmpfs) if there is one, for speed, else a temp dir.

    Each iteration copies a store and lets it checkpoint; on a disk, creating those files
    takes most of the time.
    """
    shm = Path("/dev/shm")
    roomy = shm.is_dir() and shutil.disk_usage(shm).free > 256 * 1024 * 1024  # huge lines
    if roomy and os.access(shm, os.W_OK | os.X_OK):
        path = Path(tempfile.mkdtemp(prefix="sp-fuzz-", dir=shm))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
    else:
        yield tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module", params=list(VARIANTS))
def template(workspace: Path, request: pytest.FixtureRequest) -> Template:
    here = workspace / request.param
    return asyncio.run(_build(here / "build", here / "template", request.param))


# -- the child: one damaged store, every reader --------------------------------------------------


class Child:
    """Runs the operations of one iteration and reports progress and violations on a pipe."""

    def __init__(self, fd: int, template: Template, mutation: Mutation, root: Path) -> None:
        self.fd = fd
        self.template = template
        self.mutation = mutation
        self.root = root
        self.known = sorted(template.history)

    def send(self, kind: str, text: str = "") -> None:
        os.write(self.fd, orjson.dumps([kind, text]) + b"\n")

    def violation(self, category: str, message: str) -> None:
        self.send("violation", f"{category}\t{message}")

    async def op(self, name: str, action: Callable[[], Awaitable[Any]]) -> tuple[str, Any]:
        """Run one operation: ("ok", value), ("error", typed exc) or ("untyped", exc)."""
        self.send("op", name)
        try:
            return "ok", await action()
        except SessionStoreError as exc:
            return "error", exc
        except Exception as exc:
            where = "".join(traceback.format_exception(exc, limit=-3)).strip().splitlines()
            self.violation(
                f"untyped {type(exc).__name__}",
                f"{name}: {type(exc).__name__}: {exc!s:.200} | {' / '.join(where[-4:])[:600]}",
            )
            return "untyped", exc

    def touched(self, session_id: str) -> bool:
        return session_id in self.mutation.touched

    def quarantined(self) -> list[str]:
        try:
            return sorted(os.listdir(self.root / "quarantine"))
        except OSError:
            return []

    def open_store(self) -> FileSystemSessionStore:
        return FileSystemSessionStore(
            self.root,
            SessionStoreConfig(**self.template.config),
            watch=False,
            durability="process",
            checkpoint_bytes=1 << 30,
        )

    async def read_all(self, store: FileSystemSessionStore, label: str) -> dict[str, Any]:
        found = {}
        for session_id in self.known:
            outcome, value = await self.op(
                f"{label} get_session", lambda sid=session_id: store.get_session(sid)
            )
            found[session_id] = (outcome, fingerprint(value) if outcome == "ok" else value)
            if outcome == "ok" and planted(value):
                self.violation("served a record in clear", f"{label} read of {session_id}")
        return found

    def kept_clear_file(self) -> None:
        """A session file with a record in clear planted is refused, never quarantined."""
        m = self.mutation
        if m.clear and m.target.kind in ("base", "tail"):
            name = Path(m.target.path).name
            kept = [q for q in self.quarantined() if q.startswith(f"{name}.")]
            if kept:
                self.violation("quarantined a record in clear", ", ".join(kept))

    async def run(self) -> None:
        m = self.mutation
        final = self.template.final
        store = self.open_store()
        key_refusal = m.key_refusal or m.clear
        tree = _tree(self.root) if m.may_refuse or key_refusal else None
        outcome, value = await self.op("open", store.initialize)
        if outcome != "ok":
            if outcome == "error" and key_refusal and _key_error(value, m):
                # A journal line needing a key the store lacks (or in clear): not damage, so
                # the store refuses to open; it must change nothing.
                if tree is not None and _tree(self.root) != tree:
                    self.violation("refused open changed the store", f"{value}")
            elif outcome == "error" and m.may_refuse:
                damaged = m.name not in ("fifo", "symlink")  # damage, not a foreign file
                if (
                    m.target.kind == "store"
                    and damaged
                    and not isinstance(value, StoreCorruptionError)
                ):
                    self.violation(
                        "wrong error type", f"open: {type(value).__name__}, not StoreCorruption"
                    )
                if tree is not None and _tree(self.root) != tree:
                    self.violation("refused open changed the store", f"{value}")
            elif outcome == "error":
                self.violation(f"open refused ({type(value).__name__})", f"{value!s:.300}")
            return
        reads = await self.read_all(store, "first")
        outcome, listed = await self.op("list_sessions", store.list_sessions)
        listed_ids = [s.session_id for s in listed] if outcome == "ok" else None
        for extra in sorted(set(listed_ids or ()) - set(self.known)):
            await self.op("get_session (unknown id)", lambda sid=extra: store.get_session(sid))
        outcome_count, count = await self.op("count_sessions", store.count_sessions)
        outcome_check, report = await self.op("check", store.check)
        outcome_health, health = await self.op("health_check", store.health_check)
        backup_id = self.restore_source()
        outcome_verify, error = await self.op(
            "verify_backup", lambda: store.verify_backup(backup_id)
        )
        # Damage elsewhere never stops listing, counting, checking or an intact backup.
        for name, result in (
            ("list_sessions", (outcome, listed)),
            ("count_sessions", (outcome_count, count)),
            ("check", (outcome_check, report)),
            ("health_check", (outcome_health, health)),
            ("verify_backup", (outcome_verify, error)),
        ):
            if result[0] != "error" or (name == "verify_backup" and m.target.kind == "backup"):
                continue
            if name in ("list_sessions", "check") and _key_error(result[1], m):
                # Reading every session meets the record needing a key the store lacks (or
                # in clear): by design a typed error, not damage to skip (docs/sealing.md).
                continue
            self.violation(f"{name} raised", f"{type(result[1]).__name__}: {result[1]!s:.200}")
        problems = report.problems if outcome_check == "ok" else []
        unhealthy = outcome_health != "ok" or not health.healthy
        loud = unhealthy or bool(problems) or bool(self.quarantined())

        # Every session: intact ones exactly as acknowledged; damaged ones loudly.
        for sid in self.known:
            got_kind, got = reads[sid]
            if got_kind == "untyped":
                continue
            if got_kind == "error":
                if not self.touched(sid):
                    self.violation(
                        "intact session unreadable", f"{sid}: {type(got).__name__}: {got!s:.200}"
                    )
                continue
            if got == final[sid]:
                continue
            what = _compare(final[sid], got)
            if not self.touched(sid):
                quiet = "silent " if not loud else ""
                self.violation(f"{quiet}loss of an intact session", f"{sid}: {what}")
            elif m.lax:
                continue
            elif got not in self.template.history[sid]:
                self.violation("served a state never acknowledged", f"{sid}: {what}")
            elif not (loud or m.silent_ok):
                self.violation("silent loss of a damaged session", f"{sid}: {what}")
        if m.journal_loud:
            journal = [p for p in problems if p.kind == "journal"]
            if not (unhealthy and journal and self.quarantined()):
                self.violation(
                    "journal damage not reported",
                    f"healthy={not unhealthy} journal problems={len(journal)} "
                    f"quarantine={self.quarantined()}",
                )
        if listed_ids is not None:
            for sid in self.known:
                if not self.touched(sid) and (sid in listed_ids) != (final[sid] is not None):
                    self.violation("list_sessions wrong", f"{sid} listed: {sid in listed_ids}")
            if outcome_count == "ok" and count != len(listed_ids):
                self.violation("count != list", f"count {count}, listed {len(listed_ids)}")

        # Restore: a damaged backup changes nothing; a good one only adds missing sessions.
        await self.op(
            "restore (dry run)",
            lambda: store.restore_from_backup(backup_id, RestoreOptions(dry_run=True)),
        )
        before = await self.read_all(store, "pre-restore")
        for sid in self.known:
            if reads[sid][0] == before[sid][0] == "ok" and reads[sid][1] != before[sid][1]:
                what = _compare(reads[sid][1], before[sid][1])
                self.violation("check or dry run changed a session", f"{sid}: {what}")
        outcome_restore, _ = await self.op("restore", lambda: store.restore_from_backup(backup_id))
        after = await self.read_all(store, "post-restore")
        pristine = self.template.backups[backup_id]
        damaged_backup = m.target.kind == "backup"
        for sid in self.known:
            if before[sid][0] != "ok" or after[sid][0] != "ok":
                if before[sid][0] == "ok" and after[sid][0] == "error":
                    self.violation("restore broke a session", f"{sid}: {after[sid][1]!s:.200}")
                continue
            old, new = before[sid][1], after[sid][1]
            if outcome_restore != "ok" or old is not None:
                if new != old:
                    self.violation(
                        "failed restore changed the store"
                        if outcome_restore != "ok"
                        else "restore overwrote a session",
                        f"{sid}: {_compare(old, new)}",
                    )
            elif new != pristine.get(sid) and not (damaged_backup and m.lax):
                kind = "damaged backup restored" if damaged_backup else "restore wrong"
                self.violation(kind, f"{sid}: {_compare(pristine.get(sid), new)}")
        await self.op("shutdown", store.shutdown)
        self.kept_clear_file()

        # Reopen: what the first instance served survives its checkpoint at shutdown.
        again = self.open_store()
        outcome, value = await self.op("reopen", again.initialize)
        if outcome == "error":
            self.violation(f"reopen refused ({type(value).__name__})", f"{value!s:.300}")
        if outcome != "ok":
            return
        reread = await self.read_all(again, "reopened")
        outcome_health, health = await self.op("reopened health_check", again.health_check)
        loud = outcome_health != "ok" or not health.healthy or bool(self.quarantined())
        for sid in self.known:
            if after[sid][0] != "ok" or reread[sid][0] == "untyped":
                continue
            if reread[sid][0] == "error":
                if not self.touched(sid):
                    self.violation(
                        "intact session unreadable after reopen", f"{sid}: {reread[sid][1]!s:.200}"
                    )
                continue
            if reread[sid][1] != after[sid][1]:
                what = _compare(after[sid][1], reread[sid][1])
                if not self.touched(sid):
                    self.violation("reopen lost an intact session", f"{sid}: {what}")
                elif not loud and not m.lax:
                    self.violation("reopen silently changed a damaged session", f"{sid}: {what}")
        await self.op("reopened shutdown", again.shutdown)
        self.kept_clear_file()

    def restore_source(self) -> str:
        """The backup this iteration restores: the damaged one, else the uncompressed one."""
        if self.mutation.target.kind == "backup":
            return Path(self.mutation.target.path).stem
        return next(iter(self.template.backups))


def _key_error(error: BaseException, mutation: Mutation) -> bool:
    """Whether ``error`` is what a record needing a key the store lacks, or in clear, gives."""
    if not (mutation.clear or mutation.key_refusal):
        return False
    if mutation.clear:
        return isinstance(error, UnsealedRecordError)
    return isinstance(error, SealingKeyError)


def _compare(expected: State, got: State) -> str:
    """Say how a session read back differs from what was expected."""

    def short(state: State) -> str:
        if state is None:
            return "absent"
        return f"v{state.version}, {len(state.interactions)} interactions"

    if expected is not None and got is not None:
        names = [f.name for f in dataclasses.fields(expected)]
        differ = [n for n in names if getattr(expected, n) != getattr(got, n)]
        return f"expected {short(expected)}, got {short(got)} (differs in {', '.join(differ)})"
    return f"expected {short(expected)}, got {short(got)}"


def _tree(root: Path, skip: Path | None = None) -> dict[str, bytes | str]:
    """Every entry under ``root`` but ``skip``: a regular file's bytes, else its type.

    Nothing but regular files is opened (a pipe would block).
    """
    found: dict[str, bytes | str] = {}
    for directory, dirs, files in os.walk(root):
        dirs[:] = [name for name in dirs if Path(directory) / name != skip]
        for name in dirs + files:
            path = Path(directory) / name
            mode = os.lstat(path).st_mode
            key = str(path.relative_to(root))
            if stat.S_ISREG(mode):
                found[key] = path.read_bytes()
            elif not stat.S_ISDIR(mode):
                found[key] = f"type {stat.S_IFMT(mode):o}"
    return found


def _child_main(fd: int, template: Template, mutation: Mutation, root: Path) -> None:
    """The forked child: run the iteration, then leave without returning into pytest."""
    status = 0
    try:
        logging.disable(logging.CRITICAL)
        # Reads retry while other processes' checkpoints move files; there are none here.
        store_module._READ_ATTEMPTS = 5  # type: ignore[attr-defined]
        child = Child(fd, template, mutation, root)
        loop = asyncio.new_event_loop()
        loop.run_until_complete(child.run())
        child.send("done")
    except BaseException as exc:  # a harness bug, or an escape the op wrapper did not catch
        os.write(fd, orjson.dumps(["violation", f"harness\t{exc!r}"]) + b"\n")
        status = 1
    finally:
        os._exit(status)


# -- the parent: damage, fork, watch ---------------------------------------------------------------


@dataclass(slots=True)
class Failure:
    iteration: int
    mutation: Mutation
    category: str
    message: str
    variant: str = "plain"

    def replay(self) -> str:
        return (
            f"SP_FUZZ_SEED={SEED} SP_FUZZ_ONLY={self.iteration} .venv/bin/python -m pytest "
            f"-s 'tests/test_fuzz_readers.py::test_fuzz_readers_with_damaged_files[{self.variant}]'"
        )


def _run_child(template: Template, mutation: Mutation, root: Path) -> list[tuple[str, str]]:
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() while threads run (idle executor workers left by
        # other tests). The child needs none of their locks: it runs a fresh event loop.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        os.close(read_fd)
        _child_main(write_fd, template, mutation, root)
    os.close(write_fd)
    found: list[tuple[str, str]] = []
    last_op, done, buffer = "start", False, b""
    deadline = time.monotonic() + HANG_SECONDS
    try:
        while True:
            wait = deadline - time.monotonic()
            if wait <= 0:
                os.kill(pid, signal.SIGKILL)
                found.append(("hang", f"no progress for {HANG_SECONDS:g}s in {last_op}"))
                break
            ready, _, _ = select.select([read_fd], [], [], wait)
            if not ready:
                continue
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                kind, text = orjson.loads(line)
                if kind == "op":
                    last_op = text
                    deadline = time.monotonic() + HANG_SECONDS
                elif kind == "violation":
                    category, _, message = text.partition("\t")
                    found.append((category, message))
                else:
                    done = True
    finally:
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
    if not done and not any(category == "hang" for category, _ in found):
        found.append(("child died", f"status {status:#x} in {last_op}"))
    return found


def _expectations(mutation: Mutation, template: Template, root: Path) -> None:
    """Fill in which sessions the damage may touch, and what must be reported."""
    target = mutation.target
    envelope = template.envelope
    if target.kind in ("base", "tail"):
        assert target.session_id is not None
        mutation.touched |= {target.session_id}  # (a swap touches the other session too)
    elif target.kind == "journal":
        path = root / target.path
        original = template.pristine[target.path]
        generation = int(Path(target.path).stem)
        if stat.S_ISREG(os.lstat(path).st_mode):
            touched, followed = journal_effect(original, path.read_bytes(), envelope, generation)
            mutation.touched = touched
            mutation.journal_loud = followed and not mutation.lax
            mutation.silent_ok = not followed
        else:  # a pipe or a link instead of the segment: every line is gone
            context = journal_context(generation)
            mutation.touched = set().union(
                *(
                    line_ids(orjson.loads(unwrapped(envelope, line[9:], context) or b"null"))
                    for line in _lines_of(original)
                )
            )


def _victims(base: Path) -> Iterator[Path]:
    for folder in (base, base / "case"):
        for suffix in (".json", ".tail", ".wal", ".backup", ".json.reason"):
            yield folder / f"victim{suffix}"


def _outside(base: Path, store: Path, template: Path) -> dict[str, bytes | str]:
    """Everything under ``base`` but the store (the victims), and the template store."""
    found = _tree(base, skip=store)
    found.update({f"template/{key}": value for key, value in _tree(template).items()})
    return found


def _pick_target(rng: random.Random, template: Template) -> Target:
    kinds = list(KIND_WEIGHTS)
    kind = rng.choices(kinds, weights=[KIND_WEIGHTS[k] for k in kinds])[0]
    return rng.choice([t for t in template.targets if t.kind == kind])


def _damage(template: Template, store: Path, case: Path, rng: random.Random) -> Mutation:
    """Damage one file of the copied store (in a sealed store, maybe its envelopes)."""
    target = _pick_target(rng, template)
    others = [sid for sid in template.history if sid != target.session_id]
    envelope = template.envelope
    victim, other = str(case / "victim"), rng.choice(others)

    def plain() -> Mutation:
        return mutate(store, target, rng, victim, other, env=envelope)

    if template.variant == "plain" or rng.random() >= SEALED_SHARE:
        return plain()
    return mutate_sealed(store, target, rng, env=envelope, targets=template.targets, fallback=plain)


def run_fuzz(template: Template, base: Path, iterations: list[int]) -> list[Failure]:
    case = base / "case"
    store = case / "store"
    case.mkdir(parents=True, exist_ok=True)
    for victim in _victims(base):
        victim.write_bytes(_VICTIM)
    outside = _outside(base, store, template.root)
    failures: list[Failure] = []
    failing_iterations = 0
    for iteration in iterations:
        rng = random.Random(f"{SEED}:{iteration}")
        if store.exists():
            shutil.rmtree(store)
        shutil.copytree(template.root, store, symlinks=True)
        mutation = _damage(template, store, case, rng)
        _expectations(mutation, template, store)
        found = _run_child(template, mutation, store)
        now = _outside(base, store, template.root)
        if now != outside:
            changed = sorted(set(now) ^ set(outside) | {k for k in now if now[k] != outside.get(k)})
            found.append(("touched a file outside the store", ", ".join(changed)))
            shutil.rmtree(store, ignore_errors=True)
            for key in set(now) - set(outside):
                (base / key).unlink(missing_ok=True)
            for victim in _victims(base):
                victim.write_bytes(_VICTIM)
        failures.extend(
            Failure(iteration, mutation, c, message, template.variant) for c, message in found
        )
        failing_iterations += bool(found)
        if MAX_FAILURES and failing_iterations >= MAX_FAILURES:
            print(f"stopping after {failing_iterations} failing iterations")
            break
    if store.exists():
        shutil.rmtree(store)
    return failures


def summary(failures: list[Failure], runs: int, variant: str = "plain") -> str:
    """Failures grouped by (file kind, mutation, what went wrong), one replay command each."""
    groups: dict[tuple[str, str, str], list[Failure]] = collections.defaultdict(list)
    for failure in failures:
        key = (failure.mutation.target.kind, failure.mutation.name, failure.category)
        if not any(f.iteration == failure.iteration for f in groups[key]):
            groups[key].append(failure)
    failing = len({f.iteration for f in failures})
    lines = [f"fuzz seed {SEED} ({variant} store): {failing} of {runs} iteration(s) failed"]
    for (kind, name, category), members in sorted(groups.items(), key=lambda g: -len(g[1])):
        first = members[0]
        lines.append(f"- {kind} / {name} / {category}: {len(members)} iteration(s)")
        lines.append(f"    e.g. iteration {first.iteration}: {first.mutation.describe()}")
        lines.append(f"    {first.message[:400]}")
        lines.append(f"    replay: {first.replay()}")
        if len(members) > 1:
            lines.append(f"    iterations: {', '.join(str(f.iteration) for f in members)}")
    return "\n".join(lines)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="each damaged store is read in a fork")
def test_fuzz_readers_with_damaged_files(template: Template, workspace: Path) -> None:
    """Damaged store files give a typed error, a quarantine or a loud report; nothing else.

    Run on a plain store (``SP_FUZZ_RUNS`` iterations) and on a sealed and compressed one
    (``SP_FUZZ_SEALED_RUNS``).
    """
    variant = template.variant
    print(f"fuzz seed {SEED}, {variant} store (replay with SP_FUZZ_SEED={SEED})")
    runs = SEALED_RUNS if variant == "sealed" else RUNS
    iterations = [int(ONLY)] if ONLY is not None else list(range(runs))
    failures = run_fuzz(template, workspace / variant / "run", iterations)
    if ONLY is not None:  # replaying one case: every violation in full
        for failure in failures:
            print(f"{failure.mutation.describe()}")
            print(f"{failure.category}: {failure.message}")
    if failures:
        pytest.fail(summary(failures, len(iterations), variant), pytrace=False)
