"""The command line on sealed stores: keys, ``keys status|rotate``, missing keys (exit 2).

Keys come from ``SESSION_STORE_KEYS`` or ``--keys-env``; a sealed record whose key is missing
is one line on stderr and exit 2, never a traceback.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click
import orjson
import pytest
from _sealing import K1, K2, KEYS, hits
from click.testing import CliRunner, Result

from session_persistence import (
    BackupOptions,
    FileSystemSessionStore,
    SessionStore,
    SessionStoreConfig,
    SQLiteSessionStore,
)
from session_persistence.cli import cli
from session_persistence.cli._support import Exit, StoreSpec, exit_code_for
from session_persistence.errors import SealingKeyError
from session_persistence.sealing import Keyring
from session_persistence.testing import session_object

MARKER = "heron-basalt-2207"
#: What SESSION_STORE_KEYS holds for KEYS (k1 active) and after a move to k2.
K1_FIRST = f"{K1.encoded()},{K2.encoded()}"
K2_FIRST = f"{K2.encoded()},{K1.encoded()}"
NO_KEYS = {"SESSION_STORE_KEYS": ""}


def _text(kind: str, tmp_path: Path) -> str:
    if kind == "filesystem":
        return f"filesystem:{tmp_path / 'store'}"
    return f"sqlite:{tmp_path / 'sessions.db'}"


def _build(text: str, keyring: Keyring | None = KEYS) -> SessionStore:
    kind, _, path = text.partition(":")
    config = SessionStoreConfig(encryption=keyring)
    if kind == "filesystem":
        return FileSystemSessionStore(path, config, watch=False)
    return SQLiteSessionStore(path, config, watch=False)


def _fill(text: str, *, backup: bool = False) -> tuple[list[str], str | None]:
    async def body() -> tuple[list[str], str | None]:
        async with _build(text) as store:
            ids = []
            for number in range(3):
                created = await store.create_session(
                    session_object(interactions=1), metadata={"note": f"{MARKER} {number}"}
                )
                ids.append(created.session_id)
            made = await store.create_backup(BackupOptions()) if backup else None
            return ids, None if made is None else made.backup_id

    return asyncio.run(body())


def _status(text: str, keyring: Keyring | None = KEYS) -> Any:
    async def body() -> Any:
        async with _build(text, keyring) as store:
            return await store.key_status()

    return asyncio.run(body())


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


@pytest.fixture(params=["filesystem", "sqlite"])
def store_text(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return _text(request.param, tmp_path)


# -- the keys --------------------------------------------------------------------------------------


def test_keys_come_from_the_environment_or_keys_env() -> None:
    env = {"SESSION_STORE_KEYS": K2_FIRST, "SESSION_STORE_TYPE": "sqlite"}
    spec = StoreSpec.parse(None, env)  # the variable is not rejected as an unknown option
    assert spec.keyring == Keyring(K2, K1)
    assert spec.build().config.encryption == Keyring(K2, K1)
    other = StoreSpec.parse("sqlite:x.db", {"APP_KEYS": K1.encoded()}, keys_env="APP_KEYS")
    assert other.keyring == Keyring(K1)
    assert StoreSpec.parse("sqlite:x.db", {}).keyring is None
    assert StoreSpec.parse("sqlite:x.db", NO_KEYS).keyring is None
    with pytest.raises(click.UsageError, match="APP_KEYS is not set"):
        StoreSpec.parse("sqlite:x.db", {}, keys_env="APP_KEYS")
    with pytest.raises(click.UsageError, match="entry 1 of SESSION_STORE_KEYS"):
        StoreSpec.parse("sqlite:x.db", {"SESSION_STORE_KEYS": "k1:not base64!"})


def test_a_missing_key_is_a_usage_error() -> None:
    assert exit_code_for(SealingKeyError("sealed with key 'k1'", "k1")) == Exit.USAGE


# -- keys status and keys rotate -----------------------------------------------------------------


def test_keys_status_matches_the_store(store_text: str) -> None:
    _fill(store_text)
    expected = _status(store_text)
    env = {"SESSION_STORE_KEYS": K1_FIRST}
    shown = run("keys", "status", "--store", store_text, "--json", env=env)
    assert shown.exit_code == 0, shown.stderr
    report = orjson.loads(shown.stdout)
    assert report["active_key"] == "k1"
    assert report["records"] == {k: n for k, n in expected.records.items() if k is not None}
    assert report["unsealed"] == expected.records.get(None, 0)
    with_keys = run("keys", "status", "--store", store_text, env={"SESSION_STORE_KEYS": K1_FIRST})
    assert with_keys.exit_code == 0, with_keys.stderr
    assert "active key: k1" in with_keys.stdout
    assert "(unsealed)" in with_keys.stdout


def test_keys_status_without_keys(store_text: str) -> None:
    """The census opens no session record; a store whose index is sealed needs keys to open."""
    _fill(store_text)
    shown = run("keys", "status", "--store", store_text, "--json", env=NO_KEYS)
    if store_text.startswith("filesystem:"):  # its index is sealed: opening it needs the keys
        _one_line_key_error(shown, "k1")
    else:
        assert shown.exit_code == 0, shown.stderr
        assert orjson.loads(shown.stdout)["active_key"] is None


def _one_line_key_error(result: Result, key_id: str) -> None:
    assert result.exit_code == Exit.USAGE, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: this record is sealed with key {key_id!r}")
    assert "SESSION_STORE_KEYS" in lines[0]
    assert "Traceback" not in result.output


def test_keys_rotate_reseals_under_the_chosen_key(store_text: str) -> None:
    ids, _ = _fill(store_text)
    env = {"SESSION_STORE_KEYS": K1_FIRST}
    rotated = run("keys", "rotate", "--key", "k2", "--store", store_text, "--json", env=env)
    assert rotated.exit_code == 0, rotated.stderr
    report = orjson.loads(rotated.stdout)
    assert report["key_id"] == "k2"
    assert report["active_key"] == "k2"
    assert report["unsealed"] == 0
    assert set(report["records"]) <= {"k2"}
    after = _status(store_text, Keyring(K2))
    assert set(after.records) <= {"k2"}
    assert report["records"] == dict(after.records)

    async def read_all() -> int:
        async with _build(store_text, Keyring(K2)) as store:  # the new key alone reads it
            return sum([await store.get_session(i) is not None for i in ids])

    assert asyncio.run(read_all()) == 3
    again = run("keys", "rotate", "--store", store_text, env={"SESSION_STORE_KEYS": K2_FIRST})
    assert again.exit_code == 0, again.stderr
    assert again.stdout.startswith("re-sealed 0 record(s) under key k2")


def test_keys_rotate_needs_the_keys(store_text: str) -> None:
    _fill(store_text)
    missing = run("keys", "rotate", "--store", store_text, env=NO_KEYS)
    assert missing.exit_code == Exit.USAGE
    assert missing.stderr.startswith("error: keys rotate needs the store's keys")
    unknown = run(
        "keys", "rotate", "--key", "k9", "--store", store_text, env={"SESSION_STORE_KEYS": K1_FIRST}
    )
    assert unknown.exit_code == Exit.USAGE
    assert "key 'k9' is not in the keyring" in unknown.stderr
    named = run(
        "--keys-env", "APP_KEYS", "keys", "rotate", "--store", store_text,
        env={**NO_KEYS, "APP_KEYS": K2_FIRST},
    )  # fmt: skip
    assert named.exit_code == 0, named.stderr
    assert "under key k2" in named.stdout


# -- sealed backups and exports through the tool ---------------------------------------------------


def test_a_sealed_backup_without_its_key_is_one_line_and_exit_2(store_text: str) -> None:
    ids, backup_id = _fill(store_text, backup=True)
    assert backup_id is not None
    # Listing reads headers only; a filesystem store needs its keys to open at all.
    listing = {"SESSION_STORE_KEYS": K2.encoded()} if "sqlite:" in store_text else NO_KEYS
    if store_text.startswith("filesystem:"):
        listing = {"SESSION_STORE_KEYS": K1_FIRST}
    listed = run("backup", "list", "--store", store_text, "--json", env=listing)
    assert listed.exit_code == 0, listed.stderr
    assert [b["sealed_with"] for b in orjson.loads(listed.stdout)["backups"]] == ["k1"]
    table = run("backup", "list", "--store", store_text, env=listing)
    assert "key k1" in table.stdout
    commands = [["backup", "restore", backup_id], ["backup", "verify", backup_id]]
    if store_text.startswith("filesystem:"):  # (the SQLite store's own sealing is not here)
        commands += [["ls"], ["show", ids[0]]]
    for command in commands:
        _one_line_key_error(run(*command, "--store", store_text, env=NO_KEYS), "k1")
    wrong = run(
        "backup", "restore", backup_id, "--store", store_text,
        env={"SESSION_STORE_KEYS": K2.encoded()},
    )  # fmt: skip
    assert wrong.exit_code == Exit.USAGE
    assert "which the keyring ['k2'] does not hold" in wrong.stderr
    restored = run(
        "backup", "restore", backup_id, "--strategy", "overwrite", "--store", store_text,
        env={"SESSION_STORE_KEYS": K1_FIRST},
    )  # fmt: skip
    assert restored.exit_code == 0, restored.stderr
    assert "overwrote 3" in restored.stdout


def test_export_sealed_and_import_with_and_without_keys(store_text: str, tmp_path: Path) -> None:
    _fill(store_text)
    target = tmp_path / "out.jsonl"
    env = {"SESSION_STORE_KEYS": K1_FIRST}
    exported = run("export", str(target), "--sealed", "--store", store_text, env=env)
    assert exported.exit_code == 0, exported.stderr
    assert hits(MARKER.encode(), target) == []
    plain = tmp_path / "plain.jsonl"
    assert run("export", str(plain), "--store", store_text, env=env).exit_code == 0
    assert hits(MARKER.encode(), plain) == [plain]  # the default stays readable
    no_keys = run(
        "export", str(tmp_path / "x.jsonl"), "--sealed", "--store", store_text, env=NO_KEYS
    )
    if store_text.startswith("filesystem:"):
        _one_line_key_error(no_keys, "k1")  # the store does not open without its keys
    else:
        assert no_keys.exit_code == Exit.USAGE
        assert "a sealed export needs a store opened with encryption" in no_keys.stderr
    into = f"sqlite:{tmp_path / 'copy.db'}"
    refused = run("import", str(target), "--store", into, env=NO_KEYS)
    assert refused.exit_code == Exit.USAGE, refused.stderr
    assert "sealed with key 'k1'" in refused.stderr
    assert not (tmp_path / "copy.db").exists()  # refused: no store was created
    imported = run("import", str(target), "--store", into, env={"SESSION_STORE_KEYS": K2_FIRST})
    assert imported.exit_code == 0, imported.stderr
    assert "restored 3" in imported.stdout


def test_sealing_a_store_written_in_clear(tmp_path: Path) -> None:
    """A sealed open refuses records in clear; keys rotate --accept-unsealed seals them."""
    text = _text("filesystem", tmp_path)

    async def plain() -> list[str]:
        async with _build(text, None) as store:
            made = [await store.create_session(session_object(interactions=1)) for _ in range(2)]
            return [s.session_id for s in made]

    ids = asyncio.run(plain())
    env = {"SESSION_STORE_KEYS": K1_FIRST}
    refused = run("show", ids[0], "--store", text, env=env)
    assert refused.exit_code == Exit.USAGE, refused.output
    assert refused.stderr.count("\n") == 1
    assert "keys rotate --accept-unsealed" in refused.stderr
    rotated = run("keys", "rotate", "--accept-unsealed", "--store", text, "--json", env=env)
    assert rotated.exit_code == 0, rotated.stderr
    assert orjson.loads(rotated.stdout)["unsealed"] == 0
    shown = run("show", ids[0], "--store", text, "--json", env=env)
    assert shown.exit_code == 0, shown.stderr
    assert set(_status(text, Keyring(K1)).records) == {"k1"}
