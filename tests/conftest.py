"""Settings every test module shares."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from _postgres import PostgresServer, PostgresUnavailable, create_database
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


# -- PostgreSQL: one throwaway server per test run (see tests/_postgres.py) --------------------


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresServer | None]:
    """The throwaway PostgreSQL server of this run (``None``: ``SP_POSTGRES_DSN`` names one).

    Started from the PostgreSQL binaries into a temp directory and removed at the end. Skips,
    loudly, only when neither the binaries nor ``SP_POSTGRES_DSN`` can be had; with
    ``SP_REQUIRE_POSTGRES=1`` (``.ci/run`` sets it) that is a failure instead.
    """
    if os.environ.get("SP_POSTGRES_DSN"):
        yield None
        return
    try:
        server = PostgresServer()
    except PostgresUnavailable as exc:
        if os.environ.get("SP_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"SP_REQUIRE_POSTGRES=1 but no PostgreSQL server can be started: {exc}")
        pytest.skip(f"NO POSTGRESQL: the PostgreSQL store's tests did not run: {exc}")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server(postgres_cluster: PostgresServer | None) -> str:
    """The connection string of the run's server (its ``postgres`` database)."""
    if postgres_cluster is None:
        return os.environ["SP_POSTGRES_DSN"]
    return postgres_cluster.dsn()


@pytest.fixture(scope="module")
def postgres_dsn(postgres_server: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database for one test module; its connection string."""
    name = "sp_" + re.sub(r"[^a-z0-9_]", "_", request.module.__name__.rsplit(".", 1)[-1].lower())
    return create_database(postgres_server, name)
