"""Mutations of sealed records for the reader fuzzer (tests/test_fuzz_readers.py, sealed run).

On a store sealed and compressed, every session base body, tail record, journal line, index
chunk, index delta line and backup body is an envelope (``$sp1:<key>:<check>:<tag>:<base64>``,
see ``session_persistence/_envelope.py``) bound to its place by its context. Besides the
mutations of ``tests/fuzz_mutations.py`` (which open a record, damage what it holds and seal
it again, as a writer holding the key would), these damage the envelopes themselves, as
someone without the key could, and fix the file's checksum up so the damage reaches the
envelope:

* ``seal-flip``: one base64 character of a sealed record changed (the record fails
  authentication), or its prefix edited: the compression tag (fails authentication), the key
  id or the key check (a key the store does not hold: ``SealingKeyError``);
* ``seal-swap``: sealed records moved where they were not written: two sessions' bases or
  tails swapped, a journal line from the other generation, lines reordered or replayed, an
  index chunk under another generation or chunk count, a delta line from the journal, the
  two backups' bodies swapped;
* ``seal-clear``: a sealed record replaced by one in clear that says something else (a
  planted ``"planted"`` marker): a store that seals everything must refuse it
  (``UnsealedRecordError``), never quarantine it (a store written before sealing holds such
  records) and never return it.

``store.json`` is not sealed: it gets the plain mutations.
"""

from __future__ import annotations

import binascii
import hashlib
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from fuzz_hostile import dumps
from fuzz_mutations import Mutation, Target, line_context, unwrapped

from session_persistence._envelope import PREFIX, Envelope
from session_persistence.backups._format import split_header
from session_persistence.backups._sealed import backup_context
from session_persistence.stores.filesystem._format import (
    INDEX,
    frame,
    index_chunk_context,
    session_context,
)

__all__ = ["PLANTED", "PLANTED_EXPIRY", "SEALED_MUTATIONS", "mutate_sealed", "planted"]

_WEIGHTS = {"seal-flip": 4, "seal-swap": 4, "seal-clear": 3}
SEALED_MUTATIONS = tuple(_WEIGHTS)
#: The metadata key a record planted in clear carries, and the expiry its headers carry: a
#: session read with either was served a record the store must refuse.
PLANTED = "planted-in-clear"
PLANTED_EXPIRY = "2099-09-09T09:09:09+00:00"
_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


# -- the files: framed lines, documents, backups -------------------------------------------------


def _lines(data: bytes) -> list[bytes]:
    return [part + b"\n" for part in data.split(b"\n")[:-1]]


def _doc_parts(data: bytes) -> tuple[dict[str, Any], bytes]:
    newline = data.index(b"\n")
    return orjson.loads(data[:newline]), data[newline + 1 : -1]


def _document(head: dict[str, Any], body: bytes) -> bytes:
    """A checksummed document around ``body``, its length and CRC fixed up."""
    head = {**head, "length": len(body), "crc32": f"{binascii.crc32(body):08x}"}
    return orjson.dumps(head) + b"\n" + body + b"\n"


def _backup_parts(data: bytes) -> tuple[dict[str, Any], bytes]:
    first, second = split_header(data, "backup")
    return orjson.loads(first), data[len(first) + len(second) :]


def _backup(fields: dict[str, Any], body: bytes) -> bytes:
    """A backup file around ``body``, its size and digest fixed up."""
    first = orjson.dumps({**fields, "body_bytes": len(body)}) + b"\n"
    digest = hashlib.sha256(first + body).hexdigest()
    return first + orjson.dumps({"sha256": digest}) + b"\n" + body


# -- seal-flip -----------------------------------------------------------------------------------


def _flip(rng: random.Random, record: bytes) -> tuple[bytes, str]:
    """``record`` (an envelope) with one base64 character or one prefix field changed."""
    parts = record.split(b":", 4)
    encoded = parts[4]
    choice = rng.random()
    if choice < 0.75 and len(encoded) > 8:
        # Not the last 4 characters: a change there may only touch the padding bits.
        at = rng.randrange(len(encoded) - 4)
        new = rng.choice([c for c in _B64 if c != encoded[at]])
        encoded = encoded[:at] + bytes([new]) + encoded[at + 1 :]
        return b":".join([*parts[:4], encoded]), f"base64 character {at} changed"
    field, value = rng.choice(
        [
            (3, b"-" if parts[3] != b"-" else b"z"),  # the compression tag: fails authentication
            (1, b"k2"),  # another key of the keyring: its check differs
            (1, b"k9"),  # a key the keyring lacks
            (2, parts[2][::-1] if parts[2][::-1] != parts[2] else b"0000"),  # the key check
        ]
    )
    parts[field] = value
    name = {1: "key id", 2: "key check", 3: "compression tag"}[field]
    return b":".join(parts), f"{name} = {value.decode()!r}"


def _key_edit(detail: str) -> bool:
    return detail.startswith(("key id", "key check"))


# -- the entry point -----------------------------------------------------------------------------


def mutate_sealed(
    root: Path,
    target: Target,
    rng: random.Random,
    *,
    env: Envelope,
    targets: list[Target],
    fallback: Callable[[], Mutation],
) -> Mutation:
    """Damage the sealed records of ``target`` under ``root``; return what was done.

    ``targets`` are the template's files (the other sessions', generations' and backups');
    ``fallback`` damages the file with a plain mutation instead, for files without sealed
    records (``store.json``, an empty delta).
    """
    if target.kind == "store":
        return fallback()
    path = root / target.path
    data = path.read_bytes()
    kinds = list(_WEIGHTS)
    name = rng.choices(kinds, weights=[_WEIGHTS[k] for k in kinds])[0]
    mutation = Mutation(target, name)
    touched: set[str] = {target.session_id} if target.session_id else set()

    def others(kind: str) -> list[Target]:
        return [t for t in targets if t.kind == kind and t.path != target.path]

    if target.kind in ("journal", "journal-old", "tail", "index-delta"):
        lines = _lines(data)
        if not lines:
            return fallback()
        context = INDEX if target.kind == "index-delta" else line_context(target)
        index = rng.randrange(len(lines))
        start = sum(len(line) for line in lines[:index])
        payload = lines[index][9:-1]
        if name == "seal-flip":
            changed, what = _flip(rng, payload)
            lines[index] = frame(changed)
            mutation.detail = f"line {index}: {what}"
            mutation.key_refusal = _key_edit(what)
        elif name == "seal-clear":
            plain = unwrapped(env, payload, context)
            assert plain is not None
            lines[index] = frame(_planted(plain))
            mutation.detail = f"line {index} in clear: {lines[index][9:89]!r}"
            mutation.clear = True
        else:
            lines, mutation.detail, extra = _swap_lines(
                rng, root, target, lines, index=index, others=others
            )
            touched |= extra
        mutation.offset = start
        data = b"".join(lines)
    elif target.kind == "base":
        head, body = _doc_parts(data)
        assert target.session_id is not None
        if name == "seal-flip":
            body, what = _flip(rng, body)
            mutation.detail = what
            mutation.key_refusal = _key_edit(what)
        elif name == "seal-clear":
            plain = unwrapped(env, body, session_context(target.session_id))
            assert plain is not None
            body = _planted(plain)
            mutation.detail = "the document in clear"
            mutation.clear = True
        else:
            other = rng.choice(others("base"))
            assert other.session_id is not None
            other_data = (root / other.path).read_bytes()
            if rng.random() < 0.5:  # the whole files swapped
                (root / other.path).write_bytes(data)
                path.write_bytes(other_data)
                mutation.detail = f"base files swapped with {other.session_id}"
            else:  # only the bodies: each head keeps its own token
                other_head, other_body = _doc_parts(other_data)
                (root / other.path).write_bytes(_document(other_head, body))
                path.write_bytes(_document(head, other_body))
                mutation.detail = f"sealed bodies swapped with {other.session_id}"
            mutation.touched = touched | {other.session_id}
            return mutation
        data = _document(head, body)
    elif target.kind == "index":
        head, body = _doc_parts(data)
        rows = body.split(b"\n")
        first = orjson.loads(rows[0])
        if name == "seal-flip":
            number = rng.randrange(1, len(rows))
            rows[number], what = _flip(rng, rows[number])
            mutation.detail = f"chunk {number - 1}: {what}"
            mutation.key_refusal = _key_edit(what)
        elif name == "seal-clear":
            number = rng.randrange(1, len(rows))
            context = index_chunk_context(first["generation"], number - 1, first["chunks"])
            plain = unwrapped(env, rows[number], context)
            assert plain is not None
            rows[number] = plain
            mutation.detail = f"chunk {number - 1} in clear"
            mutation.clear = True
        else:
            choice = rng.randrange(3)
            if choice == 0:  # the same chunks under the next generation
                generation = first["generation"] + 1
                head = {**head, "generation": generation}
                rows[0] = dumps({**first, "generation": generation})
                mutation.detail = f"chunks moved to generation {generation}"
            elif choice == 1:  # one more chunk claimed: a copy of one
                rows[0] = dumps({**first, "chunks": first["chunks"] + 1})
                rows.append(rng.choice(rows[1:]))
                mutation.detail = "a chunk twice, the count raised to match"
            else:  # a journal line where a chunk belongs
                journal = rng.choice(others("journal") + others("journal-old"))
                line = rng.choice(_lines((root / journal.path).read_bytes()))
                rows[rng.randrange(1, len(rows))] = line[9:-1]
                mutation.detail = f"a line of {journal.path} as a chunk"
        data = _document(head, b"\n".join(rows))
    elif target.kind == "backup":
        fields, body = _backup_parts(data)
        if name == "seal-flip":
            body, what = _flip(rng, body)
            fields = {**fields, "sealed": _key_id(body) or fields["sealed"]}
            mutation.detail = f"body: {what}"
        elif name == "seal-clear":
            plain = unwrapped(env, body, backup_context(fields["backup_id"]))
            assert plain is not None
            body, fields = plain, {**fields, "sealed": None}
            mutation.detail = "the body in clear, the header says so"
            mutation.clear = True
        else:
            other = others("backup")[0]
            other_fields, other_body = _backup_parts((root / other.path).read_bytes())
            (root / other.path).write_bytes(_backup(other_fields, body))
            body = other_body
            mutation.detail = f"sealed bodies swapped with {other.path}"
        data = _backup(fields, body)
    else:
        raise AssertionError(target)
    path.write_bytes(data)
    mutation.touched = touched
    return mutation


def planted(session: Any) -> bool:
    """Whether a session read back (a PersistedSession) holds what a record in clear said."""
    if session is None:
        return False
    expires = session.expires_at
    return PLANTED in session.metadata or (
        expires is not None and expires.isoformat() == PLANTED_EXPIRY
    )


def _key_id(record: bytes) -> str | None:
    if record[:5] != PREFIX:
        return None
    return record[5:].split(b":", 1)[0].decode("ascii", "replace")


def _planted(plain: bytes) -> bytes:
    """A record in clear that says something no writer said: ``plain`` with a marker."""
    try:
        record = orjson.loads(plain)
    except orjson.JSONDecodeError:
        return plain
    _plant(record)
    return dumps(record)


def _plant(value: Any) -> None:
    """Mark what ``value`` says, so that serving it shows.

    :data:`PLANTED` goes in every ``metadata`` object inside it, and :data:`PLANTED_EXPIRY` in
    every header an append carries (a tail's or a journal's).
    """
    if isinstance(value, dict):
        for key, child in value.items():
            if key == "metadata" and isinstance(child, dict):
                child[PLANTED] = True
            elif key in ("header", "append") and isinstance(child, dict):
                child["expires_at"] = PLANTED_EXPIRY
                _plant(child)
            else:
                _plant(child)
    elif isinstance(value, list):
        for child in value:
            _plant(child)


def _swap_lines(
    rng: random.Random,
    root: Path,
    target: Target,
    lines: list[bytes],
    *,
    index: int,
    others: Callable[[str], list[Target]],
) -> tuple[list[bytes], str, set[str]]:
    """Lines of ``target`` with a sealed line moved: from elsewhere, reordered or replayed.

    Returns the lines, what was done, and the sessions it touches besides (a tail swapped).
    """
    lines = list(lines)
    choice = rng.randrange(4)
    if target.kind == "tail" and choice == 0 and others("tail"):
        other = rng.choice(others("tail"))
        assert other.session_id is not None
        other_data = (root / other.path).read_bytes()
        (root / other.path).write_bytes(b"".join(lines))
        return _lines(other_data), f"tail files swapped with {other.session_id}", {other.session_id}
    if choice <= 1:  # a line of another file (another generation, session or context)
        sources = [
            t
            for kind in ("journal", "journal-old", "tail", "index-delta")
            for t in others(kind)
            if (root / t.path).stat().st_size
        ]
        source = rng.choice(sources)
        line = rng.choice(_lines((root / source.path).read_bytes()))
        if rng.random() < 0.5:
            lines.insert(index, line)
            return lines, f"a line of {source.path} inserted before line {index}", set()
        lines[index] = line
        return lines, f"line {index} replaced by a line of {source.path}", set()
    if choice == 2 and len(lines) > 1:  # two lines swapped
        other = rng.choice([n for n in range(len(lines)) if n != index])
        lines[index], lines[other] = lines[other], lines[index]
        return lines, f"lines {index} and {other} swapped", set()
    copy = rng.randrange(len(lines))  # an intact line replayed
    lines.insert(index, lines[copy])
    return lines, f"line {copy} replayed before line {index}", set()
