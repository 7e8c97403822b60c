"""``WriteGate``: writers pass together; a freeze holds them all off and waits for the rest."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

__all__ = ["WriteGate"]


class WriteGate:
    """Lets any number of writers through at once, or none while the store is frozen.

    A backup freezes the store to read one consistent instant: :meth:`frozen` closes the gate,
    waits until the writers already through have finished, runs the block, and reopens. Writers
    arriving meanwhile wait at :meth:`enter`. Passing an open gate costs two attribute checks.
    """

    def __init__(self) -> None:
        self._active = 0
        self._open = asyncio.Event()
        self._open.set()
        self._drained = asyncio.Event()
        self._drained.set()
        self._freezers = asyncio.Lock()

    async def enter(self) -> None:
        """Wait until the gate is open, then count this writer in."""
        while not self._open.is_set():
            await self._open.wait()
        self._active += 1
        self._drained.clear()

    def leave(self) -> None:
        """Count a writer out (call once per :meth:`enter`, in ``finally``)."""
        self._active -= 1
        if self._active == 0:
            self._drained.set()

    @contextlib.asynccontextmanager
    async def frozen(self) -> AsyncIterator[None]:
        """Hold off every writer while the block runs (one freeze at a time)."""
        async with self._freezers:
            self._open.clear()
            try:
                await self._drained.wait()
                yield
            finally:
                self._open.set()
