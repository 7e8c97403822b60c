"""The tagged codec: exact round-trips, escaping, error paths, hostile input."""

from __future__ import annotations

import dataclasses
import enum
import math
import sys
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ulid import ULID

from session_persistence import (
    InMemorySessionStore,
    Interaction,
    InteractionMessage,
    PersistedSession,
    SerializationError,
    SessionObject,
)
from session_persistence._copy import clone_value
from session_persistence._ids import ulid_from_str
from session_persistence.documents import document_to_session, session_to_document
from session_persistence.errors import InvalidSessionIdError
from session_persistence.serialization import FORMAT_VERSION, MAX_DEPTH, Codec


class Color(enum.Enum):
    RED = "r"
    GREEN = "g"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass
class Point:
    x: int
    y: Any


@pytest.fixture
def codec() -> Codec:
    codec = Codec()
    codec.register_enum(Color)
    codec.register_enum(Priority)
    codec.register_dataclass(Point)
    return codec


def assert_identical(actual: Any, expected: Any) -> None:
    """Equal, and of the same type all the way down."""
    assert type(actual) is type(expected), (actual, expected)
    if isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(actual)
    elif isinstance(expected, Decimal) and expected.is_nan():
        assert actual.is_nan()
    elif isinstance(expected, dict):
        assert list(actual) == list(expected)
        for key in expected:
            assert_identical(actual[key], expected[key])
    elif isinstance(expected, list | tuple):
        assert len(actual) == len(expected)
        for a, b in zip(actual, expected, strict=True):
            assert_identical(a, b)
    elif dataclasses.is_dataclass(expected) and not isinstance(expected, type):
        for field in dataclasses.fields(expected):
            assert_identical(getattr(actual, field.name), getattr(expected, field.name))
    elif isinstance(expected, datetime):
        assert actual == expected
        assert actual.utcoffset() == expected.utcoffset()
        assert type(actual.tzinfo) is type(expected.tzinfo)
        assert actual.fold == expected.fold or expected.tzinfo is None
    else:
        assert actual == expected


ulids = st.builds(ULID.from_int, st.integers(0, 2**128 - 1))
zones = st.one_of(
    st.none(),
    st.just(UTC),
    st.timezones(),
    st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(-1439, 1439)),
)
hashable_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(),
    st.binary(),
    ulids,
    st.uuids(),
    st.dates(),
    st.sampled_from(list(Color)),
)
leaves = st.one_of(
    hashable_leaves,
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=False),
    st.datetimes(timezones=zones, allow_imaginary=False),
    st.times(),
    st.timedeltas(),
    st.sampled_from(list(Priority)),
)
keys = st.one_of(st.text(), st.sampled_from(["$ulid", "$esc", "$", "$set", "a"]))
values = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=4),
        st.dictionaries(
            st.one_of(st.integers(), ulids, st.tuples(st.integers())), children, max_size=3
        ),
        st.tuples(children, children),
        st.sets(hashable_leaves, max_size=4),
        st.frozensets(hashable_leaves, max_size=4),
        st.builds(Point, x=st.integers(), y=children),
    ),
    max_leaves=25,
)


@settings(max_examples=300)
@given(values)
def test_any_supported_value_round_trips_exactly(value: Any) -> None:
    """Every supported value comes back equal and with identical types."""
    codec = Codec()
    codec.register_enum(Color)
    codec.register_enum(Priority)
    codec.register_dataclass(Point)
    assert_identical(codec.loads(codec.dumps(value)), value)


@given(st.dictionaries(st.text(), st.text()))
def test_encoding_is_plain_json(value: dict[str, str]) -> None:
    """The encoding is ordinary JSON any tool can read."""
    codec = Codec()
    assert orjson.loads(codec.dumps(value)) == (
        {"$esc": value} if any(k.startswith("$") for k in value) else value
    )


def test_tags_are_readable(codec: Codec) -> None:
    """Type tags are small, named one-key objects."""
    ulid = ULID()
    encoded = orjson.loads(
        codec.dumps({"id": ulid, "at": datetime(2030, 1, 1, tzinfo=UTC), "to": {"b"}})
    )
    assert encoded == {
        "id": {"$ulid": str(ulid)},
        "at": {"$datetime": "2030-01-01T00:00:00+00:00"},
        "to": {"$set": ["b"]},
    }


def test_user_dicts_that_look_like_tags_are_escaped(codec: Codec) -> None:
    """A user dict such as {"$ulid": "x"} stays a dict; it is never read as a tag."""
    value = {"$ulid": "not-a-ulid", "nested": {"$set": [1]}}
    encoded = codec.dumps(value)
    assert orjson.loads(encoded) == {
        "$esc": {"$ulid": "not-a-ulid", "nested": {"$esc": {"$set": [1]}}}
    }
    assert codec.loads(encoded) == value


def test_zoneinfo_datetime_keeps_its_zone(codec: Codec) -> None:
    """A datetime in a named zone comes back in that zone, and a naive one stays naive."""
    paris = datetime(2030, 10, 27, 2, 30, fold=1, tzinfo=ZoneInfo("Europe/Paris"))
    naive = datetime(2030, 1, 1, 8, 0)
    back = codec.loads(codec.dumps([paris, naive]))
    assert back[0].tzinfo == ZoneInfo("Europe/Paris")
    assert back[0].fold == 1
    assert back[0].utcoffset() == paris.utcoffset()
    assert back[1].tzinfo is None


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"a": [1, {"b": object()}]}, "a[1].b"),
        ({"weird key": {1: object()}}, "['weird key'][1]"),
        ([Point(1, object())], "[0].y"),
        ({"s": {object()}}, "s[0]"),
    ],
)
def test_errors_name_the_path(codec: Codec, value: Any, path: str) -> None:
    """An unserializable value raises SerializationError naming where it is."""
    with pytest.raises(SerializationError) as info:
        codec.dumps(value)
    assert info.value.path == path
    assert "register" in str(info.value)


def test_unregistered_types_are_refused_with_a_hint() -> None:
    """Unregistered dataclasses and enums are refused; the message says how to register."""
    codec = Codec()
    with pytest.raises(SerializationError, match="register_dataclass"):
        codec.dumps(Point(1, 2))
    with pytest.raises(SerializationError, match="register_enum"):
        codec.dumps(Color.RED)


def test_subclasses_are_refused_rather_than_narrowed() -> None:
    """A str subclass would come back as str, so it is refused."""

    class Name(str):
        pass

    with pytest.raises(SerializationError):
        Codec().dumps(Name("x"))


def test_cycles_are_refused() -> None:
    """A self-referencing list raises SerializationError, not a crash."""
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(SerializationError, match="cycle"):
        Codec().dumps(loop)


def _wrapped(levels: int, wrap: Any, leaf: Any = 0) -> Any:
    value = leaf
    for _ in range(levels):
        value = wrap(value)
    return value


@pytest.mark.parametrize(
    ("wrap", "leaf"),
    [
        (lambda v: [v], 0),
        (lambda v: {"k": v}, ULID()),
        (lambda v: (v,), 1.5),
        (lambda v: {1: v}, "x"),
        (lambda v: frozenset({(v,)}), 0),
        (lambda v: [v], timedelta(seconds=1)),
        (lambda v: [v], 2**70),
    ],
    ids=["list", "dict-ulid", "tuple", "int-keys", "frozenset-tuple", "timedelta", "big-int"],
)
def test_depth_check_agrees_with_what_json_can_write(wrap: Any, leaf: Any) -> None:
    """The codec accepts values up to exactly the depth orjson writes, and refuses the next."""
    codec = Codec()
    cost = _json_depth(codec.to_json_value(wrap(leaf))) - _json_depth(codec.to_json_value(leaf))
    levels = 0
    while _accepts(codec, _wrapped(levels + 1, wrap, leaf)):
        levels += 1
    deepest = codec.to_json_value(_wrapped(levels, wrap, leaf))
    orjson.dumps(deepest)  # the deepest accepted value is writable...
    assert _json_depth(deepest) + cost > MAX_DEPTH  # ...and one more level would not be
    with pytest.raises(SerializationError, match="levels deep") as info:
        codec.to_json_value(_wrapped(levels + 1, wrap, leaf))
    assert info.value.path.startswith(("[", "k")), info.value.path


def _accepts(codec: Codec, value: Any) -> bool:
    try:
        codec.to_json_value(value)
    except SerializationError:
        return False
    return True


def _json_depth(data: Any) -> int:
    if type(data) is dict:
        return 1 + max((_json_depth(v) for v in data.values()), default=0)
    if type(data) is list:
        return 1 + max((_json_depth(v) for v in data), default=0)
    return 0


def test_depth_counts_from_where_the_value_sits() -> None:
    """A value that fits alone is refused when it sits deeper in its document."""
    value = _wrapped(MAX_DEPTH - 1, lambda v: [v])
    Codec().to_json_value(value, depth=1)
    with pytest.raises(SerializationError) as info:
        Codec().to_json_value(value, "metadata.x", depth=2)
    assert info.value.path == "metadata.x" + "[0]" * (MAX_DEPTH - 2)


def test_self_containing_values_are_refused_where_the_loop_closes() -> None:
    """A dict or list inside itself is a cycle at the path of the inner reference."""
    looped: dict[str, Any] = {"a": [1, 2]}
    looped["a"].append({"back": looped})
    for refuse in (Codec().to_json_value, clone_value):
        with pytest.raises(SerializationError, match="contains itself") as info:
            refuse({"top": looped}, "metadata")
        assert info.value.path == "metadata.top.a[2].back"


def test_shared_values_are_not_cycles() -> None:
    """The same list reached twice (not inside itself) is copied and encoded twice."""
    shared = [1, 2]
    value = {"a": shared, "b": [shared, shared]}
    assert clone_value(value) == value
    assert Codec().to_json_value(value) == value


def test_absurd_nesting_is_refused_by_the_copy_without_recursion_error() -> None:
    """2,000 nested lists: the copy stops at MAX_DEPTH with the path, not RecursionError."""
    with pytest.raises(SerializationError, match="levels deep") as info:
        clone_value(_wrapped(2000, lambda v: [v]), "interactions[0].request.event")
    assert info.value.path == "interactions[0].request.event" + "[0]" * MAX_DEPTH


def test_registered_objects_nesting_without_end_are_refused(codec: Codec) -> None:
    """A dataclass inside itself, or a chain of 3,000, is a SerializationError, not a crash."""
    looped = Point(1, None)
    looped.y = looped
    with pytest.raises(SerializationError, match="levels deep") as info:
        codec.to_json_value({"p": looped}, "metadata", depth=1)
    assert info.value.path.startswith("metadata.p.y.y")
    chain: Any = None
    for number in range(3000):
        chain = Point(number, chain)
    with pytest.raises(SerializationError, match="levels deep") as info:
        clone_value({"p": chain}, "metadata")
    assert info.value.path == "metadata"


def test_int_beyond_the_digit_limit_is_a_serialization_error() -> None:
    """An int too long for str() raises SerializationError naming it, not ValueError."""
    huge = 10 ** (sys.get_int_max_str_digits() + 1)
    with pytest.raises(SerializationError, match="digits") as info:
        Codec().to_json_value({"n": [huge]}, "metadata")
    assert info.value.path == "metadata.n[0]"
    assert isinstance(info.value.__cause__, ValueError)


def test_register_type_with_functions(codec: Codec) -> None:
    """register_type round-trips any class through a pair of functions."""

    class Money:
        def __init__(self, cents: int, currency: str) -> None:
            self.cents, self.currency = cents, currency

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Money) and vars(self) == vars(other)

        __hash__ = None  # type: ignore[assignment]

    codec.register_type(
        Money,
        encode=lambda m: {"cents": m.cents, "currency": m.currency},
        decode=lambda d: Money(**d),
        name="tests.Money",
    )
    assert codec.loads(codec.dumps({"price": Money(150, "EUR")})) == {"price": Money(150, "EUR")}


def test_name_clash_is_refused(codec: Codec) -> None:
    """Two different types cannot share one registered name."""

    @dataclasses.dataclass
    class Other:
        x: int

    with pytest.raises(SerializationError, match="already registered"):
        codec.register_dataclass(Other, name=f"{Point.__module__}.{Point.__qualname__}")


@pytest.mark.parametrize(
    "raw",
    [
        b'{"$ulid": 5}',
        b'{"$ulid": "not a ulid"}',
        b'{"$nope": 1}',
        b'{"$set": 1}',
        b'{"$set": [[1]]}',
        b'{"$ulid": "01J0000000000000000000AAAA", "other": 1}',
        b'{"$enum": ["unknown.Enum", "X"]}',
        b'{"$bytes": "***"}',
        b'{"$decimal": "abc"}',
        b'{"$datetime": ["2030-01-01T00:00:00", "Not/AZone"]}',
        b'{"$dict": [[1]]}',
        b'{"$float": "1.5"}',
        b"not json",
    ],
)
def test_hostile_documents_raise_serialization_error(codec: Codec, raw: bytes) -> None:
    """Malformed or unknown tags raise SerializationError, never anything else."""
    with pytest.raises(SerializationError):
        codec.loads(raw)


@dataclasses.dataclass
class AssistRequest:
    """Shaped like the Sentient framework's AssistRequest event."""

    id: ULID
    chat_id: ULID
    content: str
    parent_request_id: ULID | None
    root_request_id: ULID
    created: datetime
    local_time: datetime
    attachment: bytes
    cost: Decimal


def sentient_session(codec: Codec) -> PersistedSession:
    codec.register_dataclass(AssistRequest, name="sentient.AssistRequest")
    root = ULID()
    request = AssistRequest(
        id=ULID(),
        chat_id=ULID(),
        content="What is the weather in Paris?",
        parent_request_id=None,
        root_request_id=root,
        created=datetime(2030, 5, 1, 9, 30, tzinfo=UTC),
        local_time=datetime(2030, 5, 1, 11, 30),
        attachment=b"\x00\x01binary",
        cost=Decimal("0.0150"),
    )
    now = datetime(2030, 5, 1, 9, 30, 1, tzinfo=UTC)
    return PersistedSession(
        session_id=str(ULID()),
        processor_id="weather-agent",
        activity_id=ULID(),
        request_id=root,
        interactions=[
            Interaction(
                request=InteractionMessage(
                    event=request, sender="user", recipients={"agent", "logger"}
                ),
                responses=[
                    InteractionMessage(event={"text": "Sunny", "at": now}, sender="agent"),
                ],
            )
        ],
        created_at=now,
        updated_at=now,
        expires_at=None,
        last_accessed_at=now,
        metadata={"trace": {"ids": (ULID(), ULID())}, "flags": frozenset({"beta"})},
        tags=["sentient"],
        version=1,
    )


def test_sentient_session_round_trips_through_a_document() -> None:
    """A Sentient-style session survives encode/decode with == equality and identical types."""
    codec = Codec()
    session = sentient_session(codec)
    raw = orjson.dumps(session_to_document(session, codec))
    back = document_to_session(orjson.loads(raw), codec)
    assert back == session
    assert_identical(back.activity_id, session.activity_id)
    event = back.interactions[0].request.event
    assert type(event) is AssistRequest
    assert_identical(
        dataclasses.asdict(event), dataclasses.asdict(session.interactions[0].request.event)
    )
    assert type(back.interactions[0].request.recipients) is set
    assert_identical(back.metadata, session.metadata)


async def test_sentient_session_round_trips_through_the_store() -> None:
    """Stored and read back through a store, the Sentient-style session is identical."""
    codec = Codec()
    session = sentient_session(codec)
    async with InMemorySessionStore(codec=codec) as store:
        created = await store.create_session(
            SessionObject(
                session.processor_id, session.activity_id, session.request_id, session.interactions
            ),
            metadata=session.metadata,
        )
        back = await store.get_session(created.session_id)
    assert back is not None
    assert back.interactions == session.interactions
    assert type(back.interactions[0].request.event.id) is ULID
    assert_identical(back.metadata, session.metadata)


def test_documents_reject_a_newer_format() -> None:
    """A document from a newer format version is refused with an upgrade hint."""
    codec = Codec()
    document = session_to_document(sentient_session(codec), codec)
    document["format"] = FORMAT_VERSION + 1
    with pytest.raises(SerializationError, match="upgrade"):
        document_to_session(document, codec)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("session_id", "../../etc/passwd"),
        ("version", 0),
        ("version", "1"),
        ("tags", [1]),
        ("created_at", "yesterday"),
        ("created_at", "2030-01-01T00:00:00"),
        ("processor_id", None),
        ("interactions", [{"request": {"sender": "x"}, "responses": []}]),
        ("interactions", [{"request": {"event": 1}, "responses": "no"}]),
        ("metadata", []),
        ("activity_id", {"$ulid": "bad"}),
        ("format", None),
    ],
)
def test_documents_are_validated(field: str, value: Any) -> None:
    """Every field of a stored document is checked; a bad one raises a typed error."""
    codec = Codec()
    document = session_to_document(sentient_session(codec), codec)
    document[field] = value
    with pytest.raises((SerializationError, InvalidSessionIdError)):
        document_to_session(document, codec)


def test_misc_values_round_trip(codec: Codec) -> None:
    """A hand-picked set of edge values round-trips exactly."""
    value = {
        "big": 2**100,
        "neg_big": -(2**70),
        "inf": float("-inf"),
        "t": time(23, 59, 59, 999999),
        "d": date(1, 1, 1),
        "td": timedelta(days=-3, microseconds=5),
        "ba": bytearray(b"xyz"),
        "u": uuid.UUID(int=7),
        "empty": {},
        "tuple_of_sets": (set(), frozenset()),
        "color": Color.GREEN,
    }
    assert_identical(codec.loads(codec.dumps(value)), value)


@settings(max_examples=500)
@given(st.binary(min_size=16, max_size=16), st.sampled_from(["upper", "lower"]))
def test_fast_ulid_decoding_agrees_with_python_ulid(raw: bytes, case: str) -> None:
    """ulid_from_str decodes exactly what ULID.from_str decodes, canonical or not.

    (python-ulid 3 refuses lower case and 4 accepts it: whichever is installed decides.)
    """
    text = str(ULID(raw))
    text = text.lower() if case == "lower" else text
    assert _outcome(ulid_from_str, text) == _outcome(ULID.from_str, text)


def _outcome(decode: Any, text: str) -> object:
    try:
        return decode(text)
    except ValueError:
        return ValueError


@pytest.mark.parametrize(
    "text",
    ["", "0" * 25, "0" * 27, "8" + "0" * 25, "ZZZZZZZZZZZZZZZZZZZZZZZZZZ", "0" * 25 + "!",
     "0" * 25 + "U", "0" * 25 + "é"],
)  # fmt: skip
def test_fast_ulid_decoding_refuses_what_python_ulid_refuses(text: str) -> None:
    """Too short, too long, overflowing or foreign characters: the same ValueError or value."""
    try:
        expected: object = ULID.from_str(text)
    except ValueError:
        with pytest.raises(ValueError):  # noqa: PT011 - python-ulid's message varies by version
            ulid_from_str(text)
    else:
        assert ulid_from_str(text) == expected
