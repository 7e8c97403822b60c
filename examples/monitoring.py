"""Monitoring: statistics, health checks, events, auto-persist figures and maintenance.

Run with ``python examples/monitoring.py`` (uses an in-memory store).
"""

from __future__ import annotations

import asyncio

from ulid import ULID

from session_persistence import (
    Interaction,
    InteractionMessage,
    SessionObject,
    SessionPersistenceConfig,
    SessionPersistenceManager,
    SessionStoreConfig,
)


async def main() -> None:
    config = SessionPersistenceConfig(
        store_type="memory",
        store_config=SessionStoreConfig(default_session_ttl=0.2, health_error_window=60),
        auto_persist_delay=0.01,
    )
    async with SessionPersistenceManager(config) as manager:
        events: list[str] = []
        manager.on_session_created(lambda s: events.append(f"created {s.processor_id}"))
        manager.on_session_expired(lambda s: events.append(f"expired {s.processor_id}"))
        manager.on_session_deleted(lambda session_id: events.append("deleted"))

        short = await manager.create_session(SessionObject("short-lived", ULID(), ULID()))
        chat = await manager.create_managed_session(
            SessionObject("chat", ULID(), ULID()), expires_at=None
        )
        for i in range(10):
            chat.add_interaction(Interaction(InteractionMessage({"n": i}, "user"), []))
        await asyncio.sleep(0.3)  # the burst is written as one; `short` expires meanwhile

        stats = await manager.get_stats()
        print(
            f"sessions: total={stats.total_sessions} active={stats.active_sessions} "
            f"expired={stats.expired_sessions} size={stats.storage_size_bytes} bytes"
        )
        print(
            f"auto-persist: enabled={stats.auto_persist_enabled} writes={stats.persist_count} "
            f"errors={stats.error_count} unsaved={stats.unsaved_sessions}"
        )
        summary = await manager.get_session_summary(short.session_id)
        assert summary is not None
        print(f"short-lived session expired: {summary.is_expired}")

        health = await manager.health_check()
        print(f"healthy={health.healthy} issues={health.issues}")

        result = await manager.optimize()  # removes expired sessions, runs store maintenance
        for operation in result.operations_performed:
            print(f"optimize: {operation}")
        print(f"events seen: {events}")


if __name__ == "__main__":
    asyncio.run(main())
