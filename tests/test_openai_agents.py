"""AgentsSession: the OpenAI Agents SDK's Session protocol on every store, through its Runner."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from agents import (
    Agent,
    Model,
    ModelResponse,
    Runner,
    Usage,
    set_tracing_disabled,
)
from agents.items import TResponseInputItem
from agents.memory import Session, SessionSettings
from openai.types.responses import ResponseOutputMessage, ResponseOutputText

from session_persistence import (
    FileSystemSessionStore,
    InMemorySessionStore,
    InvalidInputError,
    InvalidSessionIdError,
    SessionStoreConfig,
    SQLiteSessionStore,
    StoreCorruptionError,
)
from session_persistence.integrations.openai_agents import (
    POP_SENDER,
    PROCESSOR_ID,
    AgentsSession,
)
from session_persistence.stores.base import SessionStore
from session_persistence.testing import FakeClock

CHILD = str(Path(__file__).with_name("agents_child.py"))
ROOT = str(Path(__file__).resolve().parent.parent)
KINDS = ["memory", "filesystem", "sqlite"]


class CountingModel(Model):
    """A model stub (the SDK's Model interface, no network): says how many items it was given."""

    def __init__(self) -> None:
        self.inputs: list[list[TResponseInputItem]] = []

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        given = kwargs.get("input", args[1] if len(args) > 1 else None)
        items = list(given) if isinstance(given, list) else [given]
        self.inputs.append(cast(list[TResponseInputItem], items))
        text = f"reply {len(self.inputs)}: I was given {len(items)} item(s)"
        message = ResponseOutputMessage(
            id=f"msg_{len(self.inputs)}",
            type="message",
            role="assistant",
            status="completed",
            content=[ResponseOutputText(text=text, type="output_text", annotations=[])],
        )
        return ModelResponse(output=[message], usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("the tests do not stream")


def open_store(kind: str, path: Path) -> SessionStore:
    if kind == "memory":
        return InMemorySessionStore()
    if kind == "filesystem":
        return FileSystemSessionStore(path / "fs", watch=False)
    return SQLiteSessionStore(path / "sessions.db")


@pytest.fixture(params=KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SessionStore]:
    async with open_store(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture(autouse=True)
def _no_tracing() -> None:
    set_tracing_disabled(True)  # the SDK would otherwise export traces over the network


def user(text: str) -> TResponseInputItem:
    return cast(TResponseInputItem, {"role": "user", "content": text})


async def test_is_an_sdk_session(store: SessionStore) -> None:
    """It satisfies the SDK's runtime-checkable Session protocol and keeps its attributes."""
    session = AgentsSession("chat-1", store, session_settings={"limit": 5})
    assert isinstance(session, Session)
    assert session.session_id == "chat-1"
    assert session.session_settings == SessionSettings(limit=5)
    assert AgentsSession("chat-2", store).session_settings is None
    with pytest.raises(InvalidSessionIdError):
        AgentsSession("no/slashes", store)
    with pytest.raises(InvalidInputError):
        AgentsSession("chat-3", cast(Any, "not a store"))


async def test_runner_keeps_the_conversation(store: SessionStore) -> None:
    """Runner.run with the session: each turn's model input holds the earlier turns."""
    model = CountingModel()
    agent = Agent(name="assistant", instructions="Be brief.", model=model)
    session = AgentsSession("chat-42", store)
    first = await Runner.run(agent, "Hello", session=session)
    assert first.final_output == "reply 1: I was given 1 item(s)"
    second = await Runner.run(agent, "And again", session=session)
    assert second.final_output == "reply 2: I was given 3 item(s)"
    assert [cast(dict[str, Any], item).get("content") for item in model.inputs[1]][:1] == ["Hello"]
    items = await session.get_items()
    assert len(items) == 4
    assert cast(dict[str, Any], items[2])["content"] == "And again"
    stored = await store.require_session("chat-42")
    assert stored.processor_id == PROCESSOR_ID
    assert [i.request.sender for i in stored.interactions] == [
        "user",
        "assistant",
        "user",
        "assistant",
    ]


async def test_get_items_limit_returns_the_newest_in_order(store: SessionStore) -> None:
    """get_items(limit) is the newest `limit` items, oldest first; settings give the default."""
    session = AgentsSession("chat", store, session_settings=SessionSettings(limit=2))
    assert await session.get_items() == []
    await session.add_items([user(str(i)) for i in range(5)])
    texts = [cast(dict[str, Any], i)["content"] for i in await session.get_items(limit=3)]
    assert texts == ["2", "3", "4"]
    assert [cast(dict[str, Any], i)["content"] for i in await session.get_items()] == ["3", "4"]
    assert len(await AgentsSession("chat", store).get_items()) == 5
    assert await session.get_items(limit=0) == []


async def test_get_items_limit_past_many_pops(store: SessionStore) -> None:
    """Pops that eat a whole tail make get_items(limit) read further back, and stay exact."""
    session = AgentsSession("chat", store)
    await session.add_items([user(str(i)) for i in range(60)])
    for _ in range(45):
        assert await session.pop_item() is not None
    await session.add_items([user("new")])
    everything = [cast(dict[str, Any], i)["content"] for i in await session.get_items()]
    assert everything == [*[str(i) for i in range(15)], "new"]
    for limit in (1, 2, 5, 16, 17, 100):
        newest = [cast(dict[str, Any], i)["content"] for i in await session.get_items(limit)]
        assert newest == everything[-limit:], limit


async def test_get_items_limit_reads_only_the_tail(tmp_path: Path) -> None:
    """With a limit, an old interaction that cannot be decoded is never read."""
    async with SQLiteSessionStore(tmp_path / "sessions.db") as store:
        session = AgentsSession("chat", store)
        await session.add_items([user(str(i)) for i in range(100)])
        with sqlite3.connect(tmp_path / "sessions.db") as db:
            db.execute("UPDATE interactions SET data = 'not json' WHERE seq = 0")
        newest = [cast(dict[str, Any], i)["content"] for i in await session.get_items(3)]
        assert newest == ["97", "98", "99"]
        with pytest.raises(StoreCorruptionError):
            await session.get_items()


async def test_get_items_of_an_expired_session_is_empty(tmp_path: Path) -> None:
    """An expired record reads as no items, with or without a limit."""
    clock = FakeClock()
    async with InMemorySessionStore(SessionStoreConfig(clock=clock)) as store:
        session = AgentsSession("chat", store)
        await session.add_items([user("a"), user("b")])
        await store.set_session_expiration("chat", clock.now)
        assert await session.get_items() == []
        assert await session.get_items(limit=1) == []


async def test_add_appends_and_never_rewrites(store: SessionStore) -> None:
    """Each add_items is one append: the stored history only grows, version by version."""
    session = AgentsSession("chat", store)
    await session.add_items([user("a"), user("b")])
    await session.add_items([])
    await session.add_items([user("c")])
    stored = await store.require_session("chat")
    assert stored.version == 2  # created with a and b, then one append
    assert [i.request.event["content"] for i in stored.interactions] == ["a", "b", "c"]
    with pytest.raises(InvalidInputError):
        await session.add_items([cast(Any, "not a dict")])


async def test_pop_and_clear(store: SessionStore) -> None:
    """pop_item removes the newest item (None when empty); clear_session empties it."""
    session = AgentsSession("chat", store)
    assert await session.pop_item() is None
    await session.clear_session()
    await session.add_items([user("a"), user("b"), user("c")])
    popped = await session.pop_item()
    assert cast(dict[str, Any], popped)["content"] == "c"
    await session.add_items([user("d")])
    assert [cast(dict[str, Any], i)["content"] for i in await session.get_items()] == [
        "a",
        "b",
        "d",
    ]
    stored = await store.require_session("chat")
    assert [i.request.sender for i in stored.interactions].count(POP_SENDER) == 1
    await session.clear_session()
    assert await session.get_items() == []
    assert await session.pop_item() is None
    await session.add_items([user("e")])
    assert len(await session.get_items()) == 1


async def test_concurrent_pops_remove_one_item_each(store: SessionStore) -> None:
    """20 concurrent pops on 10 items: each item popped exactly once, 10 find none."""
    session = AgentsSession("chat", store)
    await session.add_items([user(str(i)) for i in range(10)])
    results = await asyncio.gather(*(session.pop_item() for _ in range(20)))
    popped = [cast(dict[str, Any], r)["content"] for r in results if r is not None]
    assert sorted(popped, key=int) == [str(i) for i in range(10)]
    assert results.count(None) == 10
    assert await session.get_items() == []


async def test_concurrent_adds_lose_nothing(store: SessionStore) -> None:
    """Concurrent add_items from many coroutines, the first creating the session: all kept."""
    sessions = [AgentsSession("chat", store) for _ in range(10)]
    await asyncio.gather(
        *(s.add_items([user(f"{n}:{i}") for i in range(3)]) for n, s in enumerate(sessions))
    )
    items = await sessions[0].get_items()
    assert sorted(cast(dict[str, Any], i)["content"] for i in items) == sorted(
        f"{n}:{i}" for n in range(10) for i in range(3)
    )


@pytest.mark.parametrize("kind", ["filesystem", "sqlite"])
async def test_items_survive_a_restart(tmp_path: Path, kind: str) -> None:
    """A conversation run through the Runner is there, whole, after reopening the store."""
    model = CountingModel()
    agent = Agent(name="assistant", model=model)
    async with open_store(kind, tmp_path) as store:
        await Runner.run(agent, "Remember me", session=AgentsSession("chat", store))
    async with open_store(kind, tmp_path) as store:
        session = AgentsSession("chat", store)
        items = await session.get_items()
        assert cast(dict[str, Any], items[0])["content"] == "Remember me"
        result = await Runner.run(agent, "Still there?", session=session)
        assert result.final_output == "reply 2: I was given 3 item(s)"


def _run_children(
    mode_of: Callable[[int], str], kind: str, path: Path, *, go: Path, n: int, count: int
) -> list[dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": ROOT}
    children = [
        subprocess.Popen(
            [sys.executable, CHILD, mode_of(i), kind, str(path), str(go), str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for i in range(count)
    ]
    go.touch()
    reports = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err.decode()
        reports.append(orjson.loads(out))
    return reports


@pytest.mark.parametrize("kind", ["filesystem", "sqlite"])
async def test_two_processes_adding_lose_nothing(tmp_path: Path, kind: str) -> None:
    """Two processes adding 40 items each to one session: all 80 kept, each in its order."""
    path = tmp_path / ("fs" if kind == "filesystem" else "sessions.db")
    async with open_store(kind, tmp_path):
        pass
    reports = await asyncio.to_thread(
        _run_children, lambda i: "add", kind, path, go=tmp_path / "go", n=40, count=2
    )
    assert [r["added"] for r in reports] == [40, 40]
    async with open_store(kind, tmp_path) as store:
        items = await AgentsSession("shared", store).get_items()
    texts = [cast(dict[str, Any], i)["content"] for i in items]
    assert len(texts) == 80
    by_process: dict[str, list[int]] = {}
    for text in texts:
        pid, index = text.split(":")
        by_process.setdefault(pid, []).append(int(index))
    assert sorted(by_process.values()) == [list(range(40)), list(range(40))]


@pytest.mark.parametrize("kind", ["filesystem", "sqlite"])
async def test_two_processes_popping_take_each_item_once(tmp_path: Path, kind: str) -> None:
    """Two processes popping one session of 30 items: every item popped exactly once."""
    path = tmp_path / ("fs" if kind == "filesystem" else "sessions.db")
    async with open_store(kind, tmp_path) as store:
        await AgentsSession("shared", store).add_items([user(f"x:{i}") for i in range(30)])
    reports = await asyncio.to_thread(
        _run_children, lambda i: "pop", kind, path, go=tmp_path / "go", n=100, count=2
    )
    popped = [text for report in reports for text in report["popped"]]
    assert sorted(popped) == sorted(f"x:{i}" for i in range(30))
    async with open_store(kind, tmp_path) as store:
        assert await AgentsSession("shared", store).get_items() == []
