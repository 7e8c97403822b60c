"""Advanced querying: filters, sorting, pagination, search, counts and summaries.

Run with ``python examples/advanced_querying.py`` (uses an in-memory store).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from ulid import ULID

from session_persistence import (
    Interaction,
    InteractionMessage,
    SessionFilter,
    SessionObject,
    SessionPersistenceConfig,
    SessionPersistenceManager,
    SessionQueryOptions,
)


def ask(text: str) -> Interaction:
    return Interaction(InteractionMessage({"content": text}, "user"), [])


async def main() -> None:
    config = SessionPersistenceConfig(store_type="memory")
    async with SessionPersistenceManager(config) as manager:
        for i in range(30):
            processor = ["search-agent", "code-agent", "chat-agent"][i % 3]
            await manager.create_session(
                SessionObject(
                    processor, ULID(), ULID(), [ask(f"question {j}") for j in range(i % 5)]
                ),
                metadata={"user_id": i % 4, "plan": "pro" if i % 2 else "free"},
                tags=["production" if i % 4 else "staging", f"cohort-{i % 3}"],
            )

        # Filter on several fields at once: processors, tags, interaction counts, metadata.
        busy_pro = await manager.list_sessions(
            SessionFilter(
                processor_id=["search-agent", "code-agent"],
                tags=["production"],
                interaction_count_min=2,
                metadata={"plan": "pro"},  # equality on top-level keys
            ),
            SessionQueryOptions(sort_by="created_at", sort_order="desc"),
        )
        print(f"busy pro sessions of two processors: {len(busy_pro)}")

        # Paginate: 10 per page, oldest first.
        page, offset = [], 0
        while True:
            page = await manager.list_sessions(options=SessionQueryOptions(limit=10, offset=offset))
            if not page:
                break
            print(f"page at offset {offset}: {len(page)} sessions")
            offset += len(page)

        # Counting uses the index: no session is loaded.
        empty = await manager.count_sessions(SessionFilter(has_interactions=False))
        both = await manager.count_sessions(SessionFilter(tags_all=["staging", "cohort-0"]))
        print(f"without interactions: {empty}; tagged staging AND cohort-0: {both}")

        # Search ids, tags and metadata; optionally the interactions' content too.
        print(f"search 'cohort-2': {len(await manager.search_sessions('cohort-2'))}")
        hits = await manager.search_sessions("question 3", search_interactions=True)
        print(f"search 'question 3' in interactions: {len(hits)}")

        # The manager's shortcut: recently updated sessions with interactions.
        recent = await manager.find_sessions(
            since=busy_pro[-1].created_at - timedelta(minutes=1), has_interactions=True, limit=5
        )
        print(f"recent with interactions (max 5): {len(recent)}")
        summary = await manager.get_session_summary(recent[0].session_id)
        assert summary is not None
        age = summary.age.total_seconds()
        print(f"summary: {summary.interaction_count} interactions, age {age:.3f}s")
        stats = await manager.get_stats()
        print(f"by processor: {stats.sessions_by_processor}")


if __name__ == "__main__":
    asyncio.run(main())
