"""Hostile JSON for the reader fuzzer's mutations (tests/fuzz_mutations.py, tests/fuzz_sealed.py).

Values of the wrong type or shape, nesting deeper than any writer produces, and checksum-valid
journal and tail payloads that no writer produces. Nothing here knows about files: the callers
frame (and, in a sealed store, seal) what these return.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

import orjson

__all__ = [
    "big",
    "deep",
    "deep_change",
    "dumps",
    "garbage",
    "hostile_journal",
    "hostile_tail",
    "hostile_values",
    "huge",
    "lax_change",
]


# -- JSON helpers ------------------------------------------------------------------------------

_DEEP = re.compile(rb'"@@deep-(\d+)@@"')


def deep(levels: int) -> str:
    """A placeholder that :func:`dumps` turns into ``levels`` nested arrays."""
    return f"@@deep-{levels}@@"


_BIG = re.compile(rb'"@@big-(\d+)@@"')


def big(digits: int) -> str:
    """A placeholder that :func:`dumps` turns into an integer of ``digits`` digits."""
    return f"@@big-{digits}@@"


def dumps(value: Any) -> bytes:
    """``orjson.dumps`` that can also write what orjson will not.

    Nesting deeper than it allows (via :func:`deep`) and integers beyond 64 bits (:func:`big`).
    """
    data = _DEEP.sub(lambda m: b"[" * int(m[1]) + b"]" * int(m[1]), orjson.dumps(value))
    return _BIG.sub(lambda m: b"1" + b"0" * (int(m[1]) - 1), data)


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


def hostile_values(victim: str) -> list[Any]:
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


def lax_change(rng: random.Random, document: Any, victim: str) -> str:
    """Replace (or drop) one random node of ``document``; return what was done."""
    paths = _paths(document)
    if not paths:
        return "nothing to change"
    path = rng.choice(paths)
    if rng.random() < 0.15:
        _drop(document, path)
        return f"dropped {'/'.join(map(str, path))}"
    value = rng.choice(hostile_values(victim))
    _set(document, path, value)
    return f"{'/'.join(map(str, path))} = {str(value)[:40]!r}"


def deep_change(rng: random.Random, document: Any) -> str:
    levels = rng.choice((300, 2000))
    paths = _paths(document)
    if not paths:
        return "nothing to nest"
    path = rng.choice(paths)
    _set(document, path, deep(levels))
    return f"{'/'.join(map(str, path))} nested {levels} levels"


def garbage(rng: random.Random, size: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(size))


def huge(rng: random.Random) -> bytes:
    """Several MB without a newline (cheap to make: a repeated random block)."""
    block = garbage(rng, 4096).replace(b"\n", b" ")
    return block * rng.randint(512, 1536)  # 2 to 6 MB


# -- hostile records of framed lines ------------------------------------------------------------


def hostile_journal(rng: random.Random, record: Any, generation: int, victim: str) -> bytes:
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


def hostile_tail(rng: random.Random, record: Any, victim: str) -> bytes:
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
