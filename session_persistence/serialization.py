"""The ULID-preserving, type-tagged JSON codec (orjson underneath).

A session holds more than JSON can say: ``ulid.ULID`` ids, datetimes, sets of recipients,
bytes, decimals, user enums and dataclasses. The codec turns such a value into plain JSON whose
non-JSON parts are *tagged*: a one-key object whose key starts with ``$``::

    ULID                {"$ulid": "01HZX3N5J8Q6W2T4V7B9C1D3E5"}
    datetime            {"$datetime": "2026-11-21T09:30:00.123456+00:00"}      (naive: no offset)
      with a ZoneInfo   {"$datetime": ["2026-11-21T10:30:00+01:00", "Europe/Paris"]}
      with fold=1       {"$datetime": ["2026-10-25T02:30:00+01:00", "Europe/Paris", 1]}
    date / time         {"$date": "2026-11-21"}  {"$time": "09:30:00"}
    timedelta           {"$timedelta": [days, seconds, microseconds]}
    set / frozenset     {"$set": [...]}  {"$frozenset": [...]}
    tuple               {"$tuple": [...]}
    bytes / bytearray   {"$bytes": "<base64>"}  {"$bytearray": "<base64>"}
    uuid.UUID           {"$uuid": "1b4e28ba-2fa1-11d2-883f-0016d3cca427"}
    Decimal             {"$decimal": "1.10"}
    int beyond 64 bits  {"$int": "123456789012345678901234567890"}
    NaN / ±Infinity     {"$float": "nan"}
    dict, non-str keys  {"$dict": [[key, value], ...]}
    registered Enum     {"$enum": ["myapp.Color", "RED"]}
    registered type     {"$object": ["myapp.Point", <encoded payload>]}
    user dict with "$"  {"$esc": {"$weird": ...}}    (escaped so it is never read as a tag)

Everything else (``str``, ``int``, ``float``, ``bool``, ``None``, ``list``, ``dict`` with ``str``
keys) is plain JSON, so a stored session stays readable with ``jq``. Decoding is the exact
inverse: types and values come back equal and of the same type. Types are matched exactly, so
subclasses (other than registered ones) are refused rather than silently narrowed.

A value that cannot be encoded raises :class:`~session_persistence.errors.SerializationError`
naming where it sits (``interactions[3].request.event.payload``), before anything is written.
That includes a value that contains itself, one that would nest deeper than :data:`MAX_DEPTH`
levels in its document (orjson writes no deeper), and an int whose decimal form is longer
than the interpreter allows (:func:`sys.get_int_max_str_digits`): each is refused by a check,
never by a ``RecursionError`` or ``ValueError`` escaping.

Documents written by stores carry ``FORMAT_VERSION``; a reader refuses a newer one.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import math
import sys
import uuid
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from ulid import ULID

from ._ids import ulid_from_str
from .errors import SerializationError

__all__ = [
    "FORMAT_VERSION",
    "MAX_DEPTH",
    "Codec",
    "default_codec",
    "dump_json",
    "register_dataclass",
    "register_enum",
    "register_type",
]

#: Version of the tagged encoding and of the session documents built on it.
FORMAT_VERSION = 1

#: How many levels of arrays and objects a document may nest, counted from its root (the
#: session document, whose own object is level 1): orjson writes nothing deeper. Tagged values
#: take their levels too (``{"$tuple": [...]}`` is two).
MAX_DEPTH = 254

_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1

T = TypeVar("T")
_Encoder = Callable[[Any], Any]
_Decoder = Callable[[Any], Any]


class _EncodeFailure(Exception):
    """Internal: carries a failure outwards, collecting the path on the way."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.parts: list[str] = []


class _DecodeFailure(_EncodeFailure):
    """Internal: the same for decoding."""


class _TooDeep(_EncodeFailure):
    """Internal: a container would sit deeper than ``MAX_DEPTH`` (or the value loops)."""

    def __init__(self) -> None:
        super().__init__(DEPTH_MESSAGE)


#: Why a value is refused for its depth, and what to do.
DEPTH_MESSAGE = (
    f"value nests more than {MAX_DEPTH} levels deep in its session, deeper than JSON is "
    "written; flatten it (e.g. store the deep part as a JSON string)"
)
#: Why a value that contains itself is refused, and what to do.
CYCLE_MESSAGE = (
    "value contains itself (a reference cycle), which JSON cannot hold; store a copy "
    "without the loop"
)


def _room(depth: int, levels: int) -> None:
    """Raise ``_TooDeep`` unless ``levels`` more containers fit below ``depth``."""
    if depth + levels > MAX_DEPTH:
        raise _TooDeep()


def _int_text(value: int) -> str:
    try:
        return str(value)
    except ValueError as exc:  # over sys.get_int_max_str_digits()
        raise _EncodeFailure(
            f"an int of more than {sys.get_int_max_str_digits()} digits cannot be written "
            "(Python's int/str conversion limit); store it as a str, or raise the limit with "
            "sys.set_int_max_str_digits() in every process that uses the store"
        ) from exc


@dataclasses.dataclass(frozen=True, slots=True)
class _Registered:
    cls: type[Any]
    name: str
    tag: str
    encode: _Encoder
    decode: _Decoder


class Codec:
    """Encodes values to tagged JSON and back; holds the registry of user types.

    Most code uses the module-level :data:`default_codec` through :func:`register_enum`,
    :func:`register_dataclass` and :func:`register_type`. Stores take a ``codec`` so that tests
    or applications can keep separate registries.
    """

    def __init__(self) -> None:
        self._by_type: dict[type[Any], _Registered] = {}
        self._by_name: dict[tuple[str, str], _Registered] = {}

    # -- registry ------------------------------------------------------------------------------

    def register_enum(self, cls: type[enum.Enum], *, name: str | None = None) -> None:
        """Register an :class:`enum.Enum` so its members round-trip (stored by member name).

        Args:
            cls: The enum class.
            name: The stable name stored in documents; defaults to ``module.QualName``. Give
                one explicitly if the class may move.

        Raises:
            SerializationError: ``cls`` is not an Enum, or the name is taken by another type.
        """
        if not (isinstance(cls, type) and issubclass(cls, enum.Enum)):
            raise SerializationError(f"register_enum needs an Enum class, got {cls!r}")
        self._add(
            _Registered(
                cls=cls,
                name=name or _qualified_name(cls),
                tag="$enum",
                encode=lambda member: member.name,
                decode=lambda member_name: _enum_member(cls, member_name),
            )
        )

    def register_dataclass(self, cls: type[Any], *, name: str | None = None) -> None:
        """Register a dataclass so its instances round-trip (fields encoded recursively).

        Args:
            cls: The dataclass. It is rebuilt with ``cls(**fields)`` for its ``init`` fields.
            name: The stable name stored in documents; defaults to ``module.QualName``.

        Raises:
            SerializationError: ``cls`` is not a dataclass, or the name is taken.
        """
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise SerializationError(f"register_dataclass needs a dataclass, got {cls!r}")
        init_fields = tuple(f.name for f in dataclasses.fields(cls) if f.init)

        def encode(obj: Any) -> dict[str, Any]:
            return {field: getattr(obj, field) for field in init_fields}

        def decode(payload: Any) -> Any:
            if not isinstance(payload, dict):
                raise _DecodeFailure(f"{cls.__name__} payload must be an object")
            try:
                return cls(**payload)
            except TypeError as exc:
                raise _DecodeFailure(f"cannot rebuild {cls.__name__}: {exc}") from exc

        self._add(
            _Registered(cls, name or _qualified_name(cls), "$object", encode, decode),
        )

    def register_type(
        self,
        cls: type[T],
        *,
        encode: Callable[[T], Any],
        decode: Callable[[Any], T],
        name: str | None = None,
    ) -> None:
        """Register any type with a pair of functions.

        ``encode`` returns a value the codec can encode (it may contain ULIDs, sets, other
        registered types, ...); ``decode`` receives that value decoded and rebuilds the object.
        For a pydantic model: ``encode=lambda m: m.model_dump(mode="python")``,
        ``decode=Model.model_validate``.

        Raises:
            SerializationError: The name is taken by another type.
        """
        self._add(_Registered(cls, name or _qualified_name(cls), "$object", encode, decode))

    def _add(self, entry: _Registered) -> None:
        key = (entry.tag, entry.name)
        existing = self._by_name.get(key)
        if existing is not None and existing.cls is not entry.cls:
            raise SerializationError(
                f"type name {entry.name!r} is already registered for {existing.cls!r}; "
                "pass a different name="
            )
        self._by_type[entry.cls] = entry
        self._by_name[key] = entry

    # -- encoding ------------------------------------------------------------------------------

    def to_json_value(self, value: Any, path: str = "", *, depth: int = 0) -> Any:
        """Return ``value`` as a tree of JSON-native values with type tags.

        Args:
            value: The value to encode.
            path: Where ``value`` sits, used as the prefix of error paths.
            depth: How many arrays and objects enclose ``value`` in the document it is
                written into; the result may add at most ``MAX_DEPTH - depth`` levels.

        Raises:
            SerializationError: Something inside cannot be encoded; ``.path`` says where.
        """
        try:
            return self._encode(value, depth)
        except _TooDeep as failure:
            too_deep = _join_path(path, failure.parts)
        except _EncodeFailure as failure:
            raise SerializationError(
                failure.message, _join_path(path, failure.parts)
            ) from failure.__cause__
        except RecursionError as exc:  # a registered type's own encoder recursing
            raise SerializationError(
                "value is nested too deeply or contains a reference cycle", path
            ) from exc
        # A value that contains itself also runs out of depth: say so, where the loop closes.
        raise nesting_error(value, path, depth=depth, cycles_only=True) or SerializationError(
            DEPTH_MESSAGE, too_deep
        )

    def dumps(self, value: Any, *, indent: bool = False) -> bytes:
        """Encode ``value`` to JSON bytes (UTF-8).

        Raises:
            SerializationError: See :meth:`to_json_value`.
        """
        return dump_json(self.to_json_value(value), indent=indent)

    def _encode(self, value: Any, depth: int) -> Any:
        # ``depth`` counts the arrays and objects enclosing ``value`` in its document; every
        # container built here checks it has room below MAX_DEPTH (a leaf needs none).
        kind = type(value)
        if kind is str or kind is bool or value is None:
            return value
        if kind is int:
            if _INT_MIN <= value <= _INT_MAX:
                return value
            _room(depth, 1)
            return {"$int": _int_text(value)}
        if kind is float:
            if math.isfinite(value):
                return value
            _room(depth, 1)
            return {"$float": repr(value)}
        if kind is dict:
            if depth >= MAX_DEPTH:
                raise _TooDeep()
            return self._encode_dict(value, depth + 1)
        if kind is list:
            if depth >= MAX_DEPTH:
                raise _TooDeep()
            return self._encode_items(value, depth + 1)
        simple = _SIMPLE_ENCODERS.get(kind)
        if simple is not None:
            encoded = simple(value)
            if depth >= MAX_DEPTH - 1:  # near the limit only: a tag holding a list is two
                _room(depth, 1 + any(type(inner) is list for inner in encoded.values()))
            return encoded
        if kind is tuple:
            _room(depth, 2)
            return {"$tuple": self._encode_items(value, depth + 2)}
        if kind is set or kind is frozenset:
            _room(depth, 2)
            items = self._encode_items(_ordered(value), depth + 2)
            return {"$set" if kind is set else "$frozenset": items}
        entry = self._by_type.get(kind)
        if entry is not None:
            _room(depth, 2)
            try:
                payload = entry.encode(value)
            except _EncodeFailure:
                raise
            except Exception as exc:
                raise _EncodeFailure(f"encoder for {entry.name} failed: {exc}") from exc
            if entry.tag == "$enum":
                return {"$enum": [entry.name, payload]}
            return {"$object": [entry.name, self._encode(payload, depth + 2)]}
        raise _EncodeFailure(_unsupported_message(value))

    def _encode_items(self, items: Any, depth: int) -> list[Any]:
        out = []
        for index, item in enumerate(items):
            try:
                out.append(self._encode(item, depth))
            except _EncodeFailure as failure:
                failure.parts.append(f"[{index}]")
                raise
        return out

    def _encode_dict(self, value: dict[Any, Any], depth: int) -> Any:
        # An escaped dict ({"$esc": {...}}) is one level deeper than counted here; orjson
        # still refuses it past the limit (without a path), so nothing unwritable passes.
        out: dict[str, Any] = {}
        escape = False
        for key, item in value.items():
            if type(key) is not str:
                return self._encode_pairs(value, depth)
            if key[:1] == "$":
                escape = True
            try:
                out[key] = self._encode(item, depth)
            except _EncodeFailure as failure:
                failure.parts.append(_key_segment(key))
                raise
        return {"$esc": out} if escape else out

    def _encode_pairs(self, value: dict[Any, Any], depth: int) -> dict[str, Any]:
        _room(depth, 2)  # {"$dict": [[key, value], ...]}: the array and each pair
        pairs = []
        for key, item in value.items():
            try:
                pairs.append([self._encode(key, depth + 2), self._encode(item, depth + 2)])
            except _EncodeFailure as failure:
                failure.parts.append(f"[{key!r}]")
                raise
        return {"$dict": pairs}

    # -- decoding ------------------------------------------------------------------------------

    def from_json_value(self, data: Any, path: str = "", *, depth: int = 0) -> Any:
        """Rebuild the value that :meth:`to_json_value` encoded.

        Args:
            data: The JSON-native value.
            path: Where it sits, used as the prefix of error paths.
            depth: How many arrays and objects enclose it in its document; as when writing,
                it may add at most ``MAX_DEPTH - depth`` levels (no write produces more, so
                deeper data read from storage is damage).

        Raises:
            SerializationError: Malformed or unknown tags, an unregistered type name, or
                nesting deeper than any write produces.
        """
        try:
            return self._decode(data, depth)
        except _EncodeFailure as failure:
            raise SerializationError(
                failure.message, _join_path(path, failure.parts)
            ) from failure.__cause__
        except RecursionError as exc:
            raise SerializationError("document is nested too deeply", path) from exc

    def loads(self, raw: bytes | str) -> Any:
        """Decode JSON bytes written by :meth:`dumps`.

        Raises:
            SerializationError: Not valid JSON, or not a valid tagged document.
        """
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise SerializationError(f"not valid JSON: {exc}") from exc
        return self.from_json_value(data)

    def _decode(self, data: Any, depth: int) -> Any:
        kind = type(data)
        if kind is list:
            _room(depth, 1)
            return self._decode_items(data, depth + 1)
        if kind is not dict:
            return data
        _room(depth, 1)
        if len(data) == 1:
            ((key, inner),) = data.items()
            if key[:1] == "$":
                return self._decode_tag(key, inner, depth + 1)
        out = {}
        for key, item in data.items():
            if key[:1] == "$":
                raise _DecodeFailure(f"unexpected tag {key!r} beside other keys")
            out[key] = self._decode_member(key, item, depth + 1)
        return out

    def _decode_member(self, key: str, item: Any, depth: int) -> Any:
        try:
            return self._decode(item, depth)
        except _EncodeFailure as failure:
            failure.parts.append(_key_segment(key))
            raise

    def _decode_items(self, items: list[Any], depth: int) -> list[Any]:
        out = []
        for index, item in enumerate(items):
            try:
                out.append(self._decode(item, depth))
            except _EncodeFailure as failure:
                failure.parts.append(f"[{index}]")
                raise
        return out

    def _decode_tag(self, tag: str, inner: Any, depth: int) -> Any:
        """Decode a tagged value; ``depth`` counts the tag's own object."""
        simple = _SIMPLE_DECODERS.get(tag)
        if simple is not None:
            try:
                return simple(inner)
            except (ValueError, TypeError, ArithmeticError, binascii.Error) as exc:
                raise _DecodeFailure(f"bad {tag} value {inner!r:.80}: {exc}") from exc
        if tag == "$esc":
            if type(inner) is not dict:
                raise _DecodeFailure("$esc must hold an object")
            _room(depth, 1)
            return {key: self._decode_member(key, item, depth + 1) for key, item in inner.items()}
        if tag in ("$set", "$frozenset", "$tuple"):
            if type(inner) is not list:
                raise _DecodeFailure(f"{tag} must hold an array")
            _room(depth, 1)
            items = self._decode_items(inner, depth + 1)
            try:
                return (
                    set(items)
                    if tag == "$set"
                    else (frozenset(items) if tag == "$frozenset" else tuple(items))
                )
            except TypeError as exc:
                raise _DecodeFailure(f"{tag} holds an unhashable item: {exc}") from exc
        if tag == "$dict":
            return self._decode_pairs(inner, depth)
        if tag in ("$enum", "$object"):
            return self._decode_registered(tag, inner, depth)
        raise _DecodeFailure(f"unknown type tag {tag!r} (written by a newer version?)")

    def _decode_pairs(self, inner: Any, depth: int) -> dict[Any, Any]:
        if type(inner) is not list:
            raise _DecodeFailure("$dict must hold an array of pairs")
        _room(depth, 2)  # the array of pairs, and each pair
        out: dict[Any, Any] = {}
        for index, pair in enumerate(inner):
            if type(pair) is not list or len(pair) != 2:
                raise _DecodeFailure(f"$dict entry {index} is not a [key, value] pair")
            key = self._decode(pair[0], depth + 2)
            try:
                out[key] = self._decode(pair[1], depth + 2)
            except TypeError as exc:
                raise _DecodeFailure(f"$dict key is unhashable: {exc}") from exc
        return out

    def _decode_registered(self, tag: str, inner: Any, depth: int) -> Any:
        if type(inner) is not list or len(inner) != 2 or type(inner[0]) is not str:
            raise _DecodeFailure(f"{tag} must hold [type name, payload]")
        name, payload = inner
        entry = self._by_name.get((tag, name))
        if entry is None:
            raise _DecodeFailure(
                f"type {name!r} is not registered with this codec; register it before reading"
            )
        if tag == "$object":
            payload = self._decode(payload, depth + 1)
        try:
            return entry.decode(payload)
        except _EncodeFailure:
            raise
        except Exception as exc:
            raise _DecodeFailure(f"decoder for {name} failed: {exc}") from exc


def dump_json(data: Any, *, indent: bool = False, path: str = "") -> bytes:
    """Write already-encoded (JSON-native) data as UTF-8 JSON bytes.

    Every caller turning encoded values into bytes goes through here, so orjson's own limits
    (it refuses nesting deeper than 254 levels) surface as ``SerializationError``.

    Raises:
        SerializationError: orjson refused the data.
    """
    try:
        return orjson.dumps(data, option=orjson.OPT_INDENT_2 if indent else 0)
    except orjson.JSONEncodeError as exc:
        raise SerializationError(
            f"cannot write JSON ({exc}); is the value nested too deeply?", path
        ) from exc


def _ordered(items: set[Any] | frozenset[Any]) -> list[Any]:
    # A stable order makes equal sessions encode to equal bytes (checksums, diffs).
    try:
        return sorted(items)
    except TypeError:
        return list(items)


def _encode_datetime(value: datetime) -> Any:
    text = value.isoformat()
    zone = value.tzinfo
    key = zone.key if isinstance(zone, ZoneInfo) else None
    if key is None and not value.fold:
        return {"$datetime": text}
    return {"$datetime": [text, key, 1] if value.fold else [text, key]}


def _decode_datetime(inner: Any) -> datetime:
    if type(inner) is str:
        return datetime.fromisoformat(inner)
    if (
        type(inner) is not list
        or len(inner) not in (2, 3)
        or type(inner[0]) is not str
        or (inner[1] is not None and type(inner[1]) is not str)
        or inner[2:] not in ([], [1])
    ):
        raise TypeError("expected an ISO string or [ISO string, zone or null, fold]")
    moment = datetime.fromisoformat(inner[0])
    if inner[1] is not None:
        try:
            zone = ZoneInfo(inner[1])
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {inner[1]!r}") from exc
        moment = moment.astimezone(zone)
    return moment.replace(fold=1) if len(inner) == 3 else moment


def _decode_timedelta(inner: Any) -> timedelta:
    if type(inner) is not list or len(inner) != 3 or any(type(x) is not int for x in inner):
        raise TypeError("expected [days, seconds, microseconds]")
    return timedelta(days=inner[0], seconds=inner[1], microseconds=inner[2])


def _str_only(parse: Callable[[str], T]) -> Callable[[Any], T]:
    def decode(inner: Any) -> T:
        if type(inner) is not str:
            raise TypeError("expected a string")
        return parse(inner)

    return decode


def _decode_decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation as exc:
        raise ValueError("not a decimal") from exc


def _decode_float(text: str) -> float:
    if text not in ("nan", "inf", "-inf"):
        raise ValueError("expected nan, inf or -inf")
    return float(text)


def _encode_b64(value: bytes | bytearray) -> str:
    return base64.b64encode(value).decode("ascii")


def _decode_b64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


_SIMPLE_ENCODERS: dict[type[Any], _Encoder] = {
    ULID: lambda v: {"$ulid": str(v)},
    datetime: _encode_datetime,
    date: lambda v: {"$date": v.isoformat()},
    time: lambda v: {"$time": v.isoformat()},
    timedelta: lambda v: {"$timedelta": [v.days, v.seconds, v.microseconds]},
    bytes: lambda v: {"$bytes": _encode_b64(v)},
    bytearray: lambda v: {"$bytearray": _encode_b64(v)},
    uuid.UUID: lambda v: {"$uuid": str(v)},
    Decimal: lambda v: {"$decimal": str(v)},
}

_SIMPLE_DECODERS: dict[str, _Decoder] = {
    "$ulid": _str_only(ulid_from_str),
    "$datetime": _decode_datetime,
    "$date": _str_only(date.fromisoformat),
    "$time": _str_only(time.fromisoformat),
    "$timedelta": _decode_timedelta,
    "$bytes": _str_only(_decode_b64),
    "$bytearray": _str_only(lambda text: bytearray(_decode_b64(text))),
    "$uuid": _str_only(uuid.UUID),
    "$decimal": _str_only(_decode_decimal),
    "$int": _str_only(int),
    "$float": _str_only(_decode_float),
}


def _enum_member(cls: type[enum.Enum], member_name: Any) -> enum.Enum:
    if type(member_name) is not str or member_name not in cls.__members__:
        raise _DecodeFailure(f"{member_name!r} is not a member of {cls.__name__}")
    return cls[member_name]


def _qualified_name(cls: type[Any]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _unsupported_message(value: Any) -> str:
    kind = type(value)
    hint = ""
    if _is_pydantic_model(kind):
        hint = (
            f"; register it with session_persistence.register_pydantic({kind.__qualname__}) "
            "(or pass its module to register every model it defines)"
        )
    elif dataclasses.is_dataclass(value):
        hint = "; register it with register_dataclass()"
    elif isinstance(value, enum.Enum):
        hint = "; register it with register_enum()"
    else:
        hint = "; register it with register_type()"
    return f"cannot serialize {kind.__module__}.{kind.__qualname__} value{hint}"


def _is_pydantic_model(kind: type[Any]) -> bool:
    """Whether ``kind`` is a pydantic model class (without importing pydantic)."""
    return any(
        base.__name__ == "BaseModel" and base.__module__ == "pydantic.main" for base in kind.__mro__
    )


def _key_segment(key: str) -> str:
    return f".{key}" if key.isidentifier() else f"[{key!r}]"


def _join_path(prefix: str, parts: list[str]) -> str:
    inner = "".join(reversed(parts))
    if not prefix:
        return inner.removeprefix(".")
    return prefix + inner


_CONTAINERS = frozenset({dict, list, tuple, set, frozenset})


def nesting_error(
    value: Any, path: str = "", *, depth: int = 0, cycles_only: bool = False
) -> SerializationError | None:
    """Return the error for a value that contains itself or nests past ``MAX_DEPTH``.

    Follows dicts, lists, tuples, sets and frozensets (a registered type's contents are its
    encoder's business). A shared object seen twice is fine; one inside itself is a cycle. It
    walks every container, so it runs only once a cheap depth count has tripped (a value that
    contains itself always trips it).

    Args:
        value: The value to look into.
        path: Where ``value`` sits, the prefix of the error's path.
        depth: How many containers enclose ``value`` (each container inside counts one).
        cycles_only: Look for a loop only, not looking below the depth limit.

    Returns:
        A :class:`SerializationError` whose path names where the loop closes (the first found)
        or, failing that, the first container past the limit; ``None`` if there is neither
        (with ``cycles_only``: if there is no loop within the limit).
    """
    ancestors: set[int] = set()
    parts: list[str] = []

    def walk(node: Any, level: int) -> str | None:  # at most MAX_DEPTH + 1 frames deep
        if id(node) in ancestors:
            return CYCLE_MESSAGE
        if level > MAX_DEPTH:
            return None if cycles_only else DEPTH_MESSAGE
        ancestors.add(id(node))
        if type(node) is dict:
            children: Iterable[tuple[str, Any]] = (
                (_key_segment(k) if type(k) is str else f"[{k!r}]", v) for k, v in node.items()
            )
        else:
            children = ((f"[{i}]", v) for i, v in enumerate(node))
        for segment, child in children:
            if type(child) in _CONTAINERS:
                parts.append(segment)
                found = walk(child, level + 1)
                if found is not None:
                    return found
                parts.pop()
        ancestors.discard(id(node))
        return None

    if type(value) not in _CONTAINERS:
        return None
    message = walk(value, depth + 1)
    if message is None:
        return None
    return SerializationError(message, _join_path(path, parts[::-1]))


#: The process-wide codec used by default by every store.
default_codec = Codec()


def register_enum(cls: type[enum.Enum], *, name: str | None = None) -> None:
    """Register an Enum with :data:`default_codec`. See :meth:`Codec.register_enum`."""
    default_codec.register_enum(cls, name=name)


def register_dataclass(cls: type[Any], *, name: str | None = None) -> None:
    """Register a dataclass with :data:`default_codec`. See :meth:`Codec.register_dataclass`."""
    default_codec.register_dataclass(cls, name=name)


def register_type(
    cls: type[T],
    *,
    encode: Callable[[T], Any],
    decode: Callable[[Any], T],
    name: str | None = None,
) -> None:
    """Register any type with :data:`default_codec`. See :meth:`Codec.register_type`."""
    default_codec.register_type(cls, encode=encode, decode=decode, name=name)
