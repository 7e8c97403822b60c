"""Filtering, search, sorting and pagination over session headers, written once for all stores.

These functions work on :class:`~session_persistence.models.SessionHeader` objects (everything
but the interactions), so a store answers queries from its index without parsing sessions.
Expiry is the caller's business: it passes ``now`` and the idle timeout to :func:`is_expired`.
"""

from __future__ import annotations

import dataclasses
import heapq
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from ulid import ULID

from .models import (
    Interaction,
    InteractionMessage,
    SessionFilter,
    SessionHeader,
    SessionQueryOptions,
)

__all__ = [
    "Search",
    "compile_filter",
    "is_expired",
    "matches_filter",
    "matches_search",
    "metadata_matches",
    "search_interactions",
    "sort_and_page",
    "value_contains",
]

_MISSING = object()


@dataclass(frozen=True, slots=True)
class Search:
    """A text search: ``needle`` (lower-cased), and whether interactions are searched too."""

    needle: str
    interactions: bool = False


class Expirable(Protocol):
    """Anything with the two fields expiry depends on (a header or a whole session)."""

    @property
    def expires_at(self) -> datetime | None: ...

    @property
    def last_accessed_at(self) -> datetime: ...


def is_expired(header: Expirable, now: datetime, idle_timeout: timedelta | None) -> bool:
    """Return whether the session is expired at ``now``.

    A session is expired when ``expires_at <= now``, or, with an idle timeout, when it was
    last read or written ``idle_timeout`` or longer ago.
    """
    if header.expires_at is not None and header.expires_at <= now:
        return True
    return idle_timeout is not None and header.last_accessed_at + idle_timeout <= now


def matches_filter(header: SessionHeader, flt: SessionFilter) -> bool:
    """Return whether ``header`` satisfies every condition of ``flt`` (expiry aside)."""
    if flt.processor_id is not None and not _id_in(header.processor_id, flt.processor_id):
        return False
    if flt.activity_id is not None and not _id_in(header.activity_id, flt.activity_id):
        return False
    if flt.request_id is not None and not _id_in(header.request_id, flt.request_id):
        return False
    if not _in_range(header.created_at, flt.created_after, flt.created_before):
        return False
    if not _in_range(header.updated_at, flt.updated_after, flt.updated_before):
        return False
    if flt.expires_after is not None and not (
        header.expires_at is None or header.expires_at > flt.expires_after
    ):
        return False
    if flt.expires_before is not None and not (
        header.expires_at is not None and header.expires_at < flt.expires_before
    ):
        return False
    count = header.interaction_count
    if flt.has_interactions is not None and (count > 0) != flt.has_interactions:
        return False
    if flt.interaction_count_min is not None and count < flt.interaction_count_min:
        return False
    if flt.interaction_count_max is not None and count > flt.interaction_count_max:
        return False
    if flt.metadata is not None and not metadata_matches(header.metadata, flt.metadata):
        return False
    if flt.tags is not None and not any(tag in header.tags for tag in flt.tags):
        return False
    return flt.tags_all is None or all(tag in header.tags for tag in flt.tags_all)


def compile_filter(flt: SessionFilter) -> Callable[[SessionHeader], bool]:
    """Return a predicate equal to ``matches_filter(header, flt)``, checking only what is set.

    Built once per query: for a filter with two conditions, each header costs two checks
    instead of walking every field of the filter (the difference on 100,000 headers is tens
    of milliseconds).
    """
    checks: list[Callable[[SessionHeader], bool]] = []
    for name in ("processor_id", "activity_id", "request_id"):
        wanted = getattr(flt, name)
        if wanted is None:
            continue
        texts = {str(wanted)} if isinstance(wanted, str | ULID) else {str(w) for w in wanted}
        checks.append(_id_check(name, frozenset(texts)))
    if flt.created_after is not None or flt.created_before is not None:
        after, before = flt.created_after, flt.created_before
        checks.append(lambda h: _in_range(h.created_at, after, before))
    if flt.updated_after is not None or flt.updated_before is not None:
        u_after, u_before = flt.updated_after, flt.updated_before
        checks.append(lambda h: _in_range(h.updated_at, u_after, u_before))
    remaining = dataclasses.replace(
        flt,
        processor_id=None,
        activity_id=None,
        request_id=None,
        created_after=None,
        created_before=None,
        updated_after=None,
        updated_before=None,
        tags=None,
    )
    if remaining != SessionFilter(include_expired=flt.include_expired):
        checks.append(lambda h: matches_filter(h, remaining))
    if flt.tags is not None:
        tags = frozenset(flt.tags)
        checks.append(lambda h: not tags.isdisjoint(h.tags))
    if not checks:
        return lambda h: True
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda h: first(h) and second(h)
    return lambda h: all(check(h) for check in checks)


def _id_check(name: str, texts: frozenset[str]) -> Callable[[SessionHeader], bool]:
    """A check that the id field ``name`` is one of ``texts`` (ULIDs as their strings)."""
    if name == "processor_id":  # always a str: no conversion
        return lambda h: h.processor_id in texts
    field = operator.attrgetter(name)
    return lambda h: str(field(h)) in texts


def _id_in(value: ULID | str, wanted: ULID | str | Sequence[ULID | str]) -> bool:
    # ULIDs and their string forms name the same id.
    if isinstance(wanted, str | ULID):
        return str(value) == str(wanted)
    text = str(value)
    return any(text == str(item) for item in wanted)


def _in_range(value: datetime, after: datetime | None, before: datetime | None) -> bool:
    return (after is None or value > after) and (before is None or value < before)


def metadata_matches(metadata: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether every key of ``wanted`` is in ``metadata`` with an equal value of its type."""
    for key, expected in wanted.items():
        actual = metadata.get(key, _MISSING)
        if actual is _MISSING or type(actual) is not type(expected) or actual != expected:
            return False
    return True


def matches_search(header: SessionHeader, needle: str) -> bool:
    """Case-insensitive substring search over ids, tags and (nested) metadata values.

    Args:
        header: The session header to look in.
        needle: The text to find, already lower-cased.
    """
    for text in (header.session_id, header.processor_id, header.activity_id, header.request_id):
        if needle in str(text).lower():
            return True
    if any(needle in tag.lower() for tag in header.tags):
        return True
    return value_contains(header.metadata, needle)


def search_interactions(interactions: Iterable[Interaction], needle: str) -> bool:
    """Return whether any message's event, sender or recipients contain ``needle``."""
    for interaction in interactions:
        for message in (interaction.request, *interaction.responses):
            if _message_contains(message, needle):
                return True
    return False


def _message_contains(message: InteractionMessage, needle: str) -> bool:
    if message.sender is not None and needle in message.sender.lower():
        return True
    return value_contains(message.event, needle) or value_contains(message.recipients, needle)


def value_contains(value: Any, needle: str) -> bool:
    """Return whether a scalar nested anywhere in ``value`` contains ``needle`` (lower-cased).

    Scalars are compared by their ``str()``, lower-cased; ``None`` and bytes never match.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if item is None:
            continue
        if isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
        elif isinstance(item, bytes | bytearray):
            continue
        elif needle in str(item).lower():
            return True
    return False


def sort_and_page(
    headers: Iterable[SessionHeader], options: SessionQueryOptions
) -> list[SessionHeader]:
    """Sort by ``options.sort_by`` (ties by ``session_id``), then apply offset and limit.

    Never-expiring sessions sort after every dated one when sorting by ``expires_at``. Keys are
    total (``session_id`` is unique), so a small page is taken with a heap instead of a full
    sort, with the same result.
    """
    key = _SORT_KEYS[options.sort_by]
    reverse = options.sort_order == "desc"
    if options.limit is None:
        return sorted(headers, key=key, reverse=reverse)[options.offset :]
    end = options.offset + options.limit
    pick = heapq.nlargest if reverse else heapq.nsmallest
    return pick(end, headers, key=key)[options.offset :]


_EPOCH = datetime.fromisoformat("0001-01-01T00:00:00+00:00")

_SORT_KEYS: dict[str, Callable[[SessionHeader], Any]] = {
    "created_at": lambda h: (h.created_at, h.session_id),
    "updated_at": lambda h: (h.updated_at, h.session_id),
    "expires_at": lambda h: (h.expires_at is None, h.expires_at or _EPOCH, h.session_id),
    "activity_id": lambda h: (str(h.activity_id), h.session_id),
    "session_id": lambda h: h.session_id,
}
