# One entry point for people and CI. `make test` and `make demo` work on a fresh clone: they
# create .venv and install everything the project needs from its own files.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install postgres-binaries demo test lint typecheck pytest test-compat test-sentient test-slow crash-test fuzz \
	bench bench-quick bench-scale clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) examples/processor_pipeline.py
	@echo
	@echo "Look at what it stored: $(VENV)/bin/session-persistence ls | show ID | stats | backup create"

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy --strict session_persistence

# The PostgreSQL store's tests start a throwaway server from initdb and pg_ctl
# (tests/_postgres.py). When neither PATH nor /usr/lib/postgresql/*/bin has them, install
# Debian's postgresql package (as root, as CI runs); otherwise say that those tests will skip
# (.ci/run sets SP_REQUIRE_POSTGRES=1, which makes that skip a failure).
postgres-binaries:
	@if { command -v initdb && command -v pg_ctl; } >/dev/null 2>&1 \
		|| ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's postgresql package for the PostgreSQL store's tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends postgresql >/dev/null; \
	else \
		echo "initdb/pg_ctl not found and not root: the PostgreSQL store's tests will skip"; \
	fi

# Branch coverage with a floor: a drop below it fails the run.
pytest: $(STAMP) postgres-binaries
	$(PY) -m pytest -m "not slow" -q --cov=session_persistence --cov-branch \
		--cov-report=term:skip-covered --cov-fail-under=92

test: lint typecheck pytest test-compat test-sentient bench-quick

# The spec promises python-ulid 3.x as well as 4.x: run again, against 3.x, the tests that
# touch python-ulid: the codec and id decoding, queries and sorting on ULIDs, DefaultSession's
# ids, and one conformance run per backend (each stores and reads ULIDs its own way). The rest
# of the suite does not depend on which python-ulid is installed.
COMPAT := .venv-ulid3
COMPAT_TESTS := tests/test_serialization.py tests/test_query.py tests/test_store_base.py \
	tests/test_default_session.py tests/test_memory_store.py \
	tests/test_filesystem_store.py::TestFileSystemProcessConformance \
	tests/test_sqlite_store.py::TestSQLiteMemoryConformance
$(COMPAT)/.installed: pyproject.toml
	$(PYTHON) -m venv $(COMPAT)
	$(COMPAT)/bin/python -m pip install --quiet --upgrade pip
	$(COMPAT)/bin/python -m pip install --quiet -e '.[dev]' 'python-ulid>=3,<4'
	@touch $@

test-compat: $(COMPAT)/.installed
	$(COMPAT)/bin/python -m pytest -m "not slow" -q -p no:cacheprovider $(COMPAT_TESTS)

# register_pydantic against the real Sentient Agent Framework 0.3.0 events. The framework pins
# fastapi 0.115 (starlette < 0.47) and python-ulid 3.0.0, while the agents extra's openai-agents
# needs starlette >= 1.3.1: they cannot share the dev venv, so its test runs in a venv of its own
# (and skips in the dev one).
SENTIENT := .venv-sentient
$(SENTIENT)/.installed: pyproject.toml
	$(PYTHON) -m venv $(SENTIENT)
	$(SENTIENT)/bin/python -m pip install --quiet --upgrade pip
	$(SENTIENT)/bin/python -m pip install --quiet -e '.[testing,pydantic]' pytest-timeout \
		'sentient-agent-framework==0.3.0'
	@touch $@

test-sentient: $(SENTIENT)/.installed
	$(SENTIENT)/bin/python -m pytest -q -p no:cacheprovider tests/test_pydantic_sentient.py

# Long torture runs (many crash points, big stores); not part of the default run.
test-slow: $(STAMP)
	$(PY) -m pytest -m slow -q --timeout 0

# The SIGKILL crash tests at length: 1,000 rounds each (override with SP_CRASH_RUNS=n) of a
# killed writer, of a killed writer on a sealed and compressed store (500), and of a killed
# writer plus optimizer with frequent checkpoints.
crash-test: $(STAMP)
	SP_CRASH_RUNS=$${SP_CRASH_RUNS:-1000} $(PY) -m pytest -q -p no:cacheprovider --timeout 0 \
		tests/test_filesystem_processes.py -k sigkill_at_random

# The reader fuzzer at length: 20,000 damaged plain stores and 5,000 sealed and compressed ones
# (SP_FUZZ_RUNS=n, SP_FUZZ_SEALED_RUNS=n to change), each stopping after 50 failing ones
# (SP_FUZZ_MAX_FAILURES=0: never). Replay with the SP_FUZZ_SEED it prints.
fuzz: $(STAMP)
	SP_FUZZ_RUNS=$${SP_FUZZ_RUNS:-20000} SP_FUZZ_SEALED_RUNS=$${SP_FUZZ_SEALED_RUNS:-5000} \
		SP_FUZZ_MAX_FAILURES=$${SP_FUZZ_MAX_FAILURES:-50} \
		$(PY) -m pytest -q -s -p no:cacheprovider --timeout 0 tests/test_fuzz_readers.py

# Benchmarks against the peers (docs/benchmarks.md), the compared sides in alternating rounds.
# `bench` (6 to 8 minutes) writes the JSON, the Markdown report and the chart to
# benchmarks/results/; `bench-quick` (about a minute) runs every workload small, so the
# harness cannot rot, and writes *-quick.* files (git-ignored). `bench-scale` grows a
# filesystem store to 1,000,000 sessions in blocks and opens it (*-scale.*); try it small with
# SP_BENCH_SCALE_BLOCK=10000 SP_BENCH_SCALE_BLOCKS=3.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	@touch $@

bench: $(BENCH_STAMP) postgres-binaries
	$(PY) benchmarks/run.py

bench-quick: $(BENCH_STAMP) postgres-binaries
	$(PY) benchmarks/run.py --quick

bench-scale: $(BENCH_STAMP)
	$(PY) benchmarks/run.py --scale

clean:
	rm -rf $(VENV) $(COMPAT) $(SENTIENT) .mypy_cache .pytest_cache .ruff_cache build *.egg-info
