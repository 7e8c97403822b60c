"""A processor pipeline that survives a restart: ``make demo`` runs it.

Run with ``make demo`` or ``python examples/processor_pipeline.py`` (uses ./session_data, the
command-line tool's default store, so ``session-persistence ls`` shows what it stored; the other
examples keep to directories of their own).

A stream of simulated assist requests (Sentient-style: ULID ids, a chat per activity) is
handled by a small processor. Each chat is a ``DefaultSession`` managed by a
``SessionPersistenceManager`` on the default filesystem store (``./session_data``): every
request and its response are added to the session and auto-persisted in the background.

Halfway through, the pipeline stops (as a deploy or a crash would stop it) and a new manager
starts on the same directory. It finds this run's chats in the store and resumes each one
after the last request it had stored, so nothing is handled twice and nothing is lost. A
summary table of what was stored ends the run.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import UTC, datetime

from ulid import ULID

from session_persistence import (
    DefaultSession,
    Interaction,
    InteractionMessage,
    SessionFilter,
    SessionObject,
    SessionPersistenceConfig,
    SessionPersistenceManager,
)

PROCESSOR = "assist-pipeline"
QUESTIONS = [
    "What's the weather in Paris?",
    "And tomorrow?",
    "Should I take an umbrella?",
    "Book a table for two at 8pm.",
    "Summarize my unread email.",
    "Translate 'good morning' to Italian.",
]


@dataclass(frozen=True)
class AssistRequest:
    """A simulated Sentient AssistRequest: ULID ids and the user's prompt."""

    id: ULID
    chat_id: ULID
    prompt: str


def request_stream(chats: list[ULID], per_chat: int, rng: random.Random) -> list[AssistRequest]:
    """Requests of several chats, interleaved as they would arrive."""
    pending = {chat: [QUESTIONS[i % len(QUESTIONS)] for i in range(per_chat)] for chat in chats}
    stream = []
    while pending:
        chat = rng.choice(sorted(pending))
        stream.append(AssistRequest(ULID(), chat, pending[chat].pop(0)))
        if not pending[chat]:
            del pending[chat]
    return stream


def answer(prompt: str) -> str:
    """The 'model': deterministic and instant."""
    return f"(answer to: {prompt.lower()})"


class Processor:
    """Handles assist requests; one managed DefaultSession per chat."""

    def __init__(self, manager: SessionPersistenceManager, run_id: str) -> None:
        self.manager = manager
        self.run_id = run_id
        self.sessions: dict[ULID, DefaultSession] = {}
        self.handled: dict[ULID, set[ULID]] = {}

    async def resume(self) -> int:
        """Load this run's chats from the store; return how many were found."""
        stored = await self.manager.list_sessions(
            SessionFilter(processor_id=PROCESSOR, metadata={"run": self.run_id})
        )
        for record in stored:
            session = await self.manager.load_managed_session(record.session_id)
            assert session is not None
            chat = session.activity_id
            assert isinstance(chat, ULID)
            self.sessions[chat] = session
            self.handled[chat] = {i.request.event["id"] for i in session.interactions}
        return len(stored)

    async def handle(self, request: AssistRequest) -> bool:
        """Answer one request; return False if it had been handled before the restart."""
        if request.id in self.handled.get(request.chat_id, set()):
            return False
        session = self.sessions.get(request.chat_id)
        if session is None:
            session = await self.manager.create_managed_session(
                SessionObject(PROCESSOR, activity_id=request.chat_id, request_id=request.id),
                metadata={"run": self.run_id, "chat": str(request.chat_id)},
                tags=["demo"],
            )
            self.sessions[request.chat_id] = session
        session.add_interaction(  # auto-persisted shortly after, in the background
            Interaction(
                request=InteractionMessage(
                    event={"id": request.id, "chat_id": request.chat_id, "prompt": request.prompt},
                    sender="user",
                    recipients={PROCESSOR},
                ),
                responses=[
                    InteractionMessage(event={"text": answer(request.prompt)}, sender=PROCESSOR)
                ],
            )
        )
        self.handled.setdefault(request.chat_id, set()).add(request.id)
        await asyncio.sleep(0.005)  # the work between requests
        return True


async def main() -> None:
    rng = random.Random(7)
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
    stream = request_stream([ULID() for _ in range(4)], per_chat=5, rng=rng)
    stop_at = len(stream) * 3 // 5
    config = SessionPersistenceConfig(
        store_type="filesystem", filesystem_base_dir="./session_data", auto_persist_delay=0.05
    )

    print(f"run {run_id}: {len(stream)} requests in 4 chats, store ./session_data")
    async with SessionPersistenceManager(config) as manager:
        processor = Processor(manager, run_id)
        for request in stream[:stop_at]:
            await processor.handle(request)
        stats = await manager.get_stats()
        print(f"first process: handled {stop_at} requests, {stats.persist_count} writes, stopping")

    print("restart: a new manager on the same directory")
    async with SessionPersistenceManager(config) as manager:
        processor = Processor(manager, run_id)
        found = await processor.resume()
        handled = [await processor.handle(request) for request in stream]
        print(
            f"second process: resumed {found} chats, skipped {handled.count(False)} requests "
            f"already stored, handled {handled.count(True)}"
        )
        ids = [s.session_id for s in processor.sessions.values()]

    async with SessionPersistenceManager(config) as manager:
        print()
        print(f"{'session':<27} {'chat':<27} {'interactions':>12} {'version':>7}  last update")
        total = 0
        for session_id in ids:
            assert session_id is not None
            summary = await manager.get_session_summary(session_id)
            stored = await manager.get_session(session_id)
            assert summary is not None
            assert stored is not None
            total += summary.interaction_count
            print(
                f"{session_id:<27} {stored.metadata['chat']:<27} {summary.interaction_count:>12} "
                f"{summary.version:>7}  {summary.updated_at:%H:%M:%S.%f}"
            )
        assert total == len(stream), "every request is stored exactly once"
        print(f"{len(ids)} sessions, {total} interactions for {len(stream)} requests: none lost")
        print(f"the store now holds {await manager.count_sessions()} live session(s) in all")


if __name__ == "__main__":
    asyncio.run(main())
