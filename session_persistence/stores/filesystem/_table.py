"""``HeaderTable``: the filesystem store's in-memory index, one flat tuple per session.

A million sessions must open in seconds and fit in well under a gigabyte, so the index does
not keep a :class:`~session_persistence.models.SessionHeader` per session (four datetimes, two
ULIDs, a metadata dict and a tags tuple: about 3 KB each, and most of the open time). It keeps
one tuple of plain values per session, built in C from the snapshot's columns (``zip``):

* ``processor_id`` and ``tags`` interned (one object per distinct value);
* ``activity_id`` and ``request_id`` as their text, with a flag per id saying it was a ULID;
* the four timestamps as integer microseconds since the Unix epoch (UTC); the rare session
  whose timestamps carry another UTC offset keeps its datetimes beside the table, so a header
  reads back exactly as it was written;
* the metadata as its encoded JSON text (``None`` when empty), decoded only when a header is
  built or a metadata filter needs it;
* ``version``, ``interaction_count`` and ``size_bytes`` as ints.

Queries (filters, sorting, pagination, counts, expiry) run on the tuples with the semantics of
:mod:`session_persistence.query`, comparing timestamps as microseconds (exact: datetimes have
microsecond resolution) and ids as text (a ULID and its string name the same id, as there).
Headers are built only for what a query returns; the most recently used are kept, so a warm
read does not rebuild its header.

Callers hold the store's ``_lock`` around every call (the table is not locked itself).
"""

from __future__ import annotations

import collections
import heapq
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from ulid import ULID

from ..._copy import accessed
from ..._ids import ulid_from_str
from ...errors import SerializationError
from ...models import SessionFilter, SessionHeader, SessionQueryOptions
from ...query import metadata_matches
from ...serialization import Codec, dump_json
from ._format import BadFile

__all__ = ["COLUMNS_LAYOUT", "HeaderTable", "Row"]

#: The ``layout`` of a columnar snapshot body; a reader refuses any other (and rebuilds).
COLUMNS_LAYOUT = "columns-1"

Row = tuple[Any, ...]
# A row's fields (the session id is the table's key, not in the row).
_P, _A, _R, _F, _C, _U, _E, _L, _M, _T, _V, _N, _S = range(13)
_ULID_ACTIVITY, _ULID_REQUEST = 1, 2

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_HOT = 4096  # headers kept built for warm reads
_IDS = re.compile(r"[A-Za-z0-9_-]{1,128}(?:\n[A-Za-z0-9_-]{1,128})*")
_ULIDS = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}(?:\n[0-7][0-9A-HJKMNP-TV-Z]{25})*")


def micros(moment: datetime) -> int:
    """``moment`` (timezone-aware) as integer microseconds since the Unix epoch."""
    return (moment - _EPOCH) // _MICROSECOND


def _moment(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _utc(moment: datetime | None) -> bool:
    return moment is None or moment.tzinfo is UTC


# Microseconds a datetime can hold (years 1 to 9999), for the timestamp columns.
_EARLIEST = micros(datetime.min.replace(tzinfo=UTC))
_LATEST = micros(datetime.max.replace(tzinfo=UTC)) + 1


class HeaderTable:
    """The index: ``session_id -> row``, with headers built on demand (see the module doc)."""

    def __init__(self, codec: Codec) -> None:
        self._codec = codec
        self._rows: dict[str, Row] = {}
        # Sessions whose timestamps carry a UTC offset other than UTC itself: their datetimes
        # as written (created, updated, expires, last accessed), so headers read back exactly.
        self._zoned: dict[str, tuple[datetime, datetime, datetime | None, datetime]] = {}
        self._hot: collections.OrderedDict[str, SessionHeader] = collections.OrderedDict()
        self._interned: dict[Any, Any] = {}

    # == the mapping ==========================================================================

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._rows

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def get(self, session_id: str) -> SessionHeader | None:
        """Return the session's header (built from its row, or the one kept), or ``None``."""
        hot = self._hot.get(session_id)
        if hot is not None:
            self._hot.move_to_end(session_id)
            return hot
        row = self._rows.get(session_id)
        if row is None:
            return None
        header = self._build(session_id, row)
        self._keep(header)
        return header

    def __getitem__(self, session_id: str) -> SessionHeader:
        header = self.get(session_id)
        if header is None:
            raise KeyError(session_id)
        return header

    def __setitem__(self, session_id: str, header: SessionHeader) -> None:
        self._rows[session_id] = self._row_of(header)
        self._keep(header)

    def discard(self, session_id: str) -> bool:
        """Remove the session; return whether it was there."""
        if self._rows.pop(session_id, None) is None:
            return False
        self._zoned.pop(session_id, None)
        self._hot.pop(session_id, None)
        return True

    def version(self, session_id: str) -> int | None:
        """The session's version (``None``: absent), without building its header."""
        row = self._rows.get(session_id)
        return None if row is None else int(row[_V])

    def values(self) -> list[SessionHeader]:
        """Every header (built: costs about as much as opening the store did before)."""
        return [self._hot.get(sid) or self._build(sid, row) for sid, row in self._rows.items()]

    def touch(self, session_id: str, when: datetime) -> None:
        """Record a read at ``when`` if it is later than the recorded ``last_accessed_at``."""
        row = self._rows.get(session_id)
        if row is None:
            return
        at = micros(when)
        if row[_L] >= at:
            return
        if when.tzinfo is not UTC or session_id in self._zoned:
            header = self.get(session_id)
            assert header is not None
            self[session_id] = accessed(header, when)
            return
        self._rows[session_id] = (*row[:_L], at, *row[_L + 1 :])
        hot = self._hot.get(session_id)
        if hot is not None:
            self._hot[session_id] = accessed(hot, when)

    def update(self, other: HeaderTable) -> None:
        """Take every session of ``other`` (an index delta's), replacing what is here."""
        for session_id in other._rows:
            self._hot.pop(session_id, None)
            self._zoned.pop(session_id, None)
        self._rows.update(other._rows)
        self._zoned.update(other._zoned)

    def copy(self) -> HeaderTable:
        """A copy sharing the (immutable) rows: what a checkpoint writes out of the lock."""
        other = HeaderTable(self._codec)
        other._rows = dict(self._rows)
        other._zoned = dict(self._zoned)
        other._interned = self._interned
        return other

    # == rows and headers =====================================================================

    def _intern(self, value: Any) -> Any:
        return self._interned.setdefault(value, value)

    def _row_of(self, header: SessionHeader) -> Row:
        session_id = header.session_id
        expires = header.expires_at
        if (
            _utc(header.created_at)
            and _utc(header.updated_at)
            and _utc(expires)
            and _utc(header.last_accessed_at)
        ):
            self._zoned.pop(session_id, None)
        else:
            self._zoned[session_id] = (
                header.created_at,
                header.updated_at,
                expires,
                header.last_accessed_at,
            )
        flags = (_ULID_ACTIVITY if type(header.activity_id) is ULID else 0) | (
            _ULID_REQUEST if type(header.request_id) is ULID else 0
        )
        metadata = header.metadata
        return (
            self._intern(header.processor_id),
            str(header.activity_id),
            str(header.request_id),
            flags,
            micros(header.created_at),
            micros(header.updated_at),
            None if expires is None else micros(expires),
            micros(header.last_accessed_at),
            dump_json(self._codec.to_json_value(metadata, "metadata")).decode()
            if metadata
            else None,
            self._intern(tuple(header.tags)),
            header.version,
            header.interaction_count,
            header.size_bytes,
        )

    def _build(self, session_id: str, row: Row) -> SessionHeader:
        zoned = self._zoned.get(session_id)
        if zoned is None:
            expires = row[_E]
            created, updated = _moment(row[_C]), _moment(row[_U])
            expires_at = None if expires is None else _moment(expires)
            accessed = _moment(row[_L])
        else:
            created, updated, expires_at, accessed = zoned
        flags = row[_F]
        return SessionHeader(
            session_id=session_id,
            processor_id=row[_P],
            activity_id=ulid_from_str(row[_A]) if flags & _ULID_ACTIVITY else row[_A],
            request_id=ulid_from_str(row[_R]) if flags & _ULID_REQUEST else row[_R],
            created_at=created,
            updated_at=updated,
            expires_at=expires_at,
            last_accessed_at=accessed,
            metadata=self._metadata(row[_M]),
            tags=row[_T],
            version=row[_V],
            interaction_count=row[_N],
            size_bytes=row[_S],
        )

    def _metadata(self, text: str | None) -> dict[str, Any]:
        if text is None:
            return {}
        value: dict[str, Any] = self._codec.from_json_value(orjson.loads(text), "metadata", depth=1)
        return value

    def _keep(self, header: SessionHeader) -> None:
        hot = self._hot
        hot[header.session_id] = header
        hot.move_to_end(header.session_id)
        if len(hot) > _HOT:
            hot.popitem(last=False)

    # == queries ==============================================================================

    def select(
        self, flt: SessionFilter, now: datetime, idle: timedelta | None
    ) -> list[tuple[str, Row]]:
        """The ``(session_id, row)`` pairs ``flt`` selects at ``now`` (expiry included).

        One pass per condition, the processor first (the usual, and cheapest, narrowing) and
        expiry last, each over what the one before kept.
        """
        wanted = flt.processor_id
        kept: list[tuple[str, Row]]
        if wanted is None:
            kept = list(self._rows.items())
        else:
            texts = _texts(wanted)
            kept = [pair for pair in self._rows.items() if pair[1][_P] in texts]
        for check in self._compile(flt):
            kept = [pair for pair in kept if check(pair[1])]
        if flt.include_expired:
            return kept
        now_us = micros(now)
        if idle is None:
            return [p for p in kept if (end := p[1][_E]) is None or end > now_us]
        since = now_us - idle // _MICROSECOND  # live: last accessed after this
        return [p for p in kept if ((end := p[1][_E]) is None or end > now_us) and p[1][_L] > since]

    def count(self, flt: SessionFilter, now: datetime, idle: timedelta | None) -> int:
        """``len(self.select(flt, now, idle))``, without building the pairs."""
        rows: Collection[Row] = self._rows.values()
        wanted = flt.processor_id
        if wanted is not None:
            texts = _texts(wanted)
            rows = [row for row in rows if row[_P] in texts]
        for check in self._compile(flt):
            rows = [row for row in rows if check(row)]
        if flt.include_expired:
            return len(rows)
        now_us = micros(now)
        if idle is None:
            return len([1 for row in rows if (end := row[_E]) is None or end > now_us])
        since = now_us - idle // _MICROSECOND
        return len(
            [1 for row in rows if ((end := row[_E]) is None or end > now_us) and row[_L] > since]
        )

    def expired(self, now: datetime, idle: timedelta | None) -> list[SessionHeader]:
        """The headers of every session expired at ``now``."""
        live = {sid for sid, _ in self.select(SessionFilter(), now, idle)}
        return [self._build(sid, row) for sid, row in self._rows.items() if sid not in live]

    def headers(self, pairs: Iterable[tuple[str, Row]]) -> list[SessionHeader]:
        """Build (or take the kept) headers of ``pairs``, in order."""
        hot = self._hot
        return [hot.get(sid) or self._build(sid, row) for sid, row in pairs]

    def page(
        self, pairs: list[tuple[str, Row]], options: SessionQueryOptions
    ) -> list[tuple[str, Row]]:
        """Sort and paginate as :func:`session_persistence.query.sort_and_page` does."""
        key = _SORT_KEYS[options.sort_by]
        reverse = options.sort_order == "desc"
        if options.limit is None:
            return sorted(pairs, key=key, reverse=reverse)[options.offset :]
        end = options.offset + options.limit
        pick = heapq.nlargest if reverse else heapq.nsmallest
        return pick(end, pairs, key=key)[options.offset :]

    def _compile(self, flt: SessionFilter) -> list[Callable[[Row], bool]]:
        """Checks on rows equal together to ``matches_filter`` on their headers.

        Except for the processor (:meth:`select` checks it first) and expiry.
        """
        checks: list[Callable[[Row], bool]] = []
        for field, wanted in ((_A, flt.activity_id), (_R, flt.request_id)):
            if wanted is not None:
                checks.append(_one_of(field, _texts(wanted)))
        for field, after, before in (
            (_C, flt.created_after, flt.created_before),
            (_U, flt.updated_after, flt.updated_before),
        ):
            if after is not None or before is not None:
                low = None if after is None else micros(after)
                high = None if before is None else micros(before)
                checks.append(_between(field, low, high))
        if flt.expires_after is not None:
            bound = micros(flt.expires_after)
            checks.append(lambda row: row[_E] is None or row[_E] > bound)
        if flt.expires_before is not None:
            limit = micros(flt.expires_before)
            checks.append(lambda row: row[_E] is not None and row[_E] < limit)
        if flt.has_interactions is not None:
            has = flt.has_interactions
            checks.append(lambda row: (row[_N] > 0) == has)
        if flt.interaction_count_min is not None:
            least = flt.interaction_count_min
            checks.append(lambda row: row[_N] >= least)
        if flt.interaction_count_max is not None:
            most = flt.interaction_count_max
            checks.append(lambda row: row[_N] <= most)
        if flt.tags is not None:
            anyof = frozenset(flt.tags)
            checks.append(lambda row: not anyof.isdisjoint(row[_T]))
        if flt.tags_all is not None:
            allof = frozenset(flt.tags_all)
            checks.append(lambda row: allof.issubset(row[_T]))
        if flt.metadata:
            checks.append(self._metadata_check(flt.metadata))
        return checks

    def _metadata_check(self, wanted: Mapping[str, Any]) -> Callable[[Row], bool]:
        """Metadata equality, read from the row's text only where the text may match.

        Every wanted key (and, for a string, integer, boolean or null, its value) is encoded
        exactly as the row's text was, so a row whose text lacks the encoded entry cannot
        match and is not decoded. The rows left are decoded and compared exactly.
        """
        probes = []
        encode = self._codec.to_json_value
        for key, expected in wanted.items():
            named = orjson.dumps(key).decode() + ":"
            try:
                if dump_json(encode({key: None}, "metadata")) != f"{{{named}null}}".encode():
                    continue  # the codec escapes this key (a "$" key): no probe
                if type(expected) in (str, int, bool) or expected is None:
                    entry = dump_json(encode({key: expected}, "metadata")).decode()[1:-1]
                    if entry == named + orjson.dumps(expected).decode():
                        named = entry  # the value is written as plain JSON: probe it too
            except (SerializationError, orjson.JSONEncodeError):
                pass  # (a value JSON cannot hold as such: the key alone is probed)
            probes.append(named)  # '"key":' or '"key":value'

        def check(row: Row) -> bool:
            text = row[_M]
            if text is None or not all(probe in text for probe in probes):
                return False
            return metadata_matches(self._metadata(text), wanted)

        return check

    # == snapshot columns =====================================================================

    def columns(self) -> dict[str, Any]:
        """The table as JSON-native columns (one chunk of :meth:`column_chunks`)."""
        return self._columns(list(self._rows.items()))

    def column_chunks(self, rows_per_chunk: int) -> Iterator[dict[str, Any]]:
        """The table as columns, ``rows_per_chunk`` sessions a chunk (at least one chunk)."""
        pairs = list(self._rows.items())
        for start in range(0, max(len(pairs), 1), rows_per_chunk):
            yield self._columns(pairs[start : start + rows_per_chunk])

    def _columns(self, pairs: list[tuple[str, Row]]) -> dict[str, Any]:
        ids = [sid for sid, _ in pairs]
        fields: list[Sequence[Any]] = (
            list(zip(*(row for _, row in pairs), strict=True)) if ids else [()] * 13
        )
        processors: dict[str, int] = {}
        tagsets: dict[tuple[str, ...], int] = {}
        return {
            "ids": ids,
            "processors": _distinct(fields[_P], processors),
            "processor": [processors[p] for p in fields[_P]],
            "activity": fields[_A],
            "request": fields[_R],
            "ulid": fields[_F],
            "created": fields[_C],
            "updated": fields[_U],
            "expires": fields[_E],
            "accessed": fields[_L],
            "metadata": fields[_M],
            "tagsets": [list(t) for t in _distinct(fields[_T], tagsets)],
            "tags": [tagsets[t] for t in fields[_T]],
            "version": fields[_V],
            "count": fields[_N],
            "size": fields[_S],
            "zoned": {
                sid: [None if t is None else t.isoformat() for t in self._zoned[sid]]
                for sid in ids
                if sid in self._zoned
            },
        }

    @classmethod
    def from_columns(cls, data: Any, codec: Codec) -> HeaderTable:
        """Rebuild a table from :meth:`columns`' output, validating every column.

        Raises:
            BadFile: A column is missing, of the wrong length, or holds a wrong value.
        """
        table = cls(codec)
        table.add_columns(data)
        return table

    def add_columns(self, data: Any) -> None:
        """Add one chunk of columns (:meth:`column_chunks`), validating every column.

        Raises:
            BadFile: A column is missing, of the wrong length, or holds a wrong value, or a
                session is already in the table. The table is then unusable.
        """
        codec = self._codec
        if type(data) is not dict:
            raise BadFile("the index columns must be an object")
        ids = _column(data, "ids", str)
        if not _all_match(_IDS, ids):
            raise BadFile("the index holds an invalid session id")
        count = len(ids)
        processors = _column(data, "processors", str)
        tagsets = [tuple(t) for t in _column(data, "tagsets", list)]
        if not all(type(tag) is str for tags in tagsets for tag in tags):
            raise BadFile("the index holds a tag that is not a string")
        proc_index = _column(data, "processor", int, count, upper=len(processors))
        tag_index = _column(data, "tags", int, count, upper=len(tagsets))
        intern = self._interned.setdefault
        processors = [intern(p, p) for p in processors]
        tagsets = [intern(t, t) for t in tagsets]
        flags = _column(data, "ulid", int, count, upper=4)
        activity = _column(data, "activity", str, count)
        request = _column(data, "request", str, count)
        for texts, bit in ((activity, _ULID_ACTIVITY), (request, _ULID_REQUEST)):
            ulids = [text for text, flag in zip(texts, flags, strict=True) if flag & bit]
            if not _all_match(_ULIDS, ulids):
                raise BadFile("the index holds an id marked as a ULID that is not one")
        metadata = _column(data, "metadata", str, count, optional=True)
        _check_metadata(metadata, codec)
        rows = zip(
            [processors[i] for i in proc_index],
            activity,
            request,
            flags,
            _column(data, "created", int, count, lower=_EARLIEST, upper=_LATEST),
            _column(data, "updated", int, count, lower=_EARLIEST, upper=_LATEST),
            _column(data, "expires", int, count, optional=True, lower=_EARLIEST, upper=_LATEST),
            _column(data, "accessed", int, count, lower=_EARLIEST, upper=_LATEST),
            metadata,
            [tagsets[i] for i in tag_index],
            _column(data, "version", int, count, lower=1),
            _column(data, "count", int, count),
            _column(data, "size", int, count),
            strict=True,
        )
        before = len(self._rows)
        self._rows.update(zip(ids, rows, strict=True))
        if len(self._rows) != before + count:  # (twice in the chunk, or in an earlier one)
            raise BadFile("the index names a session twice")
        self._zoned.update(_zoned(data.get("zoned"), self._rows))

    @classmethod
    def from_headers(cls, headers: Iterable[SessionHeader], codec: Codec) -> HeaderTable:
        """A table of ``headers`` (an index rebuilt from the session files, or an old snapshot)."""
        table = cls(codec)
        for header in headers:
            table._rows[header.session_id] = table._row_of(header)
        return table


def _one_of(field: int, texts: frozenset[str]) -> Callable[[Row], bool]:
    return lambda row: row[field] in texts


def _between(field: int, low: int | None, high: int | None) -> Callable[[Row], bool]:
    def check(row: Row) -> bool:
        value = row[field]
        return (low is None or value > low) and (high is None or value < high)

    return check


def _texts(wanted: ULID | str | Sequence[ULID | str]) -> frozenset[str]:
    """The ids a filter names, as text (a ULID and its string name the same id)."""
    return frozenset([str(wanted)] if isinstance(wanted, str | ULID) else map(str, wanted))


def _distinct(values: Sequence[Any], numbers: dict[Any, int]) -> list[Any]:
    for value in values:
        if value not in numbers:
            numbers[value] = len(numbers)
    return list(numbers)


def _column(
    data: dict[str, Any],
    name: str,
    kind: type,
    count: int | None = None,
    *,
    optional: bool = False,
    lower: int = 0,
    upper: int | None = None,
) -> list[Any]:
    values = data.get(name)
    if type(values) is not list or (count is not None and len(values) != count):
        raise BadFile(f"the index column {name!r} is missing or of the wrong length")
    kinds = set(map(type, values))
    allowed = {kind, type(None)} if optional else {kind}
    if not kinds <= allowed:
        raise BadFile(f"the index column {name!r} holds a value of the wrong type")
    if kind is int and values:
        present = [v for v in values if v is not None] if optional else values
        if present and (min(present) < lower or (upper is not None and max(present) >= upper)):
            raise BadFile(f"the index column {name!r} holds a value out of range")
    return values


def _all_match(pattern: re.Pattern[str], texts: list[str]) -> bool:
    """Whether every text matches ``pattern`` (which admits no newline), in one regex call."""
    if not texts:
        return True
    joined = "\n".join(texts)
    return joined.count("\n") == len(texts) - 1 and pattern.fullmatch(joined) is not None


def _check_metadata(texts: list[str | None], codec: Codec) -> None:
    """Every metadata text must be a JSON object the codec reads (``BadFile`` if not).

    One parse each, kept only while it is checked; only texts holding a type tag (``"$``) go
    through the codec too.
    """
    loads = orjson.loads
    for text in texts:
        if text is None:
            continue
        try:
            value = loads(text)
            if type(value) is not dict:
                raise BadFile("the index holds metadata that is not an object")
            if '"$' in text:
                codec.from_json_value(value, "metadata", depth=1)
        except (orjson.JSONDecodeError, SerializationError) as exc:
            raise BadFile(f"the index holds metadata that does not read back: {exc}") from exc


def _zoned(
    data: Any, rows: dict[str, Row]
) -> dict[str, tuple[datetime, datetime, datetime | None, datetime]]:
    if data is None:
        return {}
    if type(data) is not dict:
        raise BadFile("the index's zoned timestamps must be an object")
    zoned = {}
    for session_id, moments in data.items():
        if session_id not in rows or type(moments) is not list or len(moments) != 4:
            raise BadFile("the index's zoned timestamps name an unknown session")
        try:
            parsed = [None if m is None else datetime.fromisoformat(m) for m in moments]
        except (TypeError, ValueError) as exc:
            raise BadFile(f"bad zoned timestamp in the index: {exc}") from exc
        created, updated, expires, accessed = parsed
        if created is None or updated is None or accessed is None:
            raise BadFile("the index's zoned timestamps lack a required one")
        if any(m is not None and m.utcoffset() is None for m in parsed):
            raise BadFile("an index timestamp lacks its UTC offset")
        row = rows[session_id]
        if [None if m is None else micros(m) for m in parsed] != [
            row[_C],
            row[_U],
            row[_E],
            row[_L],
        ]:
            raise BadFile("the index's zoned timestamps disagree with its columns")
        zoned[session_id] = (created, updated, expires, accessed)
    return zoned


_SORT_KEYS: dict[str, Callable[[tuple[str, Row]], Any]] = {
    "created_at": lambda p: (p[1][_C], p[0]),
    "updated_at": lambda p: (p[1][_U], p[0]),
    "expires_at": lambda p: (p[1][_E] is None, p[1][_E] or 0, p[0]),
    "activity_id": lambda p: (p[1][_A], p[0]),
    "session_id": lambda p: p[0],
}
