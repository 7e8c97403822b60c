"""SessionStoreConfig: defaults, durations, and errors that name the option."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from session_persistence import ConfigurationError, InMemorySessionStore, SessionStoreConfig
from session_persistence.testing import eventually, session_object


def test_defaults() -> None:
    """The defaults are a one-hour TTL, 16 MiB sessions, no limits, no idle timeout."""
    config = SessionStoreConfig()
    assert config.ttl() == timedelta(hours=1)
    assert config.idle() is None
    assert config.max_session_bytes == 16 * 1024 * 1024
    assert config.max_sessions is None


def test_durations_accept_seconds_or_timedelta() -> None:
    """Durations may be seconds or timedeltas; None disables TTL and idle expiry."""
    assert SessionStoreConfig(default_session_ttl=90).ttl() == timedelta(seconds=90)
    assert SessionStoreConfig(default_session_ttl=timedelta(minutes=2)).ttl() == timedelta(
        minutes=2
    )
    assert SessionStoreConfig(default_session_ttl=None).ttl() is None
    assert SessionStoreConfig(idle_timeout=1.5).idle() == timedelta(seconds=1.5)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("default_session_ttl", 0),
        ("default_session_ttl", -5),
        ("default_session_ttl", "1h"),
        ("idle_timeout", float("nan")),
        ("cleanup_interval", timedelta(0)),
        ("cleanup_interval", None),
        ("max_sessions", 0),
        ("max_sessions", 2.5),
        ("max_sessions", True),
        ("max_session_bytes", -1),
        ("health_error_threshold", 0),
        ("auto_cleanup_enabled", "yes"),
        ("clock", "now"),
    ],
)
def test_invalid_values_name_the_option(option: str, value: Any) -> None:
    """An invalid option raises ConfigurationError (INVALID_CONFIG) naming it."""
    with pytest.raises(ConfigurationError) as info:
        SessionStoreConfig(**{option: value})
    assert info.value.option == option
    assert info.value.code == "INVALID_CONFIG"
    assert option in str(info.value)


async def test_auto_cleanup_runs_in_background_and_stops() -> None:
    """auto_cleanup_enabled removes expired sessions on its interval; shutdown stops it."""
    store = InMemorySessionStore(
        SessionStoreConfig(auto_cleanup_enabled=True, cleanup_interval=0.02)
    )
    async with store:
        await store.create_session(session_object(), expires_at=datetime.now(UTC))

        async def cleaned() -> bool:
            return (await store.get_stats()).total_sessions == 0

        await eventually(cleaned)
        tasks = list(store._tasks)
        assert tasks
    assert all(task.done() for task in tasks)
