"""Event listeners: registration, and delivery that never fails the write.

Listeners may be plain functions or coroutine functions. They are called after the change is
durable (after its transaction committed), in registration order, each with its *own copy* of
the session, so a listener that mutates what it receives affects nobody else. An exception in a
listener is logged (logger ``session_persistence.events``) and does not fail the write or stop
the other listeners. Delivery happens before the writing call returns, so a slow listener slows
the writer: hand long work to a task of your own.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeAlias

from ._copy import clone_value

__all__ = ["EventBus", "EventName", "Listener", "Unsubscribe"]

logger = logging.getLogger(__name__)

EventName: TypeAlias = Literal[
    "session_created",
    "session_updated",
    "session_deleted",
    "session_expired",
    "backup_created",
    "session_recreated",  # fired by the manager: an expired managed session written back
]

#: A callback: sync, or returning an awaitable.
Listener: TypeAlias = Callable[..., Awaitable[None] | None]

#: Calling it removes the listener; calling it again does nothing.
Unsubscribe: TypeAlias = Callable[[], None]


class EventBus:
    """Holds the listeners of one store and delivers events to them."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {}

    def subscribe(self, event: EventName, callback: Listener) -> Unsubscribe:
        """Register ``callback`` for ``event``; return a function that unregisters it.

        Raises:
            TypeError: ``callback`` is not callable.
        """
        if not callable(callback):
            raise TypeError(f"listener must be callable, got {callback!r}")
        listeners = self._listeners.setdefault(event, [])
        listeners.append(callback)

        def unsubscribe() -> None:
            # Compare by identity: two equal bound methods are still two registrations.
            for index, registered in enumerate(listeners):
                if registered is callback:
                    del listeners[index]
                    return

        return unsubscribe

    def has_listeners(self, event: EventName) -> bool:
        """Return whether anything listens to ``event`` (lets callers skip building payloads)."""
        return bool(self._listeners.get(event))

    async def emit(self, event: EventName, *args: Any) -> None:
        """Call every listener of ``event`` with its own deep copy of ``args``, isolating errors."""
        for callback in list(self._listeners.get(event, ())):
            try:
                result = callback(*[clone_value(arg) for arg in args])
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("listener %r for %s raised; ignored", callback, event)
