"""register_pydantic: pydantic models in sessions, as the same classes with exact fields."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pydantic_models as models  # tests/ is on sys.path (pytest's rootdir import)
import pytest
from pydantic import BaseModel
from ulid import ULID

from session_persistence import (
    Codec,
    FileSystemSessionStore,
    Interaction,
    InteractionMessage,
    SerializationError,
    SessionObject,
    SQLiteSessionStore,
    register_pydantic,
)
from session_persistence.stores.base import SessionStore


def message() -> models.Message:
    parent = models.Message(text="first", sent_at=datetime(2026, 1, 1, tzinfo=UTC))
    return models.Message(
        kind=models.Mood.EXCITED,
        text="second",
        recipients={"alice", "bob"},
        sent_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2))),
        attachments=[
            models.Attachment(name="a.bin", data=b"\x00\xff", created=datetime(2026, 1, 1))
        ],
        parent=parent,
    )


def test_a_model_round_trips_as_the_same_class_with_exact_fields() -> None:
    """ULIDs, sets, datetimes (aware and naive), bytes, enums and nested models come back."""
    codec = Codec()
    registered = register_pydantic(models.Message, codec=codec)
    assert set(registered) == {models.Message, models.Attachment}  # nested model came along
    original = message()
    back = codec.loads(codec.dumps(original))
    assert type(back) is models.Message
    assert back == original
    assert isinstance(back.id, ULID)
    assert back.recipients == {"alice", "bob"}
    assert back.kind is models.Mood.EXCITED
    assert back.sent_at == original.sent_at
    assert back.sent_at.utcoffset() == timedelta(hours=2)
    assert back.attachments[0].created.tzinfo is None
    assert type(back.parent) is models.Message


def test_a_module_registers_every_model_it_defines() -> None:
    """Passing a module registers its BaseModel subclasses, not pydantic's own BaseModel."""
    codec = Codec()
    registered = register_pydantic(models, codec=codec)
    assert set(registered) == {
        models.Attachment,
        models.Message,
        models.Aliased,
        models.Unregistered,
    }
    assert BaseModel not in registered
    aliased = models.Aliased(chatId=ULID(), note="an extra field")  # type: ignore[call-arg]
    back = codec.loads(codec.dumps(aliased))
    assert back == aliased
    assert back.model_extra == {"note": "an extra field"}


def test_an_unregistered_model_names_the_call_to_make() -> None:
    """An unregistered model is a SerializationError naming register_pydantic and the path."""
    with pytest.raises(SerializationError) as caught:
        Codec().to_json_value({"event": models.Unregistered(value=1)}, "metadata")
    assert "register_pydantic(Unregistered)" in str(caught.value)
    assert caught.value.path == "metadata.event"


def test_reading_never_imports_by_a_stored_name() -> None:
    """A stored class name that is not registered is refused; nothing is imported for it."""
    codec = Codec()
    document = orjson.dumps({"$object": ["tests.never_imported_module.Evil", {"x": 1}]})
    before = set(sys.modules)
    with pytest.raises(SerializationError, match="not registered"):
        codec.loads(document)
    assert "tests.never_imported_module" not in sys.modules
    assert set(sys.modules) == before


def test_a_document_that_no_longer_fits_the_model_is_a_typed_error() -> None:
    """Fields read back are validated: a bad value is a SerializationError, not a crash."""
    codec = Codec()
    register_pydantic(models.Attachment, codec=codec)
    document = orjson.dumps({"$object": ["pydantic_models.Attachment", {"name": 5, "data": "x"}]})
    with pytest.raises(SerializationError, match="Attachment"):
        codec.loads(document)


def test_bad_arguments_are_refused() -> None:
    """Something other than a model class or a module is a SerializationError."""
    with pytest.raises(SerializationError):
        register_pydantic("tests.pydantic_models", codec=Codec())  # type: ignore[arg-type]
    with pytest.raises(SerializationError):
        register_pydantic(BaseModel, codec=Codec())


def _open(kind: str, path: Path, codec: Codec) -> SessionStore:
    if kind == "filesystem":
        return FileSystemSessionStore(path / "fs", codec=codec)
    return SQLiteSessionStore(path / "s.db", codec=codec)


@pytest.mark.parametrize("kind", ["filesystem", "sqlite"])
async def test_models_in_events_and_metadata_survive_a_restart(tmp_path: Path, kind: str) -> None:
    """Events and metadata holding models are the same classes after reopening the store."""
    codec = Codec()
    register_pydantic(models, codec=codec)
    event = message()
    async with _open(kind, tmp_path, codec) as store:
        created = await store.create_session(
            SessionObject(
                "p", ULID(), ULID(), [Interaction(InteractionMessage(event, sender="agent"))]
            ),
            metadata={"last": event.attachments[0]},
        )
        await store.append_interactions(
            created.session_id, Interaction(InteractionMessage(event.parent))
        )
    async with _open(kind, tmp_path, codec) as store:
        stored = await store.require_session(created.session_id)
    assert stored.interactions[0].request.event == event
    assert type(stored.interactions[1].request.event) is models.Message
    assert stored.metadata["last"] == event.attachments[0]
