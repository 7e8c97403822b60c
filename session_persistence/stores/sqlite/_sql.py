"""Filters, searches and sort orders translated to SQL, with the same meaning as :mod:`..query`.

:func:`select` returns a statement and its parameters, and whether SQL decides the whole
filter. Every condition is translated exactly except a ``metadata`` value SQL cannot compare
as Python does (a nested value, a float, a key with quotes...): those are left to
:func:`~session_persistence.query.matches_filter` on the rows SQL returns, and then sorting and
pagination are done in Python too (the caller checks ``exact``).

Search runs in SQL with three functions the store registers on its connection, so text is
matched by Python's own rules (``str.lower``, the codec's decoding of tagged values):
``sp_contains(text, needle)``, ``sp_metadata_contains(json, needle)`` and
``sp_interaction_contains(json, needle)``.

Sealed or compressed values (see :mod:`._seal`) are read through ``sp_meta`` and ``sp_item``,
which return their plain JSON: a filter or a search reads every metadata value (and a search
every interaction row) it examines that is wrapped through Python, opening it in memory. A
plain value is tested in SQL and read as it is, so a store without sealing pays nothing.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from ulid import ULID

from ...documents import interaction_from_json
from ...models import SessionFilter, SessionQueryOptions
from ...query import Search, search_interactions, value_contains
from ...serialization import Codec
from ._rows import HEADER_COLUMNS, timestamp
from ._seal import Functions, item_sql, meta_sql

__all__ = ["Statement", "expired_condition", "order_by", "register_functions", "select"]

_SIMPLE_KEY = re.compile(r"[A-Za-z0-9_]{1,64}")
# The metadata column's plain JSON: a damaged wrapped value fails a filter (strict), as
# json_extract fails on damaged plain JSON, and matches nothing in a search.
_META = meta_sql(strict=True)
_SEARCH_META = meta_sql(strict=False)
_INT64 = 2**63


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
    sql = "(s.expires_at IS NOT NULL AND s.expires_at <= ?)"
    params: list[Any] = [timestamp(now)]
    if idle is not None:
        sql = f"({sql} OR s.last_accessed_at <= ?)"
        params.append(timestamp(now - idle))
    return sql, params


def select(
    prefix: str,
    flt: SessionFilter,
    now: datetime,
    idle: timedelta | None,
    search: Search | None = None,
    *,
    columns: str = HEADER_COLUMNS,
) -> tuple[str, list[Any], bool]:
    """Return ``SELECT columns FROM {prefix}sessions s WHERE ...`` for ``flt`` and ``search``.

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
        st.add("(s.expires_at IS NULL OR s.expires_at > ?)", timestamp(flt.expires_after))
    if flt.expires_before is not None:
        st.add("(s.expires_at IS NOT NULL AND s.expires_at < ?)", timestamp(flt.expires_before))
    if flt.has_interactions is not None:
        st.add("s.interaction_count > 0" if flt.has_interactions else "s.interaction_count = 0")
    if flt.interaction_count_min is not None:
        st.add("s.interaction_count >= ?", flt.interaction_count_min)
    if flt.interaction_count_max is not None:
        st.add("s.interaction_count <= ?", flt.interaction_count_max)
    if flt.tags is not None:
        tags = list(flt.tags)
        st.add(
            "EXISTS (SELECT 1 FROM json_each(s.tags) t "
            f"WHERE t.value IN ({_marks(len(tags))}) AND t.type = 'text')",
            *tags,
        )
    if flt.tags_all is not None:
        for tag in dict.fromkeys(flt.tags_all):
            st.add(
                "EXISTS (SELECT 1 FROM json_each(s.tags) t WHERE t.value = ? AND t.type = 'text')",
                tag,
            )
    if flt.metadata is not None:
        for key, value in flt.metadata.items():
            _metadata(st, key, value)
    if search is not None:
        _search(st, prefix, search)
    statement = f"SELECT {columns} FROM {prefix}sessions s{st.where()}"
    return statement, st.params, st.exact


def order_by(options: SessionQueryOptions) -> str:
    """Return ``ORDER BY ... LIMIT ? OFFSET ?`` as :func:`query.sort_and_page` orders."""
    keys = {
        "created_at": ["s.created_at", "s.session_id"],
        "updated_at": ["s.updated_at", "s.session_id"],
        "expires_at": ["s.expires_at IS NULL", "s.expires_at", "s.session_id"],
        "activity_id": ["s.activity_id", "s.session_id"],
        "session_id": ["s.session_id"],
    }[options.sort_by]
    direction = " DESC" if options.sort_order == "desc" else ""
    return " ORDER BY " + ", ".join(key + direction for key in keys) + " LIMIT ? OFFSET ?"


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _ids(st: Statement, column: str, wanted: str | ULID | Sequence[str | ULID] | None) -> None:
    if wanted is None:
        return
    values = [str(wanted)] if isinstance(wanted, str | ULID) else [str(item) for item in wanted]
    st.add(f"s.{column} IN ({_marks(len(values))})", *values)


def _range(st: Statement, column: str, after: datetime | None, before: datetime | None) -> None:
    if after is not None:
        st.add(f"s.{column} > ?", timestamp(after))
    if before is not None:
        st.add(f"s.{column} < ?", timestamp(before))


def _metadata(st: Statement, key: str, value: Any) -> None:
    """Compare one metadata key in SQL when SQL compares it as Python does; else defer."""
    if not _SIMPLE_KEY.fullmatch(key):
        st.exact = False
        return
    path = f'$."{key}"'
    meta = _META
    if type(value) is str:
        st.add(
            f"json_type({meta}, ?) = 'text' AND json_extract({meta}, ?) = ?",
            path,
            path,
            value,
        )
    elif type(value) is int and -_INT64 <= value < _INT64:
        st.add(
            f"json_type({meta}, ?) = 'integer' AND json_extract({meta}, ?) = ?",
            path,
            path,
            value,
        )
    elif type(value) is bool:
        st.add(f"json_type({meta}, ?) = ?", path, "true" if value else "false")
    elif value is None:
        st.add(f"json_type({meta}, ?) = 'null'", path)
    else:
        st.exact = False


def _search(st: Statement, prefix: str, search: Search) -> None:
    needle = search.needle
    parts = [
        "sp_contains(s.session_id, ?)",
        "sp_contains(s.processor_id, ?)",
        "sp_contains(s.activity_id, ?)",
        "sp_contains(s.request_id, ?)",
        "EXISTS (SELECT 1 FROM json_each(s.tags) t WHERE sp_contains(t.value, ?))",
        f"sp_metadata_contains({_SEARCH_META}, ?)",
    ]
    if search.interactions:
        parts.append(
            f"EXISTS (SELECT 1 FROM {prefix}interactions i "
            f"WHERE i.session_id = s.session_id AND sp_interaction_contains({item_sql()}, ?))"
        )
    st.add("(" + " OR ".join(parts) + ")", *[needle] * len(parts))


def register_functions(db: sqlite3.Connection, codec: Codec, opening: Functions) -> None:
    """Register the search functions and ``opening``'s on a connection (see the module doc)."""
    opening.register(db)

    def contains(text: object, needle: str) -> bool:
        return text is not None and needle in str(text).lower()

    def metadata_contains(text: str | None, needle: str) -> bool:
        if text is None:
            return False  # a damaged wrapped value (sp_meta): reading the session reports it
        try:
            return value_contains(codec.from_json_value(orjson.loads(text), ""), needle)
        except (ValueError, TypeError):
            return False  # a damaged row: reading the session reports it

    def interaction_contains(text: str | None, needle: str) -> bool:
        if text is None:
            return False
        try:
            item = interaction_from_json(orjson.loads(text), codec, "")
        except (ValueError, TypeError):
            return False
        return search_interactions([item], needle)

    db.create_function("sp_contains", 2, contains, deterministic=True)
    db.create_function("sp_metadata_contains", 2, metadata_contains, deterministic=True)
    db.create_function("sp_interaction_contains", 2, interaction_contains, deterministic=True)
