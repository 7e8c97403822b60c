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
replaced by a named pipe, or by a link to a file outside the store).
"""

from __future__ import annotations

import os
import random
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from session_persistence.backups._format import encode_backup, split_header
from session_persistence.stores.filesystem._format import frame

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

    def describe(self) -> str:
        """One line for a failure report."""
        where = "" if self.offset is None else f" at byte {self.offset}"
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.target.kind} {self.target.path}: {self.name}{where}{detail}"


# -- JSON helpers ------------------------------------------------------------------------------

_DEEP = re.compile(rb'"@@deep-(\d+)@@"')


def deep(levels: int) -> str:
    """A placeholder that :func:`dumps` turns into ``levels`` nested arrays."""
    return f"@@deep-{levels}@@"


def dumps(value: Any) -> bytes:
    """``orjson.dumps`` that can also write nesting deeper than orjson will (via :func:`deep`)."""
    return _DEEP.sub(lambda m: b"[" * int(m[1]) + b"]" * int(m[1]), orjson.dumps(value))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a node inside ``value`` (dict keys and list indexes), the root excluded."""
    found = []
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return found
    for key, child in items:
        found.append((*prefix, key))
        found.extend(_paths(child, (*prefix, key)))
    return found


def _set(value: Any, path: tuple[Any, ...], new: Any) -> None:
    for key in path[:-1]:
        value = value[key]
    value[path[-1]] = new


def _drop(value: Any, path: tuple[Any, ...]) -> None:
    for key in path[:-1]:
        value = value[key]
    del value[path[-1]]


def _hostile_values(victim: str) -> list[Any]:
    """Values of the wrong type or shape for (almost) any field."""
    return [
        None,
        True,
        -1,
        0,
        2**63,
        1.5,
        "",
        "x",
        [],
        [1],
        {},
        {"x": 1},
        "../../victim",
        "../../../victim",
        victim,
        "a" * 300,
        deep(300),
    ]


def _lax_change(rng: random.Random, document: Any, victim: str) -> str:
    """Replace (or drop) one random node of ``document``; return what was done."""
    paths = _paths(document)
    if not paths:
        return "nothing to change"
    path = rng.choice(paths)
    if rng.random() < 0.15:
        _drop(document, path)
        return f"dropped {'/'.join(map(str, path))}"
    value = rng.choice(_hostile_values(victim))
    _set(document, path, value)
    return f"{'/'.join(map(str, path))} = {str(value)[:40]!r}"


def _deep_change(rng: random.Random, document: Any) -> str:
    levels = rng.choice((300, 2000))
    paths = _paths(document)
    if not paths:
        return "nothing to nest"
    path = rng.choice(paths)
    _set(document, path, deep(levels))
    return f"{'/'.join(map(str, path))} nested {levels} levels"


def _garbage(rng: random.Random, size: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(size))


def _huge(rng: random.Random) -> bytes:
    """Several MB without a newline (cheap to make: a repeated random block)."""
    block = _garbage(rng, 4096).replace(b"\n", b" ")
    return block * rng.randint(512, 1536)  # 2 to 6 MB


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


def _payload(line: bytes) -> Any:
    return _json(line[9:-1])


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


def journal_effect(original: bytes, mutated: bytes) -> tuple[set[str], bool]:
    """Compare a journal segment before and after damage.

    Returns ``(touched, followed)``: the ids named by original lines that are no longer
    present intact (a line whose checksum digits only changed case is still intact) or by new
    checksum-valid lines; and whether an intact original line follows damage (a bad or new
    line, or a lost one): damage that must be reported loudly, not a torn tail. A partial
    last line is a torn write.
    """
    originals = _lines(original)
    before = [_normal(line) for line in originals]
    kept: set[int] = set()
    touched: set[str] = set()
    position = 0
    damaged = False
    followed = False
    for item in (_normal(line) for line in _lines(mutated)):
        match = next((i for i in range(position, len(before)) if before[i] == item), None)
        if item is None or match is None:
            if item is not None:  # a new record: the sessions it names may change
                touched |= line_ids(_json(item[1]))
            damaged = True
            continue
        followed = followed or damaged or match > position
        kept.add(match)
        position = match + 1
    for index, line in enumerate(originals):
        if index not in kept:
            touched |= line_ids(_payload(line))
    return touched, followed


def _hostile_journal(rng: random.Random, record: Any, generation: int, victim: str) -> bytes:
    """A checksum-valid journal payload that is not a valid journal record."""
    seq = record.get("seq", 1) if type(record) is dict else 1
    raw = [b"[]", b"[1]", b"null", b'"x"', b"123", b"{}", b"not json", b'{"seq":"1","ops":[]}']
    choices: list[Callable[[], bytes]] = [lambda: rng.choice(raw)]
    for value in (None, {}, [1], [{}], [{"bogus": 1}], [{"delete": 5}], [{"delete": victim}],
                  [{"delete": "../../victim"}], [{"delete": ""}]):  # fmt: skip
        choices.append(lambda value=value: dumps({"seq": seq, "ops": value}))
    choices.append(lambda: dumps({"seq": seq}))
    for value in (None, [1], generation, generation - 1, "2", -1, 0, 1.5, True):
        choices.append(lambda value=value: dumps({"seq": seq, "rotate": value}))
    for value in ("../../victim", victim, None, [1], 5, ""):
        choices.append(lambda value=value: dumps({"seq": seq, "quarantine": value}))
    if type(record) is dict and type(record.get("ops")) is list and record["ops"]:
        choices.extend([lambda: dumps(_hostile_op(rng, record, victim))] * 12)
    return rng.choice(choices)()


def _hostile_op(rng: random.Random, record: dict[str, Any], victim: str) -> dict[str, Any]:
    """``record`` with one op made malformed in a way no writer produces."""
    record = orjson.loads(orjson.dumps(record))
    op = rng.choice(record["ops"])
    if "put" in op:
        change = rng.choice(
            [
                ("doc", {}),
                ("doc", []),
                ("doc", None),
                ("doc", "x"),
                ("put", None),
                ("put", []),
                ("put.session_id", "../../victim"),
                ("put.session_id", victim),
                ("put.version", "x"),
                ("put.interaction_count", -1),
                ("doc.session_id", "../../victim"),
                ("doc.interactions", "x"),
                ("doc.interactions", [1]),
                ("doc.metadata", deep(300)),
                ("doc.version", -1),
            ]
        )
    elif "doc" in op:  # a put written as its document and size
        change = rng.choice(
            [
                ("doc", {}),
                ("doc", []),
                ("doc", None),
                ("size", None),
                ("size", -1),
                ("size", "x"),
                ("doc.session_id", "../../victim"),
                ("doc.session_id", 5),
                ("doc.interactions", "x"),
                ("doc.interactions", [1]),
                ("doc.metadata", deep(300)),
                ("doc.version", -1),
                ("doc.version", "x"),
            ]
        )
    elif "append" in op:
        change = rng.choice(
            [
                ("items", "x"),
                ("items", None),
                ("items", [1]),
                ("items", [{}]),
                ("items", [deep(300)]),
                ("expected", "1"),
                ("expected", None),
                ("append", None),
                ("append", [1]),
                ("append.session_id", "../../victim"),
                ("append.session_id", victim),
                ("append.version", "x"),
                ("append.interaction_count", -1),
            ]
        )
    else:
        change = rng.choice([("delete", None), ("delete", 5), ("delete", "../../victim")])
    key, value = change
    parts = key.split(".")
    if len(parts) == 2 and type(op.get(parts[0])) is dict:
        op[parts[0]][parts[1]] = value
    else:
        op[parts[0]] = value
    return record


def _hostile_delta(rng: random.Random, data: bytes, victim: str) -> tuple[bytes, int, str]:
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
    line = b"%08x %s\n" % (zlib.crc32(payload), payload)
    if lines and rng.random() < 0.3:  # an intact line where another belongs: a stale copy
        line = rng.choice(lines)
        payload = b"a copy of an intact line"
    detail = f"line {index} {'inserted before' if insert else 'replaced'}: {payload[:60]!r}"
    return data[:start] + line + data[end:], start, detail


def _hostile_tail(rng: random.Random, record: Any, victim: str) -> bytes:
    """A checksum-valid tail payload that no writer produces."""
    raw = [b"[]", b"[1]", b"null", b'"x"', b"7", b"{}", b"not json", b"[{}]"]
    if type(record) is not dict or rng.random() < 0.3:
        return rng.choice(raw)
    record = orjson.loads(orjson.dumps(record))
    key, value = rng.choice(
        [
            ("token", 5),
            ("token", None),
            ("expected", "1"),
            ("expected", None),
            ("header", None),
            ("header", []),
            ("header.session_id", "../../victim"),
            ("header.session_id", victim),
            ("header.version", "x"),
            ("header.interaction_count", -1),
            ("header.metadata", deep(300)),
            ("items", "x"),
            ("items", None),
            ("items", [1]),
            ("items", [{}]),
            ("items", [deep(300)]),
        ]
    )
    parts = key.split(".")
    if len(parts) == 2 and type(record.get(parts[0])) is dict:
        record[parts[0]][parts[1]] = value
    else:
        record[parts[0]] = value
    return dumps(record)


def _mutate_lines(
    rng: random.Random, data: bytes, name: str, target: Target, victim: str
) -> tuple[bytes, int | None, str, bool]:
    """Damage a framed-lines file; return (bytes, offset, detail, lax)."""
    lines = _lines(data)
    generation = int(Path(target.path).stem) if target.kind.startswith("journal") else 0
    index = rng.randrange(len(lines)) if lines else 0
    start = sum(len(line) for line in lines[:index])
    insert = rng.random() < 0.3 or not lines  # a new line between lines, else replace one
    end = start if insert else start + len(lines[index])
    old = None if insert or not lines else _payload(lines[index])
    where = f"line {index} ({'inserted before' if insert else 'replaced'})"
    lax = False
    if name == "hostile":
        if target.kind == "tail":
            payload = _hostile_tail(rng, old, victim)
        else:
            payload = _hostile_journal(rng, old, generation, victim)
        new = frame(payload)
        detail = f"{where}: {payload[:80]!r}"
    elif name == "lax":
        if old is None:
            old = _payload(rng.choice(lines)) if lines else {"seq": 1}
        what = _lax_change(rng, old, victim)
        new = frame(dumps(old))
        lax = True
        detail = f"{where}: {what}"
    elif name == "deep":
        if old is not None and rng.random() < 0.6:
            what = _deep_change(rng, old)
            new = frame(dumps(old))
        else:
            levels = rng.choice((300, 2000))
            what = f"[[...]] {levels} levels"
            new = frame(b"[" * levels + b"]" * levels)
        detail = f"{where}: {what}"
    else:  # huge
        form = rng.choice(("framed", "unframed", "unterminated"))
        blob = _huge(rng)
        if form == "framed":
            new = frame(b'"' + blob.replace(b'"', b"'").replace(b"\\", b"/") + b'"')
        elif form == "unframed":
            new = blob + b"\n"
        else:
            new, start, end = blob, len(data), len(data)
            where = "appended"
        detail = f"{where}: {form} line of {len(new)} bytes"
    return data[:start] + new + data[end:], start, detail, lax


# -- checksummed documents (session bases, index.json) and backups ------------------------------


def _split_document(data: bytes) -> tuple[dict[str, Any], Any]:
    newline = data.index(b"\n")
    return orjson.loads(data[:newline]), orjson.loads(data[newline + 1 : -1])


def _split_index(data: bytes) -> tuple[dict[str, Any], list[Any]]:
    """index.json's head and each body line parsed (the first line, then a chunk a line)."""
    newline = data.index(b"\n")
    return orjson.loads(data[:newline]), [
        orjson.loads(x) for x in data[newline + 1 : -1].split(b"\n")
    ]


def _seal_index(head: dict[str, Any], lines: list[Any]) -> bytes:
    return _seal_document(head, b"\n".join(dumps(line) for line in lines))


def _seal_document(head: dict[str, Any], body: bytes) -> bytes:
    """Re-seal a checksummed document around ``body`` (``head`` keeps its other fields)."""
    head = {**head, "length": len(body), "crc32": f"{zlib.crc32(body):08x}"}
    return orjson.dumps(head) + b"\n" + body + b"\n"


def _hostile_base(
    rng: random.Random, head: dict[str, Any], body: Any, other: str, victim: str
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
    return _seal_document(head, dumps(body)), f"{key} = {str(value)[:40]!r}"


def _hostile_index(
    rng: random.Random, head: dict[str, Any], lines: list[Any], victim: str
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
                ("created", 10**30),
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
    return _seal_index(head, lines), what


def _split_backup(data: bytes) -> tuple[dict[str, Any], list[bytes], bool]:
    first, second = split_header(data, "backup")
    fields = orjson.loads(first)
    body = data[len(first) + len(second) :]
    compressed = fields["compression"] == "zlib"
    if compressed:
        body = zlib.decompress(body)
    documents = body.split(b"\n")[:-1]
    for name in ("kind", "format", "session_count", "compression", "body_bytes"):
        fields.pop(name, None)
    return fields, documents, compressed


def _hostile_backup(rng: random.Random, data: bytes, victim: str, lax: bool) -> tuple[bytes, str]:
    fields, documents, compressed = _split_backup(data)
    index = rng.randrange(len(documents))
    document = orjson.loads(documents[index])
    if lax:
        what = _lax_change(rng, document, victim)
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
    return encode_backup(fields, documents, compress=compressed), what


# -- the entry point ----------------------------------------------------------------------------


def mutate(
    root: Path, target: Target, rng: random.Random, victim: str, other_session: str
) -> Mutation:
    """Damage ``target`` under ``root`` in one random way; return what was done.

    ``victim`` is an absolute path (without suffix) of a file outside the store that hostile
    ids name; ``other_session`` is another stored session's id (a base claiming to be it).
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
        extra = _garbage(rng, size)
        if rng.random() < 0.5:
            extra += b"\n"
        mutation.offset, mutation.detail = len(data), f"{len(extra)} bytes"
        data += extra
    elif target.kind == "index-delta":
        data, mutation.offset, mutation.detail = _hostile_delta(rng, data, victim)
    elif target.kind in ("journal", "journal-old", "tail"):
        data, mutation.offset, mutation.detail, mutation.lax = _mutate_lines(
            rng, data, name, target, victim
        )
    elif name == "huge":
        mutation.offset = len(data)
        blob = _huge(rng)
        data += blob
        mutation.detail = f"{len(blob)} bytes appended"
    elif target.kind == "store":
        document: Any = orjson.loads(data)
        if name == "deep":
            mutation.detail = _deep_change(rng, document)
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
        fields, documents, compressed = _split_backup(data)
        index = rng.randrange(len(documents))
        document = orjson.loads(documents[index])
        mutation.detail = f"record {index}: {_deep_change(rng, document)}"
        documents[index] = dumps(document)
        data = encode_backup(fields, documents, compress=compressed)
    elif target.kind == "backup":
        data, mutation.detail = _hostile_backup(rng, data, victim, lax=name == "lax")
        mutation.lax = name == "lax"
    elif target.kind == "index":
        head, lines = _split_index(data)
        if name == "deep":
            mutation.detail = _deep_change(rng, lines[rng.randrange(len(lines))])
            data = _seal_index(head, lines)
        else:
            data, mutation.detail = _hostile_index(rng, head, lines, victim)
    else:  # a checksummed document: a session base
        head, body = _split_document(data)
        if name == "lax":
            mutation.detail = _lax_change(rng, body, victim)
            data = _seal_document(head, dumps(body))
            mutation.lax = True
        elif name == "deep":
            mutation.detail = _deep_change(rng, body)
            data = _seal_document(head, dumps(body))
        else:
            data, mutation.detail = _hostile_base(rng, head, body, other_session, victim)
    path.write_bytes(data)
    mutation.may_refuse = target.kind == "store"
    return mutation
