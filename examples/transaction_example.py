"""Transactions: several changes that happen together or not at all.

Run with ``python examples/transaction_example.py`` (uses ./transaction_data).
"""

from __future__ import annotations

import asyncio

from ulid import ULID

from session_persistence import (
    Interaction,
    InteractionMessage,
    SessionConflictError,
    SessionObject,
    SessionPersistenceConfig,
    SessionPersistenceManager,
    TransactionError,
)


def message(text: str) -> Interaction:
    return Interaction(InteractionMessage({"content": text}, "user"), [])


async def main() -> None:
    config = SessionPersistenceConfig(filesystem_base_dir="./transaction_data")
    async with SessionPersistenceManager(config) as manager:
        source = await manager.create_session(
            SessionObject("router", ULID(), ULID(), [message("hand me over"), message("stay")])
        )
        target = await manager.create_session(SessionObject("specialist", ULID(), ULID()))

        # 1. Move an interaction from one session to another, atomically.
        async with manager.transaction():
            current = await manager.get_session(source.session_id)
            assert current is not None
            moved, *kept = current.interactions
            await manager.update_session(source.session_id, {"interactions": kept})
            await manager.append_interactions(target.session_id, moved)
        counts = [
            (await manager.get_session_header(s.session_id)).interaction_count  # type: ignore[union-attr]
            for s in (source, target)
        ]
        print(f"moved: source has {counts[0]}, target has {counts[1]}")

        # 2. An exception inside the block rolls everything back.
        try:
            async with manager.transaction():
                await manager.update_session(source.session_id, {"tags": ["half-done"]})
                raise RuntimeError("something went wrong mid-way")
        except RuntimeError:
            pass
        unchanged = await manager.get_session(source.session_id)
        assert unchanged is not None
        print(f"rolled back: tags are still {unchanged.tags}")

        # 3. Versions inside a transaction: a stale expected_version fails the whole unit.
        try:
            async with manager.transaction():
                await manager.update_session(target.session_id, {"tags": ["new"]})
                await manager.update_session(source.session_id, {"tags": ["x"]}, expected_version=1)
        except (SessionConflictError, TransactionError) as error:
            print(f"refused as a whole: {type(error).__name__}")
        reread = await manager.get_session(target.session_id)
        assert reread is not None
        print(f"target tags untouched: {reread.tags}")

        # 4. The functional form returns the operation's result.
        async def create_pair(tx: object) -> list[str]:
            pair = [
                await manager.create_session(SessionObject("pair", ULID(), ULID()))
                for _ in range(2)
            ]
            return [s.session_id for s in pair]

        created = await manager.with_transaction(create_pair)
        print(f"created together: {len(created)} sessions")


if __name__ == "__main__":
    asyncio.run(main())
