"""The filesystem store: conformance in both durability modes, layout, bad files, sharing."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat
from pathlib import Path

import orjson
import pytest
from _sealing import variant
from fixtures.fs_describe import describe

from session_persistence import (
    ConfigurationError,
    FileSystemSessionStore,
    RestoreOptions,
    SessionConflictError,
    SessionFilter,
    SessionStoreConfig,
    StoreCorruptionError,
)
from session_persistence.stores.filesystem import _reads as fs_reads
from session_persistence.testing import StoreConformance, eventually, interaction, session_object


class TestFileSystemFullConformance(StoreConformance):
    def make_store(self, config: SessionStoreConfig, path: Path) -> FileSystemSessionStore:
        return FileSystemSessionStore(path / "store", config, durability="full")


class TestFileSystemProcessConformance(StoreConformance):
    def make_store(self, config: SessionStoreConfig, path: Path) -> FileSystemSessionStore:
        return FileSystemSessionStore(path / "store", config, durability="process")


class _Variant(StoreConformance):
    """A sealing variant (see tests/_sealing.py), checkpointing every 4 KiB of journal.

    So session files, tails and index deltas are written (and read back) sealed too.
    """

    variant = ""

    def make_store(self, config: SessionStoreConfig, path: Path) -> FileSystemSessionStore:
        return FileSystemSessionStore(
            path / "store", variant(config, self.variant), checkpoint_bytes=4096
        )


class TestFileSystemSealedConformance(_Variant):
    variant = "sealed"


class TestFileSystemCompressedConformance(_Variant):
    variant = "compressed"


class TestFileSystemSealedCompressedConformance(_Variant):
    variant = "sealed_compressed"


# -- layout, security ------------------------------------------------------------------------


async def test_layout_and_permissions(tmp_path: Path) -> None:
    """The store creates its layout with 0700 directories and 0600 files."""
    root = tmp_path / "store"
    async with FileSystemSessionStore(root, watch=False) as store:
        created = await store.create_session(session_object(interactions=2))
        await store.optimize()  # a checkpoint writes the session file
    for name in ("sessions", "journal", "tmp", "quarantine", "backups"):
        assert stat.S_IMODE((root / name).stat().st_mode) == 0o700
    session_file = root / "sessions" / f"{created.session_id}.json"
    for path in (session_file, root / "store.json", root / "index.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    head, body = session_file.read_bytes().split(b"\n", 2)[:2]
    assert orjson.loads(head)["kind"] == "session"
    assert orjson.loads(body)["session_id"] == created.session_id


async def test_reopen_keeps_everything(tmp_path: Path) -> None:
    """Sessions, appends and deletes survive a restart, from the journal and from files."""
    root = tmp_path / "store"
    async with FileSystemSessionStore(root, watch=False) as store:
        kept = await store.create_session(session_object(interactions=1), metadata={"k": 1})
        gone = await store.create_session(session_object())
        await store.append_interactions(kept.session_id, interaction("two"))
        await store.delete_session(gone.session_id)
        abandon_without_checkpoint(store)
    async with FileSystemSessionStore(root, watch=False) as again:
        loaded = await again.get_session(kept.session_id)
        assert loaded is not None
        assert loaded.interactions[-1].request.event["content"] == "two"
        assert await again.get_session(gone.session_id) is None
    async with FileSystemSessionStore(root, watch=False) as third:  # now from files
        assert await third.count_sessions() == 1


def abandon_without_checkpoint(store: FileSystemSessionStore) -> None:
    """Drop a store as a killed process would: no checkpoint, journal only."""
    store._touched.clear()


async def test_missing_index_snapshot_is_rebuilt(tmp_path: Path) -> None:
    """Without index.json the index is rebuilt from the session files, and rewritten."""
    root = tmp_path / "store"
    async with FileSystemSessionStore(root, watch=False) as store:
        for _ in range(5):
            await store.create_session(session_object())
    (root / "index.json").unlink()
    async with FileSystemSessionStore(root, watch=False) as again:
        assert await again.count_sessions() == 5
    assert (root / "index.json").exists()


async def test_appends_go_to_the_tail_not_the_base(tmp_path: Path) -> None:
    """A checkpoint writes appends to the session's tail instead of rewriting its history."""
    root = tmp_path / "store"
    async with FileSystemSessionStore(root, watch=False) as store:
        created = await store.create_session(session_object(interactions=50))
        await store.optimize()
        base = root / "sessions" / f"{created.session_id}.json"
        before = base.read_bytes()
        await store.append_interactions(created.session_id, interaction("new"))
        await store.optimize()
        assert base.read_bytes() == before
        tail = root / "sessions" / f"{created.session_id}.tail"
        assert b"new" in tail.read_bytes()
        loaded = await store.get_session(created.session_id)
        assert loaded is not None
        assert len(loaded.interactions) == 51


# -- bad files -------------------------------------------------------------------------------


def _damage(kind: str, path: Path, other: Path) -> None:
    data = path.read_bytes()
    if kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "zero-length":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(os.urandom(300))
    elif kind == "wrong-checksum":
        path.write_bytes(data.replace(b'"proc-1"', b'"proc-2"'))
    elif kind == "future-format":
        path.write_bytes(data.replace(b'"format":1', b'"format":99', 1))
    elif kind == "symlink":
        path.unlink()
        path.symlink_to(other)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("truncated", "truncated"),
        ("zero-length", "empty"),
        ("garbage", "not a"),
        ("wrong-checksum", "checksum"),
        ("future-format", "newer"),
        ("symlink", "symbolic link"),
    ],
)
async def test_bad_session_file_is_quarantined(tmp_path: Path, kind: str, reason: str) -> None:
    """A damaged session file is moved to quarantine/ with a reason; the rest keeps working."""
    root = tmp_path / "store"
    async with FileSystemSessionStore(root, watch=False) as store:
        bad = await store.create_session(session_object(interactions=1))
        good = await store.create_session(session_object(interactions=1))
    outside = tmp_path / "outside.json"
    outside.write_bytes((root / "sessions" / f"{good.session_id}.json").read_bytes())
    _damage(kind, root / "sessions" / f"{bad.session_id}.json", outside)
    async with FileSystemSessionStore(root, watch=False) as store:
        with pytest.raises(StoreCorruptionError, match="quarantine"):
            await store.get_session(bad.session_id)
        assert await store.get_session(bad.session_id) is None
        assert await store.get_session(good.session_id) is not None
        assert await store.count_sessions() == 1
        health = await store.health_check()
        assert not health.healthy
        assert "quarantine" in health.issues[0]
        stats = await store.get_stats()
        assert stats.backend["quarantined_files"] == 1
        await store.create_session(session_object())
    notes = list((root / "quarantine").glob("*.reason"))
    assert len(notes) == 1
    assert reason in notes[0].read_text()
    assert outside.exists()  # the link was moved, never followed
    async with FileSystemSessionStore(root, watch=False) as again:
        assert await again.count_sessions() == 2


@pytest.mark.parametrize("kind", ["truncated", "garbage", "wrong-checksum", "symlink"])
async def test_check_reports_a_damaged_file_and_repair_quarantines_it(
    tmp_path: Path, kind: str
) -> None:
    """check() reports a damaged session without moving it; repair=True sets it aside."""
    root = tmp_path / "store"
    async with FileSystemSessionStore(root, watch=False) as store:
        bad = await store.create_session(session_object(interactions=1))
        good = await store.create_session(session_object(interactions=1))
    outside = tmp_path / "outside.json"
    outside.write_bytes((root / "sessions" / f"{good.session_id}.json").read_bytes())
    _damage(kind, root / "sessions" / f"{bad.session_id}.json", outside)
    async with FileSystemSessionStore(root, watch=False) as store:
        report = await store.check()
        assert report.sessions_checked == 2
        assert [(p.kind, p.target, p.action) for p in report.problems] == [
            ("session", bad.session_id, None)
        ]
        assert (root / "sessions" / f"{bad.session_id}.json").is_symlink() == (kind == "symlink")
        assert os.listdir(root / "quarantine") == []  # reporting moved nothing
        repaired = await store.check(repair=True)
        (problem,) = repaired.problems
        assert problem.action is not None
        assert "moved to" in problem.action
        assert await store.count_sessions() == 1
        after = await store.check()
        assert [p.kind for p in after.problems] == ["quarantine"]  # an operator must look
    assert outside.exists()
    async with FileSystemSessionStore(root, watch=False) as again:
        assert [s.session_id for s in await again.list_sessions()] == [good.session_id]


async def test_check_finds_stray_files_a_bad_snapshot_and_damaged_backups(tmp_path: Path) -> None:
    """Stray files, orphan tails, a damaged index and backup are reported, then repaired."""
    root = tmp_path / "store"
    async with FileSystemSessionStore(root, watch=False) as store:
        kept = await store.create_session(session_object())
        backup = await store.create_backup()
        await store.optimize()  # the session's file is written
        # Damage things while the store is open (opening would rebuild, and quarantine).
        (root / "sessions" / "notes.txt").write_text("hello")
        (root / "sessions" / "01ORPHANORPHANORPHANORPHAN.tail").write_bytes(b"x")
        (root / "sessions" / "01STRAYSTRAYSTRAYSTRAYSTRA.json").write_bytes(b"{}")
        (root / "index.json").write_bytes(b"damaged")
        backup_file = root / "backups" / f"{backup.backup_id}.backup"
        backup_file.write_bytes(backup_file.read_bytes()[:-20])
        report = await store.check()
        found = sorted((p.kind, Path(p.target).name) for p in report.problems)
        assert found == [
            ("backup", backup.backup_id),
            ("file", "01ORPHANORPHANORPHANORPHAN.tail"),
            ("file", "01STRAYSTRAYSTRAYSTRAYSTRA.json"),
            ("file", "notes.txt"),
            ("index", "index.json"),
        ]
        assert not any(p.action for p in report.problems)
        repaired = await store.check(repair=True)
        assert all(p.action for p in repaired.problems)
        assert sorted(os.listdir(root / "sessions")) == [f"{kept.session_id}.json"]
        assert not backup_file.exists()
        assert len(list((root / "backups" / "quarantine").glob("*.reason"))) == 1
        final = await store.check()
        assert sorted(p.kind for p in final.problems) == ["quarantine", "quarantine"]
        assert await store.get_session(kept.session_id) is not None
    async with FileSystemSessionStore(root, watch=False) as again:
        assert await again.count_sessions() == 1


async def test_check_reports_a_damaged_journal_line(tmp_path: Path) -> None:
    """A checksummed line that is not a record, or bytes after a bad line, are reported."""
    root = tmp_path / "store"
    async with FileSystemSessionStore(root, watch=False) as store:
        await store.create_session(session_object())
        (segment,) = (root / "journal").iterdir()
        with segment.open("ab") as journal:
            journal.write(b"00000000 garbage\nmore\n")
        report = await store.check()
        assert [(p.kind, p.target) for p in report.problems] == [("journal", str(segment))]
        assert "fails its checksum" in report.problems[0].problem
        assert not report.problems[0].repairable  # a damaged journal line is for an operator
        repaired = await store.check(repair=True)
        assert repaired.problems[0].action is None  # never "repaired" by deleting lines
        segment.write_bytes(segment.read_bytes().rsplit(b"00000000", 1)[0])  # undo, for shutdown


async def test_bad_files_found_by_a_rebuild_are_quarantined(tmp_path: Path) -> None:
    """Opening without a snapshot quarantines bad files and still opens the store."""
    root = tmp_path / "store"
    async with FileSystemSessionStore(root, watch=False) as store:
        good = await store.create_session(session_object())
    (root / "index.json").unlink()
    (root / "sessions" / "not a session.json").write_bytes(b"{}")
    (root / "sessions" / "01BADBADBADBADBADBADBADBAD.json").write_bytes(b"garbage\n")
    async with FileSystemSessionStore(root, watch=False) as again:
        assert [s.session_id for s in await again.list_sessions()] == [good.session_id]
    assert len(list((root / "quarantine").glob("*.reason"))) == 2


async def test_future_store_format_is_refused(tmp_path: Path) -> None:
    """A store written by a newer version is refused with a message saying to upgrade."""
    root = tmp_path / "store"
    async with FileSystemSessionStore(root, watch=False):
        pass
    (root / "store.json").write_bytes(
        b'{"format": 99, "kind": "session-persistence-filesystem-store"}'
    )
    with pytest.raises(StoreCorruptionError, match="upgrade"):
        await FileSystemSessionStore(root, watch=False).initialize()


async def test_symlinked_directory_is_refused(tmp_path: Path) -> None:
    """A store directory replaced by a symlink is refused rather than followed."""
    root = tmp_path / "store"
    async with FileSystemSessionStore(root, watch=False):
        pass
    (root / "sessions").rename(tmp_path / "elsewhere")
    (root / "sessions").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StoreCorruptionError, match="link"):
        await FileSystemSessionStore(root, watch=False).initialize()


def test_bad_options_are_refused(tmp_path: Path) -> None:
    """Invalid options raise ConfigurationError naming the option."""
    with pytest.raises(ConfigurationError, match="durability"):
        FileSystemSessionStore(tmp_path, durability="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="lock_timeout"):
        FileSystemSessionStore(tmp_path, lock_timeout=0)


# -- several stores on one directory ---------------------------------------------------------


async def test_other_instances_see_writes_at_once(tmp_path: Path) -> None:
    """A write that returned in one store is visible to another on the same directory."""
    root = tmp_path / "store"
    async with (
        FileSystemSessionStore(root, watch=False) as one,
        FileSystemSessionStore(root, watch=False) as two,
    ):
        created = await one.create_session(session_object())
        seen = await two.get_session(created.session_id)
        assert seen is not None
        await two.append_interactions(created.session_id, interaction("from two"))
        again = await one.get_session(created.session_id)
        assert again is not None
        assert len(again.interactions) == 1
        with pytest.raises(SessionConflictError):
            await one.update_session(created.session_id, {"tags": ["x"]}, expected_version=1)
        await one.optimize()  # a checkpoint by one; two keeps reading correctly
        assert (await two.get_session(created.session_id)) is not None
        assert await two.count_sessions() == 1


async def test_an_instance_left_generations_behind_catches_up(tmp_path: Path) -> None:
    """Checkpoints elsewhere deleted the generation we were on: reload, never write to it.

    Reading the rotation to generation 2 while another instance had already checkpointed to 4
    (and deleted 2) once left the index stuck, and made the next write create a stale
    generation 2 that no other instance would read.
    """
    root = tmp_path / "store"
    async with (
        FileSystemSessionStore(root, watch=False) as behind,
        FileSystemSessionStore(root, watch=False) as ahead,
    ):
        session = await ahead.create_session(session_object(), expires_at=None)
        assert await behind.get_session(session.session_id) is not None
        for round_ in range(3):
            await ahead.update_session(session.session_id, {"metadata": {"round": round_}})
            await ahead.optimize()  # checkpoint: a new generation, the one before last deleted
        seen = await behind.get_session(session.session_id)
        assert seen is not None
        assert seen.metadata == {"round": 2}
        await behind.update_session(session.session_id, {"metadata": {"from": "behind"}})
        fresh = await ahead.get_session(session.session_id)
        assert fresh is not None
        assert fresh.metadata == {"from": "behind"}
    async with FileSystemSessionStore(root, watch=False) as reopened:
        final = await reopened.get_session(session.session_id)
        assert final is not None
        assert final.metadata == {"from": "behind"}


async def test_other_instances_writes_fire_events(tmp_path: Path) -> None:
    """Listeners see other processes' changes (watchdog, or polling as the fallback)."""
    root = tmp_path / "store"
    async with (
        FileSystemSessionStore(root, poll_interval=0.05) as watcher,
        FileSystemSessionStore(root, watch=False) as writer,
    ):
        events: list[tuple[str, str]] = []
        watcher.on_session_created(lambda s: events.append(("created", s.session_id)))
        watcher.on_session_updated(lambda new, old: events.append(("updated", new.session_id)))
        watcher.on_session_deleted(lambda sid: events.append(("deleted", sid)))

        async def until(count: int) -> None:
            await eventually(lambda: len(events) >= count)

        created = await writer.create_session(session_object())
        await until(1)
        await writer.update_session(created.session_id, {"tags": ["t"]})
        await until(2)
        await writer.delete_session(created.session_id)
        await until(3)
        sid = created.session_id
        assert events == [("created", sid), ("updated", sid), ("deleted", sid)]


# -- the read cache ---------------------------------------------------------------------------


async def test_warm_reads_come_from_the_cache_and_never_go_stale(tmp_path: Path) -> None:
    """A session read from its files is served from memory after; any change shows at once."""
    root = tmp_path / "store"
    async with (
        FileSystemSessionStore(root, watch=False) as reader,
        FileSystemSessionStore(root, watch=False) as writer,
    ):
        created = await writer.create_session(session_object(interactions=2), metadata={"n": 0})
        await writer.optimize()  # in its file now, not pending in memory
        first = await reader.get_session(created.session_id)
        assert first is not None
        assert created.session_id in reader._read_cache
        first.metadata["n"] = 99  # the caller's copy: the cache must not see this
        first.interactions.clear()
        again = await reader.get_session(created.session_id)
        assert again is not None
        assert (again.metadata, len(again.interactions)) == ({"n": 0}, 2)
        assert again.last_accessed_at >= first.last_accessed_at
        for number in (1, 2):  # another process's update, checkpointed or still in the journal
            await writer.update_session(created.session_id, {"metadata": {"n": number}})
            if number == 1:
                await writer.optimize()
            seen = await reader.get_session(created.session_id)
            assert seen is not None
            assert seen.metadata == {"n": number}
        await reader.update_session(created.session_id, {"metadata": {"n": 3}})  # our own
        await reader.optimize()
        mine = await reader.get_session(created.session_id)
        assert mine is not None
        assert mine.metadata == {"n": 3}
        await writer.delete_session(created.session_id)
        assert await reader.get_session(created.session_id) is None
        assert created.session_id not in reader._read_cache


async def test_the_read_cache_keeps_to_its_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The least recently read sessions are evicted once the byte budget is passed."""
    async with FileSystemSessionStore(
        tmp_path / "store", watch=False, read_cache_bytes=40_000
    ) as store:
        ids = [
            (await store.create_session(session_object(), metadata={"x": "y" * 3_000})).session_id
            for _ in range(20)
        ]
        await store.optimize()
        for session_id in ids:
            assert await store.get_session(session_id) is not None
        assert 0 < store._read_cache.charged <= 40_000
        assert store._read_cache.ids() == ids[-len(store._read_cache) :]
        assert len(store._read_cache) < len(ids)


async def test_reads_after_appends_stay_warm_and_exact(tmp_path: Path) -> None:
    """An append (ours or another process's) extends the cached session instead of dropping it.

    A long history must not be decoded again after every append: the read that follows is
    served from memory, holds the new interactions, and is still the caller's own.
    """
    root = tmp_path / "store"
    async with (
        FileSystemSessionStore(root, watch=False, read_cache_bytes=4_000_000) as store,
        FileSystemSessionStore(root, watch=False) as other,
    ):
        created = await store.create_session(session_object(interactions=300))
        sid = created.session_id
        await store.optimize()  # in its files
        assert len((await store.get_session(sid)).interactions) == 300  # type: ignore[union-attr]
        assert sid in store._read_cache
        decoded: list[str] = []
        original = fs_reads.SessionReads._load_from_files

        def counting(self: FileSystemSessionStore, session_id: str) -> object:
            decoded.append(session_id)
            return original(self, session_id)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(fs_reads.SessionReads, "_load_from_files", counting)
            for number, writer in enumerate([store, other, store]):
                await writer.append_interactions(sid, interaction(f"turn {number}"))
                seen = await store.get_session(sid)
                assert seen is not None
                assert len(seen.interactions) == 301 + number
                assert seen.interactions[-1].request.event["content"] == f"turn {number}"
                seen.interactions[-1].request.event["content"] = "changed by the caller"
                seen.interactions.pop(0)
        assert decoded == []  # every read after an append came from memory
        assert sid in store._read_cache
        final = await store.get_session(sid)
        assert final is not None
        assert [i.request.event["content"] for i in final.interactions[-3:]] == [
            "turn 0", "turn 1", "turn 2"]  # fmt: skip
        assert final.interactions == (await other.get_session(sid)).interactions  # type: ignore[union-attr]


# -- the processor index ----------------------------------------------------------------------


async def _processor_index_is_exact(store: FileSystemSessionStore) -> bool:
    """Filtering the index's rows by processor finds what its headers say, no more."""
    expected: dict[str, set[str]] = {}
    for header in await store._scan():  # (caught up with the journal, as _scan_for is)
        expected.setdefault(header.processor_id, set()).add(header.session_id)
    found = {
        processor: {
            h.session_id for h in await store._scan_for(SessionFilter(processor_id=processor))
        }
        for processor in [*expected, "nobody"]
    }
    return found == {**expected, "nobody": set()}


async def test_queries_by_processor_use_an_index_that_stays_exact(tmp_path: Path) -> None:
    """Creates, deletes, another process's writes and a restore that changes a processor."""
    root = tmp_path / "store"
    async with (
        FileSystemSessionStore(root, watch=False) as store,
        FileSystemSessionStore(root, watch=False) as other,
    ):
        a = [await store.create_session(session_object("a")) for _ in range(3)]
        b = await other.create_session(session_object("b"))
        backup = await store.create_backup()
        await store.delete_session(a[0].session_id)
        assert await store.count_sessions(SessionFilter(processor_id="a")) == 2
        assert await store.count_sessions(SessionFilter(processor_id=["a", "b", "zzz"])) == 3
        assert await _processor_index_is_exact(store)
        replaced = dataclasses.replace(backup, sessions=[
            dataclasses.replace(s, processor_id="c") if s.session_id == a[1].session_id else s
            for s in backup.sessions
        ])  # fmt: skip
        await other.restore_from_backup(replaced, RestoreOptions(merge_strategy="overwrite"))
        found = await store.list_sessions(SessionFilter(processor_id="c"))
        assert [s.session_id for s in found] == [a[1].session_id]
        assert await store.count_sessions(SessionFilter(processor_id="a")) == 2  # a[0] restored
        assert await store.count_sessions(SessionFilter(processor_id="b")) == 1
        async with store.transaction():
            await store.create_session(session_object("b"))
            await store.delete_session(b.session_id)
            assert await store.count_sessions(SessionFilter(processor_id="b")) == 1
        assert await _processor_index_is_exact(store)
        assert await _processor_index_is_exact(other)
    async with FileSystemSessionStore(root, watch=False) as again:
        assert await _processor_index_is_exact(again)
        assert await again.count_sessions(SessionFilter(processor_id="a")) == 2


# -- a store written before format 2 -------------------------------------------------------


async def test_a_store_written_before_format_2_opens_and_is_upgraded(tmp_path: Path) -> None:
    """The fixture (tests/fixtures/make_fs_store_v1.py) opens with every session as it was.

    It has an old index (a bare array), old-style ``rotate`` lines (which then meant "in the
    files") and ``put`` lines with a header; opening upgrades the marker to format 2, and the
    next checkpoint writes the index in the new form. Nothing is lost on the way.
    """
    fixtures = Path(__file__).with_name("fixtures")
    expected = json.loads((fixtures / "fs_store_v1.expected.json").read_text())
    root = tmp_path / "store"
    shutil.copytree(fixtures / "fs_store_v1", root)

    async def matches(store: FileSystemSessionStore) -> None:
        found = {}
        for session in await store.list_sessions():
            full = await store.get_session(session.session_id)
            assert full is not None
            found[session.session_id] = {
                "metadata": full.metadata,
                "version": full.version,
                "interactions": len(full.interactions),
            }
        assert found == expected

    async with FileSystemSessionStore(root, watch=False, read_only=True) as reader:
        await matches(reader)  # (read-only: nothing upgraded)
    assert json.loads((root / "store.json").read_text())["format"] == 1
    async with FileSystemSessionStore(root, watch=False) as store:
        await matches(store)
        assert json.loads((root / "store.json").read_text())["format"] == 2
        await store.optimize()
        assert (await store.check()).problems == []
    body = (root / "index.json").read_bytes().split(b"\n")[1]
    assert orjson.loads(body)["generation"] > 3  # rewritten in the new form
    async with FileSystemSessionStore(root, watch=False) as again:
        await matches(again)


# -- an index written before the columnar layout ---------------------------------------------


async def test_an_index_written_before_the_columnar_layout_opens_exactly(tmp_path: Path) -> None:
    """The fixture (tests/fixtures/make_fs_store_v2.py) opens with every header as it was.

    Its index.json holds headers as objects and index.delta a later checkpoint's; ids, a ULID
    and a datetime in metadata, an expiry in another UTC offset and tags must read back with
    their types and offsets. The next full checkpoint writes the columnar layout, which reads
    back the same.
    """
    fixtures = Path(__file__).with_name("fixtures")
    expected = json.loads((fixtures / "fs_store_v2.expected.json").read_text())
    root = tmp_path / "store"
    shutil.copytree(fixtures / "fs_store_v2", root)

    async def matches(store: FileSystemSessionStore) -> None:
        headers = {h.session_id: describe(h) for h in await store._scan()}
        assert headers == expected
        for session_id, header in expected.items():
            assert describe(await store.get_session_header(session_id)) == header
            session = await store.get_session(session_id)
            assert session is not None
            assert len(session.interactions) == header["interaction_count"]

    async with FileSystemSessionStore(root, watch=False, read_only=True) as reader:
        await matches(reader)
    async with FileSystemSessionStore(root, watch=False) as store:
        await matches(store)
        await store.optimize()
    head, *chunks = (root / "index.json").read_bytes().split(b"\n")[1:-1]
    body = orjson.loads(head)
    assert body["layout"] == "columns-1"
    assert body["chunks"] == len(chunks) == 1
    assert sorted(orjson.loads(chunks[0])["ids"]) == sorted(expected)
    async with FileSystemSessionStore(root, watch=False) as again:
        await matches(again)
    first = next(iter(expected))
    async with FileSystemSessionStore(root, watch=False, checkpoint_bytes=1) as store:
        await store.append_interactions(first, interaction("one more"))
        await store.optimize()  # a checkpoint that appends a delta line
        assert b'"layout":"columns-1"' in (root / "index.delta").read_bytes()
    async with FileSystemSessionStore(root, watch=False) as again:
        header = await again.get_session_header(first)
        assert header is not None
        assert header.interaction_count == expected[first]["interaction_count"] + 1
