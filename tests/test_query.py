"""Query helpers: the heap-based page equals a full sort, for every sort key and order."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ulid import ULID

from session_persistence import SessionFilter, SessionHeader, SessionQueryOptions
from session_persistence.query import compile_filter, matches_filter, sort_and_page

BASE = datetime(2030, 1, 1, tzinfo=UTC)


def header(n: int, created: int, updated: int, expires: int | None) -> SessionHeader:
    return SessionHeader(
        session_id=f"s{n:04d}",
        processor_id="p",
        activity_id=f"a{created % 3}",
        request_id="r",
        created_at=BASE + timedelta(seconds=created),
        updated_at=BASE + timedelta(seconds=updated),
        expires_at=None if expires is None else BASE + timedelta(seconds=expires),
        last_accessed_at=BASE,
        metadata={},
        tags=(),
        version=1,
        interaction_count=0,
        size_bytes=1,
    )


rows = st.lists(
    st.tuples(st.integers(0, 5), st.integers(0, 5), st.one_of(st.none(), st.integers(0, 5))),
    max_size=30,
)


@given(
    rows,
    st.sampled_from(["created_at", "updated_at", "expires_at", "activity_id", "session_id"]),
    st.sampled_from(["asc", "desc"]),
    st.integers(0, 10),
    st.one_of(st.none(), st.integers(0, 10)),
)
def test_page_equals_slice_of_full_sort(
    data: list[tuple[int, int, int | None]],
    sort_by: str,
    order: str,
    offset: int,
    limit: int | None,
) -> None:
    """Sorting then paginating gives exactly the matching slice of the full ordering."""
    headers = [header(n, *row) for n, row in enumerate(data)]
    everything = sort_and_page(headers, SessionQueryOptions(sort_by=sort_by, sort_order=order))  # type: ignore[arg-type]
    page = sort_and_page(
        headers,
        SessionQueryOptions(sort_by=sort_by, sort_order=order, offset=offset, limit=limit),  # type: ignore[arg-type]
    )
    end = None if limit is None else offset + limit
    assert page == everything[offset:end]
    assert len({h.session_id for h in everything}) == len(headers)


def _times() -> st.SearchStrategy[datetime | None]:
    return st.one_of(st.none(), st.integers(0, 5).map(lambda s: BASE + timedelta(seconds=s)))


ulids = [ULID.from_str("01JD0000000000000000000000"), ULID.from_str("01JD0000000000000000000001")]
ids = st.sampled_from(["p", "q", "a0", "a1", str(ulids[0]), ulids[0], ulids[1]])
filters = st.builds(
    SessionFilter,
    processor_id=st.one_of(st.none(), ids.filter(lambda v: isinstance(v, str)), st.lists(
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
    metadata=st.one_of(st.none(), st.just({"k": 1}), st.just({"k": "1"})),
    tags=st.one_of(st.none(), st.lists(st.sampled_from(["x", "y", "z"]), max_size=2)),
    tags_all=st.one_of(st.none(), st.lists(st.sampled_from(["x", "y"]), max_size=2)),
    include_expired=st.booleans(),
)  # fmt: skip
headers = st.builds(
    lambda n, c, u, e, processor, activity, count, meta, tags: dataclasses.replace(
        header(n, c, u, e),
        processor_id=processor,
        activity_id=activity,
        interaction_count=count,
        metadata=meta,
        tags=tuple(tags),
    ),
    st.integers(0, 99),
    st.integers(0, 5),
    st.integers(0, 5),
    st.one_of(st.none(), st.integers(0, 5)),
    st.sampled_from(["p", "q"]),
    st.sampled_from(["a0", str(ulids[0]), ulids[0], ulids[1]]),
    st.integers(0, 3),
    st.sampled_from([{}, {"k": 1}, {"k": "1"}, {"k": 1, "j": 2}]),
    st.lists(st.sampled_from(["x", "y", "z"]), max_size=3),
)


def _agree(flt: SessionFilter, candidates: list[SessionHeader]) -> None:
    matches = compile_filter(flt)
    for candidate in candidates:
        assert matches(candidate) == matches_filter(candidate, flt)


@settings(max_examples=400)
@given(filters, st.lists(headers, max_size=8))
def test_compiled_filters_agree_with_matches_filter(
    flt: SessionFilter, candidates: list[SessionHeader]
) -> None:
    """compile_filter(flt) selects exactly what matches_filter selects, for any filter."""
    _agree(flt, candidates)


@pytest.mark.slow
@settings(max_examples=10_000)
@given(filters, st.lists(headers, max_size=8))
def test_compiled_filters_agree_at_length(
    flt: SessionFilter, candidates: list[SessionHeader]
) -> None:
    """The same, on 10,000 filters (make test-slow)."""
    _agree(flt, candidates)
