"""Filters and sort orders translated to SQL, with the same meaning as :mod:`..query`.

:func:`select` returns a statement and its parameters, and whether SQL decides the whole
filter. Every condition is translated exactly except a ``metadata`` value SQL cannot compare
as Python does (a nested value, a float, a key that is not ``[A-Za-z0-9_]``...): those are
left to :func:`~session_persistence.query.matches_filter` on the rows SQL returns, and then
sorting and pagination are done in Python too (the caller checks ``exact``).

A sealed or compressed metadata value (a JSON string ``"$sp1:…"``: see :mod:`._seal`) cannot
be compared by the server: a metadata condition lets every such row through
(``left(s.metadata::text, 6) = '"$sp1:'``) and Python decides after opening it. On a sealed
store that is every row, so a metadata filter selects by the clear columns' conditions only,
and every row they select is opened and filtered in Python (then sorted and paged there).

Metadata values and tags are compared as JSON text: the stored ``json`` keeps the codec's
compact text byte for byte (see :mod:`._rows`), and ``orjson`` writes a ``str``, an ``int``
or a ``bool`` one way only, so text equality is value-and-type equality, as
:func:`~session_persistence.query.matches_filter` compares (``1`` never equals ``True`` or
``1.0``).

Text columns sort with ``COLLATE "C"`` (code point order, as Python sorts strings): the
columns are declared so (see :mod:`._schema`), whatever the database's default collation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from ulid import ULID

from ...models import SessionFilter, SessionQueryOptions
from ._rows import HEADER_SELECT, escape_id
from ._seal import WRAPPED

__all__ = ["Statement", "expired_condition", "order_by", "select"]

_SIMPLE_KEY = re.compile(r"[A-Za-z0-9_]{1,64}")
_INT64 = 2**63
#: The metadata object as the codec stored it: a dict with any key starting with "$" is
#: written as ``{"$esc": {...}}`` (and a dict without one never has an ``$esc`` key).
_METADATA = "coalesce(s.metadata -> '$esc', s.metadata)"


@dataclass(slots=True)
class Statement:
    """A ``WHERE`` clause being built: SQL fragments joined by ``AND``, and their parameters."""

    conditions: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    exact: bool = True

    def add(self, sql: str, *params: Any) -> None:
        """Add one condition."""
        self.conditions.append(sql)
        self.params.extend(params)

    def where(self) -> str:
        """Return the ``WHERE`` clause (empty if there is no condition)."""
        return " WHERE " + " AND ".join(self.conditions) if self.conditions else ""


def expired_condition(now: datetime, idle: timedelta | None) -> tuple[str, list[Any]]:
    """Return SQL true for a session expired at ``now`` (as :func:`query.is_expired`)."""
    sql = "(s.expires_at IS NOT NULL AND s.expires_at <= %s)"
    params: list[Any] = [now]
    if idle is not None:
        sql = f"({sql} OR s.last_accessed_at <= %s)"
        params.append(now - idle)
    return sql, params


def select(
    prefix: str,
    flt: SessionFilter,
    now: datetime,
    idle: timedelta | None,
    *,
    columns: str = HEADER_SELECT,
) -> tuple[str, list[Any], bool]:
    """Return ``SELECT columns FROM {prefix}sessions s WHERE ...`` for ``flt``.

    Returns:
        The statement, its parameters, and whether SQL decides the whole filter.
    """
    st = Statement()
    if not flt.include_expired:
        sql, params = expired_condition(now, idle)
        st.add(f"NOT {sql}", *params)
    _ids(st, "processor_id", flt.processor_id)
    _ids(st, "activity_id", flt.activity_id)
    _ids(st, "request_id", flt.request_id)
    _range(st, "created_at", flt.created_after, flt.created_before)
    _range(st, "updated_at", flt.updated_after, flt.updated_before)
    if flt.expires_after is not None:
        st.add("(s.expires_at IS NULL OR s.expires_at > %s)", flt.expires_after)
    if flt.expires_before is not None:
        st.add("(s.expires_at IS NOT NULL AND s.expires_at < %s)", flt.expires_before)
    if flt.has_interactions is not None:
        st.add("s.interaction_count > 0" if flt.has_interactions else "s.interaction_count = 0")
    if flt.interaction_count_min is not None:
        st.add("s.interaction_count >= %s", flt.interaction_count_min)
    if flt.interaction_count_max is not None:
        st.add("s.interaction_count <= %s", flt.interaction_count_max)
    # (a tag or value the codec cannot encode is on no stored session: it matches nothing)
    if flt.tags is not None:
        tags = [text for text in map(_json, flt.tags) if text is not None]
        if not tags:
            st.add("false")
        else:
            _guarded(
                st,
                "s.tags",
                "EXISTS (SELECT 1 FROM json_array_elements(s.tags) t(v) WHERE t.v::text = ANY(%s))",
                tags,
            )
    if flt.tags_all is not None:
        for tag in dict.fromkeys(flt.tags_all):
            text = _json(tag)
            if text is None:
                st.add("false")
                continue
            _guarded(
                st,
                "s.tags",
                "EXISTS (SELECT 1 FROM json_array_elements(s.tags) t(v) WHERE t.v::text = %s)",
                text,
            )
    if flt.metadata is not None:
        for key, value in flt.metadata.items():
            _metadata(st, key, value)
    statement = f"SELECT {columns} FROM {prefix}sessions s{st.where()}"
    return statement, st.params, st.exact


def order_by(options: SessionQueryOptions) -> tuple[str, list[Any]]:
    """Return ``ORDER BY ... LIMIT %s OFFSET %s`` as :func:`query.sort_and_page` orders."""
    keys = {
        "created_at": ["s.created_at", "s.session_id"],
        "updated_at": ["s.updated_at", "s.session_id"],
        "expires_at": ["s.expires_at IS NULL", "s.expires_at", "s.session_id"],
        "activity_id": ["s.activity_id", "s.session_id"],
        "session_id": ["s.session_id"],
    }[options.sort_by]
    direction = " DESC" if options.sort_order == "desc" else ""
    sql = " ORDER BY " + ", ".join(key + direction for key in keys) + " LIMIT %s OFFSET %s"
    return sql, [options.limit, options.offset]  # (LIMIT NULL: no limit)


def _json(value: Any) -> str | None:
    """``value`` as the codec's JSON text, or ``None`` if it cannot be stored at all."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # (a lone surrogate: no stored value can equal it)
        return None


def _storable(text: str) -> bool:
    """Whether a ``text`` column can hold ``text`` (UTF-8: no lone surrogate)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _ids(st: Statement, column: str, wanted: str | ULID | Sequence[str | ULID] | None) -> None:
    if wanted is None:
        return
    values = [str(wanted)] if isinstance(wanted, str | ULID) else [str(item) for item in wanted]
    # A value no row can hold matches nothing (as in memory), rather than failing the query.
    values = [escape_id(value) for value in values if _storable(value)]
    st.add(f"s.{column} = ANY(%s)" if values else "false", *([values] if values else []))


def _range(st: Statement, column: str, after: datetime | None, before: datetime | None) -> None:
    if after is not None:
        st.add(f"s.{column} > %s", after)
    if before is not None:
        st.add(f"s.{column} < %s", before)


def _metadata(st: Statement, key: str, value: Any) -> None:
    """Compare one metadata key in SQL when SQL compares it as Python does; else defer."""
    if not _SIMPLE_KEY.fullmatch(key):
        st.exact = False
        return
    plain = type(value) in (str, bool) or value is None
    if plain or (type(value) is int and -_INT64 <= value < _INT64):
        text = _json(value)
        if text is None:
            st.add("false")  # (no stored metadata holds it)
            return
        # (metadata with a "$" key is stored escaped, as {"$esc": {...}}: see serialization)
        # (a sealed or compressed value: the server cannot see inside, Python decides)
        condition = f"(left(s.metadata::text, 6) = '{WRAPPED}' OR ({_METADATA} -> %s)::text = %s)"
        _guarded(st, "s.metadata", condition, key, text)
    else:
        st.exact = False


def _guarded(st: Statement, column: str, condition: str, *params: Any) -> None:
    r"""Add a condition that parses a ``json`` column, letting through what it cannot parse.

    PostgreSQL's JSON operators refuse a document holding a ``\u0000`` escape (one that a
    ``str`` with a NUL character encodes to): they fail the whole statement. Such rows are
    let through, so the condition selects at least what it must, and Python decides.
    """
    nul = "'\\u0000'"  # (the six characters of the JSON escape)
    st.add(f"(CASE WHEN strpos({column}::text, {nul}) > 0 THEN true ELSE {condition} END)", *params)
    st.exact = False
