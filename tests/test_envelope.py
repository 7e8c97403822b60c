"""The record envelope: what it writes, and every way a record read back can be wrong."""

from __future__ import annotations

import binascii
import os
import zlib

import pytest
from _sealing import K1, K2, KEYS

from session_persistence._envelope import (
    PLAIN,
    PREFIX,
    Envelope,
    Unsealable,
    compression_of,
    record_key,
)
from session_persistence.errors import ConfigurationError, SealingKeyError, UnsealedRecordError
from session_persistence.sealing import Compression, Key, Keyring

DOC = b'{"text":"' + b"all work and no play " * 200 + b'"}'
CONTEXT = b"session:abc"


def test_plain_envelope_changes_nothing_and_reads_plain_records() -> None:
    assert PLAIN.wrap(DOC, CONTEXT) is DOC
    assert PLAIN.unwrap(DOC, CONTEXT) is DOC
    assert PLAIN.wrap_text("{}", CONTEXT) == "{}"
    assert not PLAIN.active
    assert PLAIN.active_key is None
    with pytest.raises(ConfigurationError, match="no keyring"):
        PLAIN.activate("k1")


@pytest.mark.parametrize("algorithm", ["zlib", "zstd"])
def test_compression_alone_round_trips_and_says_so(algorithm: str) -> None:
    envelope = Envelope(None, Compression(algorithm, threshold=64))  # type: ignore[arg-type]
    wrapped = envelope.wrap(DOC, CONTEXT)
    assert wrapped.startswith(PREFIX + b"::")
    assert len(wrapped) < len(DOC) / 4
    assert record_key(wrapped) is None
    assert envelope.unwrap(wrapped, CONTEXT) == DOC
    assert PLAIN.unwrap(wrapped, CONTEXT) == DOC  # any store reads any compression
    assert envelope.wrap(b'{"a":1}', CONTEXT) == b'{"a":1}'  # under the threshold


def test_a_record_compression_does_not_shrink_is_kept_as_it_is() -> None:
    random = os.urandom(1024)
    envelope = Envelope(None, Compression("zlib", threshold=0))
    assert envelope.wrap(random, CONTEXT) is random


def test_sealed_records_name_their_key_and_open_only_in_their_context() -> None:
    envelope = Envelope(KEYS, Compression("zlib", threshold=64))
    wrapped = envelope.wrap(DOC, CONTEXT)
    assert record_key(wrapped) == "k1"
    assert record_key(wrapped.decode()) == "k1"
    assert wrapped.split(b":")[2] == K1.check.encode()
    assert envelope.unwrap(wrapped, CONTEXT) == DOC
    with pytest.raises(Unsealable, match="authentication"):
        envelope.unwrap(wrapped, b"session:other")
    envelope.activate("k2")
    again = envelope.wrap(DOC, CONTEXT)
    assert record_key(again) == "k2"
    assert envelope.unwrap(wrapped, CONTEXT) == DOC  # the old key still opens


def _sealed() -> bytes:
    return Envelope(KEYS, None).wrap(DOC, CONTEXT)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda r: r.replace(b":-:", b":z:", 1), Unsealable, "authentication"),
        (lambda r: r[:-10], Unsealable, "base64|authentication"),
        (lambda r: r[:-4] + b"!!!!", Unsealable, "base64"),
        (lambda r: b"$sp1:k1", Unsealable, "four fields"),
        (lambda r: b"$sp1:k1:" + K1.check.encode() + b":-:AAAA", Unsealable, "too short"),
        (lambda r: r.replace(b":-:", b":q:", 1), Unsealable, "authentication"),
        (lambda r: r.replace(b"$sp1:k1:", b"$sp1:k9:", 1), SealingKeyError, "k9"),
        (lambda r: r.replace(K1.check.encode(), b"00000000", 1), SealingKeyError, "another"),
    ],
    ids=[
        "flag",
        "truncated",
        "not-base64",
        "fields",
        "too-short",
        "unknown-compression",
        "unknown-key",
        "key-check",
    ],
)
def test_every_broken_record_is_a_typed_failure(change: object, error: type, match: str) -> None:
    envelope = Envelope(KEYS, None)
    record = change(_sealed())  # type: ignore[operator]
    with pytest.raises(error, match=match):
        envelope.unwrap(record, CONTEXT)


def test_broken_compressed_records_are_damage() -> None:
    envelope = Envelope(None, None)
    whole = zlib.compress(DOC)
    for body, match in [
        (whole[:-8], "incomplete"),
        (b"not zlib at all", "does not decompress"),
    ]:
        record = b"$sp1:::z:" + binascii.b2a_base64(body, newline=False)
        with pytest.raises(Unsealable, match=match):
            envelope.unwrap(record, CONTEXT)
    bomb = b"$sp1:::z:" + binascii.b2a_base64(zlib.compress(b"\0" * 100_000), newline=False)
    with pytest.raises(Unsealable, match="larger than allowed"):
        envelope.unwrap(bomb, CONTEXT, limit=1000)
    assert envelope.unwrap(bomb, CONTEXT) == b"\0" * 100_000
    zstd = Envelope(None, Compression("zstd", threshold=0)).wrap(DOC, CONTEXT)
    with pytest.raises(Unsealable, match="larger than allowed"):
        envelope.unwrap(zstd, CONTEXT, limit=100)
    cut = zstd[: len(zstd) - 12] + b"A" * ((len(zstd) - 12) % 4 and 4 - (len(zstd) - 12) % 4)
    with pytest.raises(Unsealable):
        envelope.unwrap(cut, CONTEXT)
    with pytest.raises(Unsealable, match="key check"):
        envelope.unwrap(b"$sp1::abcd1234:-:AAAA", CONTEXT)


def test_a_store_without_keys_or_with_other_keys_gets_a_key_error() -> None:
    record = _sealed()
    with pytest.raises(SealingKeyError, match="no keyring") as caught:
        PLAIN.unwrap(record, CONTEXT)
    assert caught.value.key_id == "k1"
    with pytest.raises(SealingKeyError, match="does not hold"):
        Envelope(Keyring(K2), None).unwrap(record, CONTEXT)
    with pytest.raises(SealingKeyError, match="another secret"):
        Envelope(Keyring(Key("k1", bytes(32))), None).unwrap(record, CONTEXT)


def test_strict_envelopes_refuse_records_in_clear() -> None:
    strict = Envelope(KEYS, None)
    assert strict.strict
    for record in (DOC, Envelope(None, Compression("zlib", threshold=0)).wrap(DOC, CONTEXT)):
        with pytest.raises(UnsealedRecordError, match="accept_unsealed"):
            strict.unwrap(record, CONTEXT)
    with pytest.raises(UnsealedRecordError):
        strict.unwrap_text("{}", CONTEXT)
    with pytest.raises(UnsealedRecordError):
        strict.refuse_clear()
    lenient = Envelope(Keyring(K1, accept_unsealed=True), None)
    assert not lenient.strict
    assert lenient.unwrap(DOC, CONTEXT) == DOC
    lenient.refuse_clear()
    assert lenient.unwrap_text("{}", CONTEXT) == "{}"


def test_text_columns_round_trip() -> None:
    envelope = Envelope(KEYS, Compression("zstd", threshold=8))
    text = '{"name":"Zoë","note":"' + "ünïcode " * 40 + '"}'
    wrapped = envelope.wrap_text(text, CONTEXT)
    assert wrapped.isascii()
    assert "\n" not in wrapped
    assert '"' not in wrapped
    assert envelope.unwrap_text(wrapped, CONTEXT) == text


def test_compression_settings() -> None:
    assert compression_of(None) is None
    assert compression_of("zlib") == Compression("zlib")
    custom = Compression("zstd", threshold=0, level=9)
    assert compression_of(custom) is custom
    with pytest.raises(ConfigurationError):
        compression_of(3)  # type: ignore[arg-type]
    for bad in ({"algorithm": "lz4"}, {"threshold": -1}, {"threshold": True}, {"level": "9"}):
        with pytest.raises(ConfigurationError, match="compression"):
            Compression(**bad)  # type: ignore[arg-type]
    level9 = Envelope(None, Compression("zlib", threshold=0, level=9)).wrap(DOC, CONTEXT)
    assert PLAIN.unwrap(level9, CONTEXT) == DOC


def test_keyrings() -> None:
    ring = Keyring({"k1": K1.secret, "k2": K2.secret}, active="k2")
    assert ring.active == "k2"
    assert ring.key("k1") == K1
    assert ring.key("nope") is None
    assert ring.with_active("k1").active == "k1"
    assert hash(ring) == hash(Keyring(("k1", K1.secret), ("k2", K2.secret), active="k2"))
    assert ring != Keyring(K1, K2)
    assert ring != "k1"
    assert "accept_unsealed" in repr(Keyring(K1, accept_unsealed=True))
    with pytest.raises(ConfigurationError, match="at least one"):
        Keyring()
    with pytest.raises(ConfigurationError, match="not in the keyring"):
        Keyring(K1, active="k2")
    with pytest.raises(ConfigurationError, match="Key objects"):
        Keyring("k1")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="accept_unsealed"):
        Keyring(K1, accept_unsealed="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="key id"):
        Key("bad id", bytes(32))
    with pytest.raises(ConfigurationError, match="32 bytes"):
        Key("k", "x" * 32)  # type: ignore[arg-type]
    assert Keyring.parse(K1.encoded() + "," + K2.encoded(), active="k2").active == "k2"
    assert len(Key.generate("fresh").secret) == 32
