"""Sealing in the filesystem store: nothing in clear at rest, tampering, keys, rotation."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import orjson
import pytest
from _sealing import COMPRESSION, K1, K2, KEYS, hits, sealed

from session_persistence import (
    BackupOptions,
    FileSystemSessionStore,
    PersistedSession,
    SessionFilter,
    SessionStoreConfig,
    StoreCorruptionError,
)
from session_persistence._envelope import record_key
from session_persistence.errors import ConfigurationError, SealingKeyError, UnsealedRecordError
from session_persistence.sealing import Key, Keyring
from session_persistence.stores.filesystem._format import decode_document, encode_document
from session_persistence.testing import interaction, session_object

MARKER = "zq-marker-7f3e9a"


def same(read: object, written: object) -> bool:
    """Whether a session read back equals the one written (reads move last_accessed_at)."""
    assert isinstance(read, PersistedSession)
    assert isinstance(written, PersistedSession)
    return dataclasses.replace(read, last_accessed_at=written.last_accessed_at) == written


def tamper(record: bytes, at: int) -> bytes:
    """``record`` with the base64 character at ``at`` changed to another valid one."""
    changed = bytearray(record)
    changed[at] = ord("A") if changed[at] != ord("A") else ord("B")
    return bytes(changed)


def _store(root: Path, config: SessionStoreConfig, **options: object) -> FileSystemSessionStore:
    options.setdefault("checkpoint_bytes", 4096)
    return FileSystemSessionStore(root, config, watch=False, **options)  # type: ignore[arg-type]


async def _fill(store: FileSystemSessionStore, count: int = 12) -> list[str]:
    """Sessions holding the marker in interactions and metadata, with puts, appends, deletes."""
    ids = []
    for number in range(count):
        session = await store.create_session(
            session_object(interactions=2),
            metadata={"note": f"{MARKER}-{number}", "n": number},
            expires_at=None,
        )
        ids.append(session.session_id)
    for round_ in range(3):
        for session_id in ids:
            await store.append_interactions(session_id, interaction(f"{MARKER} {round_}"))
    await store.update_session(ids[0], {"metadata": {"note": MARKER, "n": 0}})
    await store.delete_session(ids[-1])
    return ids[:-1]


@pytest.mark.parametrize("sealing", [True, False])
async def test_no_plaintext_at_rest(tmp_path: Path, sealing: bool) -> None:
    """Sealed, the marker is in no file of the store (open or closed); unsealed, it is found."""
    root = tmp_path / "store"
    config = sealed() if sealing else SessionStoreConfig()
    async with _store(root, config) as store:
        ids = await _fill(store)
        await store.optimize()  # bases, tails and index written; journal kept
        for session_id in ids[:3]:
            await store.append_interactions(session_id, interaction(MARKER))  # journal + tail
        await store.create_backup()  # (in root/backups)
        await store.create_backup(BackupOptions(compress=True))
        assert len(list((root / "backups").glob("*.backup"))) == 2
        open_hits = hits(MARKER.encode(), root)
    closed_hits = hits(MARKER.encode(), root)
    kinds = {path.suffix for path in closed_hits} | {path.suffix for path in open_hits}
    if sealing:
        assert open_hits == []
        assert closed_hits == []
    else:
        assert open_hits
        assert {".json", ".wal", ".backup"} <= kinds  # it looks at bases, journal, backups


async def test_sealed_store_reads_back_and_queries_by_metadata(tmp_path: Path) -> None:
    """Metadata filters and search work on a sealed store, before and after a reopen."""
    root = tmp_path / "store"
    async with _store(root, sealed(compression=COMPRESSION)) as store:
        ids = await _fill(store)
        expected = {s.session_id: s for s in await store.list_sessions()}
    async with _store(root, sealed(compression=COMPRESSION)) as store:
        found = await store.list_sessions(SessionFilter(metadata={"n": 3}))
        assert [s.session_id for s in found] == [ids[3]]
        searched = await store.search_sessions(f"{MARKER} 2", search_interactions=True)
        assert {s.session_id for s in searched} == set(ids)
        by_metadata = await store.search_sessions(f"{MARKER}-4")
        assert [s.session_id for s in by_metadata] == [ids[4]]
        for session_id, before in expected.items():
            assert same(await store.get_session(session_id), before)


async def test_a_tampered_base_is_damage_for_that_session_alone(tmp_path: Path) -> None:
    """One byte changed in a sealed base (its checksum fixed up) fails authentication."""
    root = tmp_path / "store"
    async with _store(root, sealed()) as store:
        ids = await _fill(store, 4)
    path = root / "sessions" / f"{ids[0]}.json"
    head, body, _ = path.read_bytes().split(b"\n")
    assert record_key(body) == "k1"
    flipped = tamper(body, len(body) // 2)
    fields = orjson.loads(head)
    fields["crc32"] = f"{zlib.crc32(bytes(flipped)):08x}"
    path.write_bytes(orjson.dumps(fields) + b"\n" + bytes(flipped) + b"\n")
    async with _store(root, sealed()) as store:
        with pytest.raises(StoreCorruptionError, match="authentication"):
            await store.get_session(ids[0])
        for session_id in ids[1:3]:
            session = await store.get_session(session_id)
            assert session is not None
            assert len(session.interactions) == 5


async def test_a_tampered_tail_record_is_reported_never_returned(tmp_path: Path) -> None:
    """A sealed tail record with one byte changed (checksum fixed up) is not returned."""
    root = tmp_path / "store"
    async with _store(root, sealed()) as store:
        ids = await _fill(store, 3)
        await store.optimize()
        await store.append_interactions(ids[0], interaction("tail me"))
        await store.optimize()
    tail = root / "sessions" / f"{ids[0]}.tail"
    _, payload = tail.read_bytes().rstrip(b"\n").split(b" ", 1)
    assert record_key(payload) == "k1"
    flipped = tamper(payload, len(payload) - 5)
    tail.write_bytes(b"%08x %s\n" % (zlib.crc32(bytes(flipped)), bytes(flipped)))
    async with _store(root, sealed()) as store:
        with pytest.raises(StoreCorruptionError):
            await store.get_session(ids[0])
        assert await store.get_session(ids[1]) is not None


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file()
        and (path.parent.name in ("sessions", "journal") or path.name.startswith("index."))
    }


@pytest.mark.parametrize(
    "keys",
    [None, Keyring(K2), Keyring(Key("k1", bytes(32)))],
    ids=["no-keyring", "other-key", "wrong-secret"],
)
async def test_a_missing_or_wrong_key_is_a_typed_error_and_changes_nothing(
    tmp_path: Path, keys: Keyring | None
) -> None:
    root = tmp_path / "store"
    async with _store(root, sealed()) as store:
        await _fill(store, 3)
    before = _snapshot(root)
    with pytest.raises(SealingKeyError) as caught:
        async with _store(root, SessionStoreConfig(encryption=keys)):
            pass
    assert caught.value.key_id in ("k1", None)
    assert _snapshot(root) == before


async def test_a_marked_store_refuses_older_readers(tmp_path: Path) -> None:
    """A store opened with sealing names format 3 in store.json; a plain one stays at 2."""
    plain, sealed_root = tmp_path / "plain", tmp_path / "sealed"
    async with _store(plain, SessionStoreConfig()) as store:
        await _fill(store, 1)
    async with _store(sealed_root, sealed()) as store:
        await _fill(store, 1)
    assert orjson.loads((plain / "store.json").read_bytes())["format"] == 2
    assert orjson.loads((sealed_root / "store.json").read_bytes())["format"] == 3


async def _writer(store: FileSystemSessionStore, session_id: str, stop: asyncio.Event) -> int:
    count = 0
    while not stop.is_set():
        await store.append_interactions(session_id, interaction(f"{MARKER} {count}"))
        count += 1
        await asyncio.sleep(0.001)
    return count


async def test_rotation_under_load_leaves_only_the_new_key(tmp_path: Path) -> None:
    """Writers run during rotate_key; afterwards only k2 seals anything, and k2 alone reads."""
    root = tmp_path / "store"
    async with _store(root, sealed(compression=COMPRESSION)) as store:
        ids = await _fill(store, 40)
        await store.optimize()
        before = await store.key_status()
        assert before.keys_in_use == ["k1"]
        stop = asyncio.Event()
        writers = [asyncio.create_task(_writer(store, sid, stop)) for sid in ids[:4]]
        seen: list[tuple[int, int | None]] = []
        report = await store.rotate_key("k2", progress=lambda d, t: seen.append((d, t)))
        stop.set()
        written = await asyncio.gather(*writers)
        assert report.key_id == "k2"
        assert report.records_resealed >= len(ids)
        assert seen[-1] == (len(ids), len(ids))
        assert store.config.encryption is not None
        assert store.config.encryption.active == "k2"
        expected = {s.session_id: s for s in await store.list_sessions()}
        status = await store.key_status()
    assert set(status.records) == {"k2"}, status
    assert all(n > 0 for n in written)
    only_k2 = SessionStoreConfig(encryption=Keyring(K2), compression=COMPRESSION)
    async with _store(root, only_k2) as store:
        assert set((await store.key_status()).records) == {"k2"}
        for session_id, session in expected.items():
            assert same(await store.get_session(session_id), session)
    assert hits(MARKER.encode(), root) == []


async def test_rotation_seals_a_store_written_in_clear(tmp_path: Path) -> None:
    """A store written in clear refuses a strict keyring; accept_unsealed + rotate_key seals it."""
    root = tmp_path / "store"
    async with _store(root, SessionStoreConfig()) as store:
        ids = await _fill(store, 10)
        expected = {s.session_id: s for s in await store.list_sessions()}
    assert hits(MARKER.encode(), root)
    with pytest.raises(UnsealedRecordError, match="accept_unsealed"):
        async with _store(root, sealed()):
            pass
    migrating = Keyring(K1, K2, accept_unsealed=True)
    async with _store(root, SessionStoreConfig(encryption=migrating)) as store:
        assert None in (await store.key_status()).records
        report = await store.rotate_key()
        assert report.key_id == "k1"
        assert set(report.status.records) == {"k1"}
    async with _store(root, sealed()) as store:
        for session_id in ids:
            assert same(await store.get_session(session_id), expected[session_id])
    assert hits(MARKER.encode(), root) == []


async def test_a_session_file_in_clear_is_refused_in_a_sealed_store(tmp_path: Path) -> None:
    """A base replaced by one in clear (as anyone with write access could) is not taken.

    Nor is it quarantined: a typed error for that session alone.
    """
    plain_root, root = tmp_path / "plain", tmp_path / "store"
    async with _store(plain_root, SessionStoreConfig()) as store:
        planted = await store.create_session(session_object(), metadata={"evil": True})
    async with _store(root, sealed()) as store:
        ids = await _fill(store, 3)
    head, body = decode_document(
        (plain_root / "sessions" / f"{planted.session_id}.json").read_bytes(), "session"
    )
    body = body.replace(planted.session_id.encode(), ids[0].encode())
    (root / "sessions" / f"{ids[0]}.json").write_bytes(
        encode_document("session", body, token=head["token"])
    )
    async with _store(root, sealed()) as store:
        with pytest.raises(UnsealedRecordError):
            await store.get_session(ids[0])
        assert await store.get_session(ids[1]) is not None
    assert (root / "sessions" / f"{ids[0]}.json").exists()
    assert not any((root / "quarantine").iterdir())


async def test_rotate_key_needs_a_keyring_and_a_known_key(tmp_path: Path) -> None:
    async with _store(tmp_path / "plain", SessionStoreConfig()) as store:
        with pytest.raises(ConfigurationError, match="encryption"):
            await store.rotate_key("k1")
    async with _store(tmp_path / "sealed", sealed()) as store:
        with pytest.raises(ConfigurationError, match="not in the keyring"):
            await store.rotate_key("k9")
        assert store.config.encryption == KEYS


async def test_compression_makes_long_histories_smaller_on_disk(tmp_path: Path) -> None:
    """A long session's base is several times smaller compressed (same content)."""
    sizes = {}
    for name, config in {
        "plain": SessionStoreConfig(),
        "compressed": SessionStoreConfig(compression=COMPRESSION),
        "both": sealed(compression=COMPRESSION),
    }.items():
        root = tmp_path / name
        async with _store(root, config) as store:
            session = await store.create_session(session_object(interactions=500))
        sizes[name] = (root / "sessions" / f"{session.session_id}.json").stat().st_size
    assert sizes["compressed"] * 3 < sizes["plain"]
    assert sizes["both"] * 3 < sizes["plain"]


def test_keyring_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSION_STORE_KEYS", f" {K2.encoded()},\n {K1.encoded()} ")
    ring = Keyring.from_env()
    assert ring.active == "k2"
    assert ring.ids == ("k2", "k1")
    assert ring == Keyring(K2, K1)
    assert "secret" not in repr(ring)
    assert "secret" not in repr(K1)
    monkeypatch.setenv("SESSION_STORE_KEYS", "k1:not-base64!")
    with pytest.raises(ConfigurationError, match="entry 1"):
        Keyring.from_env()
    monkeypatch.delenv("SESSION_STORE_KEYS")
    with pytest.raises(ConfigurationError, match="SESSION_STORE_KEYS"):
        Keyring.from_env()
    with pytest.raises(ConfigurationError, match="32 bytes"):
        Key("k1", b"short")
    with pytest.raises(ConfigurationError, match="twice"):
        Keyring(K1, K1)
    with pytest.raises(ConfigurationError, match="must be a Keyring"):
        SessionStoreConfig(encryption="k1")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="compression"):
        SessionStoreConfig(compression="lz4")  # type: ignore[arg-type]
    assert dataclasses.replace(SessionStoreConfig(), compression="zstd").compression is not None


CHILD = str(Path(__file__).with_name("seal_child.py"))


def _pump(process: subprocess.Popen[bytes], lines: list[dict[str, object]]) -> None:
    assert process.stdout is not None
    for raw in process.stdout:
        lines.append(orjson.loads(raw))


@pytest.mark.parametrize("stop_at", [0.3, 0.7])
async def test_a_rotation_killed_midway_and_rerun_leaves_every_session_readable(
    tmp_path: Path, stop_at: float
) -> None:
    """SIGKILL a process in the middle of rotate_key (writers running); a rerun finishes it.

    Every session stays readable at every step; every acknowledged append is there; after
    the rerun only k2 seals anything, and a store given k2 alone reads everything.
    """
    root = tmp_path / "store"
    config = sealed(default_session_ttl=None)
    async with _store(root, config) as store:
        for number in range(300):
            await store.create_session(
                session_object(interactions=3), metadata={"note": f"{MARKER}-{number}"}
            )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(  # noqa: ASYNC220 - killed below; read by a thread
        [sys.executable, CHILD, str(root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    lines: list[dict[str, object]] = []
    pump = threading.Thread(target=_pump, args=(process, lines))
    pump.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        progress = [line for line in lines if line["kind"] == "progress" and line["total"]]
        if progress and int(progress[-1]["done"]) >= stop_at * int(progress[-1]["total"]):  # type: ignore[call-overload]
            break
        await asyncio.sleep(0.001)
    process.send_signal(signal.SIGKILL)
    process.wait()
    pump.join()
    assert process.stderr is not None
    with process.stderr:
        err = process.stderr.read().decode()
    assert process.returncode == -signal.SIGKILL, err
    assert process.stdout is not None
    process.stdout.close()
    assert not any(line["kind"] == "rotated" for line in lines), "killed too late"
    acked: dict[str, int] = {}
    for line in lines:
        if line["kind"] == "write":
            acked[str(line["id"])] = max(acked.get(str(line["id"]), 0), int(line["version"]))  # type: ignore[call-overload]
    assert acked, err

    # Halfway: both keys seal records, and everything reads with both.
    async with _store(root, config) as store:
        midway = await store.key_status()
        assert midway.keys_in_use == ["k1", "k2"], midway
        headers = await store.list_session_headers()
        assert len(headers) == 300
        for session_id, version in acked.items():
            session = await store.get_session(session_id)
            assert session is not None
            assert session.version >= version
        report = await store.rotate_key("k2")
        assert set(report.status.records) == {"k2"}
        expected = {s.session_id: s for s in await store.list_sessions()}
    only_k2 = SessionStoreConfig(encryption=Keyring(K2), default_session_ttl=None)
    async with _store(root, only_k2) as store:
        assert set((await store.key_status()).records) == {"k2"}
        for session_id, session in expected.items():
            assert same(await store.get_session(session_id), session)
    assert hits(MARKER.encode(), root) == []


async def test_rotation_after_a_reopen_leaves_no_older_journal_line(tmp_path: Path) -> None:
    """The journal generation a clean shutdown leaves (its markers sealed with k1) goes too."""
    root = tmp_path / "store"
    async with _store(root, sealed()) as store:
        await _fill(store, 3)
    async with _store(root, sealed()) as store:
        report = await store.rotate_key("k2")
    assert set(report.status.records) == {"k2"}, report.status
