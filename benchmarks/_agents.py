"""Our stores against the store agent developers use today: ``openai-agents``' ``SQLiteSession``.

``SQLiteSession(session_id, db_path=<file>)`` is configured exactly as the SDK does by
default for a file: it sets ``journal_mode=WAL`` itself and leaves ``synchronous`` at SQLite's
default, which is ``FULL`` (2); every ``add_items`` is one transaction committed in a worker
thread (``asyncio.to_thread``). The result rows record the journal mode and ``synchronous``
level the SDK's database had.

Both sides hold the same conversation: exchange *n* is a user request and an assistant
response (two chat-message dicts, :func:`_targets.exchange_items`). The SDK holds them as two
items; our stores hold them as one interaction with one response (:func:`_targets.exchange`).
"At N" means N exchanges held: N interactions for us, 2N items for the SDK.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from pathlib import Path
from typing import Any

from _measure import Result, alternate, summarize, timed
from _sizes import Sizes, opened, per_round
from _targets import Ours, exchange, exchange_items, make_target

from session_persistence.testing import session_object

__all__ = ["PEER", "exchanges", "history_reads"]

PEER = "openai-agents SQLiteSession"


class _Conversation:
    """One conversation held ``held`` exchanges deep, on one of our stores or the SDK's."""

    def __init__(self, name: str, root: Path, held: int) -> None:
        self.name = name
        self.held = held
        self.root = root
        self.sid = ""
        self.ours: Ours | None = None
        self.peer: Any = None

    async def open(self) -> None:
        """Create the storage and the conversation's first ``held`` exchanges."""
        if self.name == PEER:
            from agents import SQLiteSession

            self.root.mkdir(parents=True, exist_ok=True)
            self.peer = SQLiteSession(f"bench-{self.held}", db_path=self.root / "agents.db")
            items = [item for n in range(self.held) for item in exchange_items(n)]
            await self.peer.add_items(items)
            return
        target = make_target(self.name, self.root)
        assert isinstance(target, Ours)
        self.ours = target
        await target.open()
        start = dataclasses.replace(
            session_object(), interactions=[exchange(n) for n in range(self.held)]
        )
        created = await target.store.create_session(start)
        await target.store.optimize()  # the long history is in the file, not only in memory
        self.sid = created.session_id

    async def close(self) -> None:
        """Close the store or the SDK session."""
        if self.peer is not None:
            self.peer.close()
        if self.ours is not None:
            await self.ours.close()

    async def append(self, number: int) -> None:
        """Append exchange ``number``: one interaction, or the SDK's two items."""
        if self.peer is not None:
            await self.peer.add_items(list(exchange_items(number)))
        else:
            assert self.ours is not None
            await self.ours.store.append_interactions(self.sid, exchange(number))

    async def read(self) -> int:
        """Read the whole history, every item of it; return how many exchanges it holds.

        The SDK's ``get_items`` decodes every item; our reads copy interactions only as they
        are read (``CopyOnRead``), so ours walks every interaction and its request, or a
        ``len()`` alone would be measured against the SDK's full decode.
        """
        if self.peer is not None:
            return len(await self.peer.get_items()) // 2
        assert self.ours is not None
        session = await self.ours.store.get_session(self.sid)
        assert session is not None
        return sum(1 for item in session.interactions if item.request is not None)

    def settings(self) -> dict[str, Any]:
        """The SDK database's journal mode and a fresh connection's ``synchronous`` level."""
        if self.peer is None:
            return {"held": self.held}
        db = sqlite3.connect(self.root / "agents.db")
        try:
            (mode,) = db.execute("PRAGMA journal_mode").fetchone()
            (level,) = db.execute("PRAGMA synchronous").fetchone()
        finally:
            db.close()
        return {"held": self.held, "journal_mode": mode, "synchronous": level}


def _conversations(root: Path, held: int, kind: str) -> dict[str, _Conversation]:
    names = ("filesystem/full", "sqlite/full", PEER)
    return {name: _Conversation(name, root / f"{kind}-{held}-{i}", held) for i, name in
            enumerate(names)}  # fmt: skip


async def exchanges(root: Path, sizes: Sizes) -> list[Result]:
    """Append one exchange (a request and one response) to a conversation of N exchanges."""
    results = []
    for held in sizes.history_at:
        sides = _conversations(root, held, "append")
        async with opened(sides.values()):
            pooled = await alternate(
                {
                    name: timed(
                        lambda i, c=c: c.append(1_000_000 + i), per_round(sizes.ops, sizes.rounds)
                    )
                    for name, c in sides.items()
                },
                sizes.rounds,
            )
            settings = {name: c.settings() for name, c in sides.items()}
        results += [
            summarize(f"append one exchange at {held:,}", name, p.samples, **settings[name])
            for name, p in pooled.items()
        ]
    return results


async def history_reads(root: Path, sizes: Sizes) -> list[Result]:
    """Read a whole conversation of N exchanges right after appending one (no stale cache).

    Each timed read follows an untimed append, so a cache must show the write; the read's
    length is checked against it.
    """
    results = []
    for held in sizes.history_at:
        sides = _conversations(root, held, "history")
        async with opened(sides.values()):

            def side(conversation: _Conversation) -> Any:
                async def chunk(_round: int) -> list[float]:
                    samples = []
                    for _ in range(per_round(sizes.history_reads, sizes.rounds)):
                        conversation.held += 1
                        await conversation.append(conversation.held)
                        start = time.perf_counter()
                        seen = await conversation.read()
                        samples.append(time.perf_counter() - start)
                        assert seen == conversation.held, (conversation.name, seen)
                    return samples

                return chunk

            pooled = await alternate({n: side(c) for n, c in sides.items()}, sizes.rounds)
            settings = {name: {**c.settings(), "held": held} for name, c in sides.items()}
        results += [
            summarize(f"read history after a write at {held:,}", name, p.samples, **settings[name])
            for name, p in pooled.items()
        ]
    return results
