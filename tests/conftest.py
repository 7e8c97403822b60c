"""Settings every test module shares."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# Property tests must not depend on how busy the machine is: no per-example deadline and no
# "too slow" health check (both are timings). The number of examples is set per test.
settings.register_profile(
    "suite", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("suite")
