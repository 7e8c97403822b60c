"""The command-line tool, driven on real stores in temp directories (CliRunner and processes)."""

from __future__ import annotations

import asyncio
import io
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import orjson
import pytest
from backup_samples import document, sealed
from click.testing import CliRunner, Result
from rich.console import Console

from session_persistence import (
    BackupError,
    ConfigurationError,
    FileSystemSessionStore,
    InvalidSessionIdError,
    MigrationError,
    SerializationError,
    SessionFilter,
    SessionLimitError,
    SessionNotFoundError,
    SessionStore,
    SessionStoreConfig,
    SQLiteSessionStore,
    StoreCorruptionError,
    StoreIOError,
    StoreLockTimeoutError,
    StoreReadOnlyError,
)
from session_persistence.cli import cli
from session_persistence.cli._support import Exit, NotFoundError, Output, StoreSpec, exit_code_for
from session_persistence.documents import session_to_document
from session_persistence.serialization import default_codec
from session_persistence.testing import session_object

ROOT = Path(__file__).resolve().parent.parent
KINDS = ["filesystem", "sqlite"]


def spec_text(kind: str, tmp_path: Path) -> str:
    """A --store value for a new store of ``kind`` under ``tmp_path``."""
    if kind == "filesystem":
        return f"filesystem:{tmp_path / 'store'}"
    return f"sqlite:{tmp_path / 'data' / 'sessions.db'}"


def build(text: str, **options: Any) -> SessionStore:
    """The store a --store value names, opened by the library (not the CLI)."""
    kind, _, path = text.partition(":")
    config = SessionStoreConfig(**options)
    if kind == "filesystem":
        return FileSystemSessionStore(path, config, watch=False)
    return SQLiteSessionStore(path, config, watch=False)


def fill(text: str) -> dict[str, str]:
    """Three sessions: two of processor a (one tagged, one expired), one of b. Return ids."""

    async def body() -> dict[str, str]:
        async with build(text) as store:
            tagged = await store.create_session(
                session_object("proc-a", interactions=2), tags=["vip"], metadata={"k": 1}
            )
            other = await store.create_session(session_object("proc-b", interactions=1))
            gone = await store.create_session(
                session_object("proc-a"), expires_at=datetime.now(UTC) - timedelta(seconds=1)
            )
            return {"tagged": tagged.session_id, "other": other.session_id, "gone": gone.session_id}

    return asyncio.run(body())


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    """Invoke the CLI in this process; stdout and stderr are kept apart."""
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.stderr
    return orjson.loads(result.stdout)


@pytest.fixture(params=KINDS)
def store_text(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return spec_text(request.param, tmp_path)


# -- choosing the store ----------------------------------------------------------------------------


def test_store_comes_from_the_option_the_environment_or_the_default(tmp_path: Path) -> None:
    """--store wins; else SESSION_STORE_TYPE/PATH; else filesystem:./session_data."""
    assert str(StoreSpec.parse(None, {})) == "filesystem:session_data"
    env = {"SESSION_STORE_TYPE": "sqlite", "SESSION_STORE_PATH": str(tmp_path / "x.db")}
    assert StoreSpec.parse(None, env).kind == "sqlite"
    assert StoreSpec.parse("filesystem:here", env).path == Path("here")
    for bad in ("nowhere", "memory:x", "sqlite:", "mongodb:db", "postgres:"):
        with pytest.raises(click.UsageError, match="expected filesystem"):
            StoreSpec.parse(bad, {})
    with pytest.raises(click.UsageError, match="memory store"):
        StoreSpec.parse(None, {"SESSION_STORE_TYPE": "memory"})
    with pytest.raises(click.UsageError, match="SESSION_STORE_TYPO"):
        StoreSpec.parse(None, {"SESSION_STORE_TYPO": "1"})


def test_environment_selects_the_store(tmp_path: Path) -> None:
    """SESSION_STORE_TYPE and SESSION_STORE_PATH pick the store when --store is absent."""
    text = spec_text("sqlite", tmp_path)
    ids = fill(text)
    env = {"SESSION_STORE_TYPE": "sqlite", "SESSION_STORE_PATH": text.partition(":")[2]}
    listed = as_json(run("ls", "--json", env=env))
    assert {row["session_id"] for row in listed["sessions"]} == {ids["tagged"], ids["other"]}


@pytest.mark.parametrize(
    "command",
    [
        ["ls"],
        ["show", "01JD0000000000000000000000"],
        ["stats"],
        ["health"],
        ["check"],
        ["cleanup"],
        ["backup", "list"],
        ["backup", "create"],
        ["export", "out.jsonl"],
        ["watch", "--timeout", "0.1"],
    ],
)
def test_a_missing_store_is_not_found_and_nothing_is_created(
    store_text: str, tmp_path: Path, command: list[str]
) -> None:
    """Every command but import and migrate needs an existing store: exit 3, one line."""
    before = sorted(tmp_path.rglob("*"))
    result = run(*command, "--store", store_text)
    assert result.exit_code == Exit.NOT_FOUND
    assert result.stderr.startswith("error: no store at ")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert sorted(tmp_path.rglob("*")) == before


def test_a_directory_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    """A directory with other files in it is not taken for a store."""
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"meow")
    result = run("ls", "--store", f"filesystem:{tmp_path / 'photos'}")
    assert result.exit_code == Exit.NOT_FOUND
    assert "not a session-persistence store" in result.stderr


def test_an_unwritable_location_is_an_io_error(tmp_path: Path) -> None:
    """A store under a regular file cannot be created: exit 5, one line, no traceback."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    export = tmp_path / "in.jsonl"
    source = spec_text("filesystem", tmp_path)
    fill(source)
    assert run("export", str(export), "--store", source).exit_code == 0
    for target in (f"filesystem:{blocker / 'store'}", f"sqlite:{blocker / 'sessions.db'}"):
        result = run("import", str(export), "--store", target)
        assert result.exit_code == Exit.UNAVAILABLE, result.stderr
        assert result.stderr.startswith("error: ")
        assert "Traceback" not in result.stderr
    result = run("export", str(blocker / "out.jsonl"), "--store", source)
    assert result.exit_code == Exit.UNAVAILABLE


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits")
def test_a_read_only_store_directory_is_an_io_error(tmp_path: Path) -> None:
    """A store whose directory cannot be written: exit 5 (as a user without the right)."""
    text = spec_text("filesystem", tmp_path)
    fill(text)
    (tmp_path / "store").chmod(0o500)
    try:
        result = run("backup", "create", "--store", text)
        assert result.exit_code == Exit.UNAVAILABLE
    finally:
        (tmp_path / "store").chmod(0o700)


# -- inspecting ------------------------------------------------------------------------------------


def test_ls_filters_sorts_and_limits(store_text: str) -> None:
    """Filters select; --expired and --all include expired sessions; --limit caps the rows."""
    ids = fill(store_text)

    def listed(*options: str) -> list[str]:
        found = as_json(run("ls", "--json", "--store", store_text, *options))
        return [row["session_id"] for row in found["sessions"]]

    assert set(listed()) == {ids["tagged"], ids["other"]}
    assert listed("--processor", "proc-a") == [ids["tagged"]]
    assert listed("--tag", "vip") == [ids["tagged"]]
    assert listed("--expired") == [ids["gone"]]
    assert set(listed("--all")) == set(ids.values())
    assert listed("--all", "--sort", "created_at", "--asc") == [
        ids["tagged"],
        ids["other"],
        ids["gone"],
    ]
    assert listed("--all", "--sort", "created_at", "--limit", "1") == [ids["gone"]]
    assert listed("--since", "1h") != []
    assert listed("--until", "1h") == []
    assert listed("--since", "2999-01-01T00:00:00") == []
    found = as_json(run("ls", "--json", "--store", store_text, "--limit", "1"))
    assert found["total"] == 2
    row = next(r for r in as_json(run("ls", "--json", "--store", store_text))["sessions"]
               if r["session_id"] == ids["tagged"])  # fmt: skip
    assert (row["processor_id"], row["tags"], row["interaction_count"]) == ("proc-a", ["vip"], 2)
    table = run("ls", "--store", store_text, "--limit", "1")
    assert table.exit_code == 0
    assert "1 of 2 session(s)" in table.stdout
    assert "SESSION" in table.stdout
    bad = run("ls", "--store", store_text, "--since", "yesterday")
    assert bad.exit_code == Exit.USAGE
    assert bad.stderr.startswith("error: --since 'yesterday' is not a time")


def test_ls_reads_headers_not_histories(tmp_path: Path) -> None:
    """The ls command lists a session whose history cannot be decoded (headers only)."""
    text = spec_text("sqlite", tmp_path)
    ids = fill(text)
    database = tmp_path / "data" / "sessions.db"
    with sqlite3.connect(database) as db:
        db.execute(
            "UPDATE interactions SET data = 'not json' WHERE session_id = ?", (ids["tagged"],)
        )
    found = as_json(run("ls", "--json", "--store", text))
    rows = {row["session_id"]: row for row in found["sessions"]}
    assert set(rows) == {ids["tagged"], ids["other"]}
    assert rows[ids["tagged"]]["interaction_count"] == 2


def test_show_readable_raw_and_json(store_text: str) -> None:
    """Show prints the session and its interactions; --raw and --json the stored document."""
    ids = fill(store_text)
    readable = run("show", ids["tagged"], "--store", store_text)
    assert readable.exit_code == 0
    assert ids["tagged"] in readable.stdout
    assert "proc-a" in readable.stdout
    assert "2 interaction(s)" in readable.stdout
    raw = orjson.loads(run("show", ids["tagged"], "--raw", "--store", store_text).stdout)
    assert raw["session_id"] == ids["tagged"]
    assert len(raw["interactions"]) == 2
    assert raw["metadata"] == {"k": 1}
    assert as_json(run("show", ids["tagged"], "--json", "--store", store_text)) == raw
    expired = run("show", ids["gone"], "--store", store_text)
    assert "(expired)" in expired.stdout


def test_show_unknown_and_invalid_ids(store_text: str) -> None:
    """An unknown id exits 3; an id that cannot be one (a path) exits 2."""
    fill(store_text)
    unknown = run("show", "01JD0000000000000000000000", "--store", store_text)
    assert unknown.exit_code == Exit.NOT_FOUND
    assert unknown.stderr == f"error: no session 01JD0000000000000000000000 in {store_text}\n"
    hostile = run("show", "../../etc/passwd", "--store", store_text)
    assert hostile.exit_code == Exit.USAGE
    assert "invalid session id" in hostile.stderr


def test_stats_and_health(store_text: str) -> None:
    """Stats reports the counts; health is 0 when healthy."""
    fill(store_text)
    stats = as_json(run("stats", "--json", "--store", store_text))
    assert (stats["total_sessions"], stats["active_sessions"], stats["expired_sessions"]) == (
        3,
        2,
        1,
    )
    assert stats["sessions_by_processor"] == {"proc-a": 2, "proc-b": 1}
    assert "sessions" in run("stats", "--store", store_text).stdout
    health = as_json(run("health", "--json", "--store", store_text))
    assert health["healthy"] is True
    assert run("health", "--store", store_text).stdout.startswith("healthy")


# -- output for people -----------------------------------------------------------------------------


def fill_wide(text: str) -> dict[str, str]:
    """Sessions with a long processor name and tags, and a backup. Return the ids."""

    async def body() -> dict[str, str]:
        async with build(text) as store:
            long = await store.create_session(
                session_object("assist-pipeline-for-the-billing-team", interactions=1),
                tags=["production", "user-session", "billing"],
                metadata={"chat": "01JD0000000000000000000000", "user": "ada"},
            )
            short = await store.create_session(session_object("p"), tags=["x"])
            backup = await store.create_backup()
            return {"long": long.session_id, "short": short.session_id, "backup": backup.backup_id}

    return asyncio.run(body())


@pytest.mark.parametrize("columns", ["60", "80", "100"])
def test_ids_names_and_tags_are_never_cut(store_text: str, columns: str) -> None:
    """At 60 columns or more every table shows whole ids; ls folds names and tags, drops none."""
    ids = fill_wide(store_text)
    env = {"COLUMNS": columns}
    listed = run("ls", "--store", store_text, env=env)
    assert listed.exit_code == 0, listed.stderr
    flat = "".join(listed.stdout.split())  # folded cells, joined again
    for name in ("assist-pipeline-for-the-billing-team", "production", "user-session", "billing"):
        assert name in flat, (name, listed.stdout)
    for session_id in (ids["long"], ids["short"]):
        assert session_id in listed.stdout, listed.stdout  # whole, on one line
    assert "…" not in listed.stdout
    backups = run("backup", "list", "--store", store_text, env=env)
    assert ids["backup"] in backups.stdout, backups.stdout
    assert "…" not in backups.stdout
    shown = run("show", ids["long"], "--store", store_text, env=env)
    assert ids["long"] in shown.stdout
    assert "01JD0000000000000000000000" in "".join(shown.stdout.split())  # in the metadata
    table = listed.stdout.splitlines()[1:-1]  # between the title (a path) and the count
    assert all(len(line) <= int(columns) for line in table), listed.stdout


def test_stats_prints_what_a_person_reads(tmp_path: Path) -> None:
    """Stats shows dashes, "none" and FULL, and no per-process counters that are always 0."""
    for kind in KINDS:
        text = spec_text(kind, tmp_path / kind)
        fill(text)
        assert run("backup", "create", "--store", text).exit_code == 0
        shown = run("stats", "--store", text)
        assert shown.exit_code == 0
        for python in ("None", "[]", "{}", "True", "False"):
            assert python not in shown.stdout.split(), (python, shown.stdout)
        for counter in ("commits", "batches", "fsyncs", "checkpoints", "conflicts", "created"):
            assert counter not in shown.stdout, (counter, shown.stdout)
        assert "last backup" in shown.stdout
        if kind == "sqlite":
            assert "synchronous" in shown.stdout
            assert "FULL" in shown.stdout
            assert "WAL" in shown.stdout
        raw = as_json(run("stats", "--json", "--store", text))
        assert "commits" in raw["backend"]  # scripts still get every figure


def test_ulids_are_accepted_in_any_case(store_text: str) -> None:
    """Show and the backup commands take a ULID in lower case (or mixed) as well."""
    ids = fill_wide(store_text)
    shown = run("show", ids["long"].lower(), "--store", store_text)
    assert shown.exit_code == 0, shown.stderr
    assert ids["long"] in shown.stdout
    mixed = ids["short"][:13].lower() + ids["short"][13:]
    assert run("show", mixed, "--store", store_text).exit_code == 0
    backup = ids["backup"].lower()
    assert run("backup", "verify", backup, "--store", store_text).exit_code == 0
    restored = run("backup", "restore", backup, "--dry-run", "--store", store_text)
    assert restored.exit_code == 0, restored.stderr
    assert run("backup", "delete", backup, "--store", store_text).exit_code == 0
    assert run("backup", "verify", backup, "--store", store_text).exit_code == Exit.NOT_FOUND


@pytest.mark.parametrize(
    "arguments",
    [
        ["ls", "--bogus"],
        ["show"],
        ["ls", "--limit", "many"],
        ["ls", "--sort", "size"],
        ["backup", "frobnicate"],
        ["frobnicate"],
        ["ls", "--since", "yesterday"],  # ours
        ["ls", "--store", "nowhere"],  # ours
    ],
)
def test_usage_errors_are_one_line_and_exit_2(tmp_path: Path, arguments: list[str]) -> None:
    """Usage errors, click's and ours alike: one line on stderr, ``error: ...``, exit 2."""
    store_text = spec_text("filesystem", tmp_path)
    fill(store_text)
    if "--store" not in arguments:
        arguments = (
            [*arguments, "--store", store_text] if arguments[0] != "frobnicate" else arguments
        )
    result = run(*arguments)
    assert result.exit_code == Exit.USAGE
    assert result.stdout == ""
    assert result.stderr.startswith("error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Usage:" not in result.stderr


# -- check -----------------------------------------------------------------------------------------


def test_check_reports_a_corrupt_session_file_and_repair_quarantines_it(tmp_path: Path) -> None:
    """Check exits 1 naming the file's session; --repair moves it to quarantine/, exit 0."""
    text = spec_text("filesystem", tmp_path)
    ids = fill(text)
    damaged = tmp_path / "store" / "sessions" / f"{ids['other']}.json"
    damaged.write_bytes(damaged.read_bytes()[:40])
    report = run("check", "--json", "--store", text)
    assert report.exit_code == Exit.PROBLEMS
    found = orjson.loads(report.stdout)
    assert [(p["kind"], p["target"], p["action"]) for p in found["problems"]] == [
        ("session", ids["other"], None)
    ]
    assert found["sessions_checked"] == 3
    assert damaged.exists()
    table = run("check", "--store", text)
    assert table.exit_code == Exit.PROBLEMS
    assert "check --repair" in table.stdout
    health = run("health", "--store", text)
    assert health.exit_code == Exit.PROBLEMS  # health runs the check too: they agree
    assert ids["other"] in health.stdout
    assert damaged.exists()  # and neither moved it
    repaired = run("check", "--repair", "--store", text)
    assert repaired.exit_code == 0, repaired.stdout
    assert "moved to" in repaired.stdout
    assert "1 repaired, 0 need an operator" in repaired.stdout
    assert not damaged.exists()
    assert len(list((tmp_path / "store" / "quarantine").glob("*.reason"))) == 1
    listed = as_json(run("ls", "--json", "--all", "--store", text))
    assert ids["other"] not in {row["session_id"] for row in listed["sessions"]}
    after = run("check", "--json", "--store", text)
    assert after.exit_code == Exit.PROBLEMS  # the quarantined file waits for an operator
    assert [p["kind"] for p in orjson.loads(after.stdout)["problems"]] == ["quarantine"]
    unhealthy = run("health", "--store", text)
    assert unhealthy.exit_code == Exit.PROBLEMS
    assert "quarantine" in unhealthy.stdout


def test_check_on_a_damaged_sqlite_row(tmp_path: Path) -> None:
    """On SQLite a damaged row is reported; --repair saves its rows and removes it."""
    text = spec_text("sqlite", tmp_path)
    ids = fill(text)
    path = Path(text.partition(":")[2])
    db = __import__("sqlite3").connect(path)
    db.execute("UPDATE interactions SET data = 'nonsense' WHERE session_id = ?", (ids["tagged"],))
    db.commit()
    db.close()
    assert run("check", "--store", text).exit_code == Exit.PROBLEMS
    assert run("check", "--repair", "--store", text).exit_code == 0
    assert run("check", "--store", text).exit_code == 0
    assert len(list(path.parent.glob("sessions.db-quarantine/*.json"))) == 1


# -- cleanup ---------------------------------------------------------------------------------------


def test_cleanup_dry_run_then_for_real(store_text: str) -> None:
    """--dry-run names the expired sessions and removes nothing; then cleanup removes them."""
    ids = fill(store_text)
    dry = as_json(run("cleanup", "--dry-run", "--json", "--store", store_text))
    assert (dry["would_remove"], dry["session_ids"]) == (1, [ids["gone"]])
    assert as_json(run("stats", "--json", "--store", store_text))["total_sessions"] == 3
    done = run("cleanup", "--store", store_text)
    assert done.stdout == "removed 1 expired session(s)\n"
    assert as_json(run("stats", "--json", "--store", store_text))["total_sessions"] == 2


# -- backups ---------------------------------------------------------------------------------------


def test_backup_create_list_verify_restore_delete(store_text: str, tmp_path: Path) -> None:
    """The whole backup cycle through the CLI, by id and by file."""
    ids = fill(store_text)
    created = as_json(run("backup", "create", "--json", "--store", store_text))
    backup_id = created["backup_id"]
    assert created["session_count"] == 2
    listed = as_json(run("backup", "list", "--json", "--store", store_text))
    assert [b["backup_id"] for b in listed["backups"]] == [backup_id]
    assert "1 backup(s)" in run("backup", "list", "--store", store_text).stdout
    verified = run("backup", "verify", backup_id, "--store", store_text)
    assert verified.exit_code == 0
    assert "intact" in verified.stdout
    run("cleanup", "--store", store_text)
    asyncio.run(_delete(store_text, ids["tagged"]))
    dry = as_json(run("backup", "restore", backup_id, "--dry-run", "--json", "--store", store_text))
    assert (dry["restored"], dry["skipped"], dry["dry_run"]) == (1, 1, True)
    restored = as_json(run("backup", "restore", backup_id, "--json", "--store", store_text))
    assert (restored["restored"], restored["skipped"]) == (1, 1)
    shown = as_json(run("show", ids["tagged"], "--json", "--store", store_text))
    assert shown["tags"] == ["vip"]
    backup_file = Path(listed["location"]) / f"{backup_id}.backup"
    copy = tmp_path / "copy.backup"
    copy.write_bytes(backup_file.read_bytes())
    by_file = as_json(run("backup", "verify", str(copy), "--json", "--store", store_text))
    assert by_file["session_count"] == 2
    again = as_json(
        run("backup", "restore", str(copy), "--strategy", "overwrite", "--json", "--store",
            store_text)
    )  # fmt: skip
    assert again["overwritten"] == 2
    assert run("backup", "delete", backup_id, "--store", store_text).exit_code == 0
    missing = run("backup", "delete", backup_id, "--store", store_text)
    assert missing.exit_code == Exit.NOT_FOUND
    for command in ("verify", "restore"):
        gone = run("backup", command, backup_id, "--store", store_text)
        assert gone.exit_code == Exit.NOT_FOUND
        assert "backup list" in gone.stderr
    assert run("backup", "verify", "nope/x.backup", "--store", store_text).exit_code == 3
    assert run("backup", "delete", "../x", "--store", store_text).exit_code == Exit.USAGE


async def _delete(text: str, session_id: str) -> None:
    async with build(text) as store:
        assert await store.delete_session(session_id)


def _sealed_hostile(tmp_path: Path) -> Path:
    """A backup file with a valid checksum holding a session whose id is a path."""
    path = tmp_path / "hostile.backup"
    path.write_bytes(
        sealed([document("01JD0000000000000000000001"), document("../../etc/cron.d/x")])
    )
    return path


def test_a_hostile_backup_is_refused_and_changes_nothing(store_text: str, tmp_path: Path) -> None:
    """Verify and restore refuse a well-sealed backup with a hostile record: exit 4."""
    fill(store_text)
    hostile = _sealed_hostile(tmp_path)
    before = as_json(run("stats", "--json", "--store", store_text))["total_sessions"]
    for command in (["backup", "verify"], ["backup", "restore"]):
        result = run(*command, str(hostile), "--store", store_text)
        assert result.exit_code == Exit.REFUSED
        assert "invalid session id" in result.stderr
        assert result.stderr.count("\n") == 1
    damaged = tmp_path / "damaged.backup"
    damaged.write_bytes(hostile.read_bytes()[:-30])
    assert run("backup", "restore", str(damaged), "--store", store_text).exit_code == 4
    assert as_json(run("stats", "--json", "--store", store_text))["total_sessions"] == before
    assert not list(tmp_path.rglob("cron.d"))


# -- export, import, migrate -----------------------------------------------------------------------


def test_export_then_import_into_a_new_store(tmp_path: Path) -> None:
    """Export writes JSON Lines; import creates the target store and validates first."""
    source = spec_text("filesystem", tmp_path)
    fill(source)
    path = tmp_path / "all.jsonl"
    exported = as_json(run("export", str(path), "--include-expired", "--json", "--store", source))
    assert exported == {"exported": 3, "file": str(path)}
    target = spec_text("sqlite", tmp_path)
    dry = as_json(run("import", str(path), "--dry-run", "--json", "--store", target))
    assert dry["restored"] == 3
    assert not Path(target.partition(":")[2]).exists()  # a dry run creates nothing
    done = run("import", str(path), "--store", target)
    assert done.exit_code == 0
    assert "restored 3" in done.stdout
    assert as_json(run("stats", "--json", "--store", target))["total_sessions"] == 3
    again = as_json(run("import", str(path), "--json", "--store", target))
    assert (again["restored"], again["skipped"]) == (0, 3)
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(path.read_bytes()[:-40])
    refused = run("import", str(broken), "--store", spec_text("filesystem", tmp_path / "x"))
    assert refused.exit_code == Exit.REFUSED
    assert run("import", str(tmp_path / "none.jsonl"), "--store", target).exit_code == 3


@pytest.mark.parametrize("kind", KINDS)
def test_a_failed_import_creates_no_store(tmp_path: Path, kind: str) -> None:
    """An import refused by validation (a damaged file, too many sessions) creates nothing."""
    source = spec_text("filesystem", tmp_path / "source")
    fill(source)
    good = tmp_path / "all.jsonl"
    assert run("export", str(good), "--include-expired", "--store", source).exit_code == 0
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(good.read_bytes()[:-40])
    target = spec_text(kind, tmp_path / "new")
    refused = run("import", str(broken), "--store", target)
    assert refused.exit_code == Exit.REFUSED, refused.stderr
    assert refused.stderr.startswith("error: ")
    full = run("import", str(good), "--store", target, env={"SESSION_STORE_MAX_SESSIONS": "2"})
    assert full.exit_code == Exit.REFUSED, full.stderr
    assert not (tmp_path / "new").exists()  # no database, no directory tree
    assert run("import", str(good), "--store", target).exit_code == 0


async def _contents(text: str) -> list[dict[str, Any]]:
    async with build(text) as store:
        found = await store.list_sessions(SessionFilter(include_expired=True))
        return sorted(
            (session_to_document(s, default_codec) for s in found),
            key=lambda d: str(d["session_id"]),
        )


def test_migrate_filesystem_to_sqlite_and_back_keeps_every_session(tmp_path: Path) -> None:
    """Migrate copies everything (expired too), compares counts, and refuses a full target."""
    first = spec_text("filesystem", tmp_path / "one")
    fill(first)
    original = asyncio.run(_contents(first))
    middle = spec_text("sqlite", tmp_path)
    report = as_json(run("migrate", "--to", middle, "--json", "--store", first))
    assert (report["copied"], report["source_count"], report["target_count"]) == (3, 3, 3)
    assert report["match"] is True
    last = spec_text("filesystem", tmp_path / "two")
    table = run("migrate", "--to", last, "--store", middle)
    assert table.exit_code == 0
    assert "counts match" in table.stdout
    for text in (middle, last):
        copied = asyncio.run(_contents(text))
        for before, after in zip(original, copied, strict=True):
            before.pop("last_accessed_at", None)  # a copy is not an access; reads are
            after.pop("last_accessed_at", None)
            assert after == before
    refused = run("migrate", "--to", last, "--store", first)
    assert refused.exit_code == Exit.STATE
    assert "already holds 3 session(s)" in refused.stderr
    itself = run("migrate", "--to", first, "--store", first)
    assert itself.exit_code == Exit.USAGE


# -- watch -----------------------------------------------------------------------------------------

CREATE = """
import asyncio, sys
from session_persistence import FileSystemSessionStore, SQLiteSessionStore, SessionObject
from ulid import ULID

async def main():
    kind, path = sys.argv[1].split(":", 1)
    cls = FileSystemSessionStore if kind == "filesystem" else SQLiteSessionStore
    async with cls(path, watch=False) as store:
        session = await store.create_session(SessionObject("writer", ULID(), ULID()))
        print(session.session_id, flush=True)

asyncio.run(main())
"""


@pytest.fixture
def watcher(store_text: str) -> Iterator[subprocess.Popen[str]]:
    fill(store_text)
    process = subprocess.Popen(
        [sys.executable, "-m", "session_persistence", "watch", "--json", "--count", "1",
         "--timeout", "30", "--store", store_text],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        yield process
    finally:
        process.kill()
        process.communicate()


def test_watch_shows_another_process_creating_a_session(
    watcher: subprocess.Popen[str], store_text: str
) -> None:
    """Watch in one process prints a session created by a second one.

    How soon (the issue asks for within a second) is a timing: the benchmark's ``watch``
    workload measures it, p99 against 1,000 ms, on both stores.
    """
    assert watcher.stderr is not None
    assert watcher.stdout is not None
    ready = watcher.stderr.readline()
    assert ready.startswith("watching "), ready
    writer = subprocess.run(
        [sys.executable, "-c", CREATE, store_text], capture_output=True, text=True, check=True
    )
    session_id = writer.stdout.strip()
    event = orjson.loads(watcher.stdout.readline())
    assert (event["event"], event["session_id"], event["processor_id"]) == (
        "created",
        session_id,
        "writer",
    )
    assert watcher.wait(timeout=10) == 0


def test_watch_stops_after_its_timeout(store_text: str) -> None:
    """--timeout ends a quiet watch with exit 0."""
    fill(store_text)
    result = run("watch", "--timeout", "0.3", "--store", store_text)
    assert result.exit_code == 0
    assert result.stderr.startswith("watching ")


# -- the tool as installed, help, docs and exit codes ----------------------------------------------


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name)


def test_every_command_has_help_and_is_documented() -> None:
    """Each command answers --help and has a section with example output in docs/cli.md."""
    commands = list(_commands(cli))
    assert len(commands) == 17
    manual = (ROOT / "docs" / "cli.md").read_text()
    for command in commands:
        result = run(*command, "--help")
        assert result.exit_code == 0
        assert "--json" in result.stdout
        assert "--store" in result.stdout
        heading = f"### `session-persistence {' '.join(command)}"
        assert heading in manual, heading
        section = manual.split(heading, 1)[1].split("\n### ", 1)[0]
        assert "```console" in section, f"{heading} has no example output"


def test_exit_codes_are_documented_and_mapped() -> None:
    """docs/cli.md lists every exit code; errors map to the documented ones."""
    manual = (ROOT / "docs" / "cli.md").read_text()
    for code in Exit:
        assert f"| {int(code)} |" in manual, code
    cases: list[tuple[BaseException, Exit]] = [
        (NotFoundError("x"), Exit.NOT_FOUND),
        (SessionNotFoundError("x"), Exit.NOT_FOUND),
        (BackupError("x"), Exit.REFUSED),
        (StoreCorruptionError("x"), Exit.REFUSED),
        (SerializationError("x"), Exit.REFUSED),
        (InvalidSessionIdError("../x"), Exit.USAGE),
        (ConfigurationError("o", "bad"), Exit.USAGE),
        (MigrationError("x", "t"), Exit.STATE),
        (SessionLimitError(1), Exit.STATE),
        (StoreIOError("x"), Exit.UNAVAILABLE),
        (StoreLockTimeoutError("x"), Exit.UNAVAILABLE),
        (PermissionError("x"), Exit.UNAVAILABLE),
        # Only commands that change nothing open a store read-only: a change refused is a bug.
        (StoreReadOnlyError("x"), Exit.INTERNAL),
        (RuntimeError("bug"), Exit.INTERNAL),
    ]
    for error, code in cases:
        assert exit_code_for(error) == code, error


def test_the_console_script_and_python_m_run(tmp_path: Path) -> None:
    """Both entry points are installed and behave the same."""
    script = Path(sys.executable).with_name("session-persistence")
    for command in ([str(script)], [sys.executable, "-m", "session_persistence"]):
        result = subprocess.run(
            [*command, "ls", "--store", f"filesystem:{tmp_path / 'none'}"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == Exit.NOT_FOUND
        assert result.stderr.startswith("error: no store at")
        version = subprocess.run(
            [*command, "--version"], capture_output=True, text=True, check=True
        )
        assert "session-persistence" in version.stdout


# Installed without the cli extra: click and rich cannot be imported (a sitecustomize on
# PYTHONPATH hides them from the interpreter the entry points start).
HIDE_THE_EXTRA = """
import importlib.abc, sys

class HideTheExtra(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("click", "rich"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, HideTheExtra())
"""


@pytest.mark.parametrize("entry", ["console script", "python -m"])
def test_without_the_cli_extra_both_entry_points_say_so_in_one_line(
    tmp_path: Path, entry: str
) -> None:
    """Without click and rich, --help and a command print one line naming the extra: exit 2."""
    (tmp_path / "sitecustomize.py").write_text(HIDE_THE_EXTRA)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    script = Path(sys.executable).with_name("session-persistence")
    command = (
        [str(script)]
        if entry == "console script"
        else [sys.executable, "-m", "session_persistence"]
    )
    hidden = subprocess.run(
        [sys.executable, "-c", "import click"], env=env, capture_output=True, text=True, check=False
    )
    assert "No module named 'click'" in hidden.stderr  # the extra is really hidden
    for arguments in (["--help"], ["ls"]):
        result = subprocess.run(
            [*command, *arguments],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == Exit.USAGE
        assert result.stdout == ""
        assert result.stderr.startswith("error: the command-line tool needs the 'cli' extra")
        assert "pip install 'session-persistence[cli]'" in result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sitecustomize.py"]


def test_after_the_demo_the_readme_commands_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run the demo as make demo does, then the README's commands with no other set-up."""
    monkeypatch.chdir(tmp_path)
    subprocess.run(
        [sys.executable, str(ROOT / "examples" / "processor_pipeline.py")],
        check=True,
        capture_output=True,
    )
    listed = as_json(run("ls", "--json"))
    assert listed["total"] == 4
    first = listed["sessions"][0]["session_id"]
    assert run("show", first).exit_code == 0
    assert run("stats").exit_code == 0
    created = run("backup", "create")
    assert created.exit_code == 0
    assert "created backup" in created.stdout
    assert "1 backup(s)" in run("backup", "list").stdout
    readme = (ROOT / "README.md").read_text()
    for command in ("ls", "show", "stats", "backup create", "backup list"):
        assert f"session-persistence {command}" in readme


def test_progress_bars_show_counts_on_a_terminal() -> None:
    """On a terminal the bar shows done/total and a rate; for JSON and pipes, nothing."""
    output = Output(json=False)
    screen = io.StringIO()
    output.err = Console(file=screen, force_terminal=True, width=100)
    with output.progress("checking") as progress:
        for done in range(1, 11):
            progress(done, 10)
    shown = screen.getvalue()
    assert "checking" in shown
    assert "10/10" in shown
    quiet = Output(json=True)
    quiet.err = Console(file=io.StringIO(), force_terminal=True)
    with quiet.progress("checking") as progress:
        progress(1, 1)
    assert quiet.err.file.getvalue() == ""  # type: ignore[attr-defined]
