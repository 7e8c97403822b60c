"""The Sentient Agent Framework's real pydantic events, stored and read back after a restart.

sentient-agent-framework 0.3.0 pins ``fastapi==0.115.12`` (so ``starlette<0.47``) while the
``agents`` extra's openai-agents needs ``starlette>=1.3.1``: the two cannot share one
environment, so this test skips in the dev venv and runs in its own (``make test-sentient``,
part of ``make test``), which also pins python-ulid 3.0.0 as the framework does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

sentient = pytest.importorskip(
    "sentient_agent_framework", reason="sentient-agent-framework is not installed here"
)

from sentient_agent_framework.interface import events, session  # noqa: E402
from ulid import ULID  # noqa: E402

from session_persistence import (  # noqa: E402
    Codec,
    FileSystemSessionStore,
    Interaction,
    InteractionMessage,
    SerializationError,
    SessionObject,
    SQLiteSessionStore,
    register_pydantic,
)
from session_persistence.stores.base import SessionStore  # noqa: E402


def assist_request() -> session.AssistRequest:
    parent = ULID.from_datetime(datetime.now(UTC) - timedelta(seconds=1))  # an earlier request
    return session.AssistRequest(
        chat_id=ULID(),
        parent_request_id=parent,
        root_request_id=parent,
        content=session.AssistRequestContent(
            request_payload=session.AssistRequestContentParts(
                parts=[session.AssistRequestContentPart(prompt="Hi!", fileIds=["file-1"])]
            )
        ),
    )


def response_events() -> list[events.BaseEvent]:
    return [
        events.TextChunkEvent(
            source="agent", event_name="final", stream_id="s-1", is_complete=False, content="He"
        ),
        events.TextChunkEvent(
            source="agent", event_name="final", stream_id="s-1", is_complete=True, content="llo"
        ),
        events.DocumentEvent(
            source="agent",
            event_name="sources",
            content={"urls": ["https://example.org"], "scores": [0.5, 0.25]},
            metadata={"rank": 1, "tags": ["a", "b"]},
        ),
        events.TextBlockEvent(source="agent", event_name="thinking", content="Looking it up"),
        events.ErrorEvent(
            source="agent",
            content=events.ErrorContent(error_message="rate limited", error_code=429),
        ),
        events.DoneEvent(source="agent"),
    ]


def _open(kind: str, path: Path, codec: Codec) -> SessionStore:
    if kind == "filesystem":
        return FileSystemSessionStore(path / "fs", codec=codec)
    return SQLiteSessionStore(path / "s.db", codec=codec)


def test_unregistered_events_name_the_call() -> None:
    """Before registration, a Sentient event is refused with the call to make."""
    with pytest.raises(SerializationError, match=r"register_pydantic\(TextChunkEvent\)"):
        Codec().dumps(response_events()[0])


@pytest.mark.parametrize("kind", ["filesystem", "sqlite"])
async def test_real_events_round_trip_as_the_same_classes(tmp_path: Path, kind: str) -> None:
    """AssistRequest and every response event class come back equal, same class, after restart."""
    codec = Codec()
    registered = register_pydantic(events, session, codec=codec)
    assert events.TextChunkEvent in registered
    assert session.AssistRequest in registered
    request = assist_request()
    responses = response_events()
    interaction = Interaction(
        InteractionMessage(request, sender="user", recipients={"agent"}),
        [InteractionMessage(event, sender="agent") for event in responses],
    )
    async with _open(kind, tmp_path, codec) as store:
        created = await store.create_session(
            SessionObject("sentient-agent", request.chat_id, request.id, [interaction])
        )
    async with _open(kind, tmp_path, codec) as store:
        stored = await store.require_session(created.session_id)
    back = stored.interactions[0]
    assert type(back.request.event) is session.AssistRequest
    assert back.request.event == request
    assert isinstance(back.request.event.chat_id, ULID)
    assert back.request.event.content.request_payload.parts[0].files_ids == ["file-1"]
    assert [type(m.event) for m in back.responses] == [type(e) for e in responses]
    assert [m.event for m in back.responses] == responses
    assert all(isinstance(m.event.id, ULID) for m in back.responses)
    assert back.responses[0].event.content_type is events.EventContentType.TEXT_STREAM
