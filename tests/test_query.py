"""Query helpers: the heap-based page equals a full sort, for every sort key and order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from session_persistence import SessionHeader, SessionQueryOptions
from session_persistence.query import sort_and_page

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
