"""Basic persistence: create, append, read, update with versions, query, transact, observe.

Run with ``python examples/basic_persistence.py`` (uses ./basic_data).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from ulid import ULID

from session_persistence import (
    FileSystemSessionStore,
    Interaction,
    InteractionMessage,
    PersistedSession,
    SessionConflictError,
    SessionFilter,
    SessionObject,
    SessionQueryOptions,
)


def exchange(question: str, answer: str) -> Interaction:
    """One request from the user and the assistant's reply."""
    return Interaction(
        request=InteractionMessage(
            event={"id": ULID(), "content": question}, sender="user", recipients={"assistant"}
        ),
        responses=[InteractionMessage(event={"content": answer}, sender="assistant")],
    )


async def main() -> None:
    # The default kind of store: one JSON file per session, with a journal. Its own directory
    # (./basic_data), so the demo's ./session_data only ever holds the demo's sessions.
    async with FileSystemSessionStore("./basic_data") as store:
        store.on_session_created(lambda s: print(f"  [event] created {s.session_id}"))

        # 1. Create a session for a processor request (ids are ULIDs, as in Sentient).
        session = await store.create_session(
            SessionObject(processor_id="weather-agent", activity_id=ULID(), request_id=ULID()),
            metadata={"user": {"id": 42, "plan": "pro"}},
            tags=["demo"],
        )
        print(f"created {session.session_id} version={session.version}")

        # 2. Append interactions: the history is not rewritten.
        header = await store.append_interactions(
            session.session_id, exchange("Weather in Paris?", "Sunny, 21°C.")
        )
        print(f"appended -> version={header.version} interactions={header.interaction_count}")

        # 3. Read it back: ULIDs come back as ULIDs, sets as sets.
        stored = await store.get_session(session.session_id)
        assert stored is not None
        request = stored.interactions[0].request
        print(f"read back: id is {type(request.event['id']).__name__}, to {request.recipients}")

        # 4. Optimistic locking: a stale version is refused, nothing changes.
        try:
            await store.update_session(session.session_id, {"tags": ["stale"]}, expected_version=1)
        except SessionConflictError as error:
            print(f"conflict as expected: expected v{error.expected}, found v{error.actual}")
        await store.update_session(
            session.session_id,
            {"metadata": {"rating": 5}, "merge_metadata": True},
            expected_version=stored.version,
        )

        # 5. A transaction: both sessions or neither.
        async with store.transaction():
            for city in ("Berlin", "Rome"):
                created = await store.create_session(
                    SessionObject(
                        "weather-agent",
                        ULID(),
                        ULID(),
                        [exchange(f"Weather in {city}?", "Cloudy.")],
                    ),
                    tags=["demo", city.lower()],
                    expires_at=None,
                )
                print(f"  staged {created.session_id} (not visible to others until commit)")

        # 6. Query from the index: filter, sort, paginate, search.
        newest: list[PersistedSession] = await store.list_sessions(
            SessionFilter(processor_id="weather-agent", has_interactions=True),
            SessionQueryOptions(sort_by="created_at", sort_order="desc", limit=2),
        )
        print(f"newest two: {[s.tags for s in newest]}")
        print(f"search 'pro' finds {len(await store.search_sessions('pro'))} session(s)")

        # 7. Expiry and statistics.
        await store.extend_session_expiration(session.session_id, timedelta(hours=2))
        stats = await store.get_stats()
        print(
            f"stats: total={stats.total_sessions} active={stats.active_sessions} "
            f"by processor={stats.sessions_by_processor}"
        )
        health = await store.health_check()
        print(f"healthy={health.healthy}")


if __name__ == "__main__":
    asyncio.run(main())
