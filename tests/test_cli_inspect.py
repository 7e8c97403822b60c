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

import pytest
from click.testing import CliRunner, Result

from session_persistence import FileSystemSessionStore
from session_persistence.cli import cli
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
    """ls, show, stats, export, watch, backup list|verify, the dry runs, migrate's source."""
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
