"""Sealed backups and exports: nothing in clear, restore from sealed, wrong keys, tampering."""

from __future__ import annotations

import dataclasses
import hashlib
import io
from pathlib import Path

import orjson
import pytest
from _sealing import COMPRESSION, K1, K2, KEYS, MIGRATING, hits

from session_persistence import (
    BackupError,
    BackupOptions,
    ConfigurationError,
    FileSystemSessionStore,
    InMemorySessionStore,
    RestoreOptions,
    SessionStoreConfig,
    SQLiteSessionStore,
)
from session_persistence._envelope import record_key
from session_persistence.errors import SealingKeyError, UnsealedRecordError
from session_persistence.sealing import Key, Keyring
from session_persistence.testing import interaction, session_object

MARKER = "walrus-ochre-5519"


def _config(
    tmp_path: Path, keyring: Keyring | None = KEYS, **changes: object
) -> SessionStoreConfig:
    base = SessionStoreConfig(backup_dir=tmp_path / "backups", encryption=keyring)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


async def _fill(store: InMemorySessionStore, count: int = 3) -> list[str]:
    ids = []
    for number in range(count):
        created = await store.create_session(
            session_object(interactions=1), metadata={"note": f"{MARKER} {number}"}
        )
        await store.append_interactions(created.session_id, interaction(f"{MARKER} x{number}"))
        ids.append(created.session_id)
    return ids


def _backup_file(tmp_path: Path, backup_id: str) -> Path:
    return tmp_path / "backups" / f"{backup_id}.backup"


def _redigest(data: bytes) -> bytes:
    """Recompute a backup file's digest line after its body was changed."""
    first_end = data.index(b"\n") + 1
    second_end = data.index(b"\n", first_end) + 1
    body = data[second_end:]
    digest = hashlib.sha256(data[:first_end])
    digest.update(body)
    seal = orjson.dumps({"sha256": digest.hexdigest()}) + b"\n"
    return data[:first_end] + seal + body


@pytest.mark.parametrize("compress", [False, True], ids=["plain-body", "zlib-body"])
@pytest.mark.parametrize("sealing", [True, False], ids=["sealed", "unsealed"])
async def test_no_plaintext_in_a_sealed_backup(
    tmp_path: Path, sealing: bool, compress: bool
) -> None:
    """Sealed, the marker is in no backup file; unsealed (and uncompressed) it is."""
    config = _config(tmp_path, KEYS if sealing else None)
    async with InMemorySessionStore(config) as store:
        await _fill(store)
        backup = await store.create_backup(BackupOptions(compress=compress))
        infos = await store.list_backups()
    path = _backup_file(tmp_path, backup.backup_id)
    found = hits(MARKER.encode(), tmp_path / "backups")
    header = orjson.loads(path.read_bytes().split(b"\n", 1)[0])
    if sealing:
        assert found == []
        assert header["sealed"] == "k1"
        assert infos[0].sealed_with == "k1"
        assert backup.metadata["sealed_with"] == "k1"
    else:
        assert found == ([] if compress else [path])
        assert header["sealed"] is None
        assert infos[0].sealed_with is None


@pytest.mark.parametrize("compress", [False, True], ids=["plain-body", "zlib-body"])
async def test_restore_from_a_sealed_backup(tmp_path: Path, compress: bool) -> None:
    config = _config(tmp_path, compression=COMPRESSION)
    async with InMemorySessionStore(config) as store:
        ids = await _fill(store)
        before = {i: await store.get_session(i) for i in ids}
        backup = await store.create_backup(BackupOptions(compress=compress))
        for session_id in ids:
            await store.delete_session(session_id)
        assert (await store.verify_backup(backup.backup_id)).sealed_with == "k1"
        result = await store.restore_from_backup(backup.backup_id)
        assert result.restored_count == 3
        for session_id in ids:
            restored = await store.get_session(session_id)
            assert restored is not None
            assert restored.interactions == before[session_id].interactions  # type: ignore[union-attr]
            assert restored.metadata == before[session_id].metadata  # type: ignore[union-attr]
    # From the file, into another store that holds the key (a copy on another host).
    other = SessionStoreConfig(encryption=Keyring(K2, K1))
    async with InMemorySessionStore(other) as elsewhere:
        result = await elsewhere.restore_from_backup(_backup_file(tmp_path, backup.backup_id))
        assert result.restored_count == 3


async def test_a_plain_backup_restores_only_with_accept_unsealed(tmp_path: Path) -> None:
    """A store that seals everything refuses a plain backup; ``accept_unsealed`` restores it.

    (Anyone with write access to the backup directory could plant a plain one.)
    """
    async with InMemorySessionStore(_config(tmp_path, None)) as plain:
        ids = await _fill(plain)
        backup = await plain.create_backup()
    async with InMemorySessionStore(_config(tmp_path)) as store:
        assert [b.sealed_with for b in await store.list_backups()] == [None]
        with pytest.raises(UnsealedRecordError):
            await store.restore_from_backup(backup.backup_id)
        assert await store.count_sessions() == 0
    async with InMemorySessionStore(_config(tmp_path, MIGRATING)) as store:
        result = await store.restore_from_backup(backup.backup_id)
        assert result.restored_count == len(ids)


@pytest.mark.parametrize(
    "keyring",
    [Keyring(K2), Keyring(Key("k1", bytes(32))), None],
    ids=["missing", "wrong-secret", "no-keyring"],
)
async def test_a_backup_under_another_key_restores_nothing(
    tmp_path: Path, keyring: Keyring | None
) -> None:
    async with InMemorySessionStore(_config(tmp_path)) as store:
        await _fill(store)
        backup = await store.create_backup()
    path = _backup_file(tmp_path, backup.backup_id)
    before = path.read_bytes()
    async with InMemorySessionStore(_config(tmp_path, keyring)) as other:
        infos = await other.list_backups()  # listing never needs the key
        assert [(i.backup_id, i.session_count, i.sealed_with) for i in infos] == [
            (backup.backup_id, 3, "k1")
        ]
        with pytest.raises(SealingKeyError) as caught:
            await other.restore_from_backup(backup.backup_id)
        assert caught.value.key_id == "k1"
        with pytest.raises(SealingKeyError):
            await other.restore_from_backup(path)
        assert await other.count_sessions() == 0
        assert path.read_bytes() == before  # not quarantined, not changed
        assert await other.delete_backup(backup.backup_id) is True  # deleting needs no key


@pytest.mark.parametrize("redigest", [False, True], ids=["digest-kept", "digest-recomputed"])
async def test_a_tampered_sealed_body_is_a_backup_error(tmp_path: Path, redigest: bool) -> None:
    async with InMemorySessionStore(_config(tmp_path)) as store:
        await _fill(store)
        backup = await store.create_backup()
        path = _backup_file(tmp_path, backup.backup_id)
        data = bytearray(path.read_bytes())
        at = len(data) - 40  # inside the body's base64
        data[at] = ord("A") if data[at] != ord("A") else ord("B")
        path.write_bytes(_redigest(bytes(data)) if redigest else bytes(data))
        match = "damaged or was altered" if redigest else "fails its checksum"
        with pytest.raises(BackupError, match=match):
            await store.restore_from_backup(backup.backup_id)
        assert await store.count_sessions() == 3  # nothing restored over them
        report = await store.check()
        assert [p.kind for p in report.problems] == ["backup"]


async def test_a_sealed_body_swapped_for_a_plain_one_is_refused(tmp_path: Path) -> None:
    """The header says sealed: a plain body (digest recomputed) is an alteration."""
    async with InMemorySessionStore(_config(tmp_path, None)) as plain:
        await _fill(plain)
        plain_backup = await plain.create_backup()
    plain_data = _backup_file(tmp_path, plain_backup.backup_id).read_bytes()
    async with InMemorySessionStore(_config(tmp_path)) as store:
        sealed_backup = await store.create_backup()
        path = _backup_file(tmp_path, sealed_backup.backup_id)
        head, seal, _ = path.read_bytes().split(b"\n", 2)
        body = plain_data.split(b"\n", 2)[2]
        fields = orjson.loads(head)
        fields["body_bytes"] = len(body)
        fields["session_count"] = 3
        path.write_bytes(_redigest(orjson.dumps(fields) + b"\n" + seal + b"\n" + body))
        with pytest.raises(BackupError, match="is not sealed"):
            await store.restore_from_backup(sealed_backup.backup_id)


async def test_rotation_leaves_backups_readable_with_the_old_key(tmp_path: Path) -> None:
    async with InMemorySessionStore(_config(tmp_path)) as store:
        await _fill(store)
        old = await store.create_backup()
        await store.rotate_key("k2")
        new = await store.create_backup()
        assert [b.sealed_with for b in await store.list_backups()] == ["k1", "k2"]
        assert (await store.get_backup(old.backup_id)).sessions == old.sessions
    async with InMemorySessionStore(_config(tmp_path, Keyring(K2))) as only_k2:
        assert len((await only_k2.get_backup(new.backup_id)).sessions) == 3
        with pytest.raises(SealingKeyError):
            await only_k2.get_backup(old.backup_id)


# == exports ====================================================================================


async def test_exports_are_plain_json_by_default(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    async with InMemorySessionStore(_config(tmp_path)) as store:
        await _fill(store)
        assert await store.export_sessions(target) == 3
    assert hits(MARKER.encode(), target) == [target]
    lines = target.read_bytes().splitlines()
    assert all(line.startswith(b"{") for line in lines)
    assert "sealed" not in orjson.loads(lines[0])


@pytest.mark.parametrize("compression", [None, COMPRESSION], ids=["sealed", "sealed-compressed"])
async def test_a_sealed_export_round_trips(tmp_path: Path, compression: object) -> None:
    target = tmp_path / "out.jsonl"
    async with InMemorySessionStore(_config(tmp_path, compression=compression)) as store:
        ids = await _fill(store)
        before = {i: await store.get_session(i) for i in ids}
        assert await store.export_sessions(target, sealed=True) == 3
    assert hits(MARKER.encode(), target) == []
    lines = target.read_bytes().splitlines()
    assert orjson.loads(lines[0])["sealed"] == "k1"
    assert [record_key(line) for line in lines[1:-1]] == ["k1"] * 3
    assert orjson.loads(lines[-1]) == {"end": {"count": 3}}
    async with InMemorySessionStore(SessionStoreConfig(encryption=Keyring(K2, K1))) as other:
        result = await other.import_sessions(target)
        assert result.restored_count == 3
        for session_id, session in before.items():
            got = await other.get_session(session_id)
            assert got is not None
            assert session is not None
            assert (got.interactions, got.metadata) == (session.interactions, session.metadata)
    # A stream that cannot seek back (validated batch by batch) reads it too.
    async with InMemorySessionStore(SessionStoreConfig(encryption=KEYS)) as streamed:
        result = await streamed.import_sessions(io.BufferedReader(_Unseekable(target)))
        assert result.restored_count == 3


class _Unseekable(io.RawIOBase):
    def __init__(self, path: Path) -> None:
        self._data = io.BytesIO(path.read_bytes())

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


async def test_a_sealed_export_needs_a_keyring(tmp_path: Path) -> None:
    async with InMemorySessionStore() as store:
        with pytest.raises(ConfigurationError, match="sealed"):
            await store.export_sessions(tmp_path / "out.jsonl", sealed=True)
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize(
    "keyring", [Keyring(K2), Keyring(Key("k1", bytes(32))), None], ids=["missing", "wrong", "none"]
)
async def test_a_sealed_export_under_another_key_imports_nothing(
    tmp_path: Path, keyring: Keyring | None
) -> None:
    target = tmp_path / "out.jsonl"
    async with InMemorySessionStore(_config(tmp_path)) as store:
        await _fill(store)
        await store.export_sessions(target, sealed=True)
    async with InMemorySessionStore(SessionStoreConfig(encryption=keyring)) as other:
        with pytest.raises(SealingKeyError):
            await other.import_sessions(target)
        assert await other.count_sessions() == 0


async def test_a_tampered_sealed_export_line_is_a_backup_error(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    async with InMemorySessionStore(_config(tmp_path)) as store:
        await _fill(store)
        await store.export_sessions(target, sealed=True)
    lines = target.read_bytes().splitlines(keepends=True)
    line = bytearray(lines[2])
    line[-10] = ord("A") if line[-10] != ord("A") else ord("B")
    lines[2] = bytes(line)
    target.write_bytes(b"".join(lines))
    async with InMemorySessionStore(SessionStoreConfig(encryption=KEYS)) as other:
        with pytest.raises(BackupError, match="line 3 is damaged or was altered"):
            await other.import_sessions(target)
        assert await other.count_sessions() == 0  # validated before anything is written
    # A plain line slipped into a sealed export is refused too.
    async with InMemorySessionStore() as plain:
        await _fill(plain)
        await plain.export_sessions(tmp_path / "plain.jsonl")
    mixed = target.read_bytes().splitlines(keepends=True)
    mixed[2] = (tmp_path / "plain.jsonl").read_bytes().splitlines(keepends=True)[1]
    target.write_bytes(b"".join(mixed))
    async with InMemorySessionStore(SessionStoreConfig(encryption=KEYS)) as other:
        with pytest.raises(BackupError, match="line 3 is not sealed"):
            await other.import_sessions(target, RestoreOptions())


@pytest.mark.parametrize("kind", ["filesystem", "sqlite"])
async def test_every_store_seals_its_backups(tmp_path: Path, kind: str) -> None:
    """The engine seals for every store (the stores' own files are their own tests')."""
    config = _config(tmp_path)
    store = (
        FileSystemSessionStore(tmp_path / "data", config)
        if kind == "filesystem"
        else SQLiteSessionStore(tmp_path / "db.sqlite", config)
    )
    async with store:
        created = await store.create_session(
            session_object(interactions=1), metadata={"note": MARKER}
        )
        backup = await store.create_backup(BackupOptions(compress=False))
        await store.delete_session(created.session_id)
        assert (await store.restore_from_backup(backup.backup_id)).restored_count == 1
    assert hits(MARKER.encode(), tmp_path / "backups") == []
    assert record_key(_backup_file(tmp_path, backup.backup_id).read_bytes().split(b"\n")[2]) == (
        "k1"
    )


async def test_check_reports_a_backup_under_another_key_and_repair_keeps_it(
    tmp_path: Path,
) -> None:
    """check() cannot verify a backup sealed with a key it lacks: reported, never set aside."""
    async with InMemorySessionStore(_config(tmp_path)) as store:
        await _fill(store)
        backup = await store.create_backup()
    path = _backup_file(tmp_path, backup.backup_id)
    async with InMemorySessionStore(_config(tmp_path, Keyring(K2))) as other:
        report = await other.check(repair=True)
    [problem] = report.problems
    assert problem.target == backup.backup_id
    assert "keys" in problem.problem
    assert problem.action is None
    assert path.exists()
