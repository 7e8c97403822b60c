"""Conformance: stats, health and optimize."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from ..config import seconds
from ..models import SessionFilter
from ..stores.base import SessionStore
from ._base import FakeClock, StoreTestBase, session_object


class MonitoringConformance(StoreTestBase):
    """Stats come from the index; health is real and recovers; optimize cleans up."""

    async def test_stats_count_sessions(self, store: SessionStore, clock: FakeClock) -> None:
        """get_stats reports totals, expired, per-processor counts, sizes and ages."""
        first = await store.create_session(session_object("a"))
        clock.advance(1)
        await store.create_session(session_object("a"))
        clock.advance(1)
        last = await store.create_session(
            session_object("b"), expires_at=clock.now + timedelta(seconds=1)
        )
        clock.advance(2)
        stats = await store.get_stats()
        assert stats.total_sessions == 3
        assert stats.active_sessions == 2
        assert stats.expired_sessions == 1
        assert stats.sessions_by_processor == {"a": 2, "b": 1}
        assert stats.storage_size_bytes > 0
        assert stats.oldest_session == first.created_at
        assert stats.newest_session == last.created_at
        assert stats.backend["store_type"] == store.store_type

    async def test_empty_store_stats(self, store: SessionStore) -> None:
        """An empty store reports zeros and no oldest/newest session."""
        stats = await store.get_stats()
        assert (stats.total_sessions, stats.oldest_session, stats.newest_session) == (0, None, None)

    async def test_health_is_good_then_recovers_after_errors_age_out(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        """A recent storage error makes the store unhealthy; once it ages out, healthy again."""
        assert (await store.health_check()).healthy
        store._record_error(OSError("simulated disk hiccup"))
        status = await store.health_check()
        assert not status.healthy
        assert "simulated disk hiccup" in status.issues[0]
        clock.advance(seconds(store.config.health_error_window) + 1)
        assert (await store.health_check()).healthy

    async def test_health_reports_closed_store(self, store: SessionStore) -> None:
        """A store that is shut down is reported unhealthy with a clear issue."""
        await store.shutdown()
        status = await store.health_check()
        assert not status.healthy
        assert "not initialized" in status.issues[0]

    async def test_optimize_removes_expired(
        self, open_store: Callable[..., Any], clock: FakeClock
    ) -> None:
        """optimize() removes expired sessions and says so."""
        store = await open_store(health_error_window=timedelta(seconds=30))
        await store.create_session(session_object(), expires_at=clock.now)
        result = await store.optimize()
        assert result.performance_impact["expired_removed"] == 1
        assert any("expired" in line for line in result.operations_performed)

    async def test_check_reads_back_every_session_and_backup(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        """check() on a sound store finds nothing, counts what it read, reports progress."""
        for number in range(3):
            await store.create_session(session_object(interactions=number))
        await store.create_session(session_object(), expires_at=clock.now)  # expired: checked too
        await store.create_backup()
        seen: list[tuple[int, int | None]] = []
        report = await store.check(progress=lambda done, total: seen.append((done, total)))
        assert (report.sessions_checked, report.backups_checked) == (4, 1)
        assert report.ok
        assert report.problems == []
        assert seen[-1] == (5, 5)
        repaired = await store.check(repair=True)
        assert (repaired.ok, repaired.repair) == (True, True)
        assert await store.count_sessions(SessionFilter(include_expired=True)) == 4
