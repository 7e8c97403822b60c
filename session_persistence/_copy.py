"""Fast deep copies of session values, so nothing returned or kept aliases anything else.

``copy.deepcopy`` is general but slow; sessions are mostly JSON-like trees of immutable leaves
(str, int, ULID, datetime, ...), so this walks lists, dicts, sets and tuples itself, shares the
immutable leaves, and falls back to ``copy.deepcopy`` only for other objects (registered user
types).

Copying is where values enter a store (and a ``DefaultSession``), so it is also the first
guard: the walk counts its depth, and a value nesting more than ``MAX_DEPTH`` levels, which no
document can hold, stops it before Python's recursion limit would. A value that contains itself
nests without end, so it stops there too, and :func:`~session_persistence.serialization.
nesting_error` then tells the two apart: either way a ``SerializationError`` naming the path,
never a ``RecursionError``.
"""

from __future__ import annotations

import contextlib
import copy
import enum
import gc
import operator
import threading
import uuid
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, SupportsIndex

from ulid import ULID

from .errors import SerializationError
from .models import Interaction, InteractionMessage, PersistedSession, SessionHeader
from .serialization import DEPTH_MESSAGE, MAX_DEPTH, nesting_error

_IMMUTABLE: frozenset[type[Any]] = frozenset(
    {str, int, float, bool, type(None), bytes, frozenset, uuid.UUID, Decimal}
    | {ULID, datetime, date, time, timedelta}
)


@contextlib.contextmanager
def no_gc_pauses() -> Iterator[None]:
    """Hold the cyclic garbage collector off while many long-lived objects are built.

    Building 100,000 headers, or copying 10,000 interactions, allocates hundreds of thousands
    of objects and none of them is garbage; the collector would otherwise walk the growing
    heap over and over (two thirds of the copy's time). Threads may overlap: the first in
    turns the collector off, the last out turns it back on (if it was on).
    """
    _PAUSES.enter()
    try:
        yield
    finally:
        _PAUSES.leave()


class _Pauses:
    """Pauses in progress in any thread; the last one out turns the collector back on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._resume = False

    def enter(self) -> None:
        with self._lock:
            if self._count == 0:
                self._resume = gc.isenabled()
                gc.disable()
            self._count += 1

    def leave(self) -> None:
        with self._lock:
            self._count -= 1
            if self._count == 0 and self._resume:
                gc.enable()


_PAUSES = _Pauses()


#: Copying this many items or more holds the garbage collector off (see no_gc_pauses).
_MANY = 256


class _TooDeep(Exception):
    """Internal: the copy went past ``MAX_DEPTH`` levels."""


def clone_value(value: Any, path: str = "") -> Any:
    """Return a deep copy of ``value`` that shares only immutable parts.

    Args:
        value: The value to copy.
        path: Where ``value`` sits in its session, the prefix of an error's path.

    Raises:
        SerializationError: ``value`` contains itself, or nests more than ``MAX_DEPTH``
            levels; ``.path`` says where.
    """
    if type(value) in _IMMUTABLE:
        return value
    try:
        return _clone(value, 0)
    except _TooDeep:
        pass
    raise nesting_error(value, path) or SerializationError(DEPTH_MESSAGE, path)


def _clone(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind in _IMMUTABLE:
        return value
    # Leaves are tested inline: most values are, and a call per leaf is the main cost.
    if kind is dict:
        if depth >= MAX_DEPTH:
            raise _TooDeep
        depth += 1
        return {
            key: item if type(item) in _IMMUTABLE else _clone(item, depth)
            for key, item in value.items()
        }
    if kind is list:
        if depth >= MAX_DEPTH:
            raise _TooDeep
        depth += 1
        return [item if type(item) in _IMMUTABLE else _clone(item, depth) for item in value]
    if kind is set:
        return set(value)  # members are hashable, hence treated as immutable
    if kind is tuple:
        if depth >= MAX_DEPTH:
            raise _TooDeep
        return tuple(_clone(item, depth + 1) for item in value)
    if kind is bytearray:
        return bytearray(value)
    if isinstance(value, enum.Enum):
        return value
    if kind is PersistedSession:
        return clone_session(value)
    try:
        return copy.deepcopy(value)
    except RecursionError as exc:  # a registered type nesting without end: too deep
        raise _TooDeep from exc


def _message(message: InteractionMessage) -> InteractionMessage:
    """Copy a message; raises ``_TooDeep`` (paths are worked out only when one is needed)."""
    # The usual shapes inline (an event dict, a set of recipients): copying long histories
    # is mostly this function.
    event, recipients = message.event, message.recipients
    if type(event) is dict:
        event = {k: v if type(v) in _IMMUTABLE else _clone(v, 1) for k, v in event.items()}
    elif type(event) not in _IMMUTABLE:
        event = _clone(event, 0)
    if type(recipients) is set:
        recipients = set(recipients)
    elif recipients is not None:
        recipients = _clone(recipients, 0)
    return InteractionMessage(event, message.sender, recipients)


def clone_message(message: InteractionMessage, path: str = "") -> InteractionMessage:
    """Return a deep copy of an interaction message.

    Raises:
        SerializationError: See :func:`clone_value`; ``path`` is the message's path.
    """
    try:
        return _message(message)
    except _TooDeep:
        pass
    clone_value(message.event, f"{path}.event".removeprefix("."))  # raises, naming the path
    clone_value(message.recipients, f"{path}.recipients".removeprefix("."))
    raise AssertionError("unreachable: one of the fields is too deep")  # pragma: no cover


def clone_interaction(interaction: Interaction, index: int = 0) -> Interaction:
    """Return a deep copy of an interaction, the ``index``-th of its session (for errors).

    Raises:
        SerializationError: See :func:`clone_value`.
    """
    try:
        return Interaction(
            request=_message(interaction.request),
            responses=[_message(response) for response in interaction.responses],
        )
    except _TooDeep:
        pass
    path = f"interactions[{index}]"  # the slow path: find the message, to name it
    clone_message(interaction.request, f"{path}.request")
    for number, response in enumerate(interaction.responses):
        clone_message(response, f"{path}.responses[{number}]")
    raise AssertionError("unreachable: one of the messages is too deep")  # pragma: no cover


def clone_interactions(interactions: list[Interaction], start: int = 0) -> list[Interaction]:
    """Return deep copies of ``interactions``, in order; the first is the ``start``-th.

    Raises:
        SerializationError: See :func:`clone_value`.
    """
    return [clone_interaction(item, start + i) for i, item in enumerate(interactions)]


def accessed(header: SessionHeader, when: datetime) -> SessionHeader:
    """``header`` with ``last_accessed_at=when``: ``dataclasses.replace``, five times faster.

    Shares metadata and tags with ``header``: headers are never mutated.
    """
    return SessionHeader(
        session_id=header.session_id,
        processor_id=header.processor_id,
        activity_id=header.activity_id,
        request_id=header.request_id,
        created_at=header.created_at,
        updated_at=header.updated_at,
        expires_at=header.expires_at,
        last_accessed_at=when,
        metadata=header.metadata,
        tags=header.tags,
        version=header.version,
        interaction_count=header.interaction_count,
        size_bytes=header.size_bytes,
    )


def clone_session(
    session: PersistedSession, last_accessed_at: datetime | None = None
) -> PersistedSession:
    """Return a deep copy of a persisted session, optionally with a newer access time."""
    return PersistedSession(
        session_id=session.session_id,
        processor_id=session.processor_id,
        activity_id=session.activity_id,
        request_id=session.request_id,
        interactions=clone_interactions(session.interactions),
        created_at=session.created_at,
        updated_at=session.updated_at,
        expires_at=session.expires_at,
        last_accessed_at=last_accessed_at or session.last_accessed_at,
        metadata=clone_value(session.metadata),
        tags=list(session.tags),
        version=session.version,
    )


class CopyOnRead(list[Interaction]):
    """A returned session's interactions: a list whose items are copied when first read.

    A read must hand the caller objects of its own, but deep-copying a long history on every
    read costs more than the read itself. This list starts out holding the store's own
    (never mutated) interactions and replaces each with a deep copy the first time it is
    read through ``[i]`` or a slice; iterating, copying, pickling, concatenating or any other
    change copies every item not copied yet first. So nothing the caller can reach aliases
    the store's objects, and a caller that reads only ``len()`` or the last few items pays
    only for those. Comparisons (``==``, ``<``, ``in``, ``index``, ``count``) copy everything
    first too, as they call the other operand's ``__eq__`` with our items.

    One way around it remains, and it is documented rather than closed: C code that reads a
    list's items directly instead of through its methods (``orjson.dumps`` does) sees the
    store's objects for the items not read yet. It only reads them, unless it calls back into
    Python with them: ``orjson.dumps(interactions, default=f)`` hands ``f`` the store's
    non-JSON values (a set of recipients, say), which ``f`` must not change. Call ``list()``
    on the interactions first to hand such code copies.

    Appends, inserts, pops, removals and assignments of single items keep the copied marks in
    step; anything else copies the rest first. It is a ``list`` in every other respect, and
    one made from it in any way (``type(x)(...)``, ``copy``, ``pickle``, ``x + y``) is a plain
    ``list``.
    """

    _shared: bytearray | None = None  # 1 where the item is still the store's own

    def __new__(cls, *args: Any, **kwargs: Any) -> list[Interaction]:  # type: ignore[misc]
        # Built like a list (``type(x)(items)``, as ``dataclasses.asdict`` and copying do),
        # it is a plain list: only :meth:`lend` makes one of these.
        return list(*args, **kwargs)

    @classmethod
    def lend(cls, items: list[Interaction]) -> CopyOnRead:
        """A list of ``items`` (the store's own), each copied when first read."""
        lent = list.__new__(cls)
        list.extend(lent, items)
        lent._shared = bytearray(b"\x01") * len(items)
        return lent

    def own(self) -> None:
        """Copy every item not copied yet (after this it is a plain list in all but type)."""
        shared = self._shared
        if shared is None:
            return
        with no_gc_pauses() if len(shared) >= _MANY else contextlib.nullcontext():
            if 0 not in shared:  # nothing copied yet: one pass
                try:
                    copies = [
                        Interaction(_message(i.request), list(map(_message, i.responses)))
                        for i in list.__iter__(self)
                    ]
                except _TooDeep:  # (then the slow path below names the item)
                    pass
                else:
                    list.__setitem__(self, slice(None), copies)
                    self._shared = None
                    return
            get, put = list.__getitem__, list.__setitem__
            for index, flag in enumerate(shared):
                if flag:
                    put(self, index, clone_interaction(get(self, index), index))
        self._shared = None

    def __getitem__(self, index: Any) -> Any:
        shared = self._shared
        if shared is None:
            return list.__getitem__(self, index)
        if type(index) is slice:  # a plain list of the slice's items, copied as needed
            return [self[i] for i in range(*index.indices(len(self)))]
        if type(index) is not int:
            self.own()
            return list.__getitem__(self, index)
        item = list.__getitem__(self, index)
        position = index if index >= 0 else index + len(self)
        # (an item appended by C code that bypasses these methods, as heapq does, has no mark:
        # it is the caller's own)
        if position < len(shared) and shared[position]:
            item = clone_interaction(item, position)
            list.__setitem__(self, position, item)
            shared[position] = 0
        return item

    def __setitem__(self, index: Any, value: Any) -> None:
        if self._shared is not None and type(index) is int:
            list.__setitem__(self, index, value)
            self._shared[index] = 0
            return
        self.own()
        list.__setitem__(self, index, value)

    def __delitem__(self, index: Any) -> None:
        if self._shared is not None and type(index) is int:
            list.__delitem__(self, index)
            del self._shared[index]
            return
        self.own()
        list.__delitem__(self, index)

    def __iter__(self) -> Iterator[Interaction]:
        self.own()
        return list.__iter__(self)

    def __reversed__(self) -> Iterator[Interaction]:
        self.own()
        return list.__reversed__(self)

    def append(self, item: Interaction) -> None:
        list.append(self, item)
        if self._shared is not None:
            self._shared.append(0)

    def extend(self, items: Iterable[Interaction]) -> None:
        if self._shared is None:
            list.extend(self, items)
            return
        added = list(items)  # (items may be this list: reading it copies the rest first)
        list.extend(self, added)
        if self._shared is not None:
            self._shared.extend(bytes(len(added)))

    def insert(self, index: SupportsIndex, item: Interaction) -> None:
        if self._shared is None:
            list.insert(self, index, item)
            return
        size = len(self)
        at = operator.index(index)
        position = min(max(at + size if at < 0 else at, 0), size)
        list.insert(self, position, item)
        self._shared.insert(position, 0)

    def pop(self, index: SupportsIndex = -1) -> Interaction:
        if self._shared is None:
            return list.pop(self, index)
        at = operator.index(index)
        item: Interaction = self[at]  # (copied, if it was not yet)
        del self[at]
        return item

    def remove(self, item: Interaction) -> None:
        del self[self.index(item)]

    def clear(self) -> None:
        list.clear(self)
        self._shared = None

    def copy(self) -> list[Interaction]:
        self.own()
        return list.copy(self)

    def sort(self, *args: Any, **kwargs: Any) -> None:
        self.own()
        list.sort(self, *args, **kwargs)

    def reverse(self) -> None:
        self.own()
        list.reverse(self)

    def __add__(self, other: Any) -> Any:
        self.own()
        return list.__add__(self, other)

    def __radd__(self, other: Any) -> Any:
        self.own()
        return list(other) + list.copy(self)

    def __iadd__(self, other: Iterable[Interaction]) -> CopyOnRead:  # type: ignore[override,misc]
        self.extend(other)
        return self

    def __mul__(self, count: SupportsIndex) -> list[Interaction]:
        self.own()
        return list.__mul__(self, count)

    __rmul__ = __mul__

    def __imul__(self, count: SupportsIndex) -> CopyOnRead:
        self.own()
        list.__imul__(self, count)
        return self

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        self.own()
        return (list, (list.copy(self),))

    # Comparisons call the other operand's methods with our items: copy first.

    def __eq__(self, other: object) -> bool:
        self.own()
        return list.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        self.own()
        return list.__ne__(self, other)

    def __lt__(self, other: list[Interaction]) -> bool:
        self.own()
        return list.__lt__(self, other)

    def __le__(self, other: list[Interaction]) -> bool:
        self.own()
        return list.__le__(self, other)

    def __gt__(self, other: list[Interaction]) -> bool:
        self.own()
        return list.__gt__(self, other)

    def __ge__(self, other: list[Interaction]) -> bool:
        self.own()
        return list.__ge__(self, other)

    def __contains__(self, item: object) -> bool:
        self.own()
        return list.__contains__(self, item)

    def index(self, *args: Any) -> int:
        self.own()
        return list.index(self, *args)

    def count(self, item: Interaction) -> int:
        self.own()
        return list.count(self, item)

    __hash__ = None


def lend_session(
    session: PersistedSession, last_accessed_at: datetime | None = None
) -> PersistedSession:
    """Return ``session`` (the store's own) as the caller's, copying interactions lazily.

    :func:`clone_session`, except that the interactions are copied as they are read
    (:class:`CopyOnRead`); metadata and tags are copied at once.
    """
    return PersistedSession(
        session_id=session.session_id,
        processor_id=session.processor_id,
        activity_id=session.activity_id,
        request_id=session.request_id,
        interactions=CopyOnRead.lend(session.interactions),
        created_at=session.created_at,
        updated_at=session.updated_at,
        expires_at=session.expires_at,
        last_accessed_at=last_accessed_at or session.last_accessed_at,
        metadata=clone_value(session.metadata),
        tags=list(session.tags),
        version=session.version,
    )
