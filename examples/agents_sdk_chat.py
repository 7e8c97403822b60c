"""A multi-turn chat through the OpenAI Agents SDK, kept in the filesystem store, then resumed.

Run with ``python examples/agents_sdk_chat.py`` (uses ./agents_chat_data; needs the ``agents``
extra: ``pip install 'session-persistence[agents]'``).

The SDK's ``Runner`` keeps the conversation in an ``AgentsSession``, on our filesystem store.
The model is a stub that needs no network or API key (the SDK's ``Model`` interface): it
answers by counting the items of conversation it was given, which shows the history growing.
Halfway, the store is closed, as a process restart would, and a new ``AgentsSession`` with the
same id resumes the chat where it stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from agents import (
    Agent,
    AgentOutputSchemaBase,
    Handoff,
    Model,
    ModelResponse,
    ModelSettings,
    ModelTracing,
    Runner,
    Tool,
    Usage,
    set_tracing_disabled,
)
from agents.items import TResponseInputItem, TResponseStreamEvent
from openai.types.responses import ResponseOutputMessage, ResponseOutputText

from session_persistence import FileSystemSessionStore
from session_persistence.integrations.openai_agents import AgentsSession

STORE_DIR = "./agents_chat_data"


class CountingModel(Model):
    """A stand-in for an LLM: replies with how many conversation items it was given."""

    async def get_response(  # noqa: PLR0917 - the SDK's Model interface
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: Any,
    ) -> ModelResponse:
        """Answer one turn (the SDK calls it with the conversation so far as ``input``)."""
        items = input if isinstance(input, list) else [input]
        text = f"(I can see {len(items)} item(s) of our conversation)"
        reply = ResponseOutputMessage(
            id="msg_stub",
            type="message",
            role="assistant",
            status="completed",
            content=[ResponseOutputText(text=text, type="output_text", annotations=[])],
        )
        return ModelResponse(output=[reply], usage=Usage(), response_id=None)

    def stream_response(  # noqa: PLR0917 - the SDK's Model interface
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: Any,
    ) -> AsyncIterator[TResponseStreamEvent]:
        """Not used: ``Runner.run`` does not stream."""
        raise NotImplementedError("this example does not stream")


async def chat(store: FileSystemSessionStore, agent: Agent[None], *turns: str) -> None:
    session = AgentsSession("support-chat-1", store)
    for turn in turns:
        result = await Runner.run(agent, turn, session=session)
        print(f"user: {turn}\nassistant: {result.final_output}")


async def main() -> None:
    set_tracing_disabled(True)  # no traces sent anywhere
    agent = Agent(name="support", instructions="Help briefly.", model=CountingModel())
    async with FileSystemSessionStore(STORE_DIR) as store:
        await chat(store, agent, "Hi, my order is late.", "It is order 1234.")
    print("-- restart --")
    async with FileSystemSessionStore(STORE_DIR) as store:
        await chat(store, agent, "Any news?")
        items = await AgentsSession("support-chat-1", store).get_items()
        print(f"stored: {len(items)} items in session support-chat-1")


if __name__ == "__main__":
    asyncio.run(main())
