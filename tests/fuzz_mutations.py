"""Mutations for the reader fuzzer (tests/test_fuzz_readers.py): how each store file is damaged.

Each mutation damages one file of a copied store in place and returns a :class:`Mutation`
saying what it did (file, kind of damage, offset) and what it may affect: the sessions it
*touches* (whose state may legitimately change), whether the damage can pass for valid data
(``lax``: a random field of a re-sealed record changed, which may still be a well-formed write),
and, for the journal, whether intact lines follow the damage (then it must be reported loudly).

Kinds of damage: ``bitflip``, ``truncate``, ``garbage`` (appended bytes), ``hostile`` (a
checksum-valid malformed record: wrong types, ``../../victim`` ids, bad ``rotate``, empty
documents), ``lax`` (a random field of a checksum-valid record replaced), ``huge`` (a line of
several MB), ``deep`` (nesting of 300 or 2000 levels), ``fifo`` and ``symlink`` (the file
replaced by a named pipe, or by a link to a file outside the store). The hostile values and
records come from ``tests/fuzz_hostile.py``.

In a sealed store (``mutate(..., env=<the store's envelope>)``) records are opened with the
keyring to be changed and sealed again in their own context, so the damage reaches what is
read once a record opens; ``tests/fuzz_sealed.py`` damages the envelopes themselves.
"""

from __future__ import annotations

import os
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from fuzz_hostile import (
    big,
    deep,
    deep_change,
    dumps,
    garbage,
    hostile_journal,
    hostile_tail,
    huge,
    lax_change,
)

from session_persistence._envelope import PLAIN, Envelope, Unsealable
from session_persistence.backups._format import encode_backup, split_header
from session_persistence.backups._sealed import backup_context, seal_body
from session_persistence.errors import SessionStoreError
from session_persistence.stores.filesystem._format import (
    INDEX,
    frame,
    index_chunk_context,
    journal_context,
    session_context,
    tail_context,
)

__all__ = ["MUTATIONS", "Mutation", "Target", "journal_effect", "line_ids", "mutate"]

# How often each kind of damage is picked: mostly byte damage and malformed records.
_WEIGHTS = {
    "bitflip": 24,
    "truncate": 14,
    "garbage": 10,
    "hostile": 22,
    "lax": 12,
    "huge": 4,
    "deep": 8,
    "fifo": 3,
    "symlink": 3,
}
MUTATIONS = tuple(_WEIGHTS)


@dataclass(frozen=True, slots=True)
class Target:
    """A file of the template store that the fuzzer may damage."""

    path: str  # relative to the store root
    kind: str  # base, tail, journal, journal-old, index, index-delta, store, backup
    session_id: str | None = None  # the session a base or tail belongs to


@dataclass(slots=True)
class Mutation:
    """What was done to one file, and what it may change."""

    target: Target
    name: str  # one of MUTATIONS
    offset: int | None = None
    detail: str = ""
    touched: set[str] = field(default_factory=set)
    lax: bool = False  # the damaged record may still be valid: touched sessions may change
    silent_ok: bool = False  # a torn journal tail: touched sessions may revert silently
    journal_loud: bool = False  # intact journal lines follow the damage: must be reported
    may_refuse: bool = False  # opening may fail with a typed error (store.json, fifo, link)
    # (sealed stores, tests/fuzz_sealed.py)
    key_refusal: bool = False  # a record names a key (or check) the store lacks: SealingKeyError
    clear: bool = False  # a record in clear planted: refused (UnsealedRecordError), never kept

    def describe(self) -> str:
        """One line for a failure report."""
        where = "" if self.offset is None else f" at byte {self.offset}"
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.target.kind} {self.target.path}: {self.name}{where}{detail}"


# -- framed lines (journal segments and tails) --------------------------------------------------


def _lines(data: bytes) -> list[bytes]:
    """Complete lines (newline included); a trailing partial line is dropped."""
    parts = data.split(b"\n")
    return [part + b"\n" for part in parts[:-1]]


def _json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def unwrapped(envelope: Envelope, data: bytes, context: bytes) -> bytes | None:
    """``data`` opened as the store opens it (``None``: it does not open: damage, or in clear).

    A plain envelope returns plain records as they are; a sealing one refuses them.
    """
    try:
        return envelope.unwrap(data, context)
    except (Unsealable, SessionStoreError):
        return None


def _opened_json(envelope: Envelope, data: bytes, context: bytes) -> Any:
    """The JSON a record holds once opened (``None``: it does not open or is not JSON)."""
    plain = unwrapped(envelope, data, context)
    return None if plain is None else _json(plain)


def _payload(line: bytes, envelope: Envelope = PLAIN, context: bytes = b"") -> Any:
    return _opened_json(envelope, line[9:-1], context)


def line_ids(record: Any) -> set[str]:
    """Session ids a journal record names (puts, appends, deletes, quarantine notices)."""
    ids: set[str] = set()
    if type(record) is not dict:
        return ids
    if type(record.get("quarantine")) is str:
        ids.add(record["quarantine"])
    ops = record.get("ops")
    for op in ops if type(ops) is list else ():
        if type(op) is not dict:
            continue
        for key in ("put", "append", "doc"):  # (a put is "doc" alone since format 2)
            header = op.get(key)
            if type(header) is dict and type(header.get("session_id")) is str:
                ids.add(header["session_id"])
        if type(op.get("delete")) is str:
            ids.add(op["delete"])
    return ids


def _normal(line: bytes) -> tuple[int, bytes] | None:
    """A framed line as (checksum, payload), or None if it fails its frame or checksum."""
    if len(line) < 10 or line[8:9] != b" " or not line.endswith(b"\n"):
        return None
    try:
        checksum = int(line[:8], 16)
    except ValueError:
        return None
    payload = line[9:-1]
    return (checksum, payload) if zlib.crc32(payload) == checksum else None


def journal_effect(
    original: bytes, mutated: bytes, envelope: Envelope = PLAIN, generation: int = 0
) -> tuple[set[str], bool]:
    """Compare a journal segment before and after damage.

    Returns ``(touched, followed)``: the ids named by original lines that are no longer
    present intact (a line whose checksum digits only changed case is still intact) or by new
    checksum-valid lines; and whether an intact original line follows damage (a bad or new
    line, or a lost one): damage that must be reported loudly, not a torn tail. A partial
    last line is a torn write. A line that comes twice, its first copy ahead of where the
    original was, is a replay: the copy is the damage, the lines between stay intact.

    In a sealed store (``envelope`` seals) a line is read as the store reads it: opened with
    the keyring and the segment's context (``journal:<generation>``). A new line that does not
    open (altered, moved from elsewhere, or in clear) names no session it can prove: it is
    damage like a line that fails its checksum.
    """
    context = journal_context(generation)
    originals = _lines(original)
    before = [_normal(line) for line in originals]
    kept: set[int] = set()
    touched: set[str] = set()
    position = 0
    damaged = False
    followed = False
    items = [_normal(line) for line in _lines(mutated)]
    for number, item in enumerate(items):
        match = next((i for i in range(position, len(before)) if before[i] == item), None)
        if match is not None and match > position and item in items[number + 1 :]:
            match = None  # a copy of a later line, which comes again: the copy is the damage
        if item is None or match is None:
            if item is not None:  # a new record: the sessions it names may change
                touched |= line_ids(_opened_json(envelope, item[1], context))
            damaged = True
            continue
        followed = followed or damaged or match > position
        kept.add(match)
        position = match + 1
    for index, line in enumerate(originals):
        if index not in kept:
            touched |= line_ids(_payload(line, envelope, context))
    return touched, followed


def _hostile_delta(
    rng: random.Random, data: bytes, victim: str, env: Envelope
) -> tuple[bytes, int, str]:
    """Replace (or insert before) a line of index.delta with a checksum-valid malformed one."""
    lines = _lines(data)
    index = rng.randrange(len(lines)) if lines else 0
    start = sum(len(line) for line in lines[:index])
    insert = rng.random() < 0.3 or not lines
    end = start if insert else start + len(lines[index])
    payload = rng.choice(
        [
            b"[]",
            b"{}",
            b"not json",
            dumps({"from": 1, "generation": "2", "headers": [], "deleted": []}),
            dumps({"from": 2, "generation": 2, "headers": [], "deleted": []}),
            dumps({"generation": 2, "headers": [], "deleted": []}),
            dumps({"from": 1, "generation": 2, "headers": [{}], "deleted": []}),
            dumps({"from": 1, "generation": 2, "headers": None, "deleted": []}),
            dumps({"from": 1, "generation": 2, "headers": [], "deleted": [5]}),
            dumps({"from": 1, "generation": 2, "headers": [], "deleted": "x"}),
            dumps({"from": 1, "generation": 2, "headers": [deep(300)], "deleted": []}),
            dumps({"from": 1, "generation": 2, "headers": [{"session_id": "../x"}], "deleted": []}),
            dumps(
                {"from": 1, "generation": 2, "layout": "columns-1", "columns": {}, "deleted": []}
            ),
            dumps(
                {"from": 1, "generation": 2, "layout": "columns-9", "columns": {}, "deleted": []}
            ),
            dumps(
                {"from": 1, "generation": 2, "layout": "columns-1", "columns": None, "deleted": []}
            ),
            dumps(
                {
                    "from": 1,
                    "generation": 2,
                    "layout": "columns-1",
                    "columns": {"ids": ["../x"]},
                    "deleted": [],
                }
            ),
        ]
    )
    line = frame(env.wrap(payload, INDEX))
    if lines and rng.random() < 0.3:  # an intact line where another belongs: a stale copy
        line = rng.choice(lines)
        payload = b"a copy of an intact line"
    detail = f"line {index} {'inserted before' if insert else 'replaced'}: {payload[:60]!r}"
    return data[:start] + line + data[end:], start, detail


def line_context(target: Target) -> bytes:
    """The envelope context of the lines of a journal segment or a tail."""
    if target.kind == "tail":
        assert target.session_id is not None
        return tail_context(target.session_id)
    return journal_context(int(Path(target.path).stem))


def _mutate_lines(
    rng: random.Random, data: bytes, name: str, target: Target, victim: str, *, env: Envelope
) -> tuple[bytes, int | None, str, bool]:
    """Damage a framed-lines file; return (bytes, offset, detail, lax).

    New records are wrapped by ``env`` as the store wraps its own (sealed with its key, in
    the file's context): in a sealed store they test what is read once a record opens.
    """
    lines = _lines(data)
    generation = int(Path(target.path).stem) if target.kind.startswith("journal") else 0
    context = line_context(target)

    def seal(payload: bytes) -> bytes:
        return frame(env.wrap(payload, context))

    index = rng.randrange(len(lines)) if lines else 0
    start = sum(len(line) for line in lines[:index])
    insert = rng.random() < 0.3 or not lines  # a new line between lines, else replace one
    end = start if insert else start + len(lines[index])
    old = None if insert or not lines else _payload(lines[index], env, context)
    where = f"line {index} ({'inserted before' if insert else 'replaced'})"
    lax = False
    if name == "hostile":
        if target.kind == "tail":
            payload = hostile_tail(rng, old, victim)
        else:
            payload = hostile_journal(rng, old, generation, victim)
        new = seal(payload)
        detail = f"{where}: {payload[:80]!r}"
    elif name == "lax":
        if old is None:
            old = _payload(rng.choice(lines), env, context) if lines else {"seq": 1}
        what = lax_change(rng, old, victim)
        new = seal(dumps(old))
        lax = True
        detail = f"{where}: {what}"
    elif name == "deep":
        if old is not None and rng.random() < 0.6:
            what = deep_change(rng, old)
            new = seal(dumps(old))
        else:
            levels = rng.choice((300, 2000))
            what = f"[[...]] {levels} levels"
            new = seal(b"[" * levels + b"]" * levels)
        detail = f"{where}: {what}"
    else:  # huge
        form = rng.choice(("framed", "unframed", "unterminated"))
        blob = huge(rng)
        if form == "framed":
            new = seal(b'"' + blob.replace(b'"', b"'").replace(b"\\", b"/") + b'"')
        elif form == "unframed":
            new = blob + b"\n"
        else:
            new, start, end = blob, len(data), len(data)
            where = "appended"
        detail = f"{where}: {form} line of {len(new)} bytes"
    return data[:start] + new + data[end:], start, detail, lax


# -- checksummed documents (session bases, index.json) and backups ------------------------------


def _split_document(data: bytes, env: Envelope, context: bytes) -> tuple[dict[str, Any], Any]:
    """A session base's head and its document (opened by ``env`` in ``context``)."""
    newline = data.index(b"\n")
    body = unwrapped(env, data[newline + 1 : -1], context)
    assert body is not None, "the template's records all open"
    return orjson.loads(data[:newline]), orjson.loads(body)


#: Where an index base's chunks were sealed: its generation and its number of chunks.
Place = tuple[int, int]


def _split_index(data: bytes, env: Envelope) -> tuple[dict[str, Any], list[Any], Place]:
    """index.json's head and each body line parsed (the first line, then a chunk a line).

    Chunks are opened with ``env`` in their contexts (``index:<generation>:<n>/<k>``).
    """
    newline = data.index(b"\n")
    head = orjson.loads(data[:newline])
    raw = data[newline + 1 : -1].split(b"\n")
    first = orjson.loads(raw[0])
    place = (head["generation"], first.get("chunks", 0))
    lines = [first]
    for number, line in enumerate(raw[1:]):
        plain = unwrapped(env, line, index_chunk_context(place[0], number, place[1]))
        assert plain is not None, "the template's records all open"
        lines.append(orjson.loads(plain))
    return head, lines, place


def _seal_index(head: dict[str, Any], lines: list[Any], env: Envelope, place: Place) -> bytes:
    """Write index.json back: chunks sealed (if ``env`` seals) where the template had them."""
    body = [dumps(lines[0])] if lines else []
    for number, line in enumerate(lines[1:]):
        body.append(env.wrap(dumps(line), index_chunk_context(place[0], number, place[1])))
    return _seal_document(head, b"\n".join(body))


#: Wraps a record's plain bytes as the store would in the damaged file's place.
Sealer = Callable[[bytes], bytes]


def _seal_document(head: dict[str, Any], body: bytes) -> bytes:
    """Re-seal a checksummed document around ``body`` (``head`` keeps its other fields)."""
    head = {**head, "length": len(body), "crc32": f"{zlib.crc32(body):08x}"}
    return orjson.dumps(head) + b"\n" + body + b"\n"


def _hostile_base(
    rng: random.Random, head: dict[str, Any], body: Any, other: str, victim: str, *, seal: Sealer
) -> tuple[bytes, str]:
    change = rng.choice(
        [
            ("session_id", "../../victim"),
            ("session_id", victim),
            ("session_id", other),
            ("session_id", 7),
            ("interactions", "x"),
            ("interactions", [1]),
            ("interactions", [{}]),
            ("version", "x"),
            ("version", -1),
            ("metadata", []),
            ("metadata", deep(300)),
            ("created_at", "x"),
            ("tags", "x"),
            ("@body", {}),
            ("@body", []),
            ("@body", "x"),
            ("@head.token", 5),
            ("@head.token", None),
            ("@head.kind", "index"),
            ("@head.format", 99),
            ("@head.format", "1"),
        ]
    )
    key, value = change
    if key == "@body":
        body = value
    elif key.startswith("@head."):
        head = {**head, key[6:]: value}
    else:
        body[key] = value
    return _seal_document(head, seal(dumps(body))), f"{key} = {str(value)[:40]!r}"


def _hostile_index(
    rng: random.Random,
    head: dict[str, Any],
    lines: list[Any],
    victim: str,
    *,
    env: Envelope,
    place: Place,
) -> tuple[bytes, str]:
    """A checksum-valid index.json that is malformed: its head, its first line or a column."""
    choice = rng.randrange(5)
    chunks = [n for n, line in enumerate(lines) if type(line) is dict and "ids" in line]
    if choice == 0 or not chunks:
        value = rng.choice([None, [1], "x", 0, -1, 1.5, True, 2**63])
        head = {**head, "generation": value}
        what = f"generation = {value!r}"
    elif choice == 1:
        lines[0] = rng.choice(
            [{}, "x", None, 5, {**lines[0], "chunks": len(chunks) + 1},
             {**lines[0], "chunks": -1}, {**lines[0], "layout": "columns-9"},
             {**lines[0], "generation": 0}]
        )  # fmt: skip
        what = f"first line = {str(lines[0])[:60]!r}"
    elif choice == 2:
        if rng.random() < 0.5:
            lines.append(lines[rng.choice(chunks)])  # a chunk twice: every id twice
        else:
            del lines[rng.choice(chunks)]
        what = "a chunk line added or dropped"
    else:
        chunk = lines[rng.choice(chunks)]
        key, value = rng.choice(
            [
                ("ids", "../../victim"),
                ("ids", victim),
                ("ids", 5),
                ("ids", "a\nb"),
                ("activity", "not-a-ulid"),
                ("processor", 10**6),
                ("ulid", 9),
                ("created", "x"),
                ("created", big(31)),  # (orjson writes no int beyond 64 bits)
                ("expires", 1.5),
                ("version", 0),
                ("count", -1),
                ("size", None),
                ("metadata", "not json"),
                ("metadata", "[1]"),
                ("metadata", dumps(deep(300)).decode()),
                ("tags", -1),
                ("@column", None),
                ("@length", None),
            ]
        )
        column = rng.choice([k for k in chunk if type(chunk[k]) is list and chunk[k]] or ["ids"])
        if key == "@column":
            del chunk[column]
        elif key == "@length":
            chunk[column] = chunk[column] + chunk[column][:1]
        elif chunk.get(key):
            chunk[key][rng.randrange(len(chunk[key]))] = value
        else:
            chunk[key] = [value]
        what = f"column {key if key[0] != '@' else column}: {key} {str(value)[:40]!r}"
    return _seal_index(head, lines, env, place), what


def _split_backup(data: bytes, env: Envelope) -> tuple[dict[str, Any], list[bytes], bool]:
    """A backup's header fields (but those :func:`_encode_backup` writes) and its documents."""
    first, second = split_header(data, "backup")
    fields = orjson.loads(first)
    body = data[len(first) + len(second) :]
    if fields.get("sealed") is not None:
        opened = unwrapped(env, body, backup_context(fields["backup_id"]))
        assert opened is not None, "the template's backups all open"
        body = opened
    compressed = fields["compression"] == "zlib"
    if compressed:
        body = zlib.decompress(body)
    documents = body.split(b"\n")[:-1]
    for name in ("kind", "format", "session_count", "compression", "sealed", "body_bytes"):
        fields.pop(name, None)
    return fields, documents, compressed


def _encode_backup(
    fields: dict[str, Any], documents: list[bytes], compressed: bool, env: Envelope
) -> bytes:
    """A backup file as the store writes it: sealed (with ``env``'s key) if ``env`` seals."""
    backup_id = fields.get("backup_id")
    if not env.sealing or type(backup_id) is not str:
        return encode_backup(fields, documents, compress=compressed)
    return encode_backup(
        fields,
        documents,
        compress=compressed,
        seal=lambda body: seal_body(env, body, backup_id),
    )


def _hostile_backup(
    rng: random.Random, data: bytes, victim: str, lax: bool, env: Envelope
) -> tuple[bytes, str]:
    fields, documents, compressed = _split_backup(data, env)
    index = rng.randrange(len(documents))
    document = orjson.loads(documents[index])
    if lax:
        what = lax_change(rng, document, victim)
        documents[index] = dumps(document)
    else:
        key, value = rng.choice(
            [
                ("session_id", "../../victim"),
                ("session_id", victim),
                ("session_id", ""),
                ("interactions", "x"),
                ("interactions", [1]),
                ("version", -1),
                ("version", "x"),
                ("metadata", deep(300)),
                ("created_at", "x"),
                ("@document", {}),
                ("@document", []),
                ("@document", "x"),
                ("@duplicate", None),
                ("@header.backup_id", "../../victim"),
                ("@header.created_at", "x"),
                ("@header.created_at", "2030-01-01T00:00:00"),
                ("@header.metadata", None),
            ]
        )
        if key == "@document":
            documents[index] = dumps(value)
        elif key == "@duplicate":
            documents.append(documents[index])
        elif key.startswith("@header."):
            fields[key[8:]] = value
        else:
            document[key] = value
            documents[index] = dumps(document)
        what = f"record {index}: {key} = {str(value)[:40]!r}"
    return _encode_backup(fields, documents, compressed, env), what


# -- the entry point ----------------------------------------------------------------------------


def mutate(
    root: Path,
    target: Target,
    rng: random.Random,
    victim: str,
    other_session: str,
    *,
    env: Envelope = PLAIN,
) -> Mutation:
    """Damage ``target`` under ``root`` in one random way; return what was done.

    ``victim`` is an absolute path (without suffix) of a file outside the store that hostile
    ids name; ``other_session`` is another stored session's id (a base claiming to be it).
    ``env`` is the store's envelope: records are opened with it to be changed, and wrapped
    with it again (sealed with its key in their own context, as a writer holding the key
    would), so in a sealed store the damage reaches what is read once a record opens.
    """
    path = root / target.path
    kinds = list(_WEIGHTS)
    name = rng.choices(kinds, weights=[_WEIGHTS[k] for k in kinds])[0]
    if target.kind == "index-delta" and name in ("lax", "deep", "huge"):
        name = "hostile"  # (a well-formed delta that lies is as undetectable as a lying index)
    if target.kind in ("store", "index") and name == "lax":
        # A well-formed but wrong store.json or index is a lie no checksum can catch: only
        # malformed ones are fair.
        name = "hostile"
    mutation = Mutation(target, name)
    if name == "fifo":
        path.unlink()
        os.mkfifo(path, 0o600)
        mutation.may_refuse = True
        return mutation
    if name == "symlink":
        path.unlink()
        os.symlink(f"{victim}{path.suffix}", path)
        mutation.may_refuse = True
        return mutation
    data = path.read_bytes()
    if name == "bitflip":
        offset = rng.randrange(len(data))
        bit = rng.randrange(8)
        data = data[:offset] + bytes([data[offset] ^ (1 << bit)]) + data[offset + 1 :]
        mutation.offset, mutation.detail = offset, f"bit {bit}"
    elif name == "truncate":
        offset = rng.randrange(len(data))
        mutation.offset, mutation.detail = offset, f"of {len(data)} bytes"
        data = data[:offset]
    elif name == "garbage":
        size = rng.choice((1, 7, 64, 700))
        extra = garbage(rng, size)
        if rng.random() < 0.5:
            extra += b"\n"
        mutation.offset, mutation.detail = len(data), f"{len(extra)} bytes"
        data += extra
    elif target.kind == "index-delta":
        data, mutation.offset, mutation.detail = _hostile_delta(rng, data, victim, env)
    elif target.kind in ("journal", "journal-old", "tail"):
        data, mutation.offset, mutation.detail, mutation.lax = _mutate_lines(
            rng, data, name, target, victim, env=env
        )
    elif name == "huge":
        mutation.offset = len(data)
        blob = huge(rng)
        data += blob
        mutation.detail = f"{len(blob)} bytes appended"
    elif target.kind == "store":
        document: Any = orjson.loads(data)
        if name == "deep":
            mutation.detail = deep_change(rng, document)
        else:
            document = rng.choice(
                [
                    {**document, "format": rng.choice([None, "1", [1], 1.5, True, 0, 2, 2**63])},
                    {**document, "kind": rng.choice([None, "x", 5])},
                    rng.choice([[], "x", None, 5, deep(300), deep(2000)]),
                ]
            )
            mutation.detail = f"{dumps(document)[:80]!r}"
        data = dumps(document)
    elif target.kind == "backup" and name == "deep":
        fields, documents, compressed = _split_backup(data, env)
        index = rng.randrange(len(documents))
        document = orjson.loads(documents[index])
        mutation.detail = f"record {index}: {deep_change(rng, document)}"
        documents[index] = dumps(document)
        data = _encode_backup(fields, documents, compressed, env)
    elif target.kind == "backup":
        data, mutation.detail = _hostile_backup(rng, data, victim, name == "lax", env)
        mutation.lax = name == "lax"
    elif target.kind == "index":
        head, lines, place = _split_index(data, env)
        if name == "deep":
            mutation.detail = deep_change(rng, lines[rng.randrange(len(lines))])
            data = _seal_index(head, lines, env, place)
        else:
            data, mutation.detail = _hostile_index(rng, head, lines, victim, env=env, place=place)
    else:  # a checksummed document: a session base
        assert target.session_id is not None
        context = session_context(target.session_id)
        head, body = _split_document(data, env, context)

        def seal(plain: bytes) -> bytes:
            return env.wrap(plain, context)

        if name == "lax":
            mutation.detail = lax_change(rng, body, victim)
            data = _seal_document(head, seal(dumps(body)))
            mutation.lax = True
        elif name == "deep":
            mutation.detail = deep_change(rng, body)
            data = _seal_document(head, seal(dumps(body)))
        else:
            data, mutation.detail = _hostile_base(rng, head, body, other_session, victim, seal=seal)
    path.write_bytes(data)
    mutation.may_refuse = target.kind == "store"
    return mutation
