"""Sessions sealed at rest, and a key rotation while the store is in use.

Run: ``python examples/sealed_store.py`` (needs the ``crypto`` extra). In production the keys
come from ``SESSION_STORE_KEYS`` (``Keyring.from_env()``), never from a file in the store.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from session_persistence import FileSystemSessionStore, Key, Keyring, SessionStoreConfig
from session_persistence.testing import interaction, session_object


def everything_under(folder: str) -> bytes:
    """Every byte of every file under ``folder``."""
    return b"".join(p.read_bytes() for p in Path(folder).rglob("*") if p.is_file())


async def main() -> None:
    old, new = Key.generate("k1"), Key.generate("k2")
    with tempfile.TemporaryDirectory() as folder:
        sealed = SessionStoreConfig(encryption=Keyring(old, new), compression="zlib")
        async with FileSystemSessionStore(folder, sealed) as store:
            session = await store.create_session(
                session_object(), metadata={"user": "Ada Lovelace"}, expires_at=None
            )
            await store.append_interactions(session.session_id, interaction("my address is ..."))
            await store.optimize()  # (session files and index written, sealed with k1)
            print("before:", (await store.key_status()).records)

            report = await store.rotate_key("k2", progress=lambda done, total: None)
            print(f"re-sealed {report.records_resealed} session record(s) with {report.key_id}")
            print("after: ", report.status.records)

        print("'Ada' anywhere on disk:", b"Ada" in everything_under(folder))

        only_new = SessionStoreConfig(encryption=Keyring(new))  # k1 can be retired now
        async with FileSystemSessionStore(folder, only_new) as store:
            again = await store.require_session(session.session_id)
            print("read with k2 alone:", again.metadata, len(again.interactions), "interaction")


if __name__ == "__main__":
    asyncio.run(main())
