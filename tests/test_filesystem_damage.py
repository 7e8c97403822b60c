"""The filesystem store under faults and damage: nothing acknowledged is lost, hidden or revived.

One test per contract of the reliability issue: no single fault or damaged byte may lose, hide
or resurrect acknowledged data.

Faults come through the I/O seam or the real kernel (a lowered ``RLIMIT_NOFILE``, FIFOs,
links swapped in while the store is open); damage is made to real files on disk.
"""

from __future__ import annotations

import asyncio
import errno
import os
import resource
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest
from full_disk import fill

from session_persistence import (
    FileSystemSessionStore,
    SessionStoreError,
    StoreCorruptionError,
    StoreIOError,
    StoreReadOnlyError,
)
from session_persistence._fileio import FileIO
from session_persistence.testing import interaction, session_object

BIG = 1 << 30  # a checkpoint threshold never reached: checkpoints happen only when asked


def store_at(root: Path, **options: object) -> FileSystemSessionStore:
    return FileSystemSessionStore(root, watch=False, checkpoint_bytes=BIG, **options)  # type: ignore[arg-type]


def die(store: FileSystemSessionStore) -> None:
    """Close without the shutdown checkpoint, as a killed process would: journal only."""
    store._touched.clear()


def segment(root: Path) -> Path:
    return sorted((root / "journal").iterdir())[-1]


def frame(record: object) -> bytes:
    payload = orjson.dumps(record)
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def first_record(path: Path) -> tuple[bytes, int]:
    """The segment's first line that records a write (not a checkpoint marker), and its offset."""
    offset = 0
    for line in lines_of(path):
        if b'"ops"' in line:
            return line, offset
        offset += len(line)
    raise AssertionError(f"no write recorded in {path}")


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x04
    path.write_bytes(bytes(data))


def quarantined(root: Path) -> list[str]:
    return sorted(n for n in os.listdir(root / "quarantine") if not n.endswith(".reason"))


@contextmanager
def open_files_limited(spare: int = 0) -> Iterator[None]:
    """Leave ``spare`` descriptors free, then opens fail with EMFILE, as on a busy server."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = max(int(fd) for fd in os.listdir("/proc/self/fd")) + 1
    resource.setrlimit(resource.RLIMIT_NOFILE, (in_use, hard))
    fillers = []
    try:
        while True:  # take every free descriptor below the limit
            fillers.append(os.open(os.devnull, os.O_RDONLY))
    except OSError as exc:
        if exc.errno != errno.EMFILE:
            raise
    for _ in range(spare):
        os.close(fillers.pop())
    try:
        yield
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# -- 1. a transient read error during a checkpoint ------------------------------------------


async def test_emfile_during_a_checkpoint_aborts_it_and_keeps_the_session(tmp_path: Path) -> None:
    """EMFILE while a checkpoint reads a base is an I/O error: nothing is quarantined or lost."""
    root = tmp_path / "store"
    async with FileSystemSessionStore(root, watch=False, checkpoint_bytes=4096) as store:
        session = await store.create_session(session_object())
        await store.optimize()  # the session now has a base file
        await store.append_interactions(session.session_id, interaction("kept"))
        await store.get_session(session.session_id)  # warm the loop's thread pool first
        assert store._checkpointer is not None  # and count no descriptor of a checkpoint
        await asyncio.to_thread(store._checkpointer.settle)
        # No spare descriptor: the locks' are kept open, and closing the generation closes
        # one segment before opening the next; the checkpoint's first open meets EMFILE.
        with open_files_limited(spare=0):
            # Past checkpoint_bytes: the write is durable, then its checkpoint meets EMFILE.
            await store.append_interactions(session.session_id, interaction("x" * 5000))
            with pytest.raises(StoreIOError):
                await store.optimize()
        assert quarantined(root) == []
        again = await store.get_session(session.session_id)
        assert again is not None
        assert len(again.interactions) == 2
        await store.optimize()  # the fault cleared: the checkpoint goes through
    async with store_at(root) as store:
        again = await store.get_session(session.session_id)
        assert again is not None
        assert again.version == 3
        assert len(again.interactions) == 2


class FailingReads(FileIO):
    """Fails every read of a session's base with ``errno`` while ``armed``."""

    def __init__(self, code: int) -> None:
        super().__init__()
        self.code = code
        self.armed = False

    def open_read(self, path: Path) -> int:
        if self.armed and path.parent.name == "sessions":
            raise OSError(self.code, os.strerror(self.code), str(path))
        return super().open_read(path)


@pytest.mark.parametrize("code", [errno.EIO, errno.EMFILE, errno.ENOTDIR])
async def test_read_errors_at_a_checkpoint_are_never_taken_for_damage(
    tmp_path: Path, code: int
) -> None:
    """Through the seam: EIO, EMFILE and ENOTDIR abort the checkpoint and quarantine nothing."""
    root = tmp_path / "store"
    io = FailingReads(code)
    async with store_at(root, _io=io) as store:
        session = await store.create_session(session_object())
        await store.optimize()
        for _ in range(3):
            await store.append_interactions(session.session_id, interaction())
        io.armed = True
        with pytest.raises(StoreIOError):
            await store.optimize()
        io.armed = False
        assert quarantined(root) == []
        again = await store.get_session(session.session_id)
        assert again is not None
        assert len(again.interactions) == 3
    async with store_at(root) as store:
        again = await store.get_session(session.session_id)
        assert again is not None
        assert len(again.interactions) == 3


# -- 2. a flipped bit early in a journal generation -------------------------------------------


async def test_a_damaged_line_followed_by_intact_ones_is_damage_not_a_torn_tail(
    tmp_path: Path,
) -> None:
    """Later records are recovered, a deleted session stays deleted, and it is all reported."""
    root = tmp_path / "store"
    async with store_at(root) as store:
        doomed = await store.create_session(session_object())
        kept = await store.create_session(session_object())
        await store.optimize()  # both in files; a new generation starts
        lost = await store.create_session(session_object(), metadata={"line": 1})
        await store.update_session(kept.session_id, {"metadata": {"n": 1}})
        await store.append_interactions(kept.session_id, interaction("after"))
        await store.delete_session(doomed.session_id)
        later = await store.create_session(session_object(), metadata={"line": 5})
        journal = segment(root)
        first, at = first_record(journal)
        assert lost.session_id.encode() in first
        die(store)
    flip(journal, at + len(first) // 2)
    async with store_at(root) as store:
        assert await store.get_session(doomed.session_id) is None  # no resurrection
        again = await store.get_session(kept.session_id)
        assert again is not None
        assert again.metadata == {"n": 1}
        assert len(again.interactions) == 1
        assert await store.get_session(later.session_id) is not None
        assert await store.get_session(lost.session_id) is None  # its line is lost: loudly
        health = await store.health_check()
        assert not health.healthy
        report = await store.check()
        assert any(p.kind == "quarantine" and "journal" in p.target for p in report.problems)
        assert any(lost.session_id in p.problem for p in report.problems)
        assert any(name.startswith("journal-") for name in quarantined(root))


async def test_an_append_after_lost_records_keeps_the_last_intact_state(tmp_path: Path) -> None:
    """An append whose version chain is broken by damage is not applied, and is reported."""
    root = tmp_path / "store"
    async with store_at(root) as store:
        session = await store.create_session(session_object())
        await store.optimize()
        await store.append_interactions(session.session_id, interaction("lost"))
        await store.append_interactions(session.session_id, interaction("orphan"))
        other = await store.create_session(session_object())
        die(store)
    flip(segment(root), first_record(segment(root))[1] + 20)
    async with store_at(root) as store:
        again = await store.get_session(session.session_id)
        assert again is not None
        assert again.version == 1
        assert again.interactions == []
        assert await store.get_session(other.session_id) is not None
        issues = " ".join((await store.health_check()).issues)
        assert session.session_id in issues


# -- 3. stray generations ---------------------------------------------------------------------


async def test_stray_generations_are_reported_removed_and_never_break_a_rebuild(
    tmp_path: Path,
) -> None:
    """Old segments left by crashes: check reports them, repair removes them, opening works."""
    root = tmp_path / "store"
    async with store_at(root) as store:
        first = await store.create_session(session_object())
        old = segment(root).read_bytes()
        for _ in range(4):
            await store.append_interactions(first.session_id, interaction())
            await store.optimize()
        stray = root / "journal" / f"{1:016d}.wal"
        stray.write_bytes(old)
        report = await store.check()
        assert [(p.kind, p.target) for p in report.problems] == [("journal", str(stray))]
        assert report.problems[0].repairable
        repaired = await store.check(repair=True)
        assert repaired.problems[0].action == "deleted"
        assert not stray.exists()
        stray.write_bytes(old)
    for damage in ("missing", "garbage"):
        if damage == "missing":
            (root / "index.json").unlink()
        else:
            (root / "index.json").write_bytes(b"garbage")
        async with store_at(root) as store:
            again = await store.get_session(first.session_id)
            assert again is not None
            assert len(again.interactions) == 4
            assert not stray.exists()
            stray.write_bytes(old)
        stray.write_bytes(old)


# -- 4. a damaged tail ------------------------------------------------------------------------


async def _store_with_a_tail(root: Path) -> tuple[str, str]:
    async with store_at(root) as store:
        damaged = await store.create_session(session_object())
        other = await store.create_session(session_object(interactions=2))
        await store.optimize()
        for text in ("one", "two"):
            await store.append_interactions(damaged.session_id, interaction(text))
    assert (root / "sessions" / f"{damaged.session_id}.tail").exists()
    return damaged.session_id, other.session_id


@pytest.mark.parametrize("how", ["flip", "list", "not-json"])
async def test_a_damaged_tail_stays_confined_to_its_session(tmp_path: Path, how: str) -> None:
    """Listing, counting and other sessions work; the session is set aside with a reason."""
    root = tmp_path / "store"
    damaged, other = await _store_with_a_tail(root)
    tail = root / "sessions" / f"{damaged}.tail"
    if how == "flip":
        flip(tail, 30)
    else:
        first, rest = lines_of(tail)[0], b"".join(lines_of(tail)[1:])
        bad = frame([1, 2]) if how == "list" else b"%08x %s\n" % (zlib.crc32(b"{x"), b"{x")
        tail.write_bytes(bad + first + rest)
    async with store_at(root) as store:
        assert [s.session_id for s in await store.list_sessions()] == [other]
        assert await store.count_sessions() == 1
        assert await store.get_session(damaged) is None
        assert not (await store.health_check()).healthy
        assert any(damaged in name for name in quarantined(root))
        reason = next((root / "quarantine").glob(f"{damaged}.tail.*.reason")).read_text()
        assert "tail" in reason
        report = await store.check()
        assert {p.kind for p in report.problems} == {"quarantine"}


async def test_check_repair_sets_a_damaged_tail_aside(tmp_path: Path) -> None:
    """Check finds a damaged tail without moving it; check --repair sets it aside for real."""
    root = tmp_path / "store"
    damaged, other = await _store_with_a_tail(root)
    flip(root / "sessions" / f"{damaged}.tail", 30)
    async with store_at(root) as store:
        report = await store.check()
        assert [(p.kind, p.target) for p in report.problems] == [("session", damaged)]
        assert report.problems[0].repairable
        assert "tail" in report.problems[0].problem
        assert "optimize" not in report.problems[0].problem
        assert quarantined(root) == []
        repaired = await store.check(repair=True)
        assert repaired.problems[0].action is not None
        assert await store.count_sessions() == 1
        again = await store.check()
        assert {p.kind for p in again.problems} == {"quarantine"}
        assert not any(p.repairable for p in again.problems)  # for an operator now
        assert await store.get_session(other) is not None


# -- 5. FIFOs ---------------------------------------------------------------------------------


async def _bounded(coroutine: object) -> object:
    return await asyncio.wait_for(coroutine, 15)  # type: ignore[arg-type]


async def test_a_fifo_in_place_of_a_session_file_is_quarantined_without_hanging(
    tmp_path: Path,
) -> None:
    """A FIFO for sessions/<id>.json is refused and set aside; the rest of the store works."""
    root = tmp_path / "store"
    async with store_at(root) as store:
        victim = await store.create_session(session_object())
        other = await store.create_session(session_object())
    base = root / "sessions" / f"{victim.session_id}.json"
    base.unlink()
    os.mkfifo(base)
    async with store_at(root) as store:
        with pytest.raises(StoreCorruptionError, match="FIFO"):
            await _bounded(store.get_session(victim.session_id))
        assert await _bounded(store.get_session(other.session_id)) is not None
        assert any(victim.session_id in name for name in quarantined(root))


@pytest.mark.parametrize("name", ["index.json", "store.json"])
async def test_a_fifo_in_place_of_a_store_file_never_hangs(tmp_path: Path, name: str) -> None:
    """index.json as a FIFO is rebuilt from the files; store.json as a FIFO is refused."""
    root = tmp_path / "store"
    async with store_at(root) as store:
        kept = await store.create_session(session_object())
    (root / name).unlink()
    os.mkfifo(root / name)
    store = store_at(root)
    if name == "store.json":
        with pytest.raises(StoreCorruptionError, match="FIFO"):
            await _bounded(store.initialize())
        return
    await _bounded(store.initialize())
    try:
        assert await store.get_session(kept.session_id) is not None
        assert (root / "index.json").is_file()  # the rebuild wrote a real snapshot
    finally:
        await store.shutdown()


# -- 6. checksum-valid but malformed records --------------------------------------------------


def _victims(tmp_path: Path) -> dict[Path, bytes]:
    files = {tmp_path / "victim.json": b"mine", tmp_path / "victim.tail": b"mine too"}
    for path, data in files.items():
        path.write_bytes(data)
    return files


def _malformed(kind: str, header: dict[str, object], generation: int) -> bytes:
    seq = 10_000
    if kind == "rotate-null":
        return frame({"seq": seq, "rotate": None})
    if kind == "rotate-list":
        return frame({"seq": seq, "rotate": [1]})
    if kind == "rotate-self":
        return frame({"seq": seq, "rotate": generation})
    if kind == "delete-outside":
        return frame({"seq": seq, "ops": [{"delete": "../../victim"}]})
    if kind == "quarantine-outside":
        return frame({"seq": seq, "quarantine": "../../victim", "reason": "x"})
    if kind == "deep-put":  # deeper than any write can encode (orjson stops at 254)
        doc = {**header, "interactions": [], "metadata": {"deep": "DEEP"}}
        record = orjson.dumps({"seq": seq, "ops": [{"put": header, "doc": doc}]})
        payload = record.replace(b'"DEEP"', b"[" * 300 + b"1" + b"]" * 300)
        return b"%08x %s\n" % (zlib.crc32(payload), payload)
    if kind == "empty-put":
        return frame({"seq": seq, "ops": [{"put": header, "doc": {}}]})
    # The same in the format that writes a put as its document and size only.
    if kind == "deep-doc":
        doc = {**header, "interactions": [], "metadata": {"deep": "DEEP"}}
        record = orjson.dumps({"seq": seq, "ops": [{"doc": doc, "size": 100}]})
        payload = record.replace(b'"DEEP"', b"[" * 300 + b"1" + b"]" * 300)
        return b"%08x %s\n" % (zlib.crc32(payload), payload)
    if kind == "empty-doc":
        return frame({"seq": seq, "ops": [{"doc": {}, "size": 2}]})
    if kind == "doc-without-size":
        return frame({"seq": seq, "ops": [{"doc": {**header, "interactions": []}}]})
    if kind == "not-a-record":
        return frame([1, 2, 3])
    raise AssertionError(kind)


MALFORMED = [
    "rotate-null",
    "rotate-list",
    "rotate-self",
    "delete-outside",
    "quarantine-outside",
    "deep-put",
    "empty-put",
    "deep-doc",
    "empty-doc",
    "doc-without-size",
    "not-a-record",
]


@pytest.mark.parametrize("kind", MALFORMED)
@pytest.mark.parametrize("where", ["middle", "end"])
async def test_malformed_records_are_damage_never_a_crash_or_a_path(
    tmp_path: Path, kind: str, where: str
) -> None:
    """Every malformed record is damage: skipped, reported, the store opens, nothing outside."""
    root = tmp_path / "stores" / "store"
    root.parent.mkdir()
    victims = _victims(tmp_path / "stores")
    async with store_at(root) as store:
        session = await store.create_session(session_object())
        await store.optimize()
        await store.append_interactions(session.session_id, interaction("before"))
        journal = segment(root)
        generation = int(journal.stem)
        header = orjson.loads(first_record(journal)[0][9:])["ops"][0]["append"]
        bad = _malformed(kind, header, generation)
        with journal.open("ab") as out:
            out.write(bad)
        if where == "middle":
            await store.append_interactions(session.session_id, interaction("after"))
        die(store)
    async with store_at(root) as store:  # opens: the record is skipped, not fatal
        again = await _bounded(store.get_session(session.session_id))
        assert again is not None
        assert len(again.interactions) == (2 if where == "middle" else 1)
        assert not (await store.health_check()).healthy
        report = await _bounded(store.check())
        assert report.problems  # the damage (or its quarantined copy) is reported
        await _bounded(store.optimize())
    for path, data in victims.items():
        assert path.read_bytes() == data


async def test_a_put_with_an_empty_document_then_an_append_shuts_down_cleanly(
    tmp_path: Path,
) -> None:
    """The empty document is damage at replay, so the append after it never reaches shutdown."""
    root = tmp_path / "store"
    async with store_at(root) as store:
        session = await store.create_session(session_object())
        header = orjson.loads(first_record(segment(root))[0][9:])["ops"][0]["doc"]
        with segment(root).open("ab") as out:
            out.write(_malformed("empty-doc", header, 1))
        die(store)
    async with store_at(root) as store:
        await store.append_interactions(session.session_id, interaction())
    async with store_at(root) as store:
        again = await store.get_session(session.session_id)
        assert again is not None
        assert len(again.interactions) == 1


# -- 8. a full disk ---------------------------------------------------------------------------


class FullDisk(FileIO):
    """No room outside the journal while ``full``: new files and tails fail with ENOSPC.

    The journal's segment keeps a little room (its last block has slack), so the checkpoint's
    ``begin`` line fits and the checkpoint then fails writing session files.
    """

    def __init__(self) -> None:
        super().__init__()
        self.full = True

    def _refuse(self, path: Path) -> None:
        if self.full and path.parent.name != "journal" and path.suffix != ".lock":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    def open_new(self, path: Path, mode: int) -> int:
        self._refuse(path)
        return super().open_new(path, mode)

    def open_append(self, path: Path, mode: int) -> int:
        self._refuse(path)
        return super().open_append(path, mode)


async def test_a_store_whose_checkpoint_failed_for_space_opens_and_serves(
    tmp_path: Path,
) -> None:
    """Through the seam: opening never depends on a checkpoint; nothing is lost."""
    root = tmp_path / "store"
    async with store_at(root) as store:
        ids = [(await store.create_session(session_object())).session_id for _ in range(4)]
        await store.optimize()
    disk = FullDisk()
    async with store_at(root, _io=disk) as store:
        await store.append_interactions(ids[0], interaction())
    # The shutdown checkpoint began, then failed: the journal holds the append.
    async with store_at(root, _io=disk) as store:
        assert [s.session_id for s in await store.list_sessions()] == ids
        await store.append_interactions(ids[1], interaction())
        assert (await store.get_session(ids[0])) is not None
        disk.full = False
    async with store_at(root) as store:
        counts = [len(s.interactions) for s in await store.list_sessions()]
        assert counts == [1, 1, 0, 0]


async def test_a_store_on_a_really_full_disk_opens_reads_and_loses_nothing(
    small_disk: Path,
) -> None:
    """On a full tmpfs: typed errors, the store opens and reads, all is intact once freed."""
    root = small_disk / "store"
    async with store_at(root) as store:
        ids = [(await store.create_session(session_object())).session_id for _ in range(4)]
        await store.optimize()
        filler = fill(small_disk, leave=4096)  # room for a journal line, not for a tail
        try:
            await store.append_interactions(ids[0], interaction("a" * 600))
            with pytest.raises(StoreIOError):
                await store.append_interactions(ids[1], interaction("b" * 20_000))
            with pytest.raises(StoreIOError):
                await store.optimize()
        except BaseException:
            filler.unlink()
            raise
    try:
        async with store_at(root) as store:  # opens while the disk is still full
            sessions = await store.list_sessions()
            assert [s.session_id for s in sessions] == ids
            assert [len(s.interactions) for s in sessions] == [1, 0, 0, 0]
            with pytest.raises(StoreIOError):
                await store.create_session(session_object(interactions=40))
    finally:
        filler.unlink()
    async with store_at(root) as store:
        await store.append_interactions(ids[1], interaction("after"))
        await store.optimize()
    async with store_at(root) as store:
        sessions = await store.list_sessions()
        assert [len(s.interactions) for s in sessions] == [1, 1, 0, 0]
        assert (await store.check()).problems == []


# -- 10. links swapped in while the store is open ---------------------------------------------


@pytest.mark.parametrize("directory", ["journal", "sessions", "backups"])
async def test_a_directory_swapped_for_a_link_while_open_is_never_followed(
    tmp_path: Path, directory: str
) -> None:
    """Nothing is written through the link; the store says what happened."""
    root = tmp_path / "store"
    outside = tmp_path / "outside"
    outside.mkdir()
    async with store_at(root) as store:
        session = await store.create_session(session_object())
        await store.append_interactions(session.session_id, interaction())
        os.rename(root / directory, tmp_path / f"{directory}.moved")
        os.symlink(outside, root / directory)
        with pytest.raises(SessionStoreError):
            if directory == "backups":
                await store.create_backup()
            else:
                await store.optimize()
        assert os.listdir(outside) == []
        assert not (await store.health_check()).healthy
        os.unlink(root / directory)
        os.rename(tmp_path / f"{directory}.moved", root / directory)
    assert os.listdir(outside) == []


# -- looking never changes a store (read_only) ------------------------------------------------


def _snapshot(root: Path) -> dict[str, bytes | None]:
    found: dict[str, bytes | None] = {}
    for directory, _dirs, files in os.walk(root):
        for name in files:
            path = Path(directory, name)
            found[str(path.relative_to(root))] = None if path.is_fifo() else path.read_bytes()
    return found


async def test_a_read_only_store_reports_damage_and_changes_nothing(tmp_path: Path) -> None:
    """Reads, lists, exports, check and health on a damaged store leave every byte as it was."""
    root = tmp_path / "store"
    damaged, other = await _store_with_a_tail(root)
    flip(root / "sessions" / f"{damaged}.tail", 30)
    async with store_at(root) as store:
        await store.append_interactions(other, interaction("pending"))  # a journal to replay
        die(store)
    with (root / "journal" / segment(root).name).open("ab") as out:
        out.write(b"0000 torn")
    before = _snapshot(root)
    async with store_at(root, read_only=True) as store:
        with pytest.raises(StoreCorruptionError, match="nothing was moved"):
            await store.get_session(damaged)
        assert [s.session_id for s in await store.list_sessions()] == [other]
        await store.export_sessions(tmp_path / "export.jsonl")
        health = await store.health_check()
        assert any(damaged in issue for issue in health.issues)
        report = await store.check()
        assert [(p.kind, p.target) for p in report.problems] == [("session", damaged)]
        for change in (
            store.create_session(session_object()),
            store.optimize(),
            store.check(repair=True),
            store.create_backup(),
        ):
            with pytest.raises(StoreReadOnlyError):
                await change
    assert _snapshot(root) == before


# -- index.delta -------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["stale-copy", "bitflip", "torn"])
async def test_a_damaged_index_delta_never_hides_a_session(tmp_path: Path, damage: str) -> None:
    """Deltas apply only in their chain: a lost, stale or torn one is noticed, never skipped."""
    root = tmp_path / "store"
    async with store_at(root) as store:
        sessions = []
        for round_ in range(4):  # four checkpoints, each touching a session of its own
            sessions.append(await store.create_session(session_object(), metadata={"r": round_}))
            await store.optimize()
        die(store)
    lines = (root / "index.delta").read_bytes().splitlines(keepends=True)
    assert len(lines) >= 3
    if damage == "stale-copy":
        lines[1] = lines[0]  # an intact line where the next one belongs
    elif damage == "bitflip":
        lines[1] = lines[1][:20] + bytes([lines[1][20] ^ 4]) + lines[1][21:]
    else:
        lines[-1] = lines[-1][: len(lines[-1]) // 2]
    (root / "index.delta").write_bytes(b"".join(lines))
    async with store_at(root) as store:
        for session in sessions:
            assert await store.get_session(session.session_id) is not None, damage
        assert (await store.check()).problems == []  # the index was written anew at open
    async with store_at(root) as store:
        assert len(await store.list_sessions()) == len(sessions)
