"""Fixtures shared by every conformance test class."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from ulid import ULID

from ..config import SessionStoreConfig
from ..models import Interaction, InteractionMessage, SessionObject
from ..stores.base import SessionStore

__all__ = ["FakeClock", "StoreTestBase", "eventually", "interaction", "session_object"]


class FakeClock:
    """A clock that stands still until told to move: expiry without sleeping.

    Pass it as ``SessionStoreConfig(clock=...)``; call :meth:`advance` to move time forward.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward and return the new time."""
        self.now += timedelta(seconds=seconds)
        return self.now


def session_object(processor_id: str = "proc-1", interactions: int = 0) -> SessionObject:
    """Return a Sentient-style session object with ULID ids and ``interactions`` interactions."""
    return SessionObject(
        processor_id=processor_id,
        activity_id=ULID(),
        request_id=ULID(),
        interactions=[interaction(f"message {i}") for i in range(interactions)],
    )


def interaction(text: str = "hello", *, responses: int = 1) -> Interaction:
    """Return an interaction with a request carrying ``text`` and ``responses`` responses."""
    return Interaction(
        request=InteractionMessage(
            event={"content": text, "id": ULID()}, sender="user", recipients={"assistant"}
        ),
        responses=[
            InteractionMessage(event={"content": f"reply {i} to {text}"}, sender="assistant")
            for i in range(responses)
        ],
    )


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    within: float = 60.0,
    interval: float = 0.01,
) -> None:
    """Wait until ``condition()`` is true, for background work (timers, other processes).

    The deadline is generous on purpose: it only bounds a test that would otherwise hang, so a
    busy machine makes the test slower, never wrong. Nothing here measures how soon.

    Args:
        condition: A callable returning a bool, or an awaitable of one; called until true.
        within: Seconds before giving up.
        interval: Seconds between calls.

    Raises:
        TimeoutError: ``condition`` stayed false for ``within`` seconds.
    """
    async with asyncio.timeout(within):
        while True:
            result = condition()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await asyncio.sleep(interval)


class StoreTestBase(abc.ABC):
    """Base of every conformance class: subclass and implement :meth:`make_store`.

    Each test gets a fresh, empty store built by :meth:`make_store` in a fresh temporary
    directory, with a :class:`FakeClock` so expiry is tested without sleeping.
    """

    pytestmark = pytest.mark.asyncio

    @abc.abstractmethod
    def make_store(self, config: SessionStoreConfig, path: Path) -> SessionStore:
        """Return a new, not yet initialized store using ``config``, keeping files in ``path``."""

    @pytest.fixture
    def clock(self) -> FakeClock:
        """The clock every store of the test reads."""
        return FakeClock()

    @pytest_asyncio.fixture
    async def open_store(
        self, tmp_path: Path, clock: FakeClock
    ) -> AsyncIterator[Callable[..., Any]]:
        """Return ``async open(**config) -> store``; every store opened is shut down after."""
        opened: list[SessionStore] = []
        counter = 0

        async def open_(**options: Any) -> SessionStore:
            nonlocal counter
            counter += 1
            options.setdefault("clock", clock)
            directory = tmp_path / f"store-{counter}"
            directory.mkdir()
            store = self.make_store(SessionStoreConfig(**options), directory)
            await store.initialize()
            opened.append(store)
            return store

        yield open_
        for store in opened:
            with contextlib.suppress(Exception):
                await store.shutdown()

    @pytest_asyncio.fixture
    async def store(self, open_store: Callable[..., Any]) -> SessionStore:
        """A fresh store with the default configuration (TTL one hour)."""
        opened: SessionStore = await open_store()
        return opened
