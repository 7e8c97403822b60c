"""``watch``: events as they happen, other processes' writes included."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import click
from rich.markup import escape

from ..models import PersistedSession
from ._group import cli, command
from ._support import Output, StoreSpec, open_store

__all__ = ["watch_command"]


@cli.command("watch")
@click.option(
    "--timeout",
    "stop_after",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Stop after SECONDS.",
)
@click.option("--count", type=click.IntRange(min=1), help="Stop after N events.")
@command
async def watch_command(
    stop_after: float | None, count: int | None, *, spec: StoreSpec, output: Output
) -> int:
    """Print events as they happen, including other processes' writes (Ctrl-C stops)."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def event(kind: str, session: PersistedSession | None, session_id: str) -> None:
        item: dict[str, Any] = {"at": datetime.now(UTC), "event": kind, "session_id": session_id}
        if session is not None:
            item.update(
                processor_id=session.processor_id,
                version=session.version,
                interaction_count=len(session.interactions),
            )
        queue.put_nowait(item)

    async with open_store(spec, watch=True, read_only=True) as store:
        store.on_session_created(lambda s: event("created", s, s.session_id))
        store.on_session_updated(lambda new, old: event("updated", new, new.session_id))
        store.on_session_deleted(lambda sid: event("deleted", None, sid))
        store.on_session_expired(lambda s: event("expired", s, s.session_id))
        await store.count_sessions()  # following from here on
        following = getattr(store, "following", None)
        if following is not None:  # PostgreSQL: wait until its LISTEN connection is up
            await following()
        output.err.print(f"watching {spec} (Ctrl-C to stop)")
        seen = 0
        loop = asyncio.get_running_loop()
        deadline = None if stop_after is None else loop.time() + stop_after
        while count is None or seen < count:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                break
            try:
                async with asyncio.timeout(left):
                    item = await queue.get()
            except TimeoutError:
                break
            seen += 1
            if output.json:
                output.line(item)
                continue
            details = ""
            if "processor_id" in item:
                details = (
                    f" processor={escape(item['processor_id'])} version={item['version']} "
                    f"interactions={item['interaction_count']}"
                )
            stamp = item["at"].astimezone().strftime("%H:%M:%S.%f")[:-3]
            output.out.print(f"{stamp} {item['event']:<8} {item['session_id']}{details}")
    return 0
