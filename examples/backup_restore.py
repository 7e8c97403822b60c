"""Backups: create, list, verify, restore (dry run and for real), export and import.

Run with ``python examples/backup_restore.py``: its store is ./backup_demo_data/store, its export
./backup_demo_data/sessions-export.jsonl.
"""

from __future__ import annotations

import asyncio

from ulid import ULID

from session_persistence import (
    BackupOptions,
    RestoreOptions,
    SessionFilter,
    SessionObject,
    SessionPersistenceConfig,
    SessionPersistenceManager,
)


async def main() -> None:
    config = SessionPersistenceConfig(filesystem_base_dir="./backup_demo_data/store")
    async with SessionPersistenceManager(config) as manager:
        ids = []
        for i in range(5):
            session = await manager.create_session(
                SessionObject("important" if i < 3 else "other", ULID(), ULID()),
                metadata={"n": i},
            )
            ids.append(session.session_id)

        # A full backup, and a compressed one of one processor's sessions.
        full = await manager.create_backup(BackupOptions(metadata={"reason": "before upgrade"}))
        partial = await manager.create_backup(
            BackupOptions(filter=SessionFilter(processor_id="important"), compress=True)
        )
        for info in await manager.list_backups():
            kind = "compressed" if info.compressed else "plain"
            print(f"backup {info.backup_id}: {info.session_count} sessions, {kind}")
        verified = await manager.verify_backup(full.backup_id)
        print(f"verified {verified.backup_id}: checksum and every record valid")

        # Something goes wrong: two sessions deleted, one changed.
        await manager.delete_session(ids[0])
        await manager.delete_session(ids[4])
        await manager.update_session(ids[1], {"metadata": {"n": 100}})

        # A dry run says what a restore would do, writing nothing.
        preview = await manager.restore_from_backup(full.backup_id, RestoreOptions(dry_run=True))
        print(f"dry run: would restore {preview.restored_count}, skip {preview.skipped_count}")

        # skip_existing brings back what is missing; overwrite also undoes the change.
        result = await manager.restore_from_backup(
            full.backup_id, RestoreOptions(merge_strategy="overwrite")
        )
        print(f"restored {result.restored_count}, overwrote {result.overwritten_count}")
        back = await manager.get_session(ids[1])
        assert back is not None
        print(
            f"session 1 metadata is back to {back.metadata}; total {await manager.count_sessions()}"
        )

        # Export to JSON Lines (streams; any store can import it).
        count = await manager.export_sessions("./backup_demo_data/sessions-export.jsonl")
        print(f"exported {count} sessions to backup_demo_data/sessions-export.jsonl")
        async with SessionPersistenceManager(
            SessionPersistenceConfig(store_type="memory")
        ) as other:
            imported = await other.import_sessions("./backup_demo_data/sessions-export.jsonl")
            print(f"imported {imported.restored_count} into an in-memory store")
        await manager.delete_backup(partial.backup_id)
        print(f"{len(await manager.list_backups())} backup(s) kept")


if __name__ == "__main__":
    asyncio.run(main())
