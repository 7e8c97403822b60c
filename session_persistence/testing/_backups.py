"""Conformance: backups, restore with merge strategies, export and import."""

from __future__ import annotations

import asyncio
import dataclasses
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ulid import ULID

from ..errors import BackupError, TransactionError
from ..models import (
    BackupOptions,
    PersistedSession,
    RestoreOptions,
    SessionBackup,
    SessionFilter,
)
from ..stores.base import SessionStore
from ._base import FakeClock, StoreTestBase, eventually, interaction, session_object

# Writers racing a backup pause this long between writes. A loop that never idles (writers
# yielding with sleep(0) only) starves the backup's worker threads of the GIL for seconds on a
# busy machine: CPython hands the GIL to a waiting thread only when the holder keeps it for a
# whole switch interval, and the spinning loop releases and re-takes it at every select().
_PACE = 0.0005


async def _populate(store: SessionStore, count: int = 4) -> list[PersistedSession]:
    """Sessions with ULIDs, rich metadata, tags, several versions and interactions."""
    made = []
    for index in range(count):
        session = await store.create_session(
            session_object(f"proc-{index % 2}", interactions=index),
            metadata={
                "at": datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
                "ids": {ULID()},
                "nested": {"n": index, "list": [1, "two", None]},
            },
            tags=[f"t{index}", "all"],
        )
        if index % 2:
            await store.append_interactions(session.session_id, interaction("more"))
            await store.update_session(session.session_id, {"tags": ["changed"]})
        made.append(session)
    return [await _stored(store, s.session_id) for s in made]


async def _stored(store: SessionStore, session_id: str) -> PersistedSession:
    found = await store.list_sessions(SessionFilter(include_expired=True))
    return next(s for s in found if s.session_id == session_id)


async def _everything(store: SessionStore) -> dict[str, PersistedSession]:
    return {s.session_id: s for s in await store.list_sessions(SessionFilter(include_expired=True))}


class BackupConformance(StoreTestBase):
    """Backups are consistent, listable, verifiable, rotated and restorable as specified."""

    async def test_backup_delete_all_restore_gives_equal_sessions(
        self, store: SessionStore
    ) -> None:
        """Ids, versions, timestamps, interactions and typed values come back intact."""
        original = await _populate(store)
        backup = await store.create_backup()
        assert [s.session_id for s in backup.sessions] == [s.session_id for s in original]
        for session in original:
            await store.delete_session(session.session_id)
        result = await store.restore_from_backup(backup.backup_id)
        assert (result.restored_count, result.skipped_count, result.overwritten_count) == (4, 0, 0)
        assert result.errors == []
        assert await _everything(store) == {s.session_id: s for s in original}

    async def test_compressed_backup_round_trips(self, store: SessionStore) -> None:
        """A zlib-compressed backup lists as compressed and restores the same sessions."""
        original = await _populate(store, 3)
        backup = await store.create_backup(BackupOptions(compress=True))
        assert backup.metadata["compressed"] is True
        fetched = await store.get_backup(backup.backup_id)
        assert fetched.sessions == original

    async def test_backup_header_list_get_verify_delete(self, store: SessionStore) -> None:
        """list_backups shows headers; get and verify read it back; delete removes it."""
        await _populate(store, 2)
        first = await store.create_backup(BackupOptions(metadata={"reason": "test"}))
        second = await store.create_backup()
        infos = await store.list_backups()
        assert [i.backup_id for i in infos] == [first.backup_id, second.backup_id]
        assert infos[0].session_count == 2
        assert infos[0].metadata == {"reason": "test"}
        assert infos[0].store_type == store.store_type
        assert infos[0].size_bytes == first.metadata["size_bytes"] > 0
        assert first.metadata["checksum"].startswith("sha256:")
        assert (await store.verify_backup(first.backup_id)).session_count == 2
        assert (await store.get_backup(first.backup_id)).sessions == first.sessions
        assert await store.delete_backup(first.backup_id) is True
        assert await store.delete_backup(first.backup_id) is False
        assert [i.backup_id for i in await store.list_backups()] == [second.backup_id]
        with pytest.raises(BackupError):
            await store.get_backup(first.backup_id)

    async def test_bad_backup_ids_are_refused(self, store: SessionStore) -> None:
        """An id that could name a path is a BackupError, never a file access."""
        for bad in ("../../etc/passwd", "a/b", "", "x" * 200):
            with pytest.raises(BackupError):
                await store.get_backup(bad)
            with pytest.raises(BackupError):
                await store.delete_backup(bad)

    async def test_filter_and_expired_sessions(self, store: SessionStore, clock: FakeClock) -> None:
        """A filter selects sessions; expired ones are left out unless asked for."""
        await _populate(store, 4)
        short = await store.create_session(
            session_object("proc-0"), expires_at=clock.now + timedelta(seconds=1)
        )
        clock.advance(5)
        live = await store.create_backup()
        assert short.session_id not in {s.session_id for s in live.sessions}
        everything = await store.create_backup(BackupOptions(include_expired=True))
        assert short.session_id in {s.session_id for s in everything.sessions}
        only = await store.create_backup(BackupOptions(filter=SessionFilter(processor_id="proc-1")))
        assert {s.processor_id for s in only.sessions} == {"proc-1"}
        assert len(only.sessions) == 2

    async def test_rotation_keeps_exactly_max_backups(self, open_store: Callable[..., Any]) -> None:
        """After each backup only the newest max_backups remain."""
        store = await open_store(max_backups=3)
        await store.create_session(session_object())
        made = [(await store.create_backup()).backup_id for _ in range(5)]
        assert [i.backup_id for i in await store.list_backups()] == made[-3:]

    async def test_skip_existing_keeps_stored_and_counts_expired_as_existing(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        """skip_existing leaves existing sessions, expired ones included, as they are."""
        kept = await store.create_session(
            session_object(), expires_at=clock.now + timedelta(seconds=10)
        )
        gone = await store.create_session(session_object())
        backup = await store.create_backup()
        await store.update_session(kept.session_id, {"tags": ["newer"]})
        await store.delete_session(gone.session_id)
        clock.advance(20)  # kept is now expired but still stored
        result = await store.restore_from_backup(backup, RestoreOptions())
        assert (result.restored_count, result.skipped_count, result.overwritten_count) == (1, 1, 0)
        everything = await _everything(store)
        assert everything[kept.session_id].tags == ["newer"]
        assert everything[gone.session_id] == next(
            s for s in backup.sessions if s.session_id == gone.session_id
        )

    async def test_overwrite_replaces_existing(self, store: SessionStore) -> None:
        """Overwriting puts the backed-up state back over a changed session."""
        session = await store.create_session(session_object(), tags=["before"])
        backup = await store.create_backup()
        await store.update_session(session.session_id, {"tags": ["after"]})
        result = await store.restore_from_backup(
            backup.backup_id, RestoreOptions(merge_strategy="overwrite")
        )
        assert (result.restored_count, result.skipped_count, result.overwritten_count) == (0, 0, 1)
        assert (await _everything(store))[session.session_id] == backup.sessions[0]

    async def test_update_newer_replaces_only_older_sessions(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        """update_newer overwrites a session only when the backup's copy was updated later."""
        older = await store.create_session(session_object(), tags=["old"])
        newer = await store.create_session(session_object(), tags=["n"])
        early = await store.create_backup(BackupOptions(filter=SessionFilter(tags=["old"])))
        clock.advance(10)
        await store.update_session(older.session_id, {"tags": ["backed-up"]})
        late = await store.create_backup()
        clock.advance(10)
        await store.update_session(newer.session_id, {"tags": ["stored-is-newer"]})
        await store.restore_from_backup(early, RestoreOptions(merge_strategy="overwrite"))
        result = await store.restore_from_backup(
            late, RestoreOptions(merge_strategy="update_newer")
        )
        assert (result.restored_count, result.skipped_count, result.overwritten_count) == (0, 1, 1)
        everything = await _everything(store)
        assert everything[older.session_id].tags == ["backed-up"]
        assert everything[newer.session_id].tags == ["stored-is-newer"]

    async def test_dry_run_reports_exactly_and_writes_nothing(self, store: SessionStore) -> None:
        """A dry run's counts equal the real run's, and the store is unchanged by it."""
        sessions = await _populate(store, 4)
        backup = await store.create_backup()
        await store.delete_session(sessions[0].session_id)
        await store.update_session(sessions[1].session_id, {"tags": ["changed again"]})
        dry = {}
        for strategy in ("skip_existing", "overwrite", "update_newer"):
            before = await _everything(store)
            result = await store.restore_from_backup(
                backup, RestoreOptions(merge_strategy=strategy, dry_run=True)
            )
            assert result.dry_run is True
            assert await _everything(store) == before
            dry[strategy] = (result.restored_count, result.skipped_count, result.overwritten_count)
        assert dry["skip_existing"] == (1, 3, 0)
        assert dry["update_newer"] == (1, 3, 0)  # the stored copies are the newer ones
        real = await store.restore_from_backup(backup, RestoreOptions(merge_strategy="overwrite"))
        assert dry["overwrite"] == (
            real.restored_count,
            real.skipped_count,
            real.overwritten_count,
        )
        assert (real.restored_count, real.overwritten_count) == (1, 3)

    async def test_restore_respects_max_sessions_and_changes_nothing(
        self, open_store: Callable[..., Any]
    ) -> None:
        """A restore that would pass max_sessions is refused before anything is written."""
        source = await open_store()
        for _ in range(5):
            await source.create_session(session_object())
        backup = await source.create_backup()
        target = await open_store(max_sessions=3)
        await target.create_session(session_object())
        with pytest.raises(BackupError, match="max_sessions"):
            await target.restore_from_backup(backup)
        with pytest.raises(BackupError, match="max_sessions"):
            await target.restore_from_backup(backup, RestoreOptions(dry_run=True))
        assert await target.count_sessions() == 1

    async def test_restore_in_batches(self, open_store: Callable[..., Any]) -> None:
        """Past restore_batch_size a restore is applied in batches and still restores all."""
        store = await open_store(restore_batch_size=2)
        made = [await store.create_session(session_object()) for _ in range(5)]
        backup = await store.create_backup()
        for session in made:
            await store.delete_session(session.session_id)
        result = await store.restore_from_backup(backup)
        assert result.restored_count == 5
        assert await store.count_sessions() == 5

    async def test_events_fire_for_backup_and_restore(self, store: SessionStore) -> None:
        """backup_created fires with the backup; restore fires created and updated."""
        log: list[tuple[str, Any]] = []
        store.on_backup_created(lambda b: log.append(("backup", b.backup_id)))
        store.on_session_created(lambda s: log.append(("created", s.session_id)))
        store.on_session_updated(
            lambda new, old: log.append(("updated", (new.tags, old and old.tags)))
        )
        one = await store.create_session(session_object(), tags=["a"])
        two = await store.create_session(session_object())
        backup = await store.create_backup()
        await store.update_session(one.session_id, {"tags": ["b"]})
        await store.delete_session(two.session_id)
        log.clear()
        await store.restore_from_backup(backup, RestoreOptions(merge_strategy="overwrite"))
        assert sorted(log, key=str) == sorted(
            [("created", two.session_id), ("updated", (["a"], ["b"]))], key=str
        )

    async def test_hostile_backup_objects_are_refused(self, store: SessionStore) -> None:
        """A bad id, a non-session or a duplicate in a backup object is a BackupError."""
        session = await store.create_session(session_object())
        backup = await store.create_backup()
        await store.delete_session(session.session_id)
        good = backup.sessions[0]
        cases: list[list[Any]] = [
            [dataclasses.replace(good, session_id="../../etc/x")],
            [good, good],
            ["not a session"],
            [dataclasses.replace(good, version=0)],
        ]
        for sessions in cases:
            hostile = SessionBackup(backup_id="h", created_at=good.created_at, sessions=sessions)
            with pytest.raises(BackupError):
                await store.restore_from_backup(hostile)
        assert await store.count_sessions(SessionFilter(include_expired=True)) == 0

    async def test_backup_is_consistent_while_writes_continue(self, store: SessionStore) -> None:
        """Backups taken during concurrent transactions hold each wholly or not at all."""
        # Idle sessions between the related ones make the first, unfrozen pass yield (and,
        # once optimize() has written them to their files, read them in another thread).
        pair, twins = [], []
        for _ in range(2):
            pair.append(await store.create_session(session_object(interactions=5)))
            twins.append(await store.create_session(session_object(), metadata={"n": 0}))
            for _ in range(70):
                await store.create_session(session_object("idle"))
        singles = [
            await store.create_session(session_object(), metadata={"n": 0}) for _ in range(8)
        ]
        await store.optimize()
        stop = asyncio.Event()

        async def bump(session_id: str) -> None:
            while not stop.is_set():
                await store.update_session(
                    session_id, {"metadata": {"n": 1}, "merge_metadata": True}
                )
                await asyncio.sleep(_PACE)

        async def move() -> None:
            flip = 0
            while not stop.is_set():
                source, target = pair[flip % 2], pair[(flip + 1) % 2]
                try:
                    async with store.transaction() as tx:
                        a = await tx.get_session(source.session_id)
                        b = await tx.get_session(target.session_id)
                        assert a is not None
                        assert b is not None
                        if a.interactions:
                            await tx.update_session(
                                source.session_id, {"interactions": a.interactions[1:]}
                            )
                            await tx.update_session(
                                target.session_id,
                                {"interactions": [*b.interactions, a.interactions[0]]},
                            )
                        count = a.version
                        for twin in twins:
                            await tx.update_session(twin.session_id, {"metadata": {"n": count}})
                except TransactionError:
                    pass
                flip += 1
                await asyncio.sleep(_PACE)

        workers = [asyncio.create_task(bump(s.session_id)) for s in singles]
        workers.append(asyncio.create_task(move()))
        try:
            for _ in range(10):
                await asyncio.sleep(0.01)
                backup = await store.create_backup()
                by_id = {s.session_id: s for s in backup.sessions}
                assert len(by_id) == 152
                assert sum(len(by_id[s.session_id].interactions) for s in pair) == 10
                assert len({by_id[t.session_id].metadata["n"] for t in twins}) == 1
        finally:
            stop.set()
            await asyncio.gather(*workers)

    async def test_timed_backups_appear_and_stop_on_shutdown(
        self, open_store: Callable[..., Any]
    ) -> None:
        """With backup_enabled, backups appear every interval; shutdown stops them."""
        store = await open_store(backup_enabled=True, backup_interval=0.05, max_backups=100)
        made: list[str] = []
        store.on_backup_created(lambda b: made.append(b.backup_id))
        await store.create_session(session_object())
        await eventually(lambda: len(made) >= 3)
        assert len(await store.list_backups()) >= 3
        await store.shutdown()
        count = len(made)
        await asyncio.sleep(0.2)
        assert len(made) == count

    async def test_export_import_round_trip(
        self, open_store: Callable[..., Any], tmp_path: Path
    ) -> None:
        """Sessions exported to JSON Lines import into an empty store unchanged."""
        source = await open_store()
        original = await _populate(source, 5)
        target_path = tmp_path / "export.jsonl"
        assert await source.export_sessions(target_path) == 5
        lines = target_path.read_bytes().splitlines()
        assert len(lines) == 7  # header, five sessions, end marker
        target = await open_store()
        result = await target.import_sessions(target_path)
        assert result.restored_count == 5
        assert await _everything(target) == {s.session_id: s for s in original}
        stream = io.BytesIO()
        assert await target.export_sessions(stream, SessionFilter(processor_id="proc-0")) == 3
        text = io.StringIO(stream.getvalue().decode())
        again = await target.import_sessions(text, RestoreOptions(merge_strategy="overwrite"))
        assert again.overwritten_count == 3

    async def test_damaged_exports_are_refused_and_change_nothing(
        self, store: SessionStore, tmp_path: Path
    ) -> None:
        """A truncated export, a bad header or a bad record is a BackupError; nothing lands."""
        await _populate(store, 3)
        path = tmp_path / "export.jsonl"
        await store.export_sessions(path)
        good = path.read_bytes()
        lines = good.splitlines(keepends=True)
        cases = {
            "truncated": b"".join(lines[:-1]),
            "cut mid-line": good[: len(good) - 40],
            "not an export": b'{"kind": "something else", "format": 1}\n' + b"".join(lines[1:]),
            "future format": lines[0].replace(b'"format":1', b'"format":99') + b"".join(lines[1:]),
            "bad id": good.replace(b'"session_id":"', b'"session_id":"../../', 1),
            "missing field": good.replace(b'"processor_id":', b'"processor":', 1),
            "wrong count": good.replace(b'{"end":{"count":3}}', b'{"end":{"count":4}}'),
        }
        for session in await store.list_sessions():
            await store.delete_session(session.session_id)
        for name, data in cases.items():
            path.write_bytes(data)
            with pytest.raises(BackupError):
                await store.import_sessions(path)
            assert await store.count_sessions(SessionFilter(include_expired=True)) == 0, name
