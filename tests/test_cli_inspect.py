"""Looking never changes a store (issue 17, item 6): the CLI on a damaged filesystem store.

Every command that only looks opens the store read-only, so a damaged session file stays where
it is, byte for byte; ``health`` and ``check`` report the same damage; and the advice matches
what ``check --repair`` actually does.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from session_persistence import CheckProblem, FileSystemSessionStore
from session_persistence.cli import cli
from session_persistence.cli._maintain import repair_advice
from session_persistence.cli._support import Exit
from session_persistence.testing import interaction, session_object


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root``, by relative path, with its bytes."""
    found = {}
    for directory, _dirs, files in os.walk(root):
        for name in files:
            path = Path(directory, name)
            found[str(path.relative_to(root))] = path.read_bytes()
    return found


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x04
    path.write_bytes(bytes(data))


def damaged_store(tmp_path: Path, how: str) -> dict[str, Any]:
    """A filesystem store with one damaged session, and what the commands need to name.

    The session's base file is overwritten with garbage (``garbage``), or its tail has a
    flipped byte (``tail``). A healthy and an expired session, a backup and an export are
    taken before the damage.
    """
    root = tmp_path / "store"

    async def body() -> dict[str, Any]:
        async with FileSystemSessionStore(root, watch=False) as store:
            damaged = await store.create_session(session_object("proc-a", interactions=1))
            other = await store.create_session(session_object("proc-b", interactions=2))
            await store.optimize()  # the sessions are in their own files now
            if how == "tail":
                for text in ("one", "two"):
                    await store.append_interactions(damaged.session_id, interaction(text))
            await store.create_session(
                session_object("proc-a"), expires_at=datetime.now(UTC) - timedelta(seconds=1)
            )
            backup = await store.create_backup()
            await store.export_sessions(tmp_path / "in.jsonl")
            return {"damaged": damaged.session_id, "other": other.session_id, "backup": backup}

    found = asyncio.run(body())
    if how == "tail":
        tail = root / "sessions" / f"{found['damaged']}.tail"
        assert tail.exists()
        flip(tail, 30)
    else:
        (root / "sessions" / f"{found['damaged']}.json").write_bytes(b"garbage, not a session\n")
    found["root"] = root
    found["store"] = f"filesystem:{root}"
    found["backup_file"] = str(root / "backups" / f"{found['backup'].backup_id}.backup")
    found["backup"] = found["backup"].backup_id
    return found


@pytest.mark.parametrize("how", ["garbage", "tail"])
def test_read_only_commands_leave_a_damaged_store_byte_for_byte_unchanged(
    tmp_path: Path, how: str
) -> None:
    """ls, show, stats, health, check, export, watch, backup list|verify and the dry runs."""
    store = damaged_store(tmp_path, how)
    damaged, other = store["damaged"], store["other"]
    before = snapshot(store["root"])
    assert f"sessions/{damaged}.json" in before
    looks: list[tuple[list[str], int]] = [
        (["ls"], 0),
        (["ls", "--all", "--json"], 0),
        (["show", other], 0),
        (["show", other, "--raw"], 0),
        (["show", damaged], Exit.REFUSED),
        (["show", damaged.lower()], Exit.REFUSED),
        (["stats"], 0),
        (["stats", "--json"], 0),
        (["health"], Exit.PROBLEMS),
        (["health", "--json"], Exit.PROBLEMS),
        (["check"], Exit.PROBLEMS),
        (["check", "--json"], Exit.PROBLEMS),
        (["export", str(tmp_path / "out.jsonl"), "--include-expired"], 0),
        (["watch", "--timeout", "0.2"], 0),
        (["backup", "list"], 0),
        (["backup", "verify", store["backup"]], 0),
        (["backup", "verify", store["backup_file"]], 0),
        (["backup", "restore", store["backup"], "--dry-run", "--strategy", "overwrite"], 0),
        (["cleanup", "--dry-run"], 0),
        (["import", str(tmp_path / "in.jsonl"), "--dry-run", "--strategy", "overwrite"], 0),
        (["migrate", "--to", f"sqlite:{tmp_path / 'copy.db'}"], Exit.PROBLEMS),
    ]
    for arguments, code in looks:
        result = run(*arguments, "--store", store["store"])
        assert result.exit_code == code, (arguments, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        assert snapshot(store["root"]) == before, arguments
    shown = run("show", damaged, "--store", store["store"])
    assert damaged in shown.stderr
    assert "nothing was moved" in shown.stderr
    # The damaged session is not copied, and migrate says where to look.
    copied = run("migrate", "--to", f"sqlite:{tmp_path / 'again.db'}", "--store", store["store"])
    assert "counts differ" in copied.stdout
    assert "'session-persistence check'" in copied.stdout


@pytest.mark.parametrize("how", ["garbage", "tail"])
def test_health_and_check_agree_and_the_advice_matches_what_repair_does(
    tmp_path: Path, how: str
) -> None:
    """Both name the damaged session, and only the advice that applies is given.

    After the repair only the quarantined file is left, with no advice to repair again, and
    a second repair changes nothing and says so.
    """
    store = damaged_store(tmp_path, how)
    damaged, text = store["damaged"], store["store"]

    health = run("health", "--store", text)
    assert health.exit_code == Exit.PROBLEMS
    assert health.stdout.startswith("unhealthy")
    assert damaged in health.stdout
    assert "check --repair" in health.stdout  # it can be set aside
    health_json = orjson.loads(run("health", "--json", "--store", text).stdout)
    assert health_json["healthy"] is False
    assert [(p["kind"], p["target"]) for p in health_json["problems"]] == [("session", damaged)]
    assert any(damaged in issue for issue in health_json["issues"])

    check = run("check", "--store", text)
    assert check.exit_code == Exit.PROBLEMS
    assert damaged in check.stdout
    assert "run 'check --repair'" in check.stdout
    found = orjson.loads(run("check", "--json", "--store", text).stdout)
    assert [(p["kind"], p["target"]) for p in found["problems"]] == [("session", damaged)]
    assert found["repairable"] == 1

    repaired = run("check", "--repair", "--store", text)
    assert repaired.exit_code == 0, repaired.stdout
    assert "1 repaired" in repaired.stdout
    assert not (store["root"] / "sessions" / f"{damaged}.json").exists()

    after = run("check", "--store", text)
    assert after.exit_code == Exit.PROBLEMS
    *files, summary = after.stdout.splitlines()
    assert len(files) == (2 if how == "tail" else 1)  # the base file, and its tail if any
    for line in files:  # each quarantined file, with what to do about it
        assert line.startswith("quarantine ")
        assert damaged in line
        assert "inspect it" in line
        assert "from a backup" in line
        assert "delete the file" in line
    assert "--repair" not in after.stdout
    assert "need an operator" in summary
    after_json = orjson.loads(run("check", "--json", "--store", text).stdout)
    assert {p["kind"] for p in after_json["problems"]} == {"quarantine"}
    assert after_json["repairable"] == 0

    unhealthy = run("health", "--store", text)
    assert unhealthy.exit_code == Exit.PROBLEMS
    assert "quarantine" in unhealthy.stdout
    assert "--repair" not in unhealthy.stdout

    before = snapshot(store["root"])
    again = run("check", "--repair", "--store", text)
    assert again.exit_code == Exit.PROBLEMS  # the quarantined file still waits for an operator
    assert snapshot(store["root"]) == before
    assert "nothing to repair" in again.stdout
    assert "repaired:" not in again.stdout
    again_json = orjson.loads(run("check", "--repair", "--json", "--store", text).stdout)
    assert {(p["kind"], p["action"]) for p in again_json["problems"]} == {("quarantine", None)}
    assert snapshot(store["root"]) == before


def test_a_healthy_store_is_healthy_with_no_problems(tmp_path: Path) -> None:
    """The fields of `health --json` are kept; the check's are added (none here)."""
    root = tmp_path / "store"

    async def body() -> None:
        async with FileSystemSessionStore(root, watch=False) as store:
            await store.create_session(session_object())

    asyncio.run(body())
    health = run("health", "--json", "--store", f"filesystem:{root}")
    assert health.exit_code == 0, health.stderr
    shown = orjson.loads(health.stdout)
    assert shown["healthy"] is True
    assert (shown["issues"], shown["problems"]) == ([], [])
    assert (shown["sessions_checked"], shown["backups_checked"]) == (1, 0)
    assert {"last_check", "details"} <= set(shown)
    repair = run("check", "--repair", "--store", f"filesystem:{root}")
    assert repair.exit_code == 0
    assert repair.stdout.startswith("ok: ")


def test_repair_is_advised_only_for_what_a_repair_acts_on() -> None:
    """Problems the store marks repairable get the advice; the rest are for an operator."""
    fixable = [
        CheckProblem(kind="session", target="S", problem="damaged: x", repairable=True),
        CheckProblem(kind="journal", target="j", problem="a stale generation", repairable=True),
    ]
    for_an_operator = [
        CheckProblem(kind="quarantine", target="q", problem="quarantined earlier (x); inspect it"),
        CheckProblem(kind="journal", target="j", problem="the line at bytes 0-9 fails it"),
        CheckProblem(kind="database", target="d", problem="PRAGMA quick_check reports: x"),
    ]
    assert repair_advice(for_an_operator) is None
    assert repair_advice([]) is None
    assert repair_advice(fixable) == "run 'check --repair' to set aside what is damaged"
    mixed = repair_advice([fixable[0], *for_an_operator])
    assert mixed is not None
    assert "the 1 it can; the others need an operator" in mixed
