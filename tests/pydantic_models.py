"""Pydantic models for the register_pydantic tests (a module, to register as a whole)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from ulid import ULID


class Mood(str, enum.Enum):  # noqa: UP042 - the form the Sentient framework uses
    CALM = "calm"
    EXCITED = "excited"


class Attachment(BaseModel):
    name: str
    data: bytes
    created: datetime


class Message(BaseModel):
    id: ULID = Field(default_factory=ULID)
    kind: Literal[Mood.CALM, Mood.EXCITED] = Mood.CALM
    text: str
    recipients: set[str] = Field(default_factory=set)
    sent_at: datetime
    attachments: list[Attachment] = Field(default_factory=list)
    parent: Message | None = None


class Aliased(BaseModel):
    """A field with an alias: stored by field name, read back by field name."""

    model_config = ConfigDict(extra="allow")

    chat_id: ULID = Field(alias="chatId")


class Unregistered(BaseModel):
    """Defined elsewhere in tests, never registered."""

    value: int
