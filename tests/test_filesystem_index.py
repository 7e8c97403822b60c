"""The filesystem store's compact index (``HeaderTable``) against the reference query functions.

Rows hold encoded values (microseconds, id text, metadata JSON); these tests hold them to the
semantics of :mod:`session_persistence.query` on the headers they stand for, and check that a
header read back from a row, or from the snapshot's columns, is the header written.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ulid import ULID

from session_persistence import (
    FileSystemSessionStore,
    SessionFilter,
    SessionHeader,
    SessionQueryOptions,
)
from session_persistence._fileio import FileIO
from session_persistence.query import is_expired, matches_filter, sort_and_page
from session_persistence.serialization import Codec
from session_persistence.stores.filesystem import _index as index_module
from session_persistence.stores.filesystem._format import BadFile
from session_persistence.stores.filesystem._index import IndexFiles
from session_persistence.stores.filesystem._table import HeaderTable
from session_persistence.testing import session_object

BASE = datetime(2030, 1, 1, tzinfo=UTC)
EAST = timezone(timedelta(hours=2))
ULIDS = [ULID.from_str("01JD0000000000000000000000"), ULID.from_str("01JD0000000000000000000001")]
CODEC = Codec()


def _moment(seconds: int, zoned: bool = False) -> datetime:
    moment = BASE + timedelta(seconds=seconds, microseconds=seconds * 7)
    return moment.astimezone(EAST) if zoned else moment


metadata_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(0, 2),
    st.sampled_from(["1", "a:b", 'q"uote', "true", ""]),
    st.just(ULIDS[0]),
    st.just(BASE),
    st.just({"k": 1}),
    st.just([1, "1"]),
)
metadata = st.dictionaries(st.sampled_from(["k", "j", "k:1", "$x"]), metadata_values, max_size=3)


@st.composite
def headers(draw: st.DrawFn, n: int) -> SessionHeader:
    zoned = draw(st.booleans())
    created, updated = draw(st.integers(0, 5)), draw(st.integers(0, 5))
    expires = draw(st.one_of(st.none(), st.integers(0, 5)))
    return SessionHeader(
        session_id=f"s{n:04d}",
        processor_id=draw(st.sampled_from(["p", "q"])),
        activity_id=draw(st.sampled_from(["a0", str(ULIDS[0]), ULIDS[0], ULIDS[1]])),
        request_id=draw(st.sampled_from(["r", ULIDS[1]])),
        created_at=_moment(created, zoned),
        updated_at=_moment(updated),
        expires_at=None if expires is None else _moment(expires, zoned),
        last_accessed_at=_moment(draw(st.integers(0, 5))),
        metadata=draw(metadata),
        tags=tuple(draw(st.lists(st.sampled_from(["x", "y", "z"]), max_size=3, unique=True))),
        version=draw(st.integers(1, 3)),
        interaction_count=draw(st.integers(0, 3)),
        size_bytes=draw(st.integers(0, 9)),
    )


@st.composite
def header_lists(draw: st.DrawFn) -> list[SessionHeader]:
    return [draw(headers(n)) for n in range(draw(st.integers(0, 12)))]


def _times() -> st.SearchStrategy[datetime | None]:
    return st.one_of(st.none(), st.integers(0, 5).map(lambda s: _moment(s, s % 2 == 1)))


ids = st.sampled_from(["p", "q", "a0", "r", str(ULIDS[0]), ULIDS[0], ULIDS[1]])
filters = st.builds(
    SessionFilter,
    processor_id=st.one_of(st.none(), st.sampled_from(["p", "q", "z"]), st.lists(
        st.sampled_from(["p", "q"]), max_size=2)),
    activity_id=st.one_of(st.none(), ids, st.lists(ids, max_size=2)),
    request_id=st.one_of(st.none(), ids),
    created_after=_times(),
    created_before=_times(),
    updated_after=_times(),
    updated_before=_times(),
    expires_after=_times(),
    expires_before=_times(),
    has_interactions=st.one_of(st.none(), st.booleans()),
    interaction_count_min=st.one_of(st.none(), st.integers(0, 3)),
    interaction_count_max=st.one_of(st.none(), st.integers(0, 3)),
    metadata=st.one_of(st.none(), metadata),
    tags=st.one_of(st.none(), st.lists(st.sampled_from(["x", "y", "z"]), max_size=2)),
    tags_all=st.one_of(st.none(), st.lists(st.sampled_from(["x", "y"]), max_size=2)),
    include_expired=st.booleans(),
)  # fmt: skip
options = st.builds(
    SessionQueryOptions,
    limit=st.one_of(st.none(), st.integers(0, 5)),
    offset=st.integers(0, 4),
    sort_by=st.sampled_from(
        ["created_at", "updated_at", "expires_at", "activity_id", "session_id"]),
    sort_order=st.sampled_from(["asc", "desc"]),
)  # fmt: skip


def _exactly(a: SessionHeader | None, b: SessionHeader) -> None:
    """Equal, and every timestamp with the same UTC offset and every id of the same type."""
    assert a == b
    for name in ("created_at", "updated_at", "expires_at", "last_accessed_at"):
        ours, theirs = getattr(a, name), getattr(b, name)
        assert (ours and ours.isoformat()) == (theirs and theirs.isoformat()), name
    assert type(a.activity_id) is type(b.activity_id)
    assert type(a.request_id) is type(b.request_id)
    assert {k: type(v) for k, v in a.metadata.items()} == {
        k: type(v) for k, v in b.metadata.items()
    }


def _reloaded(table: HeaderTable) -> HeaderTable:
    return HeaderTable.from_columns(orjson.loads(orjson.dumps(table.columns())), CODEC)


@settings(max_examples=300, deadline=None)
@given(
    header_lists(),
    filters,
    options,
    st.integers(0, 6),
    st.one_of(st.none(), st.integers(0, 4)),
)
def test_queries_on_rows_equal_the_reference_on_headers(
    written: list[SessionHeader],
    flt: SessionFilter,
    page: SessionQueryOptions,
    now_at: int,
    idle_seconds: int | None,
) -> None:
    """Select + page on the rows = matches_filter + is_expired + sort_and_page on headers."""
    now = _moment(now_at)
    idle = None if idle_seconds is None else timedelta(seconds=idle_seconds)
    selected = [
        h
        for h in written
        if matches_filter(h, flt) and (flt.include_expired or not is_expired(h, now, idle))
    ]
    expected = sort_and_page(selected, page)
    for table in (HeaderTable.from_headers(written, CODEC), _reloaded(
            HeaderTable.from_headers(written, CODEC))):  # fmt: skip
        assert table.count(flt, now, idle) == len(selected)
        found = table.headers(table.page(table.select(flt, now, idle), page))
        assert [h.session_id for h in found] == [h.session_id for h in expected]
        for ours, theirs in zip(found, expected, strict=True):
            _exactly(ours, theirs)
        live = {h.session_id for h in written if is_expired(h, now, idle)}
        assert {h.session_id for h in table.expired(now, idle)} == live


@settings(max_examples=100, deadline=None)
@given(header_lists(), st.integers(0, 6))
def test_headers_read_back_exactly_from_rows_and_columns(
    written: list[SessionHeader], touched_at: int
) -> None:
    """get() after a write, after a reload from columns, and after touch() is exact."""
    table = HeaderTable(CODEC)
    for h in written:
        table[h.session_id] = h
    reloaded = _reloaded(table)
    for h in written:
        _exactly(table.get(h.session_id), h)
        _exactly(reloaded.get(h.session_id), h)
        assert reloaded.version(h.session_id) == h.version
    for h in written:
        when = _moment(touched_at)
        reloaded.touch(h.session_id, when)
        later = max(h.last_accessed_at, when)
        seen = reloaded.get(h.session_id)
        assert seen is not None
        assert seen.last_accessed_at == later
        assert _reloaded(reloaded).get(h.session_id) == dataclasses.replace(
            h, last_accessed_at=later
        )
    assert sorted(reloaded) == sorted(h.session_id for h in written)
    for h in written:
        assert reloaded.discard(h.session_id)
        assert not reloaded.discard(h.session_id)
    assert len(reloaded) == 0


@pytest.mark.parametrize(
    "wanted",
    [{"$x": 1}, {"k": 1}, {"k": True}, {"k": 2**70}, {"k": 'a"b'}, {"k": ULIDS[0]}, {"k": 1.0}],
)
def test_metadata_filters_find_entries_written_in_any_form(wanted: dict[str, object]) -> None:
    """A metadata entry beside others, behind an escaped key or as a tagged value is found."""
    value = next(iter(wanted.values()))
    written = [
        {"a": 0, **wanted},
        {**wanted, "$y": [1]},
        {"a": {"k": value}},  # (nested: not a top-level match)
        {"k": "1", "$x": "1"},
        {"k": [value]},
    ]
    stored = [
        dataclasses.replace(base, session_id=f"s{n}", metadata=m)
        for n, (base, m) in enumerate(zip([_header()] * len(written), written, strict=True))
    ]
    table = HeaderTable.from_headers(stored, CODEC)
    flt = SessionFilter(metadata=wanted)
    expected = {h.session_id for h in stored if matches_filter(h, flt)}
    assert expected >= {"s0", "s1"} or wanted == {"k": 1.0}
    for candidate in (table, _reloaded(table)):
        assert {sid for sid, _ in candidate.select(flt, BASE, None)} == expected


def _header() -> SessionHeader:
    return SessionHeader(
        session_id="s1",
        processor_id="p",
        activity_id=ULIDS[0],
        request_id="r",
        created_at=BASE,
        updated_at=BASE,
        expires_at=None,
        last_accessed_at=BASE,
        metadata={"k": 1},
        tags=("x",),
        version=1,
        interaction_count=0,
        size_bytes=10,
    )


def _columns() -> dict[str, object]:
    table = HeaderTable(CODEC)
    table["s1"] = _header()
    columns: dict[str, object] = orjson.loads(orjson.dumps(table.columns()))
    return columns


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ids", ["bad/id"]),
        ("ids", ["s1", "s1"]),
        ("created", ["2030"]),
        ("created", [10**20]),
        ("version", [0]),
        ("processor", [1]),
        ("activity", ["not-a-ulid"]),
        ("metadata", [1]),
        ("tagsets", [[1]]),
        ("size", []),
        ("zoned", {"nobody": [None, None, None, None]}),
        ("ids", ["s1\ns2"]),  # (a newline must not pass for the joined check's separator)
        ("activity", ["01JD0000000000000000000000\n01JD0000000000000000000000"]),
        ("metadata", ["not json"]),
        ("metadata", ["[1, 2]"]),
        ("metadata", ['{"$ulid": "nope"}']),
        ("zoned", {"s1": ["2000-01-01T00:00:00+00:00"] * 3 + [None]}),
        (
            "zoned",
            {
                "s1": [
                    "2000-01-01T00:00:00+00:00",
                    "2000-01-01T00:00:00+00:00",
                    None,
                    "2000-01-01T00:00:00+00:00",
                ]
            },
        ),  # disagrees with the row
    ],
)
def test_a_damaged_column_is_refused(name: str, value: object) -> None:
    """Columns that passed the checksum are still validated, each with a clear reason."""
    columns = _columns()
    columns[name] = value
    if name == "ids" and value == ["s1", "s1"]:
        for other in columns:
            if isinstance(columns[other], list) and other not in ("processors", "tagsets"):
                columns[other] = columns[other] * 2  # type: ignore[operator]
    with pytest.raises(BadFile):
        HeaderTable.from_columns(columns, CODEC)


async def test_an_index_in_chunks_reads_back_and_damage_anywhere_rebuilds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A base written in many chunks opens exactly; damage anywhere refuses all of it.

    A flipped byte in a chunk, a cut or an extra line makes the whole base be refused, and
    the index is rebuilt from the session files.
    """
    monkeypatch.setattr(index_module, "ROWS_PER_CHUNK", 3)
    root = tmp_path / "store"
    async with FileSystemSessionStore(root, watch=False) as store:
        for n in range(10):
            await store.create_session(session_object(f"p{n % 3}"), metadata={"n": n})
        await store.optimize()
        store._index_files.fold()  # the deltas into a new base: in chunks
        written = {h.session_id: h for h in await store._scan()}
    lines = (root / "index.json").read_bytes().split(b"\n")
    assert orjson.loads(lines[1])["chunks"] == 4
    assert len(lines) == 2 + 4 + 1  # head, first body line, 4 chunks, the final newline
    files = IndexFiles(FileIO(), root, CODEC, file_mode=0o600, durable=False,
                       fsync_dir=lambda _: None)  # fmt: skip
    loaded = files.load()
    assert loaded is not None
    assert {sid: loaded[1].get(sid) for sid in written} == written
    good = (root / "index.json").read_bytes()
    starts = [i + 1 for i, byte in enumerate(good) if byte == ord("\n")]
    middle = starts[3] + 60  # inside the second chunk's ids (still JSON when flipped)
    for damaged in (
        good[:middle] + bytes([good[middle] ^ 1]) + good[middle + 1 :],
        good[:-10] + b"\n",
        good[:-1] + b"\n{}\n",
    ):
        (root / "index.json").write_bytes(damaged)
        assert files.load() is None
        async with FileSystemSessionStore(root, watch=False) as reopened:  # rebuilt
            assert {h.session_id: h for h in await reopened._scan()} == written


async def test_shutdown_folds_deltas_past_a_quarter_of_the_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So the next open reads one file; smaller deltas are left for later checkpoints."""
    monkeypatch.setattr(index_module, "MIN_FOLD_BYTES", 0)
    root = tmp_path / "store"
    async with FileSystemSessionStore(root, watch=False) as store:
        for n in range(40):
            await store.create_session(session_object(), metadata={"n": n})
        await store.optimize()
        store._index_files.fold()  # a base of 40 sessions
        await store.create_session(session_object())
        await store.optimize()  # one small delta line: under a quarter of the base
        small = (root / "index.delta").stat().st_size
        assert small > 0
    assert (root / "index.delta").stat().st_size == small
    async with FileSystemSessionStore(root, watch=False) as store:
        for n in range(30):
            await store.create_session(session_object(), metadata={"n": n})
        await store.optimize()
        assert (root / "index.delta").stat().st_size > (root / "index.json").stat().st_size / 4
    assert (root / "index.delta").stat().st_size == 0
    async with FileSystemSessionStore(root, watch=False) as store:
        assert await store.count_sessions() == 71
