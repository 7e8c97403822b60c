"""The OpenAI Agents SDK's ``Session`` protocol on any session-persistence store.

``AgentsSession(session_id, store)`` is a drop-in ``session=`` for ``Runner.run``: the SDK keeps
a conversation's items (user messages, model outputs, tool calls) in one of our sessions, keyed
by the SDK's ``session_id``, on any store, filesystem, SQLite or your own. Install the
``agents`` extra (``pip install 'session-persistence[agents]'``).

How items are stored, as the store's interactions (one per item, in order):

* ``add_items`` **appends**: one ``append_interactions`` call, never a rewrite of the history,
  so it costs the same however long the conversation is, and concurrent writers (coroutines or
  processes) never lose each other's items. The session is created on first use, atomically
  (``get_or_create_session``), as processor ``"openai-agents"``.
* ``pop_item`` appends a small *pop record* naming the item it removes, conditionally on the
  version it read (``expected_version``), and retries on a conflict: of any number of
  concurrent pops, each removes exactly one item, and never the same one.
* ``get_items`` reads the session's interactions and replays them: the items, minus those
  popped. With a ``limit`` it reads only the history's tail (``get_interactions``), longer
  only if pop records ate into it, so its cost follows ``limit``, not the history's length.
* ``clear_session`` empties the session's interactions (one write; the record, its metadata
  and its version history remain).

Each item is the ``event`` of its interaction's request message, with the item's ``role`` as
``sender`` (``None`` for items without one); a pop record's sender is
:data:`POP_SENDER`, which no item's role can be. Items are JSON-like dicts, so they round-trip
exactly, and ``session-persistence show`` displays them.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from typing import Any, cast

try:
    from agents.items import TResponseInputItem
    from agents.memory.session_settings import (
        SessionSettings,
        coerce_session_settings,
        resolve_session_limit,
    )
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "session_persistence.integrations.openai_agents needs the OpenAI Agents SDK: "
        "pip install 'session-persistence[agents]'"
    ) from exc

from .._ids import validate_session_id
from ..errors import InvalidInputError, SessionConflictError, SessionNotFoundError
from ..models import Interaction, InteractionMessage, SessionObject
from ..stores.base import SessionStore

__all__ = ["POP_SENDER", "PROCESSOR_ID", "AgentsSession"]

#: The ``processor_id`` of sessions created by :class:`AgentsSession`.
PROCESSOR_ID = "openai-agents"

#: The sender of a pop record (a role never contains ``:``).
POP_SENDER = "session_persistence:pop"

_POP_ATTEMPTS = 100


class AgentsSession:
    """The OpenAI Agents SDK ``Session`` protocol, kept in a session-persistence store.

    Pass it as ``Runner.run(agent, input, session=AgentsSession("chat-42", store))``. The store
    must be open; the session is created on the first ``add_items``.

    Args:
        session_id: The SDK's session id, used as our session id (a ULID or
            ``[A-Za-z0-9_-]{1,128}``).
        store: Any open :class:`~session_persistence.SessionStore`.
        session_settings: The SDK's ``SessionSettings`` (or a dict of them): ``limit`` is the
            default for :meth:`get_items`.

    Attributes:
        session_id: As given.
        session_settings: As given (coerced to ``SessionSettings``), or ``None``.

    Raises:
        InvalidSessionIdError: ``session_id`` is not a valid id.
        InvalidInputError: ``store`` is not a store.
    """

    def __init__(
        self,
        session_id: str,
        store: SessionStore,
        *,
        session_settings: SessionSettings | Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(store, SessionStore):
            raise InvalidInputError(f"store must be a SessionStore, got {type(store).__name__}")
        self.session_id: str = validate_session_id(session_id)
        self.session_settings: SessionSettings | None = (
            None
            if session_settings is None
            else coerce_session_settings(
                session_settings
                if isinstance(session_settings, SessionSettings)
                else dict(session_settings)
            )
        )
        self._store = store

    def __repr__(self) -> str:
        return f"<AgentsSession {self.session_id!r} on {self._store!r}>"

    @property
    def store(self) -> SessionStore:
        """The store the items are kept in."""
        return self._store

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """Return the conversation's items, oldest first.

        Args:
            limit: Return only the newest ``limit`` items (still oldest first). ``None``:
                ``session_settings.limit`` if set, else every item.
        """
        effective = resolve_session_limit(limit, self.session_settings)
        if effective is not None and effective <= 0:
            return []
        if effective is None:
            history = await self._store.get_interactions(self.session_id)
            items = [] if history is None else [item for _, item in _replay(history)]
            return cast("list[TResponseInputItem]", items)
        return cast("list[TResponseInputItem]", await self._newest(effective))

    async def _newest(self, limit: int) -> list[Any]:
        """The newest ``limit`` items, reading only the history's tail.

        A tail read from position ``start`` replays correctly on its own: an item's pop
        record always comes after it, so every pop of an item in the tail is in the tail
        (pops in the tail of older items change nothing there). If the tail holds fewer than
        ``limit`` live items (pops ate them, or the history was rewritten shorter since its
        length was read), a longer tail is read, up to the whole history.
        """
        span = 2 * limit + 8  # room for a few pop records before reading more
        while True:
            header = await self._store.get_session_header(self.session_id)
            if header is None:
                return []
            start = max(header.interaction_count - span, 0)
            tail = await self._store.get_interactions(self.session_id, offset=start)
            if tail is None:
                return []
            live = [item for _, item in _replay(tail, start)]
            if len(live) >= limit or start == 0:
                return live[-limit:]
            span *= 4

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append items to the conversation (one append; the history is not rewritten).

        Raises:
            InvalidInputError: An item is not a dict.
            SerializationError: An item holds a value that cannot be stored.
        """
        if not items:
            return
        new = [_item_interaction(item) for item in items]
        while True:
            try:
                await self._store.append_interactions(self.session_id, *new)
                return
            except SessionNotFoundError:
                pass
            # First use (or the record expired): create it with the items, atomically. If
            # another writer created it first, append to theirs.
            _, created = await self._store.get_or_create_session(
                self.session_id,
                SessionObject(PROCESSOR_ID, self.session_id, self.session_id, new),
            )
            if created:
                return

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the newest item (``None`` if there is none).

        Atomic: of concurrent pops (in any process), each removes a different item.
        """
        for attempt in range(_POP_ATTEMPTS):
            stored = await self._store.get_session(self.session_id)
            if stored is None:
                return None
            live = _replay(stored.interactions)
            if not live:
                return None
            index, item = live[-1]
            marker = Interaction(InteractionMessage({"pop": index}, sender=POP_SENDER))
            try:
                await self._store.append_interactions(
                    self.session_id, marker, expected_version=stored.version
                )
            except SessionConflictError:
                # Someone else wrote meanwhile: read again. Randomized backoff keeps many
                # contending pops from retrying in lockstep.
                await asyncio.sleep(random.uniform(0, min(0.001 * 2**attempt, 0.05)))
                continue
            except SessionNotFoundError:
                return None
            return cast("TResponseInputItem", item)
        raise SessionConflictError(
            self.session_id,
            None,
            None,
            f"pop_item on {self.session_id!r} met a concurrent write {_POP_ATTEMPTS} times "
            "in a row; retry it",
        )

    async def clear_session(self) -> None:
        """Remove every item (the session record remains, empty)."""
        try:
            await self._store.update_session(self.session_id, {"interactions": []})
        except SessionNotFoundError:
            return


def _item_interaction(item: object) -> Interaction:
    if not isinstance(item, dict):
        raise InvalidInputError(
            f"an Agents SDK item must be a dict (a TResponseInputItem), got {type(item).__name__}"
        )
    role = item.get("role")
    sender = role if isinstance(role, str) and role != POP_SENDER else None
    return Interaction(InteractionMessage(item, sender=sender))


def _replay(interactions: Sequence[Interaction], start: int = 0) -> list[tuple[int, Any]]:
    """Return ``(position, item)`` for every item not popped, oldest first.

    ``interactions`` are the history from position ``start`` on.
    """
    live: dict[int, Any] = {}
    for position, interaction in enumerate(interactions, start):
        message = interaction.request
        event = message.event
        if message.sender == POP_SENDER and isinstance(event, dict):
            popped = event.get("pop")
            if isinstance(popped, int):
                live.pop(popped, None)
        else:
            live[position] = event
    return list(live.items())
