"""Settings every test module shares."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from full_disk import mounted_tmpfs
from hypothesis import HealthCheck, settings

# Property tests must not depend on how busy the machine is: no per-example deadline and no
# "too slow" health check (both are timings). The number of examples is set per test.
settings.register_profile(
    "suite", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("suite")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted for the test (skipped, with the reason, where mount fails)."""
    with mounted_tmpfs(tmp_path / "disk") as where:
        yield where
